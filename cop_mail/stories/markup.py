"""Markdown from members and coordinators -> HTML that is safe to show anywhere.

Members write stories and suggest resources; none of it is trusted. Raw HTML in the Markdown is
escaped by the parser and the output is cleaned again by nh3 (an allow-list), so a script or an
event handler never reaches a page, an email or the feed.
"""

from __future__ import annotations

import html as html_lib
import re
from functools import cache

import nh3
from markdown_it import MarkdownIt

ALLOWED_TAGS = frozenset(
    {"p", "br", "hr", "strong", "em", "del", "code", "pre", "blockquote", "ul", "ol", "li", "a"}
    | {"h1", "h2", "h3", "h4", "table", "thead", "tbody", "tr", "th", "td"}
)
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "th": {"align"}, "td": {"align"}}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
_BLOCK_TAG = re.compile(r"</?(?:p|br|hr|li|ul|ol|h[1-6]|blockquote|pre|table|thead|tbody|tr|td|th)\b[^>]*>", re.I)
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


@cache
def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


def markdown_to_html(text: str) -> str:
    """Sanitised HTML for untrusted Markdown (the shared renderer's when it is installed)."""
    return clean_html(_shared_render(text) or _parser().render(text))


def _shared_render(text: str) -> str | None:
    """The email renderer's Markdown (same line breaks as in newsletters), when it is installed."""
    try:
        from cop_mail.rendering.errors import RenderError
        from cop_mail.rendering.richtext import markdown_to_html as shared
    except ImportError:
        return None
    try:
        return shared(text, allow_html=False, field="story")
    except RenderError:
        return None  # e.g. a pasted picture: our own parser renders it and clean_html drops the image


def clean_html(html: str) -> str:
    return nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(attrs) for tag, attrs in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        link_rel="nofollow noopener noreferrer",
    )


def plain_text(html: str) -> str:
    """Text of sanitised HTML on one line, for excerpts, summaries and search."""
    # Blocks separate words; inline tags (<em>, <a>) sit inside them and must not add spaces.
    return _SPACE.sub(" ", html_lib.unescape(_TAG.sub("", _BLOCK_TAG.sub(" ", html)))).strip()


def excerpt(html: str, limit: int = 280) -> str:
    text = plain_text(html)
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",.;:") + "…"
