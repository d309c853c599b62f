"""Processing a stored inbound message: parse, route, classify, act, record.

Runs in a job after the raw message was committed. Every message ends in a
recorded state with a reason in plain words; a message is acted on once even if
its job runs twice (the status is claimed before anything else happens).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cop_mail.audience import preferences, subscriptions
from cop_mail.audience.consent import record_member_event
from cop_mail.audience.suppression import SuppressionReason, find_member_by_email, suppress
from cop_mail.db import utcnow
from cop_mail.inbound.addresses import AddressBook, Route, RouteKind, first_route
from cop_mail.inbound.classify import BounceReport, Classification, ClassificationKind, classify_message
from cop_mail.inbound.commands import Command, CommandKind, command_from_reply
from cop_mail.inbound.parsing import ParsedMessage, parse_message, visible_reply_text
from cop_mail.integrations import events
from cop_mail.models import Campaign, Delivery, InboundMessage, InboundStatus, Member, MemberStatus
from cop_mail.models.audience import Stream
from cop_mail.settings import Settings
from cop_mail.tokens import TokenError, read_address_token

log = logging.getLogger("cop_mail.inbound")

# Soft bounces add to a score that halves every 30 days; at the threshold the address is treated as hard.
SOFT_BOUNCE_THRESHOLD = 3.0
SOFT_BOUNCE_HALF_LIFE = timedelta(days=30)
_COMMAND_STREAMS = {"newsletters": Stream.NEWSLETTERS, "intros": Stream.INTROS, "roundups": Stream.ROUNDUPS}


@dataclass
class Outcome:
    status: InboundStatus
    reason: str
    member_id: int | None = None
    subject_kind: str | None = None
    subject_id: int | None = None
    intent: str | None = None
    confirmation: str | None = None  # a short reply to the member, queued with the outcome
    delivery_id: int | None = None  # that reply's Delivery row, to enqueue after commit
    intro_emails: list[int] = field(default_factory=list)  # introduction mail to enqueue after commit


def process_inbound(session: Session, settings: Settings, inbound_id: int, now: datetime | None = None) -> Outcome:
    """Act on one stored message and record the outcome. The caller commits."""
    message = session.get(InboundMessage, inbound_id)
    if message is None:
        raise LookupError(f"no inbound message {inbound_id}")
    if message.status != InboundStatus.RECEIVED:
        return Outcome(InboundStatus(message.status), "already processed", message.member_id)
    # Claim first: a second job for the same message finds it no longer "received" and does nothing.
    claimed = session.execute(
        update(InboundMessage)
        .where(InboundMessage.id == inbound_id, InboundMessage.status == InboundStatus.RECEIVED)
        .values(status=InboundStatus.PROCESSED)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return Outcome(InboundStatus(message.status), "already processed", message.member_id)
    outcome = _decide(session, settings, message, now or utcnow())
    if outcome.confirmation and outcome.member_id is not None:
        from cop_mail.sending.transactional import queue_transactional

        context = {"heading": "Done", "body": outcome.confirmation}
        outcome.delivery_id = queue_transactional(session, "message", outcome.member_id, context)
    message.status = outcome.status
    message.reason = outcome.reason[:2000]
    message.member_id = outcome.member_id
    message.subject_kind = outcome.subject_kind
    message.subject_id = outcome.subject_id
    message.intent = outcome.intent
    message.processed_at = now or utcnow()
    return outcome


def _decide(session: Session, settings: Settings, message: InboundMessage, now: datetime) -> Outcome:
    earlier = _earlier_copy(session, message)
    if earlier is not None:
        return Outcome(InboundStatus.DUPLICATE, f"the same Message-ID arrived earlier as message #{earlier}")
    parsed = parse_message(message.raw)
    message.from_address = parsed.from_address[:320] if parsed.from_address else ""
    message.subject = parsed.subject[:500]
    # Webhook deliveries may come without an envelope: the header recipients stand in for it.
    recipients = message.envelope_to or [*parsed.to_addresses, *parsed.cc_addresses]
    route = first_route(recipients, AddressBook.from_settings(settings))
    # Over SMTP an empty envelope sender is the null sender of automatic mail; a webhook may simply omit it.
    envelope_sender = message.envelope_from if message.source == "smtp" else (message.envelope_from or None)
    classification = classify_message(parsed, envelope_sender=envelope_sender)
    message.classification = str(classification.kind)
    if classification.kind in (ClassificationKind.BOUNCE_HARD, ClassificationKind.BOUNCE_SOFT):
        return _bounce(session, settings, classification, route, now)
    if classification.kind is ClassificationKind.COMPLAINT:
        return _complaint(session, settings, classification, route)
    if classification.kind is ClassificationKind.AUTO_REPLY:
        return Outcome(InboundStatus.DISCARDED, f"automatic mail: {classification.reason}")
    return _human(session, settings, message, parsed, route, now)


def _earlier_copy(session: Session, message: InboundMessage) -> int | None:
    if not message.message_id:
        return None
    return session.scalar(
        select(InboundMessage.id)
        .where(InboundMessage.message_id == message.message_id, InboundMessage.id < message.id)
        .order_by(InboundMessage.id)
        .limit(1)
    )


# --- bounces and complaints ----------------------------------------------------------


def _delivery_for(session: Session, settings: Settings, route: Route | None, token: str | None, message_id: str | None):
    """The Delivery a bounce or complaint is about: VERP token first, then the original Message-ID."""
    if route is not None and route.accepted and route.kind is RouteKind.BOUNCE:
        found = _delivery_by_token(session, route.object_id, route.member_id)
        if found is not None:
            return found
    if token:
        try:
            kind, delivery_id, member_id = read_address_token(settings.secret_key, token)
        except TokenError:
            kind = ""
        if kind == "bounce":
            found = _delivery_by_token(session, delivery_id, member_id)
            if found is not None:
                return found
    if message_id:
        return session.scalar(select(Delivery).where(Delivery.message_id == message_id).limit(1))
    return None


def _delivery_by_token(session: Session, delivery_id: int | None, member_id: int | None) -> Delivery | None:
    """A bounce token signs (delivery id, member id); both must still agree."""
    if delivery_id is None:
        return None
    delivery = session.get(Delivery, delivery_id)
    return delivery if delivery is not None and delivery.member_id == member_id else None


def _bounce(
    session: Session, settings: Settings, classification: Classification, route: Route | None, now: datetime
) -> Outcome:
    report: BounceReport | None = classification.bounce
    delivery = _delivery_for(
        session, settings, route, report.verp_token if report else None, report.original_message_id if report else None
    )
    member = session.get(Member, delivery.member_id) if delivery and delivery.member_id else None
    if member is None and report is not None:
        member = next((m for m in (find_member_by_email(session, a) for a in report.addresses) if m), None)
    if member is None:
        return Outcome(InboundStatus.QUARANTINED, f"a bounce for no known delivery or member ({classification.reason})")
    hard = classification.kind is ClassificationKind.BOUNCE_HARD
    if delivery is not None:
        delivery.bounce_type = "hard" if hard else "soft"
        if report is not None and report.status:
            delivery.last_error = f"bounced {report.status}: {report.diagnostic or ''}"[:1000]
    score = _add_soft_bounce(member, now) if not hard else None
    if hard or (score is not None and score >= SOFT_BOUNCE_THRESHOLD):
        suppress(session, member.email, SuppressionReason.BOUNCED)
        events.emit_member_bounced(
            session,
            member.id,
            bounce_type="hard" if hard else "soft",
            campaign_id=delivery.campaign_id if delivery else None,
            reason=classification.reason,
        )
        why = "hard bounce" if hard else f"soft bounces reached {score:.1f} (threshold {SOFT_BOUNCE_THRESHOLD:g})"
        return Outcome(InboundStatus.PROCESSED, f"{why}: member suppressed", member.id, "delivery", _id(delivery))
    return Outcome(InboundStatus.PROCESSED, f"soft bounce: score now {score:.1f}", member.id, "delivery", _id(delivery))


def _id(delivery: Delivery | None) -> int | None:
    return delivery.id if delivery is not None else None


def _add_soft_bounce(member: Member, now: datetime) -> float:
    score = member.bounce_score or 0.0
    if member.bounce_score_at is not None:
        # Whole days, so bounces on the same day add up exactly.
        score *= 0.5 ** ((now - member.bounce_score_at).days / SOFT_BOUNCE_HALF_LIFE.days)
    member.bounce_score = score + 1.0
    member.bounce_score_at = now
    return member.bounce_score


def _complaint(session: Session, settings: Settings, classification: Classification, route: Route | None) -> Outcome:
    report = classification.complaint
    delivery = _delivery_for(
        session, settings, route, report.verp_token if report else None, report.original_message_id if report else None
    )
    member = session.get(Member, delivery.member_id) if delivery and delivery.member_id else None
    if member is None and report is not None and report.original_recipient:
        member = find_member_by_email(session, report.original_recipient)
    if member is None:
        return Outcome(InboundStatus.QUARANTINED, "an abuse report for no known delivery or member")
    # An ARF report names a real recipient only when it carries our signed token or a Message-ID we sent.
    if delivery is None:
        return Outcome(
            InboundStatus.NEEDS_REVIEW,
            "an abuse report naming a member but no message we sent; check it before acting",
            member.id,
        )
    subscriptions.unsubscribe_all(session, member.id, source="complaint", campaign_id=delivery.campaign_id)
    suppress(session, member.email, SuppressionReason.COMPLAINED)
    member.status = MemberStatus.COMPLAINED  # stronger than the "unsubscribed" set just before
    events.emit_member_complained(session, member.id, campaign_id=delivery.campaign_id)
    return Outcome(
        InboundStatus.PROCESSED, "abuse report: member unsubscribed and suppressed", member.id, "delivery", delivery.id
    )


# --- human mail ----------------------------------------------------------------------


def _human(
    session: Session,
    settings: Settings,
    message: InboundMessage,
    parsed: ParsedMessage,
    route: Route | None,
    now: datetime,
) -> Outcome:
    if route is not None and route.accepted and route.kind is RouteKind.STORIES:
        return _story(session, settings, message, parsed)
    object_id: int | None
    if route is None or not route.accepted:
        threaded = _by_thread(session, parsed)
        if threaded is None:
            reason = route.refusal if route is not None and route.refusal else "no reply address"
            return Outcome(InboundStatus.QUARANTINED, f"{reason}, and no earlier message of ours in its thread")
        member_id, kind, object_id = threaded
    else:
        member_id, kind, object_id = route.member_id or 0, route.token_kind or "reply", route.object_id
    member = session.get(Member, member_id) if member_id else None
    if member is None:
        return Outcome(InboundStatus.QUARANTINED, "the reply address names a member who no longer exists")
    if not _same_sender(member, parsed):
        return Outcome(
            InboundStatus.NEEDS_REVIEW,
            f"sender mismatch: the address was given to {member.email} but this came from {parsed.from_address}",
            member.id,
            kind,
            object_id,
        )
    member.last_engaged_at = now
    command = command_from_reply(parsed, settings.community_name)
    if command is not None:
        return _command(session, member, command, kind, object_id, now)
    return _reply(session, settings, message, parsed, member, kind, object_id)


def _same_sender(member: Member, parsed: ParsedMessage) -> bool:
    return (parsed.from_address or "").lower() == member.email.lower()


def _by_thread(session: Session, parsed: ParsedMessage) -> tuple[int, str, int] | None:
    """In-Reply-To / References matched against the Message-IDs we sent."""
    for thread_id in parsed.thread_ids[:20]:
        row = session.execute(
            select(Delivery.member_id, Delivery.campaign_id, Campaign.content)
            .join(Campaign, Campaign.id == Delivery.campaign_id)
            .where(Delivery.message_id == thread_id)
            .limit(1)
        ).first()
        if row is None or row.member_id is None:
            continue
        stored = (row.content or {}).get("context") or {}
        if "intro_id" in stored:  # introduction mail is recorded as a one-off message about the intro
            kind = "followup" if stored.get("intro_kind") == "intro_followup" else "intro"
            return row.member_id, kind, int(stored["intro_id"])
        return row.member_id, "campaign", row.campaign_id
    return None


def _command(
    session: Session, member: Member, command: Command, kind: str, object_id: int | None, now: datetime
) -> Outcome:
    if command.kind is CommandKind.PAUSE:
        until = command.pause_until(now)
        if until is not None:
            member.paused_until = until
            record_member_event(session, member.id, "paused", until=until.isoformat(), source="reply")
    elif command.kind is CommandKind.RESUME:
        preferences.resume(session, member)
    elif command.kind is CommandKind.NO_INTROS:
        subscriptions.unsubscribe_stream(session, member.id, Stream.INTROS, source="reply")
    elif command.kind is CommandKind.UNSUBSCRIBE:
        stream = _COMMAND_STREAMS.get(command.stream or "")
        if stream is None:
            subscriptions.unsubscribe_all(session, member.id, source="reply")
        else:
            subscriptions.unsubscribe_stream(session, member.id, stream, source="reply")
    elif command.kind is CommandKind.DIGEST_ONLY:
        for stream in (Stream.NEWSLETTERS, Stream.INTROS, Stream.RESOURCES):
            subscriptions.unsubscribe_stream(session, member.id, stream, source="reply")
    elif command.kind is CommandKind.INTRO_CADENCE:
        member.intro_cadence_weeks = command.every_weeks
        member.wants_intros = True
        record_member_event(session, member.id, "preferences_changed", intro_cadence_weeks=command.every_weeks)
    return Outcome(
        InboundStatus.PROCESSED,
        f"command by reply: {command.line}",
        member.id,
        kind,
        object_id,
        intent=f"command:{command.kind}",
        confirmation=command.confirmation,
    )


def _reply(
    session: Session,
    settings: Settings,
    message: InboundMessage,
    parsed: ParsedMessage,
    member: Member,
    kind: str,
    object_id: int | None,
) -> Outcome:
    if kind in ("intro", "followup") and object_id is not None:
        from cop_mail.connect import replies
        from cop_mail.inbound.intent import classify_followup_reply, classify_intro_reply

        text = visible_reply_text(parsed)
        if kind == "intro":
            result = classify_intro_reply(text)
            handled = replies.handle_intro_reply(session, settings, object_id, member.id, str(result.intent))
        else:
            result = classify_followup_reply(text)
            handled = replies.handle_followup_reply(session, settings, object_id, member.id, str(result.intent))
        if not result.is_clear:
            return Outcome(
                InboundStatus.NEEDS_REVIEW, f"unclear answer: {result.reason}", member.id, kind, object_id, "unclear"
            )
        outcome = Outcome(
            InboundStatus.PROCESSED, f"{kind} answer: {handled.outcome}", member.id, kind, object_id, str(result.intent)
        )
        outcome.intro_emails = list(handled.to_send)
        return outcome
    if kind == "prompt" and object_id is not None:
        from cop_mail.stories.submissions import create_draft_story_from_reply

        story = create_draft_story_from_reply(
            session,
            member.id,
            object_id,
            parsed.subject,
            visible_reply_text(parsed),
            _attachments(parsed),
            instance_path=settings.instance_path,
            inbound_message_id=message.id,
        )
        return Outcome(
            InboundStatus.PROCESSED, "a reply to a story prompt became a draft story", member.id, "story", story.id
        )
    record_member_event(session, member.id, "replied", explicit=True, inbound_message_id=message.id)
    return Outcome(InboundStatus.PROCESSED, "a reply for the coordinators to read", member.id, kind, object_id, "reply")


def _story(session: Session, settings: Settings, message: InboundMessage, parsed: ParsedMessage) -> Outcome:
    from cop_mail.stories.submissions import StoryError, create_story_from_email

    member = find_member_by_email(session, parsed.from_address) if parsed.from_address else None
    if member is None or member.status in (MemberStatus.ERASED, MemberStatus.COMPLAINED):
        return Outcome(
            InboundStatus.QUARANTINED, f"a story from {parsed.from_address or 'no sender'}, who is not a member"
        )
    member.last_engaged_at = utcnow()
    try:
        story = create_story_from_email(
            session,
            member.id,
            parsed.subject,
            visible_reply_text(parsed) or parsed.text,
            _attachments(parsed),
            instance_path=settings.instance_path,
            inbound_message_id=message.id,
        )
    except StoryError as exc:  # e.g. the daily limit: a decision to record, not an error to retry
        return Outcome(InboundStatus.QUARANTINED, f"the story was not accepted: {exc}", member.id)
    return Outcome(
        InboundStatus.PROCESSED, "a story submitted by email, waiting for moderation", member.id, "story", story.id
    )


def _attachments(parsed: ParsedMessage) -> list[tuple[str, str, bytes]]:
    return [(a.filename or "attachment", a.content_type, a.data) for a in parsed.attachments if a.kept]
