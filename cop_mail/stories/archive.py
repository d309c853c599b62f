"""What the public archive may show, and nothing more.

Every public query goes through `public_clause()`: an approved story whose author recorded public
consent (and that no coordinator narrowed). Results are plain dataclasses carrying only what a
page shows: no addresses, no member ids, and the author's name only when they allowed it. Sent
newsletters and roundups appear as web pages built from their content, never from the email
(which carries per-recipient links and footers).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from cop_mail.models import (
    Campaign,
    CampaignKind,
    CampaignStatus,
    Member,
    Practice,
    Resource,
    ResourceStatus,
    Roundup,
    Story,
    StoryConsent,
    StoryImage,
    StoryStatus,
    Value,
    story_values,
)
from cop_mail.stories.markup import excerpt, markdown_to_html

PUBLIC_LEVELS = (StoryConsent.PUBLIC, StoryConsent.PUBLIC_ANONYMOUS)
ARCHIVE_KINDS = (CampaignKind.NEWSLETTER, CampaignKind.ROUNDUP)
_PLACEHOLDER = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def public_clause() -> ColumnElement[bool]:
    return and_(
        Story.status == StoryStatus.APPROVED,
        Story.consent.in_(PUBLIC_LEVELS),
        Story.consent_recorded_at.is_not(None),
        or_(Story.shared_as.is_(None), Story.shared_as.in_(PUBLIC_LEVELS)),
    )


def slugify(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    return _NOT_SLUG.sub("-", ascii_name).strip("-")


@dataclass(frozen=True)
class PublicValue:
    id: int
    name: str
    slug: str
    description: str = ""


def public_value(value: Value) -> PublicValue:
    return PublicValue(value.id, value.name, slugify(value.name) or str(value.id), value.description)


@dataclass(frozen=True)
class PublicImage:
    id: int
    width: int | None
    height: int | None
    alt: str


@dataclass(frozen=True)
class PublicStory:
    id: int
    title: str
    body_html: str
    summary: str
    author_name: str | None  # None: the author chose not to be named, or gave no name
    values: list[PublicValue]
    practice: str | None
    published_at: datetime
    updated_at: datetime
    featured: bool
    images: list[PublicImage] = field(default_factory=list)


def author_names(session: Session, stories: Sequence[Story]) -> dict[int, str]:
    """Names of the authors who allowed theirs to be shown; never an address, so no name means none."""
    wanted = {story.author_id for story in stories if story.shows_author_name}
    if not wanted:
        return {}
    rows = session.execute(select(Member.id, Member.preferred_name, Member.name).where(Member.id.in_(wanted)))
    return {
        member_id: (preferred or name).strip() for member_id, preferred, name in rows if (preferred or name).strip()
    }


def _practices(session: Session, stories: Sequence[Story]) -> dict[int, str]:
    wanted = {story.practice_id for story in stories if story.practice_id}
    if not wanted:
        return {}
    return dict(session.execute(select(Practice.id, Practice.name).where(Practice.id.in_(wanted))).all())


def to_public(session: Session, stories: Sequence[Story]) -> list[PublicStory]:
    names = author_names(session, stories)
    practices = _practices(session, stories)
    return [
        PublicStory(
            id=story.id,
            title=story.title,
            body_html=story.body_html,
            summary=excerpt(story.body_html),
            author_name=names.get(story.author_id) if story.shows_author_name else None,
            values=[public_value(value) for value in story.values],
            practice=practices.get(story.practice_id) if story.practice_id else None,
            published_at=story.approved_at or story.created_at,
            updated_at=story.updated_at,
            featured=story.featured,
            images=[PublicImage(i.id, i.width, i.height, i.alt_text) for i in story.images],
        )
        for story in stories
    ]


def _story_query(value_id: int | None = None, featured: bool | None = None) -> Any:
    query = select(Story).where(public_clause())
    if value_id is not None:
        query = query.where(Story.id.in_(select(story_values.c.story_id).where(story_values.c.value_id == value_id)))
    if featured is not None:
        query = query.where(Story.featured.is_(featured))
    return query


def public_stories(
    session: Session, *, value_id: int | None = None, featured: bool | None = None, limit: int = 20, offset: int = 0
) -> list[PublicStory]:
    query = _story_query(value_id, featured).order_by(Story.approved_at.desc(), Story.id.desc())
    return to_public(session, list(session.scalars(query.limit(limit).offset(offset))))


def count_public_stories(session: Session, *, value_id: int | None = None, featured: bool | None = None) -> int:
    query = _story_query(value_id, featured).with_only_columns(func.count(Story.id))
    return int(session.scalar(query) or 0)


def find_public_story(session: Session, story_id: int) -> PublicStory | None:
    story = session.scalar(select(Story).where(Story.id == story_id, public_clause()))
    return to_public(session, [story])[0] if story else None


def was_withdrawn(session: Session, story_id: int) -> bool:
    """A withdrawn story's page answers 410 Gone, so search engines and caches drop it."""
    return session.scalar(select(Story.status).where(Story.id == story_id)) == StoryStatus.WITHDRAWN


def public_image(session: Session, story_id: int, image_id: int) -> StoryImage | None:
    return session.scalar(
        select(StoryImage)
        .join(Story, Story.id == StoryImage.story_id)
        .where(StoryImage.id == image_id, Story.id == story_id, public_clause())
    )


# --- values --------------------------------------------------------------------------------


def all_values(session: Session) -> list[PublicValue]:
    return [public_value(v) for v in session.scalars(select(Value).order_by(Value.position, Value.name))]


def values_with_counts(session: Session) -> list[tuple[PublicValue, int]]:
    counts: dict[int, int] = dict(
        session.execute(
            select(story_values.c.value_id, func.count())
            .join(Story, Story.id == story_values.c.story_id)
            .where(public_clause())
            .group_by(story_values.c.value_id)
        ).all()
    )
    return [(value, int(counts.get(value.id, 0))) for value in all_values(session)]


def find_value(session: Session, key: str) -> PublicValue | None:
    """A value by its slug (the canonical address) or by its id."""
    values = all_values(session)
    if key.isdecimal():
        return next((value for value in values if value.id == int(key)), None)
    return next((value for value in values if value.slug == key.lower()), None)


# --- sent newsletters and roundups ---------------------------------------------------------


@dataclass(frozen=True)
class IssueSummary:
    id: int
    kind: str
    title: str
    preheader: str
    sent_at: datetime


@dataclass(frozen=True)
class StoryGroup:
    value: PublicValue | None
    stories: list[PublicStory]


@dataclass(frozen=True)
class PublicResource:
    id: int
    kind: str
    title: str
    description_html: str
    url: str


@dataclass(frozen=True)
class IssuePage:
    summary: IssueSummary
    theme: PublicValue | None
    intro_html: str
    groups: list[StoryGroup]
    resources: list[PublicResource]

    @property
    def story_count(self) -> int:
        return sum(len(group.stories) for group in self.groups)


def _sent_issues() -> Any:
    return select(Campaign).where(Campaign.kind.in_(ARCHIVE_KINDS), Campaign.status == CampaignStatus.SENT)


def _sent_at(campaign: Campaign) -> datetime:
    return campaign.finished_at or campaign.started_at or campaign.created_at


def _summary(campaign: Campaign) -> IssueSummary:
    return IssueSummary(
        campaign.id, campaign.kind, campaign.subject or campaign.name, campaign.preheader, _sent_at(campaign)
    )


def archive_issues(session: Session, *, limit: int = 20, offset: int = 0) -> list[IssueSummary]:
    query = _sent_issues().order_by(Campaign.finished_at.desc().nulls_last(), Campaign.id.desc())
    return [_summary(campaign) for campaign in session.scalars(query.limit(limit).offset(offset))]


def count_archive_issues(session: Session) -> int:
    return int(session.scalar(_sent_issues().with_only_columns(func.count(Campaign.id))) or 0)


def find_issue(session: Session, campaign_id: int) -> IssuePage | None:
    campaign = session.scalar(_sent_issues().where(Campaign.id == campaign_id))
    if campaign is None:
        return None
    content = campaign.content or {}
    theme = session.get(Value, _int(content.get("theme_value_id")))
    if campaign.kind == CampaignKind.ROUNDUP:
        roundup = session.scalar(select(Roundup).where(Roundup.campaign_id == campaign.id))
        story_ids = roundup.story_ids if roundup else _ints(content.get("story_ids"))
    else:
        story_ids = _ints(content.get("story_ids"))
    stories = _public_by_ids(session, story_ids)
    return IssuePage(
        summary=_summary(campaign),
        theme=public_value(theme) if theme else None,
        intro_html=_intro_html(content),
        groups=group_by_value(stories),
        resources=published_resources(session, _ints(content.get("resource_ids"))),
    )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _ints(values: Any) -> list[int]:
    return [v for v in values if isinstance(v, int) and not isinstance(v, bool)] if isinstance(values, list) else []


def _intro_html(content: dict[str, Any]) -> str:
    """The coordinator's own words, with any personalisation placeholders taken out."""
    parts = [content.get(key) for key in ("intro", "essay", "body_markdown", "body")]
    text = "\n\n".join(part for part in parts if isinstance(part, str) and part.strip())
    return markdown_to_html(_PLACEHOLDER.sub("", text)) if text else ""


def _public_by_ids(session: Session, story_ids: Iterable[int]) -> list[PublicStory]:
    ids = list(dict.fromkeys(story_ids))
    if not ids:
        return []
    found = {s.id: s for s in session.scalars(select(Story).where(Story.id.in_(ids), public_clause()))}
    return to_public(session, [found[i] for i in ids if i in found])


def group_by_value(stories: Sequence[PublicStory]) -> list[StoryGroup]:
    """Each story under its first value, groups in the order they first appear; untagged ones last."""
    groups: dict[int | None, list[PublicStory]] = {}
    values: dict[int, PublicValue] = {}
    for story in stories:
        first = story.values[0] if story.values else None
        if first:
            values[first.id] = first
        groups.setdefault(first.id if first else None, []).append(story)
    ordered = [StoryGroup(values[key], groups[key]) for key in groups if key is not None]
    if None in groups:
        ordered.append(StoryGroup(None, groups[None]))
    return ordered


def published_resources(session: Session, resource_ids: Sequence[int]) -> list[PublicResource]:
    if not resource_ids:
        return []
    rows = {
        r.id: r
        for r in session.scalars(
            select(Resource).where(Resource.id.in_(resource_ids), Resource.status == ResourceStatus.PUBLISHED)
        )
    }
    return [
        PublicResource(r.id, r.kind, r.title, r.description_html, r.url)
        for r in (rows[i] for i in resource_ids if i in rows)
    ]
