"""The fast MIME builder writes messages the standard parser reads back exactly, with no way for a
name or subject to add a header or a recipient."""

from __future__ import annotations

import time
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parsedate_to_datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cop_mail.rendering import compile_email, get_kind, sample_recipient
from cop_mail.sending.mime import (
    MessageSkeleton,
    bounce_address,
    clean_text,
    encode_text,
    format_address,
    make_message_id,
)
from cop_mail.tokens import read_address_token
from tests.unit.test_render_templates import render_settings

DOMAIN = "community.example.org"
SECRET = "mime-secret-" + "y" * 40
PARSER = BytesParser(policy=policy.default)
UNSUBSCRIBE = f"https://{DOMAIN}/u/eyJtIjo0Mn0.c2lnbmF0dXJl"
MAILTO = f"mailto:unsubscribe+abc123@{DOMAIN}?subject=unsubscribe"


def skeleton(**overrides: object) -> MessageSkeleton:
    options: dict[str, object] = {
        "from_addr": f"news@{DOMAIN}",
        "from_name": "Riverside Práctica",
        "reply_to": f"rosa@{DOMAIN}",
        "reply_to_name": "Rosa Martínez",
        "list_id": f"newsletter.{DOMAIN}",
        "list_name": "Riverside newsletter",
        "feedback_id": "42:newsletter:riverside",
        "bulk": True,
    }
    options.update(overrides)
    return MessageSkeleton.build(**options)  # type: ignore[arg-type]


SKELETON = skeleton()


def render(
    to_name: str = "Ana Souza", subject: str = "Hello", html: str = "<p>Hi</p>", text: str = "Hi\n", **extra: object
) -> bytes:
    options: dict[str, object] = {
        "to_addr": "ana@example.net",
        "to_name": to_name,
        "subject": subject,
        "html": html,
        "text": text,
        "message_id": make_message_id(DOMAIN),
        "unsubscribe_url": UNSUBSCRIBE,
        "unsubscribe_mailto": MAILTO,
    }
    options.update(extra)
    return SKELETON.render(**options)  # type: ignore[arg-type]


def parse(data: bytes) -> EmailMessage:
    message = PARSER.parsebytes(data)
    assert isinstance(message, EmailMessage)
    return message


def assert_wire_format(data: bytes) -> None:
    assert b"\n" not in data.replace(b"\r\n", b"") and b"\r" not in data.replace(b"\r\n", b"")
    head = data.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n"):
        # A very long non-ASCII display name stays one encoded word (see format_address).
        long_name = line.startswith((b"To: =?utf-8?b?", b" =?utf-8?b?")) and line.count(b"?=") == 1
        assert len(line) <= 78 or long_name, line
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    assert data.isascii()


def test_headers_for_bulk_mail():
    message_id = make_message_id(DOMAIN)
    data = render(message_id=message_id)
    assert_wire_format(data)
    message = parse(data)
    assert message["From"].addresses[0].display_name == "Riverside Práctica"
    assert message["From"].addresses[0].addr_spec == f"news@{DOMAIN}"
    assert message["Reply-To"].addresses[0].display_name == "Rosa Martínez"
    assert message["Message-ID"] == message_id and message_id.endswith(f"@{DOMAIN}>")
    assert message["List-Id"] == f'"Riverside newsletter" <newsletter.{DOMAIN}>'
    assert message["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>, <{MAILTO}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Feedback-ID"] == "42:newsletter:riverside"
    assert message["Precedence"] == "bulk"
    assert "Auto-Submitted" not in message
    assert message["MIME-Version"] == "1.0"
    assert abs(parsedate_to_datetime(message["Date"]).timestamp() - time.time()) < 5
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    assert all(part.get_content_charset() == "utf-8" for part in message.iter_parts())


def test_transactional_mail_without_list_headers():
    plain = skeleton(list_id=None, feedback_id=None, bulk=False, auto_submitted="auto-generated", reply_to=None)
    data = plain.render(
        to_addr="ana@example.net", subject="Confirm", html="<p>x</p>", text="x", message_id=make_message_id(DOMAIN)
    )
    message = parse(data)
    for absent in ("Precedence", "List-Id", "List-Unsubscribe", "List-Unsubscribe-Post", "Reply-To", "Feedback-ID"):
        assert absent not in message
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["To"] == "ana@example.net"


def test_mailto_only_unsubscribe_has_no_one_click_header():
    message = parse(render(unsubscribe_url=None))
    assert message["List-Unsubscribe"] == f"<{MAILTO}>"
    assert "List-Unsubscribe-Post" not in message


@pytest.mark.parametrize(
    "evil",
    [
        "Eve\r\nBcc: victim@example.com",
        "Eve\nBcc: victim@example.com",
        "Eve\rBcc: victim@example.com",
        "Eve\r\n\r\n<html>body</html>",
        "Eve\u2028Bcc: victim@example.com",
        "Eve\x85Bcc: victim@example.com",
        "Eve\x00\x0bBcc: victim@example.com",
        'Eve" <victim@example.com>, "x',
        "victim@example.com, other@example.com",
        "=?utf-8?q?Eve=0D=0ABcc=3A_victim=40example=2Ecom?=",
    ],
)
def test_names_and_subjects_cannot_inject_headers_or_recipients(evil: str):
    data = render(to_name=evil, subject=evil)
    head = data.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nBcc:" not in head and b"\nBcc" not in head
    message = parse(data)
    assert "Bcc" not in message and "Cc" not in message
    assert len(message.get_all("To")) == 1
    assert [a.addr_spec for a in message["To"].addresses] == ["ana@example.net"]
    assert message["To"].addresses[0].display_name == clean_text(evil)
    assert message["Subject"] == clean_text(evil)
    assert message.get_body(("html",)).get_content() == "<p>Hi</p>"
    assert not message.defects


@pytest.mark.parametrize(
    "field",
    [
        {"to_addr": "ana@example.net\r\nBcc: victim@example.com"},
        {"to_addr": "ana@example.net, victim@example.com"},
        {"to_addr": "Ana <ana@example.net>"},
        {"to_addr": "ana@exämple.net"},
        {"to_addr": "no-at-sign"},
        {"message_id": "<x@y>\r\nBcc: victim@example.com"},
        {"message_id": "not-an-id"},
        {"unsubscribe_url": UNSUBSCRIBE + "\r\nBcc: victim@example.com"},
        {"unsubscribe_url": UNSUBSCRIBE + ">, <https://evil.example"},
        {"unsubscribe_url": "javascript:alert(1)"},
        {"unsubscribe_mailto": "https://not-mailto.example"},
        {"headers": [("X-Campaign\r\nBcc", "1")]},
        {"headers": [("Bcc", "victim@example.com")]},
        {"headers": [("To", "victim@example.com")]},
    ],
)
def test_structured_values_with_header_tricks_are_refused(field: dict[str, object]):
    with pytest.raises(ValueError):
        render(**field)


def test_extra_headers_are_encoded_and_cleaned():
    message = parse(render(headers=[("X-Campaign-Kind", "Boletín\r\nBcc: x@y")]))
    assert message["X-Campaign-Kind"] == "Boletín Bcc: x@y"
    assert "Bcc" not in message


def test_message_ids_are_unique_and_on_the_domain():
    ids = {make_message_id(DOMAIN) for _ in range(20_000)}
    assert len(ids) == 20_000
    assert all(i.startswith("<") and i.endswith(f"@{DOMAIN}>") for i in ids)
    with pytest.raises(ValueError):
        make_message_id("bad domain\r\n")


def test_bounce_address_names_delivery_and_member():
    address = bounce_address(SECRET, DOMAIN, delivery_id=42, member_id=9001)
    local, domain = address.split("@")
    assert domain == DOMAIN and local.startswith("bounces+") and len(local) <= 64
    assert read_address_token(SECRET, local.removeprefix("bounces+")) == ("bounce", 42, 9001)


def test_long_ascii_subject_folds_and_unfolds_exactly():
    subject = " ".join(f"word{i}" for i in range(60))
    line = encode_text("Subject", subject)
    assert line.count(b"\r\n ") > 3 and b"=?" not in line
    assert parse(render(subject=subject))["Subject"] == subject


def test_a_compiled_newsletter_round_trips():
    settings = render_settings()
    compiled = compile_email("newsletter", get_kind("newsletter").sample(), settings)
    recipient = {**sample_recipient(), "first_name": "Zoë", "name": "Zoë O'Brien-Ñúñez"}
    subject, body_html, body_text = compiled.fill(recipient)
    data = render(to_name=recipient["name"], subject=subject, html=body_html, text=body_text)
    assert_wire_format(data)
    message = parse(data)
    assert message["To"].addresses[0].display_name == "Zoë O'Brien-Ñúñez"
    assert message.get_body(("html",)).get_content() == body_html
    assert message.get_body(("plain",)).get_content() == body_text
    assert recipient["unsubscribe_url"] in message.get_body(("plain",)).get_content()


_NAMES = st.one_of(
    st.text(max_size=90),
    st.text(alphabet=st.sampled_from(list(" \r\n\t\"'\\,;:<>@()[]=?_.-éß😀漢\u00a0\u2028")), max_size=40),
)


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    to_name=_NAMES,
    subject=_NAMES,
    html=st.text(max_size=600),
    text=st.text(max_size=600),
    local=st.from_regex(r"[a-z0-9][a-z0-9._+-]{0,20}", fullmatch=True).filter(lambda s: ".." not in s),
)
def test_random_names_subjects_and_bodies_round_trip_exactly(
    to_name: str, subject: str, html: str, text: str, local: str
):
    address = f"{local}@example.net"
    message_id = make_message_id(DOMAIN)
    data = SKELETON.render(
        to_addr=address,
        to_name=to_name,
        subject=subject,
        html=html,
        text=text,
        message_id=message_id,
        unsubscribe_url=UNSUBSCRIBE,
        unsubscribe_mailto=MAILTO,
    )
    assert_wire_format(data)
    message = parse(data)
    assert sorted(message.keys()) == sorted(
        [
            "From",
            "To",
            "Subject",
            "Date",
            "Message-ID",
            "List-Unsubscribe",
            "List-Unsubscribe-Post",
            "Reply-To",
            "List-Id",
            "Feedback-ID",
            "Precedence",
            "MIME-Version",
            "Content-Type",
        ]
    )
    assert message["Subject"] == clean_text(subject)
    (recipient,) = message["To"].addresses
    assert recipient.addr_spec == address
    assert recipient.display_name == clean_text(to_name)
    assert message["Message-ID"] == message_id
    assert message.get_body(("plain",)).get_content() == text
    assert message.get_body(("html",)).get_content() == html
    assert not message.defects
    assert all(not part.defects for part in message.walk())


@settings(max_examples=300, deadline=None)
@given(name=_NAMES)
def test_format_address_never_breaks_the_line(name: str):
    value = format_address(name, "someone@example.net")
    assert "\n" not in value.replace("\r\n ", "") and "\r" not in value.replace("\r\n ", "")
