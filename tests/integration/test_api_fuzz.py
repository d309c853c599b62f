"""Schemathesis fuzzes every operation of the app's own OpenAPI document through the WSGI app:
schema-conforming and deliberately broken requests, with a token holding every scope.

No response may be a 500, and every response must be documented: its status code, content
type and body schema. Bounded (a few examples per operation and mode, derandomised so a
run is repeatable; set COP_MAIL_FUZZ_EXAMPLES for a longer run).
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from cop_mail.integrations import tokens
from cop_mail.models import Campaign, MailingList, Segment
from tests.conftest import add_member

EXAMPLES = int(os.environ.get("COP_MAIL_FUZZ_EXAMPLES", "10"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@schemathesis.serializer("message/rfc822")
def raw_mail(ctx: Any, value: Any) -> bytes:
    """Raw mail for the inbound endpoint: the generated text as the message's bytes."""
    return value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")


@pytest.fixture
def seeded(db) -> None:
    """A little of everything, so generated small ids often name real rows."""
    everyone = MailingList(name="Everyone", slug="everyone", opt_in="single", public=True)
    circle = MailingList(name="Circle", slug="circle", opt_in="double", public=True)
    db.add_all([everyone, circle])
    for name in ("Ana Lima", "Bo Chen", "Cy Diaz"):
        add_member(db, name, values=("Care",), practices=("Gardening",))
    db.add(Segment(name="Everyone", rules={"match": "all", "rules": []}))
    db.add(
        Campaign(
            name="Autumn",
            kind="newsletter",
            subject="Autumn",
            content={"template": "message", "heading": "Autumn", "body": "Hello", "button": None},
            list_ids=[1],
        )
    )
    db.commit()


# Ids of rows `seeded` makes, so that generated requests also get past the 404s.
SEEDED_PATH = {"member_id": 1, "campaign_id": 1, "segment_id": 1, "slug": "everyone"}
MESSAGE_CONTENT = {"template": "message", "heading": "Hello", "body": "A *short* note.", "button": None}


def steer(case: Any, pick: int) -> Any:
    """Point some of a generated body's ids at seeded rows (pick 0 leaves the case as generated)."""
    body = case.body
    if pick and case.operation.path == "/api/inbound/raw" and isinstance(body, str):
        case.body = f"From: ana@example.org\r\nTo: reply@cop-mail.test\r\nSubject: {body[:40]!r}\r\n\r\n{body}"
        return case
    if pick == 0 or not isinstance(body, dict):
        return case
    for key in ("member_id", "list_id", "practice_id"):
        if key in body:
            body[key] = pick
    for key in ("list_ids", "segment_ids", "value_ids", "practice_ids"):
        if key in body:
            body[key] = [1]
    if case.operation.path == "/api/messages":
        body["kind"] = "manage_link"
    if case.operation.path == "/api/campaigns" and pick == 2:
        body["content"] = dict(MESSAGE_CONTENT)
    if case.operation.path.endswith("/schedule") and pick < 3:
        body.update(send_at="2099-12-01T09:00", timezone="Europe/Lisbon" if pick == 2 else "UTC")
    return case


def fuzz(operation: Any, mode: GenerationMode, secret: str, seeded_ids: bool) -> int:
    """Run one operation in one mode; returns how many requests were made."""
    fixed = {name: SEEDED_PATH[name] for name in SEEDED_PATH if "{" + name + "}" in operation.path}
    strategy = operation.as_strategy(
        generation_mode=mode,
        headers={"Authorization": f"Bearer {secret}"},
        path_parameters=fixed if seeded_ids else None,
    )
    if seeded_ids:
        strategy = st.tuples(strategy, st.integers(0, 3)).map(lambda pair: steer(*pair))
    calls = [0]

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def call(case: Any) -> None:
        calls[0] += 1
        case.call_and_validate(checks=CHECKS)

    try:
        call()
    except Unsatisfiable:
        # An operation without parameters or body (e.g. GET /api/) has nothing to break.
        if mode is not GenerationMode.NEGATIVE:
            raise
    return calls[0]


# Endpoints under /api/ that other blueprints serve (public signup, inbound mail), fuzzed apart.
OTHER_ENDPOINTS = {"/api/signup/{slug}", "/api/inbound/raw"}


def fuzz_all(make_app: Any, make_settings: Any, db: Any, mine: bool) -> None:
    _, secret = tokens.create_token(db, "fuzzer", tokens.SCOPES, "owner@example.org")
    db.commit()
    # The inbound endpoint takes the same bearer secret here, so its requests get past the 401.
    app = make_app(make_settings(inbound_webhook_secret=secret), API_REQUESTS_PER_MINUTE=1_000_000)
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    operations = [
        result.ok() for result in schema.get_all_operations() if (result.ok().path in OTHER_ENDPOINTS) is not mine
    ]
    assert len(operations) >= (18 if mine else 2)
    calls = {
        (operation.label, mode, seeded_ids): fuzz(operation, mode, secret, seeded_ids)
        for operation in operations
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        for seeded_ids in (False, True)
    }
    assert all(count > 0 for (_, mode, _), count in calls.items() if mode is GenerationMode.POSITIVE), calls
    assert sum(calls.values()) > len(operations) * EXAMPLES * 2


def test_fuzzing_the_api_finds_no_server_errors(make_app, make_settings, db, seeded):
    fuzz_all(make_app, make_settings, db, mine=True)


def test_fuzzing_signup_and_inbound_endpoints_finds_no_server_errors(make_app, make_settings, db, seeded):
    fuzz_all(make_app, make_settings, db, mine=False)
