"""Values, practices, tags and lists pages: create, edit, delete, roles, CSRF and the audit log."""

from __future__ import annotations

from sqlalchemy import select

from cop_mail.models import AuditEvent, ListMembership, MailingList, Member, Practice, Tag, Value
from tests.conftest import csrf_token_from


def token(client, page="/admin/values") -> str:
    return csrf_token_from(client.get(page).get_data(as_text=True))


def actions(db) -> list[tuple[str, str]]:
    return [(e.action, e.target) for e in db.scalars(select(AuditEvent).where(AuditEvent.action != "login"))]


def test_values_are_created_edited_and_deleted_with_an_audit_trail(client, login, db):
    login("coordinator")
    csrf = token(client)
    created = client.post(
        "/admin/values",
        data={"csrf_token": csrf, "name": " Reciprocity ", "description": "Give and take", "colour": "#AA3300"},
    )
    assert created.status_code == 302
    value = db.scalar(select(Value))
    assert (value.name, value.description, value.colour) == ("Reciprocity", "Give and take", "#aa3300")
    db.add(Member(email="ana@example.org", values=[value]))
    db.commit()
    page = client.get("/admin/values").get_data(as_text=True)
    assert "Reciprocity" in page and f'href="/admin/members?value={value.id}">1</a>' in page

    duplicate = client.post("/admin/values", data={"csrf_token": csrf, "name": "RECIPROCITY", "colour": "#000000"})
    assert "A value called &#39;Reciprocity&#39; already exists." in client.get(duplicate.headers["Location"]).get_data(
        as_text=True
    )
    bad_colour = client.post("/admin/values", data={"csrf_token": csrf, "name": "Care", "colour": "red"})
    assert "#rrggbb" in client.get(bad_colour.headers["Location"]).get_data(as_text=True)

    client.post(f"/admin/values/{value.id}", data={"csrf_token": csrf, "name": "Mutual aid", "colour": "#112233"})
    db.expire_all()
    assert db.get(Value, value.id).name == "Mutual aid"
    deleted = client.post(f"/admin/values/{value.id}/delete", data={"csrf_token": csrf}, follow_redirects=True)
    assert "1 members held it" in deleted.get_data(as_text=True)
    assert db.scalar(select(Value)) is None
    assert db.scalar(select(Member)).values == []
    assert actions(db) == [
        ("value.create", "Reciprocity"),
        ("value.update", "Mutual aid"),
        ("value.delete", "Mutual aid"),
    ]


def test_viewers_read_but_cannot_change(client, login, db):
    db.add_all([Value(name="Care"), Practice(name="Weaving"), MailingList(name="News", slug="news")])
    db.commit()
    login("viewer")
    for page in ("/admin/values", "/admin/practices", "/admin/lists"):
        html = client.get(page).get_data(as_text=True)
        assert '<form method="post" action="/admin/' not in html.split("</header>", 1)[1], page
    csrf = token(client)
    value_id = db.scalar(select(Value.id))
    for url in ("/admin/values", f"/admin/values/{value_id}", f"/admin/values/{value_id}/delete", "/admin/practices",
                "/admin/tags", "/admin/lists"):  # fmt: skip
        assert client.post(url, data={"csrf_token": csrf, "name": "x"}).status_code == 403, url


def test_changes_without_the_csrf_token_are_refused(client, login, db):
    login("coordinator")
    assert client.post("/admin/values", data={"name": "Care", "colour": "#000000"}).status_code == 400
    assert client.post("/admin/lists", data={"name": "News"}).status_code == 400
    assert db.scalar(select(Value)) is None and db.scalar(select(MailingList)) is None


def test_practices_and_tags(client, login, db):
    login("coordinator")
    csrf = token(client, "/admin/practices")
    client.post("/admin/practices", data={"csrf_token": csrf, "name": "Facilitation", "description": "Holding space"})
    client.post("/admin/tags", data={"csrf_token": csrf, "name": "founder"})
    practice, tag = db.scalar(select(Practice)), db.scalar(select(Tag))
    assert practice.name == "Facilitation" and tag.name == "founder"
    renamed = client.post(
        f"/admin/tags/{tag.id}", data={"csrf_token": csrf, "name": "Founding member"}, follow_redirects=True
    )
    assert "The tag founder is now called Founding member." in renamed.get_data(as_text=True)
    client.post(f"/admin/practices/{practice.id}", data={"csrf_token": csrf, "name": "Facilitating", "description": ""})
    client.post(f"/admin/tags/{tag.id}/delete", data={"csrf_token": csrf})
    db.expire_all()
    assert db.get(Practice, practice.id).name == "Facilitating" and db.scalar(select(Tag)) is None
    page = client.get("/admin/practices").get_data(as_text=True)
    assert "Facilitating" in page and "No tags yet." in page
    assert ("tag.rename", "founder") in actions(db)
    assert client.get("/admin/practices/99999").status_code == 404


def test_lists_have_opt_in_public_flag_and_form_wording(client, login, db):
    login("coordinator")
    csrf = token(client, "/admin/lists")
    client.post(
        "/admin/lists",
        data={"csrf_token": csrf, "name": "Monthly Newsletter", "opt_in": "single", "public": "on",
              "form_wording": "Yes, send me the monthly newsletter."},
    )  # fmt: skip
    item = db.scalar(select(MailingList))
    assert (item.slug, item.opt_in, item.public) == ("monthly-newsletter", "single", True)
    assert item.form_wording == "Yes, send me the monthly newsletter."
    taken = client.post("/admin/lists", data={"csrf_token": csrf, "name": "Other", "slug": "monthly-newsletter"})
    assert "is taken by the list" in client.get(taken.headers["Location"]).get_data(as_text=True)
    client.post(f"/admin/lists/{item.id}", data={"csrf_token": csrf, "name": "Monthly Newsletter", "opt_in": "double"})
    db.expire_all()
    assert (db.get(MailingList, item.id).opt_in, db.get(MailingList, item.id).public) == ("double", False)

    member = Member(email="ana@example.org")
    db.add(member)
    db.flush()
    db.add(ListMembership(list_id=item.id, member_id=member.id, status="subscribed"))
    db.commit()
    assert ">1</a>" in client.get("/admin/lists").get_data(as_text=True)
    refused = client.post(f"/admin/lists/{item.id}/delete", data={"csrf_token": csrf}, follow_redirects=True)
    assert "still has 1 members" in refused.get_data(as_text=True)
    db.execute(ListMembership.__table__.delete())
    db.commit()
    client.post(f"/admin/lists/{item.id}/delete", data={"csrf_token": csrf})
    assert db.scalar(select(MailingList)) is None
    assert [a for a, _ in actions(db)] == ["list.create", "list.update", "list.delete"]
