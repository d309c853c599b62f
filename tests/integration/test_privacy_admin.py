"""The owner's GDPR buttons in the admin: download a member's data, erase a member."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from cop_mail.audience.suppression import is_suppressed
from cop_mail.models import AuditEvent, Member, MemberEvent
from tests.conftest import csrf_token_from


@pytest.fixture
def member(db) -> Member:
    member = Member(email="ana@example.org", name="Ana Lima", location="Lisbon", attributes={"phone": "1"})
    db.add(member)
    db.commit()
    return member


def test_an_owner_downloads_a_members_data_and_it_is_audited_without_the_address(client, login, db, member):
    login("owner")
    response = client.get(f"/admin/members/{member.id}/export.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.headers["Content-Disposition"] == f'attachment; filename="member-{member.id}-data.json"'
    data = json.loads(response.get_data(as_text=True))
    assert data["profile"]["email"] == "ana@example.org" and data["profile"]["location"] == "Lisbon"
    audit = db.scalar(select(AuditEvent).where(AuditEvent.action == "member.export"))
    assert audit.target == f"member:{member.id}" and "ana" not in json.dumps(audit.detail)
    assert db.scalar(select(MemberEvent.kind).where(MemberEvent.member_id == member.id)) == "data_exported"


def test_an_owner_erases_a_member_after_typing_erase(client, login, db, member):
    login("owner")
    page = client.get(f"/admin/members/{member.id}/privacy").get_data(as_text=True)
    assert "Erase this member" in page and "ana@example.org" in page
    token = csrf_token_from(page)
    refused = client.post(f"/admin/members/{member.id}/erase", data={"csrf_token": token, "confirm": "yes"})
    assert refused.status_code == 302
    db.expire_all()
    assert db.get(Member, member.id).email == "ana@example.org"
    done = client.post(f"/admin/members/{member.id}/erase", data={"csrf_token": token, "confirm": "Erase"})
    assert done.status_code == 302
    db.expire_all()
    erased = db.get(Member, member.id)
    assert erased.email == f"erased-{member.id}@invalid" and erased.status == "erased" and erased.name == ""
    assert is_suppressed(db, "ana@example.org")
    after = client.get(f"/admin/members/{member.id}/privacy").get_data(as_text=True)
    assert "This member has been erased." in after and "ana@example.org" not in after
    audit = db.scalar(select(AuditEvent).where(AuditEvent.action == "member.erase"))
    assert audit.target == f"member:{member.id}"


@pytest.mark.parametrize("role", ["coordinator", "viewer"])
def test_only_owners_can_export_or_erase(client, login, db, member, role):
    login(role)
    assert client.get(f"/admin/members/{member.id}/export.json").status_code == 403
    assert client.get(f"/admin/members/{member.id}/privacy").status_code == 403
    token = csrf_token_from(client.get("/admin/").get_data(as_text=True))
    assert (
        client.post(f"/admin/members/{member.id}/erase", data={"csrf_token": token, "confirm": "erase"}).status_code
        == 403
    )
    db.expire_all()
    assert db.get(Member, member.id).status == "active"


def test_erase_needs_post_and_csrf_and_an_existing_member(client, login, db, member):
    login("owner")
    assert client.get(f"/admin/members/{member.id}/erase").status_code == 405
    assert client.post(f"/admin/members/{member.id}/erase", data={"confirm": "erase"}).status_code == 400
    assert client.get("/admin/members/99999/export.json").status_code == 404
    db.expire_all()
    assert db.get(Member, member.id).status == "active"


def test_anonymous_visitors_are_sent_to_login(client, member):
    response = client.get(f"/admin/members/{member.id}/export.json")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
