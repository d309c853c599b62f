"""Signed tokens for links and addresses.

Every token that reaches a member (a link in an email, a reply address) is
signed with the instance secret and a purpose-specific salt, so a token made
for one purpose never works for another. Address tokens are short: they live
in the local part of an email address (at most 64 characters).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import time
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer


class TokenError(Exception):
    """A token that is malformed, tampered with, expired or made for another purpose."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


def sign_link(secret: str, purpose: str, payload: Any) -> str:
    """A URL-safe token for links (preferences, unsubscribe, confirm, accept)."""
    return URLSafeTimedSerializer(secret, salt=f"cop-mail:{purpose}").dumps(payload)


def read_link(secret: str, purpose: str, token: str, max_age: int | None = None) -> Any:
    serializer = URLSafeTimedSerializer(secret, salt=f"cop-mail:{purpose}")
    try:
        return serializer.loads(token, max_age=max_age)
    except SignatureExpired as exc:
        raise TokenError("expired") from exc
    except BadSignature as exc:
        raise TokenError("invalid") from exc


# Address tokens: kind (1 byte) | object id (8 bytes) | member id (8 bytes)
# | issued day (2 bytes) | HMAC-SHA256 truncated to 8 bytes, base32 without padding.
# 27 bytes -> 44 characters: fits a local part with room for "bounces+".
_ADDRESS_LAYOUT = struct.Struct(">BQQH")
_MAC_BYTES = 8
_EPOCH_DAY = 20_000  # days since 1970; keeps the day counter in two bytes until 2149

ADDRESS_KINDS = {"reply": 1, "bounce": 2, "intro": 3, "prompt": 4, "campaign": 5, "followup": 6}
_KIND_NAMES = {number: name for name, number in ADDRESS_KINDS.items()}


def _mac(secret: str, body: bytes) -> bytes:
    key = hashlib.sha256(f"cop-mail:address:{secret}".encode()).digest()
    return hmac.new(key, body, hashlib.sha256).digest()[:_MAC_BYTES]


def make_address_token(secret: str, kind: str, object_id: int, member_id: int, now: float | None = None) -> str:
    day = int((now if now is not None else time.time()) // 86400) - _EPOCH_DAY
    body = _ADDRESS_LAYOUT.pack(ADDRESS_KINDS[kind], object_id, member_id, max(day, 0))
    raw = body + _mac(secret, body)
    return base64.b32encode(raw).decode().rstrip("=").lower()


def read_address_token(
    secret: str, token: str, max_age_days: int | None = None, now: float | None = None
) -> tuple[str, int, int]:
    """Return (kind, object_id, member_id) or raise TokenError with the reason."""
    text = token.strip().upper()
    try:
        raw = base64.b32decode(text + "=" * (-len(text) % 8))
    except (ValueError, base64.binascii.Error) as exc:  # type: ignore[attr-defined]
        raise TokenError("malformed") from exc
    # Only the canonical spelling is valid: unused trailing bits could otherwise vary.
    if len(raw) != _ADDRESS_LAYOUT.size + _MAC_BYTES or base64.b32encode(raw).decode().rstrip("=") != text:
        raise TokenError("malformed")
    body, mac = raw[: _ADDRESS_LAYOUT.size], raw[_ADDRESS_LAYOUT.size :]
    if not hmac.compare_digest(mac, _mac(secret, body)):
        raise TokenError("tampered")
    kind_number, object_id, member_id, day = _ADDRESS_LAYOUT.unpack(body)
    if kind_number not in _KIND_NAMES:
        raise TokenError("unknown kind")
    if max_age_days is not None:
        today = int((now if now is not None else time.time()) // 86400) - _EPOCH_DAY
        if today - day > max_age_days:
            raise TokenError("expired")
    return _KIND_NAMES[kind_number], object_id, member_id


def address_hash(secret_free_email: str) -> str:
    """Stable hash of a normalised address, for the suppression list (kept after erasure)."""
    return hashlib.sha256(secret_free_email.strip().lower().encode()).hexdigest()
