"""The public archive: pages, Open Graph, the Atom feed, privacy, and withdrawal taking effect at once."""

from __future__ import annotations

import re
from datetime import timedelta

import feedparser
from sqlalchemy.orm import Session

from cop_mail.db import utcnow
from cop_mail.models import Campaign, CampaignStatus, StoryConsent
from cop_mail.settings import Settings
from cop_mail.stories import moderation, roundups
from tests.integration.test_stories import add_member, add_value, approved_story, png_bytes, submit

FEED_LINK = re.compile(r'<link rel="alternate" type="application/atom\+xml"[^>]*href="/archive/feed\.atom"')


def sent_campaign(session: Session, kind: str, subject: str, **content: object) -> Campaign:
    now = utcnow()
    campaign = Campaign(
        kind=kind, name=subject, subject=subject, preheader=f"About {subject}", status=CampaignStatus.SENT,
        content=dict(content), started_at=now - timedelta(minutes=5), finished_at=now,
    )  # fmt: skip
    session.add(campaign)
    session.commit()
    return campaign


def page(client, path: str, status: int = 200) -> str:  # type: ignore[no-untyped-def]
    response = client.get(path)
    assert response.status_code == status, (path, response.status_code)
    return response.get_data(as_text=True)


def test_every_archive_page_links_the_feed_and_carries_open_graph(client, db: Session, settings: Settings) -> None:
    care = add_value(db, "Open Care", description="Looking after each other.")
    story = approved_story(db, settings.instance_path, add_member(db), values=[care], uploads=[("p.png", png_bytes())])
    moderation.set_featured(db, story.id, "c@example.org", True)
    db.commit()
    issue = sent_campaign(db, "newsletter", "On care", theme_value_id=care.id, essay="Hello {{ member.first_name }}!")

    paths = [
        "/archive", "/archive/stories", "/archive/values", "/archive/values/open-care", "/archive/featured",
        f"/archive/stories/{story.id}", f"/archive/issues/{issue.id}",
    ]  # fmt: skip
    for path in paths:
        html = page(client, path)
        assert FEED_LINK.search(html), path
        assert '<meta property="og:title"' in html and '<meta property="og:url" content="http://cop-mail.test' in html
        assert "<script" not in html, path
    story_html = page(client, f"/archive/stories/{story.id}")
    assert f'og:image" content="http://cop-mail.test/archive/stories/{story.id}/images/' in story_html
    assert '<meta property="og:type" content="article">' in story_html
    issue_html = page(client, f"/archive/issues/{issue.id}")
    assert "Hello !" in issue_html and "{{" not in issue_html  # personalisation never reaches the web version


def test_pages_say_no_to_scripts_and_revalidate_cheaply(client, db: Session, settings: Settings) -> None:
    approved_story(db, settings.instance_path, add_member(db))
    response = client.get("/archive")
    assert "script-src" not in response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-cache"
    again = client.get("/archive", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304


def test_only_public_stories_show_and_names_only_where_allowed(client, db: Session, settings: Settings) -> None:
    folder = settings.instance_path
    named = approved_story(db, folder, add_member(db, "ana@example.org", "Ana Silva"), title="Named story")
    anonymous = approved_story(
        db, folder, add_member(db, "bo@example.org", "Bo Berg"), title="Anonymous story",
        consent=StoryConsent.PUBLIC_ANONYMOUS,
    )  # fmt: skip
    members_only = approved_story(
        db, folder, add_member(db, "cy@example.org", "Cy Cole"), title="Members story",
        consent=StoryConsent.MEMBERS_ONLY,
    )  # fmt: skip
    waiting = submit(db, folder, add_member(db, "dee@example.org", "Dee Day"), title="Waiting story")

    listing = page(client, "/archive/stories")
    assert "Named story" in listing and "Told by Ana Silva" in listing
    assert "Anonymous story" in listing and "Bo Berg" not in listing
    assert "Told by a member of Test Community" in listing
    assert "Members story" not in listing and "Waiting story" not in listing
    assert "Told by a member of Test Community" in page(client, f"/archive/stories/{anonymous.id}")
    page(client, f"/archive/stories/{members_only.id}", 404)
    page(client, f"/archive/stories/{waiting.id}", 404)
    for path in ("/archive", "/archive/stories", f"/archive/stories/{named.id}", "/archive/feed.atom"):
        html = page(client, path)
        assert "@example.org" not in html, path  # no addresses anywhere public


def test_a_value_page_lists_its_public_stories_and_takes_ids(client, db: Session, settings: Settings) -> None:
    care, courage = add_value(db, "Care"), add_value(db, "Courage", 1)
    member = add_member(db)
    approved_story(db, settings.instance_path, member, title="Caring", values=[care])
    approved_story(db, settings.instance_path, member, title="Brave", values=[courage])
    html = page(client, "/archive/values/care")
    assert "Caring" in html and "Brave" not in html
    response = client.get(f"/archive/values/{care.id}")
    assert response.status_code == 301 and response.headers["Location"].endswith("/archive/values/care")
    page(client, "/archive/values/no-such-value", 404)
    page(client, "/archive/values/\u00b2", 404)  # a digit to str.isdigit, but no id


def test_a_sent_roundup_shows_only_its_public_stories(client, db: Session, settings: Settings) -> None:
    folder = settings.instance_path
    public = approved_story(db, folder, add_member(db), title="Shared with all")
    private = approved_story(
        db, folder, add_member(db, "bo@example.org"), title="Shared with members", consent=StoryConsent.MEMBERS_ONLY
    )
    roundup = roundups.compile_roundup(db, "c@example.org", "November stories")
    campaign = roundups.create_campaign_for(db, settings.public_url, roundup, "c@example.org", subject="November")
    campaign.status = CampaignStatus.SENT
    campaign.finished_at = utcnow()
    db.commit()
    assert roundup.story_ids == [public.id, private.id]

    html = page(client, f"/archive/issues/{campaign.id}")
    assert "Shared with all" in html and "Shared with members" not in html
    assert "meet_token" not in html and "@@cm" not in html
    assert "November" in page(client, "/archive")
    draft = sent_campaign(db, "newsletter", "Draft one")
    draft.status = CampaignStatus.DRAFT
    db.commit()
    page(client, f"/archive/issues/{draft.id}", 404)
    assert "Draft one" not in page(client, "/archive")


def test_the_feed_is_valid_atom_and_loses_a_withdrawn_story_at_once(client, db: Session, settings: Settings) -> None:
    care = add_value(db, "Care")
    author = add_member(db, "ana@example.org", "Ana Silva")
    story = approved_story(db, settings.instance_path, author, title="Garden <days>", values=[care], body="We *dug*.")
    other = approved_story(db, settings.instance_path, add_member(db, "bo@example.org"), title="Another")
    sent_campaign(db, "roundup", "Roundup of October")

    response = client.get("/archive/feed.atom")
    assert response.mimetype == "application/atom+xml"
    parsed = feedparser.parse(response.data)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert parsed.feed.title == "Test Community: stories and newsletters"
    entries = {entry.title: entry for entry in parsed.entries}
    assert set(entries) == {"Garden <days>", "Another", "Roundup of October"}
    garden = entries["Garden <days>"]
    assert garden.link == f"http://cop-mail.test/archive/stories/{story.id}"
    assert garden.author == "Ana Silva"
    assert "<em>dug</em>" in garden.content[0].value
    assert [tag.term for tag in garden.tags] == ["Care"]

    moderation.withdraw(db, story.id, author.id)
    db.commit()
    parsed = feedparser.parse(client.get("/archive/feed.atom").data)
    assert {entry.title for entry in parsed.entries} == {"Another", "Roundup of October"}
    assert "Garden" not in page(client, "/archive")
    assert "This story was withdrawn" in page(client, f"/archive/stories/{story.id}", 410)
    assert other.id in [int(e.link.rsplit("/", 1)[1]) for e in parsed.entries if "/stories/" in e.link]


def test_an_empty_archive_still_serves_a_valid_feed(client, db: Session) -> None:
    parsed = feedparser.parse(client.get("/archive/feed.atom").data)
    assert parsed.bozo == 0 and parsed.entries == []
    assert "No newsletters or roundups have been sent yet" in page(client, "/archive")


def test_pictures_are_served_only_while_the_story_is_public(client, db: Session, settings: Settings) -> None:
    author = add_member(db)
    story = approved_story(db, settings.instance_path, author, uploads=[("p.png", png_bytes(30, 20))])
    url = f"/archive/stories/{story.id}/images/{story.images[0].id}"
    response = client.get(url)
    assert response.status_code == 200 and response.mimetype == "image/png"
    assert response.data == png_bytes(30, 20)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    response.close()
    assert 'width="30" height="20"' in page(client, f"/archive/stories/{story.id}")
    page(client, f"/archive/stories/{story.id + 1}/images/{story.images[0].id}", 404)
    moderation.withdraw(db, story.id, author.id)
    db.commit()
    assert client.get(url).status_code == 404
