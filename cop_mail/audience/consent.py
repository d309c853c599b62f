"""Recording consent and member changes.

Consent given or withdrawn is a ConsentEvent (with the time, IP, source and the
wording the member saw); any other change to a member is a MemberEvent on their
timeline. Callers commit: the record becomes durable with the change itself.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cop_mail.db import utcnow
from cop_mail.models import ConsentEvent, MemberEvent


class ConsentKind(StrEnum):
    SIGNUP_REQUESTED = "signup_requested"  # double opt-in form sent; not consent yet
    CONFIRMED = "confirmed"  # the confirm button was pressed
    SUBSCRIBED = "subscribed"  # single opt-in list, or a list joined in the preference centre
    LIST_UNSUBSCRIBED = "list_unsubscribed"
    STREAM_ON = "stream_on"
    STREAM_OFF = "stream_off"
    UNSUBSCRIBED_ALL = "unsubscribed_all"
    RESUBSCRIBED = "resubscribed"
    ERASED = "erased"


class MemberEventKind(StrEnum):
    PREFERENCES_CHANGED = "preferences_changed"
    PAUSED = "paused"
    RESUMED = "resumed"
    MANAGE_LINK_REQUESTED = "manage_link_requested"
    SIGNUP_REFUSED = "signup_refused"
    SUPPRESSED = "suppressed"
    TRANSACTIONAL_QUEUED = "transactional_queued"
    DATA_EXPORTED = "data_exported"


def record_consent(
    session: Session,
    member_id: int | None,
    kind: ConsentKind | str,
    *,
    stream: str | None = None,
    list_id: int | None = None,
    wording: str = "",
    ip: str | None = None,
    at: datetime | None = None,
    **detail: Any,
) -> ConsentEvent:
    event = ConsentEvent(
        member_id=member_id,
        kind=str(kind),
        stream=str(stream) if stream else None,
        list_id=list_id,
        wording=wording,
        ip=ip[:64] if ip else None,
        detail=detail,
        created_at=at or utcnow(),
    )
    session.add(event)
    session.flush()
    return event


def record_member_event(
    session: Session,
    member_id: int,
    kind: MemberEventKind | str,
    *,
    explicit: bool = False,
    at: datetime | None = None,
    **detail: Any,
) -> MemberEvent:
    event = MemberEvent(
        member_id=member_id, kind=str(kind), explicit=explicit, detail=detail, created_at=at or utcnow()
    )
    session.add(event)
    session.flush()
    return event


def consent_history(session: Session, member_id: int) -> list[ConsentEvent]:
    return list(
        session.scalars(select(ConsentEvent).where(ConsentEvent.member_id == member_id).order_by(ConsentEvent.id))
    )
