"""The Integrations admin: API tokens shown once and revoked, webhooks registered, edited,
tested, replayed and deleted, each change audited; roles and CSRF enforced."""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select

from cop_mail.integrations import events, tokens, webhooks
from cop_mail.models import ApiToken, AuditEvent, Webhook, WebhookDelivery
from tests.conftest import add_member, csrf_token_from

SECRET_INPUT = re.compile(r'id="(?:new-token-secret|webhook-secret)" readonly value="([^"]+)"')


def secret_shown(html: str) -> str | None:
    found = SECRET_INPUT.search(html)
    return found.group(1) if found else None


def audit_actions(db) -> list[str]:
    db.expire_all()
    return list(db.scalars(select(AuditEvent.action).where(AuditEvent.action != "login").order_by(AuditEvent.id)))


@pytest.fixture
def owner(client, login) -> str:
    login("owner")
    return csrf_token_from(client.get("/admin/integrations").get_data(as_text=True))


@pytest.fixture
def answering_server():
    """A real HTTP receiver answering 503 to everything it is sent, counting the requests."""
    received: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the standard library's name
            received.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            self.send_response(503)
            self.send_header("Content-Length", "4")
            self.end_headers()
            self.wfile.write(b"busy")

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.received = received  # type: ignore[attr-defined]
    yield server
    server.shutdown()
    server.server_close()



def test_roles(client, login, db):
    login("viewer")
    assert client.get("/admin/integrations").status_code == 403
    login("coordinator", "coord@example.org")
    page = client.get("/admin/integrations")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "API tokens" in html and "Create token" not in html
    token = csrf_token_from(client.get("/admin/members").get_data(as_text=True))
    refused = client.post("/admin/integrations/tokens", data={"csrf_token": token, "name": "x", "scopes": "lists:read"})
    assert refused.status_code == 403
    webhook = webhooks.register_webhook(db, "https://example.org/hook", ["story.submitted"], "owner@example.org")
    db.commit()
    assert client.get(f"/admin/integrations/webhooks/{webhook.id}").status_code == 200
    for path in (
        f"/admin/integrations/webhooks/{webhook.id}/delete",
        f"/admin/integrations/webhooks/{webhook.id}/test",
    ):
        assert client.post(path, data={"csrf_token": token}).status_code == 403
    assert db.scalar(select(ApiToken)) is None


def test_a_token_is_shown_once_works_and_is_revoked(client, owner, db):
    response = client.post(
        "/admin/integrations/tokens",
        data={"csrf_token": owner, "name": "Website", "scopes": ["members:read", "lists:read"]},
    )
    assert response.status_code == 200
    secret = secret_shown(response.get_data(as_text=True))
    assert secret and secret.startswith("cm_")
    listing = client.get("/admin/integrations").get_data(as_text=True)
    assert (
        secret not in listing
        and "Website" in listing
        and "members:read, lists:read" in listing.replace("lists:read, members:read", "members:read, lists:read")
    )
    token = db.scalar(select(ApiToken))
    assert token.token_hash == tokens.hash_secret(secret) and token.created_by == "owner@example.org"

    api_headers = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/lists", headers=api_headers).status_code == 200
    assert client.post(f"/admin/integrations/tokens/{token.id}/revoke", data={"csrf_token": owner}).status_code == 302
    assert client.get("/api/lists", headers=api_headers).status_code == 401
    assert "revoked" in client.get("/admin/integrations").get_data(as_text=True)

    assert audit_actions(db) == ["api_token.create", "api_token.revoke"]
    for event in db.scalars(select(AuditEvent)):
        assert secret not in str(event.detail) and secret not in event.target


def test_a_token_needs_a_name_and_known_scopes(client, owner, db):
    response = client.post("/admin/integrations/tokens", data={"csrf_token": owner, "name": "CRM"})
    assert response.status_code == 400
    assert "at least one scope" in response.get_data(as_text=True)
    response = client.post(
        "/admin/integrations/tokens", data={"csrf_token": owner, "name": "CRM", "scopes": "everything"}
    )
    assert "unknown scope" in response.get_data(as_text=True)
    assert 'value="CRM"' in response.get_data(as_text=True)  # the form keeps what was typed
    response = client.post(
        "/admin/integrations/tokens", data={"csrf_token": owner, "name": "C\x00M", "scopes": "lists:read"}
    )
    assert response.status_code == 400 and "NUL" in response.get_data(as_text=True)
    assert db.scalar(select(ApiToken)) is None
    assert client.post("/admin/integrations/tokens", data={"name": "CRM", "scopes": "lists:read"}).status_code == 400


def test_register_edit_test_and_delete_a_webhook(client, owner, db, answering_server, run_jobs):
    url = f"http://127.0.0.1:{answering_server.server_address[1]}/hooks/cop-mail"
    response = client.post(
        "/admin/integrations/webhooks",
        data={
            "csrf_token": owner,
            "url": url,
            "events": ["member.subscribed", "story.submitted"],
            "description": "CRM",
        },
    )
    assert response.status_code == 200
    secret = secret_shown(response.get_data(as_text=True))
    webhook = db.scalar(select(Webhook))
    webhook_id = webhook.id
    assert secret == webhook.secret and webhook.events == ["member.subscribed", "story.submitted"]
    assert secret not in client.get(f"/admin/integrations/webhooks/{webhook.id}").get_data(as_text=True)

    bad = client.post("/admin/integrations/webhooks", data={"csrf_token": owner, "url": "ftp://x", "events": "x"})
    assert bad.status_code == 400 and "must start with https://" in bad.get_data(as_text=True)

    page = f"/admin/integrations/webhooks/{webhook.id}"
    saved = client.post(page, data={"csrf_token": owner, "url": url, "events": "story.submitted", "active": "on"})
    assert saved.status_code == 302
    db.expire_all()
    assert db.get(Webhook, webhook.id).events == ["story.submitted"]
    refused = client.post(page, data={"csrf_token": owner, "url": url, "active": "on"})
    assert refused.status_code == 400 and "at least one event" in refused.get_data(as_text=True)

    assert client.post(f"{page}/test", data={"csrf_token": owner}).status_code == 302
    assert run_jobs() == 0
    assert len(answering_server.received) == 1
    log = client.get(page).get_data(as_text=True)
    assert "webhook.test" in log and "<strong>503</strong>" in log and "the receiver answered 503" in log

    rotated = client.post(f"{page}/secret", data={"csrf_token": owner})
    new_secret = secret_shown(rotated.get_data(as_text=True))
    assert new_secret and new_secret != secret

    assert client.post(f"{page}/delete", data={"csrf_token": owner}).status_code == 302
    db.expire_all()
    assert db.get(Webhook, webhook_id) is None and db.scalar(select(WebhookDelivery)) is None
    assert audit_actions(db) == [
        "webhook.create", "webhook.update", "webhook.test", "webhook.rotate_secret", "webhook.delete",
    ]  # fmt: skip
    for event in db.scalars(select(AuditEvent)):
        assert secret not in str(event.detail) and new_secret not in str(event.detail)


def test_the_delivery_log_shows_answers_and_replay_requeues(client, owner, db, answering_server, run_jobs):
    url = f"http://127.0.0.1:{answering_server.server_address[1]}/hook"
    webhook = webhooks.register_webhook(db, url, ["member.complained"], "owner@example.org")
    member = add_member(db, "Ana Lima")
    (delivery_id,) = events.emit_member_complained(db, member.id)
    db.commit()
    webhooks.deliver(db, delivery_id)
    page = client.get(f"/admin/integrations/webhooks/{webhook.id}?status=pending").get_data(as_text=True)
    assert "member.complained" in page and "<strong>503</strong>" in page and "busy" in page
    assert "ana.lima@example.org" in page  # the payload, for the coordinator to inspect
    assert "No deliveries with this status" in client.get(
        f"/admin/integrations/webhooks/{webhook.id}?status=delivered"
    ).get_data(as_text=True)

    delivery = db.get(WebhookDelivery, delivery_id)
    delivery.status = "failed"
    db.commit()
    response = client.post(f"/admin/integrations/deliveries/{delivery_id}/replay", data={"csrf_token": owner})
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/webhooks/{webhook.id}")
    db.expire_all()
    replayed = db.get(WebhookDelivery, delivery_id)
    assert (replayed.status, replayed.attempts) == ("pending", 0)
    assert run_jobs() == 0
    assert len(answering_server.received) == 2
    assert audit_actions(db) == ["webhook.replay"]
    assert client.post("/admin/integrations/deliveries/999/replay", data={"csrf_token": owner}).status_code == 404
