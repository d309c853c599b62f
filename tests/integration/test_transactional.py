"""Transactional mail through a real RQ worker to a real SMTP sink: confirmations and manage links.

Every message is a Delivery row first, so a lost job, a refusal or a crash never loses it.
"""

from __future__ import annotations

import base64
import email
import email.policy
import re
from datetime import timedelta

import pytest
from rq import Queue
from sqlalchemy import func, select, update

from cop_mail.audience import subscriptions as subs
from cop_mail.audience.preferences import request_manage_link
from cop_mail.db import utcnow
from cop_mail.models import Campaign, Delivery, MailingList, Member
from cop_mail.queues import HIGH
from cop_mail.sending import transactional
from cop_mail.sending.transactional_jobs import reconcile_transactional_job
from cop_mail.tokens import read_address_token
from tests.conftest import TEST_SECRET, csrf_token_from

LINK = re.compile(r"http://cop-mail\.test(/[A-Za-z0-9_./-]+)")


@pytest.fixture
def settings(make_settings, redis_conn, engine, smtp_sink):
    return make_settings(smtp_port=smtp_sink.port)



@pytest.fixture
def practitioners(db) -> MailingList:
    mailing_list = MailingList(name="Practitioners", slug="practitioners", opt_in="double", public=True)
    db.add(mailing_list)
    db.commit()
    return mailing_list


def sign_up(db, redis_conn, mailing_list, email_address="ana@example.org", name="Ana Lima") -> subs.SignupResult:
    result = subs.sign_up(db, mailing_list, subs.SignupRequest(email=email_address, name=name, ip="203.0.113.5"))
    db.commit()
    if result.delivery_id:
        transactional.enqueue_transactional(redis_conn, result.delivery_id)
    return result


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def bodies(message) -> tuple[str, str]:
    return (message.get_body(("plain",)).get_content(), message.get_body(("html",)).get_content())


def delivery(db, delivery_id) -> Delivery:
    db.expire_all()
    return db.get(Delivery, delivery_id)


def test_a_confirmation_email_reaches_the_member_and_its_button_confirms(
    db, redis_conn, run_jobs, smtp_sink, practitioners, client
):
    result = sign_up(db, redis_conn, practitioners)
    assert run_jobs((HIGH,)) == 0
    [sent] = smtp_sink.wait_for(1)
    message = parse(sent.data)
    assert sent.rcpt_tos == ["ana@example.org"]
    assert message["To"] == "Ana Lima <ana@example.org>"
    assert message["Subject"] == "Please confirm your subscription to Test Community"
    assert message["Auto-Submitted"] == "auto-generated"
    text, html = bodies(message)
    assert "Practitioners" in text and "1 Commons Lane, Testville" in text
    row = delivery(db, result.delivery_id)
    assert (row.status, row.smtp_code, row.attempts) == ("sent", 250, 1) and row.sent_at
    assert row.message_id == message["Message-ID"]
    assert db.get(Campaign, row.campaign_id).status == "sent"
    # The envelope sender is a signed bounce address naming this delivery.
    local = sent.mail_from.split("@", 1)[0]
    assert local.startswith("bounces+")
    token = local.removeprefix("bounces+")
    assert read_address_token(TEST_SECRET, token) == ("bounce", row.id, result.member_id)
    confirm_path = next(p for p in LINK.findall(text) if p.startswith("/confirm/"))
    assert f"http://cop-mail.test{confirm_path}" in html
    page = client.get(confirm_path)
    assert page.status_code == 200
    response = client.post(confirm_path, data={"csrf_token": csrf_token_from(page.get_data(as_text=True))})
    assert response.status_code == 200 and "You are subscribed" in response.get_data(as_text=True)
    db.expire_all()
    assert db.get(Member, result.member_id).status == "active"
    # Every email carries working preference and unsubscribe links.
    links_in_mail = LINK.findall(text)
    assert any(p.startswith("/preferences/") for p in links_in_mail)
    unsubscribe = next(p for p in links_in_mail if p.startswith("/unsubscribe/"))
    assert client.get(unsubscribe).status_code == 200


def test_running_the_job_twice_sends_once(db, redis_conn, run_jobs, smtp_sink, settings, practitioners):
    result = sign_up(db, redis_conn, practitioners)
    transactional.enqueue_transactional(redis_conn, result.delivery_id)
    assert run_jobs((HIGH,)) == 0
    assert transactional.deliver_transactional(db, settings, result.delivery_id) == "sent"
    smtp_sink.wait_for(1)
    assert len(smtp_sink.messages) == 1


def test_a_temporary_refusal_is_retried_later_and_then_delivered(
    db, redis_conn, run_jobs, smtp_sink, settings, practitioners
):
    smtp_sink.responder = lambda message: "451 4.7.1 greylisted, try again later"
    result = sign_up(db, redis_conn, practitioners)
    run_jobs((HIGH,))
    row = delivery(db, result.delivery_id)
    assert row.status == "deferred" and row.smtp_code == 451 and "greylisted" in row.last_error
    assert row.next_attempt_at > utcnow() + timedelta(seconds=30)
    assert transactional.reconcile_transactional(db) == []  # not due yet
    smtp_sink.responder = None
    db.execute(update(Delivery).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    db.commit()
    assert reconcile_transactional_job() == 1
    run_jobs((HIGH,))
    assert delivery(db, result.delivery_id).status == "sent"
    assert delivery(db, result.delivery_id).attempts == 2
    assert len(smtp_sink.messages) == 1 and len(smtp_sink.refused) == 1


def test_a_permanent_refusal_fails_once_and_suppresses_the_address(db, redis_conn, run_jobs, smtp_sink, practitioners):
    smtp_sink.responder = lambda message: "550 5.1.1 no such mailbox"
    result = sign_up(db, redis_conn, practitioners)
    run_jobs((HIGH,))
    row = delivery(db, result.delivery_id)
    assert (row.status, row.smtp_code, row.bounce_type) == ("failed", 550, "hard")
    assert db.get(Member, result.member_id).status == "bounced"
    assert transactional.reconcile_transactional(db, utcnow() + timedelta(days=1)) == []
    # Signing up again sends nothing: suppression wins.
    assert sign_up(db, redis_conn, practitioners).outcome is subs.SignupOutcome.REFUSED


def test_an_unreachable_server_defers_and_gives_up_after_the_last_attempt(
    db, redis_conn, make_settings, smtp_sink, practitioners
):
    closed = make_settings(smtp_port=1, smtp_timeout=2)
    result = sign_up(db, redis_conn, practitioners)
    for attempt in range(1, transactional.MAX_ATTEMPTS + 1):
        db.execute(update(Delivery).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
        db.commit()
        status = transactional.deliver_transactional(db, closed, result.delivery_id)
        assert status == ("failed" if attempt == transactional.MAX_ATTEMPTS else "deferred")
    row = delivery(db, result.delivery_id)
    assert row.attempts == transactional.MAX_ATTEMPTS and row.last_error.startswith("gave up")
    assert db.get(Campaign, row.campaign_id).status == "failed"


def test_a_lost_job_is_found_by_the_reconciler(db, redis_conn, run_jobs, smtp_sink, practitioners):
    result = subs.sign_up(db, practitioners, subs.SignupRequest(email="ana@example.org"))
    db.commit()  # committed, but the doorbell never rang (Redis was down)
    assert transactional.reconcile_transactional(db) == []  # too fresh to call lost
    later = utcnow() + transactional.LOST_JOB_AFTER + timedelta(seconds=1)
    assert transactional.reconcile_transactional(db, later) == [result.delivery_id]
    db.execute(update(Delivery).values(created_at=utcnow() - timedelta(minutes=10)))
    db.commit()
    assert reconcile_transactional_job() == 1
    assert len(Queue(HIGH, connection=redis_conn)) == 1
    run_jobs((HIGH,))
    assert len(smtp_sink.wait_for(1)) == 1


def test_a_sender_that_died_mid_send_hands_the_message_back(db, redis_conn, run_jobs, smtp_sink, practitioners):
    result = subs.sign_up(db, practitioners, subs.SignupRequest(email="ana@example.org"))
    db.commit()
    db.execute(update(Delivery).values(status="sending", attempts=1, lease_until=utcnow() - timedelta(seconds=1)))
    db.commit()
    assert transactional.reconcile_transactional(db) == [result.delivery_id]
    assert delivery(db, result.delivery_id).status == "deferred"
    assert reconcile_transactional_job() == 1
    run_jobs((HIGH,))
    assert delivery(db, result.delivery_id).status == "sent"
    assert len(smtp_sink.wait_for(1)) == 1


def test_a_member_who_bounced_before_the_send_gets_nothing(db, redis_conn, run_jobs, smtp_sink, practitioners):
    result = sign_up(db, redis_conn, practitioners)
    db.execute(update(Member).values(status="complained"))
    db.commit()
    run_jobs((HIGH,))
    assert delivery(db, result.delivery_id).status == "suppressed"
    assert smtp_sink.messages == []


def test_a_message_that_cannot_be_composed_is_recorded_as_failed(db, redis_conn, run_jobs, smtp_sink, practitioners):
    result = sign_up(db, redis_conn, practitioners)
    db.delete(db.get(MailingList, practitioners.id))
    db.commit()
    assert run_jobs((HIGH,)) == 0
    row = delivery(db, result.delivery_id)
    assert row.status == "failed" and "no longer exists" in row.last_error
    assert smtp_sink.messages == []


def test_nothing_is_recorded_for_an_address_that_may_not_receive_mail(db, practitioners):
    member = Member(email="gone@example.org", status="bounced", attributes={})
    db.add(member)
    db.commit()
    assert transactional.queue_transactional(db, "manage_link", member.id, {}) is None
    assert db.scalar(select(func.count(Delivery.id))) == 0


def test_a_manage_link_arrives_and_opens_the_preference_centre(db, redis_conn, run_jobs, smtp_sink, client):
    member = Member(email="ben@example.org", name="Ben", attributes={})
    db.add(member)
    db.commit()
    delivery_id = request_manage_link(db, "Ben@Example.org", ip="192.0.2.1")
    db.commit()
    transactional.enqueue_transactional(redis_conn, delivery_id)
    run_jobs((HIGH,))
    [sent] = smtp_sink.wait_for(1)
    message = parse(sent.data)
    assert message["Subject"] == "Your link to manage what Test Community sends you"
    text, _html = bodies(message)
    assert "7 days" in text
    paths = [p for p in LINK.findall(text) if p.startswith("/preferences/")]
    pages = [client.get(path) for path in paths]
    assert pages and all(page.status_code == 200 for page in pages)
    assert "ben@example.org" in pages[0].get_data(as_text=True)


def test_unknown_kinds_are_refused(db, settings, practitioners):
    member = Member(email="c@example.org", attributes={})
    db.add(member)
    db.commit()
    delivery_id = transactional.queue_transactional(db, "no_such_kind", member.id, {})
    db.commit()
    assert transactional.deliver_transactional(db, settings, delivery_id) == "failed"
    assert "no transactional message kind" in delivery(db, delivery_id).last_error


def test_dkim_signed_when_a_key_is_configured(db, make_settings, smtp_sink, practitioners):
    import dkim
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    signed_settings = make_settings(smtp_port=smtp_sink.port, dkim_selector="s1", dkim_private_key=pem)
    result = subs.sign_up(db, practitioners, subs.SignupRequest(email="ana@example.org"))
    db.commit()
    assert transactional.deliver_transactional(db, signed_settings, result.delivery_id) == "sent"
    [sent] = smtp_sink.wait_for(1)
    assert sent.data.startswith(b"DKIM-Signature:")
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    assert dkim.verify(sent.data, dnsfunc=lambda name, timeout=5: record)


def test_an_internationalised_domain_goes_out_in_its_ascii_form(db, settings, smtp_sink, practitioners):
    result = subs.sign_up(db, practitioners, subs.SignupRequest(email="Ana@Bücher.example", name="Ana Müller"))
    db.commit()
    assert db.get(Member, result.member_id).email == "ana@bücher.example"
    assert transactional.deliver_transactional(db, settings, result.delivery_id) == "sent"
    [sent] = smtp_sink.wait_for(1)
    assert sent.rcpt_tos == ["ana@xn--bcher-kva.example"]
    message = parse(sent.data)
    assert message["To"].addresses[0].display_name == "Ana Müller"
    assert message["To"].addresses[0].addr_spec == "ana@xn--bcher-kva.example"


def test_a_name_with_line_breaks_cannot_add_a_header(db, settings, smtp_sink, practitioners):
    evil = "Ana\r\nBcc: victim@example.org"
    result = subs.sign_up(db, practitioners, subs.SignupRequest(email="ana@example.org", name=evil))
    db.commit()
    assert transactional.deliver_transactional(db, settings, result.delivery_id) == "sent"
    [sent] = smtp_sink.wait_for(1)
    assert sent.rcpt_tos == ["ana@example.org"]
    message = parse(sent.data)
    assert message["Bcc"] is None and "victim" not in str(message["To"].addresses[0].addr_spec)
