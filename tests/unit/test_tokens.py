from __future__ import annotations

import time

import pytest

from cop_mail.tokens import TokenError, make_address_token, read_address_token, read_link, sign_link

SECRET = "s" * 48


def test_link_round_trip_and_purpose_separation():
    token = sign_link(SECRET, "unsubscribe", {"m": 42, "s": "newsletters"})
    assert read_link(SECRET, "unsubscribe", token) == {"m": 42, "s": "newsletters"}
    with pytest.raises(TokenError, match="invalid"):
        read_link(SECRET, "preferences", token)
    with pytest.raises(TokenError, match="invalid"):
        read_link("another secret", "unsubscribe", token)


def test_tampered_link_is_refused():
    token = sign_link(SECRET, "confirm", 7)
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(TokenError):
        read_link(SECRET, "confirm", tampered)


def test_expired_link_is_refused(monkeypatch: pytest.MonkeyPatch):
    token = sign_link(SECRET, "confirm", 7)
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 8 * 86400)
    with pytest.raises(TokenError, match="expired"):
        read_link(SECRET, "confirm", token, max_age=7 * 86400)


def test_address_token_round_trip_is_short_and_lowercase():
    token = make_address_token(SECRET, "reply", 123456, 987654)
    assert token == token.lower() and len(token) <= 48
    assert len(f"bounces+{token}") <= 64  # RFC 5321 local-part limit
    assert read_address_token(SECRET, token) == ("reply", 123456, 987654)
    assert read_address_token(SECRET, token.upper()) == ("reply", 123456, 987654)


@pytest.mark.parametrize("position", [0, 5, 20, 43])
def test_any_changed_character_is_detected(position: int):
    token = make_address_token(SECRET, "bounce", 5, 6)
    swapped = "a" if token[position] != "a" else "b"
    forged = token[:position] + swapped + token[position + 1 :]
    with pytest.raises(TokenError):
        read_address_token(SECRET, forged)


def test_address_token_from_another_instance_is_tampered():
    token = make_address_token("other secret", "reply", 1, 2)
    with pytest.raises(TokenError, match="tampered"):
        read_address_token(SECRET, token)


def test_address_token_expiry():
    issued = time.time() - 40 * 86400
    token = make_address_token(SECRET, "intro", 1, 2, now=issued)
    assert read_address_token(SECRET, token, max_age_days=60)[0] == "intro"
    with pytest.raises(TokenError, match="expired"):
        read_address_token(SECRET, token, max_age_days=30)


@pytest.mark.parametrize("garbage", ["", "!!!", "abc", "a" * 200, "0000"])
def test_malformed_address_tokens(garbage: str):
    with pytest.raises(TokenError):
        read_address_token(SECRET, garbage)
