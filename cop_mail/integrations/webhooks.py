"""Outbound webhooks: registration, signed delivery with retries, and replay.

`emit` adds one WebhookDelivery row per active webhook subscribed to the event, inside
the caller's transaction, so an event is recorded exactly when the change it reports
is committed. Workers then POST each row (jobs.py); a periodic job re-rings the doorbell
for rows that are due, so a Redis restart or a worker crash loses nothing.

Each POST carries:

    X-Cop-Mail-Event: member.subscribed
    X-Cop-Mail-Delivery: 42
    X-Cop-Mail-Signature: t=1764300000,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>

Receivers check the signature with `verify_signature` (or its few lines in their own
language) and refuse timestamps older than a few minutes, so a captured request cannot
be replayed later. Redirects are never followed: the signature would travel to a URL
nobody registered.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import secrets
import socket
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast
from urllib.parse import urlsplit

from sqlalchemy import CursorResult, func, or_, select, update
from sqlalchemy.orm import Session

from cop_mail import __version__
from cop_mail.db import utcnow
from cop_mail.integrations.events import SUBSCRIBABLE, TEST_EVENT
from cop_mail.models import Webhook, WebhookDelivery, WebhookDeliveryStatus

log = logging.getLogger("cop_mail.integrations.webhooks")

TIMEOUT_SECONDS = 10.0
MAX_ATTEMPTS = 8
# 30 s, 1, 2, 4, 8, 16, 32 minutes: about an hour from the first attempt to the last.
FIRST_RETRY = timedelta(seconds=30)
MAX_RETRY = timedelta(hours=1)
# An attempt holds its row this long; a worker that dies mid-POST leaves it due again afterwards.
LEASE = timedelta(seconds=TIMEOUT_SECONDS * 6)
SIGNATURE_TOLERANCE_SECONDS = 300
EXCERPT_BYTES = 1024
HISTORY_LENGTH = 20
MAX_URL_LENGTH = 2000
SECRET_PREFIX = "whsec_"  # noqa: S105 - a marker, not a secret

S = WebhookDeliveryStatus


class WebhookError(ValueError):
    """A registration that cannot be accepted; the message says why in plain words."""


class WebhookNotFound(LookupError):
    pass


class DeliveryNotFound(LookupError):
    pass


# --- registration ------------------------------------------------------------------------


def check_url(url: str) -> str:
    url = url.strip()
    if not url:
        raise WebhookError("give the URL that should receive the events")
    if len(url) > MAX_URL_LENGTH:
        raise WebhookError(f"the URL can be at most {MAX_URL_LENGTH} characters long")
    if any(ord(c) <= 32 or ord(c) == 127 for c in url):
        raise WebhookError("the URL cannot contain spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise WebhookError(f"the URL cannot be read: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise WebhookError("the URL must start with https:// (or http:// on a private network)")
    if not parts.hostname:
        raise WebhookError("the URL has no host name")
    if parts.username is not None or parts.password is not None:
        raise WebhookError("leave user names and passwords out of the URL: receivers check the signature instead")
    if parts.fragment:
        raise WebhookError("the URL cannot have a #fragment: it is never sent to the receiver")
    return url


def check_events(events: Iterable[str]) -> list[str]:
    wanted = sorted({str(event).strip() for event in events if str(event).strip()})
    unknown = [event for event in wanted if event not in SUBSCRIBABLE]
    if unknown:
        raise WebhookError(f"unknown event(s): {', '.join(unknown)}; known events: {', '.join(SUBSCRIBABLE)}")
    if not wanted:
        raise WebhookError("choose at least one event")
    return wanted


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def register_webhook(
    session: Session, url: str, events: Iterable[str], created_by: str, description: str = "", active: bool = True
) -> Webhook:
    """A new webhook with a fresh signing secret (show it to the coordinator once)."""
    webhook = Webhook(
        url=check_url(url),
        events=check_events(events),
        secret=new_secret(),
        active=active,
        description=_description(description),
        created_by=created_by,
    )
    session.add(webhook)
    session.flush()
    return webhook


def update_webhook(
    session: Session,
    webhook_id: int,
    *,
    url: str | None = None,
    events: Iterable[str] | None = None,
    active: bool | None = None,
    description: str | None = None,
    rotate_secret: bool = False,
) -> list[str]:
    """Change what was given; returns the names of the fields that changed (for the audit log)."""
    webhook = get_webhook(session, webhook_id)
    wanted: dict[str, Any] = {}
    if url is not None:
        wanted["url"] = check_url(url)
    if events is not None:
        wanted["events"] = check_events(events)
    if active is not None:
        wanted["active"] = bool(active)
    if description is not None:
        wanted["description"] = _description(description)
    changed = [name for name, value in wanted.items() if getattr(webhook, name) != value]
    for name in changed:
        setattr(webhook, name, wanted[name])
    if rotate_secret:
        webhook.secret = new_secret()
        changed.append("secret")
    return changed


def _description(text: str) -> str:
    text = " ".join(text.split())
    if "\x00" in text:
        raise WebhookError("the description cannot contain NUL characters")
    if len(text) > 200:
        raise WebhookError("the description can be at most 200 characters long")
    return text


def delete_webhook(session: Session, webhook_id: int) -> None:
    """The webhook and its delivery log go together."""
    session.delete(get_webhook(session, webhook_id))


def get_webhook(session: Session, webhook_id: int) -> Webhook:
    webhook = session.get(Webhook, webhook_id)
    if webhook is None:
        raise WebhookNotFound(f"there is no webhook {webhook_id}")
    return webhook


def list_webhooks(session: Session) -> list[tuple[Webhook, dict[str, int]]]:
    """Every webhook with its delivery counts by status."""
    counts: dict[int, dict[str, int]] = {}
    rows = session.execute(
        select(WebhookDelivery.webhook_id, WebhookDelivery.status, func.count()).group_by(
            WebhookDelivery.webhook_id, WebhookDelivery.status
        )
    )
    for webhook_id, status, count in rows:
        counts.setdefault(webhook_id, dict.fromkeys(S, 0))[status] = int(count)
    webhooks = session.scalars(select(Webhook).order_by(Webhook.id))
    return [(webhook, counts.get(webhook.id, dict.fromkeys(S, 0))) for webhook in webhooks]


# --- emitting ----------------------------------------------------------------------------


def subscribers(session: Session, event: str) -> list[Webhook]:
    """Active webhooks that want `event` (few rows: filtered here rather than in JSON SQL)."""
    active = session.scalars(select(Webhook).where(Webhook.active.is_(True)).order_by(Webhook.id))
    return [webhook for webhook in active if event in (webhook.events or [])]


def emit(session: Session, event: str, payload: dict[str, Any], *, member_id: int | None = None) -> list[int]:
    """Record `event` for every subscribed webhook in the caller's transaction; returns the delivery ids.

    The caller commits; the rows are then sent by the next doorbell (`jobs.ring`) or, at the
    latest, by the periodic `webhook_retry_job`.
    """
    if event not in SUBSCRIBABLE:
        raise ValueError(f"unknown webhook event {event!r}")
    return insert_deliveries(session, subscribers(session, event), event, payload, member_id)


def send_test(session: Session, webhook_id: int) -> int:
    """A `webhook.test` delivery to one webhook, whatever it subscribed to, so a coordinator can try it."""
    webhook = get_webhook(session, webhook_id)
    payload = {"message": "A test event from cop-mail. If you can read this, the webhook works."}
    return insert_deliveries(session, [webhook], TEST_EVENT, payload, None)[0]


def insert_deliveries(
    session: Session, webhooks: list[Webhook], event: str, payload: dict[str, Any], member_id: int | None
) -> list[int]:
    if not webhooks:
        return []
    now = utcnow()
    rows = [
        WebhookDelivery(
            webhook_id=webhook.id,
            event=event,
            payload=payload,
            member_id=member_id,
            status=S.PENDING,
            next_attempt_at=now,
            created_at=now,
            history=[],
        )
        for webhook in webhooks
    ]
    session.add_all(rows)
    session.flush()
    return [row.id for row in rows]


# --- signing -----------------------------------------------------------------------------


def body_of(delivery: WebhookDelivery) -> bytes:
    """The request body: the same bytes on every attempt and replay."""
    document = {
        "id": delivery.id,
        "event": delivery.event,
        "created_at": delivery.created_at.isoformat(),
        "data": delivery.payload,
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


def signature(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int | None = None) -> str:
    stamp = int(time.time()) if timestamp is None else timestamp
    return f"t={stamp},v1={signature(secret, stamp, body)}"


def verify_signature(
    secret: str,
    header: str | None,
    body: bytes | str,
    tolerance: float = SIGNATURE_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """True when `header` signs `body` with `secret` and its timestamp is within `tolerance` seconds."""
    if not header:
        return False
    raw = body.encode("utf-8") if isinstance(body, str) else body
    stamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdecimal():
            stamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if stamp is None or not candidates:
        return False
    if abs((time.time() if now is None else now) - stamp) > tolerance:
        return False
    expected = signature(secret, stamp, raw)
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


# --- delivering --------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """What one POST got back: a status code, or an error when there was no answer."""

    code: int | None
    error: str
    excerpt: str
    ms: int

    @property
    def ok(self) -> bool:
        return self.code is not None and 200 <= self.code < 300


def post(url: str, body: bytes, headers: dict[str, str], timeout: float = TIMEOUT_SECONDS) -> Attempt:
    """One POST with the standard library; never follows redirects."""
    started = time.monotonic()
    parts = urlsplit(url)
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(
            parts.hostname or "", parts.port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("POST", target, body=body, headers=headers)
        response = connection.getresponse()
        excerpt = _printable(response.read(EXCERPT_BYTES).decode("utf-8", "replace"))
        code, location = response.status, _printable(response.getheader("Location") or "")
    except TimeoutError:
        return Attempt(None, f"no answer within {timeout:g} seconds", "", _ms(started))
    except ssl.SSLError as exc:
        return Attempt(None, f"TLS problem: {exc.reason or exc}", "", _ms(started))
    except (OSError, http.client.HTTPException) as exc:
        return Attempt(None, _network_error(exc), "", _ms(started))
    finally:
        connection.close()
    error = ""
    if 300 <= code < 400:
        error = (
            f"the receiver answered {code} redirecting to {location or 'another address'}; webhooks do not "
            "follow redirects, so register the final URL"
        )
    elif not 200 <= code < 300:
        error = f"the receiver answered {code}"
    return Attempt(code, error, excerpt, _ms(started))


def _printable(text: str) -> str:
    """What a receiver sends back is stored in text columns, which cannot hold NUL characters."""
    return text.replace("\x00", "\ufffd")


def _network_error(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused: nothing listens at that address"
    if isinstance(exc, socket.gaierror):
        return f"the host name could not be resolved ({exc.strerror or exc})"
    if isinstance(exc, http.client.HTTPException):
        return f"the receiver's answer was not valid HTTP ({exc.__class__.__name__})"
    return f"could not reach the receiver: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}"


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def retry_delay(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed attempt: doubling from FIRST_RETRY, at most MAX_RETRY."""
    return min(FIRST_RETRY * (2 ** max(attempts - 1, 0)), MAX_RETRY)


def claim(session: Session, delivery_id: int, now: datetime) -> bool:
    """Take a due row for one attempt (one conditional UPDATE, so two workers never both send it)."""
    statement = (
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.status == S.PENDING,
            or_(WebhookDelivery.next_attempt_at.is_(None), WebhookDelivery.next_attempt_at <= now),
        )
        .values(attempts=WebhookDelivery.attempts + 1, next_attempt_at=now + LEASE)
        .execution_options(synchronize_session=False)
    )
    claimed = cast(CursorResult[Any], session.execute(statement)).rowcount == 1
    session.commit()
    return claimed


def deliver(
    session: Session, delivery_id: int, *, timeout: float = TIMEOUT_SECONDS, now: datetime | None = None
) -> str:
    """Make one attempt if the row is due; safe to call twice. Commits; returns the row's status."""
    if not claim(session, delivery_id, now or utcnow()):
        return str(session.scalar(select(WebhookDelivery.status).where(WebhookDelivery.id == delivery_id)) or "missing")
    delivery = session.get(WebhookDelivery, delivery_id, populate_existing=True)
    if delivery is None:  # its webhook was deleted a moment ago, and the log with it
        return "missing"
    webhook = session.get(Webhook, delivery.webhook_id)
    if webhook is None or not webhook.active:
        attempt = Attempt(None, "the webhook is switched off; replay the delivery after switching it on", "", 0)
        return _record(session, delivery, attempt, now or utcnow(), final=True)
    body = body_of(delivery)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"cop-mail-webhooks/{__version__}",
        "X-Cop-Mail-Event": delivery.event,
        "X-Cop-Mail-Delivery": str(delivery.id),
        "X-Cop-Mail-Signature": signature_header(webhook.secret, body),
    }
    attempt = post(webhook.url, body, headers, timeout)
    return _record(session, delivery, attempt, now or utcnow())


def _record(session: Session, delivery: WebhookDelivery, attempt: Attempt, now: datetime, final: bool = False) -> str:
    delivery.last_status_code = attempt.code
    delivery.last_error = attempt.error[:2000]
    delivery.response_excerpt = attempt.excerpt
    entry = {"at": now.isoformat(), "attempt": delivery.attempts, "code": attempt.code, "error": attempt.error[:300]}
    delivery.history = [*(delivery.history or []), {**entry, "ms": attempt.ms}][-HISTORY_LENGTH:]
    if attempt.ok:
        delivery.status, delivery.delivered_at, delivery.next_attempt_at = S.DELIVERED, now, None
    elif final or delivery.attempts >= MAX_ATTEMPTS:
        delivery.status, delivery.next_attempt_at = S.FAILED, None
    else:
        delivery.next_attempt_at = now + retry_delay(delivery.attempts)
    session.commit()
    log.info(
        "webhook delivery %s (webhook %s, %s) attempt %s: %s%s",
        delivery.id,
        delivery.webhook_id,
        delivery.event,
        delivery.attempts,
        attempt.code if attempt.code is not None else "no answer",
        f" ({attempt.error})" if attempt.error else "",
    )
    return str(delivery.status)


def due_deliveries(session: Session, now: datetime | None = None, limit: int = 1000) -> list[int]:
    """Pending rows whose time has come: new ones whose doorbell was lost, retries, expired leases."""
    statement = (
        select(WebhookDelivery.id)
        .where(WebhookDelivery.status == S.PENDING, WebhookDelivery.next_attempt_at <= (now or utcnow()))
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit)
    )
    return list(session.scalars(statement))


def replay(session: Session, delivery_id: int, now: datetime | None = None) -> WebhookDelivery:
    """Send a delivery again with a fresh set of attempts (same body, fresh signature). The caller commits."""
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        raise DeliveryNotFound(f"there is no webhook delivery {delivery_id}")
    delivery.status = S.PENDING
    delivery.attempts = 0
    delivery.next_attempt_at = now or utcnow()
    delivery.delivered_at = None
    return delivery


def get_delivery(session: Session, delivery_id: int) -> WebhookDelivery:
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        raise DeliveryNotFound(f"there is no webhook delivery {delivery_id}")
    return delivery


def delivery_log(
    session: Session, webhook_id: int, status: str | None = None, page: int = 1, size: int = 50
) -> tuple[list[WebhookDelivery], int]:
    """One page of a webhook's deliveries, newest first, and how many there are in all."""
    condition = WebhookDelivery.webhook_id == webhook_id
    if status:
        condition = condition & (WebhookDelivery.status == status)
    total = session.scalar(select(func.count()).select_from(WebhookDelivery).where(condition)) or 0
    rows = session.scalars(
        select(WebhookDelivery)
        .where(condition)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
        .limit(size)
        .offset((max(page, 1) - 1) * size)
    )
    return list(rows), int(total)
