"""The introduction state machine: which changes are allowed, and recording each one.

A change is a compare-and-set UPDATE on the status the caller saw, so two requests racing
(a double click, a reply and a click at once) can never both move an introduction on: the
loser sees `False` and re-reads. Every change is recorded with its actor and time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Result, select, update
from sqlalchemy.orm import Session

from cop_mail.db import utcnow
from cop_mail.models import Intro, IntroStatus, IntroStatusChange

S = IntroStatus
_OPEN = {S.ACCEPTED_A, S.ACCEPTED_B, S.INTRODUCED, S.DECLINED, S.EXPIRED, S.CANCELLED}
ALLOWED: dict[IntroStatus, frozenset[IntroStatus]] = {
    S.PROPOSED: frozenset({S.INVITED, S.CANCELLED}),
    S.INVITED: frozenset(_OPEN),
    S.ACCEPTED_A: frozenset(_OPEN - {S.ACCEPTED_A, S.ACCEPTED_B}),
    S.ACCEPTED_B: frozenset(_OPEN - {S.ACCEPTED_A, S.ACCEPTED_B}),
    S.INTRODUCED: frozenset({S.MET, S.NOT_MET}),
    S.NOT_MET: frozenset({S.MET}),  # one said "not yet", the other later "we met"
    S.MET: frozenset(),
    S.DECLINED: frozenset(),
    S.EXPIRED: frozenset(),
    S.CANCELLED: frozenset(),
}


class IntroNotFound(LookupError):
    pass


class IntroStateError(ValueError):
    """A change the state machine does not allow; the message says so in plain words."""


def changed_rows(result: Result[Any]) -> int:
    """Rows an UPDATE changed (every UPDATE result is a cursor result; the type says otherwise)."""
    return cast(CursorResult[Any], result).rowcount


def get_intro(session: Session, intro_id: int) -> Intro:
    intro = session.get(Intro, intro_id)
    if intro is None:
        raise IntroNotFound(f"introduction #{intro_id} does not exist")
    return intro


def find_intro(session: Session, intro_id: int) -> Intro | None:
    return session.get(Intro, intro_id)


def can_change(from_status: str, to_status: str) -> bool:
    return IntroStatus(to_status) in ALLOWED[IntroStatus(from_status)]


def change_status(
    session: Session,
    intro: Intro,
    to: IntroStatus,
    actor: str,
    reason: str = "",
    *,
    at: datetime | None = None,
    **values: Any,
) -> bool:
    """Move `intro` from the status it has in memory to `to`; False if someone else moved it first.

    Raises IntroStateError for a change the machine never allows. `values` are other columns
    set in the same UPDATE (timestamps, answers).
    """
    seen = IntroStatus(intro.status)
    if not can_change(seen, to):
        raise IntroStateError(f"an introduction that is {seen} cannot become {to}")
    now = at or utcnow()
    changed = changed_rows(
        session.execute(
            update(Intro)
            .where(Intro.id == intro.id, Intro.status == str(seen))
            .values(status=str(to), updated_at=now, **values)
            .execution_options(synchronize_session=False)
        )
    )
    session.refresh(intro)
    if changed != 1:
        return False
    session.add(
        IntroStatusChange(
            intro_id=intro.id, from_status=str(seen), to_status=str(to), actor=actor, reason=reason, created_at=now
        )
    )
    session.flush()
    return True


def history(session: Session, intro_id: int) -> list[IntroStatusChange]:
    return list(
        session.scalars(
            select(IntroStatusChange).where(IntroStatusChange.intro_id == intro_id).order_by(IntroStatusChange.id)
        )
    )
