"""Introduction rounds: create, propose, review by hand, send; recurring rounds; introductions by hand.

A round goes draft -> reviewing (proposals made; swap, remove and add by hand, propose again)
-> sending (a job invites pair after pair) -> sent. Proposals are Intro rows in status
`proposed`; a proposal removed in review is kept as `cancelled`, so proposing again does not
bring the same pair back. Functions never commit; what must follow a commit (enqueueing the
round's job or its mail) is the caller's.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from cop_mail.audience.segments import get_segment
from cop_mail.connect import candidates, schedule, workflow
from cop_mail.connect.matching import MatchResult, Proposal, RoundKind, RoundRules, propose_pairs
from cop_mail.connect.states import change_status, changed_rows
from cop_mail.db import utcnow
from cop_mail.models import Intro, IntroKind, IntroRound, IntroStatus, Member, RoundStatus
from cop_mail.settings import Settings

MAX_PAIRS = 5000
SEND_CHUNK = 200  # invitations per transaction while a round sends
S = IntroStatus


class RoundError(ValueError):
    """A round action that cannot be done; the message says why in plain words."""


def get_round(session: Session, round_id: int) -> IntroRound:
    found = session.get(IntroRound, round_id)
    if found is None:
        raise RoundError(f"round #{round_id} does not exist")
    return found


def find_round(session: Session, round_id: int) -> IntroRound | None:
    return session.get(IntroRound, round_id)


# --- rules ---------------------------------------------------------------------------------------


def clean_rules(raw: dict[str, Any]) -> dict[str, Any]:
    """Coordinator constraints in one canonical shape; RoundError lists every problem at once."""
    problems: list[str] = []
    rules: dict[str, Any] = {
        "same_language": bool(raw.get("same_language")),
        "same_location": bool(raw.get("same_location")),
        "timezone_window_hours": None,
        "never_pairs": [],
    }
    window = raw.get("timezone_window_hours")
    if window not in (None, ""):
        try:
            rules["timezone_window_hours"] = int(window)
            if not 0 <= rules["timezone_window_hours"] <= 12:
                raise ValueError
        except (TypeError, ValueError):
            problems.append("the time-zone window must be a whole number of hours from 0 to 12")
    for pair in raw.get("never_pairs") or []:
        try:
            a, b = (int(x) for x in pair)
            if a == b:
                raise ValueError
            rules["never_pairs"].append(sorted((a, b)))
        except (TypeError, ValueError):
            problems.append(f"'never pair' {pair!r} must name two different members")
    if problems:
        raise RoundError("; ".join(problems))
    return rules


def round_rules(round_: IntroRound, now: datetime, past: set[frozenset[int]]) -> RoundRules:
    rules = round_.rules or {}
    window = rules.get("timezone_window_hours")
    return RoundRules(
        now=now,
        max_pairs=round_.max_pairs,
        kind=RoundKind(round_.kind),
        seed=round_.seed,
        same_language=bool(rules.get("same_language")),
        same_location=bool(rules.get("same_location")),
        timezone_window_minutes=None if window is None else int(window) * 60,
        never_pairs={frozenset(pair) for pair in rules.get("never_pairs") or []},
        past_pairs=past,
    )


# --- creating and proposing ------------------------------------------------------------------------


def create_round(
    session: Session,
    *,
    name: str,
    created_by: str,
    kind: str = IntroKind.PEER,
    segment_id: int | None = None,
    max_pairs: int = 20,
    rules: dict[str, Any] | None = None,
    note: str = "",
    seed: str | None = None,
    schedule_rule: str | None = None,
    schedule_timezone: str = "UTC",
    auto_send: bool = False,
    now: datetime | None = None,
) -> IntroRound:
    now = now or utcnow()
    if not name.strip():
        raise RoundError("give the round a name")
    if not 1 <= max_pairs <= MAX_PAIRS:
        raise RoundError(f"a round can propose from 1 to {MAX_PAIRS} pairs")
    if segment_id is not None:
        get_segment(session, segment_id)
    round_ = IntroRound(
        name=name.strip()[:200],
        kind=str(IntroKind(kind)),
        segment_id=segment_id,
        max_pairs=max_pairs,
        rules=clean_rules(rules or {}),
        note=note.strip(),
        seed=(seed or now.strftime("%Y%m%d%H%M%S"))[:50],
        created_by=created_by,
        created_at=now,
        auto_send=auto_send,
    )
    session.add(round_)
    session.flush()
    if schedule_rule:
        set_schedule(session, round_, schedule_rule, schedule_timezone, auto_send, now=now)
    return round_


def set_schedule(
    session: Session, round_: IntroRound, rule: str | None, timezone: str, auto_send: bool, now: datetime | None = None
) -> None:
    """Make the round repeat (rule) or stop repeating (None)."""
    now = now or utcnow()
    if not rule:
        round_.schedule, round_.next_run_at = None, None
        return
    next_at = schedule.next_run(rule, timezone, round_.created_at, now)
    if next_at is None:
        raise schedule.ScheduleError("that schedule never runs again")
    round_.schedule, round_.schedule_timezone = rule, timezone
    round_.next_run_at, round_.auto_send = next_at, auto_send
    session.flush()


def propose(session: Session, round_id: int, now: datetime | None = None) -> MatchResult:
    """(Re)compute the round's proposals from the rules; hand-made changes are replaced, removals kept."""
    now = now or utcnow()
    round_ = get_round(session, round_id)
    if round_.status not in (RoundStatus.DRAFT, RoundStatus.REVIEWING):
        raise RoundError(f"round #{round_id} is {round_.status}: its proposals can no longer change")
    session.execute(delete(Intro).where(Intro.round_id == round_id, Intro.status == S.PROPOSED))
    pool = candidates.load_candidates(session, candidates.audience_ids(session, round_.segment_id, now), now)
    past = candidates.past_pairs(session, exclude_round_id=round_id)
    result = propose_pairs(pool, round_rules(round_, now, past))
    rows = [_proposal_row(round_, p, now) for p in result.proposals]
    if rows:
        session.execute(insert(Intro), rows)
    round_.unmatched = [{"member_id": u.member_id, "reason": str(u.reason)} for u in result.unmatched]
    round_.status = RoundStatus.REVIEWING
    round_.proposed_at = now
    session.flush()
    return result


def _proposal_row(round_: IntroRound, p: Proposal, now: datetime, created_by: str = "matching") -> dict[str, Any]:
    return {
        "kind": round_.kind,
        "round_id": round_.id,
        "member_a_id": p.a_id,
        "member_b_id": p.b_id,
        "status": str(S.PROPOSED),
        "reason": p.reason,
        "score": p.score,
        "periphery": p.periphery,
        "shared_values": list(p.shared_values),
        "topics": list(p.topics),
        "note": round_.note,
        "closed_reason": "",
        "created_by": created_by,
        "created_at": now,
        "updated_at": now,
    }


def proposals(session: Session, round_id: int) -> list[Intro]:
    return list(session.scalars(select(Intro).where(Intro.round_id == round_id).order_by(Intro.id)))


# --- review by hand -------------------------------------------------------------------------------


def _reviewing(session: Session, round_id: int) -> IntroRound:
    round_ = get_round(session, round_id)
    if round_.status != RoundStatus.REVIEWING:
        raise RoundError(f"round #{round_id} is {round_.status}: only a round under review can change")
    return round_


def _proposal(session: Session, round_id: int, intro_id: int) -> Intro:
    intro = session.get(Intro, intro_id)
    if intro is None or intro.round_id != round_id or intro.status != S.PROPOSED:
        raise RoundError(f"pair #{intro_id} is not an open proposal of this round")
    return intro


def remove_proposal(session: Session, round_id: int, intro_id: int, actor: str) -> Intro:
    _reviewing(session, round_id)
    intro = _proposal(session, round_id, intro_id)
    change_status(
        session,
        intro,
        S.CANCELLED,
        actor,
        "removed in review",
        closed_at=utcnow(),
        closed_reason=f"removed in review by {actor}",
    )
    return intro


def swap_member(session: Session, round_id: int, intro_id: int, old_id: int, new_id: int, actor: str) -> Intro:
    """Put `new_id` in `old_id`'s place; if `new_id` is in another proposal, the two trade places."""
    round_ = _reviewing(session, round_id)
    intro = _proposal(session, round_id, intro_id)
    if intro.side_of(old_id) is None:
        raise RoundError(f"member {old_id} is not in pair #{intro_id}")
    if intro.side_of(new_id) is not None:
        raise RoundError("that member is already in this pair")
    other = session.scalar(
        select(Intro).where(
            Intro.round_id == round_id,
            Intro.status == S.PROPOSED,
            (Intro.member_a_id == new_id) | (Intro.member_b_id == new_id),
        )
    )
    keep = intro.other_id(old_id)
    _check_pair(session, keep, new_id, round_id)
    if other is not None:
        _check_pair(session, other.other_id(new_id), old_id, round_id)
        _repair(session, round_, other, other.other_id(new_id), old_id, actor)
    _repair(session, round_, intro, keep, new_id, actor)
    return intro


def add_pair(session: Session, round_id: int, a_id: int, b_id: int, actor: str) -> Intro:
    round_ = _reviewing(session, round_id)
    busy = session.scalar(
        select(func.count())
        .select_from(Intro)
        .where(
            Intro.round_id == round_id,
            Intro.status == S.PROPOSED,
            Intro.member_a_id.in_([a_id, b_id]) | Intro.member_b_id.in_([a_id, b_id]),
        )
    )
    if busy:
        raise RoundError("one of them is already in a pair of this round; swap instead")
    _check_pair(session, a_id, b_id, round_id)
    facts = pair_facts(session, a_id, b_id)
    intro = Intro(**_proposal_row(round_, facts, utcnow(), created_by=actor))
    intro.reason = f"Added by hand by {actor}" + (f"; {facts.reason}" if facts.reason else "")
    session.add(intro)
    session.flush()
    return intro


def _repair(session: Session, round_: IntroRound, intro: Intro, a_id: int, b_id: int, actor: str) -> None:
    facts = pair_facts(session, a_id, b_id)
    intro.member_a_id, intro.member_b_id = a_id, b_id
    intro.reason = f"Swapped by hand by {actor}" + (f"; {facts.reason}" if facts.reason else "")
    intro.shared_values, intro.periphery, intro.score = list(facts.shared_values), facts.periphery, facts.score
    intro.created_by = actor
    session.flush()


def _check_pair(session: Session, a_id: int, b_id: int, round_id: int | None) -> None:
    if a_id == b_id:
        raise RoundError("a member cannot be introduced to themselves")
    if len(session.scalars(select(Member.id).where(Member.id.in_([a_id, b_id]))).all()) != 2:
        raise RoundError("both members must exist")
    if frozenset((a_id, b_id)) in candidates.past_pairs(session, exclude_round_id=round_id):
        raise RoundError("these two have been introduced or proposed before, or are already connected")


def pair_facts(session: Session, a_id: int, b_id: int, now: datetime | None = None) -> Proposal:
    """The plain-words reason and shared values matching would give this pair, ignoring cadence and pauses."""
    now = now or utcnow()
    pool = [
        dataclasses.replace(c, cadence_weeks=4, last_intro_at=None, paused_until=None)
        for c in candidates.load_candidates(session, [a_id, b_id], now)
    ]
    found = propose_pairs(pool, RoundRules(now=now, max_pairs=1)).proposals
    if not found:
        return Proposal(a_id, b_id, 0.0, "")
    p = found[0]
    # Keep the coordinator's order: A is who they named first.
    return p if p.a_id == a_id else dataclasses.replace(p, a_id=a_id, b_id=b_id)


# --- sending ----------------------------------------------------------------------------------------


def start_sending(session: Session, round_id: int) -> IntroRound:
    """Mark the round for sending; the caller commits, then enqueues `send_round_job`."""
    round_ = _reviewing(session, round_id)
    open_count = session.scalar(
        select(func.count()).select_from(Intro).where(Intro.round_id == round_id, Intro.status == S.PROPOSED)
    )
    if not open_count:
        raise RoundError("the round has no pairs to send; propose or add some first")
    round_.status = RoundStatus.SENDING
    session.flush()
    return round_


def send_chunk(
    session: Session, settings: Settings, round_id: int, actor: str, now: datetime | None = None
) -> tuple[list[int], bool]:
    """Invite up to SEND_CHUNK pairs of a sending round; (delivery ids, more left). The caller commits."""
    round_ = get_round(session, round_id)
    if round_.status != RoundStatus.SENDING:
        return [], False
    batch = session.scalars(
        select(Intro).where(Intro.round_id == round_id, Intro.status == S.PROPOSED).order_by(Intro.id).limit(SEND_CHUNK)
    ).all()
    ids: list[int] = []
    for intro in batch:
        ids += workflow.invite(session, settings, intro, actor, now, check_cadence=True)
    if len(batch) < SEND_CHUNK:
        round_.status, round_.sent_at = RoundStatus.SENT, now or utcnow()
        session.flush()
        return ids, False
    return ids, True


# --- introductions by hand ------------------------------------------------------------------------


def introduce_by_hand(
    session: Session,
    settings: Settings,
    a_id: int,
    b_id: int,
    actor: str,
    note: str = "",
    now: datetime | None = None,
    *,
    requested_by: int | None = None,
) -> tuple[Intro, list[int]]:
    """A coordinator's own introduction: invited at once, with the same consent as any other.

    `requested_by` (a or b) asked to meet the other (e.g. "meet the storyteller"): see workflow.invite.
    """
    now = now or utcnow()
    if a_id == b_id:
        raise RoundError("a member cannot be introduced to themselves")
    if len(session.scalars(select(Member.id).where(Member.id.in_([a_id, b_id]))).all()) != 2:
        raise RoundError("both members must exist")
    pair = (Intro.member_a_id.in_([a_id, b_id])) & (Intro.member_b_id.in_([a_id, b_id]))
    waiting = [str(s) for s in (S.PROPOSED, *workflow.OPEN, S.INTRODUCED)]
    if session.scalar(select(Intro.id).where(pair, Intro.status.in_(waiting))):
        raise RoundError("these two already have an introduction under way")
    facts = pair_facts(session, a_id, b_id, now)
    intro = Intro(
        kind=str(IntroKind.PEER),
        member_a_id=a_id,
        member_b_id=b_id,
        status=str(S.PROPOSED),
        reason=f"Introduced by hand by {actor}" + (f"; {facts.reason}" if facts.reason else ""),
        score=facts.score,
        periphery=facts.periphery,
        shared_values=list(facts.shared_values),
        topics=[],
        note=note.strip(),
        created_by=actor,
        created_at=now,
    )
    session.add(intro)
    session.flush()
    return intro, workflow.invite(session, settings, intro, actor, now, requested_by=requested_by)


# --- recurring rounds -------------------------------------------------------------------------------


def run_recurring(session: Session, now: datetime | None = None) -> list[IntroRound]:
    """Copy every recurring round that is due and propose the copy; returns the copies made.

    Safe to run twice: the due time moves on by compare-and-set, and a copy is unique per
    (round, due time). Copies with `auto_send` come back in status sending: enqueue their job.
    """
    now = now or utcnow()
    due = session.scalars(
        select(IntroRound)
        .where(IntroRound.schedule.is_not(None), IntroRound.next_run_at <= now)
        .order_by(IntroRound.id)
    ).all()
    made = []
    for template in due:
        seen = template.next_run_at
        assert seen is not None and template.schedule is not None
        following = schedule.next_run(template.schedule, template.schedule_timezone, template.created_at, now)
        moved = changed_rows(
            session.execute(
                update(IntroRound)
                .where(IntroRound.id == template.id, IntroRound.next_run_at == seen)
                .values(next_run_at=following)
                .execution_options(synchronize_session=False)
            )
        )
        if moved != 1:
            continue
        made.append(_copy_and_propose(session, template, seen, now))
    return made


def _copy_and_propose(session: Session, template: IntroRound, due_at: datetime, now: datetime) -> IntroRound:
    copy = IntroRound(
        name=f"{template.name} · {due_at:%Y-%m-%d}"[:200],
        kind=template.kind,
        segment_id=template.segment_id,
        max_pairs=template.max_pairs,
        rules=dict(template.rules or {}),
        note=template.note,
        seed=f"{template.seed}:{due_at:%Y%m%d}"[:50],
        parent_id=template.id,
        due_at=due_at,
        created_by=f"schedule of round #{template.id}",
        created_at=now,
    )
    session.add(copy)
    session.flush()
    propose(session, copy.id, now)
    if template.auto_send and session.scalar(
        select(func.count()).select_from(Intro).where(Intro.round_id == copy.id, Intro.status == S.PROPOSED)
    ):
        copy.status = RoundStatus.SENDING
    return copy
