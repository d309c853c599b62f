"""The JSON API end to end through the Flask app: tokens and scopes, the one error shape, and
each route against the real services on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from rq import Queue
from sqlalchemy import select

from cop_mail.audience.suppression import SuppressionReason, suppress
from cop_mail.db import utcnow
from cop_mail.integrations import tokens
from cop_mail.models import (
    ApiToken,
    AuditEvent,
    Campaign,
    ConsentEvent,
    MailingList,
    Member,
    MemberStatus,
    Practice,
    Segment,
    Story,
    Value,
)
from cop_mail.queues import HIGH
from cop_mail.sending import campaigns as campaign_service
from tests.conftest import add_member

ALL_SCOPES = tuple(tokens.SCOPES)


class Api:
    """The test client with a bearer token."""

    def __init__(self, client: Any, secret: str):
        self.client, self.secret = client, secret

    def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.secret}", **kwargs.pop("headers", {})}
        if body is not None:
            kwargs["data"] = json.dumps(body)
            kwargs.setdefault("content_type", "application/json")
        return self.client.open(path, method=method, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.call("POST", path, body, **kwargs)

    def patch(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.call("PATCH", path, body, **kwargs)


@pytest.fixture
def settings(make_settings, redis_conn, engine, smtp_sink):
    """The app sends transactional mail to this test's SMTP sink."""
    return make_settings(smtp_port=smtp_sink.port)



@pytest.fixture
def make_api(client, db):
    def make(*scopes: str, name: str = "website") -> Api:
        _, secret = tokens.create_token(db, name, scopes or ALL_SCOPES, "owner@example.org")
        db.commit()
        return Api(client, secret)

    return make


@pytest.fixture
def api(make_api) -> Api:
    return make_api()


def error_of(response: Any, status: int) -> dict[str, Any]:
    """Asserts the one error shape and returns the error object."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    data = response.get_json()
    assert set(data) == {"error"}
    assert data["error"]["code"] == status
    assert isinstance(data["error"]["message"], str) and data["error"]["message"]
    return data["error"]


def make_list(db, name: str = "Practitioners", opt_in: str = "single") -> MailingList:
    mailing_list = MailingList(name=name, slug=name.lower().replace(" ", "-"), opt_in=opt_in, public=True)
    db.add(mailing_list)
    db.commit()
    return mailing_list


# --- tokens, scopes and the error shape -----------------------------------------------------------


def test_requests_without_a_valid_token_are_refused(client, db, make_api):
    api = make_api("members:read")
    member = add_member(db, "Ana Lima")
    db.commit()
    error = error_of(client.get(f"/api/members/{member.id}"), 401)
    assert "Bearer" in error["message"]
    assert client.get(f"/api/members/{member.id}").headers["WWW-Authenticate"].startswith("Bearer")
    error_of(client.get("/api/members", headers={"Authorization": "Bearer cm_not-a-token"}), 401)
    error_of(client.get("/api/members", headers={"Authorization": f"Basic {api.secret}"}), 401)
    assert api.get(f"/api/members/{member.id}").get_json()["email"] == "ana.lima@example.org"


def test_a_revoked_token_stops_working_at_once(db, make_api):
    api = make_api("members:read")
    assert api.get("/api/members").status_code == 200
    token = db.scalar(select(ApiToken))
    assert token.last_used_at is not None
    tokens.revoke_token(db, token.id)
    db.commit()
    error_of(api.get("/api/members"), 401)


def test_a_token_lacking_the_scope_gets_403_naming_it(db, make_api):
    reader = make_api("members:read")
    error = error_of(reader.post("/api/members", {"email": "new@example.org"}), 403)
    assert "members:write" in error["message"]
    both = make_api("segments:read", name="segments only")
    db.add(Segment(name="Everyone", rules={"match": "all", "rules": []}))
    db.commit()
    segment_id = db.scalar(select(Segment.id))
    assert both.get(f"/api/segments/{segment_id}/count").status_code == 200
    assert "members:read" in error_of(both.get(f"/api/segments/{segment_id}/members"), 403)["message"]


def test_only_the_hash_of_a_secret_is_stored(db):
    token, secret = tokens.create_token(db, "crm", ["members:read"], "owner@example.org")
    db.commit()
    row = db.scalar(select(ApiToken).where(ApiToken.id == token.id))
    stored = " ".join(str(getattr(row, column.key)) for column in ApiToken.__table__.columns)
    assert secret not in stored
    assert row.token_hash == tokens.hash_secret(secret)
    assert tokens.verify_token(db, secret).id == token.id
    with pytest.raises(tokens.TokenError, match="unknown scope"):
        tokens.create_token(db, "crm", ["members:delete"], "owner@example.org")
    with pytest.raises(tokens.TokenError, match="at least one scope"):
        tokens.create_token(db, "crm", [], "owner@example.org")


def test_malformed_json_wrong_type_and_non_objects(api):
    error_of(api.post("/api/members", data="{not json", content_type="application/json"), 400)
    error_of(api.post("/api/members", data='["a list"]', content_type="application/json"), 400)
    error_of(api.post("/api/members", data='{"email": NaN}', content_type="application/json"), 400)
    error_of(api.post("/api/members", data=b"\xff\xfe\x00{", content_type="application/json"), 400)
    error_of(api.post("/api/members", data="[" * 100_000, content_type="application/json"), 400)
    error = error_of(api.post("/api/members", data="email=a@example.org", content_type="text/plain"), 415)
    assert "application/json" in error["message"]
    error_of(api.post("/api/members", data="email=a@example.org"), 415)


def test_huge_bodies_are_refused_with_413(api):
    huge = json.dumps({"email": "a@example.org", "name": "x" * (1024 * 1024)})
    error = error_of(api.post("/api/members", data=huge, content_type="application/json"), 413)
    assert "1024 KB" in error["message"]


def test_unknown_fields_are_named_and_every_problem_is_listed(api):
    error = error_of(api.post("/api/members", {"email": "a@example.org", "colour": "red", "nmae": "Ana"}), 422)
    assert error["fields"] == {"colour": "is not a known field", "nmae": "is not a known field"}
    error = error_of(api.post("/api/members", {"name": 5, "value_ids": [1, "two", True], "tags": [""]}), 422)
    assert error["fields"] == {
        "email": "is required",
        "name": "must be a string",
        "value_ids[1]": "must be a whole number",
        "value_ids[2]": "must be a whole number",
        "tags[0]": "cannot be empty",
    }
    error = error_of(api.post("/api/members", {"email": "a\u0000@example.org"}), 422)
    assert error["fields"] == {"email": "cannot contain NUL characters"}
    error = error_of(api.get("/api/members?limit=1000&colour=red&list_id=x"), 422)
    assert error["fields"] == {
        "colour": "is not a known parameter",
        "list_id": "must be a whole number",
        "limit": "must be at most 200",
    }


def test_404_405_and_429_have_the_same_shape(make_app, db, make_api):
    api = make_api("members:read")
    error_of(api.get("/api/members/12345"), 404)
    error_of(api.get("/api/members/99999999999999"), 404)
    error_of(api.get("/api/no-such-thing"), 404)
    error_of(api.call("PUT", "/api/members"), 405)
    fresh = make_api("members:read", name="busy")
    limited = Api(make_app(API_REQUESTS_PER_MINUTE=3).test_client(), fresh.secret)
    # Fixed one-minute windows: even across a window boundary, 7 quick requests exceed 3 + 3.
    responses = [limited.get("/api/members") for _ in range(7)]
    assert responses[0].status_code == 200
    refused = [r for r in responses if r.status_code == 429]
    assert refused, [r.status_code for r in responses]
    error_of(refused[0], 429)
    assert refused[0].headers["Retry-After"] == "60"
    assert api.get("/api/members").status_code == 200  # the limit is per token


# --- members ---------------------------------------------------------------------------------------


def test_create_a_member_with_profile_terms_and_lists(api, db, redis_conn):
    single, double = make_list(db, "Everyone"), make_list(db, "Circle", opt_in="double")
    care = Value(name="Care")
    craft = Practice(name="Gardening")
    db.add_all([care, craft])
    db.commit()
    body = {
        "email": "Ana.Lima@Example.ORG",
        "name": "Ana Lima",
        "preferred_name": "Ana",
        "location": "Lisbon",
        "locale": "pt-BR",
        "timezone": "Europe/Lisbon",
        "value_ids": [care.id],
        "practice_ids": [craft.id],
        "tags": ["founder"],
        "list_ids": [single.id, double.id],
    }
    response = api.post("/api/members", body)
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    member = created["member"]
    assert member["email"] == "ana.lima@example.org"
    assert (member["preferred_name"], member["location"], member["locale"], member["timezone"]) == (
        "Ana", "Lisbon", "pt-BR", "Europe/Lisbon",
    )  # fmt: skip
    assert [v["name"] for v in member["values"]] == ["Care"]
    assert [p["name"] for p in member["practices"]] == ["Gardening"]
    assert member["tags"] == ["founder"]
    assert {s["list_id"]: s["outcome"] for s in created["subscriptions"]} == {
        single.id: "subscribed",
        double.id: "confirmation_sent",
    }
    assert {(entry["name"], entry["status"]) for entry in member["lists"]} == {
        ("Everyone", "subscribed"), ("Circle", "pending"),
    }  # fmt: skip
    # The confirmation for the double opt-in list is queued for a worker.
    assert Queue(HIGH, connection=redis_conn).count == 1
    audit = db.scalar(select(AuditEvent).where(AuditEvent.action == "api.member.create"))
    assert audit.actor.startswith("api token #") and audit.target == f"member:{member['id']}"
    assert api.get(f"/api/members/{member['id']}").get_json() == member


def test_create_refuses_duplicates_suppressed_addresses_and_unknown_ids(api, db):
    add_member(db, "Ana Lima")
    suppress(db, "gone@example.org", SuppressionReason.COMPLAINED)
    db.commit()
    assert "already" in error_of(api.post("/api/members", {"email": "ANA.LIMA@example.org"}), 409)["message"]
    error = error_of(api.post("/api/members", {"email": "gone@example.org"}), 422)
    assert "email" in error["fields"]
    assert db.scalar(select(Member).where(Member.email == "gone@example.org")) is None
    error_of(api.post("/api/members", {"email": "not an address"}), 422)
    error = error_of(api.post("/api/members", {"email": "b@example.org", "value_ids": [999], "list_ids": [77]}), 422)
    assert error["fields"] == {"value_ids": "no value with id 999", "list_ids": "no list with id 77"}
    assert db.scalar(select(Member).where(Member.email == "b@example.org")) is None


def test_update_a_member(api, db):
    member = add_member(db, "Ana Lima", values=("Care",), practices=("Gardening",))
    db.commit()
    response = api.patch(f"/api/members/{member.id}", {"location": "Porto", "tags": ["host", "founder"]})
    assert response.status_code == 200, response.get_json()
    data = response.get_json()
    assert data["location"] == "Porto" and data["tags"] == ["founder", "host"]
    assert [v["name"] for v in data["values"]] == ["Care"]  # untouched: not in the body
    error = error_of(api.patch(f"/api/members/{member.id}", {"timezone": "Mars/Olympus"}), 422)
    assert "timezone" in error["fields"]
    error_of(api.patch(f"/api/members/{member.id}", {"email": "new@example.org"}), 422)
    error_of(api.patch("/api/members/424242", {"location": "x"}), 404)
    member.status = MemberStatus.ERASED
    db.commit()
    error_of(api.patch(f"/api/members/{member.id}", {"location": "x"}), 409)


def test_list_members_filters_and_walks_cursor_pages(api, db):
    everyone = make_list(db, "Everyone")
    for index in range(7):
        add_member(db, f"Member {index}", joined_at=utcnow() - timedelta(days=index))
    add_member(db, "Quiet One", status=MemberStatus.UNSUBSCRIBED)
    db.commit()
    ana = api.post("/api/members", {"email": "ana@example.org", "list_ids": [everyone.id]}).get_json()["member"]

    seen: list[int] = []
    url = "/api/members?limit=3&status=active"
    while url:
        page = api.get(url).get_json()
        assert page["total"] == 8
        seen += [row["id"] for row in page["data"]]
        url = f"/api/members?limit=3&status=active&cursor={page['next_cursor']}" if page["next_cursor"] else ""
    assert len(seen) == len(set(seen)) == 8
    assert error_of(api.get("/api/members?limit=\u00b2"), 422)["fields"] == {"limit": "must be a whole number"}

    assert [row["id"] for row in api.get(f"/api/members?list_id={everyone.id}").get_json()["data"]] == [ana["id"]]
    found = api.get("/api/members?search=quiet").get_json()
    assert [row["name"] for row in found["data"]] == ["Quiet One"]
    assert [r["email"] for r in api.get("/api/members?sort=email&order=asc&limit=1").get_json()["data"]] == [
        "ana@example.org"
    ]
    # Cursors are signed and bound to their query.
    first = api.get("/api/members?limit=3&status=active").get_json()
    error_of(api.get(f"/api/members?limit=3&status=active&cursor={first['next_cursor']}x"), 422)
    error = error_of(api.get(f"/api/members?limit=3&sort=email&cursor={first['next_cursor']}"), 422)
    assert "another query" in error["fields"]["cursor"]
    assert "segment_id" in error_of(api.get("/api/members?segment_id=999"), 422)["fields"]


def test_subscribe_and_unsubscribe(api, db, redis_conn):
    everyone, circle = make_list(db, "Everyone"), make_list(db, "Circle", opt_in="double")
    member = add_member(db, "Ana Lima")
    db.commit()
    url = f"/api/members/{member.id}"
    assert api.post(f"{url}/subscriptions", {"list_id": everyone.id}).get_json()["outcome"] == "subscribed"
    assert api.post(f"{url}/subscriptions", {"list_id": everyone.id}).get_json()["outcome"] == "already_subscribed"
    assert api.post(f"{url}/subscriptions", {"list_id": circle.id}).get_json()["outcome"] == "confirmation_sent"
    assert Queue(HIGH, connection=redis_conn).count == 1
    error_of(api.post(f"{url}/subscriptions", {"list_id": 999}), 422)

    assert api.post(f"{url}/unsubscribe", {"list_id": everyone.id}).get_json() == {"changed": True}
    assert api.post(f"{url}/unsubscribe", {"list_id": everyone.id}).get_json() == {"changed": False}
    assert api.post(f"{url}/unsubscribe", {"stream": "newsletters"}).get_json() == {"changed": True}
    db.expire_all()
    assert db.get(Member, member.id).wants_newsletters is False
    error = error_of(api.post(f"{url}/unsubscribe", {"stream": "newsletters", "everything": True}), 422)
    assert "at most 1" in error["fields"]["body"]
    error_of(api.post(f"{url}/unsubscribe", {"everything": False}), 422)
    error_of(api.post(f"{url}/unsubscribe", {}), 422)
    assert api.post(f"{url}/unsubscribe", {"everything": True}).get_json() == {"changed": True}
    db.expire_all()
    assert db.get(Member, member.id).status == MemberStatus.UNSUBSCRIBED
    kinds = set(db.scalars(select(ConsentEvent.kind).where(ConsentEvent.member_id == member.id)))
    assert {"list_unsubscribed", "stream_off", "unsubscribed_all"} <= kinds


# --- lists and segments ------------------------------------------------------------------------------


def test_lists_and_segments(api, db):
    everyone = make_list(db, "Everyone")
    ana = add_member(db, "Ana Lima", values=("Care",))
    add_member(db, "Bo Chen", values=("Care",), status=MemberStatus.BOUNCED)
    add_member(db, "Cy Diaz", values=("Craft",))
    db.commit()
    api.post(f"/api/members/{ana.id}/subscriptions", {"list_id": everyone.id})
    care = db.scalar(select(Value.id).where(Value.name == "Care"))
    segment = Segment(
        name="Carers", rules={"match": "all", "rules": [{"field": "value", "op": "any", "value": [care]}]}
    )
    db.add(segment)
    db.commit()

    lists = api.get("/api/lists").get_json()["data"]
    assert [(item["name"], item["counts"]) for item in lists] == [("Everyone", {"subscribed": 1})]
    assert [s["name"] for s in api.get("/api/segments").get_json()["data"]] == ["Carers"]
    assert api.get(f"/api/segments/{segment.id}/count").get_json() == {
        "segment_id": segment.id,
        "count": 2,
        "reachable": 1,
    }
    page = api.get(f"/api/segments/{segment.id}/members?limit=1").get_json()
    assert page["total"] == 2 and len(page["data"]) == 1
    rest = api.get(f"/api/segments/{segment.id}/members?limit=1&cursor={page['next_cursor']}").get_json()
    assert {page["data"][0]["name"], rest["data"][0]["name"]} == {"Ana Lima", "Bo Chen"}
    error_of(api.get("/api/segments/999/count"), 404)
    error_of(api.get(f"/api/segments/{segment.id}/count?x=1"), 422)


# --- campaigns ------------------------------------------------------------------------------------------


def message_campaign(list_id: int, **overrides: Any) -> dict[str, Any]:
    body = {
        "name": "Autumn gathering",
        "kind": "newsletter",
        "subject": "We meet on Saturday",
        "content": {"template": "message", "heading": "We meet on Saturday", "body": "Bring a story.", "button": None},
        "list_ids": [list_id],
    }
    return {**body, **overrides}


def test_create_schedule_pause_and_stats(api, db):
    everyone = make_list(db, "Everyone")
    response = api.post("/api/campaigns", message_campaign(everyone.id))
    assert response.status_code == 201, response.get_json()
    campaign = response.get_json()
    assert campaign["status"] == "draft" and campaign["list_ids"] == [everyone.id]
    assert api.get(f"/api/campaigns/{campaign['id']}").get_json()["name"] == "Autumn gathering"

    url = f"/api/campaigns/{campaign['id']}"
    error = error_of(api.post(f"{url}/schedule", {"send_at": "2001-01-01T09:00", "timezone": "Europe/Lisbon"}), 409)
    assert "future" in error["message"]
    error = error_of(api.post(f"{url}/schedule", {"send_at": "next tuesday"}), 422)
    assert "send_at" in error["fields"]
    assert (
        "timezone"
        in error_of(api.post(f"{url}/schedule", {"send_at": "2099-01-01T09:00", "timezone": "America"}), 422)["fields"]
    )
    scheduled = api.post(f"{url}/schedule", {"send_at": "2099-12-01T09:00", "timezone": "Europe/Lisbon"}).get_json()
    assert scheduled["status"] == "scheduled"
    assert scheduled["scheduled_at"].startswith("2099-12-01T09:00")  # Lisbon is on UTC in December
    assert "cannot be paused" in error_of(api.post(f"{url}/pause"), 409)["message"]

    campaign_service.change_status(db, campaign["id"], "sending", "test")
    db.commit()
    paused = api.post(f"{url}/pause").get_json()
    assert paused["status"] == "paused" and paused["paused_reason"] == "paused through the API"
    stats = api.get(f"{url}/stats").get_json()
    assert (stats["campaign_id"], stats["status"], stats["total"]) == (campaign["id"], "paused", 0)


def test_campaign_problems_are_422_and_transactional_campaigns_are_hidden(api, db):
    everyone = make_list(db, "Everyone")
    error = error_of(api.post("/api/campaigns", message_campaign(everyone.id, kind="transactional")), 422)
    assert "kind" in error["fields"]
    error = error_of(api.post("/api/campaigns", message_campaign(everyone.id, segment_ids=[5])), 422)
    assert error["fields"] == {"segment_ids": "no segment with id 5"}
    broken = message_campaign(
        everyone.id, content={"template": "message", "heading": "Hi", "body": "{{ oops", "button": None}
    )
    error = error_of(api.post("/api/campaigns", broken), 422)
    assert "content" in error["fields"]
    assert db.scalar(select(Campaign.id)) is None
    member = add_member(db, "Ana Lima")
    db.commit()
    queued = api.post("/api/messages", {"member_id": member.id, "kind": "manage_link"}).get_json()
    hidden = db.scalar(select(Campaign.id))
    assert queued["status"] == "queued"
    error_of(api.get(f"/api/campaigns/{hidden}"), 404)


# --- transactional messages and stories ------------------------------------------------------------------


def test_send_a_transactional_message_through_smtp(api, db, run_jobs, smtp_sink):
    member = add_member(db, "Ana Lima")
    db.commit()
    response = api.post("/api/messages", {"member_id": member.id, "kind": "manage_link", "context": {}})
    assert response.status_code == 202, response.get_json()
    assert run_jobs() == 0
    (message,) = smtp_sink.wait_for(1)
    assert message.rcpt_tos == ["ana.lima@example.org"]
    assert b"manage" in message.data.lower()

    error = error_of(api.post("/api/messages", {"member_id": member.id, "kind": "birthday"}), 422)
    assert "manage_link" in error["fields"]["kind"]
    error = error_of(api.post("/api/messages", {"member_id": member.id, "kind": "confirm_subscription"}), 422)
    assert "context" in error["fields"]
    error_of(api.post("/api/messages", {"member_id": 999, "kind": "manage_link"}), 422)
    member.status = MemberStatus.COMPLAINED
    db.commit()
    error_of(api.post("/api/messages", {"member_id": member.id, "kind": "manage_link"}), 409)


def test_submit_a_story(api, db):
    member = add_member(db, "Ana Lima", values=("Care",))
    db.commit()
    care = db.scalar(select(Value.id))
    body = {"member_id": member.id, "title": "The seed library", "body": "We *swap* seeds.", "value_ids": [care]}
    response = api.post("/api/stories", body)
    assert response.status_code == 201, response.get_json()
    story = response.get_json()
    assert (story["status"], story["consent"], story["member_id"]) == ("submitted", "members_only", member.id)
    assert [v["name"] for v in story["values"]] == ["Care"]
    assert db.get(Story, story["id"]).body == "We *swap* seeds."
    error = error_of(api.post("/api/stories", {**body, "title": "   "}), 422)
    assert "title" in error["message"]
    error_of(api.post("/api/stories", {**body, "consent": "everyone"}), 422)
    error_of(api.post("/api/stories", {**body, "member_id": 999}), 422)
