"""Raw inbound bytes -> ParsedMessage, without ever raising.

Mail from the internet is often broken: headers that crash the modern email parser, bodies in
charsets that do not exist, MIME trees with no boundary. The modern parser (policy.default) is
tried first for every header, and each failure falls back to a plain decoding of the raw value,
so one bad header never costs the rest of the message. Every problem met is kept as a defect in
plain words for the admin inbox.
"""

from __future__ import annotations

import codecs
import email.header
import email.policy
import email.utils
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesParser

import html2text
from mailparser_reply import EmailReplyParser

DEFAULT_MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_TOTAL_ATTACHMENT_BYTES = 25 * 1024 * 1024
DEFAULT_MAX_ATTACHMENTS = 20
DEFAULT_MAX_NESTED_DEPTH = 3
_MAX_PARTS = 500
_MAX_HEADERS = 1000
_MAX_HEADER_CHARS = 8192
_MAX_SUBJECT_CHARS = 998
_MAX_TEXT_CHARS = 2_000_000
_MAX_HTML_TO_TEXT_CHARS = 1_000_000

_ANGLE_ID = re.compile(r"<\s*([^<>\s]+?)\s*>")
_BARE_ADDRESS = re.compile(r"[\w.+\-=!#$%&'*/?^`{|}~]+@[\w\-]+(?:\.[\w\-]+)+")
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

Note = Callable[[str], None]  # receives a defect in plain words


def _ignore(defect: str) -> None:
    return None


@dataclass(frozen=True)
class Attachment:
    filename: str | None
    content_type: str
    size: int
    data: bytes = field(repr=False)
    content_id: str | None = None
    inline: bool = False
    refused: str | None = None  # why the bytes were dropped ("too large", "too many attachments")

    @property
    def kept(self) -> bool:
        return self.refused is None


@dataclass(frozen=True)
class ParsedMessage:
    """The parts of a message the rest of cop-mail reads. Ids keep their angle brackets."""

    message_id: str | None
    in_reply_to: str | None
    references: list[str]
    from_address: str | None
    from_name: str
    to_addresses: list[str]
    cc_addresses: list[str]
    reply_to_addresses: list[str]
    subject: str
    date: datetime | None
    text: str
    html: str | None
    text_from_html: bool
    attachments: list[Attachment]
    nested: list[ParsedMessage]
    headers: list[tuple[str, str]] = field(repr=False)
    content_type: str
    size: int
    defects: list[str]
    message: Message | None = field(default=None, repr=False, compare=False)

    def header(self, name: str) -> str | None:
        """The first value of a header (decoded), or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    def header_all(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]

    def has_header(self, name: str) -> bool:
        return self.header(name) is not None

    @property
    def thread_ids(self) -> list[str]:
        """In-Reply-To then References (newest first): the ids to match to mail we sent."""
        ids = [self.in_reply_to] if self.in_reply_to else []
        ids += [ref for ref in reversed(self.references) if ref not in ids]
        return ids


@dataclass(frozen=True)
class Limits:
    max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES
    max_total_attachment_bytes: int = DEFAULT_MAX_TOTAL_ATTACHMENT_BYTES
    max_attachments: int = DEFAULT_MAX_ATTACHMENTS
    max_nested_depth: int = DEFAULT_MAX_NESTED_DEPTH


def parse_message(
    raw: bytes,
    *,
    max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES,
    max_total_attachment_bytes: int = DEFAULT_MAX_TOTAL_ATTACHMENT_BYTES,
    max_attachments: int = DEFAULT_MAX_ATTACHMENTS,
    max_nested_depth: int = DEFAULT_MAX_NESTED_DEPTH,
) -> ParsedMessage:
    """Parse raw RFC 5322 bytes. Never raises: whatever cannot be read becomes a defect."""
    limits = Limits(max_attachment_bytes, max_total_attachment_bytes, max_attachments, max_nested_depth)
    data = _as_bytes(raw)
    try:
        msg: Message = BytesParser(policy=email.policy.default).parsebytes(data)
    except Exception as exc:  # the modern parser has crashed on real mail before
        return _parse_compat32(data, limits, f"modern parser failed: {type(exc).__name__}")
    try:
        return _from_message(msg, len(data), limits, depth=0)
    except Exception as exc:  # never let one message stop the inbound queue
        return _parse_compat32(data, limits, f"reading the message failed: {type(exc).__name__}")


def visible_reply_text(parsed: ParsedMessage) -> str:
    """The new text a person wrote: quoted text, attribution lines and signatures removed."""
    return visible_text(parsed.text)


def normalise_message_id(value: str | None) -> str | None:
    """`<id@host>` from a header value, or None when there is no usable id."""
    if not value:
        return None
    found = _ANGLE_ID.search(value)
    if found:
        return f"<{found.group(1)}>"
    bare = value.strip().strip("<>").strip()
    if bare and " " not in bare and "@" in bare and len(bare) <= 900:
        return f"<{bare}>"
    return None


def _as_bytes(raw: bytes | bytearray | memoryview | str) -> bytes:
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape")
    return bytes(raw)


def _parse_compat32(data: bytes, limits: Limits, defect: str) -> ParsedMessage:
    """Last resort: the old parser, and if even that fails an empty message keeping the defect."""
    try:
        msg = BytesParser(policy=email.policy.compat32).parsebytes(data)
        parsed = _from_message(msg, len(data), limits, depth=0)
        return _with_defect(parsed, defect)
    except Exception as exc:
        return _empty(len(data), [defect, f"old parser failed too: {type(exc).__name__}"])


def _with_defect(parsed: ParsedMessage, defect: str) -> ParsedMessage:
    parsed.defects.insert(0, defect)
    return parsed


def _empty(size: int, defects: list[str]) -> ParsedMessage:
    return ParsedMessage(
        message_id=None,
        in_reply_to=None,
        references=[],
        from_address=None,
        from_name="",
        to_addresses=[],
        cc_addresses=[],
        reply_to_addresses=[],
        subject="",
        date=None,
        text="",
        html=None,
        text_from_html=False,
        attachments=[],
        nested=[],
        headers=[],
        content_type="text/plain",
        size=size,
        defects=defects,
    )


class _Reader:
    """Collects defects while reading one message (and its nested messages)."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.defects: list[str] = []
        self.parts = 0
        self.attachment_bytes = 0
        self.attachment_count = 0

    def note(self, defect: str) -> None:
        if len(self.defects) < 100 and defect.lower() not in (known.lower() for known in self.defects):
            self.defects.append(defect)


def _from_message(msg: Message, size: int, limits: Limits, depth: int, reader: _Reader | None = None) -> ParsedMessage:
    reader = reader or _Reader(limits)
    headers = _decoded_headers(msg, reader)
    body = _Body()
    _walk(msg, reader, body, depth)
    text, from_html = body.best_text(reader)
    from_name, from_address = _sender(msg, reader)
    for defect in getattr(msg, "defects", []) or []:
        reader.note(_defect_words(defect))
    return ParsedMessage(
        message_id=_message_id(msg, reader),
        in_reply_to=normalise_message_id(_first_raw(msg, "in-reply-to")),
        references=_references(msg),
        from_address=from_address,
        from_name=from_name,
        to_addresses=_address_list(msg, "to", reader),
        cc_addresses=_address_list(msg, "cc", reader),
        reply_to_addresses=_address_list(msg, "reply-to", reader),
        subject=_subject(msg, reader),
        date=_date(msg, reader),
        text=text,
        html=body.html,
        text_from_html=from_html,
        attachments=body.attachments,
        nested=body.nested,
        headers=headers,
        content_type=_content_type(msg, reader),
        size=size,
        defects=reader.defects,
        message=msg,
    )


# --- headers ---------------------------------------------------------------------------------------


def _raw_items(msg: Message) -> list[tuple[str, str]]:
    try:
        return [(str(name), str(value)) for name, value in msg.raw_items()]
    except Exception:
        return []


def _first_raw(msg: Message, name: str) -> str | None:
    values = _all_raw(msg, name)
    return values[0] if values else None


def _all_raw(msg: Message, name: str) -> list[str]:
    wanted = name.lower()
    return [value for key, value in _raw_items(msg) if key.lower() == wanted]


def _decoded_headers(msg: Message, reader: _Reader) -> list[tuple[str, str]]:
    items = _raw_items(msg)
    if len(items) > _MAX_HEADERS:
        reader.note(f"too many headers ({len(items)}), kept the first {_MAX_HEADERS}")
        items = items[:_MAX_HEADERS]
    decoded = []
    for name, raw in items:
        value = decode_header_value(name, raw, reader.note)
        if len(value) > _MAX_HEADER_CHARS:
            reader.note(f"{_fix_surrogates(name)} header too long, cut to {_MAX_HEADER_CHARS} characters")
            value = value[:_MAX_HEADER_CHARS]
        decoded.append((_fix_surrogates(name).strip(), value))
    return decoded


def decode_header_value(name: str, raw: str, note: Note = _ignore) -> str:
    """A header value as text: the modern parser first, then a plain decoding of the raw value."""
    if not _has_surrogates(raw):
        try:
            value = str(email.policy.default.header_fetch_parse(name, raw))
            if "\ufffd" not in value:
                return _one_line(value)
        except Exception as exc:  # known crashes: Message-ID <<>>, broken addresses
            note(f"{_fix_surrogates(name)} header could not be parsed ({type(exc).__name__})")
    else:
        note(f"8-bit characters in the {_fix_surrogates(name)} header")
    return _one_line(_decode_raw_header(raw))


def _decode_raw_header(raw: str) -> str:
    text = _fix_surrogates(_FOLD.sub("", raw))
    if "=?" not in text:
        return text
    try:
        chunks = email.header.decode_header(text)
    except Exception:  # broken encoded words: keep them as they came
        return text
    return "".join(_decode_chunk(chunk, charset) for chunk, charset in chunks)


def _decode_chunk(chunk: bytes | str, charset: str | None) -> str:
    if isinstance(chunk, str):
        return chunk
    if charset is None:
        try:
            return chunk.decode("raw-unicode-escape")
        except Exception:
            return chunk.decode("latin-1")
    return decode_bytes(chunk, charset)[0]


def _one_line(value: str) -> str:
    return " ".join(value.replace("\x00", " ").split())


def _has_surrogates(value: str) -> bool:
    return any("\udc80" <= char <= "\udcff" for char in value)


def _fix_surrogates(value: str) -> str:
    """Bytes the parser could not decode (kept as surrogates) read as UTF-8, else Windows-1252."""
    if not _has_surrogates(value):
        return value
    data = value.encode("utf-8", "surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def _message_id(msg: Message, reader: _Reader) -> str | None:
    raws = _all_raw(msg, "message-id")
    if len(raws) > 1:
        reader.note("more than one Message-ID header")
    if not raws:
        reader.note("no Message-ID header")
        return None
    found = normalise_message_id(_fix_surrogates(raws[0]))
    if found is None:
        reader.note("unusable Message-ID header")
    return found


def _references(msg: Message) -> list[str]:
    raw = " ".join(_fix_surrogates(value) for value in _all_raw(msg, "references"))
    ids = [f"<{found}>" for found in _ANGLE_ID.findall(raw)]
    if not ids:
        ids = [f"<{token}>" for token in raw.split() if "@" in token and "<" not in token and ">" not in token]
    unique: list[str] = []
    for item in ids[:200]:
        if item not in unique:
            unique.append(item)
    return unique


def _subject(msg: Message, reader: _Reader) -> str:
    raws = _all_raw(msg, "subject")
    if len(raws) > 1:
        reader.note("more than one Subject header")
    if not raws:
        return ""
    subject = decode_header_value("subject", raws[0], reader.note)
    if len(subject) > _MAX_SUBJECT_CHARS:
        reader.note("subject too long")
    return subject[:_MAX_SUBJECT_CHARS]


def _date(msg: Message, reader: _Reader) -> datetime | None:
    raw = _first_raw(msg, "date")
    if not raw:
        reader.note("no Date header")
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(_fix_surrogates(raw).strip())
    except Exception:
        reader.note("unreadable Date header")
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _content_type(msg: Message, reader: _Reader | None = None) -> str:
    try:
        return str(msg.get_content_type()).lower()
    except Exception:
        if reader:
            reader.note("unreadable Content-Type header")
        return "text/plain"


# --- addresses -------------------------------------------------------------------------------------


def _address_pairs(msg: Message, name: str, reader: _Reader) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for raw in _all_raw(msg, name):
        pairs += _pairs_from_raw(name, raw, reader)
    return pairs


def _pairs_from_raw(name: str, raw: str, reader: _Reader) -> list[tuple[str, str]]:
    if not _has_surrogates(raw):
        try:
            header = email.policy.default.header_fetch_parse(name, raw)
            found = [(str(a.display_name), str(a.addr_spec)) for a in header.addresses]
            cleaned = [(name_, addr) for name_, addr in found if _clean_address(addr)]
            if cleaned or not raw.strip():
                return cleaned
        except Exception:  # fall through to the old, forgiving parser
            reader.note(f"{name.title()} header could not be parsed")
    text = _decode_raw_header(raw)
    try:
        pairs = email.utils.getaddresses([text])
    except Exception:
        pairs = []
    cleaned = [(display, addr) for display, addr in pairs if _clean_address(addr)]
    if not cleaned:
        cleaned = [("", found) for found in _BARE_ADDRESS.findall(text)]
    return cleaned


def _clean_address(addr: str) -> str | None:
    value = _fix_surrogates(addr).strip().strip("<>").strip().lower()
    if value.count("@") != 1 or " " in value or value.startswith("@") or value.endswith("@"):
        return None
    return value


def _address_list(msg: Message, name: str, reader: _Reader) -> list[str]:
    found: list[str] = []
    for _display, addr in _address_pairs(msg, name, reader):
        clean = _clean_address(addr)
        if clean and clean not in found:
            found.append(clean)
    return found


def _sender(msg: Message, reader: _Reader) -> tuple[str, str | None]:
    froms = _all_raw(msg, "from")
    if len(froms) > 1:
        reader.note("more than one From header")
    for name in ("from", "sender"):
        pairs = _address_pairs(msg, name, reader)
        if pairs:
            display, addr = pairs[0]
            return _one_line(_fix_surrogates(display)), _clean_address(addr)
    reader.note("no usable From address")
    return "", None


# --- body ------------------------------------------------------------------------------------------


class _Body:
    def __init__(self) -> None:
        self.texts: list[str] = []
        self.html: str | None = None
        self.attachments: list[Attachment] = []
        self.nested: list[ParsedMessage] = []

    def best_text(self, reader: _Reader) -> tuple[str, bool]:
        if self.texts:
            return "\n\n".join(self.texts)[:_MAX_TEXT_CHARS], False
        if self.html:
            return html_to_text(self.html, reader.note), True
        return "", False


def _walk(part: Message, reader: _Reader, body: _Body, depth: int, level: int = 0) -> None:
    reader.parts += 1
    if reader.parts > _MAX_PARTS or level > 50:
        reader.note("too many MIME parts, the rest was ignored")
        return
    ctype = _content_type(part, reader)
    for defect in getattr(part, "defects", []) or []:
        reader.note(_defect_words(defect))
    if ctype == "message/rfc822":
        _nested(part, reader, body, depth)
        return
    if part.is_multipart():
        if ctype.startswith("multipart/"):
            for sub in _subparts(part):
                _walk(sub, reader, body, depth, level + 1)
        return  # message/delivery-status and similar: read by classify, not shown as body
    if ctype.startswith("multipart/"):
        # No usable boundary: the parser kept the body as one string. Show it rather than lose it.
        reader.note("broken multipart body shown as plain text")
        ctype = "text/plain"
    _leaf(part, ctype, reader, body)


def _subparts(part: Message) -> list[Message]:
    try:
        payload = part.get_payload()
    except Exception:
        return []
    return [sub for sub in payload if isinstance(sub, Message)] if isinstance(payload, list) else []


def _nested(part: Message, reader: _Reader, body: _Body, depth: int) -> None:
    inner = _subparts(part)
    if not inner:
        reader.note("empty message/rfc822 part")
        return
    if depth + 1 > reader.limits.max_nested_depth:
        reader.note("messages nested too deep, the innermost were ignored")
        return
    try:
        body.nested.append(_from_message(inner[0], 0, reader.limits, depth + 1, _Reader(reader.limits)))
    except Exception as exc:
        reader.note(f"nested message unreadable ({type(exc).__name__})")


def _leaf(part: Message, ctype: str, reader: _Reader, body: _Body) -> None:
    disposition, filename = _disposition(part, reader)
    is_body = disposition != "attachment" and not filename
    if is_body and ctype == "text/plain":
        text = part_text(part, reader.note)
        if text.strip():
            body.texts.append(text)
        return
    if is_body and ctype == "text/html" and body.html is None:
        body.html = part_text(part, reader.note)
        return
    if ctype in ("text/rfc822-headers", "message/delivery-status", "message/feedback-report"):
        return
    _attachment(part, ctype, disposition, filename, reader, body)


def _disposition(part: Message, reader: _Reader) -> tuple[str | None, str | None]:
    try:
        disposition = part.get_content_disposition()
    except Exception:
        disposition = None
    try:
        filename = part.get_filename()
    except Exception:
        reader.note("unreadable attachment file name")
        filename = None
    if filename:
        filename = _one_line(_decode_raw_header(str(filename)))[:255] or None
    return disposition, filename


def _attachment(
    part: Message, ctype: str, disposition: str | None, filename: str | None, reader: _Reader, body: _Body
) -> None:
    data = part_bytes(part)
    limits = reader.limits
    refused = None
    if len(data) > limits.max_attachment_bytes:
        refused = "too large"
    elif reader.attachment_count >= limits.max_attachments:
        refused = "too many attachments"
    elif reader.attachment_bytes + len(data) > limits.max_total_attachment_bytes:
        refused = "attachments too large in total"
    if refused:
        reader.note(f"attachment {filename or ctype} refused: {refused}")
    else:
        reader.attachment_count += 1
        reader.attachment_bytes += len(data)
    content_id = normalise_message_id(_first_raw(part, "content-id"))
    body.attachments.append(
        Attachment(
            filename=filename,
            content_type=ctype,
            size=len(data),
            data=b"" if refused else data,
            content_id=content_id,
            inline=disposition == "inline",
            refused=refused,
        )
    )


def part_bytes(part: Message) -> bytes:
    """The decoded payload of a leaf part, whatever its transfer encoding claims."""
    try:
        data = part.get_payload(decode=True)
    except Exception:
        data = None
    if isinstance(data, bytes):
        return data
    try:
        payload = part.get_payload()
    except Exception:
        return b""
    return payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""


def part_text(part: Message, note: Note = _ignore) -> str:
    data = part_bytes(part)
    try:
        charset = part.get_content_charset()
    except Exception:
        charset = None
    text, problem = decode_bytes(data, charset)
    if problem:
        note(problem)
    return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def decode_bytes(data: bytes, charset: str | None) -> tuple[str, str | None]:
    """Text from bytes in a declared charset; unknown or wrong charsets fall back to UTF-8,
    then Windows-1252 with replacement. Returns the text and a defect (or None)."""
    problem = None
    if charset:
        name = charset.strip().strip("\"'").lower()
        try:
            if not codecs.lookup(name)._is_text_encoding:
                raise LookupError(name)
            return data.decode(name), None
        except UnicodeDecodeError:
            problem = f"text is not valid {name[:40]}"
        except (LookupError, ValueError, TypeError):
            problem = f"unknown charset {name[:40]!r}"
        except Exception:  # codec-specific errors
            problem = f"text is not valid {name[:40]}"
    try:
        return data.decode("utf-8"), problem
    except UnicodeDecodeError:
        if problem is None and any(byte > 127 for byte in data):
            problem = "8-bit text without a charset"
        return data.decode("cp1252", "replace"), problem


def html_to_text(html: str, note: Note = _ignore) -> str:
    """Plain text from an HTML body; blockquotes become '>' lines so quoted text stays marked."""
    if len(html) > _MAX_HTML_TO_TEXT_CHARS:
        html = html[:_MAX_HTML_TO_TEXT_CHARS]
        note("HTML body too long, only the start was read")
    converter = html2text.HTML2Text()
    converter.body_width = 0
    converter.ignore_images = True
    converter.ignore_links = True
    converter.ignore_emphasis = True
    converter.unicode_snob = True
    try:
        text = converter.handle(html)
    except Exception:  # html2text on hostile markup
        note("HTML body could not be turned into text")
        text = re.sub(r"<[^>]*>", " ", html)
    return text.replace("\r\n", "\n").strip()


def _defect_words(defect: object) -> str:
    name = type(defect).__name__.removesuffix("Defect")
    return _CAMEL.sub(" ", name).lower() or "defect"


# --- the visible part of a reply -------------------------------------------------------------------
# mail-parser-reply splits a body at reply headers and finds signatures; the rules below catch what
# it misses (Portuguese, wrapped attribution lines, unquoted Outlook blocks) and refuse its
# signature cut when the "signature" is really a sentence ("Thanks, but no").

_REPLY_LANGUAGES = ["en", "es", "fr", "de", "nl", "it"]
_MAX_REPLY_CHARS = 20_000

_ATTRIBUTION = re.compile(
    r"^(?:on\b.{0,300}\bwrote"
    r"|el\b.{0,300}\bescribi[óo]"
    r"|le\b.{0,300}\ba\s+[ée]crit"
    r"|am\b.{0,300}\bschrieb\b.{0,300}"
    r"|em\b.{0,300}\bescreveu"
    r"|op\b.{0,300}\bschreef\b.{0,300}"
    r"|il\b.{0,300}\bha\s+scritto"
    r"|.{0,300}<[^<>\s]+@[^<>\s]+>\s*(?:wrote|escribi[óo]|a\s+[ée]crit|schrieb|escreveu|schreef|ha\s+scritto))"
    r"\s*:\s*$",
    re.IGNORECASE,
)
_ATTRIBUTION_START = re.compile(r"^(?:on|el|le|am|em|op|il)\b", re.IGNORECASE)
_SEPARATOR = re.compile(
    r"^(?:-{2,}\s*(?:original message|mensaje original|message d'origine|ursprüngliche nachricht"
    r"|mensagem original|oorspronkelijk bericht|messaggio originale|forwarded message|mensaje reenviado"
    r"|message transféré|weitergeleitete nachricht|mensagem encaminhada|doorgestuurd bericht"
    r"|messaggio inoltrato)\s*-{2,}"
    r"|_{10,}|-{10,}"
    r"|begin forwarded message:|inicio del mensaje reenviado:|début du message (?:réexpédié|transféré)\s?:"
    r"|anfang der weitergeleiteten nachricht:|início da mensagem (?:re)?encaminhada:)\s*$",
    re.IGNORECASE,
)
_OUTLOOK_FROM = re.compile(r"^\**(?:from|de|von|van|da)\s*:\**\s*\S", re.IGNORECASE)
_OUTLOOK_NEXT = re.compile(
    r"^\**(?:sent|date|to|subject|enviado|fecha|para|asunto|envoyé|à|objet|gesendet|datum|an|betreff"
    r"|verzonden|aan|onderwerp|inviato|data|oggetto|assunto)\s*:",
    re.IGNORECASE,
)
_SENT_FROM = re.compile(
    r"^(?:sent from my|sent from outlook|get outlook for|enviado desde mi|enviado desde|envoyé de mon"
    r"|envoyé depuis|von meinem .{1,40} gesendet|gesendet von|enviado do meu|enviado de meu"
    r"|verzonden (?:vanaf|met)|inviato da)\b",
    re.IGNORECASE,
)
_VALEDICTION = re.compile(
    r"^(?:best regards|kind regards|warm regards|regards|best wishes|all the best|best|thanks|thank you"
    r"|many thanks|cheers|warmly|sincerely|un saludo|saludos(?: cordiales)?|un abrazo|atentamente"
    r"|gracias|muchas gracias|bien cordialement|cordialement|bien à vous|amitiés|bises|merci"
    r"|mit freundlichen grüßen|(?:viele|liebe|beste|herzliche) grüße|grüße|gruß|danke|lg|vg|mfg"
    r"|abraços|abraço|atenciosamente|cumprimentos|obrigad[oa]|att\.?|beijos|met vriendelijke groet"
    r"|groeten|cordiali saluti|saluti|grazie)\b[\s,.!]*",
    re.IGNORECASE,
)
_NAME = re.compile(r"^(?:[A-ZÀ-ÖØ-Þ][\w.'\-]*\s*){1,4}$")


def visible_text(text: str) -> str:
    """The new text at the top of a reply body (see visible_reply_text)."""
    if not text or not text.strip():
        return ""
    text = text.replace("\r\n", "\n").replace("\r", "\n")[:_MAX_REPLY_CHARS]
    fallback = _strip_reply(text)
    try:
        candidate = _strip_reply(_library_reply(text))
    except Exception:  # the library's regexes on hostile input
        return fallback
    # The library only ever removes more from the end (a signature, a disclaimer); a result that
    # is not the start of ours means it split inside a header line, which some of its patterns do.
    if candidate and " ".join(fallback.split()).startswith(" ".join(candidate.split())):
        return candidate
    return fallback


def _library_reply(text: str) -> str:
    replies = EmailReplyParser(languages=list(_REPLY_LANGUAGES)).read(text).replies
    if not replies:
        return text
    first = replies[0]
    body = first.full_body
    for disclaimer in first.disclaimers or []:
        body = body.replace(disclaimer, "")
    if first.signatures and _signature_ok(first.signatures):
        body = body.replace(first.signatures, "")
    return body


def _signature_ok(signature: str) -> bool:
    lines = [line.strip() for line in signature.strip().splitlines() if line.strip()]
    if not lines:
        return False
    first = lines[0]
    if re.fullmatch(r"[-_]{2,}", first) or _SENT_FROM.match(first):
        return True
    if first.startswith("-"):
        rest: str | None = first.lstrip("-").strip()
    else:
        found = _VALEDICTION.match(first)
        rest = first[found.end() :] if found else None
    if rest is None:
        return False
    rest = rest.strip(" ,.!-")
    return not rest or bool(_NAME.match(rest))


def _strip_reply(text: str) -> str:
    lines = text.split("\n")
    lines = _cut_at_separator(lines)
    lines = _drop_attribution(lines)
    lines = [line for line in lines if not line.lstrip().startswith(">")]
    lines = _cut_signature(lines)
    return "\n".join(line.rstrip() for line in lines).strip()


def _cut_at_separator(lines: list[str]) -> list[str]:
    for index, line in enumerate(lines):
        stripped = line.strip()
        if _SEPARATOR.match(stripped):
            return lines[:index]
        if _OUTLOOK_FROM.match(stripped) and any(
            _OUTLOOK_NEXT.match(later.strip()) for later in lines[index + 1 : index + 5]
        ):
            return lines[:index]
    return lines


def _drop_attribution(lines: list[str]) -> list[str]:
    """Inline replies keep their text below the quote; an unmarked quote is cut whole."""
    for index, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith(">") or not _ATTRIBUTION_START.match(stripped):
            continue
        for span in (1, 2, 3):
            joined = " ".join(part.strip() for part in lines[index : index + span])
            if _ATTRIBUTION.match(joined):
                rest = lines[index + span :]
                if any(later.lstrip().startswith(">") for later in rest):
                    return lines[:index] + rest
                return lines[:index]
    return lines


def _cut_signature(lines: list[str]) -> list[str]:
    for index, line in enumerate(lines):
        stripped = line.strip()
        if stripped in ("--", "-- ", "—", "__") or _SENT_FROM.match(stripped):
            return lines[:index]
        if index > 0 and len(lines) - index <= 6 and _signature_ok(stripped) and _VALEDICTION.match(stripped):
            return lines[:index]
    return lines
