"""API tokens: a random secret shown once, stored only as its SHA-256, with a list of scopes.

A hash without a salt is enough here: the secret is 256 random bits, not a password, so
nothing can be guessed from its hash; and a plain hash lets verification be one indexed
lookup instead of a scan.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from cop_mail.db import utcnow
from cop_mail.models import ApiToken

SECRET_PREFIX = "cm_"  # noqa: S105 - a marker that tells a token apart, not a secret
MAX_SECRET_LENGTH = 200
# last_used_at is written at most this often, so reads do not each cost a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)

SCOPES: dict[str, str] = {
    "members:read": "Read members and search the directory",
    "members:write": "Create and update members, subscribe and unsubscribe them",
    "lists:read": "Read lists",
    "segments:read": "Read segments, count them and list their members",
    "campaigns:read": "Read campaigns and their sending statistics",
    "campaigns:write": "Create, schedule and pause campaigns",
    "messages:send": "Send a transactional message to one member",
    "stories:write": "Submit stories on a member's behalf",
}


class TokenError(ValueError):
    """A token that cannot be created as asked; the message says why."""


class TokenNotFound(LookupError):
    pass


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def clean_scopes(scopes: Iterable[str]) -> list[str]:
    wanted = sorted({str(scope).strip() for scope in scopes if str(scope).strip()})
    unknown = [scope for scope in wanted if scope not in SCOPES]
    if unknown:
        raise TokenError(f"unknown scope(s): {', '.join(unknown)}; known scopes: {', '.join(SCOPES)}")
    if not wanted:
        raise TokenError("choose at least one scope")
    return wanted


def create_token(session: Session, name: str, scopes: Iterable[str], created_by: str) -> tuple[ApiToken, str]:
    """Returns the token row and its secret; the secret is never stored and cannot be shown again."""
    name = " ".join(name.split())
    if not name:
        raise TokenError("give the token a name, e.g. the system that will use it")
    if "\x00" in name:
        raise TokenError("the name cannot contain NUL characters")
    if len(name) > 200:
        raise TokenError("the name can be at most 200 characters long")
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        name=name,
        prefix=secret[: len(SECRET_PREFIX) + 6],
        token_hash=hash_secret(secret),
        scopes=clean_scopes(scopes),
        created_by=created_by,
    )
    session.add(token)
    session.flush()
    return token, secret


def get_token(session: Session, token_id: int) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None:
        raise TokenNotFound(f"there is no API token {token_id}")
    return token


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.revoked_at.is_not(None), ApiToken.id.desc())))


def revoke_token(session: Session, token_id: int, now: datetime | None = None) -> bool:
    """Revoke at once and for good; False if it was revoked already."""
    token = get_token(session, token_id)
    if token.revoked_at is not None:
        return False
    token.revoked_at = now or utcnow()
    return True


def verify_token(session: Session, secret: str, now: datetime | None = None) -> ApiToken | None:
    """The live token with this secret, or None. Notes the use (at most once a minute); the caller commits."""
    if not secret.startswith(SECRET_PREFIX) or len(secret) > MAX_SECRET_LENGTH:
        return None
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_secret(secret)))
    if token is None or token.revoked_at is not None:
        return None
    now = now or utcnow()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        token.last_used_at = now
    return token


def has_scope(token: ApiToken, scope: str) -> bool:
    return scope in (token.scopes or [])
