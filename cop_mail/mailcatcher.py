"""A local mail catcher for the embedded default: an SMTP server that keeps every
message in a Maildir under the instance folder, which the admin's Outbox shows."""

from __future__ import annotations

import email.policy
import mailbox
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


def open_box(folder: Path) -> mailbox.Maildir:
    # Maildir(create=True) leaves an existing empty folder without its tmp/new/cur parts.
    for part in ("tmp", "new", "cur"):
        (folder / part).mkdir(parents=True, exist_ok=True)
    return mailbox.Maildir(folder, create=False)


class _MaildirHandler:
    def __init__(self, folder: Path):
        self.box = open_box(folder)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        headers = f"X-Envelope-From: {envelope.mail_from}\r\nX-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n"
        self.box.add(headers.encode() + envelope.original_content)
        return "250 Message caught"


def start(folder: Path, host: str, port: int) -> Controller:
    controller = Controller(_MaildirHandler(folder), hostname=host, port=port, data_size_limit=50 * 1024 * 1024)
    controller.start()
    return controller


@dataclass
class CaughtMessage:
    key: str
    message: EmailMessage
    received: datetime | None

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", "(no subject)"))

    @property
    def to(self) -> str:
        return str(self.message.get("To", ""))

    def bodies(self) -> tuple[str, str]:
        text = self.message.get_body(("plain",))
        html = self.message.get_body(("html",))
        return (
            text.get_content() if text is not None else "",
            html.get_content() if html is not None else "",
        )


def _parse(key: str, raw: bytes) -> CaughtMessage:
    message = BytesParser(policy=email.policy.default).parsebytes(raw)
    try:
        received = parsedate_to_datetime(str(message["Date"])) if message["Date"] else None
    except (TypeError, ValueError):
        received = None
    return CaughtMessage(key, message, received)


def list_messages(folder: Path, limit: int = 100, offset: int = 0) -> tuple[int, list[CaughtMessage]]:
    open_box(folder)
    files = [path for part in ("new", "cur") for path in (folder / part).iterdir() if path.is_file()]
    files.sort(key=lambda path: path.stat().st_mtime, reverse=True)
    page = files[offset : offset + limit]
    return len(files), [_parse(path.name.split(":", 1)[0], path.read_bytes()) for path in page]


def find_message(folder: Path, key: str) -> CaughtMessage | None:
    box = open_box(folder)
    try:
        return _parse(key, box.get_bytes(key))
    except KeyError:
        return None
