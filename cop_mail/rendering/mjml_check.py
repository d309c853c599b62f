"""Checks MJML that mjml-python would accept silently: unknown tags, misplaced tags, unknown
attributes and unclosed tags. MJML's own validator is JavaScript; this covers the same ground
for the components our templates use, so a typo fails a test instead of vanishing from an email.
"""

from __future__ import annotations

from html.parser import HTMLParser

# Components whose content is HTML (or CSS/text) and is passed through as written.
ENDING_TAGS = frozenset(
    {
        "mj-text",
        "mj-button",
        "mj-table",
        "mj-raw",
        "mj-navbar-link",
        "mj-accordion-title",
        "mj-accordion-text",
        "mj-social-element",
        "mj-style",
        "mj-title",
        "mj-preview",
    }
)
_CONTENT = frozenset(
    {
        "mj-accordion",
        "mj-button",
        "mj-carousel",
        "mj-divider",
        "mj-image",
        "mj-navbar",
        "mj-raw",
        "mj-social",
        "mj-spacer",
        "mj-table",
        "mj-text",
    }
)
CHILDREN: dict[str, frozenset[str]] = {
    "mjml": frozenset({"mj-head", "mj-body", "mj-raw"}),
    "mj-head": frozenset(
        {
            "mj-attributes",
            "mj-breakpoint",
            "mj-font",
            "mj-html-attributes",
            "mj-preview",
            "mj-style",
            "mj-title",
            "mj-raw",
        }
    ),
    "mj-body": frozenset({"mj-section", "mj-wrapper", "mj-hero", "mj-raw"}),
    "mj-wrapper": frozenset({"mj-section", "mj-hero", "mj-raw"}),
    "mj-section": frozenset({"mj-column", "mj-group", "mj-raw"}),
    "mj-group": frozenset({"mj-column", "mj-raw"}),
    "mj-column": _CONTENT,
    "mj-hero": _CONTENT,
    "mj-social": frozenset({"mj-social-element", "mj-raw"}),
    "mj-navbar": frozenset({"mj-navbar-link", "mj-raw"}),
    "mj-accordion": frozenset({"mj-accordion-element", "mj-raw"}),
    "mj-accordion-element": frozenset({"mj-accordion-title", "mj-accordion-text", "mj-raw"}),
    "mj-carousel": frozenset({"mj-carousel-image"}),
    "mj-html-attributes": frozenset({"mj-selector"}),
    "mj-selector": frozenset({"mj-html-attribute"}),
}
KNOWN_TAGS = frozenset(CHILDREN) | frozenset().union(*CHILDREN.values()) | {"mj-all", "mj-class", "mj-include"}

_PADDING = {"padding", "padding-top", "padding-bottom", "padding-left", "padding-right"}
_BORDER = {"border", "border-top", "border-bottom", "border-left", "border-right", "border-radius"}
_FONT = {
    "color",
    "font-family",
    "font-size",
    "font-style",
    "font-weight",
    "line-height",
    "letter-spacing",
    "text-decoration",
    "text-transform",
    "align",
}
_COMMON = {"css-class", "mj-class"}
_BACKGROUND = {
    "background-color",
    "background-url",
    "background-repeat",
    "background-size",
    "background-position",
    "background-position-x",
    "background-position-y",
}
ATTRIBUTES: dict[str, frozenset[str]] = {
    "mjml": frozenset({"lang", "dir", "owa"}),
    "mj-body": frozenset({"width", "background-color"} | _COMMON),
    "mj-section": frozenset(_COMMON | _PADDING | _BORDER | _BACKGROUND | {"direction", "full-width", "text-align"}),
    "mj-wrapper": frozenset(_COMMON | _PADDING | _BORDER | _BACKGROUND | {"full-width", "text-align", "gap"}),
    "mj-column": frozenset(
        _COMMON
        | _PADDING
        | _BORDER
        | {
            "background-color",
            "inner-background-color",
            "inner-border",
            "inner-border-radius",
            "width",
            "vertical-align",
            "direction",
        }
    ),
    "mj-group": frozenset(_COMMON | {"width", "vertical-align", "background-color", "direction"}),
    "mj-text": frozenset(_COMMON | _PADDING | _FONT | {"height", "container-background-color"}),
    "mj-button": frozenset(
        _COMMON
        | _PADDING
        | _BORDER
        | _FONT
        | {
            "background-color",
            "container-background-color",
            "height",
            "href",
            "inner-padding",
            "rel",
            "target",
            "title",
            "name",
            "text-align",
            "vertical-align",
            "width",
        }
    ),
    "mj-image": frozenset(
        _COMMON
        | _PADDING
        | _BORDER
        | {
            "align",
            "alt",
            "container-background-color",
            "fluid-on-mobile",
            "height",
            "href",
            "name",
            "rel",
            "sizes",
            "src",
            "srcset",
            "target",
            "title",
            "usemap",
            "width",
            "max-height",
            "font-size",
        }
    ),
    "mj-divider": frozenset(
        _COMMON
        | _PADDING
        | {"align", "border-color", "border-style", "border-width", "container-background-color", "width"}
    ),
    "mj-spacer": frozenset(_COMMON | _PADDING | {"container-background-color", "height"}),
    "mj-table": frozenset(
        _COMMON
        | _PADDING
        | _FONT
        | {"border", "cellpadding", "cellspacing", "container-background-color", "role", "table-layout", "width"}
    ),
    "mj-raw": frozenset({"position"}),
    "mj-style": frozenset({"inline"}),
    "mj-breakpoint": frozenset({"width"}),
    "mj-font": frozenset({"name", "href"}),
    "mj-head": frozenset(),
    "mj-title": frozenset(),
    "mj-preview": frozenset(),
    "mj-attributes": frozenset(),
}


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.stack: list[str] = []
        self.raw_depth = 0  # > 0 inside a component whose content is HTML

    def _problem(self, text: str) -> None:
        self.problems.append(f"line {self.getpos()[0]}: {text}")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._open(tag, attrs, closes=False)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._open(tag, attrs, closes=True)

    def _open(self, tag: str, attrs: list[tuple[str, str | None]], closes: bool) -> None:
        if self.raw_depth:
            return
        parent = self.stack[-1] if self.stack else None
        if tag not in KNOWN_TAGS:
            kind = "MJML tag" if tag.startswith("mj") else "HTML tag outside <mj-text>, <mj-button> or <mj-raw>"
            self._problem(f"unknown {kind} <{tag}>")
        elif parent == "mj-attributes":
            pass  # defaults for any component, with that component's attributes
        elif parent is None and tag != "mjml":
            self._problem(f"<{tag}> must be inside <mjml>")
        elif parent is not None and parent in CHILDREN and tag not in CHILDREN[parent]:
            self._problem(f"<{tag}> cannot be placed inside <{parent}>")
        if tag in ATTRIBUTES and parent != "mj-attributes":
            for name, _ in attrs:
                if name not in ATTRIBUTES[tag]:
                    self._problem(f"<{tag}> has no attribute '{name}'")
        if tag in ("mj-image", "mj-carousel-image") and parent != "mj-attributes" and not dict(attrs).get("alt"):
            self._problem(f"<{tag}> needs alt text")
        if not closes:
            self.stack.append(tag)
            if tag in ENDING_TAGS:
                self.raw_depth = 1

    def handle_endtag(self, tag: str) -> None:
        if self.raw_depth:
            if tag != self.stack[-1]:
                return
            self.raw_depth = 0
        if not self.stack or self.stack[-1] != tag:
            expected = f"</{self.stack[-1]}>" if self.stack else "nothing"
            self._problem(f"</{tag}> closes a tag that is not open (expected {expected})")
            if tag in self.stack:
                del self.stack[self.stack.index(tag) :]
            return
        self.stack.pop()

    def close(self) -> None:
        super().close()
        for tag in reversed(self.stack):
            self._problem(f"<{tag}> is never closed")


def mjml_problems(source: str) -> list[str]:
    """Every problem found, as 'line N: what is wrong'; an empty list means clean."""
    checker = _Checker()
    checker.feed(source)
    checker.close()
    return checker.problems
