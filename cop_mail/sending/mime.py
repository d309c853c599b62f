"""Fast, correct MIME for personalised bulk email.

`email.message.EmailMessage` costs about 3 ms per message; almost all of that is the same work for
every recipient. Here the headers shared by all recipients, the MIME boundary and the part headers
are encoded once per campaign into a `MessageSkeleton`; per recipient only To, Subject, Date,
Message-ID, List-Unsubscribe and the two bodies are encoded, with the standard library's C base64,
and the pieces joined as bytes.

Usage::

    skeleton = MessageSkeleton.build(
        from_addr="news@example.org", from_name="Riverside Practice",
        reply_to="coordinator@example.org", list_id="newsletter.example.org", list_name="Riverside news",
        feedback_id="42:newsletter:riverside", bulk=True,
    )
    message_id = make_message_id("example.org")       # store it on the delivery row
    data = skeleton.render(
        to_addr="ana@example.net", to_name="Ana Souza", subject=subject, html=html, text=text,
        message_id=message_id,
        unsubscribe_url="https://example.org/u/TOKEN", unsubscribe_mailto="mailto:unsubscribe+TOKEN@example.org",
    )                                                   # bytes with CRLF line ends, ready for SMTP
    envelope_from = bounce_address(secret, "example.org", delivery_id, member_id)   # VERP

Header safety: free text (names, subjects, extra header values) has CR, LF and every other control or
line-break character turned into a space and is trimmed (`clean_text`), so it can never start a new
header or add a recipient; addresses, URLs and ids that contain such characters are refused with
ValueError. Non-ASCII text goes out as RFC 2047 encoded words. Addresses must be ASCII (pass the
normalised form email-validator gives).
"""

from __future__ import annotations

import binascii
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, formataddr

from cop_mail.tokens import make_address_token

CRLF = b"\r\n"
_MAX_LINE = 76
_WORD_BYTES = 45  # 45 bytes -> 60 base64 characters -> 72-character encoded word
# C0 controls, DEL, C1 controls and Unicode line/paragraph separators: all would break a header.
_CONTROLS = {code: " " for code in [*range(0x00, 0x20), *range(0x7F, 0xA0), 0x2028, 0x2029]}
_SIMPLE_TEXT = re.compile(r"[\x21-\x7e]+(?: [\x21-\x7e]+)*")
_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+")
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
_URL = re.compile(r"(?:https?://|mailto:)[\x21-\x7e]+")
_MANAGED = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "date",
        "message-id",
        "reply-to",
        "list-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "feedback-id",
        "precedence",
        "auto-submitted",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "sender",
        "return-path",
        "dkim-signature",
    }
)
_B64_SLICES = [slice(start, start + _MAX_LINE) for start in range(0, 4_000_000, _MAX_LINE)]


def clean_text(value: str) -> str:
    """One line of header text: control and line-break characters become spaces, and every run of
    whitespace one space (mail readers collapse it in names anyway); ends trimmed."""
    return " ".join(value.translate(_CONTROLS).split())


def _encoded_words(text: str, used: int = 0) -> list[str]:
    """RFC 2047 'B' words, each under 76 characters, never splitting a character. The first word
    is sized to fit after `used` characters of header name."""
    words: list[bytes] = []
    first_room = (_MAX_LINE - used - 1 - len("=?utf-8?b??=")) // 4 * 3
    budget = first_room if first_room >= 3 else _WORD_BYTES
    chunk = bytearray()
    for char in text:
        data = char.encode("utf-8", "replace")
        if chunk and len(chunk) + len(data) > budget:
            words.append(bytes(chunk))
            chunk = bytearray()
            budget = _WORD_BYTES
        chunk += data
    words.append(bytes(chunk))
    return ["=?utf-8?b?" + binascii.b2a_base64(word, newline=False).decode() + "?=" for word in words]


def _encoded_word(text: str) -> str:
    return "=?utf-8?b?" + binascii.b2a_base64(text.encode("utf-8", "replace"), newline=False).decode() + "?="


def _fold_words(words: Sequence[str], used: int) -> str:
    """Join words with spaces, folding (CRLF + space) before a line would pass 76 characters."""
    out = [words[0]]
    width = used + len(words[0])
    for word in words[1:]:
        if width + 1 + len(word) > _MAX_LINE:
            out.append("\r\n " + word)
            width = 1 + len(word)
        else:
            out.append(" " + word)
            width += 1 + len(word)
    return "".join(out)


def encode_text(name: str, value: str) -> bytes:
    """A complete unstructured header line (e.g. Subject) for free text, ending in CRLF."""
    text = clean_text(value)
    used = len(name) + 2
    if _SIMPLE_TEXT.fullmatch(text) and "=?" not in text:
        # Plain ASCII stays readable; folding at its single spaces unfolds back exactly.
        body = text if used + len(text) <= _MAX_LINE else _fold_words(text.split(" "), used)
        if max(len(line) for line in body.split("\r\n")) <= 900:
            return f"{name}: {body}\r\n".encode("ascii")
    if not text:
        return f"{name}: \r\n".encode("ascii")
    return f"{name}: {_fold_words(_encoded_words(text, used), used)}\r\n".encode("ascii")


def check_address(address: str) -> str:
    """An ASCII addr-spec with no room for header tricks, or ValueError."""
    if len(address) > 254 or not _ADDRESS.fullmatch(address) or address.count("@") != 1:
        raise ValueError(f"not a deliverable ASCII email address: {address!r}")
    local, domain = address.split("@")
    if not local or not _DOMAIN.fullmatch(domain) or ".." in address:
        raise ValueError(f"not a deliverable ASCII email address: {address!r}")
    return address


def format_address(name: str, address: str, used: int = len("To: ")) -> str:
    """`Name <address>`, quoting or RFC 2047-encoding the name as needed (no CRLF at the end).

    `used` is the width of the header name before it, for folding."""
    check_address(address)
    display = clean_text(name)
    if not display:
        return address
    if _SIMPLE_TEXT.fullmatch(display) and "=?" not in display and len(display) <= 60:
        return formataddr((display, address))
    # One encoded word, even past RFC 2047's 75 characters for very long names: readers (Python's
    # parser among them) put a space between adjacent encoded words in a display name, which
    # would change the name.
    return _fold_words([_encoded_word(display), f"<{address}>"], used)


def _check_token(value: str, pattern: re.Pattern[str], what: str) -> str:
    if not pattern.fullmatch(value):
        raise ValueError(f"{what} contains characters not allowed in a header: {value!r}")
    return value


def make_message_id(domain: str) -> str:
    """A fresh `<...@domain>` Message-ID; store it to match replies and bounces later."""
    _check_token(domain, _DOMAIN, "domain")
    return f"<{time.time_ns():x}.{os.urandom(9).hex()}@{domain}>"


def bounce_address(secret: str, domain: str, delivery_id: int, member_id: int) -> str:
    """VERP envelope sender `bounces+<token>@domain`: a bounce names its delivery row."""
    _check_token(domain, _DOMAIN, "domain")
    return f"bounces+{make_address_token(secret, 'bounce', delivery_id, member_id)}@{domain}"


def _b64_body(body: str | bytes) -> bytes:
    data = body if isinstance(body, bytes) else body.encode("utf-8", "replace")
    encoded = binascii.b2a_base64(data, newline=False)
    lines = (len(encoded) + _MAX_LINE - 1) // _MAX_LINE
    if lines > len(_B64_SLICES):
        start = len(_B64_SLICES) * _MAX_LINE
        _B64_SLICES.extend(slice(s, s + _MAX_LINE) for s in range(start, lines * _MAX_LINE, _MAX_LINE))
    return CRLF.join(map(encoded.__getitem__, _B64_SLICES[:lines]))


class _DateCache:
    """RFC 5322 Date, formatted once per second."""

    def __init__(self) -> None:
        self.second = -1
        self.line = b""

    def line_for(self, now: float | None) -> bytes:
        if now is not None:
            return _date_line(now)
        second = int(time.time())
        if second != self.second:
            self.line = _date_line(second)
            self.second = second
        return self.line


def _date_line(now: float) -> bytes:
    return f"Date: {format_datetime(datetime.fromtimestamp(now, UTC))}\r\n".encode("ascii")


@dataclass(eq=False)
class MessageSkeleton:
    """Everything shared by all messages of a campaign, encoded once. Build with `build`."""

    from_line: bytes
    shared_headers: bytes
    part_text: bytes
    part_html: bytes
    closing: bytes
    one_click_line: bytes

    @classmethod
    def build(
        cls,
        *,
        from_addr: str,
        from_name: str = "",
        reply_to: str | None = None,
        reply_to_name: str = "",
        list_id: str | None = None,
        list_name: str = "",
        feedback_id: str | None = None,
        bulk: bool = False,
        auto_submitted: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> MessageSkeleton:
        """`list_id` is the dotted id (`newsletter.example.org`); `feedback_id` the Feedback-ID value
        (`campaign:kind:community`); `bulk` adds `Precedence: bulk`; `auto_submitted` (e.g.
        `auto-generated`) adds Auto-Submitted; `headers` are extra headers shared by every message."""
        boundary = f"=_cm_{os.urandom(12).hex()}"  # "=_" never occurs in base64 output
        shared = []
        if reply_to:
            shared.append(f"Reply-To: {format_address(reply_to_name, reply_to, len('Reply-To: '))}\r\n".encode("ascii"))
        if list_id:
            _check_token(list_id, _DOMAIN, "List-Id")
            name = clean_text(list_name)
            value = f"{_quoted_phrase(name)} <{list_id}>" if name else f"<{list_id}>"
            shared.append(f"List-Id: {value}\r\n".encode("ascii"))
        if feedback_id:
            shared.append(_free_header("Feedback-ID", feedback_id))
        if bulk:
            shared.append(b"Precedence: bulk\r\n")
        if auto_submitted:
            shared.append(_free_header("Auto-Submitted", auto_submitted))
        shared.extend(_extra_header(name, value) for name, value in headers)
        shared.append(b"MIME-Version: 1.0\r\n")
        shared.append(f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'.encode("ascii"))
        marker = f"--{boundary}\r\n".encode("ascii")
        return cls(
            from_line=f"From: {format_address(from_name, from_addr, len('From: '))}\r\n".encode("ascii"),
            shared_headers=b"".join(shared),
            part_text=marker
            + b'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: base64\r\n\r\n',
            part_html=b"\r\n"
            + marker
            + b'Content-Type: text/html; charset="utf-8"\r\nContent-Transfer-Encoding: base64\r\n\r\n',
            closing=f"\r\n--{boundary}--\r\n".encode("ascii"),
            one_click_line=b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
        )

    def __post_init__(self) -> None:
        self._dates = _DateCache()
        self._subject_cache: tuple[str, bytes] = ("\0", b"")

    def render(
        self,
        *,
        to_addr: str,
        to_name: str = "",
        subject: str,
        html: str | bytes,
        text: str | bytes,
        message_id: str,
        unsubscribe_url: str | None = None,
        unsubscribe_mailto: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
        date: float | None = None,
    ) -> bytes:
        """One complete message as bytes with CRLF line ends.

        `html` and `text` are str, or bytes already in UTF-8 (see `CompiledEmail.fill_bytes`).
        `message_id` comes from `make_message_id` (the caller stores it). `unsubscribe_url` (https)
        adds List-Unsubscribe with List-Unsubscribe-Post one-click; `unsubscribe_mailto`
        (`mailto:...`) is added to List-Unsubscribe. `headers` are per-recipient extras. `date` is a
        Unix time for the Date header (default: now).
        """
        parts = [
            self.from_line,
            f"To: {format_address(to_name, to_addr)}\r\n".encode("ascii"),
            self._subject_line(subject),
            self._dates.line_for(date),
            b"Message-ID: " + _check_token(message_id, _MESSAGE_ID, "Message-ID").encode("ascii") + CRLF,
        ]
        if unsubscribe_url or unsubscribe_mailto:
            parts.append(_list_unsubscribe(unsubscribe_url, unsubscribe_mailto))
            if unsubscribe_url:
                parts.append(self.one_click_line)
        parts.extend(_extra_header(name, value) for name, value in headers)
        parts += [self.shared_headers, self.part_text, _b64_body(text), self.part_html, _b64_body(html), self.closing]
        return b"".join(parts)

    def _subject_line(self, subject: str) -> bytes:
        # Most campaigns share one subject: encode it once, not per recipient.
        cached_subject, line = self._subject_cache
        if subject != cached_subject:
            line = encode_text("Subject", subject)
            self._subject_cache = (subject, line)
        return line


_MESSAGE_ID = re.compile(r"<[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+>")


def _quoted_phrase(text: str) -> str:
    if _SIMPLE_TEXT.fullmatch(text) and "=?" not in text:
        escaped = text.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    return _encoded_word(text)


def _free_header(name: str, value: str) -> bytes:
    return encode_text(name, value)


def _extra_header(name: str, value: str) -> bytes:
    if not _HEADER_NAME.fullmatch(name) or name.lower() in _MANAGED:
        raise ValueError(f"header name not allowed here: {name!r}")
    return encode_text(name, value)


def _list_unsubscribe(url: str | None, mailto: str | None) -> bytes:
    targets = []
    if url:
        if not url.startswith(("https://", "http://")):
            raise ValueError("the List-Unsubscribe URL must start with https://")
        targets.append(f"<{_check_token(url, _URL, 'List-Unsubscribe URL')}>")
    if mailto:
        if not mailto.startswith("mailto:"):
            raise ValueError("the List-Unsubscribe address must start with mailto:")
        targets.append(f"<{_check_token(mailto, _URL, 'List-Unsubscribe address')}>")
    for target in targets:
        if ">" in target[1:-1] or "<" in target[1:-1] or "," in target[1:-1]:
            raise ValueError(f"List-Unsubscribe target contains <, > or a comma: {target!r}")
    return ("List-Unsubscribe: " + ",\r\n ".join(targets) + "\r\n").encode("ascii")
