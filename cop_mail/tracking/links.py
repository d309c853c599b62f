"""The links a tracked campaign carries, and the HTML with click redirects and an open pixel.

When tracking is on, each batch of a bulk campaign stores the http(s) links of its compiled HTML
as TrackedLink rows (idempotently: every batch and worker ends up with the same rows) and
rewrites them to `{public_url}/t/c/<token>/<position>`; an open pixel goes before </body>.
The token is one per delivery, signed and carrying the delivery id, and is filled in like any
other per-recipient field. A redirect can only lead to a stored link of that delivery's
campaign, so it is never an open redirect.

Links holding a per-recipient marker (unsubscribe, preference centre, manage, a member's own
story or meet link) are left alone: they differ per member, so no stored copy could stand for
them, and the pages behind them record what the member does there. mailto: and other schemes
are left alone too.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from sqlalchemy import Connection, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from cop_mail import community
from cop_mail.models import CampaignKind, TrackedLink
from cop_mail.rendering import CompiledEmail
from cop_mail.rendering.placeholders import SplitTemplate, marker
from cop_mail.tokens import TokenError, read_link, sign_link

LINK_PURPOSE = "track"
RECIPIENT_FIELD = "tracking_id"
# Bulk mail only: introductions are person-to-person, and transactional mail is nobody's statistic.
TRACKED_KINDS = frozenset(
    {CampaignKind.NEWSLETTER, CampaignKind.ROUNDUP, CampaignKind.STORY_PROMPT, CampaignKind.RESOURCE_DIGEST}
)
LABEL_LENGTH = 300
REGISTER_TRIES = 3

_ANCHOR = re.compile(r"<a\b(?P<attrs>[^>]*)>(?P<inner>.*?)</a\s*>", re.IGNORECASE | re.DOTALL)
_OPEN_ANCHOR = re.compile(r"<a\b[^>]*>", re.IGNORECASE)
_HREF = re.compile(r"""(?P<lead>\shref\s*=\s*)(?P<quote>["'])(?P<value>.*?)(?P=quote)""", re.IGNORECASE | re.DOTALL)
_ALT = re.compile(r"""\salt\s*=\s*(["'])(.*?)\1""", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
_WEB = re.compile(r"https?://[^/]", re.IGNORECASE)


@dataclass(frozen=True)
class FoundLink:
    url: str
    label: str


@dataclass(frozen=True)
class LinkPlan:
    """The stored position of each tracked URL of one campaign.

    Hashable, so it can be part of a cache key: a composer built with tracking is never reused
    without it, or the other way round.
    """

    positions: tuple[tuple[str, int], ...]

    def as_dict(self) -> dict[str, int]:
        return dict(self.positions)


# --- tokens ------------------------------------------------------------------------------------


def delivery_token(secret: str, delivery_id: int) -> str:
    return sign_link(secret, LINK_PURPOSE, delivery_id)


def read_delivery_token(secret: str, token: str) -> int:
    """The delivery id a token was made for; TokenError when forged, tampered or malformed.

    Tokens do not expire: a link in an old email keeps leading where it said it would.
    """
    payload = read_link(secret, LINK_PURPOSE, token)
    if type(payload) is not int or payload <= 0:
        raise TokenError("invalid")
    return payload


# --- finding and rewriting links ----------------------------------------------------------------


def trackable_url(raw_href: str) -> str | None:
    """The URL an href (as written in HTML) leads to, or None when it must stay as it is."""
    if "@@cm:" in raw_href:  # a per-recipient link
        return None
    url = html.unescape(raw_href).strip()
    if not _WEB.match(url) or any(ord(char) <= 32 or ord(char) == 127 for char in url):
        return None
    return url


def find_links(source: str) -> list[FoundLink]:
    """Every trackable link of the HTML once, in order of first appearance, with its text."""
    found: dict[str, str] = {}
    for anchor in _ANCHOR.finditer(source):
        href = _HREF.search(anchor.group("attrs"))
        url = trackable_url(href.group("value")) if href else None
        if url is None:
            continue
        if not found.get(url):
            found[url] = _label(anchor.group("inner"))
    return [FoundLink(url, label) for url, label in found.items()]


def _label(inner: str) -> str:
    text = " ".join(html.unescape(_TAG.sub(" ", inner)).split())
    if not text:  # an image link: its alt text says what it is
        alt = _ALT.search(inner)
        text = " ".join(html.unescape(alt.group(2)).split()) if alt else ""
    return text[:LABEL_LENGTH]


def rewrite(source: str, positions: Mapping[str, int], base_url: str) -> str:
    """Point every link in `positions` at its redirect, and add the open pixel."""
    token = marker(RECIPIENT_FIELD)

    def redirect(href: re.Match[str]) -> str:
        url = trackable_url(href.group("value"))
        position = positions.get(url) if url is not None else None
        if position is None:
            return href.group(0)
        quote = href.group("quote")
        return f"{href.group('lead')}{quote}{base_url}/t/c/{token}/{position}{quote}"

    rewritten = _OPEN_ANCHOR.sub(lambda tag: _HREF.sub(redirect, tag.group(0), count=1), source)
    pixel = f'<img src="{base_url}/t/o/{token}.gif" width="1" height="1" alt="" style="display:block;border:0;">'
    ends = list(_BODY_END.finditer(rewritten))
    if not ends:
        return rewritten + pixel
    cut = ends[-1].start()
    return rewritten[:cut] + pixel + rewritten[cut:]


def track_email(compiled: CompiledEmail, plan: LinkPlan, public_url: str) -> CompiledEmail:
    """The compiled email with redirects and the pixel in its HTML; every message then needs a token.

    The plain-text part keeps the original links: its reader sees each address in full, a long
    redirect in its place would hide where a link goes (and look like phishing), and a text
    part cannot show a pixel anyway.
    """
    source = rewrite(compiled.html.source, plan.as_dict(), public_url.rstrip("/"))
    return replace(
        compiled,
        html=SplitTemplate(source, escape_defaults=True),
        fields=compiled.fields | {RECIPIENT_FIELD},
        required_fields=compiled.required_fields | {RECIPIENT_FIELD},
    )


# --- the campaign's stored links ------------------------------------------------------------------


def plan_links(
    conn: Connection, campaign_id: int, kind: str, compile_html: Callable[[], CompiledEmail]
) -> LinkPlan | None:
    """The campaign's tracked links, stored if new; None when this campaign's mail is not tracked.

    Asked per batch: switching tracking on or off applies from the next batch of messages.
    """
    if kind not in TRACKED_KINDS or not tracking_enabled(conn):
        return None
    stored = register(conn, campaign_id, find_links(compile_html().html.source))
    return LinkPlan(tuple(sorted(stored.items())))


def tracking_enabled(conn: Connection) -> bool:
    with Session(bind=conn) as session:
        return community.load(session).tracking_enabled


def register(conn: Connection, campaign_id: int, found: Sequence[FoundLink]) -> dict[str, int]:
    """URL -> position for `found`, storing the missing ones; commits.

    Positions are never reused for another URL, so a link already in an inbox always leads where
    it did, even if the campaign's content or templates changed between batches. Two workers
    storing at once both end up reading the same rows (a lost race is retried).
    """
    stored: dict[str, int] = {}
    for attempt in range(REGISTER_TRIES):
        stored, last = _stored(conn, campaign_id)
        missing = [link for link in found if link.url not in stored]
        if not missing or attempt == REGISTER_TRIES - 1:
            break
        rows = [
            {"campaign_id": campaign_id, "position": last + i, "url": link.url, "label": link.label}
            for i, link in enumerate(missing, start=1)
        ]
        insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        conn.execute(insert(TrackedLink).values(rows).on_conflict_do_nothing())
    if conn.in_transaction():
        conn.commit()
    return {link.url: stored[link.url] for link in found if link.url in stored}


def _stored(conn: Connection, campaign_id: int) -> tuple[dict[str, int], int]:
    """(URL -> its first position, the highest position in use)."""
    rows = conn.execute(
        select(TrackedLink.url, func.min(TrackedLink.position))
        .where(TrackedLink.campaign_id == campaign_id)
        .group_by(TrackedLink.url)
    ).all()
    last = conn.scalar(select(func.max(TrackedLink.position)).where(TrackedLink.campaign_id == campaign_id))
    return {url: int(position) for url, position in rows}, int(last or 0)
