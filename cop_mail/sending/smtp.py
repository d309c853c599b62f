"""A persistent SMTP connection that turns every attempt into one plain outcome.

- 2xx: sent. 4xx: deferred (retried later). 5xx: failed.
- The connection breaking before the message was complete: deferred (nothing was delivered:
  a server only accepts a message after its final dot).
- The connection breaking, or the server stalling, after the final dot: uncertain (the
  server may have accepted it; only one message per connection can ever be in that state).

The socket gets TCP_NODELAY: without it, a message over TLS waits on Nagle's algorithm
and delayed ACKs for tens of milliseconds. STARTTLS, implicit TLS and AUTH are supported;
after any connection failure the next send reconnects.
"""

from __future__ import annotations

import contextlib
import logging
import re
import smtplib
import socket
import ssl
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

log = logging.getLogger("cop_mail.sending.smtp")
_LEADING_DOT = re.compile(rb"(?m)^\.")
_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})")
PUSHBACK_CODES = frozenset({421, 454})
# Replies that say the mailbox itself is gone: the member is suppressed.
HARD_BOUNCE_CODES = frozenset({550, 551, 553})


class Outcome(StrEnum):
    SENT = "sent"
    DEFERRED = "deferred"
    FAILED = "failed"
    UNCERTAIN = "uncertain"


class Stage(StrEnum):
    CONNECT = "connect"
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"
    END = "end"  # the reply to the final dot


@dataclass(frozen=True, slots=True)
class Reply:
    outcome: Outcome
    code: int | None
    text: str
    stage: Stage

    @property
    def pushback(self) -> bool:
        """The server asks us to slow down (421 closing, 454 throttled)."""
        return self.code in PUSHBACK_CODES

    @property
    def about_sender(self) -> bool:
        """A failure of the connection or the sender, not of this recipient: never the member's fault."""
        return self.stage in (Stage.CONNECT, Stage.MAIL)

    @property
    def hard_bounce(self) -> bool:
        if self.outcome is not Outcome.FAILED or self.about_sender:
            return False
        enhanced = _ENHANCED.match(self.text)
        if enhanced:
            return enhanced.group(1) == "5" and enhanced.group(2) == "1"
        return self.code in HARD_BOUNCE_CODES

    def describe(self) -> str:
        code = f"{self.code} " if self.code is not None else ""
        return f"{self.stage}: {code}{self.text}".strip()[:500]


def classify(code: int, text: str, stage: Stage) -> Reply:
    if 200 <= code < 300:
        return Reply(Outcome.SENT, code, text, stage)
    if 400 <= code < 500:
        return Reply(Outcome.DEFERRED, code, text, stage)
    if 500 <= code < 600 and stage is not Stage.MAIL:
        return Reply(Outcome.FAILED, code, text, stage)
    # A 5xx to MAIL FROM refuses our sender for everyone: retry later, and let the run of
    # failures pause the campaign, rather than fail every member.
    return Reply(Outcome.DEFERRED, code, text, stage)


class _Client(smtplib.SMTP):
    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = super()._get_socket(host, port, timeout)  # type: ignore[misc]
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


class _TlsClient(smtplib.SMTP_SSL):
    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = super()._get_socket(host, port, timeout)  # type: ignore[misc]
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


@dataclass
class SmtpConfig:
    host: str
    port: int
    tls: str = "none"  # none, starttls, tls
    user: str | None = None
    password: str | None = None
    timeout: float = 30.0
    helo_name: str = "localhost"
    ssl_context: ssl.SSLContext | None = None

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> SmtpConfig:
        values = {
            "host": settings.smtp_host,
            "port": settings.smtp_port,
            "tls": settings.smtp_tls,
            "user": settings.smtp_user,
            "password": settings.smtp_password,
            "timeout": settings.smtp_timeout,
            "helo_name": settings.mail_domain,
        }
        values.update(overrides)
        return cls(**values)

    @property
    def server_key(self) -> str:
        return f"{self.host}:{self.port}"


class SmtpMessenger:
    """One connection, opened on first use and reopened after a failure."""

    def __init__(self, config: SmtpConfig):
        self.config = config
        self._client: smtplib.SMTP | None = None
        self._stage = Stage.CONNECT
        self.connections_opened = 0

    def __enter__(self) -> SmtpMessenger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, sender: str, recipient: str, message: bytes) -> Reply:
        try:
            client = self._connected()
        except (OSError, smtplib.SMTPException) as exc:
            self._drop()
            return Reply(Outcome.DEFERRED, getattr(exc, "smtp_code", None), _text(exc), Stage.CONNECT)
        self._stage = Stage.MAIL
        try:
            refused = self._envelope(client, sender, recipient)
            if refused is not None:
                return refused
            client.send(_dot_stuffed(message))
        except (UnicodeError, ValueError, smtplib.SMTPNotSupportedError) as exc:
            # An address no server could take (line breaks, or non-ASCII without SMTPUTF8).
            self._reset()
            return Reply(Outcome.FAILED, None, f"unusable address: {_text(exc)}", self._stage)
        except (OSError, smtplib.SMTPException) as exc:
            # The final dot never left: the server cannot have accepted the message.
            self._drop()
            return Reply(Outcome.DEFERRED, None, _text(exc), self._stage)
        try:
            code, text = client.getreply()
        except (OSError, smtplib.SMTPException) as exc:
            self._drop()
            return Reply(Outcome.UNCERTAIN, None, _text(exc), Stage.END)
        if code == 421 or code < 0:
            self._drop()
        return classify(code, text.decode("utf-8", "replace"), Stage.END)

    def _envelope(self, client: smtplib.SMTP, sender: str, recipient: str) -> Reply | None:
        """MAIL, RCPT and DATA: the refusal as a Reply, or None once the server waits for the message."""
        sender, recipient = _ascii_domain(sender), _ascii_domain(recipient)
        if not (sender + recipient).isascii():
            code, text = client.mail(sender, ["SMTPUTF8"] if client.has_extn("smtputf8") else [])
            return self._refused(code, text, Stage.MAIL) if code != 250 else self._rcpt_and_data(client, recipient)
        for address in (sender, recipient):
            if "\r" in address or "\n" in address or ">" in address:
                raise ValueError(f"unusable address {address!r}")
        if client.has_extn("pipelining"):
            return self._pipelined(client, sender, recipient)
        # Plain addresses: skip smtplib's per-call address parsing.
        client.putcmd("mail", f"FROM:<{sender}>")
        code, text = client.getreply()
        if code != 250:
            return self._refused(code, text, Stage.MAIL)
        return self._rcpt_and_data(client, recipient)

    def _rcpt_and_data(self, client: smtplib.SMTP, recipient: str) -> Reply | None:
        self._stage = Stage.RCPT
        client.putcmd("rcpt", f"TO:<{recipient}>")
        code, text = client.getreply()
        if code not in (250, 251):
            return self._refused(code, text, Stage.RCPT)
        self._stage = Stage.DATA
        code, text = client.docmd("DATA")
        if code != 354:
            return self._refused(code, text, Stage.DATA)
        return None

    def _pipelined(self, client: smtplib.SMTP, sender: str, recipient: str) -> Reply | None:
        """RFC 2920: MAIL, RCPT and DATA in one write, three replies read back (one round trip, not three)."""
        client.send(f"MAIL FROM:<{sender}>\r\nRCPT TO:<{recipient}>\r\nDATA\r\n")
        replies = []
        for stage in (Stage.MAIL, Stage.RCPT, Stage.DATA):
            self._stage = stage
            replies.append((stage, *client.getreply()))
        (_, mail, mail_text), (_, rcpt, rcpt_text), (_, data, data_text) = replies
        if mail == 250 and rcpt in (250, 251) and data == 354:
            return None
        if data == 354:
            # The server took DATA although MAIL or RCPT failed: end the empty message unsent.
            client.send(".\r\n")
            client.getreply()
        for stage, code, text in replies:
            if not (code == 250 or (stage is Stage.RCPT and code == 251) or (stage is Stage.DATA and code == 354)):
                return self._refused(code, text, stage)
        return self._refused(data, data_text, Stage.DATA)  # pragma: no cover - unreachable

    def _refused(self, code: int, text: bytes, stage: Stage) -> Reply:
        if code == 421 or code < 0:
            self._drop()
        else:
            self._reset()
        return classify(code, text.decode("utf-8", "replace"), stage)

    def _connected(self) -> smtplib.SMTP:
        if self._client is not None:
            return self._client
        cfg = self.config
        client: smtplib.SMTP
        if cfg.tls == "tls":
            client = _TlsClient(
                cfg.host, cfg.port, local_hostname=cfg.helo_name, timeout=cfg.timeout, context=self._tls_context()
            )
        else:
            client = _Client(cfg.host, cfg.port, local_hostname=cfg.helo_name, timeout=cfg.timeout)
        self._client = client
        client.ehlo()
        if cfg.tls == "starttls":
            client.starttls(context=self._tls_context())
            client.ehlo()
        if cfg.user:
            client.login(cfg.user, cfg.password or "")
        self.connections_opened += 1
        return client

    def _tls_context(self) -> ssl.SSLContext:
        # Loading the system's CA store takes ~15 ms: once per messenger, and only for TLS.
        if self.config.ssl_context is None:
            self.config.ssl_context = ssl.create_default_context()
        return self.config.ssl_context

    def _reset(self) -> None:
        """After a refusal mid-transaction, RSET keeps the connection usable; if it fails, drop it."""
        if self._client is None:
            return
        try:
            code, _ = self._client.rset()
        except (OSError, smtplib.SMTPException):
            code = 0
        if code != 250:
            self._drop()

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(OSError):
                client.close()

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.quit()
        except (OSError, smtplib.SMTPException):
            client.close()


def _needs_stuffing(message: bytes) -> bool:
    """Does any line start with a dot? Searching for b"\\n." costs ~60 us on a 58 KB message (newlines
    are everywhere); dots are rare (base64 has none), so look at each dot instead: ~3 us."""
    if message.startswith(b"."):
        return True
    find = message.find
    position = find(b".")
    while position != -1:
        if message[position - 1] == 10:  # "\n"
            return True
        position = find(b".", position + 1)
    return False


def _dot_stuffed(message: bytes) -> bytes:
    data = _LEADING_DOT.sub(b"..", message) if _needs_stuffing(message) else message
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def _ascii_domain(address: str) -> str:
    """Internationalised domains travel as IDNA (xn--) in the envelope."""
    local, _, domain = address.rpartition("@")
    if domain.isascii():
        return address
    return f"{local}@{domain.encode('idna').decode('ascii')}"


def _text(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        error = exc.smtp_error
        return error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error)
    return f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
