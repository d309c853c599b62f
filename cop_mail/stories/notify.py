"""Mail to a story's author: "please confirm this change" with the signed confirm link.

Sent as a transactional message (one recorded Delivery, sent at once from the HIGH queue). The
stored context holds ids only; the links are signed when the message is composed, so a retried
send still carries a link for the current version of the proposal.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from cop_mail.models import Member, Story, StoryConsent, StoryStatus
from cop_mail.sending.transactional import TransactionalError, context_builder, queue_transactional
from cop_mail.settings import Settings
from cop_mail.stories import links
from cop_mail.stories.submissions import CONSENT_LABELS

STORY_CONFIRM = "story_confirm"


def request_author_confirmation(session: Session, story: Story) -> int | None:
    """Record the message; returns the Delivery id to enqueue after commit (None: the author gets no mail)."""
    if story.status != StoryStatus.PENDING_AUTHOR_CONFIRMATION:
        return None
    context = {"story_id": story.id, "version": story.proposal_version}
    return queue_transactional(session, STORY_CONFIRM, story.author_id, context)


@context_builder(STORY_CONFIRM)
def confirm_context(session: Session, settings: Settings, member: Member, stored: dict[str, Any]) -> dict[str, Any]:
    story = session.get(Story, int(stored["story_id"]))
    if story is None or story.author_id != member.id:
        raise TransactionalError("the story of this confirmation no longer exists")
    version = int(stored["version"])
    return {
        "story": {"title": story.title},
        "edits_text": bool(story.proposed_title or story.proposed_body),
        "sharing": CONSENT_LABELS[StoryConsent(story.proposed_consent)] if story.proposed_consent else None,
        "note": story.proposal_note,
        "confirm_url": links.confirm_url(settings, story.id, member.id, version),
        "withdraw_url": links.withdraw_url(settings, story.id, member.id),
        "expires_in_days": links.CONFIRM_MAX_AGE // 86400,
    }
