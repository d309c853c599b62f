"""IMAP polling against a small IMAP4rev1 server on loopback that speaks what the poller uses."""

from __future__ import annotations

import re
import socketserver
import threading
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from sqlalchemy import select

from cop_mail.inbound.imap_poll import ImapConfig, poll_once
from cop_mail.models import Campaign, CampaignStatus, Delivery, DeliveryStatus, InboundMessage, Member
from cop_mail.tokens import make_address_token

DOMAIN = "cop-mail.test"


class Mailbox:
    def __init__(self) -> None:
        self.messages: dict[int, bytes] = {}
        self.seen: set[int] = set()
        self.fail_store_once = False

    def add(self, raw: bytes) -> None:
        self.messages[len(self.messages) + 1] = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


class ImapHandler(socketserver.StreamRequestHandler):
    mailbox: Mailbox

    def reply(self, line: str | bytes) -> None:
        self.wfile.write((line.encode() if isinstance(line, str) else line) + b"\r\n")

    def handle(self) -> None:
        self.reply("* OK IMAP4rev1 test server ready")
        for raw_line in self.rfile:
            tag, _, rest = raw_line.decode().strip().partition(" ")
            command, _, args = rest.partition(" ")
            command = command.upper()
            if command == "CAPABILITY":
                self.reply("* CAPABILITY IMAP4rev1")
            elif command == "LOGIN":
                if args.split() != ["poller", '"secret"'] and args.split() != ["poller", "secret"]:
                    self.reply(f"{tag} NO bad credentials")
                    continue
            elif command == "SELECT":
                self.reply(f"* {len(self.mailbox.messages)} EXISTS")
                self.reply(f"{tag} OK [READ-WRITE] selected")
                continue
            elif command == "UID":
                if not self.uid(tag, args):
                    return
                continue
            elif command == "LOGOUT":
                self.reply("* BYE")
                self.reply(f"{tag} OK bye")
                return
            self.reply(f"{tag} OK done")

    def uid(self, tag: str, args: str) -> bool:
        sub, _, rest = args.partition(" ")
        sub = sub.upper()
        if sub == "SEARCH":
            unseen = [str(u) for u in sorted(self.mailbox.messages) if u not in self.mailbox.seen]
            self.reply("* SEARCH " + " ".join(unseen))
        elif sub == "FETCH":
            uid = int(rest.split()[0])
            body = self.mailbox.messages[uid]
            self.wfile.write(f"* {uid} FETCH (UID {uid} BODY[] {{{len(body)}}}\r\n".encode() + body + b")\r\n")
        elif sub == "STORE":
            if self.mailbox.fail_store_once:  # the connection dies after the fetch, before \Seen is set
                self.mailbox.fail_store_once = False
                return False
            self.mailbox.seen.add(int(re.match(r"\d+", rest).group(0)))
        self.reply(f"{tag} OK UID {sub} done")
        return True


@pytest.fixture
def imap_server():
    mailbox = Mailbox()
    handler = type("Handler", (ImapHandler,), {"mailbox": mailbox})
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield mailbox, server.server_address[1]
    server.shutdown()
    server.server_close()


def reply_to_campaign(settings, db) -> tuple[bytes, Member]:
    member = Member(email="ana@example.org", name="Ana")
    campaign = Campaign(name="Issue 1", status=CampaignStatus.SENT)
    db.add_all([member, campaign])
    db.flush()
    db.add(Delivery(campaign_id=campaign.id, member_id=member.id, status=DeliveryStatus.SENT))
    db.commit()
    message = EmailMessage()
    message["From"] = "Ana <ana@example.org>"
    message["To"] = f"reply+{make_address_token(settings.secret_key, 'campaign', campaign.id, member.id)}@{DOMAIN}"
    message["Subject"] = "Re: Issue 1"
    message["Message-ID"] = make_msgid(domain="example.org")
    message.set_content("Thank you, this was useful.")
    return message.as_bytes(), member


def config(port: int, password: str = "secret") -> ImapConfig:  # noqa: S107 (the test server's account)
    return ImapConfig(host="127.0.0.1", port=port, user="poller", password=password, tls="none", timeout=5)


def test_unseen_mail_is_stored_flagged_and_processed_once(imap_server, settings, db, sessions, redis_conn, run_jobs):
    mailbox, port = imap_server
    raw, member = reply_to_campaign(settings, db)
    mailbox.add(raw)
    assert poll_once(config(port), sessions, redis_conn) == 1
    assert mailbox.seen == {1}
    assert poll_once(config(port), sessions, redis_conn) == 0  # already seen
    assert run_jobs() == 0
    db.expire_all()
    [message] = db.scalars(select(InboundMessage)).all()
    assert (message.source, message.status, message.member_id) == ("imap", "processed", member.id)


def test_a_crash_before_flagging_fetches_again_but_acts_once(imap_server, settings, db, sessions, redis_conn, run_jobs):
    mailbox, port = imap_server
    raw, _member = reply_to_campaign(settings, db)
    mailbox.add(raw)
    mailbox.fail_store_once = True
    with pytest.raises(Exception):  # noqa: B017 (the connection is dropped mid-session)
        poll_once(config(port), sessions, redis_conn)
    assert poll_once(config(port), sessions, redis_conn) == 1
    assert run_jobs() == 0
    db.expire_all()
    statuses = [m.status for m in db.scalars(select(InboundMessage).order_by(InboundMessage.id))]
    assert statuses == ["processed", "duplicate"]


def test_wrong_credentials_are_reported(imap_server, sessions, redis_conn, settings):
    _mailbox, port = imap_server
    import imaplib

    with pytest.raises(imaplib.IMAP4.error, match="bad credentials"):
        poll_once(config(port, password="wrong"), sessions, redis_conn)
