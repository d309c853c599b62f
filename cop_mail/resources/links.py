"""The signed link to the members' resource page (search and suggest), one per member."""

from __future__ import annotations

from cop_mail.settings import Settings
from cop_mail.tokens import TokenError, read_link, sign_link

PURPOSE = "resources"
MAX_AGE = 365 * 86400


class ResourceLinkError(Exception):
    def __init__(self, reason: str):
        self.reason = reason
        self.expired = reason == "expired"
        super().__init__(reason)


def resources_token(settings: Settings, member_id: int) -> str:
    return sign_link(settings.secret_key, PURPOSE, {"m": member_id})


def resources_url(settings: Settings, member_id: int) -> str:
    return f"{settings.public_url}/resources/{resources_token(settings, member_id)}"


def read_resources_token(settings: Settings, token: str) -> int:
    if not token or len(token) > 1000:
        raise ResourceLinkError("invalid")
    try:
        payload = read_link(settings.secret_key, PURPOSE, token, max_age=MAX_AGE)
    except TokenError as exc:
        raise ResourceLinkError(exc.reason) from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("m"), int):
        raise ResourceLinkError("invalid")
    return int(payload["m"])
