"""Moving members through journeys: claim due enrolments, take their steps in order, once each.

Protocol, per pass:
1. Stop, in bulk, the enrolments of members who can no longer be written to (unsubscribed from
   everything, bounced, complained, erased) or who left the list a journey is about.
2. Claim up to BATCH due enrolments of switched-on journeys with a lease (PostgreSQL: FOR UPDATE
   SKIP LOCKED; SQLite: one UPDATE ... WHERE id IN (SELECT ... LIMIT n), which holds the write
   lock), so two runners never work on the same member at once.
3. For each, take the journey's live steps by position, skipping the keys already run. A step's
   JourneyStepRun row is inserted and flushed before its side effect is recorded, and both commit
   together: a retried or concurrent runner meets the unique (enrolment, step key) and stops.
   Mail is enqueued only after that commit; a lost doorbell is found by the transactional and
   introduction reconcilers.
4. A wait stores its end time in `waits` the first time it is reached and sets next_run_at; an
   edit that wakes everyone up early changes nothing, because the stored end time still holds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, exists, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from cop_mail.db import is_postgres, utcnow
from cop_mail.journeys import definitions, steps
from cop_mail.models import (
    EnrolmentStatus,
    Journey,
    JourneyEnrolment,
    JourneyStep,
    JourneyStepRun,
    ListMembership,
    MailingList,
    Member,
    MemberStatus,
    StepKind,
    StepRunStatus,
)
from cop_mail.settings import Settings

log = logging.getLogger("cop_mail.journeys.runner")

BATCH = 200
LEASE = timedelta(minutes=10)
E = JourneyEnrolment
STOP_REASONS = {
    MemberStatus.PENDING: "the member has not confirmed their address",
    MemberStatus.UNSUBSCRIBED: "the member unsubscribed from everything",
    MemberStatus.BOUNCED: "mail to the member bounced",
    MemberStatus.COMPLAINED: "the member marked our mail as spam",
    MemberStatus.ERASED: "the member was erased",
}


@dataclass
class Pass:
    """What one pass did, and the mail to enqueue now that it is committed."""

    claimed: int = 0
    steps_taken: int = 0
    completed: int = 0
    stopped: int = 0
    transactional: list[int] = field(default_factory=list)
    intro_mail: list[int] = field(default_factory=list)


def advance_due(session: Session, settings: Settings, now: datetime | None = None, limit: int = BATCH) -> Pass:
    """One pass over the enrolments that are due; commits as it goes (one step per commit)."""
    now = now or utcnow()
    result = Pass()
    result.stopped = stop_unreachable(session, now)
    session.commit()
    ids = claim_due(session, now, limit)
    result.claimed = len(ids)
    for enrolment_id in ids:
        advance_one(session, settings, enrolment_id, now, result)
    return result


# --- stopping and claiming -------------------------------------------------------------------------


def _stop_values(reason: str, now: datetime) -> dict[str, Any]:
    return {
        "status": str(EnrolmentStatus.STOPPED),
        "stop_reason": reason,
        "finished_at": now,
        "next_run_at": None,
        "lease_until": None,
    }


def stop_unreachable(session: Session, now: datetime) -> int:
    """Stop every active enrolment whose member left; the caller commits."""
    stopped = 0
    for status, reason in STOP_REASONS.items():
        members = select(Member.id).where(Member.status == str(status))
        stopped += _update(session, E.member_id.in_(members), _stop_values(reason, now))
    for journey_id, list_id, list_name in _list_journeys(session):
        subscribed = exists().where(
            ListMembership.member_id == E.member_id,
            ListMembership.list_id == list_id,
            ListMembership.status == "subscribed",
        )
        reason = f"the member left the list “{list_name}”"
        stopped += _update(session, (E.journey_id == journey_id) & ~subscribed, _stop_values(reason, now))
    return stopped


def _list_journeys(session: Session) -> list[tuple[int, int, str]]:
    """(journey, list id, list name) for journeys about one list."""
    found = []
    for journey in session.scalars(select(Journey).where(Journey.trigger.in_(definitions.LIST_TRIGGERS))):
        list_id = (journey.trigger_config or {}).get("list_id")
        mailing_list = session.get(MailingList, list_id) if list_id else None
        if mailing_list is not None:
            found.append((journey.id, mailing_list.id, mailing_list.name))
    return found


def _update(session: Session, condition: Any, values: dict[str, Any]) -> int:
    statement = update(E).where(E.status == EnrolmentStatus.ACTIVE, condition).values(**values)
    statement = statement.execution_options(synchronize_session=False)
    result: CursorResult[Any] = session.execute(statement)  # type: ignore[assignment]
    return int(result.rowcount or 0)


def claim_due(session: Session, now: datetime, limit: int = BATCH) -> list[int]:
    """Lease up to `limit` due enrolments of switched-on journeys; commits."""
    on = select(Journey.id).where(Journey.active.is_(True))
    picked = (
        select(E.id)
        .where(
            E.status == EnrolmentStatus.ACTIVE,
            E.next_run_at <= now,
            E.journey_id.in_(on),
            or_(E.lease_until.is_(None), E.lease_until < now),
        )
        .order_by(E.next_run_at, E.id)
        .limit(limit)
    )
    if is_postgres(session):
        locked = picked.with_for_update(skip_locked=True).cte("picked").prefix_with("MATERIALIZED")
        statement = update(E).where(E.id == locked.c.id)
    else:
        statement = update(E).where(E.id.in_(picked.scalar_subquery()))
    claimed = session.execute(
        statement.values(lease_until=now + LEASE).returning(E.id).execution_options(synchronize_session=False)
    )
    ids = sorted(claimed.scalars().all())
    session.commit()
    return ids


# --- one member ----------------------------------------------------------------------------------


def advance_one(session: Session, settings: Settings, enrolment_id: int, now: datetime, result: Pass) -> None:
    """Take the member's due steps until a wait, the end, or a stop."""
    enrolment = session.get(E, enrolment_id, populate_existing=True)
    if enrolment is None or enrolment.status != EnrolmentStatus.ACTIVE:
        return
    journey = definitions.get_journey(session, enrolment.journey_id)
    taken = set(session.scalars(select(JourneyStepRun.step_key).where(JourneyStepRun.enrolment_id == enrolment.id)))
    for step in definitions.live_steps(session, journey.id):
        if step.key in taken:
            continue
        reason = stop_reason(session, journey, enrolment.member_id)
        if reason is not None:
            result.stopped += _finish(session, enrolment.id, _stop_values(reason, now))
            return
        if step.kind == StepKind.WAIT:
            if not _wait(session, enrolment, step, now):
                return
        elif not _take(session, settings, journey, enrolment, step, now, result):
            return
    done = {"status": str(EnrolmentStatus.COMPLETED), "finished_at": now, "next_run_at": None, "lease_until": None}
    result.completed += _finish(session, enrolment.id, done)


def stop_reason(session: Session, journey: Journey, member_id: int) -> str | None:
    """Why the member must leave the journey now, or None."""
    status = session.scalar(select(Member.status).where(Member.id == member_id))
    if status is None:
        return "the member no longer exists"
    if status != MemberStatus.ACTIVE:
        return STOP_REASONS.get(MemberStatus(status), f"the member is {status}")
    list_id = (journey.trigger_config or {}).get("list_id") if journey.trigger in definitions.LIST_TRIGGERS else None
    if list_id:
        on_list = session.scalar(
            select(ListMembership.status).where(
                ListMembership.member_id == member_id, ListMembership.list_id == list_id
            )
        )
        if on_list != "subscribed":
            name = session.scalar(select(MailingList.name).where(MailingList.id == list_id))
            return f"the member left the list “{name}”" if name else "the journey's list no longer exists"
    return None


def _finish(session: Session, enrolment_id: int, values: dict[str, Any]) -> int:
    """Complete or stop, only if still active: a bulk stop meanwhile is not overwritten."""
    changed = _update(session, E.id == enrolment_id, values)
    session.commit()
    return changed


def _wait(session: Session, enrolment: JourneyEnrolment, step: JourneyStep, now: datetime) -> bool:
    """True when the wait is over (and recorded as run); False when the member waits on."""
    stored = (enrolment.waits or {}).get(step.key)
    if stored is None:
        ends = now + timedelta(days=int((step.config or {}).get("days") or 1))
        enrolment.waits = {**(enrolment.waits or {}), step.key: ends.isoformat()}
        return _sleep(session, enrolment, ends)
    ends = datetime.fromisoformat(stored)
    if ends > now:
        return _sleep(session, enrolment, ends)
    run = _claim_step(session, enrolment, step, now)
    if run is None:
        return False
    run.detail = {"waited_until": stored}
    session.commit()
    return True


def _sleep(session: Session, enrolment: JourneyEnrolment, until: datetime) -> bool:
    enrolment.next_run_at = until
    enrolment.lease_until = None
    session.commit()
    return False


def _claim_step(
    session: Session, enrolment: JourneyEnrolment, step: JourneyStep, now: datetime
) -> JourneyStepRun | None:
    """Insert the step's run row now, before any side effect; None if another runner has it."""
    run = JourneyStepRun(
        enrolment_id=enrolment.id,
        journey_id=enrolment.journey_id,
        member_id=enrolment.member_id,
        step_key=step.key,
        kind=step.kind,
        status=str(StepRunStatus.DONE),
        detail={},
        ran_at=now,
    )
    session.add(run)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        log.info("enrolment %s: step %s was taken by another runner", enrolment.id, step.key)
        return None
    return run


def _take(
    session: Session,
    settings: Settings,
    journey: Journey,
    enrolment: JourneyEnrolment,
    step: JourneyStep,
    now: datetime,
    result: Pass,
) -> bool:
    """Take one step; False when the member should not go on in this pass."""
    enrolment_id, member_id, step_key, step_kind = enrolment.id, enrolment.member_id, step.key, step.kind
    run = _claim_step(session, enrolment, step, now)
    if run is None:
        return False
    member = session.get(Member, member_id)
    assert member is not None  # stop_reason has just seen them
    try:
        outcome = steps.perform(session, settings, journey, member, step, now)
    except SQLAlchemyError:
        raise  # the database is unwell: the lease runs out and a later pass tries again
    except Exception as exc:  # a step that cannot be taken is recorded, and the member moves on
        log.exception("enrolment %s: step %s (%s) failed", enrolment_id, step_key, step_kind)
        session.rollback()
        return _record_failure(session, enrolment_id, step_key, step_kind, journey.id, member_id, exc, now)
    run.status, run.detail = str(outcome.status), outcome.detail
    session.commit()
    result.steps_taken += 1
    result.transactional += outcome.transactional
    result.intro_mail += outcome.intro_mail
    return True


def _record_failure(
    session: Session,
    enrolment_id: int,
    step_key: str,
    kind: str,
    journey_id: int,
    member_id: int,
    exc: Exception,
    now: datetime,
) -> bool:
    session.add(
        JourneyStepRun(
            enrolment_id=enrolment_id,
            journey_id=journey_id,
            member_id=member_id,
            step_key=step_key,
            kind=kind,
            status=str(StepRunStatus.FAILED),
            detail={"reason": (str(exc) or type(exc).__name__)[:500]},
            ran_at=now,
        )
    )
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return False
    return True
