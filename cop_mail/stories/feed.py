"""The archive's Atom feed (RFC 4287), built with the standard library's ElementTree.

It is built per request from the public queries, so a story whose author withdraws consent is
gone from the next fetch. Entry ids are the entries' permanent addresses, which never change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from xml.etree import ElementTree as ET

from sqlalchemy.orm import Session

from cop_mail.settings import Settings
from cop_mail.stories import archive

ATOM = "http://www.w3.org/2005/Atom"
FEED_PATH = "/archive/feed.atom"
MAX_STORIES = 50
MAX_ISSUES = 20


@dataclass(frozen=True)
class FeedEntry:
    url: str
    title: str
    updated: datetime
    published: datetime
    summary: str
    content_html: str
    author: str | None
    categories: tuple[str, ...] = ()


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _add(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attributes)
    if text is not None:
        element.text = text
    return element


def feed_entries(session: Session, settings: Settings) -> list[FeedEntry]:
    base = settings.public_url
    entries = [
        FeedEntry(
            url=f"{base}/archive/stories/{story.id}",
            title=story.title,
            updated=max(story.updated_at, story.published_at),
            published=story.published_at,
            summary=story.summary,
            content_html=story.body_html,
            author=story.author_name,
            categories=tuple(value.name for value in story.values),
        )
        for story in archive.public_stories(session, limit=MAX_STORIES)
    ]
    for issue in archive.archive_issues(session, limit=MAX_ISSUES):
        entries.append(
            FeedEntry(
                url=f"{base}/archive/issues/{issue.id}",
                title=issue.title,
                updated=issue.sent_at,
                published=issue.sent_at,
                summary=issue.preheader or ("A roundup of stories" if issue.kind == "roundup" else "A newsletter"),
                content_html="",
                author=None,
            )
        )
    return sorted(entries, key=lambda entry: entry.updated, reverse=True)


def build_feed(settings: Settings, entries: Sequence[FeedEntry], now: datetime | None = None) -> bytes:
    base = settings.public_url
    ET.register_namespace("", ATOM)
    feed = ET.Element(f"{{{ATOM}}}feed")
    _add(feed, "id", f"{base}/archive")
    _add(feed, "title", f"{settings.community_name}: stories and newsletters")
    _add(feed, "subtitle", f"What the values of {settings.community_name} look like in practice.")
    _add(feed, "updated", _stamp(entries[0].updated if entries else (now or datetime.now(UTC))))
    _add(feed, "link", rel="self", type="application/atom+xml", href=f"{base}{FEED_PATH}")
    _add(feed, "link", rel="alternate", type="text/html", href=f"{base}/archive")
    author = _add(feed, "author")
    _add(author, "name", settings.community_name)
    _add(feed, "generator", "cop-mail")
    for entry in entries:
        _entry(feed, entry)
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)


def _entry(feed: ET.Element, entry: FeedEntry) -> None:
    element = _add(feed, "entry")
    _add(element, "id", entry.url)
    _add(element, "title", entry.title)
    _add(element, "updated", _stamp(entry.updated))
    _add(element, "published", _stamp(entry.published))
    _add(element, "link", rel="alternate", type="text/html", href=entry.url)
    if entry.author:
        _add(_add(element, "author"), "name", entry.author)
    for category in entry.categories:
        _add(element, "category", term=category)
    _add(element, "summary", entry.summary or entry.title)
    if entry.content_html:
        # type="html": the sanitised HTML travels escaped, which every reader understands.
        _add(element, "content", entry.content_html, type="html")


def render_feed(session: Session, settings: Settings) -> bytes:
    return build_feed(settings, feed_entries(session, settings))
