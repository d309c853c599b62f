"""Recording one open or click of one delivery.

Every hit is kept as a TrackingEvent, machine ones flagged with their reason. The delivery's
`opened_at` / `clicked_at` hold the first human open and click: reports count those, once per
delivery. A human click means the message was opened, too. A member's first human click on a
message is an explicit action (a "click" member event, and their `last_engaged_at`), which
segments and the periphery of introductions read; an open never is, as a pixel says little
about a person. Nothing is recorded for an erased member. The caller commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from cop_mail.audience.consent import record_member_event
from cop_mail.db import utcnow
from cop_mail.models import Delivery, Member, MemberStatus, TrackedLink, TrackingEvent, TrackingKind
from cop_mail.tracking.machine import classify

CLICK_EVENT = "click"
# One message's link passed around or replayed adds at most this many events.
MAX_EVENTS_PER_DELIVERY = 100


@dataclass(frozen=True)
class Hit:
    """What a request tells about itself; the IP address is deliberately not here."""

    user_agent: str
    method: str = "GET"
    at: datetime | None = None


def find_link(session: Session, delivery_id: int, position: int) -> TrackedLink | None:
    """The link at `position` of the message this delivery carried, if there is one."""
    return session.scalar(
        select(TrackedLink)
        .join(Delivery, Delivery.campaign_id == TrackedLink.campaign_id)
        .where(Delivery.id == delivery_id, TrackedLink.position == position)
    )


def record_open(session: Session, delivery_id: int, hit: Hit) -> TrackingEvent | None:
    return _record(session, delivery_id, TrackingKind.OPEN, None, hit)


def record_click(session: Session, delivery_id: int, link: TrackedLink, hit: Hit) -> TrackingEvent | None:
    return _record(session, delivery_id, TrackingKind.CLICK, link, hit)


def _record(
    session: Session, delivery_id: int, kind: TrackingKind, link: TrackedLink | None, hit: Hit
) -> TrackingEvent | None:
    now = hit.at or utcnow()
    delivery = session.get(Delivery, delivery_id)
    if delivery is None or delivery.member_id is None:
        return None
    if link is not None and link.campaign_id != delivery.campaign_id:
        return None
    status = session.scalar(select(Member.status).where(Member.id == delivery.member_id))
    if status is None or status == MemberStatus.ERASED:
        return None
    if _events_of(session, delivery_id) >= MAX_EVENTS_PER_DELIVERY:
        return None
    verdict = classify(str(kind), hit.user_agent, hit.method, delivery.sent_at or delivery.data_sent_at, now)
    event = TrackingEvent(
        delivery_id=delivery.id,
        campaign_id=delivery.campaign_id,
        member_id=delivery.member_id,
        kind=str(kind),
        link_id=link.id if link is not None else None,
        machine=verdict.machine,
        machine_reason=verdict.reason[:100],
        client=verdict.client[:100],
        created_at=now,
    )
    session.add(event)
    if not verdict.machine:
        _first_human(session, delivery, kind, link, now)
    session.flush()
    return event


def _events_of(session: Session, delivery_id: int) -> int:
    return int(session.scalar(select(func.count()).where(TrackingEvent.delivery_id == delivery_id)) or 0)


def _first_human(
    session: Session, delivery: Delivery, kind: TrackingKind, link: TrackedLink | None, now: datetime
) -> None:
    """Set the first human open (and click); conditional updates, so two at once count once."""
    if kind == TrackingKind.CLICK and _set_first(session, delivery.id, "clicked_at", now):
        member_id = int(delivery.member_id or 0)
        link_id = link.id if link is not None else None
        record_member_event(
            session, member_id, CLICK_EVENT, explicit=True, at=now,
            campaign_id=delivery.campaign_id, delivery_id=delivery.id, link_id=link_id,
        )  # fmt: skip
        session.execute(
            update(Member)
            .where(Member.id == member_id, or_(Member.last_engaged_at.is_(None), Member.last_engaged_at < now))
            .values(last_engaged_at=now)
            .execution_options(synchronize_session=False)
        )
    _set_first(session, delivery.id, "opened_at", now)


def _set_first(session: Session, delivery_id: int, name: str, now: datetime) -> bool:
    statement = (
        update(Delivery)
        .where(Delivery.id == delivery_id, getattr(Delivery, name).is_(None))
        # Engagement is not a change to the delivery: its updated_at stays what sending set.
        .values({name: now, "updated_at": Delivery.updated_at})
        .execution_options(synchronize_session=False)
    )
    return bool(session.execute(statement).rowcount)  # type: ignore[attr-defined]
