"""Pre-send checks, in words a coordinator can act on.

Run on an email filled for a sample recipient (real signed links have similar lengths), so
sizes and links are judged as members will receive them.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from html.parser import HTMLParser
from typing import Any

from cop_mail.rendering.compiler import CompiledEmail
from cop_mail.rendering.samples import recipient as sample_recipient

GMAIL_CLIP_BYTES = 102 * 1024
_ABSOLUTE = ("http://", "https://", "mailto:")


def presend_problems(compiled: CompiledEmail, recipient: Mapping[str, Any] | None = None) -> list[str]:
    """Every reason not to send yet; an empty list means the email may go out."""
    filled = dict(sample_recipient())
    filled.update(recipient or {})
    subject, body_html, body_text = compiled.fill(filled)
    problems: list[str] = []
    if not subject.strip():
        problems.append("The subject is empty.")
    if not compiled.preheader.fill(filled).strip():
        problems.append("The preheader (the preview line shown after the subject) is empty.")
    for field, label in (("unsubscribe_url", "unsubscribe link"), ("preferences_url", "preference-centre link")):
        for part, template in (("HTML", compiled.html), ("plain-text", compiled.text)):
            if field not in template.fields:
                problems.append(f"The {label} is missing from the {part} version.")
    address = compiled.postal_address
    if html.escape(address) not in body_html or address not in body_text:
        problems.append("The community's postal address is missing from the footer.")
    size = len(body_html.encode())
    if size >= GMAIL_CLIP_BYTES:
        problems.append(
            f"The email is {size / 1024:.0f} KB; Gmail cuts off emails over 102 KB, hiding the rest "
            "(including the unsubscribe link). Shorten it or link to the full text."
        )
    problems.extend(_link_and_image_problems(body_html))
    return problems


class _LinkScanner(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self._href: str | None = None
        self._words: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a":
            self._href = (values.get("href") or "").strip()
            self._words = []
        elif tag == "img" and not (values.get("alt") or "").strip():
            source = (values.get("src") or "")[:80]
            self.problems.append(
                f"An image ({source}) has no description (alt text); add one so people who "
                "don't see images know what it shows."
            )

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._words.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag != "a" or self._href is None:
            return
        href, words = self._href, " ".join("".join(self._words).split()) or "(no text)"
        self._href = None
        if not href.lower().startswith(_ABSOLUTE):
            target = href or "nowhere"
            self.problems.append(
                f"The link “{words}” goes to “{target}”, which is not a full address: "
                "links must start with https://, http:// or mailto:."
            )


def _link_and_image_problems(body_html: str) -> list[str]:
    scanner = _LinkScanner()
    scanner.feed(body_html)
    scanner.close()
    return scanner.problems
