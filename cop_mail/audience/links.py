"""Signed member links: confirm a signup, open the preference centre, unsubscribe.

No passwords: the link is the key. Each kind of link has its own purpose salt, so
an unsubscribe token never opens the preference centre, and its own lifetime.
Payloads are short dicts of ids so links stay short.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cop_mail.models import Stream
from cop_mail.settings import Settings
from cop_mail.tokens import TokenError, read_link, sign_link

CONFIRM_MAX_AGE = 7 * 86400
# Preference links sit in every email; a year-old newsletter still opens the centre.
PREFERENCES_MAX_AGE = 365 * 86400
# A link sent on request from the "manage by email" form: short-lived, it was not in a newsletter.
MANAGE_MAX_AGE = 7 * 86400
# Unsubscribing must keep working from any old email (RFC 8058 expects it), so no expiry.
UNSUBSCRIBE_MAX_AGE: int | None = None

ALL_STREAMS = "all"
# Streams a member can leave; transactional mail is what they asked for by acting.
UNSUBSCRIBABLE = tuple(s for s in Stream if s is not Stream.TRANSACTIONAL)

_CONFIRM = "confirm-subscription"
_PREFERENCES = "preferences"
_UNSUBSCRIBE = "unsubscribe"


class LinkError(Exception):
    """A link that is forged, tampered with, expired, or for another purpose.

    `expired` tells the page to say "this link is too old" (410) rather than "not valid" (400).
    """

    def __init__(self, reason: str):
        self.reason = reason
        self.expired = reason == "expired"
        super().__init__(reason)


@dataclass(frozen=True)
class ConfirmLink:
    member_id: int
    list_id: int
    request_id: int  # the ConsentEvent that recorded the signup request


@dataclass(frozen=True)
class UnsubscribeLink:
    member_id: int
    stream: str  # one of UNSUBSCRIBABLE, or ALL_STREAMS
    campaign_id: int | None


def confirm_token(settings: Settings, member_id: int, list_id: int, request_id: int) -> str:
    return sign_link(settings.secret_key, _CONFIRM, {"m": member_id, "l": list_id, "r": request_id})


def preferences_token(settings: Settings, member_id: int) -> str:
    return sign_link(settings.secret_key, _PREFERENCES, {"m": member_id})


def manage_token(settings: Settings, member_id: int) -> str:
    """A preference-centre token that expires after MANAGE_MAX_AGE instead of a year."""
    return sign_link(settings.secret_key, _PREFERENCES, {"m": member_id, "x": MANAGE_MAX_AGE})


def unsubscribe_token(
    settings: Settings, member_id: int, stream: Stream | str = ALL_STREAMS, campaign_id: int | None = None
) -> str:
    stream = str(stream)
    if stream != ALL_STREAMS and stream not in UNSUBSCRIBABLE:
        raise ValueError(f"no unsubscribe link for the {stream!r} stream")
    payload: dict[str, Any] = {"m": member_id, "s": stream}
    if campaign_id is not None:
        payload["c"] = campaign_id
    return sign_link(settings.secret_key, _UNSUBSCRIBE, payload)


def confirm_url(settings: Settings, member_id: int, list_id: int, request_id: int) -> str:
    return f"{settings.public_url}/confirm/{confirm_token(settings, member_id, list_id, request_id)}"


def preferences_url(settings: Settings, member_id: int) -> str:
    return f"{settings.public_url}/preferences/{preferences_token(settings, member_id)}"


def manage_url(settings: Settings, member_id: int) -> str:
    return f"{settings.public_url}/preferences/{manage_token(settings, member_id)}"


def unsubscribe_url(
    settings: Settings, member_id: int, stream: Stream | str = ALL_STREAMS, campaign_id: int | None = None
) -> str:
    """The List-Unsubscribe URL: a GET shows a confirm page, an RFC 8058 one-click POST unsubscribes."""
    return f"{settings.public_url}/unsubscribe/{unsubscribe_token(settings, member_id, stream, campaign_id)}"


def unsubscribe_all_url(settings: Settings, member_id: int, campaign_id: int | None = None) -> str:
    token = unsubscribe_token(settings, member_id, ALL_STREAMS, campaign_id)
    return f"{settings.public_url}/unsubscribe/{token}/all"


def member_links(
    settings: Settings, member_id: int, stream: Stream | str = ALL_STREAMS, campaign_id: int | None = None
) -> dict[str, str]:
    """The links every email's footer carries, by the names the email templates use."""
    if str(stream) == str(Stream.TRANSACTIONAL):
        stream = ALL_STREAMS
    return {
        "preferences_url": preferences_url(settings, member_id),
        "unsubscribe_url": unsubscribe_url(settings, member_id, stream, campaign_id),
        "unsubscribe_all_url": unsubscribe_all_url(settings, member_id, campaign_id),
    }


def _read(settings: Settings, purpose: str, token: str, max_age: int | None) -> dict[str, Any]:
    if not token or len(token) > 1000:
        raise LinkError("invalid")
    try:
        payload = read_link(settings.secret_key, purpose, token, max_age=max_age)
    except TokenError as exc:
        raise LinkError(exc.reason) from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("m"), int):
        raise LinkError("invalid")
    return payload


def read_confirm_token(settings: Settings, token: str) -> ConfirmLink:
    payload = _read(settings, _CONFIRM, token, CONFIRM_MAX_AGE)
    if not isinstance(payload.get("l"), int) or not isinstance(payload.get("r"), int):
        raise LinkError("invalid")
    return ConfirmLink(payload["m"], payload["l"], payload["r"])


def read_preferences_token(settings: Settings, token: str) -> int:
    payload = _read(settings, _PREFERENCES, token, PREFERENCES_MAX_AGE)
    shorter = payload.get("x")
    if shorter is not None:
        if not isinstance(shorter, int) or shorter <= 0:
            raise LinkError("invalid")
        # Checked again with the lifetime the token itself carries (signed, so it cannot be raised).
        _read(settings, _PREFERENCES, token, min(shorter, PREFERENCES_MAX_AGE))
    return int(payload["m"])


def read_unsubscribe_token(settings: Settings, token: str) -> UnsubscribeLink:
    payload = _read(settings, _UNSUBSCRIBE, token, UNSUBSCRIBE_MAX_AGE)
    stream = payload.get("s")
    campaign_id = payload.get("c")
    if stream != ALL_STREAMS and stream not in UNSUBSCRIBABLE:
        raise LinkError("invalid")
    if campaign_id is not None and not isinstance(campaign_id, int):
        raise LinkError("invalid")
    return UnsubscribeLink(payload["m"], str(stream), campaign_id)
