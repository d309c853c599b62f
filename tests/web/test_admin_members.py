"""The member directory and member page through the real app: search, filters, sorting,
keyset pages, the timeline, edits, adding a member, export, roles and CSRF."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

from sqlalchemy import select

from cop_mail.audience import importer
from cop_mail.db import utcnow
from cop_mail.models import (
    AuditEvent,
    Campaign,
    ConsentEvent,
    Delivery,
    ListMembership,
    MailingList,
    Member,
    MemberEvent,
    Segment,
    Suppression,
    Value,
)
from cop_mail.tokens import address_hash
from tests.conftest import csrf_token_from

EMAIL_CELL = re.compile(r'<td><a href="/admin/members/\d+">([^<]+)</a></td>')


def seed(db, n: int, list_name: str | None = None) -> None:
    rows = "".join(f"member{i:03d}@example.org,Member {i:03d},{'Care' if i % 2 else 'Joy'}\n" for i in range(n))
    list_id = None
    if list_name:
        item = MailingList(name=list_name, slug=list_name.lower())
        db.add(item)
        db.commit()
        list_id = item.id
    importer.import_rows(db, ("email,name,values\n" + rows).encode(), importer.ImportOptions(list_id=list_id))
    db.commit()


def emails(html: str) -> list[str]:
    return EMAIL_CELL.findall(html)


def cursor_link(html: str, rel: str) -> str | None:
    found = re.search(rf'href="([^"]+)" rel="{rel}"', html)
    return found.group(1).replace("&amp;", "&") if found else None


def test_keyset_pages_walk_forward_and_back_without_gaps(client, login, db):
    seed(db, 120)
    login("viewer")
    first = client.get("/admin/members?sort=email&dir=asc").get_data(as_text=True)
    assert "<strong>120</strong> members match" in first
    page1 = emails(first)
    assert page1 == [f"member{i:03d}@example.org" for i in range(50)]
    assert cursor_link(first, "prev") is None
    second = client.get(cursor_link(first, "next")).get_data(as_text=True)
    assert emails(second) == [f"member{i:03d}@example.org" for i in range(50, 100)]
    third = client.get(cursor_link(second, "next")).get_data(as_text=True)
    assert emails(third) == [f"member{i:03d}@example.org" for i in range(100, 120)]
    assert cursor_link(third, "next") is None
    back = client.get(cursor_link(third, "prev")).get_data(as_text=True)
    assert emails(back) == emails(second)
    back_again = client.get(cursor_link(back, "prev")).get_data(as_text=True)
    assert emails(back_again) == page1


def test_sorting_by_joined_date_with_ties_is_stable(client, login, db):
    seed(db, 60)  # imported in one statement: many share a joined_at
    login("viewer")
    first = client.get("/admin/members?sort=joined&dir=desc").get_data(as_text=True)
    second = client.get(cursor_link(first, "next")).get_data(as_text=True)
    seen = emails(first) + emails(second)
    assert len(seen) == len(set(seen)) == 60


def test_a_hand_edited_cursor_means_the_first_page(client, login, db):
    seed(db, 3)
    login("viewer")
    response = client.get("/admin/members?cursor=n%%%garbage")
    assert response.status_code == 200 and len(emails(response.get_data(as_text=True))) == 3


def test_search_and_filters(client, login, db):
    seed(db, 10, list_name="Newsletter")
    db.add(Member(email="ana.special@example.org", name="Ana Conceição", status="unsubscribed"))
    db.add(
        Segment(
            name="Care holders",
            rules={
                "match": "all",
                "rules": [
                    {"field": "value", "op": "any", "value": [db.scalar(select(Value.id).where(Value.name == "Care"))]}
                ],
            },
        )
    )
    db.commit()
    login("viewer")

    def found(query: str) -> list[str]:
        return emails(client.get("/admin/members?" + query).get_data(as_text=True))

    assert found("q=CONCEI") == ["ana.special@example.org"]
    assert found("q=member007") == ["member007@example.org"]
    assert found("q=%25") == []  # a wildcard is searched for literally
    assert found("status=unsubscribed") == ["ana.special@example.org"]
    newsletter = db.scalar(select(MailingList.id))
    assert len(found(f"list={newsletter}")) == 10
    care = db.scalar(select(Value.id).where(Value.name == "Care"))
    assert sorted(found(f"value={care}")) == [f"member{i:03d}@example.org" for i in range(1, 10, 2)]
    segment = db.scalar(select(Segment.id))
    assert sorted(found(f"segment={segment}")) == sorted(found(f"value={care}"))
    assert client.get(f"/admin/members?segment={segment + 50}").status_code == 404


def test_member_page_shows_the_timeline(client, login, db):
    member = Member(email="ana@example.org", name="Ana")
    campaign = Campaign(name="November newsletter", subject="Care in practice")
    newsletter = MailingList(name="Newsletter", slug="newsletter")
    db.add_all([member, campaign, newsletter])
    db.flush()
    now = utcnow()
    two_days_ago = now - timedelta(days=2)
    db.add_all([
        Delivery(campaign_id=campaign.id, member_id=member.id, status="sent", sent_at=now - timedelta(days=1)),
        MemberEvent(member_id=member.id, kind="intro_accepted", detail={"intro": 7}, created_at=two_days_ago),
        ConsentEvent(member_id=member.id, kind="confirmed", list_id=newsletter.id, wording="Yes, send me news",
                     ip="192.0.2.1", created_at=now - timedelta(days=3)),
        ListMembership(list_id=newsletter.id, member_id=member.id, status="subscribed", source="signup"),
    ])  # fmt: skip
    db.commit()
    login("viewer")
    html = client.get(f"/admin/members/{member.id}").get_data(as_text=True)
    for text in ["Email: Care in practice", "Intro accepted", "intro: 7", "Confirmed (Newsletter)",
                 "Yes, send me news; from 192.0.2.1", "Joined list Newsletter", "Joined the community"]:  # fmt: skip
        assert text in html, text
    assert html.index("Email: Care in practice") < html.index("Intro accepted") < html.index("Confirmed (Newsletter)")
    assert "Save profile" not in html  # a viewer reads only
    assert client.get("/admin/members/999999").status_code == 404


def test_coordinator_edits_a_profile_and_it_is_audited(client, login, db):
    member = Member(email="ana@example.org", name="Ana")
    care = Value(name="Care")
    db.add_all([member, care])
    db.commit()
    login("coordinator")
    page = client.get(f"/admin/members/{member.id}").get_data(as_text=True)
    response = client.post(
        f"/admin/members/{member.id}",
        data={"csrf_token": csrf_token_from(page), "name": "Ana C.", "preferred_name": "", "location": "Porto",
              "locale": "pt_br", "timezone": "europe/lisbon", "value_ids": [str(care.id)], "tags": "host, founder"},
    )  # fmt: skip
    assert response.status_code == 302
    db.expire_all()
    saved = db.get(Member, member.id)
    assert (saved.name, saved.location, saved.locale, saved.timezone) == ("Ana C.", "Porto", "pt-BR", "Europe/Lisbon")
    assert [v.name for v in saved.values] == ["Care"] and sorted(t.name for t in saved.tags) == ["founder", "host"]
    audit = db.scalar(select(AuditEvent).where(AuditEvent.action == "member.update"))
    assert audit.target == f"member:{member.id}" and "ana@example.org" not in str(audit.detail)

    bad = client.post(
        f"/admin/members/{member.id}", data={"csrf_token": csrf_token_from(page), "timezone": "Mars/Base"}
    )
    assert bad.status_code == 302
    assert "Choose a time zone" in client.get(bad.headers["Location"]).get_data(as_text=True)


def test_viewer_cannot_edit_and_forms_need_the_csrf_token(client, login, db):
    member = Member(email="ana@example.org")
    db.add(member)
    db.commit()
    login("viewer")
    token = csrf_token_from(client.get("/admin/members").get_data(as_text=True))
    assert client.post(f"/admin/members/{member.id}", data={"csrf_token": token, "name": "X"}).status_code == 403
    assert client.post("/admin/members/add", data={"csrf_token": token, "email": "x@example.org"}).status_code == 403
    assert client.get("/admin/members/export.csv").status_code == 403
    login("coordinator", "coord@example.org")
    assert client.post(f"/admin/members/{member.id}", data={"name": "X"}).status_code == 400


def test_adding_one_member_follows_the_import_rules(client, login, db):
    newsletter = MailingList(name="Newsletter", slug="newsletter")
    db.add_all([newsletter, Suppression(email_hash=address_hash("gone@example.org"), reason="complained")])
    db.commit()
    login("coordinator")
    token = csrf_token_from(client.get("/admin/members").get_data(as_text=True))
    added = client.post(
        "/admin/members/add",
        data={"csrf_token": token, "email": "New@Example.org", "name": "New", "list_id": newsletter.id},
    )
    member = db.scalar(select(Member).where(Member.email == "new@example.org"))
    assert added.headers["Location"].endswith(f"/admin/members/{member.id}")
    assert db.scalar(select(ListMembership.status)) == "subscribed"
    refused = client.post(
        "/admin/members/add", data={"csrf_token": token, "email": "gone@example.org"}, follow_redirects=True
    )
    assert "was not added: on the suppression list" in refused.get_data(as_text=True)
    assert db.scalar(select(Member).where(Member.email == "gone@example.org")) is None


def test_export_is_formula_safe_filtered_and_audited(client, login, db):
    db.add_all(
        [
            Member(email="ana@example.org", name='=HYPERLINK("http://evil")'),
            Member(email="ben@example.org", status="bounced"),
        ]
    )
    db.commit()
    login("coordinator")
    response = client.get("/admin/members/export.csv?status=active")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert 'filename="members.csv"' in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert [(r["email"], r["name"]) for r in rows] == [("ana@example.org", '\'=HYPERLINK("http://evil")')]
    audit = db.scalar(select(AuditEvent).where(AuditEvent.action == "members.export"))
    assert audit.detail == {"status": "active"}
