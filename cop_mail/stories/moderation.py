"""What coordinators do with stories, and what authors answer.

A coordinator approves, rejects with a note, features, and edits. The author's words and the
author's consent are theirs: an edit to the text, or sharing the story more widely than the author
chose, becomes a proposal the author sees and confirms through a signed link before it takes
effect. Values and practice are the coordinator's tags and change directly. Withdrawing consent
takes the story out of every public place at once, because every public query asks for an
approved story with recorded public consent. Functions never commit; the caller does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from cop_mail.accounts import audit
from cop_mail.audience.consent import record_consent, record_member_event
from cop_mail.compose import newsletter
from cop_mail.db import utcnow
from cop_mail.models import Admin, Practice, Story, StoryConsent, StoryStatus, Value
from cop_mail.models.stories import CONSENT_ORDER
from cop_mail.stories import roundups
from cop_mail.stories.markup import markdown_to_html
from cop_mail.stories.submissions import (
    CONSENT_EVENT,
    CONSENT_WITHDRAWN_EVENT,
    CONSENT_WORDING,
    MAX_BODY,
    MAX_TITLE,
)

Actor = Admin | str


class StoryNotFound(LookupError):
    pass


class ModerationError(ValueError):
    """A change the story's status does not allow; the message says why in plain words."""


@dataclass(frozen=True)
class Outcome:
    story: Story
    needs_author: bool  # a proposal waits for the author: send them the confirm link


def get_story(session: Session, story_id: int) -> Story:
    story = session.get(Story, story_id)
    if story is None:
        raise StoryNotFound(f"there is no story {story_id}")
    return story


def find_story(session: Session, story_id: int) -> Story | None:
    return session.get(Story, story_id)


def wider(asked: StoryConsent | str, given: StoryConsent | str) -> bool:
    return CONSENT_ORDER.index(StoryConsent(asked)) > CONSENT_ORDER.index(StoryConsent(given))


def _actor_name(actor: Actor) -> str:
    return actor.email if isinstance(actor, Admin) else actor


def _open(story: Story, *allowed: StoryStatus) -> None:
    if story.status not in allowed:
        raise ModerationError(f"A {story.status.replace('_', ' ')} story cannot be changed that way.")


def approve(
    session: Session, story_id: int, actor: Actor, share_as: StoryConsent | str | None = None, ip: str | None = None
) -> Outcome:
    """Approve as the author chose (or narrower); ask the author before sharing more widely."""
    story = get_story(session, story_id)
    _open(story, StoryStatus.DRAFT, StoryStatus.SUBMITTED, StoryStatus.REJECTED, StoryStatus.APPROVED)
    level = StoryConsent(share_as or story.consent)
    if wider(level, story.consent):
        return _propose(session, story, actor, None, None, level, "", ip)
    now = utcnow()
    story.status = StoryStatus.APPROVED
    story.approved_at = story.approved_at or now
    story.submitted_at = story.submitted_at or now
    story.shared_as = None if level == StoryConsent(story.consent) else str(level)
    story.rejection_note = ""
    story.moderated_by = _actor_name(actor)
    audit(session, actor, "story.approve", f"story:{story.id}", ip, consent=story.consent, shared_as=story.shared_as)
    session.flush()
    return Outcome(story, needs_author=False)


def propose_edit(
    session: Session,
    story_id: int,
    actor: Actor,
    title: str,
    body: str,
    note: str = "",
    share_as: StoryConsent | str | None = None,
    ip: str | None = None,
) -> Outcome:
    """Keep the coordinator's edit aside until the author confirms it."""
    story = get_story(session, story_id)
    _open(story, *(s for s in StoryStatus if s is not StoryStatus.WITHDRAWN))
    title = " ".join(title.split())
    body = body.strip()
    if not title or len(title) > MAX_TITLE:
        raise ModerationError(f"The title must have 1 to {MAX_TITLE} characters.")
    if not body or len(body) > MAX_BODY:
        raise ModerationError(f"The story must have 1 to {MAX_BODY:,} characters.")
    level = StoryConsent(share_as) if share_as else None
    new_title = title if title != story.title else None
    new_body = body if body != story.body else None
    if new_title is None and new_body is None and not (level and wider(level, story.consent)):
        raise ModerationError("Nothing was changed, so there is nothing to ask the author.")
    return _propose(session, story, actor, new_title, new_body, level, note, ip)


def _propose(
    session: Session,
    story: Story,
    actor: Actor,
    title: str | None,
    body: str | None,
    level: StoryConsent | None,
    note: str,
    ip: str | None,
) -> Outcome:
    story.proposed_title = title
    story.proposed_body = body
    story.proposed_consent = str(level) if level and wider(level, story.consent) else None
    story.proposal_version += 1
    story.proposal_note = note.strip()
    story.status = StoryStatus.PENDING_AUTHOR_CONFIRMATION
    story.submitted_at = story.submitted_at or utcnow()
    story.moderated_by = _actor_name(actor)
    audit(
        session, actor, "story.propose", f"story:{story.id}", ip,
        version=story.proposal_version, edits_text=bool(title or body), consent=story.proposed_consent,
    )  # fmt: skip
    session.flush()
    return Outcome(story, needs_author=True)


def set_tags(
    session: Session,
    story_id: int,
    actor: Actor,
    value_ids: Sequence[int],
    practice_id: int | None,
    ip: str | None = None,
) -> Story:
    story = get_story(session, story_id)
    wanted = {int(i) for i in value_ids}
    values = list(session.scalars(select(Value).where(Value.id.in_(wanted)))) if wanted else []
    if len(values) != len(wanted):
        raise ModerationError("One of the values chosen does not exist any more.")
    if practice_id is not None and session.get(Practice, practice_id) is None:
        raise ModerationError("The practice chosen does not exist any more.")
    story.values = sorted(values, key=lambda value: (value.position, value.id))
    story.practice_id = practice_id
    audit(session, actor, "story.tags", f"story:{story.id}", ip, value_ids=sorted(wanted), practice_id=practice_id)
    session.flush()
    return story


def _check_author_link(story: Story, member_id: int, version: int) -> None:
    if story.author_id != member_id:
        raise ModerationError("This link belongs to another member.")
    if story.status != StoryStatus.PENDING_AUTHOR_CONFIRMATION or version != story.proposal_version:
        raise ModerationError("This link is for an earlier change that is no longer waiting for you.")


def confirm_proposal(session: Session, story_id: int, member_id: int, version: int, ip: str | None = None) -> Story:
    """The author accepts the coordinator's edit (and wider sharing): the story is approved as edited."""
    story = get_story(session, story_id)
    _check_author_link(story, member_id, version)
    now = utcnow()
    if story.proposed_title:
        story.title = story.proposed_title
    if story.proposed_body:
        story.body = story.proposed_body
        story.body_html = markdown_to_html(story.body)
    if story.proposed_consent:
        story.consent = story.proposed_consent
        story.consent_recorded_at = now
        story.shared_as = None
        record_consent(
            session, member_id, CONSENT_EVENT, wording=CONSENT_WORDING[StoryConsent(story.consent)],
            ip=ip, at=now, story_id=story.id, level=story.consent, confirmed_version=version,
        )  # fmt: skip
    _clear_proposal(story)
    story.status = StoryStatus.APPROVED
    story.approved_at = story.approved_at or now
    record_member_event(session, member_id, "story_edit_confirmed", explicit=True, at=now, story_id=story.id)
    session.flush()
    return story


def decline_proposal(session: Session, story_id: int, member_id: int, version: int, ip: str | None = None) -> Story:
    """The author keeps their own version: the story goes back to the coordinators, unchanged."""
    story = get_story(session, story_id)
    _check_author_link(story, member_id, version)
    _clear_proposal(story)
    story.status = StoryStatus.SUBMITTED
    story.proposal_note = "The author kept their own version and sharing choice."
    record_member_event(session, member_id, "story_edit_declined", explicit=True, story_id=story.id)
    session.flush()
    return story


def _clear_proposal(story: Story) -> None:
    story.proposed_title = None
    story.proposed_body = None
    story.proposed_consent = None
    story.proposal_note = ""


def reject(session: Session, story_id: int, actor: Actor, note: str, ip: str | None = None) -> Story:
    story = get_story(session, story_id)
    _open(
        story, StoryStatus.DRAFT, StoryStatus.SUBMITTED, StoryStatus.PENDING_AUTHOR_CONFIRMATION, StoryStatus.APPROVED
    )
    if not note.strip():
        raise ModerationError("Write a note saying why, so the author and other coordinators know.")
    _clear_proposal(story)
    story.status = StoryStatus.REJECTED
    story.rejection_note = note.strip()
    story.featured = False
    story.moderated_by = _actor_name(actor)
    audit(session, actor, "story.reject", f"story:{story.id}", ip)
    session.flush()
    roundups.drop_story_from_unsent(session, story.id, _actor_name(actor))
    newsletter.drop_story_from_unsent(session, story.id)
    return story


def set_featured(session: Session, story_id: int, actor: Actor, featured: bool, ip: str | None = None) -> Story:
    story = get_story(session, story_id)
    if featured and story.status != StoryStatus.APPROVED:
        raise ModerationError("Only an approved story can be featured.")
    story.featured = featured
    story.featured_at = utcnow() if featured else None
    audit(session, actor, "story.feature" if featured else "story.unfeature", f"story:{story.id}", ip)
    session.flush()
    return story


def submit_draft(session: Session, story_id: int, actor: Actor, ip: str | None = None) -> Story:
    """A prompt reply a coordinator wants to consider as a story."""
    story = get_story(session, story_id)
    _open(story, StoryStatus.DRAFT)
    story.status = StoryStatus.SUBMITTED
    story.submitted_at = utcnow()
    audit(session, actor, "story.submit_draft", f"story:{story.id}", ip)
    session.flush()
    return story


def withdraw(session: Session, story_id: int, member_id: int, ip: str | None = None) -> Story:
    """The author takes their consent back. Safe to repeat; the story leaves every public page now."""
    story = get_story(session, story_id)
    if story.author_id != member_id:
        raise ModerationError("This link belongs to another member.")
    if story.status == StoryStatus.WITHDRAWN:
        return story
    now = utcnow()
    _clear_proposal(story)
    story.status = StoryStatus.WITHDRAWN
    story.withdrawn_at = now
    story.featured = False
    record_consent(
        session, member_id, CONSENT_WITHDRAWN_EVENT, wording="Withdraw my story from every place it is shared.",
        ip=ip, at=now, story_id=story.id, level=story.consent,
    )  # fmt: skip
    record_member_event(session, member_id, "story_withdrawn", explicit=True, at=now, story_id=story.id)
    session.flush()
    roundups.drop_story_from_unsent(session, story.id, f"member:{member_id}")
    newsletter.drop_story_from_unsent(session, story.id)
    return story
