"""Markdown to safe HTML for email: markdown-it-py renders, nh3 sanitises.

Scripts, event handlers, styles and `javascript:` links never survive. Images pasted into the
text as `data:` URIs bloat every copy of the email (and Gmail clips mail over 102 KB), so
anything bigger than an icon is refused with a message asking for an upload and a link.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import urljoin

import nh3
from markdown_it import MarkdownIt

from cop_mail.rendering.errors import RenderError

MAX_MARKDOWN = 1_000_000
MAX_INLINE_IMAGE = 16 * 1024  # bytes of data: URI text; icons fit, photos do not
_DATA_URI = re.compile(r"data:([a-z0-9.+/-]*)((?:;[a-z0-9=.+-]*)*),([a-z0-9+/=%._~-]*)", re.IGNORECASE)
_INLINE_IMAGE_TYPES = ("image/png", "image/gif", "image/jpeg", "image/webp")
_URL_SCHEMES = frozenset({"http", "https", "mailto", "data"})


@lru_cache(maxsize=2)
def _parser(allow_html: bool) -> MarkdownIt:
    # Members type stories as plain text, where a new line means a new line; coordinators
    # write Markdown proper (allow_html=True), where it does not.
    parser = MarkdownIt("commonmark", {"html": allow_html, "breaks": not allow_html})
    return parser.enable(["table", "strikethrough"])


def markdown_to_html(
    source: str, *, base_url: str | None = None, allow_html: bool = True, field: str = "content"
) -> str:
    """Render Markdown to sanitised HTML.

    `base_url` turns relative links into absolute ones (emails have no base). `allow_html=False`
    escapes raw HTML instead of sanitising it (for text members wrote, e.g. stories).
    Per-recipient markers (`@@cm:...@@`) in link targets are left as they are.
    """
    if len(source) > MAX_MARKDOWN and not _DATA_URI.search(source):
        raise RenderError(
            f"the text is {len(source) // 1000:,} KB; the limit is {MAX_MARKDOWN // 1000:,} KB", None, field
        )
    _refuse_pasted_images(source, field)
    return sanitise_html(_parser(allow_html).render(source), base_url=base_url)


def _refuse_pasted_images(source: str, field: str) -> None:
    for match in _DATA_URI.finditer(source):
        size = len(match.group(0))
        if size > MAX_INLINE_IMAGE:
            line = source.count("\n", 0, match.start()) + 1
            raise RenderError(
                f"an image is pasted into the text ({_human_size(size)}); images must be uploaded and linked "
                "instead: upload the image, then write ![what it shows](https://…/image.jpg)",
                line,
                field,
            )


def _human_size(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB" if size >= 1_000_000 else f"{size / 1000:.0f} KB"


def sanitise_html(html: str, *, base_url: str | None = None) -> str:
    def relative(url: str) -> str | None:
        if url.startswith("@@cm:") or not base_url:
            return url
        return urljoin(base_url.rstrip("/") + "/", url)

    return nh3.clean(
        html,
        url_schemes=set(_URL_SCHEMES),
        attribute_filter=_keep_attribute,
        url_relative=relative,
        link_rel="noopener",
    )


def _keep_attribute(element: str, attribute: str, value: str) -> str | None:
    # data: is allowed only as a small image source; never as a link target.
    if value[:5].lower() == "data:":
        if element == "img" and attribute == "src" and value[5:].lower().startswith(_INLINE_IMAGE_TYPES):
            return value if len(value) <= MAX_INLINE_IMAGE else None
        return None
    return value
