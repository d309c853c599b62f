"""Which of our addresses a message was sent to, and what its signed token says.

`reply+<token>@domain` carries a member and the object they answer (an intro, a story prompt, a
campaign, a follow-up); `bounces+<token>@domain` carries the delivery; `stories@domain` takes story
submissions. A token that fails its signature or is too old is refused with the reason, so the
receiver can answer 550 at RCPT time or quarantine the message.
"""

from __future__ import annotations

import email.utils
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from cop_mail.settings import Settings
from cop_mail.tokens import TokenError, read_address_token

REPLY_TOKEN_KINDS = frozenset({"reply", "intro", "prompt", "campaign", "followup"})
BOUNCE_TOKEN_KINDS = frozenset({"bounce"})

_REASONS = {
    "tampered": "tampered token",
    "expired": "expired token",
    "malformed": "malformed token",
    "unknown kind": "unknown token kind",
    "invalid": "malformed token",
}


class RouteKind(StrEnum):
    REPLY = "reply"
    BOUNCE = "bounce"
    STORIES = "stories"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Route:
    kind: RouteKind
    address: str
    token_kind: str | None = None  # the kind signed into the token: intro, prompt, bounce, ...
    object_id: int | None = None
    member_id: int | None = None
    refusal: str | None = None  # plain words when refused: "tampered token", "unknown address", ...

    @property
    def accepted(self) -> bool:
        return self.refusal is None and self.kind is not RouteKind.UNKNOWN


@dataclass(frozen=True)
class AddressBook:
    """Our inbound address scheme: domains and local parts, from settings or tests."""

    secret: str
    domains: tuple[str, ...]
    stories_local_part: str = "stories"
    reply_prefix: str = "reply"
    bounce_prefix: str = "bounces"
    max_age_days: int | None = None
    bounce_max_age_days: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> AddressBook:
        values: dict[str, object] = {
            "secret": settings.secret_key,
            "domains": (settings.mail_domain,),
            "stories_local_part": settings.stories_local_part,
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


def route_recipient(address: str, book: AddressBook, now: float | None = None) -> Route:
    """Read one envelope or header recipient. Never raises."""
    try:
        local, domain = split_address(address)
    except ValueError:
        return Route(RouteKind.UNKNOWN, address.strip()[:320], refusal="not an email address")
    normalised = f"{local}@{domain}"
    if domain not in {d.strip().lower().rstrip(".") for d in book.domains}:
        return Route(RouteKind.UNKNOWN, normalised, refusal="not our domain")
    base, _, token = local.partition("+")
    if base == book.stories_local_part.lower():
        return Route(RouteKind.STORIES, normalised)
    if base == book.reply_prefix.lower() and token:
        return _tokened(RouteKind.REPLY, normalised, token, book, book.max_age_days, now)
    if base == book.bounce_prefix.lower() and token:
        age = book.bounce_max_age_days if book.bounce_max_age_days is not None else book.max_age_days
        return _tokened(RouteKind.BOUNCE, normalised, token, book, age, now)
    if base in (book.reply_prefix.lower(), book.bounce_prefix.lower()):
        return Route(RouteKind.UNKNOWN, normalised, refusal="missing token")
    return Route(RouteKind.UNKNOWN, normalised, refusal="unknown address")


def first_route(addresses: Iterable[str], book: AddressBook, now: float | None = None) -> Route | None:
    """The first accepted route among several recipients (envelope first, then headers)."""
    refused: Route | None = None
    for address in addresses:
        route = route_recipient(address, book, now)
        if route.accepted:
            return route
        if refused is None or (route.kind is not RouteKind.UNKNOWN and refused.kind is RouteKind.UNKNOWN):
            refused = route
    return refused


def split_address(address: str) -> tuple[str, str]:
    """(local part, domain), lower-cased, from a bare, bracketed, named or quoted address."""
    text = (address or "").strip()
    if "<" in text or '"' in text or " " in text:
        text = email.utils.parseaddr(text)[1] or text
    text = text.strip().strip("<>").strip()
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        raise ValueError("not an email address")
    local = local.strip()
    quoted = len(local) >= 2 and local[0] == local[-1] == '"'
    if quoted:  # a quoted local part may hold spaces; the rest of an address may not
        local = local[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    domain = domain.strip().rstrip(".").lower()
    if not local or not domain or any(ch.isspace() for ch in domain + ("" if quoted else local)):
        raise ValueError("not an email address")
    return local.lower(), domain


def _tokened(
    kind: RouteKind, address: str, token: str, book: AddressBook, max_age_days: int | None, now: float | None
) -> Route:
    if len(token) > 64:
        return Route(kind, address, refusal="malformed token")
    try:
        token_kind, object_id, member_id = read_address_token(book.secret, token, max_age_days, now)
    except TokenError as exc:
        return Route(kind, address, refusal=_REASONS.get(exc.reason, f"{exc.reason} token"))
    except Exception:  # whatever a hostile token does, it is refused, never raised
        return Route(kind, address, refusal="malformed token")
    allowed = REPLY_TOKEN_KINDS if kind is RouteKind.REPLY else BOUNCE_TOKEN_KINDS
    if token_kind not in allowed:
        return Route(kind, address, token_kind=token_kind, refusal="token made for another address")
    return Route(kind, address, token_kind=token_kind, object_id=object_id, member_id=member_id)
