"""The admin's Illuminate and Resource pages: moderation, roundups, the library and values coverage."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from cop_mail.db import utcnow
from cop_mail.models import (
    AuditEvent,
    Campaign,
    CampaignKind,
    CampaignStatus,
    Delivery,
    MailingList,
    Member,
    Resource,
    Roundup,
    RoundupSchedule,
    StoryConsent,
    StoryStatus,
    member_values,
)
from cop_mail.resources import library
from cop_mail.settings import Settings
from cop_mail.stories.notify import STORY_CONFIRM
from tests.conftest import csrf_token_from
from tests.integration.test_stories import add_member, add_value, approved_story, png_bytes, submit


def token(client, path: str = "/admin/stories") -> str:  # type: ignore[no-untyped-def]
    return csrf_token_from(client.get(path).get_data(as_text=True))


def test_the_queue_shows_stories_waiting_and_viewers_cannot_moderate(
    client, login, db: Session, settings: Settings
) -> None:
    story = submit(
        db, settings.instance_path, add_member(db), title="Waiting for you", uploads=[("p.png", png_bytes())]
    )
    login("viewer")
    html = client.get("/admin/stories").get_data(as_text=True)
    assert "Waiting for you" in html and "To moderate (1)" in html
    detail = client.get(f"/admin/stories/{story.id}").get_data(as_text=True)
    assert "Public, with my name" in detail and "p.png" in detail
    image = client.get(f"/admin/stories/{story.id}/images/{story.images[0].id}")
    assert image.status_code == 200 and image.data == png_bytes()
    image.close()
    response = client.post(f"/admin/stories/{story.id}/approve", data={"csrf_token": token(client)})
    assert response.status_code == 403
    db.refresh(story)
    assert story.status == StoryStatus.SUBMITTED


def test_a_coordinator_approves_features_and_rejects(client, login, db: Session, settings: Settings) -> None:
    story = submit(db, settings.instance_path, add_member(db), title="A good one")
    other = submit(db, settings.instance_path, add_member(db, "bo@example.org"), title="Off topic")
    login("coordinator")
    csrf = token(client)
    client.post(f"/admin/stories/{story.id}/approve", data={"csrf_token": csrf, "share_as": "public"})
    client.post(f"/admin/stories/{story.id}/feature", data={"csrf_token": csrf, "featured": "1"})
    response = client.post(f"/admin/stories/{other.id}/reject", data={"csrf_token": csrf, "note": ""})
    assert "Write a note" in client.get(response.headers["Location"]).get_data(as_text=True)
    client.post(f"/admin/stories/{other.id}/reject", data={"csrf_token": csrf, "note": "Not ours"})
    db.expire_all()
    assert (story.status, story.featured, other.status) == ("approved", True, "rejected")
    assert "A good one" in client.get("/archive/featured").get_data(as_text=True)
    actions = db.scalars(select(AuditEvent.action).where(AuditEvent.target.like("story:%"))).all()
    assert actions == ["story.approve", "story.feature", "story.reject"]


def test_an_edit_or_wider_sharing_emails_the_author_a_confirm_link(
    client, login, db: Session, settings: Settings
) -> None:
    author = add_member(db)
    story = submit(db, settings.instance_path, author, consent=StoryConsent.MEMBERS_ONLY, body="Mine.")
    login("coordinator")
    response = client.post(
        f"/admin/stories/{story.id}/edit",
        data={
            "csrf_token": token(client),
            "title": story.title,
            "body": "Edited.",
            "note": "Shorter",
            "share_as": "public",
        },
    )
    assert "nothing is public until they do" in client.get(response.headers["Location"]).get_data(as_text=True)
    db.refresh(story)
    assert story.status == StoryStatus.PENDING_AUTHOR_CONFIRMATION and story.body == "Mine."
    message = db.scalars(select(Campaign).where(Campaign.kind == CampaignKind.TRANSACTIONAL)).one()
    assert message.content == {"template": STORY_CONFIRM, "context": {"story_id": story.id, "version": 1}}
    assert db.scalars(select(Delivery.member_id)).all() == [author.id]
    assert client.get(f"/archive/stories/{story.id}").status_code == 404


def test_values_and_practice_change_directly(client, login, db: Session, settings: Settings) -> None:
    care = add_value(db, "Care")
    story = submit(db, settings.instance_path, add_member(db))
    login("coordinator")
    client.post(f"/admin/stories/{story.id}/tags", data={"csrf_token": token(client), "value_ids": [str(care.id)]})
    db.refresh(story)
    assert [v.name for v in story.values] == ["Care"]


def test_making_a_roundup_with_nothing_new_is_skipped_and_said(client, login, db: Session) -> None:
    login("coordinator")
    response = client.post(
        "/admin/roundups", data={"csrf_token": token(client, "/admin/roundups"), "title": "November", "subject": "S"}
    )
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Roundup skipped: No stories were approved yet" in html
    assert "The last roundup (November) was skipped" in html
    assert db.scalars(select(Roundup.status)).all() == ["skipped"]
    assert db.scalar(select(Campaign.id)) is None


def test_making_and_sending_a_roundup(client, login, db: Session, settings: Settings, redis_conn) -> None:
    approved_story(db, settings.instance_path, add_member(db), title="Roundup story")
    mailing_list = MailingList(name="Everyone", slug="everyone", opt_in="single")
    db.add(mailing_list)
    db.commit()
    login("coordinator")
    page = client.get("/admin/roundups").get_data(as_text=True)
    assert "1 approved story since the beginning" in page
    response = client.post(
        "/admin/roundups",
        data={
            "csrf_token": csrf_token_from(page), "title": "November", "subject": "Stories, November",
            "mode": "since", "list_ids": [str(mailing_list.id)], "send_now": "1",
        },
    )  # fmt: skip
    assert "Roundup made with 1 story, and sending." in client.get(response.headers["Location"]).get_data(as_text=True)
    campaign = db.scalars(select(Campaign)).one()
    assert (campaign.kind, campaign.status, campaign.subject) == (
        "roundup",
        CampaignStatus.SENDING,
        "Stories, November",
    )
    assert f"plan-{campaign.id}".encode() in redis_conn.lrange("rq:queue:send", 0, -1)


def test_scheduling_a_recurring_roundup(client, login, db: Session) -> None:
    mailing_list = MailingList(name="Everyone", slug="everyone", opt_in="single")
    db.add(mailing_list)
    db.commit()
    login("coordinator")
    csrf = token(client, "/admin/roundups")
    response = client.post(
        "/admin/roundups/schedules",
        data={
            "csrf_token": csrf, "name": "Monthly", "frequency": "monthly", "nth": "1", "weekday": "0", "hour": "9",
            "timezone": "Europe/Lisbon", "list_ids": [str(mailing_list.id)], "send_automatically": "1",
        },
    )  # fmt: skip
    html = " ".join(client.get(response.headers["Location"]).get_data(as_text=True).split())
    assert "Scheduled: the next roundup is made on Monday" in html
    assert "the first Monday of each month at 09:00 Europe/Lisbon" in html
    schedule_id = db.scalars(select(RoundupSchedule.id)).one()
    toggled = client.post(f"/admin/roundups/schedules/{schedule_id}/active", data={"csrf_token": csrf, "active": "0"})
    assert toggled.status_code == 302
    db.expire_all()
    schedule = db.get(RoundupSchedule, schedule_id)
    assert schedule is not None
    assert not schedule.active and schedule.next_run_at is None
    response = client.post("/admin/roundups/schedules", data={"csrf_token": csrf, "name": "No audience"})
    assert "Choose at least one list or segment" in client.get(response.headers["Location"]).get_data(as_text=True)


def test_the_library_admin_adds_moderates_and_makes_a_digest(client, login, db: Session) -> None:
    member = add_member(db)
    suggestion = library.suggest_resource(db, member.id, library.ResourceInput(kind="tool", title="Member's tool"))
    db.commit()
    login("coordinator")
    page = client.get("/admin/resources").get_data(as_text=True)
    assert "Suggested by members (1)" in page
    csrf = csrf_token_from(page)
    client.post("/admin/resources", data={"csrf_token": csrf, "kind": "method", "title": "Walk and talk"})
    response = client.post("/admin/resources", data={"csrf_token": csrf, "kind": "method", "title": ""})
    assert "Give the resource a title." in client.get(response.headers["Location"]).get_data(as_text=True)
    client.post(f"/admin/resources/{suggestion.id}/moderate", data={"csrf_token": csrf, "action": "publish"})
    html = client.get("/admin/resources", query_string={"q": "walk"}).get_data(as_text=True)
    assert "Walk and talk" in html and "Member&#39;s tool" not in html

    cards = client.get("/admin/resources/cards.json", query_string={"q": "walk"}).get_json()["resources"]
    assert [card["title"] for card in cards] == ["Walk and talk"]

    ids = [str(r) for r in db.scalars(select(Resource.id)).all()]
    response = client.post(
        "/admin/resources/digest",
        data={"csrf_token": csrf, "resource_ids": ids, "subject": "New in the library", "list_ids": ["1"]},
    )
    assert response.status_code == 302
    digest = db.scalars(select(Campaign).where(Campaign.kind == CampaignKind.RESOURCE_DIGEST)).one()
    assert sorted(digest.content["resource_ids"]) == sorted(int(i) for i in ids)


def test_values_coverage_draws_a_chart_with_a_text_alternative(client, login, db: Session, settings: Settings) -> None:
    care, quiet = add_value(db, "Care"), add_value(db, "Quietude", 1)
    holders = [add_member(db, f"m{i}@example.org") for i in range(3)]
    db.execute(member_values.insert(), [{"member_id": m.id, "value_id": quiet.id} for m in holders])
    approved_story(db, settings.instance_path, holders[0], values=[care])
    now = utcnow()
    db.add(
        Campaign(
            kind="newsletter", name="On care", subject="On care", status=CampaignStatus.SENT,
            content={"theme_value_id": care.id}, finished_at=now - timedelta(days=1),
        )
    )  # fmt: skip
    db.add(Campaign(kind="newsletter", name="No theme", subject="x", status=CampaignStatus.SENT, content={}))
    db.commit()
    login("viewer")
    html = client.get("/admin/values/coverage").get_data(as_text=True)

    svg = html[html.index("<svg") : html.index("</svg>")]
    assert 'role="img"' in svg and 'aria-labelledby="coverage-title coverage-desc"' in svg
    assert "<desc" in svg and "newsletter theme" in svg
    assert svg.count("<rect") == 1 and svg.count("<circle") == 1  # shapes, not colour alone
    quiet_table = html[html.index("Values gone quiet") : html.index("Themes and stories by month")]
    assert re.search(r"<td>Quietude</td><td>3</td><td>never</td>", quiet_table)
    assert "<td>Care</td>" not in quiet_table
    assert "Coverage by month" in html and "theme, 1 story" in html


def test_values_coverage_with_no_values_explains_what_to_do(client, login, db: Session) -> None:
    login("viewer")
    html = client.get("/admin/values/coverage").get_data(as_text=True)
    assert "No values are named yet" in html and "<svg" not in html


def test_the_admin_navigation_links_the_illuminate_pages(client, login, db: Session) -> None:
    login("viewer")
    html = client.get("/admin/stories").get_data(as_text=True)
    for path in ("/admin/stories", "/admin/roundups", "/admin/resources"):
        assert f'href="{path}"' in html, path
    assert db.scalar(select(Member.id)) is None
