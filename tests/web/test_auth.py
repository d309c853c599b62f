"""Login, CSRF, roles, rate limiting, redirects and the audit log, through the real app."""

from __future__ import annotations

import pytest
from flask import url_for
from sqlalchemy import select

from cop_mail.models import AuditEvent
from tests.conftest import csrf_token_from


def admin_get_routes(app) -> list[str]:
    """Every GET route of the admin, with "1" for each URL argument."""
    routes = []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if rule.endpoint.startswith("admin.") and "GET" in rule.methods:
                routes.append(url_for(rule.endpoint, **{name: 1 for name in rule.arguments}))
    return routes


def test_every_admin_page_redirects_anonymous_visitors_to_login(app, client):
    routes = admin_get_routes(app)
    assert "/admin/" in routes and len(routes) >= 4
    for route in routes:
        response = client.get(route)
        assert response.status_code == 302, route
        assert response.headers["Location"].startswith("/login?next="), route


def test_every_admin_view_declares_a_role(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("admin."):
            assert hasattr(app.view_functions[rule.endpoint], "required_role"), rule.endpoint


def test_login_then_dashboard(client, login):
    login("coordinator")
    response = client.get("/admin/")
    assert response.status_code == 200
    assert "Dashboard" in response.get_data(as_text=True)


def test_wrong_password_is_refused_in_plain_words(client, login):
    login("coordinator", "ana@example.org")
    client.post("/logout", data={"csrf_token": csrf_token_from(client.get("/admin/").get_data(as_text=True))})
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"email": "ana@example.org", "password": "wrong", "csrf_token": token})
    assert response.status_code == 401
    assert "do not match" in response.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302


def test_form_post_without_csrf_token_is_refused(client, login):
    login("owner")
    response = client.post("/admin/team", data={"email": "new@example.org", "role": "viewer"})
    assert response.status_code == 400
    assert "did not come from this site" in response.get_data(as_text=True)


def test_login_post_without_csrf_token_is_refused(client):
    response = client.post("/login", data={"email": "a@example.org", "password": "x"})
    assert response.status_code == 400


def test_viewer_cannot_reach_owner_only_pages(client, login):
    login("viewer")
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/team").status_code == 403
    assert client.get("/admin/audit").status_code == 403


def test_coordinator_cannot_manage_the_team(client, login):
    login("coordinator")
    token = csrf_token_from(client.get("/admin/").get_data(as_text=True))
    response = client.post("/admin/team", data={"email": "x@example.org", "role": "owner", "csrf_token": token})
    assert response.status_code == 403


def test_owner_adds_a_coordinator_and_it_is_audited(client, login, db):
    owner = login("owner")
    token = csrf_token_from(client.get("/admin/team").get_data(as_text=True))
    response = client.post(
        "/admin/team", data={"email": "New@Example.org", "role": "viewer", "csrf_token": token}, follow_redirects=True
    )
    assert "Account created for new@example.org" in response.get_data(as_text=True)
    events = db.scalars(select(AuditEvent).where(AuditEvent.action == "admin.create")).all()
    assert [(e.actor, e.target, e.detail["role"]) for e in events] == [(owner.email, "new@example.org", "viewer")]
    assert "admin.create" in client.get("/admin/audit").get_data(as_text=True)


def test_login_is_rate_limited(client, login, app):
    login("coordinator", "ben@example.org")
    client.post("/logout", data={"csrf_token": csrf_token_from(client.get("/admin/").get_data(as_text=True))})
    limit = app.config["COP_MAIL"].login_attempts_per_15_min
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    codes = [
        client.post("/login", data={"email": "ben@example.org", "password": "nope", "csrf_token": token}).status_code
        for _ in range(limit + 1)
    ]
    assert codes[:limit] == [401] * limit
    assert codes[limit] == 429
    # Even the right password is refused until the window passes.
    response = client.post(
        "/login", data={"email": "ben@example.org", "password": "correct horse battery", "csrf_token": token}
    )
    assert response.status_code == 429


@pytest.mark.parametrize(
    "target,expected",
    [
        ("/admin/outbox", "/admin/outbox"),
        ("https://evil.example/", "/admin/"),
        ("//evil.example/x", "/admin/"),
        ("/\\evil.example", "/admin/"),
        ("javascript:alert(1)", "/admin/"),
    ],
)
def test_login_redirects_only_within_the_site(client, db, target, expected):
    from cop_mail import accounts
    from cop_mail.models import Role

    accounts.create_admin(db, "cy@example.org", "correct horse battery", Role.VIEWER)
    db.commit()
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login",
        data={"email": "cy@example.org", "password": "correct horse battery", "csrf_token": token, "next": target},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == expected


def test_session_cookie_is_httponly_and_samesite(client, login):
    login("viewer")
    cookie = client.get_cookie("cop_mail_session")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"


def test_session_cookie_is_secure_behind_https(make_settings, make_app):
    app = make_app(make_settings(public_url="https://community.example.org"))
    assert app.config["SESSION_COOKIE_SECURE"] is True


def test_password_change_ends_other_sessions(client, login, db):
    from cop_mail import accounts

    admin = login("coordinator")
    assert client.get("/admin/").status_code == 200
    accounts.set_password(db.merge(admin), "another long password")
    db.commit()
    assert client.get("/admin/").status_code == 302


def test_passwords_are_hashed_with_scrypt(db):
    from cop_mail import accounts

    admin = accounts.create_admin(db, "dee@example.org", "correct horse battery")
    assert admin.password_hash.startswith("scrypt:")
    assert "correct horse battery" not in admin.password_hash


def test_api_errors_are_json(client):
    response = client.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == 404
