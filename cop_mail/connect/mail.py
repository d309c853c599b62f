"""Every email the introduction workflow sends, and the one seam it sends them through.

`send_intro_email(session, settings, intro_id, kind, member_id)` records one message as a
transactional Delivery (cop_mail.sending.transactional.queue_transactional) in the caller's
transaction; after commit the caller rings `enqueue_intro_emails`. The message is composed at
send time from the introduction as it is then, so a member who said no, left introductions or
unsubscribed in between gets nothing: the guard in `intro_context` refuses, and the row ends
`suppressed` with the reason.

Each kind's context builder is registered with the transactional sender too. Introduction mail
needs headers that sender does not set yet (Reply-To a signed reply address or the other member,
a Message-ID chosen in advance so the joint email and its follow-up thread, In-Reply-To and
References), so the builders return them under `_template`, `_reply_to`, `_message_id` and
`_references`, and `deliver_intro_email` here composes and sends with the rendering and MIME
modules until the transactional sender honours those keys.

Invitations, reminders and follow-ups are intros-stream mail under the member's attention budget
(cop_mail.sending.budget); the joint email answers both members' yes and the pause notice reports
what was done, so neither waits. Over budget, a deferred message is held (the introduction's
answer clock moves to when it goes out, so nobody's silence is counted before they were asked) and
a dropped invitation cancels the introduction with the reason.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parseaddr
from enum import StrEnum
from typing import Any

from redis import Redis
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from cop_mail.audience import links as member_links
from cop_mail.audience.suppression import SuppressionReason, member_can_receive, suppress
from cop_mail.connect import links
from cop_mail.connect.states import change_status, changed_rows
from cop_mail.db import utcnow
from cop_mail.models import (
    Campaign,
    CampaignKind,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    Intro,
    IntroAnswer,
    IntroStatus,
    Member,
    Practice,
    Stream,
    member_practices,
)
from cop_mail.queues import HIGH, enqueue
from cop_mail.rendering import RECIPIENT_FIELDS, compile_email
from cop_mail.sending import budget, transactional
from cop_mail.sending.dkim_signer import signer_for
from cop_mail.sending.mime import MessageSkeleton, bounce_address, make_message_id
from cop_mail.sending.smtp import Outcome, Reply, SmtpConfig, SmtpMessenger
from cop_mail.settings import Settings
from cop_mail.tokens import make_address_token

log = logging.getLogger("cop_mail.connect.mail")

LEASE = timedelta(minutes=5)
BACKOFF = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2))
MAX_ATTEMPTS = len(BACKOFF) + 1
# A queued message whose job has not run after this long lost its job (e.g. a Redis restart).
LOST_JOB_AFTER = timedelta(seconds=30)


class IntroMailKind(StrEnum):
    INVITE = "intro_invite"
    REMINDER = "intro_reminder"
    JOINT = "intro_joint"
    FOLLOWUP = "intro_followup"
    PAUSED = "intro_paused"  # "we paused your introductions; here is how to come back"


# The kind each message is recorded under (Campaign.content["template"]): an email template's
# name where there is one, so the transactional sender can draw it; a reminder is an invitation.
STORED_KINDS = {
    IntroMailKind.INVITE: "intro_invite",
    IntroMailKind.REMINDER: "intro_invite",
    IntroMailKind.JOINT: "intro_joint",
    IntroMailKind.FOLLOWUP: "intro_followup",
    IntroMailKind.PAUSED: "intro_paused",
}
KIND_NAMES = frozenset(STORED_KINDS.values())
JOINED = (IntroStatus.INTRODUCED, IntroStatus.MET, IntroStatus.NOT_MET)
OPEN = (IntroStatus.INVITED, IntroStatus.ACCEPTED_A, IntroStatus.ACCEPTED_B)


class Refused(Exception):
    """The message must not go out any more; the reason is recorded on the delivery row."""


# --- the seam ------------------------------------------------------------------------------


def send_intro_email(session: Session, settings: Settings, intro_id: int, kind: str, member_id: int) -> int | None:
    """Record one introduction email to send after the caller commits; returns the Delivery id.

    None when the member may receive no mail at all (bounced, complained, erased, suppressed).
    """
    kind = IntroMailKind(kind)
    context = {"intro_id": intro_id, "intro_kind": str(kind)}
    return transactional.queue_transactional(session, STORED_KINDS[kind], member_id, context)


def enqueue_intro_emails(connection: Redis | None, delivery_ids: Iterable[int | None]) -> None:
    """Ring the doorbell after commit; a lost doorbell is found again by `reconcile_intro_emails`."""
    from cop_mail.connect.jobs import send_intro_email_job

    for delivery_id in delivery_ids:
        if delivery_id is None or connection is None:
            continue
        try:
            enqueue(connection, send_intro_email_job, delivery_id, queue=HIGH, retries=0)
        except Exception:  # Redis down: the periodic reconcile job sends it later
            log.warning("could not enqueue intro delivery %s; the reconciler will", delivery_id, exc_info=True)


# --- what each message says ----------------------------------------------------------------


def intro_context(session: Session, settings: Settings, member: Member, stored: dict[str, Any]) -> dict[str, Any]:
    """Template context plus header keys for one message; raises Refused when it must not go out."""
    intro = session.get(Intro, int(stored["intro_id"]), populate_existing=True)
    if intro is None:
        raise Refused("the introduction no longer exists")
    side = intro.side_of(member.id)
    if side is None:
        raise Refused("the member is not part of this introduction")
    kind = IntroMailKind(stored.get("intro_kind") or IntroMailKind.INVITE)
    context = _BUILDERS[kind](session, settings, intro, member, side)
    # Per-recipient links, by the names the email templates use.
    context.update(
        accept_url=links.answer_url(settings, intro.id, member.id),
        decline_url=links.answer_url(settings, intro.id, member.id, "decline"),
        met_url=links.followup_url(settings, intro.id, member.id),
        story_url=_story_url(settings, member.id),
    )
    return context


def _invite(session: Session, settings: Settings, intro: Intro, member: Member, side: str) -> dict[str, Any]:
    if intro.status not in OPEN or getattr(intro, f"{side}_answer") is not None:
        raise Refused(f"the introduction is {intro.status} and this member has answered or it has closed")
    _require_intros(session, member.id)
    other = _person(session, _member(session, intro.other_id(member.id)), with_email=False)
    note = (intro.note.strip() + "\n\n") if intro.note.strip() else ""
    note += "Reply **YES** or **NO** to this email, or use the buttons below."
    thread = getattr(intro, f"{side}_thread_id")
    return {
        "_template": "intro_invite",
        "_reply_to": ("", reply_address(settings, "intro", intro.id, member.id)),
        "_message_id": thread or make_message_id(settings.mail_domain),
        "_references": [],
        "other": other,
        "shared_values": list(intro.shared_values or []),
        "note": note,
        "coordinator": settings.community_name,
    }


def _reminder(session: Session, settings: Settings, intro: Intro, member: Member, side: str) -> dict[str, Any]:
    context = _invite(session, settings, intro, member, side)
    thread = getattr(intro, f"{side}_thread_id")
    context.update(
        _message_id=make_message_id(settings.mail_domain),
        _references=[thread] if thread else [],
        subject="A gentle reminder: would you like to meet {{ other.name }}?",
        note=context["note"] + "\n\nIf we don't hear from you, we'll let this one go: no hard feelings.",
    )
    return context


def _joint(session: Session, settings: Settings, intro: Intro, member: Member, side: str) -> dict[str, Any]:
    if intro.status not in JOINED or not (intro.a_answer == intro.b_answer == IntroAnswer.ACCEPT):
        raise Refused(f"the introduction is {intro.status}: both have not said yes")
    other = _member(session, intro.other_id(member.id))
    # Nobody gets a joint email they did not agree to: both must still take part now.
    _require_intros(session, member.id)
    _require_intros(session, other.id)
    people = [_person(session, _member(session, i), with_email=True) for i in (intro.member_a_id, intro.member_b_id)]
    return {
        "_template": "intro_joint",
        "_reply_to": (other.display_name, other.email),
        "_message_id": intro.joint_message_id or make_message_id(settings.mail_domain),
        "_references": [],
        "people": people,
        "shared_values": list(intro.shared_values or []),
        "note": intro.note,
        "coordinator": settings.community_name,
    }


def _followup(session: Session, settings: Settings, intro: Intro, member: Member, side: str) -> dict[str, Any]:
    if intro.status not in (IntroStatus.INTRODUCED, IntroStatus.NOT_MET):
        raise Refused(f"the introduction is {intro.status}: no follow-up needed")
    _require_intros(session, member.id)
    other = _person(session, _member(session, intro.other_id(member.id)), with_email=False)
    return {
        "_template": "intro_followup",
        "_reply_to": ("", reply_address(settings, "followup", intro.id, member.id)),
        "_message_id": make_message_id(settings.mail_domain),
        "_references": [intro.joint_message_id] if intro.joint_message_id else [],
        "subject": "How did it go with {{ other.name }}? Reply MET, NOT YET or SKIP",
        "other": other,
        "coordinator": settings.community_name,
    }


def _paused(session: Session, settings: Settings, intro: Intro, member: Member, side: str) -> dict[str, Any]:
    url = member_links.preferences_url(settings, member.id)
    body = (
        "We've sent you three invitations to meet someone and haven't heard back, so we've paused "
        "introductions for you. That's completely fine: no more invitations will come.\n\n"
        f"Whenever you'd like to meet people again, [turn introductions back on]({url})."
    )
    return {
        "_template": "message",
        "_reply_to": None,
        "_message_id": make_message_id(settings.mail_domain),
        "_references": [],
        "heading": "We've paused your introductions",
        "body": body,
    }


_BUILDERS: dict[IntroMailKind, Callable[[Session, Settings, Intro, Member, str], dict[str, Any]]] = {
    IntroMailKind.INVITE: _invite,
    IntroMailKind.REMINDER: _reminder,
    IntroMailKind.JOINT: _joint,
    IntroMailKind.FOLLOWUP: _followup,
    IntroMailKind.PAUSED: _paused,
}


for _stored_kind in KIND_NAMES:
    transactional.context_builder(_stored_kind)(intro_context)


def reply_address(settings: Settings, kind: str, intro_id: int, member_id: int) -> str:
    return f"reply+{make_address_token(settings.secret_key, kind, intro_id, member_id)}@{settings.mail_domain}"


def _require_intros(session: Session, member_id: int) -> None:
    if not member_can_receive(session, member_id, Stream.INTROS):
        raise Refused(f"member {member_id} no longer takes part in introductions")


def _member(session: Session, member_id: int) -> Member:
    member = session.get(Member, member_id)
    if member is None:
        raise Refused(f"member {member_id} no longer exists")
    return member


def _person(session: Session, member: Member, *, with_email: bool) -> dict[str, Any]:
    practices = session.scalars(
        select(Practice.name)
        .join(member_practices, member_practices.c.practice_id == Practice.id)
        .where(member_practices.c.member_id == member.id)
        .order_by(Practice.name)
    ).all()
    attributes = member.attributes or {}
    person: dict[str, Any] = {
        "name": member.display_name,
        "first_name": member.first_name or member.display_name,
        "practices": list(practices),
        "bio": str(attributes.get("bio") or ""),
        "role": str(attributes.get("role") or ""),
        "photo_url": _photo(attributes.get("photo_url")),
    }
    if with_email:
        person["email"] = member.email
    return person


def _photo(value: Any) -> str | None:
    """Only an absolute https picture address; anything else is left out rather than break the email."""
    text = str(value or "")
    return text if text.startswith("https://") and len(text) < 500 and " " not in text else None


# --- composing and sending -----------------------------------------------------------------


@dataclass(frozen=True)
class IntroMessage:
    raw: bytes
    message_id: str
    mail_from: str
    to: str


def compose_intro_email(
    session: Session, settings: Settings, delivery: Delivery, member: Member, stored: dict[str, Any]
) -> IntroMessage:
    built = intro_context(session, settings, member, stored)
    template = built.pop("_template")
    reply_to = built.pop("_reply_to")
    message_id = built.pop("_message_id")
    references = [ref for ref in built.pop("_references") if ref]
    intro_id = int(stored["intro_id"])
    context = {key: value for key, value in built.items() if key not in RECIPIENT_FIELDS}
    recipient = {
        "first_name": member.first_name,
        "name": member.display_name,
        "email": member.email,
        **member_links.member_links(settings, member.id, Stream.INTROS),
        **{key: value for key, value in built.items() if key in RECIPIENT_FIELDS},
    }
    subject, html, text = compile_email(template, context, settings).fill(recipient)
    from_name, from_addr = parseaddr(settings.mail_from)
    skeleton = MessageSkeleton.build(
        from_addr=from_addr,
        from_name=from_name,
        reply_to=reply_to[1] if reply_to else None,
        reply_to_name=reply_to[0] if reply_to else "",
        feedback_id=f"{intro_id}:intros:{settings.mail_domain}",
        # The joint email is the start of a conversation between people; the rest is automatic.
        auto_submitted=None if template == "intro_joint" else "auto-generated",
    )
    headers = [("In-Reply-To", references[-1]), ("References", " ".join(references))] if references else []
    to = transactional.ascii_address(member.email)
    raw = skeleton.render(
        to_addr=to,
        to_name=member.display_name,
        subject=subject,
        html=html,
        text=text,
        message_id=message_id,
        unsubscribe_url=recipient["unsubscribe_url"],
        headers=headers,
    )
    if signer := signer_for(settings):
        raw = signer.sign(raw)
    mail_from = bounce_address(settings.secret_key, settings.mail_domain, delivery.id, member.id)
    return IntroMessage(raw=raw, message_id=message_id, mail_from=mail_from, to=to)


def _story_url(settings: Settings, member_id: int) -> str:
    from cop_mail.stories.links import submit_url

    return submit_url(settings, member_id)


def deliver_intro_email(
    session: Session, settings: Settings, delivery_id: int, *, messenger: SmtpMessenger | None = None
) -> str:
    """Send one recorded introduction email if it is due; safe to call twice. Returns the row's status."""
    now = utcnow()
    if not _claim(session, delivery_id, now):
        return str(session.scalar(select(Delivery.status).where(Delivery.id == delivery_id)) or "missing")
    delivery = session.get(Delivery, delivery_id, populate_existing=True)
    assert delivery is not None
    campaign = session.get(Campaign, delivery.campaign_id)
    member = session.get(Member, delivery.member_id) if delivery.member_id else None
    kind = str((campaign.content if campaign else {}).get("template", ""))
    if campaign is None or kind not in KIND_NAMES:
        return _finish(session, delivery, campaign, DeliveryStatus.FAILED, "not an introduction email")
    if member is None or not member_can_receive(session, member.id, Stream.TRANSACTIONAL):
        return _finish(session, delivery, campaign, DeliveryStatus.SUPPRESSED, "the member may no longer receive mail")
    try:
        message = compose_intro_email(session, settings, delivery, member, dict(campaign.content["context"]))
    except Refused as exc:
        log.info("intro delivery %s not sent: %s", delivery_id, exc)
        return _finish(session, delivery, campaign, DeliveryStatus.SUPPRESSED, str(exc)[:2000])
    except Exception as exc:  # a template or address problem: record it instead of retrying forever
        log.exception("intro delivery %s could not be composed", delivery_id)
        return _finish(session, delivery, campaign, DeliveryStatus.FAILED, f"could not compose: {exc}"[:2000])
    verdict = _over_budget(session, delivery, kind, member.id)
    if verdict is not None:
        return _budget_outcome(session, delivery, campaign, verdict)
    delivery.message_id = message.message_id
    session.commit()
    if messenger is not None:
        reply = messenger.send(message.mail_from, message.to, message.raw)
    else:
        with SmtpMessenger(SmtpConfig.from_settings(settings)) as own:
            reply = own.send(message.mail_from, message.to, message.raw)
    return _record(session, delivery, campaign, member, reply)


def _claim(session: Session, delivery_id: int, now: datetime) -> bool:
    claimed = changed_rows(
        session.execute(
            update(Delivery)
            .where(
                Delivery.id == delivery_id,
                Delivery.status.in_([DeliveryStatus.QUEUED, DeliveryStatus.DEFERRED, DeliveryStatus.HELD]),
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
    )
    session.commit()
    return claimed == 1


def _record(session: Session, delivery: Delivery, campaign: Campaign, member: Member, reply: Reply) -> str:
    delivery.smtp_code = reply.code
    if reply.outcome is Outcome.SENT:
        delivery.sent_at = utcnow()
        log.info("intro delivery %s sent (%s)", delivery.id, campaign.content.get("template"))
        return _finish(session, delivery, campaign, DeliveryStatus.SENT, "")
    if reply.outcome is Outcome.FAILED:
        if reply.hard_bounce:
            delivery.bounce_type = "hard"
            suppress(session, member.email, SuppressionReason.BOUNCED)
        return _finish(session, delivery, campaign, DeliveryStatus.FAILED, reply.describe())
    # Deferred, or uncertain: a person waits for this one, so a rare duplicate beats a gap.
    if delivery.attempts >= MAX_ATTEMPTS:
        return _finish(session, delivery, campaign, DeliveryStatus.FAILED, f"gave up: {reply.describe()}"[:2000])
    delivery.status = DeliveryStatus.DEFERRED
    delivery.last_error = reply.describe()[:2000]
    delivery.next_attempt_at = utcnow() + BACKOFF[min(delivery.attempts, len(BACKOFF)) - 1]
    delivery.lease_until = None
    session.commit()
    return str(delivery.status)


_CAMPAIGN_STATUS = {
    DeliveryStatus.SENT: CampaignStatus.SENT,
    DeliveryStatus.FAILED: CampaignStatus.FAILED,
    DeliveryStatus.SUPPRESSED: CampaignStatus.CANCELLED,
    DeliveryStatus.DROPPED: CampaignStatus.CANCELLED,
}


def _over_budget(session: Session, delivery: Delivery, kind: str, member_id: int) -> budget.Verdict | None:
    if kind not in budget.INTRO_KINDS:
        return None
    prefs = budget.load_prefs(session)
    if not prefs.budget_enabled:
        return None
    found = budget.check(session, prefs, campaign_id=delivery.campaign_id, stream=Stream.INTROS, member_ids=[member_id])
    return found.get(member_id)


def _budget_outcome(session: Session, delivery: Delivery, campaign: Campaign, verdict: budget.Verdict) -> str:
    stored = dict(campaign.content.get("context") or {})
    intro_id = int(stored["intro_id"])
    log.info("intro delivery %s %s by the attention budget", delivery.id, verdict.status)
    if verdict.status == DeliveryStatus.DROPPED:
        if stored.get("intro_kind", IntroMailKind.INVITE) == IntroMailKind.INVITE:
            _cancel_unsent(session, intro_id, verdict.member_id)
        return _finish(session, delivery, campaign, DeliveryStatus.DROPPED, verdict.reason)
    assert verdict.until is not None
    delivery.status = DeliveryStatus.HELD
    delivery.last_error = verdict.reason
    delivery.next_attempt_at = verdict.until
    delivery.lease_until = None
    delivery.attempts = max(delivery.attempts - 1, 0)  # waiting is not a failed try
    _move_answer_clock(session, intro_id, verdict.until)
    session.commit()
    return str(delivery.status)


def _move_answer_clock(session: Session, intro_id: int, until: datetime) -> None:
    """Count the reminder from the invitation going out, and the expiry from the reminder going out."""
    open_intro = (Intro.id == intro_id) & Intro.status.in_([str(s) for s in OPEN])
    for waiting, values in (
        ((Intro.reminded_at.is_(None)) & (Intro.invited_at < until), {"invited_at": until}),
        (Intro.reminded_at < until, {"reminded_at": until}),  # NULL (not reminded) never matches
    ):
        session.execute(
            update(Intro).where(open_intro, waiting).values(values).execution_options(synchronize_session=False)
        )


def _cancel_unsent(session: Session, intro_id: int, member_id: int) -> None:
    """An invitation the budget dropped never reached the member: the introduction cannot wait for them."""
    intro = session.get(Intro, intro_id, populate_existing=True)
    if intro is None or intro.status not in OPEN:
        return
    reason = f"member {member_id}'s invitation was dropped by the attention budget"
    change_status(session, intro, IntroStatus.CANCELLED, "system", reason, closed_at=utcnow(), closed_reason=reason)


def _finish(session: Session, delivery: Delivery, campaign: Campaign | None, status: DeliveryStatus, error: str) -> str:
    delivery.status = status
    delivery.last_error = error
    delivery.lease_until = None
    delivery.next_attempt_at = None
    if campaign is not None:
        campaign.status = _CAMPAIGN_STATUS[status]
        campaign.finished_at = utcnow()
    session.commit()
    return str(status)


def reconcile_intro_emails(session: Session, now: datetime | None = None) -> list[int]:
    """Introduction deliveries to enqueue again: job lost, retry due, or the sender died mid-send."""
    now = now or utcnow()
    ours = select(Campaign.id).where(
        Campaign.kind == CampaignKind.TRANSACTIONAL,
        or_(*(Campaign.name.startswith(f"{kind} to member ", autoescape=True) for kind in sorted(KIND_NAMES))),
    )
    session.execute(
        update(Delivery)
        .where(Delivery.campaign_id.in_(ours), Delivery.status == DeliveryStatus.SENDING, Delivery.lease_until < now)
        .values(status=DeliveryStatus.DEFERRED, next_attempt_at=now, lease_until=None)
        .execution_options(synchronize_session=False)
    )
    due = session.scalars(
        select(Delivery.id)
        .where(
            Delivery.campaign_id.in_(ours),
            or_(
                (Delivery.status == DeliveryStatus.QUEUED) & (Delivery.created_at <= now - LOST_JOB_AFTER),
                (Delivery.status.in_([DeliveryStatus.DEFERRED, DeliveryStatus.HELD]))
                & (Delivery.next_attempt_at <= now),
            ),
        )
        .order_by(Delivery.id)
        .limit(1000)
    ).all()
    session.commit()
    return list(due)
