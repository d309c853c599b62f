"""Real mail over SMTP to the running inbound receiver, processed by real RQ jobs,
checked in the database: every path ends in a recorded state with a reason."""

from __future__ import annotations

import smtplib
from datetime import timedelta
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from sqlalchemy import select

from cop_mail.db import utcnow
from cop_mail.inbound import receiver
from cop_mail.inbound.jobs import reconcile_inbound_job
from cop_mail.models import (
    Campaign,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    InboundMessage,
    Member,
    MemberStatus,
    Suppression,
)
from cop_mail.tokens import address_hash, make_address_token
from tests.conftest import free_port
from tests.corpus.inbound import multipart, part, status_block

DOMAIN = "cop-mail.test"


@pytest.fixture
def inbox(settings, run_jobs):
    """The receiver on a free port, and a function that sends raw bytes to it."""
    port = free_port()
    controller = receiver.start(settings, "127.0.0.1", port)

    def send(raw: bytes, to: str, sender: str = "ana@example.org") -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.sendmail(sender, [to], crlf(raw))

    send.port = port  # type: ignore[attr-defined]
    yield send
    controller.stop()


@pytest.fixture
def sent(db, settings):
    """Ana, a member who received campaign mail with a known Message-ID."""
    member = Member(email="ana@example.org", name="Ana Lima")
    campaign = Campaign(name="September newsletter", subject="Reciprocity", status=CampaignStatus.SENT)
    db.add_all([member, campaign])
    db.flush()
    delivery = Delivery(
        campaign_id=campaign.id,
        member_id=member.id,
        status=DeliveryStatus.SENT,
        message_id=f"<c{campaign.id}.m{member.id}@{DOMAIN}>",
    )
    db.add(delivery)
    db.commit()
    return member, campaign, delivery


def crlf(raw: bytes) -> bytes:
    """SMTP speaks CRLF; smtplib only converts line ends of str messages."""
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def human(
    body: str,
    subject: str = "Re: Reciprocity",
    sender: str = "Ana Lima <ana@example.org>",
    to: str = "community@cop-mail.test",
    html: str | None = None,
    **headers: str,
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="example.org")
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message.as_bytes()


def stored(db) -> list[InboundMessage]:
    db.expire_all()
    return db.scalars(select(InboundMessage).order_by(InboundMessage.id)).all()


def reply_address(settings, kind: str, object_id: int, member_id: int) -> str:
    return f"reply+{make_address_token(settings.secret_key, kind, object_id, member_id)}@{DOMAIN}"


def bounce_address(settings, delivery_id: int, member_id: int) -> str:
    return f"bounces+{make_address_token(settings.secret_key, 'bounce', delivery_id, member_id)}@{DOMAIN}"


def a_dsn(to: str, recipient: str, status: str, original_id: str) -> bytes:
    headers = [
        ("From", "Mail Delivery System <MAILER-DAEMON@mx.example.net>"),
        ("To", to),
        ("Subject", "Undelivered Mail Returned to Sender"),
        ("Message-ID", make_msgid(domain="mx.example.net")),
        ("Auto-Submitted", "auto-replied"),
    ]
    action = "failed" if status.startswith("5") else "delayed"
    block = status_block(recipient, action, status, f"{status[0]}50 {status} mailbox problem")
    original = f"From: community@{DOMAIN}\nTo: {recipient}\nMessage-ID: {original_id}\nSubject: Reciprocity\n"
    parts = [
        part("text/plain; charset=us-ascii", "Your message could not be delivered."),
        part("message/delivery-status", f"Reporting-MTA: dns; mx.example.net\n\n{block}\n"),
        part("text/rfc822-headers", original),
    ]
    return multipart(headers, parts, subtype="report", params="; report-type=delivery-status")


def test_auto_reply_is_discarded_and_never_counts(inbox, run_jobs, db, settings, sent):
    member, campaign, _ = sent
    raw = human(
        "I am out of the office until Monday.", subject="Automatic reply: Reciprocity", Auto_Submitted="auto-replied"
    )
    inbox(raw, reply_address(settings, "campaign", campaign.id, member.id))
    assert run_jobs() == 0
    [message] = stored(db)
    assert message.status == "discarded"
    assert "automatic" in message.reason
    assert db.get(Member, member.id).last_engaged_at is None


def test_hard_bounce_suppresses_the_member_at_once(inbox, run_jobs, db, settings, sent):
    member, campaign, delivery = sent
    inbox(
        a_dsn(bounce_address(settings, delivery.id, member.id), member.email, "5.1.1", delivery.message_id),
        bounce_address(settings, delivery.id, member.id),
        sender="",
    )
    assert run_jobs() == 0
    [message] = stored(db)
    assert (message.status, message.classification) == ("processed", "bounce_hard")
    assert db.get(Member, member.id).status == MemberStatus.BOUNCED
    assert db.get(Delivery, delivery.id).bounce_type == "hard"
    assert (
        db.scalar(select(Suppression.reason).where(Suppression.email_hash == address_hash(member.email))) == "bounced"
    )


def test_soft_bounces_add_up_to_a_threshold(inbox, run_jobs, db, settings, sent):
    member, campaign, delivery = sent
    address = bounce_address(settings, delivery.id, member.id)
    for round_number in range(1, 4):
        inbox(a_dsn(address, member.email, "4.2.2", delivery.message_id), address, sender="")
        assert run_jobs() == 0
        db.expire_all()
        status = db.get(Member, member.id).status
        assert status == (MemberStatus.BOUNCED if round_number == 3 else MemberStatus.ACTIVE), [
            m.reason for m in stored(db)
        ]
    assert [m.classification for m in stored(db)] == ["bounce_soft"] * 3, [m.reason for m in stored(db)]


def test_old_soft_bounces_decay(db, settings, sent):
    from cop_mail.inbound.processing import _add_soft_bounce

    member, _, _ = sent
    now = utcnow()
    _add_soft_bounce(member, now - timedelta(days=60))
    _add_soft_bounce(member, now - timedelta(days=60))
    assert _add_soft_bounce(member, now) == pytest.approx(1.5)


def test_arf_complaint_unsubscribes_and_suppresses(inbox, run_jobs, db, settings, sent):
    member, campaign, delivery = sent
    feedback = (
        "Feedback-Type: abuse\nUser-Agent: SomeFBL/1.0\nVersion: 1\n"
        f"Original-Mail-From: <{bounce_address(settings, delivery.id, member.id)}>\n"
        f"Original-Rcpt-To: <{member.email}>\n"
    )
    original = f"From: community@{DOMAIN}\nTo: {member.email}\nMessage-ID: {delivery.message_id}\nSubject: x\n"
    raw = multipart(
        [
            ("From", "fbl@isp.example.net"),
            ("To", f"abuse@{DOMAIN}"),
            ("Subject", "Abuse report"),
            ("Message-ID", make_msgid(domain="isp.example.net")),
        ],
        [
            part("text/plain", "An abuse report."),
            part("message/feedback-report", feedback),
            part("text/rfc822-headers", original),
        ],
        subtype="report",
        params="; report-type=feedback-report",
    )
    inbox(raw, bounce_address(settings, delivery.id, member.id), sender="fbl@isp.example.net")
    assert run_jobs() == 0
    [message] = stored(db)
    assert (message.status, message.classification) == ("processed", "complaint")
    assert db.get(Member, member.id).status == MemberStatus.COMPLAINED
    assert db.scalar(select(Suppression.reason).where(Suppression.email_hash == address_hash(member.email)))


def test_forged_and_unknown_addresses_are_refused_at_rcpt(inbox, db, settings, sent):
    member, campaign, _ = sent
    good = reply_address(settings, "campaign", campaign.id, member.id)
    local, domain = good.split("@")
    forged = local[:-3] + ("aaa" if not local.endswith("aaa") else "bbb") + "@" + domain
    for address in (forged, f"nobody@{DOMAIN}", "someone@elsewhere.example", f"bounces+{local[6:]}@{DOMAIN}"):
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            inbox(human("yes"), address)
        code, text = refused.value.recipients[address]
        assert code == 550, address
        assert b"Refused" in text
    assert stored(db) == []


def test_oversize_message_is_refused_with_552(make_settings, redis_conn, engine):
    small = make_settings(inbound_max_bytes=2048)
    port = free_port()
    controller = receiver.start(small, "127.0.0.1", port)
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp, pytest.raises(smtplib.SMTPException) as caught:
            smtp.sendmail("ana@example.org", [f"stories@{DOMAIN}"], human("x" * 5000))
    finally:
        controller.stop()
    assert "552" in str(caught.value)


def test_the_same_message_id_is_processed_once(inbox, run_jobs, db, settings, sent):
    member, campaign, _ = sent
    raw = human("Thank you for this issue!")
    address = reply_address(settings, "campaign", campaign.id, member.id)
    inbox(raw, address)
    inbox(raw, address)
    assert run_jobs() == 0
    statuses = [m.status for m in stored(db)]
    assert statuses == ["processed", "duplicate"]
    assert "arrived earlier" in stored(db)[1].reason


def test_reply_to_a_campaign_records_engagement(inbox, run_jobs, db, settings, sent):
    member, campaign, _ = sent
    inbox(
        human("This made my week.\n\n> quoted newsletter"), reply_address(settings, "campaign", campaign.id, member.id)
    )
    assert run_jobs() == 0
    [message] = stored(db)
    assert (message.status, message.member_id, message.subject_kind, message.intent) == (
        "processed",
        member.id,
        "campaign",
        "reply",
    )
    assert db.get(Member, member.id).last_engaged_at is not None


def test_reply_without_a_token_is_matched_by_thread(inbox, run_jobs, db, settings, sent):
    member, campaign, delivery = sent
    raw = human("Lovely issue", In_Reply_To=delivery.message_id, References=delivery.message_id)
    inbox(raw, f"reply@{DOMAIN}")
    assert run_jobs() == 0
    [message] = stored(db)
    assert (message.status, message.member_id, message.subject_kind, message.subject_id) == (
        "processed",
        member.id,
        "campaign",
        campaign.id,
    )


def test_reply_with_neither_token_nor_thread_is_quarantined(inbox, run_jobs, db, settings, sent):
    inbox(human("Who is this?", In_Reply_To="<unknown@example.net>"), f"reply@{DOMAIN}")
    assert run_jobs() == 0
    [message] = stored(db)
    assert message.status == "quarantined"
    assert "missing token" in message.reason and "thread" in message.reason


def test_sender_mismatch_goes_to_the_coordinators(inbox, run_jobs, db, settings, sent):
    member, campaign, _ = sent
    inbox(
        human("yes", sender="Mallory <mallory@example.net>"),
        reply_address(settings, "campaign", campaign.id, member.id),
        sender="mallory@example.net",
    )
    assert run_jobs() == 0
    [message] = stored(db)
    assert message.status == "needs_review"
    assert "sender mismatch" in message.reason and "mallory@example.net" in message.reason


def test_command_by_reply_pauses_and_confirms(inbox, run_jobs, db, settings, sent, smtp_sink, make_settings):
    member, campaign, _ = sent
    inbox(human("PAUSE 2 months\n\nthanks"), reply_address(settings, "campaign", campaign.id, member.id))
    assert run_jobs() == 0
    db.expire_all()
    paused = db.get(Member, member.id).paused_until
    assert paused is not None and timedelta(days=55) < paused - utcnow() < timedelta(days=63)
    [message] = stored(db)
    assert message.intent == "command:pause"


def test_message_stored_while_redis_is_down_is_processed_later(inbox, run_jobs, db, settings, sent, redis_server):
    member, campaign, _ = sent
    redis_server.kill()
    try:
        inbox(human("Thanks!"), reply_address(settings, "campaign", campaign.id, member.id))
    finally:
        redis_server.start()
    [message] = stored(db)
    assert message.status == "received"
    message.received_at = utcnow() - timedelta(minutes=5)
    db.commit()
    assert reconcile_inbound_job() == 1
    assert run_jobs() == 0
    assert [m.status for m in stored(db)] == ["processed"]
    assert reconcile_inbound_job() == 0


def tiny_png() -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    pixels = zlib.compress(b"\x00\xff\x00\x00")  # one red pixel
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def test_a_story_with_an_image_becomes_a_submitted_story(inbox, run_jobs, db, settings, sent):
    from cop_mail.models.stories import Story

    member, _, _ = sent
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "Ana Lima <ana@example.org>", f"stories@{DOMAIN}", "Seed swap"
    message["Message-ID"] = make_msgid(domain="example.org")
    message.set_content("We swapped seeds with the school garden and everyone went home with something.")
    message.add_attachment(tiny_png(), maintype="image", subtype="png", filename="swap.png")
    message.add_attachment(b"MZ not an image", maintype="image", subtype="jpeg", filename="fake.jpg")
    inbox(message.as_bytes(), f"stories@{DOMAIN}")
    assert run_jobs() == 0
    [stored_message] = stored(db)
    assert (stored_message.status, stored_message.subject_kind) == ("processed", "story")
    story = db.get(Story, stored_message.subject_id)
    assert story.author_id == member.id and story.title == "Seed swap" and story.status == "submitted"
    assert "school garden" in story.body
    assert [image.original_name for image in story.images] == ["swap.png"]
    assert "fake.jpg" in story.intake_note


def test_a_story_from_a_stranger_is_quarantined(inbox, run_jobs, db):
    inbox(human("My story", sender="Zed <zed@example.net>"), f"stories@{DOMAIN}", sender="zed@example.net")
    assert run_jobs() == 0
    [message] = stored(db)
    assert message.status == "quarantined" and "not a member" in message.reason


def test_lmtp_receiver_stores_mail(settings, db, sent):
    import smtplib as smtp_module

    member, campaign, _ = sent
    port = free_port()
    controller = receiver.start(settings, "127.0.0.1", port, lmtp=True)
    try:
        with smtp_module.LMTP("127.0.0.1", port) as lmtp:
            refused = lmtp.sendmail(
                "ana@example.org",
                [reply_address(settings, "campaign", campaign.id, member.id)],
                crlf(human("hello over LMTP")),
            )
    finally:
        controller.stop()
    assert refused == {}
    assert [m.source for m in stored(db)] == ["smtp"]


def test_webhook_accepts_raw_mime_only_with_the_secret(make_settings, make_app, run_jobs, db, sent):
    member, campaign, _ = sent
    app = make_app(make_settings(inbound_webhook_secret="hook-secret"))
    client = app.test_client()
    raw = human("Thanks for the issue", to=reply_address(app.config["COP_MAIL"], "campaign", campaign.id, member.id))
    assert client.post("/api/inbound/raw", data=raw).status_code == 401
    assert client.post("/api/inbound/raw", data=raw, headers={"Authorization": "Bearer wrong"}).status_code == 401
    response = client.post("/api/inbound/raw", data=raw, headers={"Authorization": "Bearer hook-secret"})
    assert response.status_code == 202
    assert run_jobs() == 0
    [message] = stored(db)
    assert (message.source, message.status, message.member_id) == ("webhook", "processed", member.id)


def test_webhook_is_off_without_a_secret(client):
    assert client.post("/api/inbound/raw", data=b"From: a@b\r\n\r\nx").status_code == 404


def test_inbox_shows_a_mismatch_and_a_coordinator_discards_it(inbox, run_jobs, db, settings, sent, client, login):
    member, campaign, _ = sent
    html = '<p>yes <img src="https://tracker.example/p.gif" alt="pixel"><script>x()</script></p>'
    raw = human("yes", sender="m@example.net", html=html)
    inbox(raw, reply_address(settings, "campaign", campaign.id, member.id), sender="m@example.net")
    assert run_jobs() == 0
    [message] = stored(db)
    login("viewer", "viewer@example.org")
    listing = client.get("/admin/inbox").get_data(as_text=True)
    assert "sender mismatch" in listing
    detail = client.get(f"/admin/inbox/{message.id}").get_data(as_text=True)
    assert "<script>" not in detail and "tracker.example" not in detail  # no remote content, no scripts
    assert "remote image removed" in detail
    from tests.conftest import csrf_token_from

    token = csrf_token_from(detail)
    assert client.post(f"/admin/inbox/{message.id}", data={"action": "discard", "csrf_token": token}).status_code == 403
    client.post("/logout", data={"csrf_token": token})
    login("coordinator", "coord@example.org")
    token = csrf_token_from(client.get(f"/admin/inbox/{message.id}").get_data(as_text=True))
    client.post(f"/admin/inbox/{message.id}", data={"action": "discard", "note": "spoofed", "csrf_token": token})
    db.expire_all()
    assert db.get(InboundMessage, message.id).status == "discarded"
    from cop_mail.models import AuditEvent

    assert db.scalar(select(AuditEvent.action).where(AuditEvent.target == f"inbound:{message.id}")) == "inbox.discard"


def test_webhook_refuses_envelope_values_with_nul(make_settings, make_app, db):
    app = make_app(make_settings(inbound_webhook_secret="hook-secret"))
    response = app.test_client().post(
        "/api/inbound/raw?to=%00", data=human("x"), headers={"Authorization": "Bearer hook-secret"}
    )
    assert response.status_code == 400
    assert stored(db) == []


def test_a_decline_sent_over_smtp_declines_the_introduction(inbox, run_jobs, db, settings):
    from cop_mail.connect import mail, rounds
    from cop_mail.models import Intro, IntroStatus
    from tests.conftest import add_member

    ana = add_member(db, "Ana Souza", values=("Reciprocity",))
    ben = add_member(db, "Ben Okafor", values=("Reciprocity",))
    intro, _ = rounds.introduce_by_hand(db, settings, ana.id, ben.id, "coordinator")
    db.commit()
    to = mail.reply_address(settings, "intro", intro.id, ana.id)
    inbox(human("No, thank you. Not for me right now.", sender=f"Ana <{ana.email}>", to=to), to, sender=ana.email)
    assert run_jobs() == 0
    db.expire_all()
    assert db.get(Intro, intro.id).status == IntroStatus.DECLINED
    [message] = [m for m in stored(db) if m.subject_kind == "intro"]
    assert (message.status, message.intent) == ("processed", "decline")
