"""The global suppression list, and who may receive which mail right now.

Suppressed addresses are stored only as hashes (cop_mail.tokens.address_hash of
the normalised address), so an erased member stays suppressed without keeping
their address. Suppression wins over every import, signup and preference.

`suppress()` also moves a member with that address out of "active" (bounced,
complained, erased or unsubscribed); `receivable_clause()` checks both the status
and the hash (Member.email_hash), so a suppression wins even when it was added for
an address before its member existed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any, cast

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import ColumnElement, CursorResult, and_, delete, exists, or_, select, true
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from cop_mail.audience.consent import MemberEventKind, record_member_event
from cop_mail.db import is_postgres, utcnow
from cop_mail.models import ListMembership, Member, MemberStatus, Stream, Suppression
from cop_mail.models.audience import BLOCKED_STATUSES
from cop_mail.tokens import address_hash


class InvalidEmail(ValueError):
    """An address that is not a valid email address; the message says why in plain words."""


class SuppressionReason(StrEnum):
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    ERASED = "erased"
    MANUAL = "manual"
    IMPORTED = "imported"  # a suppression list brought over from another tool


# The status a member takes when their address is suppressed for each reason.
_STATUS_FOR_REASON = {
    SuppressionReason.BOUNCED: MemberStatus.BOUNCED,
    SuppressionReason.COMPLAINED: MemberStatus.COMPLAINED,
    SuppressionReason.ERASED: MemberStatus.ERASED,
    SuppressionReason.MANUAL: MemberStatus.UNSUBSCRIBED,
    SuppressionReason.IMPORTED: MemberStatus.UNSUBSCRIBED,
}

# Which Member column turns each stream on or off.
STREAM_FLAGS = {
    Stream.NEWSLETTERS: Member.wants_newsletters,
    Stream.INTROS: Member.wants_intros,
    Stream.ROUNDUPS: Member.wants_roundups,
    Stream.RESOURCES: Member.wants_resources,
}
# Mail a member asked for by acting (a confirmation, a manage link) still reaches an
# unsubscribed or pending address; never a bounced, complained or erased one.
TRANSACTIONAL_STATUSES = (MemberStatus.ACTIVE, MemberStatus.PENDING, MemberStatus.UNSUBSCRIBED)


def normalise_email(raw: str) -> str:
    """Syntax check (no DNS) and one spelling per address: lower case, Unicode domain (NFC)."""
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise InvalidEmail(str(exc)) from exc


def suppression_hash(email: str) -> str:
    """Hash of an address in its normalised spelling, so `xn--` and Unicode domains match."""
    text = email.strip()
    if text.isascii() and "xn--" not in text.lower():
        return address_hash(text)
    try:
        return address_hash(normalise_email(text))
    except InvalidEmail:
        return address_hash(text)


def suppress(session: Session, email: str, reason: SuppressionReason | str) -> bool:
    """Add an address to the suppression list (idempotent) and stop mail to its member.

    Returns True when the address was not suppressed before.
    """
    reason = SuppressionReason(reason)
    digest = suppression_hash(email)
    insert = pg_insert(Suppression) if is_postgres(session) else sqlite_insert(Suppression)
    statement = (
        insert.values(email_hash=digest, reason=str(reason), created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["email_hash"])
        .returning(Suppression.id)
    )
    added = session.execute(statement).first() is not None
    member = find_member_by_email(session, email)
    if member is not None and member.status not in BLOCKED_STATUSES:
        member.status = _STATUS_FOR_REASON[reason]
        record_member_event(session, member.id, MemberEventKind.SUPPRESSED, reason=str(reason))
    return added


def is_suppressed(session: Session, email: str) -> bool:
    return session.scalar(select(Suppression.id).where(Suppression.email_hash == suppression_hash(email))) is not None


def suppression_reason(session: Session, email: str) -> str | None:
    return session.scalar(select(Suppression.reason).where(Suppression.email_hash == suppression_hash(email)))


def suppressed_hashes(session: Session, hashes: Iterable[str], chunk: int = 500) -> set[str]:
    """Which of these hashes are suppressed: one query per chunk, for imports."""
    wanted = list(dict.fromkeys(hashes))
    found: set[str] = set()
    for start in range(0, len(wanted), chunk):
        part = wanted[start : start + chunk]
        found.update(session.scalars(select(Suppression.email_hash).where(Suppression.email_hash.in_(part))))
    return found


def lift_suppression(session: Session, email: str) -> bool:
    """For an owner who knows the address is deliverable again. Member status is left alone."""
    statement = delete(Suppression).where(Suppression.email_hash == suppression_hash(email))
    return cast(CursorResult[Any], session.execute(statement)).rowcount > 0


def find_member_by_email(session: Session, email: str) -> Member | None:
    try:
        address = normalise_email(email)
    except InvalidEmail:
        address = email.strip().lower()
    return session.scalar(select(Member).where(Member.email == address))


def receivable_clause(
    stream: Stream | str, *, list_ids: Iterable[int] | None = None, now: datetime | None = None
) -> ColumnElement[bool]:
    """SQL condition on Member: may this member receive mail of `stream` right now?

    Use it when planning and again when claiming rows to send, so an unsubscribe,
    a pause or a suppression takes effect for mail not yet sent.
    """
    stream = Stream(stream)
    if stream is Stream.TRANSACTIONAL:
        condition: ColumnElement[bool] = Member.status.in_([str(s) for s in TRANSACTIONAL_STATUSES])
    else:
        moment = now or utcnow()
        condition = and_(
            Member.status == str(MemberStatus.ACTIVE),
            STREAM_FLAGS[stream].is_(true()),
            or_(Member.paused_until.is_(None), Member.paused_until <= moment),
        )
        if stream is Stream.INTROS:
            condition = and_(condition, Member.intro_cadence_weeks.is_not(None))
    condition = and_(condition, ~exists().where(Suppression.email_hash == Member.email_hash))
    if list_ids is not None:
        condition = and_(condition, on_lists_clause(list_ids))
    return condition


def on_lists_clause(list_ids: Iterable[int]) -> ColumnElement[bool]:
    """SQL condition on Member: subscribed (confirmed) to at least one of these lists."""
    return exists().where(
        ListMembership.member_id == Member.id,
        ListMembership.list_id.in_(list(list_ids)),
        ListMembership.status == "subscribed",
    )


def member_can_receive(
    session: Session,
    member_id: int,
    stream: Stream | str,
    *,
    list_ids: Iterable[int] | None = None,
    now: datetime | None = None,
) -> bool:
    """One member, checked at send time: status, stream, pause, lists and the suppression hash."""
    email = session.scalar(
        select(Member.email).where(Member.id == member_id, receivable_clause(stream, list_ids=list_ids, now=now))
    )
    # Also by the normalised spelling, for an address stored before normalisation (IDN domains).
    return email is not None and not is_suppressed(session, email)
