"""The events that put a member into a journey, called in the same transaction as the event.

A member enters each journey at most once: the (journey, member) pair is unique, so the insert
that would enter them twice does nothing. Entering only records the enrolment with its first step
due now; the periodic runner takes the steps, so nothing here sends mail or needs a commit.

Bulk CSV imports and the admin's add-member form do not call these: importing an old list must
not welcome hundreds of long-standing members at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, exists, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from cop_mail.db import is_postgres, utcnow
from cop_mail.models import (
    EnrolmentStatus,
    Journey,
    JourneyEnrolment,
    JourneyTrigger,
    Member,
    MemberEvent,
    MemberStatus,
)

INACTIVE_BATCH = 1000  # members entered per journey and pass; the next pass takes the rest


def enrol(session: Session, journey_id: int, member_id: int, now: datetime | None = None) -> bool:
    """Put the member into the journey, first step due now; False if they were ever in it before."""
    now = now or utcnow()
    table = cast(Table, JourneyEnrolment.__table__)
    insert = pg_insert(table) if is_postgres(session) else sqlite_insert(table)
    statement = (
        insert.values(
            journey_id=journey_id,
            member_id=member_id,
            status=str(EnrolmentStatus.ACTIVE),
            next_run_at=now,
            waits={},
            stop_reason="",
            started_at=now,
        )
        .on_conflict_do_nothing(index_elements=["journey_id", "member_id"])
        .returning(table.c.id)
    )
    return session.execute(statement).first() is not None


def _active_journeys(session: Session, *triggers: JourneyTrigger) -> list[Journey]:
    statement = select(Journey).where(Journey.active.is_(True), Journey.trigger.in_([str(t) for t in triggers]))
    return list(session.scalars(statement.order_by(Journey.id)))


def _is_active(session: Session, member_id: int) -> bool:
    return session.scalar(select(Member.status).where(Member.id == member_id)) == MemberStatus.ACTIVE


def _fits_list(journey: Journey, list_id: int | None) -> bool:
    wanted = (journey.trigger_config or {}).get("list_id")
    return wanted is None or wanted == list_id


def member_joined_list(session: Session, member_id: int, list_id: int | None, *, source: str = "") -> list[int]:
    """A member is now subscribed to a list; `source="confirm"` is also a confirmed signup.

    Returns the ids of the journeys the member entered.
    """
    triggers = [JourneyTrigger.JOINED_LIST]
    if source == "confirm":
        triggers.append(JourneyTrigger.CONFIRMED_SIGNUP)
    journeys = _active_journeys(session, *triggers)
    if not journeys or not _is_active(session, member_id):
        return []
    return [j.id for j in journeys if _fits_list(j, list_id) and enrol(session, j.id, member_id)]


def connection_made(session: Session, *member_ids: int) -> list[tuple[int, int]]:
    """A connection was recorded: whoever now has exactly one connection made their first.

    Call after connections_count was raised. Returns (journey id, member id) pairs entered.
    """
    journeys = _active_journeys(session, JourneyTrigger.FIRST_CONNECTION)
    if not journeys:
        return []
    firsts = session.scalars(
        select(Member.id).where(
            Member.id.in_(member_ids), Member.connections_count == 1, Member.status == MemberStatus.ACTIVE
        )
    ).all()
    return [(j.id, m) for j in journeys for m in firsts if enrol(session, j.id, m)]


def inactive_member_ids(session: Session, journey: Journey, now: datetime, limit: int = INACTIVE_BATCH) -> list[int]:
    """Active members with no explicit action (reply, answer, story, click) for the journey's days,
    who joined before then and were never in this journey."""
    cutoff = now - timedelta(days=inactive_days(journey))
    recent = exists().where(
        MemberEvent.member_id == Member.id, MemberEvent.explicit.is_(True), MemberEvent.created_at >= cutoff
    )
    entered = exists().where(JourneyEnrolment.journey_id == journey.id, JourneyEnrolment.member_id == Member.id)
    statement = (
        select(Member.id)
        .where(
            Member.status == MemberStatus.ACTIVE,
            Member.joined_at < cutoff,
            or_(Member.last_engaged_at.is_(None), Member.last_engaged_at < cutoff),
            ~recent,
            ~entered,
        )
        .order_by(Member.id)
        .limit(limit)
    )
    return list(session.scalars(statement))


def inactive_days(journey: Journey) -> int:
    config: dict[str, Any] = journey.trigger_config or {}
    return max(1, int(config.get("days") or 1))


def enrol_inactive(session: Session, now: datetime | None = None) -> int:
    """Periodic: put members who have gone quiet into each active "no action for N days" journey.

    The caller commits. Returns how many members entered.
    """
    now = now or utcnow()
    entered = 0
    for journey in _active_journeys(session, JourneyTrigger.INACTIVE):
        for member_id in inactive_member_ids(session, journey, now):
            entered += enrol(session, journey.id, member_id, now)
    return entered
