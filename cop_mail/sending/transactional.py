"""Transactional mail: one templated message to one member, sent now from the HIGH queue.

Recording: each message is its own Campaign (kind "transactional", content
{"template": kind, "context": {...ids}}) with one Delivery row. The Delivery row is
what the delivery log, bounce handling (VERP token = delivery id) and the GDPR
export read; one campaign per message because a campaign holds at most one Delivery
per member, and a member may ask for several confirmations or manage links.

Flow: `queue_transactional` (in the caller's transaction) -> commit ->
`enqueue_transactional` -> `send_transactional_job` -> `deliver_transactional`.
A lost job is found again by `reconcile_transactional_job` (periodic): nothing
recorded is lost. A message cut off mid-send is sent again: for a confirmation, a
rare duplicate is better than a missing one.
"""

from __future__ import annotations

import importlib
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parseaddr
from enum import StrEnum
from typing import Any, cast

from email_validator import EmailNotValidError, validate_email
from redis import Redis
from sqlalchemy import CursorResult, or_, select, update
from sqlalchemy.orm import Session

from cop_mail.audience import links
from cop_mail.audience.suppression import SuppressionReason, member_can_receive, suppress
from cop_mail.db import utcnow
from cop_mail.models import (
    Campaign,
    CampaignKind,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    MailingList,
    Member,
    Stream,
)
from cop_mail.queues import HIGH, enqueue
from cop_mail.rendering import RECIPIENT_FIELDS, compile_email
from cop_mail.sending.dkim_signer import signer_for
from cop_mail.sending.mime import MessageSkeleton, make_message_id
from cop_mail.sending.smtp import Outcome, Reply, SmtpConfig, SmtpMessenger
from cop_mail.settings import Settings
from cop_mail.tokens import make_address_token

log = logging.getLogger("cop_mail.sending.transactional")

LEASE = timedelta(minutes=5)
# A queued row whose job has not started after this long lost its job (Redis restart).
LOST_JOB_AFTER = timedelta(minutes=2)
BACKOFF = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1), timedelta(hours=4))
MAX_ATTEMPTS = len(BACKOFF) + 1


class TransactionalKind(StrEnum):
    CONFIRM_SUBSCRIPTION = "confirm_subscription"
    MANAGE_LINK = "manage_link"


class TransactionalError(RuntimeError):
    pass


@dataclass(frozen=True)
class Outgoing:
    """A message ready for SMTP."""

    raw: bytes
    message_id: str
    mail_from: str
    to: str


# kind -> function(session, settings, member, stored context) -> template context.
ContextBuilder = Callable[[Session, Settings, Member, dict[str, Any]], dict[str, Any]]
CONTEXT_BUILDERS: dict[str, ContextBuilder] = {}


# Packages that register kinds; imported before composing so every worker knows every kind.
BUILDER_MODULES = ("cop_mail.stories.notify", "cop_mail.journeys.messages")


def load_builders() -> None:
    for module in BUILDER_MODULES:
        importlib.import_module(module)


def context_builder(kind: str) -> Callable[[ContextBuilder], ContextBuilder]:
    """Register how a kind's stored ids become its template context (other packages add kinds)."""

    def register(function: ContextBuilder) -> ContextBuilder:
        CONTEXT_BUILDERS[kind] = function
        return function

    return register


def queue_transactional(session: Session, kind: str, member_id: int, context: dict[str, Any]) -> int | None:
    """Record a message to send; returns the Delivery id to enqueue after commit.

    None when the member may not receive mail at all (bounced, complained, erased or
    suppressed): nothing is recorded then. `context` holds plain ids and strings.
    """
    if not member_can_receive(session, member_id, Stream.TRANSACTIONAL):
        return None
    now = utcnow()
    campaign = Campaign(
        kind=CampaignKind.TRANSACTIONAL,
        name=f"{kind} to member {member_id}",
        status=CampaignStatus.SENDING,
        content={"template": str(kind), "context": context},
        list_ids=[],
        segment_ids=[],
        created_by="system",
        started_at=now,
        planned_at=now,
    )
    session.add(campaign)
    session.flush()
    delivery = Delivery(campaign_id=campaign.id, member_id=member_id, status=DeliveryStatus.QUEUED, next_attempt_at=now)
    session.add(delivery)
    session.flush()
    return delivery.id


def enqueue_transactional(connection: Redis, delivery_id: int) -> None:
    """Ring the doorbell; if Redis is down the reconciler sends it later."""
    try:
        enqueue(connection, _job(), delivery_id, queue=HIGH, retries=0)
    except Exception:  # a lost doorbell is recovered by the periodic reconcile job
        log.warning("could not enqueue transactional delivery %s; the reconciler will", delivery_id, exc_info=True)


def _job() -> Callable[..., Any]:
    from cop_mail.sending.transactional_jobs import send_transactional_job

    return send_transactional_job


def _claim(session: Session, delivery_id: int, now: datetime) -> bool:
    statement = (
        update(Delivery)
        .where(
            Delivery.id == delivery_id,
            Delivery.status.in_([DeliveryStatus.QUEUED, DeliveryStatus.DEFERRED]),
            or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now),
        )
        .values(
            status=DeliveryStatus.SENDING,
            attempts=Delivery.attempts + 1,
            lease_until=now + LEASE,
            claimed_by=socket.gethostname()[:100],
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    claimed = cast(CursorResult[Any], session.execute(statement)).rowcount == 1
    session.commit()
    return claimed


def deliver_transactional(
    session: Session, settings: Settings, delivery_id: int, *, messenger: SmtpMessenger | None = None
) -> str:
    """Send one recorded message if it is due; safe to call twice. Returns the row's status."""
    now = utcnow()
    if not _claim(session, delivery_id, now):
        return str(session.scalar(select(Delivery.status).where(Delivery.id == delivery_id)) or "missing")
    delivery = session.get(Delivery, delivery_id, populate_existing=True)
    assert delivery is not None
    campaign = session.get(Campaign, delivery.campaign_id)
    member = session.get(Member, delivery.member_id) if delivery.member_id else None
    if campaign is None or campaign.kind != CampaignKind.TRANSACTIONAL:
        raise TransactionalError(f"delivery {delivery_id} is not a transactional message")
    if member is None or not member_can_receive(session, member.id, Stream.TRANSACTIONAL):
        return _finish(session, delivery, campaign, DeliveryStatus.SUPPRESSED, "the member may no longer receive mail")
    try:
        outgoing = compose(session, settings, campaign, delivery, member)
    except Exception as exc:  # a template problem: record it on the row instead of retrying forever
        log.exception("transactional delivery %s could not be composed", delivery_id)
        return _finish(session, delivery, campaign, DeliveryStatus.FAILED, f"could not compose: {exc}"[:2000])
    delivery.message_id = outgoing.message_id
    session.commit()
    if messenger is not None:
        reply = messenger.send(outgoing.mail_from, outgoing.to, outgoing.raw)
    else:
        with SmtpMessenger(SmtpConfig.from_settings(settings)) as own:
            reply = own.send(outgoing.mail_from, outgoing.to, outgoing.raw)
    return _record(session, delivery, campaign, member, reply)


def _record(session: Session, delivery: Delivery, campaign: Campaign, member: Member, reply: Reply) -> str:
    delivery.smtp_code = reply.code
    if reply.outcome is Outcome.SENT:
        delivery.sent_at = utcnow()
        log.info("transactional delivery %s sent (%s)", delivery.id, campaign.content.get("template"))
        return _finish(session, delivery, campaign, DeliveryStatus.SENT, "")
    if reply.outcome is Outcome.FAILED:
        if reply.hard_bounce:
            # The mailbox does not exist: never mail it again (the same rule as campaigns).
            delivery.bounce_type = "hard"
            suppress(session, member.email, SuppressionReason.BOUNCED)
        return _finish(session, delivery, campaign, DeliveryStatus.FAILED, reply.describe())
    # Deferred, or uncertain (cut off after the final dot): for a message the member is
    # waiting for, sending it again beats the small chance of a duplicate.
    return _defer(session, delivery, campaign, f"{reply.outcome}: {reply.describe()}")


def _defer(session: Session, delivery: Delivery, campaign: Campaign, error: str) -> str:
    if delivery.attempts >= MAX_ATTEMPTS:
        return _finish(session, delivery, campaign, DeliveryStatus.FAILED, f"gave up: {error}"[:2000])
    delivery.status = DeliveryStatus.DEFERRED
    delivery.last_error = error[:2000]
    delivery.next_attempt_at = utcnow() + BACKOFF[min(delivery.attempts, len(BACKOFF)) - 1]
    delivery.lease_until = None
    session.commit()
    log.info("transactional delivery %s deferred until %s", delivery.id, delivery.next_attempt_at)
    return str(delivery.status)


_CAMPAIGN_STATUS = {
    DeliveryStatus.SENT: CampaignStatus.SENT,
    DeliveryStatus.FAILED: CampaignStatus.FAILED,
    DeliveryStatus.SUPPRESSED: CampaignStatus.CANCELLED,
}


def _finish(session: Session, delivery: Delivery, campaign: Campaign, status: DeliveryStatus, error: str) -> str:
    delivery.status = status
    delivery.last_error = error
    delivery.lease_until = None
    delivery.next_attempt_at = None
    campaign.status = _CAMPAIGN_STATUS[status]
    campaign.finished_at = utcnow()
    session.commit()
    return str(status)


def reconcile_transactional(session: Session, now: datetime | None = None) -> list[int]:
    """Delivery ids to enqueue again: job lost, retry due, or the sender died mid-send."""
    now = now or utcnow()
    transactional = select(Campaign.id).where(Campaign.kind == CampaignKind.TRANSACTIONAL)
    # A sender that died mid-send left its lease behind: hand the message back.
    session.execute(
        update(Delivery)
        .where(
            Delivery.campaign_id.in_(transactional),
            Delivery.status == DeliveryStatus.SENDING,
            Delivery.lease_until < now,
        )
        .values(status=DeliveryStatus.DEFERRED, next_attempt_at=now, lease_until=None)
        .execution_options(synchronize_session=False)
    )
    rows = session.execute(
        select(Delivery.id, Campaign.content)
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .where(
            Delivery.campaign_id.in_(transactional),
            or_(
                (Delivery.status == DeliveryStatus.QUEUED) & (Delivery.created_at <= now - LOST_JOB_AFTER),
                (Delivery.status == DeliveryStatus.DEFERRED) & (Delivery.next_attempt_at <= now),
            ),
        )
        .order_by(Delivery.id)
        .limit(1000)
    ).all()
    session.commit()
    # Kinds without a builder here (introduction mail) are sent and reconciled by their own package.
    load_builders()
    return [delivery_id for delivery_id, content in rows if str((content or {}).get("template")) in CONTEXT_BUILDERS]


# --- composing ---------------------------------------------------------------------------


def compose(session: Session, settings: Settings, campaign: Campaign, delivery: Delivery, member: Member) -> Outgoing:
    kind = str(campaign.content.get("template", ""))
    load_builders()
    builder = CONTEXT_BUILDERS.get(kind)
    if builder is None:
        raise TransactionalError(f"no transactional message kind {kind!r}")
    built = builder(session, settings, member, dict(campaign.content.get("context") or {}))
    # Keys naming per-recipient fields (signed links) fill the compiled email; the rest is its content.
    context = {key: value for key, value in built.items() if key not in RECIPIENT_FIELDS}
    recipient = {
        "first_name": member.first_name,
        "name": member.preferred_name or member.name,
        "email": member.email,
        **links.member_links(settings, member.id),
        **{key: value for key, value in built.items() if key in RECIPIENT_FIELDS},
    }
    subject, html, text = compile_email(kind, context, settings).fill(recipient)
    message_id = make_message_id(settings.mail_domain)
    to = ascii_address(member.email)
    raw = automatic_skeleton(settings, f"transactional:{settings.mail_domain}").render(
        to_addr=to,
        to_name=member.preferred_name or member.name,
        subject=subject,
        html=html,
        text=text,
        message_id=message_id,
    )
    signer = signer_for(settings)
    return Outgoing(
        raw=signer.sign(raw) if signer else raw,
        message_id=message_id,
        # VERP like campaign mail: the bounce token names the Delivery row.
        mail_from=f"bounces+{make_address_token(settings.secret_key, 'bounce', delivery.id, member.id)}"
        f"@{settings.mail_domain}",
        to=to,
    )


def ascii_address(address: str) -> str:
    """The envelope and To header need the ASCII (IDNA) form of an internationalised domain."""
    if address.isascii():
        return address
    try:
        ascii_form = validate_email(address, check_deliverability=False).ascii_email
    except EmailNotValidError as exc:
        raise TransactionalError(f"the address cannot be written in ASCII: {exc}") from exc
    if not ascii_form:
        raise TransactionalError("the address has a non-ASCII local part, which needs SMTPUTF8")
    return ascii_form


def automatic_skeleton(settings: Settings, feedback_id: str) -> MessageSkeleton:
    """One message to one person, from the community's address."""
    name, address = parseaddr(settings.mail_from)
    # RFC 3834: automatic mail, so auto-responders stay quiet; not bulk, so no Precedence.
    return MessageSkeleton.build(
        from_addr=address, from_name=name, feedback_id=feedback_id, auto_submitted="auto-generated"
    )


# --- the kinds this package sends --------------------------------------------------------


@context_builder(TransactionalKind.CONFIRM_SUBSCRIPTION)
def _confirm_context(session: Session, settings: Settings, member: Member, stored: dict[str, Any]) -> dict[str, Any]:
    mailing_list = session.get(MailingList, int(stored["list_id"]))
    if mailing_list is None:
        raise TransactionalError("the list of this confirmation no longer exists")
    return {
        "lists": [f"the \u201c{mailing_list.name}\u201d emails"],
        "confirm_url": links.confirm_url(settings, member.id, mailing_list.id, int(stored["request_id"])),
    }


@context_builder("message")
def _message_context(session: Session, settings: Settings, member: Member, stored: dict[str, Any]) -> dict[str, Any]:
    """A short message in plain words, e.g. the confirmation of a command sent by reply."""
    button = stored.get("button")
    return {
        "heading": str(stored.get("heading", "")),
        "body": str(stored.get("body", "")),
        "button": button if isinstance(button, dict) else None,
    }


@context_builder(TransactionalKind.MANAGE_LINK)
def _manage_context(session: Session, settings: Settings, member: Member, stored: dict[str, Any]) -> dict[str, Any]:
    return {"valid_for": f"{links.MANAGE_MAX_AGE // 86400} days", "manage_url": links.manage_url(settings, member.id)}
