"""What a campaign message carries: headers, VERP envelope, DKIM, and no way to inject a header."""

from __future__ import annotations

import email
from email import policy

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select, update

from cop_mail.models import Campaign, Delivery, Member
from cop_mail.sending import pipeline
from cop_mail.sending.dkim_signer import public_key_record
from cop_mail.tokens import read_address_token
from tests.conftest import TEST_SECRET, seed_list_members
from tests.integration.test_sending_pipeline import drain, make_campaign, start


@pytest.fixture
def send_settings(make_settings, smtp_sink, redis_conn, engine):
    return make_settings(smtp_port=smtp_sink.port, send_batch_size=50, smtp_timeout=5)


def parsed(sink_message):
    return email.message_from_bytes(sink_message.data, policy=policy.default)


def test_headers_envelope_and_stored_message_id(db, engine, send_settings, smtp_sink):
    list_id = seed_list_members(engine, 3)
    campaign_id = make_campaign(db, list_id)
    start(db, campaign_id)
    drain(engine, send_settings, campaign_id)

    assert len(smtp_sink.messages) == 3
    for received in smtp_sink.messages:
        message = parsed(received)
        row = db.scalar(select(Delivery).where(Delivery.message_id == message["Message-ID"]))
        assert row is not None and row.status == "sent"
        member = db.get(Member, row.member_id)
        assert received.rcpt_tos == [member.email]
        # VERP: the envelope sender names the delivery row, signed.
        local, domain = received.mail_from.split("@")
        assert domain == "cop-mail.test" and local.startswith("bounces+")
        assert read_address_token(TEST_SECRET, local.split("+", 1)[1]) == ("bounce", row.id, member.id)
        unsubscribe = message["List-Unsubscribe"]
        assert "<http://cop-mail.test/unsubscribe/" in unsubscribe and "<mailto:reply+" in unsubscribe
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message["Feedback-ID"].startswith(f"{campaign_id}:newsletter:")
        assert message["Precedence"] == "bulk"
        assert message["List-Id"].endswith("<newsletter.cop-mail.test>")
        assert message["Date"] and message["From"] == "Test Community <community@cop-mail.test>"
        # Replies come back to an address naming this member and campaign.
        reply_to = message["Reply-To"].addresses[0]
        assert reply_to.domain == "cop-mail.test" and reply_to.username.startswith("reply+")
        assert read_address_token(TEST_SECRET, reply_to.username.split("+", 1)[1]) == (
            "campaign",
            campaign_id,
            member.id,
        )
        words = "unsubscribe%20newsletters"  # read by the reply commands as "unsubscribe newsletters"
        assert f"mailto:{reply_to.addr_spec}?subject={words}&body={words}" in unsubscribe
        assert message["Subject"] == "Hello Member"


@pytest.mark.parametrize(
    "name",
    ["Eve\r\nBcc: victim@example.net", "Eve\nTo: victim@example.net", "Eve\r\n\r\nbody", "Ève\u2028Cc: x@y.z"],
)
def test_line_breaks_in_names_and_subjects_never_add_a_header_or_recipient(db, engine, send_settings, smtp_sink, name):
    list_id = seed_list_members(engine, 1)
    db.execute(update(Member).values(name=name))
    campaign_id = make_campaign(db, list_id)
    # The service keeps subjects on one line; write a hostile one directly to test the last line of defence.
    db.execute(update(Campaign).values(subject="Hi\r\nBcc: victim@example.net"))
    db.commit()
    start(db, campaign_id)
    drain(engine, send_settings, campaign_id)

    (received,) = smtp_sink.messages
    assert received.rcpt_tos == ["member1@example.org"]
    message = parsed(received)
    for header in ("Bcc", "Cc"):
        assert message[header] is None
    assert len(message.get_all("To")) == 1 and len(message.get_all("Subject")) == 1
    assert [a.addr_spec for a in message["To"].addresses] == ["member1@example.org"]
    names = [name.lower() for name in message]
    assert len(names) == len(set(names) - {"dkim-signature"}) and "bcc" not in names and "cc" not in names


def test_dkim_signature_verifies_and_covers_the_unsubscribe_headers(db, engine, make_settings, smtp_sink, redis_conn):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    settings = make_settings(
        smtp_port=smtp_sink.port, dkim_selector="s1", dkim_domain="cop-mail.test", dkim_private_key=pem
    )
    list_id = seed_list_members(engine, 2)
    campaign_id = make_campaign(db, list_id)
    start(db, campaign_id)
    pipeline.CampaignComposer._cache.clear()
    drain(engine, settings, campaign_id)

    record = public_key_record(pem).encode()
    for received in smtp_sink.messages:
        assert dkim.verify(received.data, dnsfunc=lambda name, timeout=5: record)
        signature = parsed(received)["DKIM-Signature"]
        signed = signature.split("h=")[1].split(";")[0].replace(" ", "").replace("\r\n", "")
        assert "list-unsubscribe" in signed and "list-unsubscribe-post" in signed and "from" in signed
