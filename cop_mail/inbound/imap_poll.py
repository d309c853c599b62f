"""IMAP polling, for hosts that can neither run the SMTP receiver nor call the webhook.

Each unseen message is stored raw and committed before it is flagged as seen, so
a crash in between only fetches it again; the second copy has the same
Message-ID and is recorded as a duplicate, never acted on twice.
"""

from __future__ import annotations

import imaplib
import logging
import re
import ssl
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy.orm import Session, sessionmaker

from cop_mail.inbound import store

log = logging.getLogger("cop_mail.inbound.imap")
_FETCHED = re.compile(rb"UID (\d+)")
# Headers a mail host sets with the real envelope recipient; IMAP itself has no envelope.
_DELIVERED_TO = re.compile(rb"^(?:Delivered-To|X-Original-To|Envelope-To):[ \t]*<?([^>\s]+)>?", re.I | re.M)


@dataclass(frozen=True)
class ImapConfig:
    host: str
    port: int
    user: str
    password: str
    folder: str = "INBOX"
    tls: str = "tls"  # tls, starttls or none
    timeout: float = 30.0
    batch: int = 200


def _connect(config: ImapConfig) -> imaplib.IMAP4:
    if config.tls == "tls":
        client: imaplib.IMAP4 = imaplib.IMAP4_SSL(
            config.host, config.port, ssl_context=ssl.create_default_context(), timeout=config.timeout
        )
    else:
        client = imaplib.IMAP4(config.host, config.port, timeout=config.timeout)
        if config.tls == "starttls":
            client.starttls(ssl.create_default_context())
    try:
        client.login(config.user, config.password)
    except (imaplib.IMAP4.error, OSError):
        client.shutdown()
        raise
    return client


def poll_once(config: ImapConfig, sessions: sessionmaker[Session], redis: Redis | None) -> int:
    """Store every unseen message of the folder; returns how many were stored."""
    client = _connect(config)
    stored = 0
    try:
        client.select(config.folder)
        _status, found = client.uid("SEARCH", "UNSEEN")
        for uid in (found[0] or b"").decode("ascii").split()[: config.batch]:
            raw = _fetch(client, uid)
            if raw is None:
                continue
            with sessions() as session:
                message = store.save_raw(session, raw, "", _recipients(raw), "imap")
                session.commit()
                message_id = message.id
            stored += 1
            if redis is not None:
                try:
                    store.enqueue_processing(redis, message_id)
                except RedisError:
                    log.warning("inbound message %s stored, but Redis is unreachable", message_id)
            client.uid("STORE", uid, "+FLAGS", "(\\Seen)")
    finally:
        _close(client)
    return stored


def _close(client: imaplib.IMAP4) -> None:
    try:
        client.logout()
    except (imaplib.IMAP4.error, OSError):
        client.shutdown()


def _fetch(client: imaplib.IMAP4, uid: str) -> bytes | None:
    _status, data = client.uid("FETCH", uid, "(BODY.PEEK[])")
    for part in data:
        if isinstance(part, tuple) and _FETCHED.search(part[0]):
            return bytes(part[1])
    log.warning("IMAP message uid %s could not be fetched", uid)
    return None


def _recipients(raw: bytes) -> list[str]:
    return [m.decode("ascii", "replace") for m in _DELIVERED_TO.findall(raw[:65536])]
