"""Rows as the JSON the API returns (the shapes the OpenAPI document describes)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.orm import Session

from cop_mail.audience import members as directory
from cop_mail.models import Campaign, MailingList, Member, Segment, Story
from cop_mail.sending.report import Progress


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def member_json(session: Session, member: Member) -> dict[str, Any]:
    return {
        "id": member.id,
        "email": member.email,
        "name": member.name,
        "preferred_name": member.preferred_name,
        "status": member.status,
        "locale": member.locale,
        "timezone": member.timezone,
        "location": member.location,
        "attributes": member.attributes or {},
        "joined_at": iso(member.joined_at),
        "last_engaged_at": iso(member.last_engaged_at),
        "connections_count": member.connections_count,
        "streams": {
            "newsletters": member.wants_newsletters,
            "intros": member.wants_intros,
            "roundups": member.wants_roundups,
            "resources": member.wants_resources,
        },
        "intro_cadence_weeks": member.intro_cadence_weeks,
        "paused_until": iso(member.paused_until),
        "values": [{"id": value.id, "name": value.name} for value in member.values],
        "practices": [{"id": practice.id, "name": practice.name} for practice in member.practices],
        "tags": sorted(tag.name for tag in member.tags),
        "lists": [
            {"id": membership.list_id, "name": name, "status": membership.status}
            for membership, name in directory.memberships(session, member.id)
        ],
    }


def member_row_json(row: Row[Any]) -> dict[str, Any]:
    """A row of the directory's page query (cop_mail.audience.members.LIST_COLUMNS)."""
    return {
        "id": row.id,
        "email": row.email,
        "name": row.name,
        "preferred_name": row.preferred_name,
        "status": row.status,
        "location": row.location,
        "joined_at": iso(row.joined_at),
        "last_engaged_at": iso(row.last_engaged_at),
        "connections_count": row.connections_count,
    }


def list_json(mailing_list: MailingList, counts: dict[str, int]) -> dict[str, Any]:
    return {
        "id": mailing_list.id,
        "name": mailing_list.name,
        "slug": mailing_list.slug,
        "description": mailing_list.description,
        "opt_in": mailing_list.opt_in,
        "public": mailing_list.public,
        "counts": {str(status): int(count) for status, count in counts.items()},
    }


def segment_json(segment: Segment) -> dict[str, Any]:
    return {
        "id": segment.id,
        "name": segment.name,
        "description": segment.description,
        "rules": segment.rules,
        "created_at": iso(segment.created_at),
        "updated_at": iso(segment.updated_at),
    }


def campaign_json(campaign: Campaign) -> dict[str, Any]:
    return {
        "id": campaign.id,
        "name": campaign.name,
        "kind": campaign.kind,
        "subject": campaign.subject,
        "preheader": campaign.preheader,
        "status": campaign.status,
        "content": campaign.content or {},
        "list_ids": list(campaign.list_ids or []),
        "segment_ids": list(campaign.segment_ids or []),
        "scheduled_at": iso(campaign.scheduled_at),
        "schedule_timezone": campaign.schedule_timezone,
        "paused_reason": campaign.paused_reason,
        "created_by": campaign.created_by,
        "created_at": iso(campaign.created_at),
        "started_at": iso(campaign.started_at),
        "finished_at": iso(campaign.finished_at),
    }


def stats_json(progress: Progress) -> dict[str, Any]:
    return progress.as_dict()


def story_json(story: Story) -> dict[str, Any]:
    return {
        "id": story.id,
        "member_id": story.author_id,
        "title": story.title,
        "status": story.status,
        "consent": story.consent,
        "source": story.source,
        "values": [{"id": value.id, "name": value.name} for value in story.values],
        "practice_id": story.practice_id,
        "submitted_at": iso(story.submitted_at),
    }
