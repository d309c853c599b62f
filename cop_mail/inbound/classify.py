"""What kind of mail came in: a complaint, a bounce, other automatic mail, or a person.

Machine reports are read first because their structure is unambiguous and they carry the
recipients that failed; a delivery report also carries `Auto-Submitted` and comes from
MAILER-DAEMON, so checking automatic-mail signals first would hide every bounce. Everything
automatic is decided before a message may count as human, so an out-of-office reply that says
"yes" can never accept an introduction.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32
from enum import StrEnum

from flufl.bounce import all_failures

from cop_mail.inbound.parsing import ParsedMessage, decode_header_value, normalise_message_id, part_text

_MAX_PARTS = 200


class ClassificationKind(StrEnum):
    AUTO_REPLY = "auto_reply"
    BOUNCE_HARD = "bounce_hard"
    BOUNCE_SOFT = "bounce_soft"
    COMPLAINT = "complaint"
    HUMAN = "human"


@dataclass(frozen=True)
class FailedRecipient:
    address: str
    permanent: bool
    action: str | None = None  # failed / delayed, as the report said
    status: str | None = None  # e.g. 5.1.1
    diagnostic: str | None = None


@dataclass(frozen=True)
class BounceReport:
    recipients: list[FailedRecipient]
    permanent: bool
    status: str | None
    diagnostic: str | None
    original_message_id: str | None
    verp_token: str | None  # the token from a bounces+<token>@ address found in the report
    envelope_id: str | None  # Original-Envelope-Id (RFC 3461 ENVID) when the sender set one
    reporting_mta: str | None
    original_headers: list[tuple[str, str]] = field(default_factory=list, repr=False)

    @property
    def addresses(self) -> list[str]:
        return [recipient.address for recipient in self.recipients]


@dataclass(frozen=True)
class ComplaintReport:
    feedback_type: str
    original_recipient: str | None
    original_message_id: str | None
    original_mail_from: str | None
    user_agent: str | None
    verp_token: str | None
    original_headers: list[tuple[str, str]] = field(default_factory=list, repr=False)


@dataclass(frozen=True)
class Classification:
    kind: ClassificationKind
    reason: str
    bounce: BounceReport | None = None
    complaint: ComplaintReport | None = None

    @property
    def is_human(self) -> bool:
        return self.kind is ClassificationKind.HUMAN

    @property
    def is_bounce(self) -> bool:
        return self.kind in (ClassificationKind.BOUNCE_HARD, ClassificationKind.BOUNCE_SOFT)


def classify_message(
    parsed: ParsedMessage, *, envelope_sender: str | None = None, bounce_prefix: str = "bounces"
) -> Classification:
    """Never raises. `envelope_sender` is the SMTP MAIL FROM ("" for the null sender)."""
    try:
        return _classify(parsed, envelope_sender, bounce_prefix)
    except Exception as exc:  # an unreadable message is automatic mail, never a person
        return Classification(ClassificationKind.AUTO_REPLY, f"could not be classified ({type(exc).__name__})")


def _classify(parsed: ParsedMessage, envelope_sender: str | None, bounce_prefix: str) -> Classification:
    complaint = read_feedback_report(parsed, bounce_prefix)
    if complaint is not None:
        if complaint.feedback_type == "not-spam":
            return Classification(ClassificationKind.AUTO_REPLY, "feedback report saying not spam", None, complaint)
        return Classification(
            ClassificationKind.COMPLAINT, f"abuse report ({complaint.feedback_type})", complaint=complaint
        )
    bounce = read_delivery_status(parsed, bounce_prefix)
    automatic = automatic_reason(parsed, envelope_sender)
    if bounce is None and automatic and _looks_like_bounce(parsed, envelope_sender):
        bounce = read_heuristic_bounce(parsed, bounce_prefix)
    if bounce is not None and bounce.recipients:
        return _bounce_classification(bounce)
    if bounce is not None:
        return Classification(ClassificationKind.AUTO_REPLY, "delivery report without failures", bounce)
    if automatic:
        return Classification(ClassificationKind.AUTO_REPLY, automatic)
    return Classification(ClassificationKind.HUMAN, "no sign of automatic mail")


def _bounce_classification(bounce: BounceReport) -> Classification:
    status = f" {bounce.status}" if bounce.status else ""
    count = len(bounce.recipients)
    who = "1 recipient" if count == 1 else f"{count} recipients"
    if bounce.permanent:
        return Classification(ClassificationKind.BOUNCE_HARD, f"permanent failure{status} for {who}", bounce)
    return Classification(ClassificationKind.BOUNCE_SOFT, f"temporary failure{status} for {who}", bounce)


# --- automatic mail --------------------------------------------------------------------------------

_AUTO_HEADERS = (
    "x-autoreply",
    "x-autorespond",
    "x-autoresponder",
    "x-autogenerated",
    "x-auto-reply",
    "x-autoreply-from",
    "x-mail-autoreply",
    "x-auto-response-suppress",
    "x-ms-exchange-generated-message-source",
    "x-failed-recipients",
)
_BULK_PRECEDENCE = {"bulk", "junk", "list", "auto_reply", "auto-reply"}
_AUTOMATIC_SENDER = re.compile(
    r"^(?:mailer-daemon|postmaster|no[-_.]?reply|do[-_.]?not[-_.]?reply|dont[-_.]?reply|bounces?"
    r"|auto[-_.]?reply|autoresponder|auto[-_.]?response|mail[-_.]?delivery[-_.]?(?:system|subsystem))"
    r"(?:[-+._].*)?$"
)
_AUTOMATIC_NAME = re.compile(r"^(?:mail delivery (?:system|subsystem)|mailer-daemon|postmaster)\b", re.I)

# Compared after lower-casing and removing accents, so "Respuesta automatica" matches too. Only
# phrases a person would not put in a subject: every reply to a newsletter titled "On holiday"
# must not become automatic mail.
_AUTO_SUBJECT = re.compile(
    r"out of (?:the )?office|automatic reply|auto[- ]?reply|auto[- ]?response|autorespon|vacation reply"
    r"|away from (?:my|the) (?:desk|office)"
    r"|respuesta automatica|fuera de (?:la )?oficina|ausencia de la oficina|estoy de vacaciones"
    r"|reponse automatique|absent du bureau|message d'absence|absence du bureau"
    r"|abwesenheitsnotiz|automatische antwort|nicht im buro|ausser haus|auser haus"
    r"|resposta automatica|ausente do escritorio|fora do escritorio|mensagem de ausencia"
    r"|afwezig|automatisch antwoord|buiten kantoor|afwezigheidsbericht"
    r"|risposta automatica|fuori ufficio|fuori sede|assente dall'ufficio"
    r"|^(?:absent|absence|ausente|ausencia|assente|abwesend|abwesenheit|urlaub|vacances|vacaciones|ferias)\b"
)
_BOUNCE_SUBJECT = re.compile(
    r"^undeliverable\b|undelivered mail|delivery status notification|mail delivery (?:failed|failure)"
    r"|delivery (?:has )?failed|failure notice|returned mail:|could not be delivered|^non remis"
    r"|^unzustellbar|no se puede entregar|nao entregue|niet bezorgd|mancato recapito"
    r"|^warning: message .* delayed|delayed mail|delivery delayed"
)


def automatic_reason(parsed: ParsedMessage, envelope_sender: str | None = None) -> str | None:
    """Why this message was sent by a machine, in plain words, or None if nothing says so."""
    for check in (_auto_submitted, _auto_headers, _precedence, _list_headers, _report_type):
        reason = check(parsed)
        if reason:
            return reason
    if envelope_sender is not None and envelope_sender.strip() in ("", "<>"):
        return "sent with the null envelope sender"
    return _automatic_sender(parsed, envelope_sender) or _automatic_subject(parsed)


def _auto_submitted(parsed: ParsedMessage) -> str | None:
    for value in parsed.header_all("auto-submitted"):
        word = value.split(";")[0].split("(")[0].strip().lower()
        if word != "no":
            return f"Auto-Submitted: {word or 'empty'}"
    return None


def _auto_headers(parsed: ParsedMessage) -> str | None:
    for name in _AUTO_HEADERS:
        if parsed.has_header(name):
            return f"{_title(name)} header"
    return None


def _precedence(parsed: ParsedMessage) -> str | None:
    for name in ("precedence", "x-precedence"):
        for value in parsed.header_all(name):
            word = value.strip().lower()
            if word in _BULK_PRECEDENCE:
                return f"Precedence: {word}"
    return None


def _list_headers(parsed: ParsedMessage) -> str | None:
    for name in ("list-id", "list-unsubscribe", "list-post", "x-mailing-list"):
        if parsed.has_header(name):
            return f"mailing list mail ({_title(name)})"
    return None


def _report_type(parsed: ParsedMessage) -> str | None:
    if parsed.content_type != "multipart/report":
        return None
    return f"automatic report ({_param(parsed.message, 'report-type') or 'unknown type'})"


def _automatic_sender(parsed: ParsedMessage, envelope_sender: str | None) -> str | None:
    for address in (parsed.from_address, envelope_sender):
        local = (address or "").strip().strip("<>").rpartition("@")[0].lower()
        if local and _AUTOMATIC_SENDER.match(local):
            return f"sent by an automatic address ({local}@)"
    if _AUTOMATIC_NAME.match(parsed.from_name.strip()):
        return f"sent by {parsed.from_name.strip()}"
    return None


def _automatic_subject(parsed: ParsedMessage) -> str | None:
    subject = _fold(parsed.subject)
    if _AUTO_SUBJECT.search(subject):
        return "out-of-office subject"
    if _BOUNCE_SUBJECT.search(subject):
        return "delivery failure subject"
    return None


def _looks_like_bounce(parsed: ParsedMessage, envelope_sender: str | None) -> bool:
    local = (parsed.from_address or "").rpartition("@")[0]
    return bool(
        parsed.has_header("x-failed-recipients")
        or (envelope_sender is not None and envelope_sender.strip() in ("", "<>"))
        or re.match(r"^(?:mailer-daemon|postmaster|mail[-_.]?delivery)", local)
        or _AUTOMATIC_NAME.match(parsed.from_name.strip())
        or _BOUNCE_SUBJECT.search(_fold(parsed.subject))
    )


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def _title(name: str) -> str:
    return "-".join(word.capitalize() for word in name.split("-"))


# --- delivery status notifications (RFC 3464) ------------------------------------------------------

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SMTP_CODE = re.compile(r"\b([245])\d\d\b")


def read_delivery_status(parsed: ParsedMessage, bounce_prefix: str = "bounces") -> BounceReport | None:
    """The failures an RFC 3464 report lists, or None when the message has no delivery-status part."""
    msg = parsed.message
    if msg is None:
        return None
    status_parts = [part for part in _parts(msg) if _ctype(part) == "message/delivery-status"]
    if not status_parts:
        return None
    per_message: dict[str, str] = {}
    recipients: list[FailedRecipient] = []
    for part in status_parts:
        blocks = _field_blocks(part)
        if blocks:
            per_message.update({k: v for k, v in blocks[0].items() if k not in per_message})
        for block in blocks:
            failed = _failed_recipient(block)
            if failed is not None:
                recipients.append(failed)
    recipients = _merge_library_failures(msg, recipients)
    return _bounce_report(parsed, recipients, per_message, bounce_prefix)


def read_heuristic_bounce(parsed: ParsedMessage, bounce_prefix: str = "bounces") -> BounceReport | None:
    """A bounce in no standard format (old Exim, qmail, ...), read by flufl.bounce's detectors."""
    if parsed.message is None:
        return None
    recipients = _merge_library_failures(parsed.message, [])
    if not recipients:
        return None
    return _bounce_report(parsed, recipients, {}, bounce_prefix)


def _bounce_report(
    parsed: ParsedMessage, recipients: list[FailedRecipient], per_message: dict[str, str], bounce_prefix: str
) -> BounceReport:
    original = _original_headers(parsed)
    permanent = any(recipient.permanent for recipient in recipients)
    chosen = next((r for r in recipients if r.permanent == permanent), None)
    return BounceReport(
        recipients=recipients,
        permanent=permanent,
        status=chosen.status if chosen else None,
        diagnostic=chosen.diagnostic if chosen else None,
        original_message_id=_original_message_id(parsed, original),
        verp_token=_verp_token(parsed, original, bounce_prefix),
        envelope_id=per_message.get("original-envelope-id") or None,
        reporting_mta=_after_semicolon(per_message.get("reporting-mta")) or None,
        original_headers=original,
    )


def _failed_recipient(block: dict[str, str]) -> FailedRecipient | None:
    address = _recipient_address(block.get("original-recipient")) or _recipient_address(block.get("final-recipient"))
    if not address:
        return None
    action = (block.get("action") or "").strip().lower().split(" ")[0].split("(")[0] or None
    diagnostic = _after_semicolon(block.get("diagnostic-code")) or None
    status = _status_code(block.get("status")) or _status_code(diagnostic)
    if action in ("delivered", "relayed", "expanded"):
        return None
    if action and action.startswith("delayed"):
        permanent = False
    elif status:
        if status.startswith("2"):
            return None
        permanent = status.startswith("5")
    elif action and action.startswith(("fail", "error")):
        permanent = True
    else:
        return None
    return FailedRecipient(address, permanent, action, status, diagnostic[:1000] if diagnostic else None)


def _status_code(text: str | None) -> str | None:
    if not text:
        return None
    found = _STATUS.search(text)
    if found:
        return ".".join(found.groups())
    code = _SMTP_CODE.search(text)
    return f"{code.group(1)}.0.0" if code else None


def _recipient_address(value: str | None) -> str | None:
    if not value:
        return None
    address = _after_semicolon(value).strip().strip("<>").strip().lower()
    return address if "@" in address and " " not in address else None


def _after_semicolon(value: str | None) -> str:
    if not value:
        return ""
    return value.split(";", 1)[1].strip() if ";" in value else value.strip()


def _merge_library_failures(msg: Message, recipients: list[FailedRecipient]) -> list[FailedRecipient]:
    """Add what flufl.bounce finds and the report's own fields missed."""
    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # its detectors raise on some malformed messages
        return recipients
    known = {recipient.address for recipient in recipients}
    for raw, is_permanent in [(a, True) for a in sorted(permanent)] + [(a, False) for a in sorted(temporary)]:
        address = raw.decode("ascii", "replace").strip().strip("<>").lower()
        if "@" in address and address not in known:
            known.add(address)
            recipients.append(FailedRecipient(address, is_permanent, "failed" if is_permanent else "delayed"))
    return recipients


# --- abuse reports (RFC 5965) ----------------------------------------------------------------------


def read_feedback_report(parsed: ParsedMessage, bounce_prefix: str = "bounces") -> ComplaintReport | None:
    msg = parsed.message
    if msg is None:
        return None
    report = next((part for part in _parts(msg) if _ctype(part) == "message/feedback-report"), None)
    if report is None:
        return None
    blocks = _field_blocks(report)
    fields_ = blocks[0] if blocks else {}
    original = _original_headers(parsed)
    recipient = _recipient_address(fields_.get("original-rcpt-to")) or _first_address(original, "to")
    return ComplaintReport(
        feedback_type=(fields_.get("feedback-type") or "abuse").strip().lower()[:40] or "abuse",
        original_recipient=recipient,
        original_message_id=_original_message_id(parsed, original),
        original_mail_from=_recipient_address(fields_.get("original-mail-from")),
        user_agent=(fields_.get("user-agent") or None),
        verp_token=_verp_token(parsed, original, bounce_prefix),
        original_headers=original,
    )


# --- shared pieces ---------------------------------------------------------------------------------


def _parts(msg: Message) -> Iterator[Message]:
    """Every part of the report itself, without going inside the returned message."""
    stack = [msg]
    seen = 0
    while stack and seen < _MAX_PARTS:
        part = stack.pop(0)
        seen += 1
        yield part
        ctype = _ctype(part)
        if ctype.startswith("multipart/"):
            payload = _payload(part)
            stack.extend(sub for sub in payload if isinstance(sub, Message))


def _ctype(part: Message) -> str:
    try:
        return str(part.get_content_type()).lower()
    except Exception:
        return "text/plain"


def _payload(part: Message) -> list[Message]:
    try:
        payload = part.get_payload()
    except Exception:
        return []
    return [item for item in payload if isinstance(item, Message)] if isinstance(payload, list) else []


def _param(msg: Message | None, name: str) -> str | None:
    if msg is None:
        return None
    try:
        value = msg.get_param(name)
    except Exception:
        return None
    return str(value).lower() if isinstance(value, str) else None


def _field_blocks(part: Message) -> list[dict[str, str]]:
    """The header-like blocks of a delivery-status or feedback-report part, names lower-cased."""
    payload = _payload(part)
    if payload:
        return [_block_fields(block) for block in payload]
    text = part_text(part)
    return [_block_fields(HeaderParser(policy=compat32).parsestr(chunk)) for chunk in re.split(r"\n\s*\n", text)]


def _block_fields(block: Message) -> dict[str, str]:
    found: dict[str, str] = {}
    try:
        items = list(block.raw_items())
    except Exception:
        return found
    for name, raw in items:
        key = str(name).strip().lower()
        if key not in found:
            found[key] = decode_header_value(key, str(raw))[:2000]
    return found


def _original_headers(parsed: ParsedMessage) -> list[tuple[str, str]]:
    """Headers of the returned message (message/rfc822 or text/rfc822-headers), decoded."""
    msg = parsed.message
    if msg is None:
        return []
    for part in _parts(msg):
        ctype = _ctype(part)
        if ctype == "message/rfc822":
            inner = _payload(part)
            if inner:
                return _headers_of(inner[0])
        if ctype == "text/rfc822-headers":
            try:
                return _headers_of(HeaderParser(policy=compat32).parsestr(part_text(part)))
            except Exception:
                return []
    return []


def _headers_of(msg: Message) -> list[tuple[str, str]]:
    try:
        items = list(msg.raw_items())[:200]
    except Exception:
        return []
    return [(str(name).strip(), decode_header_value(str(name), str(value))[:2000]) for name, value in items]


def _first_address(headers: list[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            found = re.search(r"[\w.+\-=']+@[\w\-]+(?:\.[\w\-]+)+", value)
            if found:
                return found.group(0).lower()
    return None


def _original_message_id(parsed: ParsedMessage, original: list[tuple[str, str]]) -> str | None:
    for key, value in original:
        if key.lower() == "message-id":
            return normalise_message_id(value)
    # Some reports omit the original but thread to it.
    return parsed.in_reply_to


def _verp_token(parsed: ParsedMessage, original: list[tuple[str, str]], bounce_prefix: str) -> str | None:
    pattern = re.compile(rf"\b{re.escape(bounce_prefix)}\+([a-z0-9]{{8,64}})@", re.IGNORECASE)
    own = [(k, v) for k, v in parsed.headers if k.lower() in ("to", "delivered-to", "x-original-to")]
    first = [(k, v) for k, v in original if k.lower() in ("return-path", "sender", "errors-to")]
    for _key, value in own + first + original:
        found = pattern.search(value)
        if found:
            return found.group(1).lower()
    return None
