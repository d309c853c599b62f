"""The events webhooks can subscribe to, and one `emit_*` helper per event.

The code that makes a change calls the matching helper in the same transaction, e.g.

    unsubscribe_all(session, member.id, ...)
    emit_member_unsubscribed(session, member.id, everything=True)
    session.commit()

Each helper costs one small query when no webhook wants the event. Payloads carry ids
and the few fields a receiving system needs to act without calling back; anything more
it can read through the API. Payloads about one member name them in `member_id`, so
erasing the member deletes those rows with the personal data they hold.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from cop_mail.models import Campaign, Connection, Intro, MailingList, Member, Story


class WebhookEvent(StrEnum):
    MEMBER_SUBSCRIBED = "member.subscribed"
    MEMBER_UNSUBSCRIBED = "member.unsubscribed"
    MEMBER_BOUNCED = "member.bounced"
    MEMBER_COMPLAINED = "member.complained"
    INTRO_ACCEPTED = "intro.accepted"
    CONNECTION_MADE = "connection.made"
    STORY_SUBMITTED = "story.submitted"
    CAMPAIGN_SENT = "campaign.sent"


EVENT_LABELS: dict[str, str] = {
    WebhookEvent.MEMBER_SUBSCRIBED: "A member subscribed to a list (or confirmed a subscription)",
    WebhookEvent.MEMBER_UNSUBSCRIBED: "A member unsubscribed from a list, a stream or everything",
    WebhookEvent.MEMBER_BOUNCED: "Mail to a member bounced",
    WebhookEvent.MEMBER_COMPLAINED: "A member marked our mail as spam",
    WebhookEvent.INTRO_ACCEPTED: "A member accepted an introduction",
    WebhookEvent.CONNECTION_MADE: "Two members are connected",
    WebhookEvent.STORY_SUBMITTED: "A member submitted a story",
    WebhookEvent.CAMPAIGN_SENT: "A campaign finished sending",
}
SUBSCRIBABLE: tuple[str, ...] = tuple(event.value for event in WebhookEvent)
# Sent only by the admin's "send a test event" button, whatever the webhook subscribed to.
TEST_EVENT = "webhook.test"


def member_data(member: Member) -> dict[str, Any]:
    return {
        "id": member.id,
        "email": member.email,
        "name": member.name,
        "preferred_name": member.preferred_name,
        "status": member.status,
        "locale": member.locale,
    }


def _emit(
    session: Session, event: WebhookEvent, build: Callable[[], dict[str, Any]], member_id: int | None
) -> list[int]:
    """Build the payload only when some webhook wants the event."""
    from cop_mail.integrations import webhooks

    wanted = webhooks.subscribers(session, event)
    if not wanted:
        return []
    return webhooks.insert_deliveries(session, wanted, event.value, build(), member_id)


def _member(session: Session, member_id: int) -> Member:
    member = session.get(Member, member_id)
    if member is None:
        raise LookupError(f"member {member_id} does not exist")
    return member


def _list(session: Session, list_id: int | None) -> dict[str, Any] | None:
    found = session.get(MailingList, list_id) if list_id is not None else None
    return {"id": found.id, "name": found.name, "slug": found.slug} if found else None


def emit_member_subscribed(
    session: Session, member_id: int, *, list_id: int | None = None, source: str = ""
) -> list[int]:
    def build() -> dict[str, Any]:
        return {"member": member_data(_member(session, member_id)), "list": _list(session, list_id), "source": source}

    return _emit(session, WebhookEvent.MEMBER_SUBSCRIBED, build, member_id)


def emit_member_unsubscribed(
    session: Session,
    member_id: int,
    *,
    list_id: int | None = None,
    stream: str | None = None,
    everything: bool = False,
    source: str = "",
) -> list[int]:
    def build() -> dict[str, Any]:
        return {
            "member": member_data(_member(session, member_id)),
            "list": _list(session, list_id),
            "stream": stream,
            "everything": everything,
            "source": source,
        }

    return _emit(session, WebhookEvent.MEMBER_UNSUBSCRIBED, build, member_id)


def emit_member_bounced(
    session: Session, member_id: int, *, bounce_type: str = "hard", campaign_id: int | None = None, reason: str = ""
) -> list[int]:
    def build() -> dict[str, Any]:
        return {
            "member": member_data(_member(session, member_id)),
            "bounce_type": bounce_type,
            "campaign_id": campaign_id,
            "reason": reason[:500],
        }

    return _emit(session, WebhookEvent.MEMBER_BOUNCED, build, member_id)


def emit_member_complained(session: Session, member_id: int, *, campaign_id: int | None = None) -> list[int]:
    def build() -> dict[str, Any]:
        return {"member": member_data(_member(session, member_id)), "campaign_id": campaign_id}

    return _emit(session, WebhookEvent.MEMBER_COMPLAINED, build, member_id)


def emit_intro_accepted(session: Session, intro_id: int, member_id: int) -> list[int]:
    """`member_id` said yes; the other member is named by id only (they have not agreed to anything yet)."""

    def build() -> dict[str, Any]:
        intro = session.get(Intro, intro_id)
        if intro is None:
            raise LookupError(f"introduction {intro_id} does not exist")
        return {
            "intro": {"id": intro.id, "kind": intro.kind, "status": intro.status},
            "member": member_data(_member(session, member_id)),
            "other_member_id": intro.other_id(member_id),
        }

    return _emit(session, WebhookEvent.INTRO_ACCEPTED, build, member_id)


def emit_connection_made(session: Session, connection_id: int) -> list[int]:
    """Members by id only: the payload is about two people, and erasing either must not leave the other's data."""

    def build() -> dict[str, Any]:
        connection = session.get(Connection, connection_id)
        if connection is None:
            raise LookupError(f"connection {connection_id} does not exist")
        return {
            "connection": {
                "id": connection.id,
                "how": connection.how,
                "intro_id": connection.intro_id,
                "began_at": connection.began_at.isoformat(),
            },
            "member_ids": [connection.member_a_id, connection.member_b_id],
        }

    return _emit(session, WebhookEvent.CONNECTION_MADE, build, None)


def emit_story_submitted(session: Session, story_id: int) -> list[int]:
    story = session.get(Story, story_id)
    if story is None:
        raise LookupError(f"story {story_id} does not exist")

    def build() -> dict[str, Any]:
        return {
            "story": {
                "id": story.id,
                "title": story.title,
                "status": story.status,
                "source": story.source,
                "consent": story.consent,
                "values": [value.name for value in story.values],
                "submitted_at": story.submitted_at.isoformat() if story.submitted_at else None,
            },
            "member": member_data(_member(session, story.author_id)),
        }

    return _emit(session, WebhookEvent.STORY_SUBMITTED, build, story.author_id)


def emit_campaign_sent(session: Session, campaign_id: int) -> list[int]:
    def build() -> dict[str, Any]:
        from cop_mail.sending.report import progress

        campaign = session.get(Campaign, campaign_id)
        if campaign is None:
            raise LookupError(f"campaign {campaign_id} does not exist")
        counts = progress(session, campaign_id)
        return {
            "campaign": {
                "id": campaign.id,
                "name": campaign.name,
                "kind": campaign.kind,
                "subject": campaign.subject,
                "status": campaign.status,
                "finished_at": campaign.finished_at.isoformat() if campaign.finished_at else None,
            },
            "counts": {
                "total": counts.total,
                "sent": counts.sent,
                "failed": counts.failed,
                "suppressed": counts.suppressed,
                "uncertain": counts.uncertain,
            },
        }

    return _emit(session, WebhookEvent.CAMPAIGN_SENT, build, None)
