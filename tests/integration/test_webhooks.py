"""Outbound webhooks against a real HTTP receiver on loopback: signing, retries with backoff,
timeouts, redirects, replay, and delivery by real RQ workers across a Redis restart."""

from __future__ import annotations

import datetime as dt
import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import func, select

from cop_mail.audience import privacy
from cop_mail.db import utcnow
from cop_mail.integrations import events, webhooks
from cop_mail.integrations.jobs import ring, webhook_retry_job
from cop_mail.models import Campaign, Connection, Intro, MailingList, WebhookDelivery
from cop_mail.stories.submissions import StoryInput, submit_story
from tests.conftest import add_member, free_port


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A real HTTP server in a thread that records every request and answers as `mode` says:
    "ok" (200), "error" (500), "slow" (sleeps `delay` seconds first), "redirect" (302) or
    "nul" (200 with a NUL byte in the body). With `tls`, it speaks HTTPS."""

    mode: str = "ok"
    delay: float = 2.0
    tls: ssl.SSLContext | None = None
    requests: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.server.server_address[1]}/hook"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the standard library's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append(Received(self.path, dict(self.headers.items()), body))
                try:
                    if receiver.mode == "slow":
                        time.sleep(receiver.delay)
                    if receiver.mode == "redirect":
                        self.send_response(302)
                        self.send_header("Location", f"http://127.0.0.1:{self.server.server_address[1]}/elsewhere")
                        self.end_headers()
                        return
                    status, text = {"error": (500, b"boom"), "nul": (200, b"ok\x00\xff")}.get(
                        receiver.mode, (200, b"thanks")
                    )
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(text)))
                    self.end_headers()
                    self.wfile.write(text)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting

            def log_message(self, *args: Any) -> None:
                return None

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.block_on_close = False
        if self.tls is not None:
            server.socket = self.tls.wrap_socket(server.socket, server_side=True)
        self.server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    server.start()
    yield server
    server.stop()


def hook(db, url: str, *names: str, active: bool = True) -> Any:
    webhook = webhooks.register_webhook(db, url, names or ("member.subscribed",), "owner@example.org", active=active)
    db.commit()
    return webhook


def subscribed_event(db) -> int:
    """One member.subscribed event for a real member and list; returns the delivery id."""
    everyone = MailingList(name="Everyone", slug="everyone", opt_in="single")
    db.add(everyone)
    member = add_member(db, "Ana Lima")
    (delivery_id,) = events.emit_member_subscribed(db, member.id, list_id=everyone.id, source="form")
    db.commit()
    return delivery_id


def row(db, delivery_id: int) -> WebhookDelivery:
    db.expire_all()
    found = db.get(WebhookDelivery, delivery_id)
    assert found is not None
    return found


# --- emitting ------------------------------------------------------------------------------------


def test_emit_records_one_row_per_active_subscribed_webhook(db):
    wanted = hook(db, "https://a.example.org/hook", "member.subscribed", "story.submitted")
    hook(db, "https://b.example.org/hook", "member.subscribed", active=False)
    hook(db, "https://c.example.org/hook", "story.submitted")
    ids = webhooks.emit(db, "member.subscribed", {"member": {"id": 1}})
    db.commit()
    assert [row(db, i).webhook_id for i in ids] == [wanted.id]
    assert row(db, ids[0]).status == "pending" and row(db, ids[0]).attempts == 0
    with pytest.raises(ValueError, match="unknown webhook event"):
        webhooks.emit(db, "member.deleted", {})
    member = add_member(db, "Bo Chen")
    assert events.emit_member_complained(db, member.id) == []  # nobody listens: nothing recorded
    assert db.scalar(select(func.count()).select_from(WebhookDelivery)) == 1


def test_each_event_helper_builds_its_payload(db, tmp_path):
    hook(db, "https://a.example.org/hook", *events.SUBSCRIBABLE)
    ana, bo = add_member(db, "Ana Lima"), add_member(db, "Bo Chen")
    intro = Intro(member_a_id=ana.id, member_b_id=bo.id, status="accepted_a")
    campaign = Campaign(name="Autumn", subject="Hello", kind="newsletter", status="sent", finished_at=utcnow())
    db.add_all([intro, campaign])
    db.flush()
    connection = Connection(member_a_id=ana.id, member_b_id=bo.id, intro_id=intro.id)
    db.add(connection)
    db.flush()
    story = submit_story(db, tmp_path, ana.id, StoryInput("Seeds", "We swap seeds."))
    made = {
        "member.unsubscribed": events.emit_member_unsubscribed(db, ana.id, stream="newsletters"),
        "member.bounced": events.emit_member_bounced(db, bo.id, bounce_type="hard", campaign_id=campaign.id),
        "member.complained": events.emit_member_complained(db, bo.id, campaign_id=campaign.id),
        "intro.accepted": events.emit_intro_accepted(db, intro.id, ana.id),
        "connection.made": events.emit_connection_made(db, connection.id),
        "story.submitted": events.emit_story_submitted(db, story.id),
        "campaign.sent": events.emit_campaign_sent(db, campaign.id),
    }
    db.commit()
    payloads = {event: row(db, ids[0]).payload for event, ids in made.items()}
    assert payloads["member.unsubscribed"]["member"]["email"] == "ana.lima@example.org"
    assert payloads["member.unsubscribed"]["stream"] == "newsletters"
    assert payloads["member.bounced"]["bounce_type"] == "hard"
    assert payloads["intro.accepted"] == {
        "intro": {"id": intro.id, "kind": "peer", "status": "accepted_a"},
        "member": events.member_data(ana),
        "other_member_id": bo.id,
    }
    assert payloads["connection.made"]["member_ids"] == [ana.id, bo.id]
    assert "email" not in json.dumps(payloads["connection.made"])  # about two people: ids only
    assert payloads["story.submitted"]["story"]["title"] == "Seeds"
    assert payloads["campaign.sent"]["campaign"]["name"] == "Autumn"
    assert payloads["campaign.sent"]["counts"]["total"] == 0
    assert row(db, made["story.submitted"][0]).member_id == ana.id


def test_registration_checks_urls_and_events(db):
    for url, words in [
        ("ftp://example.org/hook", "https://"),
        ("https://user:pw@example.org/hook", "passwords"),
        ("https://example.org/hook#part", "fragment"),
        ("https://example.org/a hook", "spaces"),
        ("https:///hook", "host"),
        ("https://example.org:99999/hook", "cannot be read"),
        ("", "give the URL"),
    ]:
        with pytest.raises(webhooks.WebhookError, match=words):
            webhooks.register_webhook(db, url, ["member.subscribed"], "owner@example.org")
    with pytest.raises(webhooks.WebhookError, match="unknown event"):
        webhooks.register_webhook(db, "https://example.org/hook", ["member.deleted"], "owner@example.org")
    with pytest.raises(webhooks.WebhookError, match="at least one event"):
        webhooks.register_webhook(db, "https://example.org/hook", [], "owner@example.org")
    webhook = hook(db, "https://example.org/hook")
    secret = webhook.secret
    assert secret.startswith("whsec_")
    changed = webhooks.update_webhook(db, webhook.id, url="https://example.org/hook", events=["story.submitted"])
    assert changed == ["events"]
    assert webhooks.update_webhook(db, webhook.id, rotate_secret=True) == ["secret"]
    assert webhook.secret != secret


# --- signing ----------------------------------------------------------------------------------------


def test_signatures_verify_and_refuse_tampering_and_old_timestamps():
    body = b'{"id":1}'
    header = webhooks.signature_header("whsec_x", body, timestamp=1_000_000)
    assert webhooks.verify_signature("whsec_x", header, body, now=1_000_100)
    assert webhooks.verify_signature("whsec_x", header, body.decode(), now=1_000_100)
    assert not webhooks.verify_signature("whsec_y", header, body, now=1_000_100)
    assert not webhooks.verify_signature("whsec_x", header, b'{"id":2}', now=1_000_100)
    assert not webhooks.verify_signature("whsec_x", header, body, tolerance=300, now=1_000_301)
    assert not webhooks.verify_signature("whsec_x", header, body, now=999_600)
    # A rotated secret: the receiver may list several v1 values; one matching is enough.
    other = webhooks.signature("whsec_old", 1_000_000, body)
    assert webhooks.verify_signature("whsec_x", f"{header},v1={other}", body, now=1_000_000)
    for broken in ("", None, "v1=abc", "t=abc,v1=def", "t=1000000", "nonsense", "t=\u00b2,v1=def"):
        assert not webhooks.verify_signature("whsec_x", broken, body, now=1_000_000)


def test_a_delivery_is_posted_signed_and_logged(db, receiver):
    webhook = hook(db, receiver.url)
    delivery_id = subscribed_event(db)
    assert webhooks.deliver(db, delivery_id) == "delivered"
    (request,) = receiver.requests
    assert request.path == "/hook"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Cop-Mail-Event"] == "member.subscribed"
    assert request.headers["X-Cop-Mail-Delivery"] == str(delivery_id)
    assert webhooks.verify_signature(webhook.secret, request.headers["X-Cop-Mail-Signature"], request.body)
    assert not webhooks.verify_signature(webhook.secret, request.headers["X-Cop-Mail-Signature"], request.body + b" ")
    document = request.json
    assert (document["id"], document["event"]) == (delivery_id, "member.subscribed")
    assert document["data"]["member"]["email"] == "ana.lima@example.org"
    assert document["data"]["list"]["name"] == "Everyone" and document["data"]["source"] == "form"
    done = row(db, delivery_id)
    assert (done.status, done.attempts, done.last_status_code) == ("delivered", 1, 200)
    assert done.response_excerpt == "thanks" and done.delivered_at is not None
    assert [entry["code"] for entry in done.history] == [200]
    assert webhooks.deliver(db, delivery_id) == "delivered"  # a second job does nothing
    assert len(receiver.requests) == 1


def test_errors_are_retried_with_doubling_backoff_then_fail(db, receiver):
    receiver.mode = "error"
    hook(db, receiver.url)
    delivery_id = subscribed_event(db)
    moment = utcnow()
    waits = []
    for attempt in range(1, webhooks.MAX_ATTEMPTS + 1):
        status = webhooks.deliver(db, delivery_id, now=moment)
        current = row(db, delivery_id)
        assert (current.attempts, current.last_status_code) == (attempt, 500)
        assert current.last_error == "the receiver answered 500" and current.response_excerpt == "boom"
        if attempt < webhooks.MAX_ATTEMPTS:
            assert status == "pending"
            waits.append(current.next_attempt_at - moment)
            # Not due yet: another job now sends nothing.
            assert webhooks.deliver(db, delivery_id, now=moment + waits[-1] - timedelta(seconds=1)) == "pending"
            moment = current.next_attempt_at
        else:
            assert status == "failed" and current.next_attempt_at is None
    assert waits == [timedelta(seconds=30 * 2**n) for n in range(webhooks.MAX_ATTEMPTS - 1)]
    assert len(receiver.requests) == webhooks.MAX_ATTEMPTS
    assert [entry["code"] for entry in row(db, delivery_id).history] == [500] * webhooks.MAX_ATTEMPTS
    assert webhooks.retry_delay(20) == webhooks.MAX_RETRY


def test_a_receiver_that_does_not_answer_in_time(db, receiver):
    assert webhooks.TIMEOUT_SECONDS == 10
    receiver.mode, receiver.delay = "slow", 2.0
    hook(db, receiver.url)
    delivery_id = subscribed_event(db)
    started = time.monotonic()
    assert webhooks.deliver(db, delivery_id, timeout=0.5) == "pending"
    assert time.monotonic() - started < 1.8
    current = row(db, delivery_id)
    assert current.last_status_code is None
    assert current.last_error == "no answer within 0.5 seconds"
    assert current.history[0]["code"] is None


def test_redirects_are_not_followed(db, receiver):
    receiver.mode = "redirect"
    hook(db, receiver.url)
    delivery_id = subscribed_event(db)
    assert webhooks.deliver(db, delivery_id) == "pending"
    current = row(db, delivery_id)
    assert current.last_status_code == 302
    assert "do not follow redirects" in current.last_error and "/elsewhere" in current.last_error
    assert [request.path for request in receiver.requests] == ["/hook"]


def test_nothing_listening_is_a_clear_failure(db):
    hook(db, f"http://127.0.0.1:{free_port()}/hook")
    delivery_id = subscribed_event(db)
    assert webhooks.deliver(db, delivery_id) == "pending"
    assert "connection refused" in row(db, delivery_id).last_error


def test_odd_answers_are_stored_safely(db, receiver):
    receiver.mode = "nul"
    hook(db, receiver.url)
    delivery_id = subscribed_event(db)
    assert webhooks.deliver(db, delivery_id) == "delivered"
    assert row(db, delivery_id).response_excerpt == "ok\ufffd\ufffd"


def self_signed(folder: Any) -> ssl.SSLContext:
    """A server context with a certificate no client trusts."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (folder / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context


def test_https_receivers_must_have_a_trusted_certificate(db, tmp_path):
    server = Receiver(tls=self_signed(tmp_path))
    server.start()
    try:
        hook(db, server.url)
        delivery_id = subscribed_event(db)
        assert webhooks.deliver(db, delivery_id) == "pending"
        assert "TLS problem" in row(db, delivery_id).last_error
        assert "CERTIFICATE_VERIFY_FAILED" in row(db, delivery_id).last_error
        assert server.requests == []
    finally:
        server.stop()


def test_replay_sends_the_same_body_with_a_fresh_signature(db, receiver):
    webhook = hook(db, receiver.url)
    delivery_id = subscribed_event(db)
    receiver.mode = "error"
    moment = utcnow()
    for _ in range(webhooks.MAX_ATTEMPTS):
        webhooks.deliver(db, delivery_id, now=moment)
        moment += webhooks.MAX_RETRY
    assert row(db, delivery_id).status == "failed"
    receiver.mode = "ok"
    webhooks.replay(db, delivery_id)
    db.commit()
    assert (row(db, delivery_id).status, row(db, delivery_id).attempts) == ("pending", 0)
    assert webhooks.deliver(db, delivery_id) == "delivered"
    first, last = receiver.requests[0], receiver.requests[-1]
    assert first.body == last.body
    assert last.headers["X-Cop-Mail-Delivery"] == str(delivery_id)
    assert webhooks.verify_signature(webhook.secret, last.headers["X-Cop-Mail-Signature"], last.body)
    assert len(row(db, delivery_id).history) == webhooks.MAX_ATTEMPTS + 1


def test_a_switched_off_webhook_sends_nothing(db, receiver):
    webhook = hook(db, receiver.url)
    delivery_id = subscribed_event(db)
    webhooks.update_webhook(db, webhook.id, active=False)
    db.commit()
    assert webhooks.deliver(db, delivery_id) == "failed"
    assert "switched off" in row(db, delivery_id).last_error
    assert receiver.requests == []


def test_erasing_a_member_deletes_the_deliveries_about_them(db):
    hook(db, "https://example.org/hook")
    delivery_id = subscribed_event(db)
    member_id = row(db, delivery_id).member_id
    privacy.erase_member(db, member_id)
    db.commit()
    db.expire_all()
    assert db.get(WebhookDelivery, delivery_id) is None


# --- workers ---------------------------------------------------------------------------------------------


def test_workers_deliver_and_a_redis_restart_loses_nothing(db, receiver, redis_conn, redis_server, run_jobs):
    webhook = hook(db, receiver.url)
    first = subscribed_event(db)
    ring(redis_conn, [first])
    assert run_jobs() == 0
    assert row(db, first).status == "delivered"

    member = add_member(db, "Bo Chen")
    assert events.emit_member_complained(db, member.id) == []  # not subscribed to complaints
    (second,) = events.emit_member_subscribed(db, member.id)
    db.commit()
    ring(redis_conn, [second])
    redis_server.restart_empty()  # the doorbell is lost with Redis's memory
    assert run_jobs() == 0
    assert row(db, second).status == "pending" and len(receiver.requests) == 1

    assert webhook_retry_job() == 1
    assert run_jobs() == 0
    assert row(db, second).status == "delivered"
    request = receiver.requests[-1]
    assert webhooks.verify_signature(webhook.secret, request.headers["X-Cop-Mail-Signature"], request.body)
    assert request.json["data"]["member"]["email"] == "bo.chen@example.org"
    assert webhook_retry_job() == 0  # nothing is due any more


def test_an_attempt_cut_off_by_a_crash_is_due_again_after_its_lease(db, receiver):
    hook(db, receiver.url)
    delivery_id = subscribed_event(db)
    moment = utcnow()
    assert webhooks.claim(db, delivery_id, moment)  # a worker took it and died before answering
    assert webhooks.due_deliveries(db, moment) == []
    assert webhooks.due_deliveries(db, moment + webhooks.LEASE) == [delivery_id]
    assert webhooks.deliver(db, delivery_id, now=moment + webhooks.LEASE) == "delivered"
    assert row(db, delivery_id).attempts == 2
