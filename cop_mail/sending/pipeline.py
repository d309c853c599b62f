"""One batch of a campaign: claim rows, send each over one SMTP connection, record outcomes.

The expensive work happens once per campaign and process (the compiled email, cached by
content hash); per recipient there is a fill, a MIME render, an optional DKIM signature,
one autocommitted mark (see claims.py) and the SMTP transaction. Sent rows are written
in bulk; every other outcome is written before the next message. Pause, cancel and
unsubscribe take effect at the next message, because the mark checks them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import Any, Protocol
from urllib.parse import quote

from redis import Redis
from sqlalchemy import Connection, Engine, case, select, update
from sqlalchemy.orm import Session

from cop_mail.audience import links
from cop_mail.audience.suppression import SuppressionReason, suppress
from cop_mail.db import utcnow

# Imported here, not in functions: a forking worker preloads this module, so its job
# processes start with rendering, MIME and DKIM already imported.
from cop_mail.integrations import events
from cop_mail.models import Campaign, CampaignKind, CampaignStatus, Delivery, DeliveryStatus, Member
from cop_mail.rendering import RenderError, compile_email, presend_problems
from cop_mail.resources import links as resources_links
from cop_mail.sending import budget, claims
from cop_mail.sending.audience import stream_for
from cop_mail.sending.campaigns import CampaignStateError, pause_for_failures
from cop_mail.sending.dkim_signer import signer_for
from cop_mail.sending.mime import MessageSkeleton, format_address
from cop_mail.sending.smtp import Outcome, Reply, SmtpConfig, SmtpMessenger, Stage
from cop_mail.sending.throttle import Limits, Stopped, Throttle, ThrottleUnavailable, retry_delay
from cop_mail.settings import Settings
from cop_mail.stories import links as stories_links
from cop_mail.stories.links import submit_url
from cop_mail.tokens import make_address_token
from cop_mail.tracking import links as tracking

log = logging.getLogger("cop_mail.sending.pipeline")
D = DeliveryStatus
FLUSH_EVERY = 2.0  # seconds between bulk writes of sent rows (progress stays live)
LONGEST_IN_BATCH_WAIT = 10.0  # a longer shared backoff ends the batch; its rows wait in the queue
CONNECTION_PATIENCE = 5.0


@dataclass(frozen=True, slots=True)
class CampaignInfo:
    id: int
    kind: str
    status: str
    name: str
    subject: str
    preheader: str
    content: dict[str, Any]
    list_ids: list[int]
    segment_ids: list[int]
    tracked_links: tracking.LinkPlan | None = None  # set per batch when the community tracks opens and clicks


@dataclass(frozen=True, slots=True)
class Recipient:
    """Everything per-recipient a composer needs; addresses and ids only, no ORM objects."""

    delivery_id: int
    member_id: int
    email: str
    name: str
    first_name: str
    message_id: str
    attempt: int  # 1 for the first try


class Composer(Protocol):
    """Builds one recipient's complete message (headers, body, DKIM) as bytes."""

    def envelope_sender(self, recipient: Recipient) -> str: ...

    def message(self, recipient: Recipient) -> bytes: ...


ComposerFactory = Callable[[Settings, CampaignInfo], Composer]
MessengerFactory = Callable[[Settings], SmtpMessenger]


@dataclass
class BatchResult:
    claimed: int = 0
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    suppressed: int = 0
    uncertain: int = 0
    held: int = 0  # by the attention budget, until the member's next window
    dropped: int = 0  # by the attention budget
    released: int = 0
    more: bool = False  # the claim was full: more rows are probably due
    retry_after: float | None = None  # seconds until released rows are due again
    stopped: str = ""

    def counts(self) -> dict[str, int]:
        keys = ("claimed", "sent", "deferred", "failed", "suppressed", "uncertain", "held", "dropped")
        return {k: getattr(self, k) for k in keys}


def load_campaign(conn: Connection, campaign_id: int) -> CampaignInfo | None:
    row = conn.execute(
        select(
            Campaign.id,
            Campaign.kind,
            Campaign.status,
            Campaign.name,
            Campaign.subject,
            Campaign.preheader,
            Campaign.content,
            Campaign.list_ids,
            Campaign.segment_ids,
        ).where(Campaign.id == campaign_id)
    ).first()
    return CampaignInfo(*row) if row else None


@contextmanager
def sending_connection(engine: Engine) -> Iterator[Connection]:
    """An autocommit connection for the per-message marks.

    On PostgreSQL its commits are asynchronous (synchronous_commit off): a mark is durable as
    soon as the server has it, which is what a worker crash needs, without waiting ~1-3 ms for
    a disk flush per message. Only a crash of the database server itself could lose the last
    fraction of a second of marks (and so resend those messages); SQLite's WAL with
    synchronous=NORMAL makes the same trade.
    """
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET synchronous_commit = off")
        try:
            yield conn
        finally:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("RESET synchronous_commit")


def default_messenger(settings: Settings) -> SmtpMessenger:
    return SmtpMessenger(SmtpConfig.from_settings(settings))


def send_batch(
    engine: Engine,
    settings: Settings,
    redis: Redis | None,
    campaign_id: int,
    worker: str,
    *,
    composer_factory: ComposerFactory | None = None,
    messenger_factory: MessengerFactory = default_messenger,
    messenger: SmtpMessenger | None = None,
    ring: Callable[[], object] | None = None,
) -> BatchResult:
    """Claim and send one batch. `ring` is called once the claim was full (more work is due)."""
    with sending_connection(engine) as conn:
        campaign = load_campaign(conn, campaign_id)
        if campaign is None or campaign.status != CampaignStatus.SENDING or campaign.kind == CampaignKind.TRANSACTIONAL:
            return BatchResult(stopped="the campaign is not sending")
        try:
            campaign = with_tracked_links(conn, settings, campaign)
            composer = (composer_factory or default_composer_factory())(settings, campaign)
        except Exception as exc:  # a content problem: stop here and tell the coordinator
            log.exception("campaign %s cannot be composed", campaign_id)
            _pause(engine, campaign_id, f"The email could not be built: {exc}")
            return BatchResult(stopped=f"compose: {exc}")
        config = SmtpConfig.from_settings(settings)
        throttle = Throttle(
            redis, Limits.from_settings(settings), campaign_id, config.server_key, settings.send_pushback_seconds
        )
        batch = _Batch(engine, conn, settings, campaign, composer, throttle, worker)
        if not throttle.acquire_connection(settings.send_lease_seconds, CONNECTION_PATIENCE, lambda: True):
            return BatchResult(stopped="every connection to the SMTP server is in use")
        try:
            if messenger is not None:  # the caller's connection, kept open across batches
                return batch.run(messenger, ring)
            with messenger_factory(settings) as own:
                return batch.run(own, ring)
        finally:
            throttle.release_connection()


def with_tracked_links(conn: Connection, settings: Settings, campaign: CampaignInfo) -> CampaignInfo:
    """The campaign with its stored links when the community tracks opens and clicks (see cop_mail.tracking)."""
    source = email_source(campaign)
    plan = tracking.plan_links(conn, campaign.id, campaign.kind, lambda: compile_email(*source, settings))
    return replace(campaign, tracked_links=plan)


def default_composer_factory() -> ComposerFactory:
    return CampaignComposer.for_campaign


@dataclass
class _Batch:
    engine: Engine
    conn: Connection
    settings: Settings
    campaign: CampaignInfo
    composer: Composer
    throttle: Throttle
    worker: str
    result: BatchResult = field(default_factory=BatchResult)
    token: str = ""
    pending_sent: list[int] = field(default_factory=list)
    trailing_failures: int = 0
    any_success: bool = False
    last_error: str = ""
    last_flush: float = field(default_factory=time.monotonic)
    last_renew: float = field(default_factory=time.monotonic)
    last_mark: datetime | None = None

    def run(self, messenger: SmtpMessenger, ring: Callable[[], object] | None) -> BatchResult:
        settings = self.settings
        self.token = claims.new_claim_token(self.worker)
        # Under a rate limit, claim about a minute's worth: a slow batch would hold rows other
        # workers could send, and outlive its job's timeout.
        size = self.throttle.limits.batch_size(settings.send_batch_size, seconds=60)
        rows = claims.claim_batch(
            self.conn, self.campaign.id, self.token, size, settings.send_lease_seconds, settings.mail_domain
        )
        self.result.claimed = len(rows)
        self.result.more = len(rows) == size
        if not rows:
            return self.result
        if self.result.more and ring is not None:
            ring()
        try:
            self._send_all(rows, messenger)
        except Stopped as exc:
            self.result.stopped = self.result.stopped or str(exc)
        except ThrottleUnavailable as exc:
            self.result.stopped = str(exc)
            log.warning("campaign %s: %s", self.campaign.id, exc)
        finally:
            self._finish()
        return self.result

    def _send_all(self, rows: Sequence[claims.ClaimedRow], messenger: SmtpMessenger) -> None:
        # Rows over their member's attention budget are held or dropped here (no query without a cap).
        allowed = budget.within_budget(self.conn, self.campaign.id, self.campaign.kind, self.token, rows)
        self.result.held, self.result.dropped, rows = allowed.held, allowed.dropped, allowed.rows
        recipients = load_recipients(self.conn, rows)
        gone = [row.delivery_id for row in rows if row.delivery_id not in recipients]
        self.result.suppressed += claims.record_suppressed(self.conn, self.token, gone, "the member was removed")
        campaign = self.campaign
        statement = claims.mark_statement(campaign.kind, campaign.list_ids, campaign.segment_ids, utcnow())
        marker = claims.Marker(self.conn, statement)
        try:
            for row in rows:
                recipient = recipients.get(row.delivery_id)
                if recipient is None:
                    continue
                self._tick()
                self.throttle.wait_turn(self._keep_alive)
                if self.throttle.waited > LONGEST_IN_BATCH_WAIT:
                    raise Stopped("waiting out the server's pushback")
                if not self._send_one(recipient, marker, messenger):
                    return
        finally:
            marker.close()

    def _send_one(self, recipient: Recipient, marker: claims.Marker, messenger: SmtpMessenger) -> bool:
        """Send one message; False when the batch must stop (campaign paused or cancelled)."""
        try:
            data = self.composer.message(recipient)
            sender = self.composer.envelope_sender(recipient)
        except Exception as exc:  # one recipient's data broke the template: record it, go on
            log.exception("delivery %s could not be composed", recipient.delivery_id)
            self._record(recipient, D.FAILED, None, f"could not compose: {exc}", bounce="compose")
            return True
        if not marker(recipient.delivery_id, self.token, self._mark_time()):
            return self._not_marked(recipient)
        reply = messenger.send(sender, recipient.email, data)
        self._handle(recipient, reply)
        return True

    def _mark_time(self) -> datetime:
        # Strictly increasing within a claim: recovery takes the latest mark as the one in flight.
        now = utcnow()
        if self.last_mark is not None and now <= self.last_mark:
            now = self.last_mark + timedelta(microseconds=1)
        self.last_mark = now
        return now

    def _not_marked(self, recipient: Recipient) -> bool:
        reason = claims.why_not_marked(self.conn, self.campaign.id, recipient.delivery_id, self.token)
        if reason == "campaign":
            self.result.stopped = "the campaign is no longer sending"
            return False
        if reason == "member":
            self.result.suppressed += claims.record_suppressed(
                self.conn, self.token, [recipient.delivery_id], "the member may no longer receive this stream"
            )
        return True  # 'lost': the reconciler took the row back; never send it from here

    def _handle(self, recipient: Recipient, reply: Reply) -> None:
        if reply.outcome is Outcome.SENT:
            self.pending_sent.append(recipient.delivery_id)
            self.result.sent += 1
            self.trailing_failures = 0
            self.any_success = True
            self.throttle.success()
            return
        self.trailing_failures += 1
        self.last_error = reply.describe()
        if reply.outcome is Outcome.UNCERTAIN:
            self._record(recipient, D.UNCERTAIN, None, reply.describe())
        elif reply.pushback or reply.stage is Stage.CONNECT:
            delay = self.throttle.pushback()
            self._record(recipient, D.DEFERRED, reply.code, reply.describe(), retry_in=delay, count_attempt=False)
        elif reply.outcome is Outcome.DEFERRED:
            self._defer(recipient, reply)
        elif reply.hard_bounce:
            self._hard_bounce(recipient, reply)
        else:
            self._record(recipient, D.FAILED, reply.code, reply.describe(), bounce="rejected")
        if self.trailing_failures >= self.settings.send_max_consecutive_failures:
            self._flush()

    def _defer(self, recipient: Recipient, reply: Reply) -> None:
        attempts = recipient.attempt
        if attempts >= self.settings.send_max_attempts:
            error = f"gave up after {attempts} attempts: {reply.describe()}"
            self._record(recipient, D.FAILED, reply.code, error, bounce="soft")
            return
        delay = retry_delay(attempts, self.settings.send_retry_seconds)
        self._record(recipient, D.DEFERRED, reply.code, reply.describe(), retry_in=delay)

    def _record(
        self,
        recipient: Recipient,
        status: DeliveryStatus,
        code: int | None,
        error: str,
        *,
        retry_in: float | None = None,
        bounce: str | None = None,
        count_attempt: bool = True,
    ) -> None:
        values: dict[str, Any] = {
            "status": str(status),
            "smtp_code": code,
            "last_error": error[:1000],
            "lease_until": None,
            "bounce_type": bounce,
            "next_attempt_at": utcnow() + timedelta(seconds=retry_in) if retry_in is not None else None,
        }
        if not count_attempt:
            values["attempts"] = case((Delivery.attempts > 0, Delivery.attempts - 1), else_=0)
        self.conn.execute(
            update(Delivery)
            .where(
                Delivery.id == recipient.delivery_id,
                Delivery.claimed_by == self.token,
                Delivery.status == D.SENDING,
            )
            .values(**values)
        )
        self._commit()
        bucket = {D.DEFERRED: "deferred", D.FAILED: "failed", D.UNCERTAIN: "uncertain", D.SUPPRESSED: "suppressed"}
        setattr(self.result, bucket[status], getattr(self.result, bucket[status]) + 1)

    def _hard_bounce(self, recipient: Recipient, reply: Reply) -> None:
        """The row fails and the member is suppressed in one transaction."""
        with Session(self.engine) as session, session.begin():
            session.execute(
                update(Delivery)
                .where(
                    Delivery.id == recipient.delivery_id,
                    Delivery.claimed_by == self.token,
                    Delivery.status == D.SENDING,
                )
                .values(
                    status=str(D.FAILED),
                    smtp_code=reply.code,
                    last_error=reply.describe(),
                    bounce_type="hard",
                    lease_until=None,
                    next_attempt_at=None,
                )
            )
            if suppress(session, recipient.email, SuppressionReason.BOUNCED):
                events.emit_member_bounced(
                    session,
                    recipient.member_id,
                    bounce_type="hard",
                    campaign_id=self.campaign.id,
                    reason=reply.describe(),
                )
        self.result.failed += 1

    def _commit(self) -> None:
        if self.conn.in_transaction():
            self.conn.commit()

    def _keep_alive(self) -> bool:
        self._tick()
        status = self.conn.scalar(select(Campaign.status).where(Campaign.id == self.campaign.id))
        self._commit()
        if status != CampaignStatus.SENDING:
            self.result.stopped = "the campaign is no longer sending"
            return False
        return True

    def _tick(self) -> None:
        """Between messages: bulk-write sent rows now and then, and keep the claim's lease alive."""
        now = time.monotonic()
        if now - self.last_flush >= FLUSH_EVERY:
            self._flush()
        if now - self.last_renew >= self.settings.send_lease_seconds / 3:
            self.last_renew = now
            claims.renew_lease(self.conn, self.token, self.settings.send_lease_seconds)
            self.throttle.refresh_connection(self.settings.send_lease_seconds)

    def _flush(self) -> None:
        self.last_flush = time.monotonic()
        claims.record_sent(self.conn, self.token, self.pending_sent)
        self.pending_sent = []
        failures = self._update_failure_run()
        self.any_success, self.trailing_failures = False, 0
        if failures >= self.settings.send_max_consecutive_failures:
            reason = (
                f"Paused after {failures} messages in a row could not be sent. "
                f"The last reply from the mail server was: {self.last_error}"
            )
            if _pause(self.engine, self.campaign.id, reason):
                log.warning("campaign %s paused: %s", self.campaign.id, reason)

    def _update_failure_run(self) -> int:
        if not self.any_success and not self.trailing_failures:
            return 0
        run = Campaign.consecutive_failures + self.trailing_failures
        statement = (
            update(Campaign)
            .where(Campaign.id == self.campaign.id)
            .values(consecutive_failures=self.trailing_failures if self.any_success else run)
            .returning(Campaign.consecutive_failures)
        )
        failures = int(self.conn.scalar(statement) or 0)
        self._commit()
        return failures

    def _finish(self) -> None:
        self._flush()
        retry_at = None
        if self.throttle.waited > LONGEST_IN_BATCH_WAIT or self.result.stopped.startswith("waiting"):
            retry_at = utcnow() + timedelta(seconds=LONGEST_IN_BATCH_WAIT)
            self.result.retry_after = LONGEST_IN_BATCH_WAIT
        self.result.released = claims.release_unmarked(self.conn, self.token, retry_at)


def _pause(engine: Engine, campaign_id: int, reason: str) -> bool:
    with Session(engine) as session:
        paused = pause_for_failures(session, campaign_id, reason)
        session.commit()
    return paused


def load_recipients(conn: Connection, rows: Sequence[claims.ClaimedRow]) -> dict[int, Recipient]:
    by_member = {row.member_id: row for row in rows if row.member_id is not None}
    found: dict[int, Recipient] = {}
    if not by_member:
        return found
    query = select(Member.id, Member.email, Member.name, Member.preferred_name).where(Member.id.in_(list(by_member)))
    for member_id, email, name, preferred in conn.execute(query):
        row = by_member[member_id]
        display = preferred or name
        found[row.delivery_id] = Recipient(
            delivery_id=row.delivery_id,
            member_id=member_id,
            email=email,
            name=name or preferred or "",
            first_name=display.split(" ", 1)[0] if display else "",
            message_id=row.message_id,
            attempt=row.attempts + 1,
        )
    if conn.in_transaction():
        conn.commit()
    return found


# --- composing: the compiled email + MIME skeleton + DKIM, once per campaign and process -----

DEFAULT_TEMPLATES = {
    CampaignKind.NEWSLETTER: "newsletter",
    CampaignKind.INTRO: "intro_invite",
    CampaignKind.ROUNDUP: "roundup",
    CampaignKind.STORY_PROMPT: "story_prompt",
    CampaignKind.RESOURCE_DIGEST: "resource_digest",
    CampaignKind.TRANSACTIONAL: "message",
}

# Campaign kind -> (stream label for List-Id and Feedback-ID, bulk: Precedence and Auto-Submitted).
# Introductions are person-to-person mail a member should answer, so they are not bulk.
HEADER_STREAMS = {
    CampaignKind.NEWSLETTER: ("newsletter", True),
    CampaignKind.INTRO: ("intros", False),
    CampaignKind.ROUNDUP: ("stories", True),
    CampaignKind.STORY_PROMPT: ("stories", True),
    CampaignKind.RESOURCE_DIGEST: ("resources", True),
    CampaignKind.TRANSACTIONAL: ("transactional", False),
}


def email_source(campaign: Campaign | CampaignInfo) -> tuple[str, dict[str, Any]]:
    """(template name, template data): the campaign's content, with its subject and preheader."""
    content = dict(campaign.content or {})
    template = str(content.pop("template", "") or DEFAULT_TEMPLATES[CampaignKind(campaign.kind)])
    if campaign.subject:
        content["subject"] = campaign.subject
    if campaign.preheader:
        content["preheader"] = campaign.preheader
    return template, content


def check_campaign(settings: Settings, campaign: Campaign | CampaignInfo) -> None:
    """Compile and run the pre-send checks now; raise CampaignStateError with what to fix."""
    try:
        problems = presend_problems(compile_email(*email_source(campaign), settings))
    except RenderError as exc:
        raise CampaignStateError(f"The email cannot be built: {exc}") from exc
    if problems:
        raise CampaignStateError(" ".join(problems))


class CampaignComposer:
    """Per campaign: compiled email, MIME skeleton and DKIM signer; per recipient: fill and render."""

    _cache: dict[tuple[int, str, tracking.LinkPlan | None], CampaignComposer] = {}

    @classmethod
    def for_campaign(cls, settings: Settings, campaign: CampaignInfo) -> CampaignComposer:
        """Cached per process by the campaign's content: later batches skip even the compile cache's
        hashing of content and template files (a campaign keeps the templates it started with)."""
        key = (campaign.id, _digest(email_source(campaign), settings), campaign.tracked_links)
        found = cls._cache.get(key)
        if found is None:
            if len(cls._cache) > 16:
                cls._cache.clear()
            compiled = compile_email(*email_source(campaign), settings)
            if campaign.tracked_links is not None:
                compiled = tracking.track_email(compiled, campaign.tracked_links, settings.public_url)
            found = cls._cache[key] = cls(settings, campaign, compiled)
        return found

    def __init__(self, settings: Settings, campaign: CampaignInfo, compiled: Any):
        self.settings = settings
        self.campaign_id = campaign.id
        self.compiled = compiled
        self.stream = stream_for(campaign.kind)
        self.domain = settings.mail_domain
        label, bulk = HEADER_STREAMS[CampaignKind(campaign.kind)]
        from_name, from_addr = parseaddr(settings.mail_from)
        self.reply_name = from_name
        self.skeleton = MessageSkeleton.build(
            from_addr=from_addr,
            from_name=from_name,
            list_id=f"{label}.{self.domain}",
            list_name=f"{settings.community_name} {label}",
            feedback_id=f"{campaign.id}:{label}:{_slug(settings.community_name)}:cop-mail",
            bulk=bulk,
            auto_submitted="auto-generated" if bulk else None,
        )
        self.signer = signer_for(settings)
        self.links = _link_makers(settings, campaign.id, self.stream, compiled.fields)
        # Mailbox providers send the mailto unsubscribe with this subject and body; the reply
        # commands read "unsubscribe <stream>" on the first line.
        words = "unsubscribe" if self.stream == "transactional" else f"unsubscribe {self.stream}"
        self.mailto_query = f"subject={quote(words)}&body={quote(words)}"

    def envelope_sender(self, recipient: Recipient) -> str:
        token = make_address_token(self.settings.secret_key, "bounce", recipient.delivery_id, recipient.member_id)
        return f"bounces+{token}@{self.domain}"

    def message(self, recipient: Recipient) -> bytes:
        values = {"first_name": recipient.first_name, "name": recipient.name, "email": recipient.email}
        for name, make in self.links.items():
            values[name] = make(recipient.member_id)
        if tracking.RECIPIENT_FIELD in self.compiled.fields:
            values[tracking.RECIPIENT_FIELD] = tracking.delivery_token(self.settings.secret_key, recipient.delivery_id)
        subject, html, text = self.compiled.fill_bytes(values)
        unsubscribe = values.get("unsubscribe_url") or self.links_unsubscribe(recipient.member_id)
        reply_token = make_address_token(self.settings.secret_key, "campaign", self.campaign_id, recipient.member_id)
        reply_to = f"reply+{reply_token}@{self.domain}"
        data = self.skeleton.render(
            to_addr=ascii_address(recipient.email),
            to_name=recipient.name,
            subject=subject,
            html=html,
            text=text,
            message_id=recipient.message_id,
            unsubscribe_url=unsubscribe,
            unsubscribe_mailto=f"mailto:{reply_to}?{self.mailto_query}",
        )
        # Replies come back to an address naming this member and campaign. The skeleton's Reply-To
        # is shared by every message, so this one is written here (header order does not matter).
        data = b"Reply-To: " + format_address(self.reply_name, reply_to, 10).encode("ascii") + b"\r\n" + data
        return self.signer.sign(data) if self.signer is not None else data

    def links_unsubscribe(self, member_id: int) -> str:
        return links.unsubscribe_url(self.settings, member_id, self.stream, self.campaign_id)


def _link_makers(settings: Settings, campaign_id: int, stream: Any, fields: frozenset[str]) -> dict[str, Any]:
    """Only the signed links this email shows: each signature costs a few microseconds."""
    makers: dict[str, Any] = {
        "unsubscribe_url": lambda m: links.unsubscribe_url(settings, m, stream, campaign_id),
        "preferences_url": lambda m: links.preferences_url(settings, m),
        "manage_url": lambda m: links.preferences_url(settings, m),
        "story_url": lambda m: submit_url(settings, m, campaign_id),
        "meet_token": lambda m: stories_links.meet_token(settings, m),
        "resources_token": lambda m: resources_links.resources_token(settings, m),
    }
    return {name: make for name, make in makers.items() if name in fields or name == "unsubscribe_url"}


def ascii_address(address: str) -> str:
    """Headers carry internationalised domains as IDNA."""
    local, _, domain = address.rpartition("@")
    return address if domain.isascii() else f"{local}@{domain.encode('idna').decode('ascii')}"


def _digest(source: tuple[str, dict[str, Any]], settings: Settings) -> str:
    text = json.dumps([source, repr(settings)], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _slug(text: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in text.lower()).split())[:40] or "community"
