"""Per-recipient placeholders.

A campaign is compiled once with markers like ``@@cm:first_name@@`` standing where each
recipient's own values go; `SplitTemplate.fill` swaps them in with a list join. The marker
alphabet (letters, digits, ``_``, ``:``, ``@``, ``|`` and a hex default) passes unchanged
through Jinja autoescaping, Markdown (including link targets), nh3, MJML and html2text.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from typing import Any

# Every field a compiled email can ask for, with what the sender must supply.
RECIPIENT_FIELDS: dict[str, str] = {
    "first_name": "the member's first name",
    "name": "the member's full name",
    "email": "the member's address",
    "unsubscribe_url": "signed one-click unsubscribe page",
    "preferences_url": "signed preference centre page",
    "view_url": "signed 'view in browser' page",
    "accept_url": "signed link accepting an introduction",
    "decline_url": "signed link declining an introduction",
    "met_url": "signed link saying an introduction led to a conversation",
    "story_url": "signed link to the story submission form",
    "confirm_url": "signed subscription confirmation link",
    "manage_url": "signed link to manage a subscription",
    "tracking_id": "opaque id for click tracking (optional)",
    "meet_token": "signed token ending the 'meet the storyteller' and members' story links",
    "resources_token": "signed token ending the members' resource library link",
}
# Fields that our own code may place inside URLs in the campaign data (see compiler.plain_data).
DATA_LINK_TOKENS = ("meet_token", "resources_token")
MEMBER_FIELDS = ("first_name", "name", "email")

MARKER_RE = re.compile(r"@@cm:([a-z][a-z0-9_]*)(?:\|([0-9a-f]*))?@@")


def marker(field: str, default: str = "") -> str:
    if field not in RECIPIENT_FIELDS:
        raise KeyError(field)
    return f"@@cm:{field}|{default.encode().hex()}@@" if default else f"@@cm:{field}@@"


class Placeholder(str):
    """A marker string that still knows its field, so `default` can attach a fallback."""

    field: str

    def __new__(cls, field: str, default: str = "") -> Placeholder:
        obj = super().__new__(cls, marker(field, default))
        obj.field = field
        return obj

    def with_default(self, default: Any) -> Placeholder:
        return Placeholder(self.field, str(default))

    def __html__(self) -> str:
        # Markers hold no characters that need escaping; the value is escaped when filled in.
        return str(self)


class UnknownFieldError(LookupError):
    pass


class RecipientProxy:
    """`member.first_name` / `recipient.unsubscribe_url` in templates: yields placeholders."""

    def __init__(self, label: str, fields: Iterable[str]):
        self._label = label
        self._fields = tuple(fields)

    def __getattr__(self, name: str) -> Placeholder:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._fields:
            raise UnknownFieldError(
                f"{self._label} has no field '{name}'; fields you can use: " + ", ".join(self._fields)
            )
        return Placeholder(name)

    def __getitem__(self, name: str) -> Placeholder:
        return self.__getattr__(name)

    def __str__(self) -> str:
        return str(Placeholder("name"))

    def __html__(self) -> str:
        return str(self)


def member_proxy() -> RecipientProxy:
    return RecipientProxy("member", MEMBER_FIELDS)


def recipient_proxy() -> RecipientProxy:
    return RecipientProxy("recipient", RECIPIENT_FIELDS)


class SplitTemplate:
    """Compiled text with markers pre-split, so a fill is one list build and one join.

    For HTML (`escape_defaults=True`) the defaults are escaped here once; the caller passes
    values already escaped (see `CompiledEmail.fill`).
    """

    __slots__ = ("literals", "literal_bytes", "slots", "fields", "source")

    def __init__(self, source: str, escape_defaults: bool = False):
        pieces = MARKER_RE.split(source)
        self.source = source
        self.literals: list[str] = pieces[0::3]
        self.slots: list[tuple[str, str]] = []
        for i in range(1, len(pieces), 3):
            default = bytes.fromhex(pieces[i + 1]).decode() if pieces[i + 1] else ""
            self.slots.append((pieces[i], html.escape(default) if escape_defaults else default))
        self.fields: frozenset[str] = frozenset(name for name, _ in self.slots)
        # UTF-8 once per campaign: per recipient only the few filled-in values are encoded.
        self.literal_bytes: list[bytes] = [literal.encode("utf-8", "replace") for literal in self.literals]

    def fill(self, values: Mapping[str, str]) -> str:
        literals = self.literals
        out = [literals[0]]
        append = out.append
        index = 1
        for name, default in self.slots:
            append(values.get(name) or default)
            append(literals[index])
            index += 1
        return "".join(out)

    def fill_bytes(self, values: Mapping[str, bytes]) -> bytes:
        """`fill`, straight to UTF-8: `values` are already encoded (defaults are encoded here)."""
        literals = self.literal_bytes
        out = [literals[0]]
        append = out.append
        index = 1
        for name, default in self.slots:
            append(values.get(name) or default.encode())
            append(literals[index])
            index += 1
        return b"".join(out)
