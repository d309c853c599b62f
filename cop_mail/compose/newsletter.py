"""A value-themed newsletter from the composer's choices.

The coordinator picks a theme Value, writes an essay in Markdown, picks approved Stories and
published Resources, optionally spotlights a member and lists upcoming events. `build_content`
turns those choices into the `newsletter` template's data and *copies* every name and text into
it, so the campaign sends exactly what the coordinator previewed, even if a title changes later
(a story whose author withdraws consent is taken out by `drop_story_from_unsent`).

The content keeps the ids too (`theme_value_id`, `story_ids`, `resource_ids`,
`spotlight_member_id`): the public archive and the values-coverage report read them, and the
composer reloads its pickers from them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from cop_mail.compose import ComposeError, Problem
from cop_mail.models import (
    Campaign,
    CampaignKind,
    CampaignStatus,
    Member,
    MemberStatus,
    Resource,
    ResourceKind,
    ResourceStatus,
    Story,
    StoryConsent,
    StoryStatus,
    Value,
)
from cop_mail.rendering import CompiledEmail, RenderError, compile_email
from cop_mail.rendering.richtext import MAX_INLINE_IMAGE
from cop_mail.resources import library
from cop_mail.sending import campaigns as campaign_service
from cop_mail.sending.pipeline import CampaignInfo, email_source
from cop_mail.settings import Settings
from cop_mail.stories.archive import author_names
from cop_mail.stories.roundups import story_card

MAX_TITLE = 200
MAX_LINE_FIELD = 500  # subject, preheader
MAX_ESSAY = 200_000  # characters; Gmail clips the whole email at 102 KB anyway
MAX_STORIES = 8
MAX_RESOURCES = 12
MAX_EVENTS = 10
MAX_SPOTLIGHT_TEXT = 1_000
EDITABLE = (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED)
SHARING_LABELS = {
    StoryConsent.MEMBERS_ONLY: "members only",
    StoryConsent.PUBLIC: "public",
    StoryConsent.PUBLIC_ANONYMOUS: "public, without the author's name",
}
STORY_CARD_KEYS = ("id", "title", "storyteller", "value", "excerpt", "url", "storyteller_url")
_DATA_URI = re.compile(r"data:[^\s)\"'>\]]*", re.IGNORECASE)
_WEB = ("http", "https")


@dataclass
class NewsletterInput:
    """What the composer form holds, as plain values (the view checks shape only)."""

    title: str
    theme_value_id: int | None
    essay: str = ""
    essay_author: str = ""
    subject: str = ""
    preheader: str = ""
    name: str = ""
    story_ids: Sequence[int] = field(default_factory=list)
    resource_ids: Sequence[int] = field(default_factory=list)
    spotlight_member_id: int | None = None
    spotlight_email: str = ""  # the form's way to name the member; used when no id is given
    spotlight_text: str = ""
    events: str = ""  # one per line: when | what | where | https://link
    list_ids: Sequence[int] = field(default_factory=list)
    segment_ids: Sequence[int] = field(default_factory=list)


def input_from_campaign(campaign: Campaign) -> NewsletterInput:
    """The composer's fields back from a saved newsletter."""
    content = campaign.content or {}
    return NewsletterInput(
        title=str(content.get("title", "")),
        theme_value_id=_int_or_none(content.get("theme_value_id")),
        essay=str(content.get("essay", "")),
        essay_author=str(content.get("essay_author", "")),
        subject=campaign.subject,
        preheader=campaign.preheader,
        name=campaign.name,
        story_ids=_ints(content.get("story_ids")),
        resource_ids=_ints(content.get("resource_ids")),
        spotlight_member_id=_int_or_none(content.get("spotlight_member_id")),
        spotlight_text=str(content.get("spotlight_text", "")),
        events=str(content.get("events_text", "")),
        list_ids=list(campaign.list_ids or []),
        segment_ids=list(campaign.segment_ids or []),
    )


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _ints(values: Any) -> list[int]:
    return [v for v in values if isinstance(v, int) and not isinstance(v, bool)] if isinstance(values, list) else []


# --- building the template data ------------------------------------------------------------


def build_content(
    session: Session, public_url: str, data: NewsletterInput, campaign_id: int | None = None
) -> dict[str, Any]:
    """The `newsletter` template's data, with every text copied in; raises ComposeError listing all problems."""
    public_url = public_url.rstrip("/")
    problems: list[Problem] = []
    title = " ".join(data.title.split())
    if not title:
        problems.append(Problem("title", None, "Give the issue a title."))
    elif len(title) > MAX_TITLE:
        problems.append(Problem("title", None, f"The title can be at most {MAX_TITLE} characters."))
    for name, text in (("subject", data.subject), ("preheader", data.preheader)):
        if len(text) > MAX_LINE_FIELD:
            problems.append(Problem(name, None, f"The {name} can be at most {MAX_LINE_FIELD} characters."))
    if len(data.essay_author) > MAX_TITLE:
        problems.append(Problem("essay_author", None, f"The signature can be at most {MAX_TITLE} characters."))
    theme = _theme(session, data.theme_value_id, problems)
    problems.extend(essay_problems(data.essay))
    stories = _story_cards(session, public_url, data.story_ids, theme, problems)
    practices, resources = _resource_cards(session, data.resource_ids, problems)
    spotlight, spotlight_id = _spotlight(session, data, problems)
    events, event_problems = parse_events(data.events)
    problems.extend(event_problems)
    if problems:
        raise ComposeError(problems)
    assert theme is not None
    return {
        "title": title,
        "value": {"name": theme.name, "description": theme.description},
        "theme_value_id": theme.id,
        "essay": data.essay.replace("\r\n", "\n"),
        "essay_author": " ".join(data.essay_author.split()),
        "archive_url": f"{public_url}/archive/issues/{campaign_id}" if campaign_id else "",
        "stories": stories,
        "story_ids": [card["id"] for card in stories],
        "practices": practices,
        "resources": resources,
        "resource_ids": [card["id"] for card in practices + resources],
        "spotlight": spotlight,
        "spotlight_member_id": spotlight_id,
        "spotlight_text": data.spotlight_text.strip() if spotlight else "",
        "events": events,
        "events_text": data.events.replace("\r\n", "\n").strip(),
    }


def default_subject(content: Mapping[str, Any]) -> str:
    return f"{content['value']['name']}: {content['title']}"


def _theme(session: Session, value_id: int | None, problems: list[Problem]) -> Value | None:
    theme = session.get(Value, value_id) if value_id else None
    if theme is None:
        problems.append(Problem("theme_value_id", None, "Pick the value this issue is about."))
    return theme


def essay_problems(essay: str) -> list[Problem]:
    """Sizes only; Jinja and Markdown problems are found when the email compiles."""
    problems = []
    for match in _DATA_URI.finditer(essay):
        size = match.end() - match.start()
        if size > MAX_INLINE_IMAGE:
            line = essay.count("\n", 0, match.start()) + 1
            problems.append(
                Problem(
                    "essay",
                    line,
                    f"An image is pasted into the essay ({_human_size(size)}). Pasted images make every copy of "
                    "the email huge; upload the image instead and link to it: ![what it shows](https://…/image.jpg).",
                )
            )
    if not problems and len(essay) > MAX_ESSAY:
        problems.append(
            Problem(
                "essay",
                None,
                f"The essay is {len(essay) // 1000:,} KB of text; keep it under {MAX_ESSAY // 1000:,} KB "
                "(Gmail cuts off emails over 102 KB). Link to the full text instead.",
            )
        )
    return problems


def _human_size(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB" if size >= 1_000_000 else f"{size / 1000:.0f} KB"


def _story_cards(
    session: Session, public_url: str, story_ids: Sequence[int], theme: Value | None, problems: list[Problem]
) -> list[dict[str, Any]]:
    wanted = list(dict.fromkeys(int(i) for i in story_ids))
    if len(wanted) > MAX_STORIES:
        problems.append(Problem("story_ids", None, f"Pick at most {MAX_STORIES} stories; a shorter issue is read."))
        return []
    # Approved is what members may read, whatever the sharing level: a newsletter goes to members.
    found = {s.id: s for s in session.scalars(select(Story).where(Story.id.in_(wanted)))} if wanted else {}
    readable = [found[i] for i in wanted if i in found and found[i].status == StoryStatus.APPROVED]
    for story_id in wanted:
        story = found.get(story_id)
        if story is None or story.status != StoryStatus.APPROVED:
            label = f"“{story.title}”" if story else f"#{story_id}"
            problems.append(
                Problem("story_ids", None, f"The story {label} is not approved (or was withdrawn); leave it out.")
            )
    names = author_names(session, readable)
    cards = []
    for story in readable:
        value_names = [value.name for value in story.values]
        value_name = theme.name if theme is not None and theme.name in value_names else next(iter(value_names), "")
        # story_card names the author only if they allowed it (never for public_anonymous).
        card = story_card(public_url, story, names.get(story.author_id), value_name)
        cards.append({key: card[key] for key in STORY_CARD_KEYS})
    return cards


def _resource_cards(
    session: Session, resource_ids: Sequence[int], problems: list[Problem]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Methods go under "Practices to try"; tools, readings, templates and mentors under "Resources"."""
    wanted = list(dict.fromkeys(int(i) for i in resource_ids))
    if len(wanted) > MAX_RESOURCES:
        problems.append(Problem("resource_ids", None, f"Pick at most {MAX_RESOURCES} resources."))
        return [], []
    found = {r.id: r for r in session.scalars(select(Resource).where(Resource.id.in_(wanted)))} if wanted else {}
    practices: list[dict[str, Any]] = []
    others: list[dict[str, Any]] = []
    for resource_id in wanted:
        resource = found.get(resource_id)
        if resource is None or resource.status != ResourceStatus.PUBLISHED:
            label = f"“{resource.title}”" if resource else f"#{resource_id}"
            problems.append(Problem("resource_ids", None, f"The resource {label} is not published; leave it out."))
            continue
        parts = urlsplit(resource.url.strip())
        if parts.scheme not in _WEB or not parts.netloc:
            problems.append(
                Problem(
                    "resource_ids",
                    None,
                    f"“{resource.title}” has no web address, so an email cannot link to it; "
                    "add one in the library, or leave it out.",
                )
            )
            continue
        card = library.resource_card(resource)
        snapshot = {key: card[key] for key in ("id", "kind", "title", "summary")} | {"url": resource.url.strip()}
        (practices if resource.kind == ResourceKind.METHOD else others).append(snapshot)
    return practices, others


def _spotlight(
    session: Session, data: NewsletterInput, problems: list[Problem]
) -> tuple[dict[str, Any] | None, int | None]:
    member = None
    if data.spotlight_member_id:
        member = session.get(Member, data.spotlight_member_id)
    elif data.spotlight_email.strip():
        address = data.spotlight_email.strip().lower()
        member = session.scalar(select(Member).where(func.lower(Member.email) == address))
        if member is None:
            problems.append(Problem("spotlight_email", None, f"No member has the address {address}."))
            return None, None
    else:
        if data.spotlight_text.strip():
            problems.append(Problem("spotlight_email", None, "Say which member the spotlight is about."))
        return None, None
    if member is None or member.status == MemberStatus.ERASED:
        problems.append(Problem("spotlight_email", None, "The member chosen for the spotlight is no longer here."))
        return None, None
    text = " ".join(data.spotlight_text.split())
    if not text:
        problems.append(Problem("spotlight_text", None, "Write a few lines about the member in the spotlight."))
    elif len(text) > MAX_SPOTLIGHT_TEXT:
        problems.append(Problem("spotlight_text", None, f"Keep the spotlight under {MAX_SPOTLIGHT_TEXT:,} characters."))
    name = (member.preferred_name or member.name).strip()
    if not name:
        problems.append(Problem("spotlight_email", None, "The member in the spotlight has no name on record yet."))
    # Every key the member card reads is present: the templates refuse undefined names.
    return {
        "name": name,
        "role": "",
        "bio": text,
        "photo_url": "",
        "practices": [practice.name for practice in member.practices],
        "url": "",
    }, member.id


def parse_events(text: str) -> tuple[list[dict[str, str]], list[Problem]]:
    """One event per line, `when | what | where | https://link` (where is optional)."""
    events: list[dict[str, str]] = []
    problems: list[Problem] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if len(events) >= MAX_EVENTS:
            problems.append(Problem("events", number, f"List at most {MAX_EVENTS} events."))
            break
        parts = [part.strip() for part in line.split("|")]
        links = [part for part in parts if part.lower().startswith(("http://", "https://"))]
        words = [part for part in parts if part not in links]
        if len(links) != 1 or len(words) < 2 or len(line) > MAX_LINE_FIELD:
            problems.append(
                Problem(
                    "events",
                    number,
                    "write each event as: when | what | where | https://link "
                    "(for example: 2026-12-03 18:00 | Story circle | Online | https://example.org/circle)",
                )
            )
            continue
        parts_of_link = urlsplit(links[0])
        if not parts_of_link.netloc:
            problems.append(Problem("events", number, f"“{links[0]}” is not a full web address."))
            continue
        events.append(
            {"starts_at": _when(words[0]), "title": words[1], "place": " · ".join(words[2:]), "url": links[0]}
        )
    return events, problems


def _when(text: str) -> str:
    """ISO when it parses (the template writes it out in full), else the coordinator's own words."""
    try:
        return datetime.fromisoformat(text).isoformat()
    except ValueError:
        return text


# --- compiling, saving, withdrawing ----------------------------------------------------------


def campaign_info(subject: str, preheader: str, content: dict[str, Any], campaign_id: int = 0) -> CampaignInfo:
    """A campaign-shaped value for `email_source`, so previews compile exactly what the workers will."""
    return CampaignInfo(
        id=campaign_id,
        kind=str(CampaignKind.NEWSLETTER),
        status=str(CampaignStatus.DRAFT),
        name="",
        subject=" ".join(subject.split()),
        preheader=" ".join(preheader.split()),
        content=content,
        list_ids=[],
        segment_ids=[],
    )


def newsletter_info(
    session: Session, settings: Settings, data: NewsletterInput, campaign_id: int | None = None
) -> CampaignInfo:
    """The composer's current choices as the campaign the workers would send; raises ComposeError."""
    content = build_content(session, settings.public_url, data, campaign_id)
    subject = " ".join(data.subject.split()) or default_subject(content)
    return campaign_info(subject, data.preheader, content, campaign_id or 0)


def compile_newsletter(settings: Settings, info: CampaignInfo) -> CompiledEmail:
    """Compile as the sending pipeline does; a template or content error becomes a ComposeError."""
    try:
        return compile_email(*email_source(info), settings)
    except RenderError as exc:
        raise ComposeError([Problem(exc.field, exc.line, exc.message)]) from None


def save_newsletter(
    session: Session, settings: Settings, data: NewsletterInput, actor: str, campaign_id: int | None = None
) -> Campaign:
    """Create the draft, or update one (a scheduled one goes back to draft); the caller commits.

    Content that does not compile is refused, so a broken essay never waits in a draft for a worker.
    """
    campaign = _editable(session, campaign_id) if campaign_id else None
    content = build_content(session, settings.public_url, data, campaign.id if campaign else None)
    subject = " ".join(data.subject.split()) or default_subject(content)
    compile_newsletter(settings, campaign_info(subject, data.preheader, content))
    if campaign is None:
        campaign = campaign_service.create_campaign(
            session,
            name=data.name.strip() or content["title"],
            kind=CampaignKind.NEWSLETTER,
            subject=subject,
            preheader=data.preheader,
            content=content,
            list_ids=data.list_ids,
            segment_ids=data.segment_ids,
            actor=actor,
        )
        # The archive address needs the id, known only now.
        campaign.content = {**content, "archive_url": f"{settings.public_url.rstrip('/')}/archive/issues/{campaign.id}"}
    else:
        if campaign.status == CampaignStatus.SCHEDULED:
            campaign_service.change_status(session, campaign.id, CampaignStatus.DRAFT, actor, "edited in the composer")
        campaign.name = data.name.strip()[:200] or content["title"]
        campaign.subject = subject
        campaign.preheader = " ".join(data.preheader.split())
        campaign.content = content
        campaign.list_ids = [int(i) for i in data.list_ids]
        campaign.segment_ids = [int(i) for i in data.segment_ids]
    session.flush()
    return campaign


def _editable(session: Session, campaign_id: int) -> Campaign:
    campaign = get_newsletter(session, campaign_id)
    if campaign.status not in EDITABLE:
        raise ComposeError([Problem(None, None, f"This newsletter is {campaign.status}; it can no longer be edited.")])
    return campaign


def get_newsletter(session: Session, campaign_id: int) -> Campaign:
    campaign = find_newsletter(session, campaign_id)
    if campaign is None:
        raise campaign_service.CampaignNotFound(f"there is no newsletter {campaign_id}")
    return campaign


def find_newsletter(session: Session, campaign_id: int) -> Campaign | None:
    campaign = session.get(Campaign, campaign_id)
    return campaign if campaign is not None and campaign.kind == CampaignKind.NEWSLETTER else None


def drop_story_from_unsent(session: Session, story_id: int) -> list[int]:
    """After an author withdraws a story: take it out of every newsletter not yet sending; returns their ids."""
    changed = []
    drafts = session.scalars(
        select(Campaign).where(Campaign.kind == CampaignKind.NEWSLETTER, Campaign.status.in_(EDITABLE))
    )
    for campaign in drafts:
        content = campaign.content or {}
        if story_id not in _ints(content.get("story_ids")):
            continue
        stories = [card for card in content.get("stories") or [] if card.get("id") != story_id]
        campaign.content = {**content, "stories": stories, "story_ids": [card["id"] for card in stories]}
        changed.append(campaign.id)
    session.flush()
    return changed


# --- pickers ---------------------------------------------------------------------------------


def _like(term: str) -> str:
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def story_choices(
    session: Session, query: str = "", *, value_id: int | None = None, include: Sequence[int] = (), limit: int = 30
) -> list[dict[str, Any]]:
    """Approved stories for the picker, newest first, matching every word of `query` in the title or text.

    `include` adds stories already picked, so a search never hides a choice the form holds.
    """
    statement = select(Story).where(Story.status == StoryStatus.APPROVED)
    for term in query.lower().split()[:8]:
        pattern = _like(term)
        statement = statement.where(
            or_(func.lower(Story.title).like(pattern, escape="\\"), func.lower(Story.body).like(pattern, escape="\\"))
        )
    if value_id:
        statement = statement.where(Story.values.any(Value.id == value_id))
    found = list(session.scalars(statement.order_by(Story.approved_at.desc(), Story.id.desc()).limit(limit)))
    picked = [i for i in include if i not in {story.id for story in found}]
    if picked:
        extra = session.scalars(select(Story).where(Story.id.in_(picked), Story.status == StoryStatus.APPROVED))
        found = list(extra) + found
    names = author_names(session, found)
    return [
        {
            "id": story.id,
            "title": story.title,
            "detail": " · ".join(
                part
                for part in (
                    names.get(story.author_id, "") if story.shows_author_name else "name not shown",
                    ", ".join(value.name for value in story.values),
                    SHARING_LABELS[story.sharing],
                )
                if part
            ),
        }
        for story in found
    ]


def resource_choices(
    session: Session, query: str = "", *, include: Sequence[int] = (), limit: int = 30
) -> list[dict[str, Any]]:
    """Published resources for the picker, with those already picked."""
    found, _ = library.search(session, query[:200], limit=limit)
    picked = [i for i in include if i not in {resource.id for resource in found}]
    if picked:
        extra = session.scalars(
            select(Resource).where(Resource.id.in_(picked), Resource.status == ResourceStatus.PUBLISHED)
        )
        found = list(extra) + found
    return [
        {
            "id": resource.id,
            "title": resource.title,
            "detail": " · ".join(
                part
                for part in (
                    library.KIND_LABELS.get(ResourceKind(resource.kind), resource.kind),
                    ", ".join(value.name for value in resource.values),
                    "" if resource.url else "no web address",
                )
                if part
            ),
        }
        for resource in found
    ]


def member_choices(session: Session, query: str, limit: int = 10) -> list[dict[str, Any]]:
    """Members for the spotlight picker, by name or address."""
    terms = query.lower().split()[:4]
    if not terms:
        return []
    statement = select(Member).where(Member.status != MemberStatus.ERASED)
    for term in terms:
        pattern = _like(term)
        statement = statement.where(
            or_(
                func.lower(Member.name).like(pattern, escape="\\"),
                func.lower(Member.preferred_name).like(pattern, escape="\\"),
                func.lower(Member.email).like(pattern, escape="\\"),
            )
        )
    return [
        {"id": m.id, "title": m.preferred_name or m.name or m.email, "detail": m.email}
        for m in session.scalars(statement.order_by(Member.name, Member.id).limit(limit))
    ]


def spotlight_email(session: Session, member_id: int | None) -> str:
    if not member_id:
        return ""
    member = session.get(Member, member_id)
    return member.email if member is not None else ""
