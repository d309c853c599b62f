from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from cop_mail.inbound.parsing import (
    decode_bytes,
    normalise_message_id,
    parse_message,
    visible_reply_text,
    visible_text,
)
from tests.corpus.inbound import INVITE_ID, multipart, part, reply_headers, text_message

PLAIN = (
    b"Return-Path: <ana@example.com>\n"
    b"From: =?utf-8?q?Ana_S=C3=A1nchez?= <Ana.Sanchez@Example.COM>\n"
    b"To: Reply <reply+abc@example.org>, ben@example.net\n"
    b'Cc: "Cleo, Coordinator" <cleo@example.org>\n'
    b"Subject: =?iso-8859-1?q?Re=3A_caf=E9?=\n"
    b"Date: Mon, 06 Jan 2025 10:00:00 +0100\n"
    b"Message-ID: <reply-9@mail.example.com>\n"
    b"In-Reply-To: <intro-41.invite@example.org>\n"
    b"References: <campaign-1@example.org>\n <intro-41.invite@example.org>\n"
    b"X-Extra: one\nX-Extra: two\n"
    b"\nYes!\n"
)


def test_reads_the_usual_fields():
    parsed = parse_message(PLAIN)
    assert parsed.from_address == "ana.sanchez@example.com"
    assert parsed.from_name == "Ana Sánchez"
    assert parsed.to_addresses == ["reply+abc@example.org", "ben@example.net"]
    assert parsed.cc_addresses == ["cleo@example.org"]
    assert parsed.subject == "Re: café"
    assert parsed.date == datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
    assert parsed.message_id == "<reply-9@mail.example.com>"
    assert parsed.in_reply_to == INVITE_ID
    assert parsed.references == ["<campaign-1@example.org>", INVITE_ID]
    assert parsed.thread_ids == [INVITE_ID, "<campaign-1@example.org>"]
    assert parsed.text == "Yes!\n"
    assert parsed.html is None and not parsed.text_from_html
    assert parsed.content_type == "text/plain"
    assert parsed.defects == []


def test_header_lookup_is_case_insensitive_and_keeps_duplicates():
    parsed = parse_message(PLAIN)
    assert parsed.header("x-EXTRA") == "one"
    assert parsed.header_all("X-Extra") == ["one", "two"]
    assert parsed.header("X-Missing") is None
    assert parsed.has_header("return-path")


def test_never_raises_on_other_input_types():
    assert parse_message(bytearray(PLAIN)).subject == "Re: café"
    assert parse_message(memoryview(PLAIN)).subject == "Re: café"
    assert parse_message(PLAIN.decode("latin-1")).message_id == "<reply-9@mail.example.com>"  # type: ignore[arg-type]


def test_modern_parser_crash_on_message_id_becomes_a_defect():
    parsed = parse_message(b'From: a@example.com\nMessage-ID: <<>>\nTo: "unclosed\n\nYes\n')
    assert parsed.message_id is None
    assert any("Message-ID" in defect for defect in parsed.defects)
    assert parsed.header("Message-ID") == "<<>>"
    assert parsed.to_addresses == []


def test_html_only_mail_gets_text_and_marks_quotes():
    raw = text_message(
        reply_headers(),
        "<p>Sure, <b>happy</b> to!</p><blockquote>Reply YES</blockquote>",
        subtype="html",
    )
    parsed = parse_message(raw)
    assert parsed.text_from_html
    assert "<b>happy</b>" in (parsed.html or "")
    assert "Sure, happy to!" in parsed.text
    assert "> Reply YES" in parsed.text
    assert visible_reply_text(parsed) == "Sure, happy to!"


def test_alternative_prefers_the_plain_part():
    raw = multipart(
        reply_headers(),
        [part("text/plain; charset=utf-8", "plain words"), part("text/html; charset=utf-8", "<p>html words</p>")],
    )
    parsed = parse_message(raw)
    assert parsed.text == "plain words"
    assert parsed.html == "<p>html words</p>"


def _with_attachments(*sizes: int) -> bytes:
    parts = [part("text/plain", "See attached.")]
    for index, size in enumerate(sizes):
        parts.append(
            part(
                "image/png",
                b"\x89PNG" + b"\x00" * (size - 4),
                cte="base64",
                extra=(f'Content-Disposition: attachment; filename="photo-{index}.png"', f"Content-ID: <img{index}@x>"),
            )
        )
    return multipart(reply_headers(), parts, subtype="mixed")


def test_attachments_are_kept_with_their_details():
    parsed = parse_message(_with_attachments(100))
    [attachment] = parsed.attachments
    assert attachment.filename == "photo-0.png"
    assert attachment.content_type == "image/png"
    assert attachment.size == 100 and len(attachment.data) == 100
    assert attachment.content_id == "<img0@x>"
    assert attachment.kept and not attachment.inline


def test_attachment_limits_refuse_bytes_but_record_the_attachment():
    parsed = parse_message(_with_attachments(5_000, 100, 100, 100), max_attachment_bytes=1_000, max_attachments=2)
    refused = [(a.filename, a.refused) for a in parsed.attachments if not a.kept]
    assert refused == [("photo-0.png", "too large"), ("photo-3.png", "too many attachments")]
    assert parsed.attachments[0].data == b"" and parsed.attachments[0].size == 5_000
    assert any("refused: too large" in defect for defect in parsed.defects)


def test_total_attachment_limit():
    parsed = parse_message(_with_attachments(600, 600), max_total_attachment_bytes=1_000)
    assert [a.refused for a in parsed.attachments] == [None, "attachments too large in total"]


def test_nested_message_is_parsed_on_its_own():
    inner = text_message(reply_headers("Inner subject"), "Inner yes")
    outer = multipart(
        reply_headers("Fwd: Inner subject"),
        [part("text/plain", "Outer note"), part("message/rfc822", inner.decode())],
        subtype="mixed",
    )
    parsed = parse_message(outer)
    assert parsed.text == "Outer note"
    [nested] = parsed.nested
    assert nested.subject == "Inner subject" and nested.text == "Inner yes"


def test_nesting_depth_is_limited():
    message = text_message(reply_headers("level 0"), "deepest")
    for level in range(1, 6):
        message = multipart(
            reply_headers(f"level {level}"),
            [part("message/rfc822", message.decode())],
            subtype="mixed",
            boundary=f"level-{level}",
        )
    parsed = parse_message(message, max_nested_depth=2)
    assert parsed.nested[0].nested[0].nested == []
    assert any("nested too deep" in defect for defect in parsed.nested[0].nested[0].defects)


@pytest.mark.parametrize(
    ("data", "charset", "text", "problem"),
    [
        ("café".encode(), "utf-8", "café", None),
        ("café".encode("latin-1"), "iso-8859-1", "café", None),
        ("café".encode(), "x-unknown", "café", "unknown charset 'x-unknown'"),
        ("café".encode(), "us-ascii", "café", "text is not valid us-ascii"),
        ("café".encode("latin-1"), "utf-8", "café", "text is not valid utf-8"),
        (b"abc", "base64", "abc", "unknown charset 'base64'"),
        ("café".encode("latin-1"), None, "café", "8-bit text without a charset"),
        (b"\x81\x8d", None, "\ufffd\ufffd", "8-bit text without a charset"),
    ],
)
def test_decode_bytes(data: bytes, charset: str | None, text: str, problem: str | None):
    assert decode_bytes(data, charset) == (text, problem)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<a@b>", "<a@b>"),
        ("  < a@b >  ", "<a@b>"),
        ("(comment) <a@b> trailing", "<a@b>"),
        ("a@b", "<a@b>"),
        ("<<>>", None),
        ("", None),
        (None, None),
        ("no id here", None),
    ],
)
def test_normalise_message_id(value: str | None, expected: str | None):
    assert normalise_message_id(value) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Yes, happy to!\n\nOn Mon, 6 Jan 2025, Ben <ben@example.org> wrote:\n> Reply YES", "Yes, happy to!"),
        ("No thanks.\n\nOn Mon, Jan 6, 2025 at 10:00 AM Ben Example <\nben@example.org> wrote:\n> YES", "No thanks."),
        ("On Mon, 6 Jan 2025, Ben wrote:\n> Would you like to meet Ana?\n\nYes!", "Yes!"),
        ("> Would you?\nYes.\n> By Friday?\nFine by me.", "Yes.\nFine by me."),
        ("Talvez.\n\nEm seg., 6 de jan. de 2025 às 10:00, Ben <b@x.org> escreveu:\n> Responda SIM", "Talvez."),
        ("Não.\n\nEm seg., 6 de jan. de 2025, Ben <b@x.org> escreveu:\nResponda SIM\n", "Não."),
        ("Gerne!\n\nAm Mo., 6. Jan. 2025 um 10:00 Uhr schrieb Ben <b@x.org>:\n> JA", "Gerne!"),
        ("Oui\n\nLe lun. 6 janv. 2025 à 10:00, Ben <b@x.org> a écrit :\n> OUI", "Oui"),
        ("Sí\n\nEl lun, 6 ene 2025 a las 10:00, Ben (<b@x.org>) escribió:\n> SÍ", "Sí"),
        ("Not now\n\n-----Original Message-----\nFrom: Ben\nSent: Monday\n\nReply YES", "Not now"),
        ("Sure\n\nFrom: Ben <b@x.org>\nSent: Monday\nTo: Ana\nSubject: Meet?\n\nReply YES", "Sure"),
        ("Claro\n\nDe: Ben <b@x.org>\nEnviado: lunes\nPara: Ana\n\nResponde SÍ", "Claro"),
        ("Yes!\nThanks, but actually no, I can't.", "Yes!\nThanks, but actually no, I can't."),
        ("Yes!\n\nThanks,\nAna Silva\nGarden Network", "Yes!"),
        ("Yes\n-- \nAna\nSay yes to seeds", "Yes"),
        ("Sounds good.\n\nSent from my iPhone\n\n> yes", "Sounds good."),
        ("Ok\n\nEnviado do meu iPhone", "Ok"),
        ("> yes only quoted\n> YES", ""),
        ("", ""),
        ("   \n\n  ", ""),
        ("Sure, happy to!\n\n---------- Forwarded message ---------\nFrom: Ben\n\nReply NO", "Sure, happy to!"),
    ],
)
def test_visible_text(body: str, expected: str):
    assert visible_text(body) == expected


def test_visible_text_on_huge_input_is_bounded():
    body = "Yes!\n" + "> quoted line\n" * 100_000
    assert visible_text(body) == "Yes!"


def test_inline_image_in_html_only_mail_is_an_attachment():
    image = base64.b64decode("iVBORw0KGgo=")
    raw = multipart(
        reply_headers(),
        [
            part("text/html; charset=utf-8", '<p>Yes</p><img src="cid:pic@x">'),
            part("image/png", image, cte="base64", extra=("Content-ID: <pic@x>", "Content-Disposition: inline")),
        ],
        subtype="related",
    )
    parsed = parse_message(raw)
    assert parsed.text == "Yes"
    [attachment] = parsed.attachments
    assert attachment.inline and attachment.content_id == "<pic@x>" and attachment.data == image
