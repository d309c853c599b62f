"""Introductions members asked for themselves ("meet the storyteller"), waiting for a coordinator.

The stories feature records each request as a MemberEvent of kind "intro_request" on the asking
member's timeline (detail: with_member_id, story_id). A request is pending until the two have an
introduction or a connection; acting on it asks only the other member (see workflow.invite).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from cop_mail.connect import candidates
from cop_mail.models import Member, MemberEvent, MemberStatus

INTRO_REQUEST = "intro_request"
SHOWN = 200


@dataclass(frozen=True)
class IntroRequest:
    event_id: int
    requester_id: int
    other_id: int
    story_id: int | None
    asked_at: datetime


def pending_requests(session: Session, limit: int = SHOWN) -> list[IntroRequest]:
    """Requests with no introduction or connection between the two yet, oldest first."""
    events = session.scalars(
        select(MemberEvent).where(MemberEvent.kind == INTRO_REQUEST).order_by(MemberEvent.id).limit(limit * 5)
    ).all()
    done = candidates.past_pairs(session)
    found = []
    for event in events:
        request = _pending(session, event, done)
        if request is not None:
            found.append(request)
            done.add(frozenset((request.requester_id, request.other_id)))  # asked twice: shown once
    return found[:limit]


def find_request(session: Session, event_id: int) -> IntroRequest | None:
    event = session.get(MemberEvent, event_id)
    if event is None or event.kind != INTRO_REQUEST:
        return None
    return _pending(session, event, candidates.past_pairs(session))


def _pending(session: Session, event: MemberEvent, done: set[frozenset[int]]) -> IntroRequest | None:
    other = event.detail.get("with_member_id")
    if not isinstance(other, int) or other == event.member_id or frozenset((event.member_id, other)) in done:
        return None
    rows = session.execute(select(Member.id, Member.status).where(Member.id.in_([event.member_id, other])))
    statuses = {member_id: status for member_id, status in rows}
    if any(statuses.get(m) != MemberStatus.ACTIVE for m in (event.member_id, other)):
        return None
    story = event.detail.get("story_id")
    return IntroRequest(event.id, event.member_id, other, story if isinstance(story, int) else None, event.created_at)
