"""The mail journey steps send, each as a transactional message (one Delivery, sent at once).

- A coordinator's message uses the "message" email template: the subject becomes its heading,
  filled in for the member now (so it may use their name), and the Markdown body is filled in by
  the email compiler's sandbox when it is sent. The "welcome" template adds the community's
  values below the body. What is stored is the text as it was when the step was taken, so a
  retried send says the same thing even if the journey is reworded meanwhile.
- A story prompt uses the "story_prompt" email template, with a signed link to the story form.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cop_mail.models import Member, Value
from cop_mail.rendering import render_coordinator_text
from cop_mail.rendering.compiler import community_data
from cop_mail.rendering.placeholders import SplitTemplate, member_proxy
from cop_mail.sending.transactional import context_builder, queue_transactional
from cop_mail.settings import Settings
from cop_mail.stories.links import submit_url

MESSAGE_KIND = "message"
STORY_PROMPT_KIND = "story_prompt"


def queue_message(session: Session, settings: Settings, member: Member, config: dict[str, Any]) -> int | None:
    """Record a coordinator's message to the member; the Delivery id to enqueue after commit."""
    body = str(config.get("body", ""))
    if config.get("template") == "welcome":
        body = f"{body.rstrip()}\n\n{values_markdown(session)}"
    heading = personal_subject(settings, member, str(config.get("subject", "")))
    return queue_transactional(session, MESSAGE_KIND, member.id, {"heading": heading, "body": body})


def personal_subject(settings: Settings, member: Member, source: str) -> str:
    """The subject with the member's own name filled in, by the same sandbox as campaign subjects."""
    context = {"member": member_proxy(), "community": community_data(settings)}
    text = render_coordinator_text(source, context, html=False, field="subject")
    filled = SplitTemplate(text).fill(
        {"first_name": member.first_name, "name": member.display_name, "email": member.email}
    )
    return " ".join(filled.split())[:300]


def values_markdown(session: Session) -> str:
    """The community's values as a Markdown list; their names and descriptions are shown, never run."""
    values = session.scalars(select(Value).order_by(Value.position, Value.name)).all()
    if not values:
        return ""
    lines = []
    for value in values:
        description = " ".join(value.description.split())
        lines.append(f"- **{_literal(value.name)}**" + (f": {_literal(description)}" if description else ""))
    return "\n".join(lines)


def _literal(text: str) -> str:
    """Text that the body's sandbox and Markdown show as it is: braces cannot start a template
    expression, angle brackets cannot start HTML, and Markdown emphasis characters stay literal."""
    out = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    out = out.replace("{", "&#123;").replace("}", "&#125;")
    for mark in ("\\", "*", "_", "`", "[", "]"):
        out = out.replace(mark, "\\" + mark)
    return out


def queue_story_prompt(
    session: Session, member: Member, question: str, note: str, value_name: str | None
) -> int | None:
    context = {"question": question, "note": note, "value": value_name or ""}
    return queue_transactional(session, STORY_PROMPT_KIND, member.id, context)


@context_builder(STORY_PROMPT_KIND)
def story_prompt_context(
    session: Session, settings: Settings, member: Member, stored: dict[str, Any]
) -> dict[str, Any]:
    return {
        "value": {"name": str(stored.get("value") or "our community")},
        "question": str(stored.get("question", "")),
        "note": str(stored.get("note", "")),
        "story_url": submit_url(settings, member.id),
        "why": f"You get this because you are a member of {settings.community_name}.",
    }
