"""The SMTP messenger against real aiosmtpd servers: STARTTLS, implicit TLS, AUTH, pipelining,
TCP_NODELAY, reconnection, and what each kind of failure means for the row."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cop_mail.sending.smtp import Outcome, SmtpConfig, SmtpMessenger, Stage
from tests.conftest import free_port

MESSAGE = b"From: a@cop-mail.test\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nHello\r\n.leading dot\r\n"


class Recorder:
    """Accepts everything, or plays a fault given per recipient."""

    def __init__(self, pipelining: bool = False):
        self.pipelining = pipelining
        self.received: list[tuple[str, list[str], bytes]] = []
        self.faults: dict[str, str] = {}

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]):
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        fault = self.faults.get(address, "")
        if fault == "drop-at-rcpt":
            server.transport.abort()
            return "250 OK"
        if fault.startswith("rcpt:"):
            return fault[5:]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        (recipient,) = envelope.rcpt_tos
        fault = self.faults.get(recipient, "")
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        if fault == "drop-after-data":
            server.transport.abort()
        return fault[5:] if fault.startswith("data:") else "250 OK"


def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"news", b"s3cret")
    return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context


def client_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


@pytest.fixture
def servers() -> Iterator[list[Controller]]:
    started: list[Controller] = []
    yield started
    for controller in started:
        controller.stop()


def serve(started: list[Controller], handler: Recorder, **options: Any) -> int:
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **options)
    controller.start()
    started.append(controller)
    return port


def test_starttls_with_auth_delivers_and_sets_tcp_nodelay(servers, certificate):
    handler = Recorder()
    port = serve(
        servers, handler, tls_context=server_context(certificate), require_starttls=True,
        authenticator=authenticate, auth_required=True, auth_require_tls=True,
    )  # fmt: skip
    config = SmtpConfig(
        "127.0.0.1", port, tls="starttls", user="news", password="s3cret", timeout=5,
        ssl_context=client_context(certificate), helo_name="cop-mail.test",
    )  # fmt: skip
    with SmtpMessenger(config) as messenger:
        first = messenger.send("bounces+x@cop-mail.test", "b@example.org", MESSAGE)
        second = messenger.send("bounces+y@cop-mail.test", "c@example.org", MESSAGE)
        assert messenger._client is not None
        assert messenger._client.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert isinstance(messenger._client.sock, ssl.SSLSocket)
    assert (first.outcome, second.outcome) == (Outcome.SENT, Outcome.SENT)
    assert messenger.connections_opened == 1  # one persistent connection
    assert [r[1] for r in handler.received] == [["b@example.org"], ["c@example.org"]]
    assert handler.received[0][2].endswith(b"Hello\r\n.leading dot\r\n")  # dot-stuffing undone by the server


def test_wrong_password_is_a_connection_failure_not_a_bounce(servers, certificate):
    port = serve(
        servers, Recorder(), tls_context=server_context(certificate), require_starttls=True,
        authenticator=authenticate, auth_required=True, auth_exclude_mechanism=["LOGIN"],
    )  # fmt: skip
    config = SmtpConfig(
        "127.0.0.1", port, tls="starttls", user="news", password="wrong", timeout=5,
        ssl_context=client_context(certificate),
    )  # fmt: skip
    with SmtpMessenger(config) as messenger:
        reply = messenger.send("bounces+x@cop-mail.test", "b@example.org", MESSAGE)
    assert (reply.outcome, reply.stage, reply.code) == (Outcome.DEFERRED, Stage.CONNECT, 535), reply.text
    assert not reply.hard_bounce


def test_implicit_tls(servers, certificate):
    handler = Recorder()
    port = serve(servers, handler, ssl_context=server_context(certificate))
    config = SmtpConfig("127.0.0.1", port, tls="tls", timeout=5, ssl_context=client_context(certificate))
    with SmtpMessenger(config) as messenger:
        assert messenger.send("bounces+x@cop-mail.test", "b@example.org", MESSAGE).outcome is Outcome.SENT
        assert messenger._client.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    assert len(handler.received) == 1


@pytest.mark.parametrize("pipelining", [False, True])
def test_outcomes_for_each_kind_of_failure(servers, pipelining):
    handler = Recorder(pipelining=pipelining)
    handler.faults = {
        "gone@example.org": "rcpt:550 5.1.1 no such user",
        "later@example.org": "data:451 4.3.0 try later",
        "busy@example.org": "rcpt:421 4.7.0 too busy, closing",
        "cut@example.org": "drop-at-rcpt",
        "lost@example.org": "drop-after-data",
    }
    port = serve(servers, handler)
    with SmtpMessenger(SmtpConfig("127.0.0.1", port, timeout=5)) as messenger:
        replies = {
            rcpt: messenger.send("bounces+x@cop-mail.test", rcpt, MESSAGE)
            for rcpt in ["gone@example.org", "ok1@example.org", "later@example.org", "busy@example.org",
                         "ok2@example.org", "cut@example.org", "ok3@example.org", "lost@example.org",
                         "ok4@example.org"]
        }  # fmt: skip
        assert messenger._client is not None and messenger._client.has_extn("pipelining") == pipelining
    summary = {rcpt: (r.outcome, r.stage, r.code, r.hard_bounce, r.pushback) for rcpt, r in replies.items()}
    assert summary["gone@example.org"] == (Outcome.FAILED, Stage.RCPT, 550, True, False)
    assert summary["later@example.org"] == (Outcome.DEFERRED, Stage.END, 451, False, False)
    assert summary["busy@example.org"] == (Outcome.DEFERRED, Stage.RCPT, 421, False, True)
    # Cut before the message was complete: nothing can have been delivered, so retry.
    assert summary["cut@example.org"][:2] == (Outcome.DEFERRED, Stage.RCPT)
    # Cut after the final dot, before the reply: only this is uncertain.
    assert summary["lost@example.org"][:2] == (Outcome.UNCERTAIN, Stage.END)
    for ok in ("ok1@example.org", "ok2@example.org", "ok3@example.org", "ok4@example.org"):
        assert summary[ok][0] is Outcome.SENT  # the messenger reconnects after every cut
    assert messenger.connections_opened == 4  # first, after the 421, after the cut, after the loss


def test_a_stalled_server_makes_the_message_uncertain(servers):
    class Staller(Recorder):
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            import asyncio

            self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
            await asyncio.sleep(1.5)
            return "250 OK"

    handler = Staller()
    port = serve(servers, handler)
    with SmtpMessenger(SmtpConfig("127.0.0.1", port, timeout=0.5)) as messenger:
        reply = messenger.send("bounces+x@cop-mail.test", "b@example.org", MESSAGE)
    assert (reply.outcome, reply.stage) == (Outcome.UNCERTAIN, Stage.END)


def test_unreachable_server_is_deferred(servers):
    reply = SmtpMessenger(SmtpConfig("127.0.0.1", free_port(), timeout=1)).send("a@b.c", "b@example.org", MESSAGE)
    assert (reply.outcome, reply.stage) == (Outcome.DEFERRED, Stage.CONNECT)


@pytest.mark.parametrize("recipient", ["b@example.org\r\nRCPT TO:<victim@example.net>", "b@example.org>\r\nDATA"])
def test_line_breaks_in_an_address_never_reach_the_server(servers, recipient):
    handler = Recorder(pipelining=True)
    port = serve(servers, handler)
    with SmtpMessenger(SmtpConfig("127.0.0.1", port, timeout=5)) as messenger:
        reply = messenger.send("bounces+x@cop-mail.test", recipient, MESSAGE)
    assert reply.outcome is Outcome.FAILED and handler.received == []
