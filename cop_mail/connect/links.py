"""Signed links a member uses to answer an introduction: the invitation page and the follow-up.

One token per member and introduction (purpose "intro-answer"); the page it opens only shows
buttons, and only a POST from those buttons changes anything, because link scanners follow GETs.
"""

from __future__ import annotations

from dataclasses import dataclass

from cop_mail.settings import Settings
from cop_mail.tokens import TokenError, read_link, sign_link

PURPOSE = "intro-answer"
# Long enough for a follow-up weeks after the joint email; an old token says "expired" (410).
MAX_AGE = 120 * 86400


class IntroLinkError(Exception):
    """Forged, tampered, for another purpose, or expired (`expired` picks 410 over 400)."""

    def __init__(self, reason: str):
        self.reason = reason
        self.expired = reason == "expired"
        super().__init__(reason)


@dataclass(frozen=True)
class IntroLink:
    intro_id: int
    member_id: int


def answer_token(settings: Settings, intro_id: int, member_id: int) -> str:
    return sign_link(settings.secret_key, PURPOSE, {"i": intro_id, "m": member_id})


def answer_url(settings: Settings, intro_id: int, member_id: int, answer: str | None = None) -> str:
    url = f"{settings.public_url}/intro/{answer_token(settings, intro_id, member_id)}"
    return f"{url}?answer={answer}" if answer else url


def followup_url(settings: Settings, intro_id: int, member_id: int) -> str:
    return f"{settings.public_url}/intro/{answer_token(settings, intro_id, member_id)}/followup"


def read_answer_token(settings: Settings, token: str, max_age: int = MAX_AGE) -> IntroLink:
    if not token or len(token) > 500:
        raise IntroLinkError("invalid")
    try:
        payload = read_link(settings.secret_key, PURPOSE, token, max_age=max_age)
    except TokenError as exc:
        raise IntroLinkError(exc.reason) from exc
    if not isinstance(payload, dict) or not all(isinstance(payload.get(k), int) for k in ("i", "m")):
        raise IntroLinkError("invalid")
    return IntroLink(intro_id=payload["i"], member_id=payload["m"])
