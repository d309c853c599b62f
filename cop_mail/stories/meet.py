""" "Meet the storyteller": a member asks to be introduced to a story's author.

The request is a MemberEvent (kind "intro_request") on the asking member's timeline, which the
introductions feature picks up. An anonymous author's name stays hidden: the introduction
workflow asks them first. Asking twice for the same storyteller records one request.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from cop_mail.audience.consent import record_member_event
from cop_mail.db import utcnow
from cop_mail.models import Member, MemberEvent, MemberStatus, Story, StoryStatus

INTRO_REQUEST = "intro_request"


class MeetError(ValueError):
    """A request that cannot be made; the message says why in plain words."""


@dataclass(frozen=True)
class MeetRequest:
    event: MemberEvent
    created: bool  # False: the member had asked already


def readable_story(session: Session, story_id: int, member_id: int) -> Story:
    """An approved story a member may read or ask about (any sharing level: they are a member)."""
    member = session.get(Member, member_id)
    if member is None or member.status == MemberStatus.ERASED:
        raise MeetError("This link belongs to a member who is no longer in the community.")
    story = session.get(Story, story_id)
    if story is None or story.status != StoryStatus.APPROVED:
        raise MeetError("This story is no longer shared.")
    return story


def existing_request(session: Session, member_id: int, author_id: int) -> MemberEvent | None:
    events = session.scalars(
        select(MemberEvent).where(MemberEvent.member_id == member_id, MemberEvent.kind == INTRO_REQUEST)
    )
    return next((event for event in events if event.detail.get("with_member_id") == author_id), None)


def request_introduction(session: Session, member_id: int, story_id: int) -> MeetRequest:
    story = readable_story(session, story_id, member_id)
    if story.author_id == member_id:
        raise MeetError("This is your own story, so there is no one to introduce you to.")
    found = existing_request(session, member_id, story.author_id)
    if found is not None:
        return MeetRequest(found, created=False)
    now = utcnow()
    event = record_member_event(
        session, member_id, INTRO_REQUEST, explicit=True, at=now,
        with_member_id=story.author_id, story_id=story.id, source="meet_the_storyteller",
    )  # fmt: skip
    member = session.get(Member, member_id)
    if member is not None:
        member.last_engaged_at = now
    return MeetRequest(event, created=True)
