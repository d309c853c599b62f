"""What each kind of step does for one member, in the runner's transaction.

Each action records its side effect (a Delivery to send, an Intro with its invitations, a tag)
and returns an Outcome naming what to enqueue once the runner has committed. An action never
commits: the runner records the step's run in the same transaction, which is what makes a step
happen once however often a job is retried. Waits are the runner's own business.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import case, exists, or_, select
from sqlalchemy.orm import Session

from cop_mail.audience.suppression import member_can_receive, receivable_clause
from cop_mail.connect import candidates
from cop_mail.connect.matching import Candidate, RoundRules, propose_pairs
from cop_mail.connect.rounds import RoundError, introduce_by_hand
from cop_mail.journeys import messages
from cop_mail.models import (
    Intro,
    IntroStatus,
    Journey,
    JourneyStep,
    Member,
    StepKind,
    StepRunStatus,
    Stream,
    Tag,
    Value,
    member_values,
)
from cop_mail.settings import Settings

PARTNER_SAMPLE = 300  # members looked at when choosing someone to introduce; sharing a value first
# An introduction in one of these states means the member has been introduced (or is being asked).
INTRODUCED = (
    IntroStatus.INVITED,
    IntroStatus.ACCEPTED_A,
    IntroStatus.ACCEPTED_B,
    IntroStatus.INTRODUCED,
    IntroStatus.MET,
    IntroStatus.NOT_MET,
)


@dataclass
class Outcome:
    status: StepRunStatus
    detail: dict[str, Any] = field(default_factory=dict)
    transactional: list[int] = field(default_factory=list)  # Delivery ids: enqueue_transactional
    intro_mail: list[int] = field(default_factory=list)  # Delivery ids: connect.mail.enqueue_intro_emails


def done(**detail: Any) -> Outcome:
    return Outcome(StepRunStatus.DONE, detail)


def skipped(reason: str, **detail: Any) -> Outcome:
    return Outcome(StepRunStatus.SKIPPED, {"reason": reason, **detail})


def perform(
    session: Session, settings: Settings, journey: Journey, member: Member, step: JourneyStep, now: datetime
) -> Outcome:
    """Take one (non-wait) step for the member, unless its conditions say to skip it."""
    if (step.conditions or {}).get("skip_if_introduced") and already_introduced(session, member):
        return skipped("already introduced or connected")
    action = _ACTIONS.get(StepKind(step.kind))
    if action is None:
        raise ValueError(f"a {step.kind} step is taken by the runner, not here")
    return action(session, settings, journey, member, dict(step.config or {}), now)


def already_introduced(session: Session, member: Member) -> bool:
    if member.connections_count > 0:
        return True
    party = or_(Intro.member_a_id == member.id, Intro.member_b_id == member.id)
    statuses = [str(s) for s in INTRODUCED]
    return session.scalar(select(Intro.id).where(party, Intro.status.in_(statuses)).limit(1)) is not None


# --- the actions -----------------------------------------------------------------------------------


def send_template(
    session: Session, settings: Settings, journey: Journey, member: Member, config: dict[str, Any], now: datetime
) -> Outcome:
    delivery_id = messages.queue_message(session, settings, member, config)
    if delivery_id is None:
        return skipped("the member may not receive mail")
    return Outcome(StepRunStatus.DONE, {"delivery_id": delivery_id}, transactional=[delivery_id])


def offer_intro(
    session: Session, settings: Settings, journey: Journey, member: Member, config: dict[str, Any], now: datetime
) -> Outcome:
    """Invite the member and a fitting partner, with the same consent as any introduction."""
    if not member_can_receive(session, member.id, Stream.INTROS, now=now):
        return skipped("the member does not take part in introductions")
    partner_id = find_partner(session, member.id, now)
    if partner_id is None:
        return skipped("nobody fitting to introduce right now")
    actor = f"the journey “{journey.name}”"
    try:
        intro, to_send = introduce_by_hand(
            session, settings, member.id, partner_id, actor, str(config.get("note", "")), now
        )
    except RoundError as exc:
        return skipped(str(exc))
    if intro.status == IntroStatus.CANCELLED:
        return skipped(intro.closed_reason or "the introduction was cancelled", intro_id=intro.id)
    return Outcome(StepRunStatus.DONE, {"intro_id": intro.id, "partner_id": partner_id}, intro_mail=to_send)


def story_prompt(
    session: Session, settings: Settings, journey: Journey, member: Member, config: dict[str, Any], now: datetime
) -> Outcome:
    if not member_can_receive(session, member.id, Stream.ROUNDUPS, now=now):
        return skipped("the member turned story prompts off")
    value = _prompt_value(session, member, config.get("value_id"))
    delivery_id = messages.queue_story_prompt(
        session, member, str(config.get("question", "")), str(config.get("note", "")), value
    )
    if delivery_id is None:
        return skipped("the member may not receive mail")
    return Outcome(StepRunStatus.DONE, {"delivery_id": delivery_id, "value": value or ""}, transactional=[delivery_id])


def add_tag(
    session: Session, settings: Settings, journey: Journey, member: Member, config: dict[str, Any], now: datetime
) -> Outcome:
    tag = session.get(Tag, int(config.get("tag_id") or 0))
    if tag is None:
        return skipped("the tag no longer exists")
    if any(t.id == tag.id for t in member.tags):
        return done(tag=tag.name, already=True)
    member.tags.append(tag)
    session.flush()
    return done(tag=tag.name)


_ACTIONS = {
    StepKind.SEND_TEMPLATE: send_template,
    StepKind.OFFER_INTRO: offer_intro,
    StepKind.STORY_PROMPT: story_prompt,
    StepKind.ADD_TAG: add_tag,
}


# --- helpers ---------------------------------------------------------------------------------------


def _prompt_value(session: Session, member: Member, value_id: Any) -> str | None:
    """The step's value, else one the member holds, else the community's first."""
    if value_id:
        chosen = session.get(Value, int(value_id))
        if chosen is not None:
            return chosen.name
    if member.values:
        return sorted(member.values, key=lambda v: (v.position, v.name))[0].name
    return session.scalar(select(Value.name).order_by(Value.position, Value.name).limit(1))


def find_partner(session: Session, member_id: int, now: datetime) -> int | None:
    """The best partner for one member, scored pair by pair exactly as an introduction round would
    (cadence, pauses and past pairs respected), among a sample that puts shared values first."""
    found = candidates.load_candidates(session, [member_id], now)
    if not found:
        return None
    me = found[0]
    past = candidates.past_pairs(session, member_id=member_id)
    rules = RoundRules(now=now, max_pairs=1, past_pairs=past, seed=member_id)
    best: tuple[float, int] | None = None
    for other in candidates.load_candidates(session, _partner_sample(session, member_id, now), now):
        score = _pair_score(me, other, rules)
        if score is not None and (best is None or score > best[0]):  # ties keep the earlier in the sample
            best = (score, other.member_id)
    return None if best is None else best[1]


def _pair_score(me: Candidate, other: Candidate, rules: RoundRules) -> float | None:
    proposals = propose_pairs([me, other], rules).proposals
    return proposals[0].score if proposals else None


def _partner_sample(session: Session, member_id: int, now: datetime) -> list[int]:
    mine = select(member_values.c.value_id).where(member_values.c.member_id == member_id)
    shares = exists().where(member_values.c.member_id == Member.id, member_values.c.value_id.in_(mine))
    statement = (
        select(Member.id)
        .where(receivable_clause(Stream.INTROS, now=now), Member.id != member_id)
        .order_by(case((shares, 0), else_=1), Member.connections_count.desc(), Member.id)
        .limit(PARTNER_SAMPLE)
    )
    return list(session.scalars(statement))
