"""Inbound HTML made safe to show a coordinator in the admin inbox.

A strict allow-list through nh3: no scripts, no forms or frames, no style attributes or style
sheets (CSS can load URLs), and no remote content, because an image fetched from the sender's
server tells them the message was read and from where. Embedded images (data: and cid:) stay;
remote ones become a visible placeholder. Links open in a new tab without a referrer.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable

import nh3

MAX_HTML_CHARS = 2_000_000
PLACEHOLDER_TEXT = "[remote image removed]"

_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "dd", "del", "div", "dl", "dt", "em",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "ol", "p", "pre", "q", "s",
    "small", "span", "strike", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr",
    "u", "ul",
}  # fmt: skip
_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "width", "height", "title"},
    "td": {"colspan", "rowspan", "align"},
    "th": {"colspan", "rowspan", "align"},
    "abbr": {"title"},
    "ol": {"start"},
}
_CLEAN_CONTENT = {"script", "style", "title", "head", "noscript", "template", "iframe", "object", "svg", "math"}
_LINK_SCHEMES = ("http://", "https://", "mailto:")
_IMAGE_DATA = re.compile(r"^data:image/(?:png|jpeg|jpg|gif|webp);base64,[a-z0-9+/=\s]+$", re.IGNORECASE)
_DROPPED = "cop-mail-dropped-src"
_DROPPED_IMG = re.compile(rf'<img\b[^>]*\balt="{_DROPPED}(?:[^"]*)"[^>]*>')


def render_safe_html(
    source: str | None,
    *,
    cid_url: Callable[[str], str | None] | None = None,
    placeholder: str = PLACEHOLDER_TEXT,
) -> str:
    """Clean HTML for display. `cid_url` maps a Content-ID to a local URL for embedded images."""
    if not source:
        return ""
    source = source[:MAX_HTML_CHARS].replace("\x00", "")

    def attribute_filter(tag: str, attr: str, value: str) -> str | None:
        if tag == "a" and attr == "href":
            return value if value.strip().lower().startswith(_LINK_SCHEMES) else None
        if tag == "img" and attr == "src":
            return _image_src(value, cid_url)
        if tag == "img" and attr == "alt":
            return value
        return value

    cleaned = nh3.clean(
        _mark_remote_images(source, cid_url),
        tags=_TAGS,
        clean_content_tags=_CLEAN_CONTENT,
        attributes=_ATTRIBUTES,
        attribute_filter=attribute_filter,
        url_schemes={"http", "https", "mailto", "cid", "data"},
        link_rel="noopener noreferrer nofollow",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        strip_comments=True,
    )
    return _DROPPED_IMG.sub(lambda found: _placeholder(found.group(0), placeholder), cleaned)


def _image_src(value: str, cid_url: Callable[[str], str | None] | None) -> str | None:
    src = value.strip()
    if _IMAGE_DATA.match(src):
        return src
    if src.lower().startswith("cid:"):
        if cid_url is None:
            return src
        local = cid_url(src[4:].strip("<> "))
        return local if local and local.startswith("/") and not local.startswith("//") else None
    return None


def _mark_remote_images(source: str, cid_url: Callable[[str], str | None] | None) -> str:
    """Tag each image whose src will be dropped, so it can become a placeholder after cleaning."""

    def mark(found: re.Match[str]) -> str:
        tag = found.group(0)
        src = re.search(r"""\bsrc\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", tag, re.IGNORECASE)
        value = html.unescape(next((g for g in src.groups() if g is not None), "")) if src else ""
        if src and _image_src(value, cid_url) is not None:
            return tag
        alt = re.search(r"""\balt\s*=\s*(?:"([^"]*)"|'([^']*)')""", tag, re.IGNORECASE)
        alt_text = next((g for g in alt.groups() if g is not None), "") if alt else ""
        return f'<img alt="{_DROPPED}{html.escape(html.unescape(alt_text), quote=True)}">'

    return re.sub(r"<img\b[^>]*>", mark, source, flags=re.IGNORECASE)


def _placeholder(tag: str, text: str) -> str:
    alt = re.search(rf'alt="{_DROPPED}([^"]*)"', tag)
    described = html.unescape(alt.group(1)).strip() if alt else ""
    label = f"{text}: {described}" if described else text
    return f'<span class="remote-image">{html.escape(label)}</span>'
