"""The newsletter composer in the admin: roles, CSRF, previews, errors in the form, tests, saving and sending."""

from __future__ import annotations

import email
import email.policy
import html as html_lib
import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from cop_mail import accounts
from cop_mail.compose import newsletter as composer
from cop_mail.models import AuditEvent, Campaign, CampaignStatus, MailingList, Role
from cop_mail.settings import Settings
from tests.conftest import csrf_token_from
from tests.integration.test_compose_newsletter import ESSAY, Issue, seed_issue

NEW = "/admin/newsletters/new"


@pytest.fixture
def issue(db: Session, settings: Settings) -> Issue:
    return seed_issue(db, settings.instance_path)


def token(client: Any, path: str = "/admin/newsletters") -> str:
    return csrf_token_from(client.get(path).get_data(as_text=True))


def form_for(issue: Issue, csrf: str, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "csrf_token": csrf,
        "title": "What care looks like in practice",
        "theme_value_id": str(issue.care.id),
        "essay": ESSAY,
        "essay_author": "Rosa",
        "story_ids": [str(issue.public.id), str(issue.anonymous.id)],
        "resource_ids": [str(issue.method.id)],
        "spotlight_email": issue.spotlight.email,
        "spotlight_text": "Kwame welcomes every new volunteer with a walk.",
        "events": "2026-12-03 18:00 | Story circle | Online | https://events.example.org/circle",
        "subject": "",
        "preheader": "",
        "when": "draft",
        "timezone": "UTC",
        "action": "preview",
    }
    data.update(changes)
    return data


def srcdocs(page: str) -> list[str]:
    return [html_lib.unescape(found) for found in re.findall(r'<iframe[^>]*srcdoc="([^"]*)"', page)]


def test_viewers_read_but_cannot_compose(client, login, db: Session, settings: Settings, issue: Issue) -> None:  # type: ignore[no-untyped-def]
    login("viewer")
    page = client.get("/admin/newsletters")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "No newsletters yet" in text and "New newsletter" not in text
    assert client.get(NEW).status_code == 403
    response = client.post(NEW, data=form_for(issue, token(client), action="save"))
    assert response.status_code == 403
    assert db.scalars(select(Campaign)).all() == []

    draft = composer.save_newsletter(db, settings, issue.choices(), "coordinator@example.org")
    db.commit()
    page = client.get(f"/admin/newsletters/{draft.id}").get_data(as_text=True)
    assert "You can read this newsletter; a coordinator can change it." in page
    assert "<fieldset disabled>" in page and 'value="save"' not in page and 'value="test"' not in page
    assert "The handover question" in srcdocs(page)[0]
    changed = client.post(f"/admin/newsletters/{draft.id}", data=form_for(issue, token(client), action="save"))
    assert changed.status_code == 403


def test_a_coordinator_previews_then_saves_a_draft(client, login, db: Session, issue: Issue) -> None:  # type: ignore[no-untyped-def]
    login("coordinator")
    page = client.get(NEW).get_data(as_text=True)
    assert 'id="preview-desktop"' in page and 'width="600"' in page and 'width="375"' in page
    assert "The handover question" in page  # the no-JS story picker lists approved stories
    assert "Not yet" not in page  # a story still waiting for moderation is not offered

    preview = client.post(NEW, data=form_for(issue, csrf_token_from(page)))
    assert preview.status_code == 200
    shown = preview.get_data(as_text=True)
    desktop, phone = srcdocs(shown)
    assert desktop == phone and "Hi Alex," in desktop and "The handover question" in desktop
    assert "A member of the community" in desktop and "Kwame Mensah" in desktop
    assert 'Subject: <strong id="preview-subject">Care: What care looks like in practice</strong>' in shown
    assert shown.count('class="ok"') == 5 and 'class="fail"' not in shown

    saved = client.post(NEW, data=form_for(issue, csrf_token_from(shown), action="save"))
    assert saved.status_code == 302
    campaign = db.scalars(select(Campaign)).one()
    assert saved.headers["Location"].endswith(f"/admin/newsletters/{campaign.id}")
    assert (campaign.kind, campaign.status, campaign.created_by) == ("newsletter", "draft", "coordinator@example.org")
    assert campaign.content["story_ids"] == [issue.public.id, issue.anonymous.id]
    reloaded = client.get(saved.headers["Location"]).get_data(as_text=True)
    assert "Saved as a draft." in reloaded and "What care looks like in practice" in reloaded
    assert f'value="{issue.public.id}" checked' in reloaded and issue.spotlight.email in reloaded
    assert "Hi Alex," in srcdocs(reloaded)[0]
    actions = db.scalars(select(AuditEvent.action).where(AuditEvent.target == f"campaign {campaign.id}")).all()
    assert actions == ["newsletter.create"]
    listing = client.get("/admin/newsletters").get_data(as_text=True)
    assert "What care looks like in practice" in listing and "draft" in listing


def test_every_post_needs_the_csrf_token(client, login, db: Session, issue: Issue) -> None:  # type: ignore[no-untyped-def]
    login("coordinator")
    for path in (NEW, "/admin/newsletters/preview"):
        response = client.post(path, data=form_for(issue, "", action="save"))
        assert response.status_code == 400, path
        assert "did not come from this site" in response.get_data(as_text=True)
    assert db.scalars(select(Campaign)).all() == []


@pytest.mark.parametrize(
    ("essay", "expected"),
    [
        ("Hello\n\n{{ member.first_name", "Essay</a>, line 3: template syntax"),
        ("Hi {{ members.first_name }}", "Essay</a>, line 1: unknown name &#39;members&#39;"),
    ],
)
def test_jinja_errors_show_in_the_form_with_their_line(
    client,
    login,
    db: Session,
    issue: Issue,
    essay: str,
    expected: str,  # type: ignore[no-untyped-def]
) -> None:
    login("coordinator")
    csrf = token(client, NEW)
    preview = client.post(NEW, data=form_for(issue, csrf, essay=essay))
    assert preview.status_code == 200
    assert expected in preview.get_data(as_text=True)
    saved = client.post(NEW, data=form_for(issue, csrf, essay=essay, action="save"))
    assert saved.status_code == 400 and expected in saved.get_data(as_text=True)
    assert essay in html_lib.unescape(saved.get_data(as_text=True))  # the coordinator's text is kept
    assert db.scalars(select(Campaign)).all() == []


def test_scripts_and_javascript_links_never_reach_the_preview(client, login, issue: Issue) -> None:  # type: ignore[no-untyped-def]
    login("coordinator")
    essay = 'Hi <script>alert(1)</script>\n\n[x](javascript:alert(2)) <a href="javascript:alert(3)">y</a>'
    page = client.post(NEW, data=form_for(issue, token(client, NEW), essay=essay)).get_data(as_text=True)
    (desktop, _phone) = srcdocs(page)
    assert "<script" not in desktop.lower() and 'href="javascript' not in desktop.lower()
    assert "are removed from the email" in page
    assert "<script>alert(1)" not in page  # the textarea escapes it too


def test_the_live_preview_answers_json_for_viewers_too(client, login, db: Session, issue: Issue) -> None:  # type: ignore[no-untyped-def]
    login("viewer")
    csrf = token(client)
    headers = {"X-CSRFToken": csrf}
    good = client.post("/admin/newsletters/preview", data=form_for(issue, ""), headers=headers).get_json()
    assert good["ok"] and good["ready"] and "Hi Alex," in good["html"]
    assert [check["ok"] for check in good["checks"]] == [True] * 5
    broken = client.post(
        "/admin/newsletters/preview", data=form_for(issue, "", essay="a\n{{ oops"), headers=headers
    ).get_json()
    assert not broken["ok"] and broken["html"] == ""
    assert broken["errors"][0]["field"] == "essay" and broken["errors"][0]["line"] == 2
    assert broken["errors"][0]["text"].startswith("Essay, line 2: template syntax")
    as_member = client.post(
        "/admin/newsletters/preview", data=form_for(issue, "", preview_email=issue.spotlight.email), headers=headers
    ).get_json()
    assert "Hi Kwame," in as_member["html"] and as_member["recipient"] == "Kwame Mensah <kwame@example.org>"
    assert db.scalars(select(Campaign)).all() == []


def test_a_pasted_ten_megabyte_image_gets_a_clear_message_in_the_form(client, login, issue: Issue) -> None:  # type: ignore[no-untyped-def]
    login("coordinator")
    essay = "Our garden:\n![garden](data:image/jpeg;base64," + "/9j/4AAQSkZJRgABAQ" * 560_000 + ")"
    response = client.post(NEW, data=form_for(issue, token(client, NEW), essay=essay))
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "An image is pasted into the essay (10.1 MB)" in page and "Essay</a>, line 2" in page


def test_pickers_search_as_json_and_without_javascript(client, login, issue: Issue) -> None:  # type: ignore[no-untyped-def]
    login("viewer")
    found = client.get("/admin/newsletters/search?kind=stories&q=handover").get_json()
    assert [row["title"] for row in found["results"]] == ["The handover question"]
    kept = client.get(f"/admin/newsletters/search?kind=stories&q=handover&include={issue.members_only.id}").get_json()
    assert {row["title"] for row in kept["results"]} == {"The handover question", "Night shifts"}
    library = client.get("/admin/newsletters/search?kind=resources&q=friday").get_json()
    assert [row["title"] for row in library["results"]] == ["The Friday fifteen"]
    members = client.get("/admin/newsletters/search?kind=members&q=kwa").get_json()
    assert [row["detail"] for row in members["results"]] == ["kwame@example.org"]
    assert client.get("/admin/newsletters/search?kind=secrets").status_code == 404

    login("coordinator")
    page = client.post(
        NEW, data=form_for(issue, token(client, NEW), action="search", story_q="meeting", story_ids=[])
    ).get_data(as_text=True)
    picker = page[page.index('id="story-list"') : page.index("</ul>", page.index('id="story-list"'))]
    assert "Saying no in a meeting" in picker and "The handover question" not in picker


def test_send_now_refuses_without_an_audience_and_shows_why(client, login, db: Session, issue: Issue) -> None:  # type: ignore[no-untyped-def]
    login("coordinator")
    response = client.post(NEW, data=form_for(issue, token(client, NEW), action="save", when="now"))
    assert response.status_code == 400
    assert "choose at least one list or segment" in response.get_data(as_text=True)
    campaign = db.scalars(select(Campaign)).one()  # the draft is kept
    assert campaign.status == CampaignStatus.DRAFT


def test_send_now_enforces_the_presend_checks(client, login, db: Session, issue: Issue, redis_conn) -> None:  # type: ignore[no-untyped-def]
    everyone = MailingList(name="Everyone", slug="everyone")
    db.add(everyone)
    db.commit()
    login("coordinator")
    long_essay = ESSAY + ("A long paragraph about care in practice. " * 40 + "\n\n") * 70
    csrf = token(client, NEW)
    clipped = client.post(
        NEW, data=form_for(issue, csrf, essay=long_essay, action="save", when="now", list_ids=[str(everyone.id)])
    )
    assert clipped.status_code == 400 and "Gmail cuts off emails over 102 KB" in clipped.get_data(as_text=True)
    campaign = db.scalars(select(Campaign)).one()
    assert campaign.status == CampaignStatus.DRAFT

    sent = client.post(
        f"/admin/newsletters/{campaign.id}",
        data=form_for(issue, csrf, action="save", when="now", list_ids=[str(everyone.id)]),
    )
    assert sent.status_code == 302 and sent.headers["Location"].endswith(f"/admin/campaigns/{campaign.id}")
    db.refresh(campaign)
    assert campaign.status == CampaignStatus.SENDING and campaign.list_ids == [everyone.id]
    actions = db.scalars(select(AuditEvent.action).where(AuditEvent.target == f"campaign {campaign.id}")).all()
    assert actions == ["newsletter.create", "newsletter.update", "newsletter.send"]
    assert redis_conn.keys("rq:queue:*")  # the planner's doorbell rang

    locked = client.get(f"/admin/newsletters/{campaign.id}").get_data(as_text=True)
    assert "This newsletter is sending, so it can no longer be changed." in locked
    again = client.post(f"/admin/newsletters/{campaign.id}", data=form_for(issue, csrf, action="save"))
    assert again.status_code == 400 and "no longer be edited" in again.get_data(as_text=True)


def test_scheduling_needs_a_future_time(client, login, db: Session, issue: Issue) -> None:  # type: ignore[no-untyped-def]
    everyone = MailingList(name="Everyone", slug="everyone")
    db.add(everyone)
    db.commit()
    login("coordinator")
    csrf = token(client, NEW)
    base = form_for(issue, csrf, action="save", when="schedule", list_ids=[str(everyone.id)], timezone="Europe/Lisbon")
    bad = client.post(NEW, data={**base, "send_at": "soon"})
    assert bad.status_code == 400 and "give the date and time to send" in bad.get_data(as_text=True)
    campaign = db.scalars(select(Campaign)).one()
    later = (datetime.now() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    good = client.post(f"/admin/newsletters/{campaign.id}", data={**base, "send_at": later})
    assert good.status_code == 302
    db.refresh(campaign)
    assert (campaign.status, campaign.schedule_timezone) == ("scheduled", "Europe/Lisbon")
    page = client.get(f"/admin/newsletters/{campaign.id}").get_data(as_text=True)
    assert f'name="send_at" type="datetime-local" value="{later}"' in page  # back in Lisbon time
    assert '<option value="Europe/Lisbon" selected>' in page


def test_send_a_test_from_the_composer(make_app, make_settings, smtp_sink, db: Session, issue: Issue) -> None:  # type: ignore[no-untyped-def]
    client = make_app(make_settings(smtp_port=smtp_sink.port)).test_client()
    accounts.create_admin(db, "rosa@example.org", "correct horse battery", Role.COORDINATOR, name="Rosa Martínez")
    db.commit()
    login_page = client.get("/login").get_data(as_text=True)
    client.post("/login", data={"email": "rosa@example.org", "password": "correct horse battery",
                                "csrf_token": csrf_token_from(login_page)})  # fmt: skip
    response = client.post(NEW, data=form_for(issue, token(client, NEW), action="test"))
    assert response.status_code == 200
    assert "A test went to rosa@example.org: “[TEST] Care: What care looks like in practice”." in html_lib.unescape(
        response.get_data(as_text=True)
    )
    (received,) = smtp_sink.wait_for(1)
    message = email.message_from_bytes(received.data, policy=email.policy.default)
    assert message["Subject"] == "[TEST] Care: What care looks like in practice"
    assert received.rcpt_tos == ["rosa@example.org"]
    assert "Hi Rosa," in message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    event = db.scalars(select(AuditEvent).where(AuditEvent.action == "newsletter.test_send")).one()
    assert event.actor == "rosa@example.org" and event.target == "newsletter draft"
    assert db.scalars(select(Campaign)).all() == []  # a test saves nothing
