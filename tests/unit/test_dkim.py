"""DKIM signatures made with OpenSSL verify with dkimpy, the reference implementation."""

from __future__ import annotations

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from dkim.canonicalization import Relaxed
from hypothesis import given, settings
from hypothesis import strategies as st

from cop_mail.rendering import compile_email, get_kind, sample_recipient
from cop_mail.sending.dkim_signer import DkimSigner, public_key_record, relaxed_body, split_headers
from cop_mail.sending.mime import MessageSkeleton, make_message_id
from tests.unit.test_render_templates import render_settings

DOMAIN = "community.example.org"
SELECTOR = "mail2026"


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


PRIVATE_PEM = _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
RECORD = public_key_record(PRIVATE_PEM).encode()
SKELETON = MessageSkeleton.build(
    from_addr=f"news@{DOMAIN}",
    from_name="Riverside Práctica",
    reply_to=f"rosa@{DOMAIN}",
    list_id=f"newsletter.{DOMAIN}",
    list_name="Riverside newsletter",
    feedback_id="42:newsletter:riverside",
    bulk=True,
)


def dns(name: bytes, timeout: float = 5) -> bytes:
    assert name == f"{SELECTOR}._domainkey.{DOMAIN}.".encode()
    return RECORD


def message(to_name: str = "Ana Souza", subject: str = "Hello", html: str = "<p>Hi</p>", text: str = "Hi\n") -> bytes:
    return SKELETON.render(
        to_addr="ana@example.net",
        to_name=to_name,
        subject=subject,
        html=html,
        text=text,
        message_id=make_message_id(DOMAIN),
        unsubscribe_url=f"https://{DOMAIN}/u/TOKEN",
        unsubscribe_mailto=f"mailto:unsubscribe+TOKEN@{DOMAIN}",
    )


@pytest.fixture(scope="module")
def signer() -> DkimSigner:
    return DkimSigner(SELECTOR, DOMAIN, PRIVATE_PEM)


def test_a_personalised_newsletter_verifies(signer: DkimSigner):
    compiled = compile_email("newsletter", get_kind("newsletter").sample(), render_settings())
    subject, body_html, body_text = compiled.fill({**sample_recipient(), "first_name": "Zoë"})
    signed = signer.sign(message("Zoë Ñúñez", subject, body_html, body_text))
    assert signed.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;\r\n d=community.example.org;")
    assert dkim.verify(signed, dnsfunc=dns)


def test_the_unsubscribe_and_identity_headers_are_signed(signer: DkimSigner):
    header = signer.signature_header(message())
    tags = dict(part.strip().split("=", 1) for part in header.decode().split(":", 1)[1].replace("\r\n", "").split(";"))
    signed = set(tags["h"].replace(" ", "").split(":"))
    assert signed >= {
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "mime-version",
        "content-type",
    }
    assert all(len(line) <= 78 for line in header.split(b"\r\n"))


@pytest.mark.parametrize(
    "tamper",
    [
        lambda m: m.replace(b"Subject: Hello", b"Subject: Hellp"),
        lambda m: m.replace(b"<https://community.example.org/u/TOKEN>", b"<https://evil.example/u/TOKEN>"),
        lambda m: m.replace(b"PHA+SGk8L3A+", b"PHA+SGl8L3A+"),
        lambda m: m.replace(b"\r\nTo: ", b"\r\nFrom: Someone <x@evil.example>\r\nTo: "),
        lambda m: m.replace(b"\r\nTo: ", b"\r\nList-Unsubscribe: <https://evil.example>\r\nTo: "),
    ],
)
def test_any_change_breaks_the_signature(signer: DkimSigner, tamper):  # type: ignore[no-untyped-def]
    signed = signer.sign(message())
    assert dkim.verify(signed, dnsfunc=dns)
    changed = tamper(signed)
    assert changed != signed
    assert not dkim.verify(changed, dnsfunc=dns)


def test_identical_bodies_reuse_the_body_hash(signer: DkimSigner):
    first, second = message(to_name="One"), message(to_name="Two")
    _, body_one = split_headers(first)
    _, body_two = split_headers(second)
    assert body_one == body_two
    signed = [signer.sign(first), signer.sign(second), signer.sign(message(html="<p>Other</p>"))]
    assert all(dkim.verify(item, dnsfunc=dns) for item in signed)
    assert signer._last_body != body_one  # the cache followed the new body


@pytest.mark.parametrize(
    "body",
    [
        b"a  b\t\tc \r\n\r\n  indented\t\r\nlast line   \r\n\r\n\r\n",
        b"plain words " * 200 + b"\r\n",
        b"plain words " * 200 + b"end\r\n",
        b"one two\r\nthree four \r\n",
        b"ends with a space ",
        b"QUJD\r\nREVG\r\n\r\n",
        b"",
        b"\r\n\r\n",
    ],
)
def test_whitespace_is_canonicalised_like_dkimpy(body: bytes):
    assert relaxed_body(body) == Relaxed.canonicalize_body(body)


@settings(max_examples=400, deadline=None)
@given(body=st.binary(max_size=300).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"\r\n")))
def test_body_canonicalisation_matches_dkimpy(body: bytes):
    assert relaxed_body(body) == Relaxed.canonicalize_body(body)


@settings(max_examples=250, deadline=None)
@given(
    to_name=st.text(max_size=80), subject=st.text(max_size=160), html=st.text(max_size=400), text=st.text(max_size=400)
)
def test_random_messages_verify(to_name: str, subject: str, html: str, text: str):
    signer = DkimSigner(SELECTOR, DOMAIN, PRIVATE_PEM)
    assert dkim.verify(signer.sign(message(to_name, subject, html, text)), dnsfunc=dns)


def test_unsuitable_keys_are_refused():
    with pytest.raises(ValueError, match="RSA"):
        DkimSigner(SELECTOR, DOMAIN, _pem(ec.generate_private_key(ec.SECP256R1())))
    with pytest.raises(ValueError, match="1024"):
        DkimSigner(SELECTOR, DOMAIN, _pem(rsa.generate_private_key(public_exponent=65537, key_size=768)))  # noqa: S505 (refusing it is the point)
    with pytest.raises(ValueError, match="selector"):
        DkimSigner("bad selector;", DOMAIN, PRIVATE_PEM)
