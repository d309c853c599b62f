from __future__ import annotations

import pytest

from cop_mail.inbound.classify import (
    ClassificationKind,
    automatic_reason,
    classify_message,
    read_delivery_status,
    read_feedback_report,
)
from cop_mail.inbound.parsing import parse_message
from tests.corpus.inbound import (
    BOUNCE_TOKEN,
    SENT_ID,
    arf,
    dsn,
    dsn_headers,
    reply_headers,
    status_block,
    text_message,
)

DAEMON = "MAILER-DAEMON@mx.example.net"


def classify(raw: bytes, envelope_sender: str | None = "ana@example.com"):
    return classify_message(parse_message(raw), envelope_sender=envelope_sender)


def test_human_reply():
    result = classify(text_message(reply_headers(), "Yes, happy to!"))
    assert result.kind is ClassificationKind.HUMAN and result.is_human
    assert result.bounce is None and result.complaint is None


@pytest.mark.parametrize(
    ("header", "value", "reason"),
    [
        ("Auto-Submitted", "auto-replied", "Auto-Submitted: auto-replied"),
        ("Auto-Submitted", "", "Auto-Submitted: empty"),
        ("X-Autoreply", "yes", "X-Autoreply header"),
        ("X-Autorespond", "on", "X-Autorespond header"),
        ("Precedence", "Bulk", "Precedence: bulk"),
        ("Precedence", "auto_reply", "Precedence: auto_reply"),
        ("X-Auto-Response-Suppress", "OOF", "X-Auto-Response-Suppress header"),
        ("List-Id", "<garden.lists.example.net>", "mailing list mail (List-Id)"),
        ("List-Unsubscribe", "<mailto:x@example.net>", "mailing list mail (List-Unsubscribe)"),
    ],
)
def test_automatic_headers_give_a_reason(header: str, value: str, reason: str):
    result = classify(text_message(reply_headers(extra=((header, value),)), "Yes, happy to!"))
    assert result.kind is ClassificationKind.AUTO_REPLY
    assert result.reason == reason


@pytest.mark.parametrize(
    "sender",
    ["mailer-daemon@x.example", "Postmaster@x.example", "noreply@x.example", "no-reply+abc@x.example",
     "no_reply@x.example", "donotreply@x.example", "do-not-reply@x.example", "bounce@x.example"],
)  # fmt: skip
def test_automatic_senders(sender: str):
    raw = text_message(reply_headers(sender=sender), "Yes")
    assert classify(raw).kind is ClassificationKind.AUTO_REPLY
    assert classify(text_message(reply_headers(), "Yes"), envelope_sender=sender).kind is ClassificationKind.AUTO_REPLY


@pytest.mark.parametrize(
    "sender", ["noreplyfan@example.com", "postmasters-guild@example.com", "daemon@example.com", "ana@example.com"]
)
def test_people_with_lookalike_addresses_are_human(sender: str):
    assert classify(text_message(reply_headers(sender=sender), "Yes")).is_human


@pytest.mark.parametrize(
    "subject",
    [
        "Re: Out of office next week? Yes, happy to",
        "RESPUESTA AUTOMATICA: hola",
        "Réponse automatique : bonjour",
        "AW: Abwesenheitsnotiz",
        "Resposta automática: olá",
        "Afwezig",
        "Fuori ufficio",
        "Ausente",
    ],
)
def test_out_of_office_subjects(subject: str):
    result = classify(text_message(reply_headers(subject), "Yes"))
    assert result.kind is ClassificationKind.AUTO_REPLY and result.reason == "out-of-office subject"


@pytest.mark.parametrize(
    "subject",
    [
        "Re: Would you like to meet Ben?",
        "Re: Absent-minded gardening",
        "Re: office plants",
        "Re: What we grew on holiday",
        "Re: The undeliverable seed parcel",
        "Re: Ferias y mercados de semillas",
        "Re: Returned mail-order seeds",
    ],
)
def test_ordinary_subjects_are_human(subject: str):
    assert classify(text_message(reply_headers(subject), "Yes")).is_human


def test_null_envelope_sender_is_automatic():
    raw = text_message(reply_headers(), "Yes")
    assert classify(raw, envelope_sender="").kind is ClassificationKind.AUTO_REPLY
    assert classify(raw, envelope_sender="<>").reason == "sent with the null envelope sender"
    assert classify(raw, envelope_sender=None).is_human


def _dsn(*blocks: str, original: str = "message", per_message: str | None = None) -> bytes:
    extra = {"per_message": per_message} if per_message else {}
    return dsn(
        dsn_headers(DAEMON, "Undelivered Mail Returned to Sender"), "failed", list(blocks), original=original, **extra
    )


def test_hard_bounce_details():
    raw = _dsn(status_block("Ben@Example.net", "failed", "5.1.1", "550 5.1.1 <ben@example.net>: User unknown"))
    result = classify(raw, envelope_sender="")
    assert result.kind is ClassificationKind.BOUNCE_HARD and result.is_bounce
    assert result.reason == "permanent failure 5.1.1 for 1 recipient"
    report = result.bounce
    assert report is not None
    [recipient] = report.recipients
    assert (recipient.address, recipient.permanent, recipient.action, recipient.status) == (
        "ben@example.net",
        True,
        "failed",
        "5.1.1",
    )
    assert report.diagnostic == "550 5.1.1 <ben@example.net>: User unknown"
    assert report.original_message_id == SENT_ID
    assert report.verp_token == BOUNCE_TOKEN
    assert report.reporting_mta == "mx.example.net"
    assert ("Message-ID", SENT_ID) in report.original_headers


def test_status_class_decides_hard_or_soft():
    failed_but_temporary = _dsn(status_block("ben@example.net", "failed", "4.4.7", "expired"))
    assert classify(failed_but_temporary).kind is ClassificationKind.BOUNCE_SOFT
    delayed = _dsn(status_block("ben@example.net", "delayed", None, None))
    assert classify(delayed).kind is ClassificationKind.BOUNCE_SOFT
    failed_without_status = _dsn(status_block("ben@example.net", "failed", None, None))
    assert classify(failed_without_status).kind is ClassificationKind.BOUNCE_HARD
    smtp_code_only = _dsn(status_block("ben@example.net", "failed", None, "421 try again later"))
    report = classify(smtp_code_only).bounce
    assert report is not None and report.status == "4.0.0" and not report.permanent


def test_envelope_id_is_returned():
    raw = _dsn(
        status_block("ben@example.net", "failed", "5.1.1", None),
        per_message="Original-Envelope-Id: d9001\nReporting-MTA: dns; mx.example.net",
    )
    report = read_delivery_status(parse_message(raw))
    assert report is not None and report.envelope_id == "d9001"


def test_success_report_is_not_a_bounce():
    result = classify(_dsn(status_block("ben@example.net", "delivered", "2.0.0", "250 ok")))
    assert result.kind is ClassificationKind.AUTO_REPLY
    assert result.reason == "delivery report without failures"


def test_no_delivery_status_part_means_no_report():
    assert read_delivery_status(parse_message(text_message(reply_headers(), "Yes"))) is None
    assert read_feedback_report(parse_message(text_message(reply_headers(), "Yes"))) is None


def test_complaint_details():
    raw = arf("Feedback-Type: abuse\nUser-Agent: FBL/2\nVersion: 1\nOriginal-Rcpt-To: <Ben@Example.net>\n")
    result = classify(raw)
    assert result.kind is ClassificationKind.COMPLAINT and result.reason == "abuse report (abuse)"
    complaint = result.complaint
    assert complaint is not None
    assert complaint.original_recipient == "ben@example.net"
    assert complaint.original_message_id == SENT_ID
    assert complaint.user_agent == "FBL/2"
    assert complaint.verp_token == BOUNCE_TOKEN


def test_automatic_reason_is_none_for_a_person():
    assert automatic_reason(parse_message(text_message(reply_headers(), "Yes"))) is None


def test_a_message_that_cannot_be_read_is_never_human():
    class Broken:
        headers = property(lambda self: 1 / 0)

    result = classify_message(Broken())  # type: ignore[arg-type]
    assert result.kind is ClassificationKind.AUTO_REPLY and "could not be classified" in result.reason
