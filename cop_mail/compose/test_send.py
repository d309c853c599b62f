"""Send a test of a newsletter to the coordinator's own address, now.

The coordinator is an Admin, not a Member, so there is no Delivery row and no signed member links:
the message is built here directly from the compiled email, with the sample recipient's links
(they look like the real ones and do nothing), "[TEST] " in front of the subject, and the same
MIME and DKIM as the workers use. It goes out over one SMTP connection and the attempt, with the
server's answer, is recorded in the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parseaddr

from sqlalchemy.orm import Session

from cop_mail.accounts import audit
from cop_mail.compose.newsletter import compile_newsletter
from cop_mail.models import Admin
from cop_mail.rendering import sample_recipient
from cop_mail.sending.dkim_signer import signer_for
from cop_mail.sending.mime import MessageSkeleton, make_message_id
from cop_mail.sending.pipeline import CampaignInfo, ascii_address
from cop_mail.sending.smtp import Outcome, SmtpConfig, SmtpMessenger
from cop_mail.settings import Settings

TEST_PREFIX = "[TEST] "


@dataclass(frozen=True)
class TestSendResult:
    sent: bool
    to: str
    subject: str
    message_id: str
    reply: str  # the SMTP server's answer, in words

    __test__ = False  # not a pytest test class, despite the name


def build_test_message(settings: Settings, info: CampaignInfo, admin: Admin) -> tuple[bytes, str, str, str]:
    """(message bytes, envelope sender, subject, Message-ID); raises ComposeError on content problems."""
    compiled = compile_newsletter(settings, info)
    recipient = sample_recipient(settings.public_url)
    name = " ".join(admin.name.split())
    recipient.update(first_name=name.split(" ", 1)[0] if name else "", name=name, email=admin.email)
    subject, body_html, body_text = compiled.fill(recipient)
    subject = TEST_PREFIX + subject
    from_name, from_addr = parseaddr(settings.mail_from)
    skeleton = MessageSkeleton.build(
        from_addr=from_addr,
        from_name=from_name,
        feedback_id=f"test:newsletter:{settings.mail_domain}",
        headers=[("X-Cop-Mail-Test", "a test sent from the composer")],
    )
    message_id = make_message_id(settings.mail_domain)
    raw = skeleton.render(
        to_addr=ascii_address(admin.email),
        to_name=name,
        subject=subject,
        html=body_html,
        text=body_text,
        message_id=message_id,
        unsubscribe_url=recipient["unsubscribe_url"],
    )
    if signer := signer_for(settings):
        raw = signer.sign(raw)
    return raw, from_addr, subject, message_id


def send_test(
    session: Session,
    settings: Settings,
    info: CampaignInfo,
    admin: Admin,
    *,
    ip: str | None = None,
    target: str = "newsletter draft",
    messenger: SmtpMessenger | None = None,
) -> TestSendResult:
    """Build and send now; the caller commits (the audit event records the attempt either way)."""
    raw, sender, subject, message_id = build_test_message(settings, info, admin)
    if messenger is not None:
        reply = messenger.send(sender, ascii_address(admin.email), raw)
    else:
        with SmtpMessenger(SmtpConfig.from_settings(settings)) as own:
            reply = own.send(sender, ascii_address(admin.email), raw)
    sent = reply.outcome is Outcome.SENT
    audit(
        session, admin, "newsletter.test_send", target, ip,
        to=admin.email, subject=subject, message_id=message_id, sent=sent, reply=reply.describe(),
    )  # fmt: skip
    return TestSendResult(sent, admin.email, subject, message_id, reply.describe())
