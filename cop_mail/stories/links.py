"""Signed links a member uses for stories: submit, confirm an edit, withdraw, meet the storyteller.

The link is the key, so each kind has its own purpose (a withdraw link never confirms an edit)
and its own lifetime. Withdrawal links never expire: taking consent back must work from any old
email. A confirm link names the version of the edit it was made for, so an old link cannot
approve a newer edit the author has not seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cop_mail.settings import Settings
from cop_mail.tokens import TokenError, read_link, sign_link

SUBMIT = "story-submit"
CONFIRM = "story-confirm"
WITHDRAW = "story-withdraw"
MEET = "story-meet"

SUBMIT_MAX_AGE = 90 * 86400
CONFIRM_MAX_AGE = 30 * 86400
MEET_MAX_AGE = 365 * 86400
WITHDRAW_MAX_AGE: int | None = None


class StoryLinkError(Exception):
    """Forged, tampered, for another purpose or story, or expired (`expired` picks 410 over 400)."""

    def __init__(self, reason: str):
        self.reason = reason
        self.expired = reason == "expired"
        super().__init__(reason)


@dataclass(frozen=True)
class SubmitLink:
    member_id: int
    campaign_id: int | None


@dataclass(frozen=True)
class ConfirmLink:
    story_id: int
    member_id: int
    version: int


def submit_token(settings: Settings, member_id: int, campaign_id: int | None = None) -> str:
    payload: dict[str, Any] = {"m": member_id}
    if campaign_id is not None:
        payload["c"] = campaign_id
    return sign_link(settings.secret_key, SUBMIT, payload)


def confirm_token(settings: Settings, story_id: int, member_id: int, version: int) -> str:
    return sign_link(settings.secret_key, CONFIRM, {"s": story_id, "m": member_id, "v": version})


def withdraw_token(settings: Settings, story_id: int, member_id: int) -> str:
    return sign_link(settings.secret_key, WITHDRAW, {"s": story_id, "m": member_id})


def meet_token(settings: Settings, member_id: int) -> str:
    """One token per recipient; the story is in the path, so a roundup fills one value per member."""
    return sign_link(settings.secret_key, MEET, {"m": member_id})


def submit_url(settings: Settings, member_id: int, campaign_id: int | None = None) -> str:
    return f"{settings.public_url}/stories/submit/{submit_token(settings, member_id, campaign_id)}"


def confirm_url(settings: Settings, story_id: int, member_id: int, version: int) -> str:
    return f"{settings.public_url}/stories/{story_id}/confirm/{confirm_token(settings, story_id, member_id, version)}"


def withdraw_url(settings: Settings, story_id: int, member_id: int) -> str:
    return f"{settings.public_url}/stories/{story_id}/withdraw/{withdraw_token(settings, story_id, member_id)}"


def meet_url(settings: Settings, story_id: int, member_id: int) -> str:
    return meet_url_for_token(settings, story_id, meet_token(settings, member_id))


def meet_url_for_token(settings: Settings, story_id: int, token: str) -> str:
    return f"{settings.public_url}/stories/{story_id}/meet/{token}"


def _read(settings: Settings, purpose: str, token: str, max_age: int | None) -> dict[str, Any]:
    if not token or len(token) > 1000:
        raise StoryLinkError("invalid")
    try:
        payload = read_link(settings.secret_key, purpose, token, max_age=max_age)
    except TokenError as exc:
        raise StoryLinkError(exc.reason) from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("m"), int):
        raise StoryLinkError("invalid")
    return payload


def _int(payload: dict[str, Any], key: str) -> int:
    value = payload.get(key)
    if not isinstance(value, int):
        raise StoryLinkError("invalid")
    return value


def read_submit_token(settings: Settings, token: str) -> SubmitLink:
    payload = _read(settings, SUBMIT, token, SUBMIT_MAX_AGE)
    campaign_id = payload.get("c")
    if campaign_id is not None and not isinstance(campaign_id, int):
        raise StoryLinkError("invalid")
    return SubmitLink(payload["m"], campaign_id)


def read_confirm_token(settings: Settings, token: str, story_id: int) -> ConfirmLink:
    payload = _read(settings, CONFIRM, token, CONFIRM_MAX_AGE)
    if _int(payload, "s") != story_id:
        raise StoryLinkError("invalid")
    return ConfirmLink(story_id, payload["m"], _int(payload, "v"))


def read_withdraw_token(settings: Settings, token: str, story_id: int) -> int:
    """The author's member id."""
    payload = _read(settings, WITHDRAW, token, WITHDRAW_MAX_AGE)
    if _int(payload, "s") != story_id:
        raise StoryLinkError("invalid")
    return int(payload["m"])


def read_meet_token(settings: Settings, token: str) -> int:
    """The member who asks to be introduced."""
    return int(_read(settings, MEET, token, MEET_MAX_AGE)["m"])
