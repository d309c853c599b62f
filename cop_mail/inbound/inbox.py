"""The coordinators' inbox: messages that need a person, and what they decide."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from cop_mail.audience.suppression import find_member_by_email
from cop_mail.db import utcnow
from cop_mail.models import InboundMessage, InboundStatus
from cop_mail.settings import Settings

FOLDERS = {
    "review": ("Needs you", (InboundStatus.NEEDS_REVIEW,)),
    "quarantine": ("Quarantined", (InboundStatus.QUARANTINED,)),
    "replies": ("Replies", (InboundStatus.PROCESSED,)),
    "discarded": ("Discarded", (InboundStatus.DISCARDED, InboundStatus.DUPLICATE)),
}
INTRO_INTENTS = ("accept", "decline", "later")
FOLLOWUP_INTENTS = ("met", "not_met", "skip")


class InboxError(ValueError):
    pass


@dataclass
class Page:
    messages: list[InboundMessage]
    total: int
    counts: dict[str, int]


def folder_page(session: Session, folder: str, page: int, size: int = 50) -> Page:
    statuses = FOLDERS[folder][1]
    where: list[ColumnElement[bool]] = [InboundMessage.status.in_(statuses)]
    if folder == "replies":
        where.append(InboundMessage.classification == "human")
    total = session.scalar(select(func.count(InboundMessage.id)).where(*where)) or 0
    messages = session.scalars(
        select(InboundMessage).where(*where).order_by(InboundMessage.id.desc()).limit(size).offset((page - 1) * size)
    ).all()
    counts = dict(session.execute(select(InboundMessage.status, func.count()).group_by(InboundMessage.status)).all())
    return Page(list(messages), total, {name: sum(counts.get(s, 0) for s in spec[1]) for name, spec in FOLDERS.items()})


def discard(message: InboundMessage, note: str) -> None:
    message.status = InboundStatus.DISCARDED
    message.reason = f"discarded by a coordinator: {note}".strip()[:2000]
    message.processed_at = utcnow()


def attach_to_member(session: Session, message: InboundMessage, email: str) -> int:
    member = find_member_by_email(session, email)
    if member is None:
        raise InboxError(f"No member has the address {email}.")
    message.member_id = member.id
    return member.id


def mark_intent(session: Session, settings: Settings, message: InboundMessage, intent: str) -> str:
    """A coordinator reads an unclear answer and says what it means; the workflow acts on it."""
    if message.subject_kind not in ("intro", "followup") or message.subject_id is None or message.member_id is None:
        raise InboxError("Only answers to an introduction or a follow-up can be marked.")
    allowed = INTRO_INTENTS if message.subject_kind == "intro" else FOLLOWUP_INTENTS
    if intent not in allowed:
        raise InboxError(f"Choose one of: {', '.join(allowed)}.")
    from cop_mail.connect import replies

    handle = replies.handle_intro_reply if message.subject_kind == "intro" else replies.handle_followup_reply
    outcome = handle(session, settings, message.subject_id, message.member_id, intent)
    message.intent = intent
    message.status = InboundStatus.PROCESSED
    message.reason = f"marked {intent} by a coordinator: {outcome}"[:2000]
    return str(outcome)
