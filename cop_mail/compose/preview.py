"""Previews for the composer: the email as a sample recipient or a chosen member would get it.

Everything that can go wrong with coordinator content comes back as `Problem(field, line, message)`
in the result, never as an exception: the composer shows it beside the form. The pre-send checks
run on the same compiled email the workers would send, grouped into the five checks the composer
lists (and the campaign service enforces at send).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cop_mail.compose import ComposeError, Problem
from cop_mail.compose.newsletter import NewsletterInput, campaign_info, compile_newsletter, newsletter_info
from cop_mail.models import Campaign, Member, MemberStatus
from cop_mail.rendering import RenderError, compile_email, get_kind, presend_problems, sample_recipient
from cop_mail.rendering.checks import GMAIL_CLIP_BYTES
from cop_mail.sending.pipeline import CampaignInfo
from cop_mail.settings import Settings

log = logging.getLogger("cop_mail.compose.preview")

# The composer's checklist: a label and how to recognise its problems among presend_problems().
CHECKS: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("Subject and preheader present", lambda p: p.startswith(("The subject", "The preheader"))),
    ("Unsubscribe and preference links present", lambda p: " is missing from " in p),
    ("HTML under 102 KB (Gmail clips longer emails)", lambda p: "Gmail" in p),
    ("Every link is a full address", lambda p: p.startswith("The link ")),
    ("Every image has alt text", lambda p: p.startswith("An image ")),
)
_SCRIPT = re.compile(r"<\s*script|\bon[a-z]+\s*=|javascript\s*:", re.IGNORECASE)


@dataclass
class Check:
    label: str
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class PreviewResult:
    subject: str = ""
    preheader: str = ""
    html: str = ""
    text: str = ""
    size: int = 0
    recipient: str = ""
    errors: list[Problem] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def ready(self) -> bool:
        """Compiles and passes every pre-send check."""
        return self.ok and all(check.ok for check in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "ready": self.ready,
            "subject": self.subject,
            "preheader": self.preheader,
            "html": self.html,
            "text": self.text,
            "size": self.size,
            "size_label": f"{self.size / 1024:.0f} KB",
            "recipient": self.recipient,
            "errors": [
                {"field": e.field, "line": e.line, "message": e.message, "text": e.describe()} for e in self.errors
            ],
            "checks": [{"label": c.label, "ok": c.ok, "problems": c.problems} for c in self.checks],
            "notices": self.notices,
        }


def preview_newsletter(
    session: Session, settings: Settings, data: NewsletterInput, member_email: str = "", campaign_id: int | None = None
) -> PreviewResult:
    """Preview the composer's current (unsaved) choices."""
    notices = content_notices(data.essay)
    try:
        info = newsletter_info(session, settings, data, campaign_id)
    except ComposeError as exc:
        return PreviewResult(errors=exc.problems, notices=notices)
    result = _render(session, settings, info, member_email)
    result.notices = notices + result.notices
    return result


def preview_campaign(session: Session, settings: Settings, campaign: Campaign, member_email: str = "") -> PreviewResult:
    """Preview a saved newsletter exactly as stored (the snapshot the workers will send)."""
    info = campaign_info(campaign.subject, campaign.preheader, dict(campaign.content or {}), campaign.id)
    result = _render(session, settings, info, member_email)
    result.notices = content_notices(str((campaign.content or {}).get("essay", ""))) + result.notices
    return result


def _render(session: Session, settings: Settings, info: CampaignInfo, member_email: str) -> PreviewResult:
    recipient, label, problem = recipient_for(session, settings, member_email)
    if problem is not None:
        return PreviewResult(errors=[problem])
    try:
        compiled = compile_newsletter(settings, info)
        subject, body_html, body_text = compiled.fill(recipient)
        preheader = compiled.preheader.fill(recipient)
        problems = presend_problems(compiled, recipient)
    except ComposeError as exc:
        return PreviewResult(errors=exc.problems, recipient=label)
    except Exception as exc:  # coordinator content must never turn into a server error
        log.exception("newsletter preview failed")
        return PreviewResult(errors=[Problem(None, None, f"The email could not be built: {exc}")], recipient=label)
    return PreviewResult(
        subject=subject,
        preheader=preheader,
        html=body_html,
        text=body_text,
        size=len(body_html.encode()),
        recipient=label,
        checks=group_checks(problems),
    )


def preview_kind(settings: Settings, kind: str) -> PreviewResult:
    """Any email kind with its sample data, for the admin's template list; errors name the file and line."""
    recipient = sample_recipient(settings.public_url)
    try:
        compiled = compile_email(kind, get_kind(kind).sample(), settings)
        subject, body_html, body_text = compiled.fill(recipient)
        preheader = compiled.preheader.fill(recipient)
        problems = presend_problems(compiled, recipient)
    except RenderError as exc:
        return PreviewResult(errors=[Problem(exc.field, exc.line, exc.message)])
    except Exception as exc:  # a designer's broken template shows on the page, not as a server error
        log.exception("preview of %s failed", kind)
        return PreviewResult(errors=[Problem(get_kind(kind).template, None, f"The email could not be built: {exc}")])
    return PreviewResult(
        subject=subject,
        preheader=preheader,
        html=body_html,
        text=body_text,
        size=len(body_html.encode()),
        recipient=f"a sample member, {recipient['name']}",
        checks=group_checks(problems),
    )


def recipient_for(
    session: Session, settings: Settings, member_email: str
) -> tuple[dict[str, str], str, Problem | None]:
    """Per-recipient values: a chosen member's name and address, or a sample member.

    Links are always samples: a preview is clicked by a coordinator, and a real signed
    unsubscribe link would unsubscribe the member.
    """
    recipient = sample_recipient(settings.public_url)
    address = member_email.strip().lower()
    if not address:
        return recipient, f"a sample member, {recipient['name']}", None
    member = session.scalar(select(Member).where(func.lower(Member.email) == address))
    if member is None or member.status == MemberStatus.ERASED:
        return recipient, "", Problem("preview_email", None, f"No member has the address {address}.")
    recipient.update(first_name=member.first_name, name=member.preferred_name or member.name, email=member.email)
    return recipient, f"{member.display_name} <{member.email}>", None


def group_checks(problems: list[str]) -> list[Check]:
    checks = [Check(label, [p for p in problems if matches(p)]) for label, matches in CHECKS]
    placed = {p for check in checks for p in check.problems}
    others = [p for p in problems if p not in placed]
    if others:
        checks.append(Check("Other checks", others))
    return checks


def content_notices(essay: str) -> list[str]:
    """Tell the coordinator when the sanitiser will take something out, rather than silently."""
    if _SCRIPT.search(essay):
        return ["Scripts, event handlers and javascript: links in the essay are removed from the email."]
    return []


def size_limit_kb() -> int:
    return GMAIL_CLIP_BYTES // 1024
