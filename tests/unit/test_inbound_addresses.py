from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cop_mail.inbound.addresses import AddressBook, Route, RouteKind, first_route, route_recipient, split_address
from cop_mail.settings import Settings
from cop_mail.tokens import make_address_token

SECRET = "address-secret-" + "z" * 32
NOW = 1_767_225_600.0
DAY = 86_400
BOOK = AddressBook(secret=SECRET, domains=("example.org",), max_age_days=90)
INTRO = make_address_token(SECRET, "intro", 41, 7, now=NOW)
BOUNCE = make_address_token(SECRET, "bounce", 9001, 7, now=NOW)


def route(address: str, book: AddressBook = BOOK, now: float = NOW + DAY) -> Route:
    return route_recipient(address, book, now)


def test_reply_token_routes_to_member_and_object():
    found = route(f"reply+{INTRO}@example.org")
    assert found == Route(RouteKind.REPLY, f"reply+{INTRO}@example.org", "intro", 41, 7)
    assert found.accepted


def test_bounce_token_routes_to_delivery():
    found = route(f"bounces+{BOUNCE}@example.org")
    assert (found.kind, found.token_kind, found.object_id, found.member_id) == (RouteKind.BOUNCE, "bounce", 9001, 7)
    assert found.accepted


@pytest.mark.parametrize(
    "address",
    [
        f"Reply+{INTRO.upper()}@EXAMPLE.ORG",
        f"<reply+{INTRO}@example.org>",
        f"Ana via Garden <reply+{INTRO}@Example.Org>",
        f'"reply+{INTRO}"@example.org',
        f'"Garden, Network" <reply+{INTRO}@example.org.>',
        f"  reply+{INTRO}@example.org  ",
    ],
)
def test_spellings_of_the_same_address(address: str):
    found = route(address)
    assert found.accepted and (found.object_id, found.member_id) == (41, 7)


def _flip(token: str, index: int) -> str:
    return token[:index] + ("b" if token[index] != "b" else "c") + token[index + 1 :]


@pytest.mark.parametrize("index", [0, 5, 20, 43])
def test_tampered_token_is_refused(index: int):
    found = route(f"reply+{_flip(INTRO, index)}@example.org")
    assert not found.accepted
    assert found.refusal in ("tampered token", "malformed token", "unknown token kind")
    assert found.member_id is None


def test_signature_from_another_secret_is_tampered():
    forged = make_address_token("another secret", "intro", 41, 7, now=NOW)
    assert route(f"reply+{forged}@example.org").refusal == "tampered token"


def test_expired_token_is_refused():
    assert route(f"reply+{INTRO}@example.org", now=NOW + 91 * DAY).refusal == "expired token"
    assert route(f"reply+{INTRO}@example.org", now=NOW + 89 * DAY).accepted


def test_bounce_tokens_can_live_longer():
    book = AddressBook(secret=SECRET, domains=("example.org",), max_age_days=30, bounce_max_age_days=365)
    assert route(f"bounces+{BOUNCE}@example.org", book, NOW + 200 * DAY).accepted
    assert route(f"reply+{INTRO}@example.org", book, NOW + 200 * DAY).refusal == "expired token"


@pytest.mark.parametrize(
    ("address", "refusal"),
    [
        ("reply+zzz@example.org", "malformed token"),
        ("reply+" + "a" * 100 + "@example.org", "malformed token"),
        (f"reply+{BOUNCE}@example.org", "token made for another address"),
        (f"bounces+{INTRO}@example.org", "token made for another address"),
        ("reply@example.org", "missing token"),
        ("bounces+@example.org", "missing token"),
        ("hello@example.org", "unknown address"),
        (f"reply+{INTRO}@example.net", "not our domain"),
        (f"reply+{INTRO}@sub.example.org", "not our domain"),
        ("not an address", "not an email address"),
        ("", "not an email address"),
        ("@example.org", "not an email address"),
    ],
)
def test_refusals_say_why(address: str, refusal: str):
    found = route(address)
    assert found.refusal == refusal and not found.accepted


@pytest.mark.parametrize("address", ["stories@example.org", "STORIES@Example.ORG", "stories+garden@example.org"])
def test_stories_address(address: str):
    found = route(address)
    assert found.kind is RouteKind.STORIES and found.accepted and found.member_id is None


def test_stories_local_part_and_domains_are_configurable():
    book = AddressBook(secret=SECRET, domains=("example.org", "Mail.Example.Org"), stories_local_part="Tales")
    assert route("tales@mail.example.org", book).kind is RouteKind.STORIES
    assert route("stories@example.org", book).refusal == "unknown address"


def test_address_book_from_settings():
    settings = Settings(
        instance_path=Path("/nonexistent"),
        database_url="sqlite://",
        secret_key=SECRET,
        mail_domain="Lists.Example.org",
        stories_local_part="cuentos",
    )
    book = AddressBook.from_settings(settings, max_age_days=90)
    assert route(f"reply+{INTRO}@lists.example.org", book).accepted
    assert route("cuentos@lists.example.org", book).kind is RouteKind.STORIES


def test_first_route_prefers_an_accepted_recipient():
    found = first_route(["someone@example.net", "hello@example.org", f"reply+{INTRO}@example.org"], BOOK, NOW)
    assert found is not None and found.accepted and found.kind is RouteKind.REPLY
    refused = first_route(["someone@example.net", f"reply+{_flip(INTRO, 20)}@example.org"], BOOK, NOW)
    assert refused is not None and refused.kind is RouteKind.REPLY and refused.refusal
    assert first_route([], BOOK, NOW) is None


def test_split_address_handles_quoting():
    assert split_address('"a b"@Example.org') == ("a b", "example.org")
    assert split_address("Name <x+y@EXAMPLE.org>") == ("x+y", "example.org")
    with pytest.raises(ValueError):
        split_address("nobody")


@settings(max_examples=300, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=120))
def test_routing_never_raises_and_random_text_is_never_accepted_as_a_token(text: str):
    for address in (text, f"reply+{text}@example.org", f"bounces+{text}@example.org"):
        found = route(address)
        assert isinstance(found, Route)
        assert not (found.kind in (RouteKind.REPLY, RouteKind.BOUNCE) and found.accepted)
