"""Storing inbound mail before anything else happens to it."""

from __future__ import annotations

import re

from redis import Redis
from sqlalchemy.orm import Session

from cop_mail.inbound.addresses import AddressBook, route_recipient
from cop_mail.models import InboundMessage
from cop_mail.settings import Settings

# Reply addresses stay valid for a year: people answer old mail.
REPLY_TOKEN_MAX_AGE_DAYS = 365
_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(<[^>\r\n]{1,400}>)", re.IGNORECASE | re.MULTILINE)


def refuse_recipient(settings: Settings, address: str) -> str | None:
    """Why a recipient is refused at RCPT time, or None to accept it."""
    book = AddressBook.from_settings(settings, max_age_days=REPLY_TOKEN_MAX_AGE_DAYS)
    route = route_recipient(address, book)
    if route.accepted:
        return None
    # A reply whose client dropped the token may still be matched by its thread (In-Reply-To).
    if route.refusal == "missing token" and address.lower().startswith(f"{book.reply_prefix}@"):
        return None
    return f"Refused: {route.refusal or 'unknown address'}"


def save_raw(session: Session, raw: bytes, mail_from: str, rcpt_tos: list[str], source: str) -> InboundMessage:
    found = _MESSAGE_ID.search(raw[:65536])
    message = InboundMessage(
        raw=raw,
        size=len(raw),
        envelope_from=mail_from[:500],
        envelope_to=rcpt_tos,
        source=source,
        message_id=found.group(1).decode("ascii", "replace") if found else None,
    )
    session.add(message)
    session.flush()
    return message


def enqueue_processing(connection: Redis, message_id: int) -> None:
    """Ring the doorbell; a message whose job is lost is picked up again by the reconciler."""
    from cop_mail.inbound.jobs import process_inbound_job  # imported here: the jobs module imports this one
    from cop_mail.queues import HIGH, enqueue

    enqueue(connection, process_inbound_job, message_id, queue=HIGH, job_id=f"inbound-{message_id}")
