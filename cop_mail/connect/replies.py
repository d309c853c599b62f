"""Answers that arrive by email, for the inbound processing to hand over.

The inbound side reads the reply address (`reply+<token>`: kind "intro" or "followup", the
introduction and the member), classifies the message (auto-replies never reach here) and the
intent of its visible text (cop_mail.inbound.intent), then calls:

    result = handle_intro_reply(session, settings, intro_id, member_id, intent, sender=from_address)
    result = handle_followup_reply(session, settings, intro_id, member_id, intent, sender=from_address)
    session.commit()
    mail.enqueue_intro_emails(redis, result.to_send)

Nothing here commits. `result.counted` is False when the reply changed nothing it could act on:
unclear (a coordinator decides in the inbox), or sent from another address than the member's
(a forwarded invitation must not accept on someone's behalf): `result.note` says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parseaddr
from enum import StrEnum

from sqlalchemy.orm import Session

from cop_mail.audience.suppression import InvalidEmail, normalise_email
from cop_mail.connect import workflow
from cop_mail.connect.states import find_intro
from cop_mail.inbound.intent import FollowupIntent, IntentResult, IntroIntent
from cop_mail.models import AnswerChannel, FollowupAnswer, IntroAnswer, Member
from cop_mail.settings import Settings


class ReplyOutcome(StrEnum):
    NEEDS_REVIEW = "needs_review"  # unclear: left for a coordinator
    SENDER_MISMATCH = "sender_mismatch"
    UNKNOWN_INTRO = "unknown_intro"


@dataclass
class ReplyResult:
    outcome: str  # a workflow AnswerOutcome / FollowupOutcome value, or a ReplyOutcome
    intro_id: int
    counted: bool
    note: str = ""
    to_send: list[int] = field(default_factory=list)


_INTRO_ANSWERS = {
    IntroIntent.ACCEPT: IntroAnswer.ACCEPT,
    IntroIntent.DECLINE: IntroAnswer.DECLINE,
    IntroIntent.LATER: IntroAnswer.LATER,
}
_FOLLOWUP_ANSWERS = {
    FollowupIntent.MET: FollowupAnswer.MET,
    FollowupIntent.NOT_MET: FollowupAnswer.NOT_MET,
    FollowupIntent.SKIP: FollowupAnswer.SKIP,
}
_UNCOUNTED = {"already_answered", "too_late", "closed", "not_invited", "not_a_party", "unavailable", "not_introduced"}


def handle_intro_reply(
    session: Session,
    settings: Settings,
    intro_id: int,
    member_id: int,
    intent: IntroIntent | IntentResult | str,
    *,
    sender: str | None = None,
    now: datetime | None = None,
) -> ReplyResult:
    """Apply a reply to an invitation: accept, decline or "not now"; unclear is left for a person."""
    refused = _refusal(session, intro_id, member_id, sender)
    if refused is not None:
        return refused
    wanted = _intent(intent)
    answer = _INTRO_ANSWERS.get(IntroIntent(wanted)) if wanted in IntroIntent._value2member_map_ else None
    if answer is None:
        return ReplyResult(ReplyOutcome.NEEDS_REVIEW, intro_id, False, "the reply does not clearly say yes or no")
    result = workflow.answer(session, settings, intro_id, member_id, answer, AnswerChannel.REPLY, now)
    return _result(result)


def handle_followup_reply(
    session: Session,
    settings: Settings,
    intro_id: int,
    member_id: int,
    intent: FollowupIntent | IntentResult | str,
    *,
    sender: str | None = None,
    now: datetime | None = None,
) -> ReplyResult:
    """Apply a reply to the follow-up: MET records the connection; NOT YET and SKIP are noted."""
    refused = _refusal(session, intro_id, member_id, sender)
    if refused is not None:
        return refused
    wanted = _intent(intent)
    answer = _FOLLOWUP_ANSWERS.get(FollowupIntent(wanted)) if wanted in FollowupIntent._value2member_map_ else None
    if answer is None:
        return ReplyResult(
            ReplyOutcome.NEEDS_REVIEW, intro_id, False, "the reply does not clearly say MET, NOT YET or SKIP"
        )
    return _result(workflow.answer_followup(session, intro_id, member_id, answer, AnswerChannel.REPLY, now))


def _intent(intent: IntroIntent | FollowupIntent | IntentResult | str) -> str:
    return str(intent.intent if isinstance(intent, IntentResult) else intent)


def _refusal(session: Session, intro_id: int, member_id: int, sender: str | None) -> ReplyResult | None:
    if find_intro(session, intro_id) is None:
        return ReplyResult(ReplyOutcome.UNKNOWN_INTRO, intro_id, False, f"introduction #{intro_id} does not exist")
    member = session.get(Member, member_id)
    if member is None:
        return ReplyResult(ReplyOutcome.UNKNOWN_INTRO, intro_id, False, f"member #{member_id} does not exist")
    if sender is not None and not same_address(sender, member.email):
        return ReplyResult(
            ReplyOutcome.SENDER_MISMATCH,
            intro_id,
            False,
            f"sent from another address than member #{member_id}'s; not counted until a coordinator checks it",
        )
    return None


def same_address(a: str, b: str) -> bool:
    return _normal(a) == _normal(b)


def _normal(address: str) -> str:
    address = parseaddr(address)[1] or address
    try:
        return normalise_email(address)
    except InvalidEmail:
        return address.strip().lower()


def _result(result: workflow.Result) -> ReplyResult:
    outcome = str(result.outcome)
    counted = outcome not in _UNCOUNTED
    return ReplyResult(
        outcome, result.intro_id, counted, "" if counted else f"nothing changed: {outcome}", list(result.to_send)
    )
