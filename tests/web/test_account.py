"""A coordinator's own account page: change the password, switch email notices."""

from __future__ import annotations

from sqlalchemy import select

from cop_mail import accounts
from cop_mail.models import Admin, AuditEvent
from tests.conftest import csrf_token_from


def post_form(client, action, **fields):
    token = csrf_token_from(client.get("/admin/account").get_data(as_text=True))
    return client.post(action, data={"csrf_token": token, **fields}, follow_redirects=True)


def test_every_role_can_change_its_own_password(client, login, db, app):
    admin = login("viewer")
    elsewhere = app.test_client()  # the same account, logged in on another browser
    token = csrf_token_from(elsewhere.get("/login").get_data(as_text=True))
    elsewhere.post("/login", data={"email": admin.email, "password": "correct horse battery", "csrf_token": token})
    assert elsewhere.get("/admin/account").status_code == 200
    page = post_form(
        client, "/admin/account/password",
        current_password="correct horse battery", new_password="a much longer one", repeat_password="a much longer one",
    ).get_data(as_text=True)  # fmt: skip
    assert "Your password is changed." in page
    # This browser stays signed in; the other session ends with the old password.
    assert client.get("/admin/account").status_code == 200
    assert elsewhere.get("/admin/account").status_code == 302
    db.expire_all()
    assert accounts.authenticate(db, admin.email, "a much longer one") is not None
    assert accounts.authenticate(db, admin.email, "correct horse battery") is None
    assert db.scalars(select(AuditEvent.action).where(AuditEvent.action == "admin.password_changed")).one()


def test_a_wrong_current_password_or_a_mismatch_changes_nothing(client, login, db):
    admin = login("coordinator")
    cases = [
        ({"current_password": "wrong", "new_password": "a much longer one", "repeat_password": "a much longer one"},
         "the current password is not right"),
        ({"current_password": "correct horse battery", "new_password": "a much longer one",
          "repeat_password": "a much longer two"}, "the two new passwords are not the same"),
        ({"current_password": "correct horse battery", "new_password": "short", "repeat_password": "short"},
         "at least 10 characters"),
    ]  # fmt: skip
    for fields, message in cases:
        page = post_form(client, "/admin/account/password", **fields).get_data(as_text=True)
        assert "The password was not changed" in page and message in page
    db.expire_all()
    assert accounts.authenticate(db, admin.email, "correct horse battery") is not None


def test_notices_switch_off_and_on(client, login, db):
    admin = login("coordinator")
    assert "Notices are off" in post_form(client, "/admin/account/notices").get_data(as_text=True)
    db.expire_all()
    assert db.get(Admin, admin.id).email_notices is False
    page = post_form(client, "/admin/account/notices", email_notices="1").get_data(as_text=True)
    assert "Notices are on." in page
    db.expire_all()
    assert db.get(Admin, admin.id).email_notices is True


def test_the_account_forms_need_a_login_and_a_csrf_token(client, login, db):
    assert client.get("/admin/account").status_code == 302  # to the login page
    admin = login("owner")
    refused = client.post("/admin/account/notices", data={})
    assert refused.status_code == 400
    db.expire_all()
    assert db.get(Admin, admin.id).email_notices is True
    assert 'href="/admin/account"' in client.get("/admin/").get_data(as_text=True)
