"""The public archive in headless Chromium with JavaScript off: it reads, links, fits a phone, asks
nothing of other sites, and a withdrawn story is gone on the next load.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session

from cop_mail.db import utcnow
from cop_mail.models import CampaignStatus, StoryConsent
from cop_mail.settings import Settings
from cop_mail.stories import moderation, roundups
from tests.integration.test_stories import add_member, add_value, approved_story, png_bytes

pytestmark = pytest.mark.browser

STORY_TEXT = """When the new intake arrived in the middle of a storm, we had no plan for the first week.

What we did have was a habit of asking one question at every handover: **who is carrying too much
right now?** That question turned a chaotic week into one people still talk about.

- ask it at every handover
- write the answer on the board
"""


def visit(page: Page, path: str, status: int = 200) -> float:
    started = time.perf_counter()
    response = page.goto(path, wait_until="load")
    elapsed = time.perf_counter() - started
    assert response is not None and response.status == status, (path, response and response.status)
    return elapsed


def test_the_archive_reads_without_javascript_and_fits_a_phone(
    new_page: Callable[..., Page], outside_requests: list[str], db: Session, settings: Settings,
    shot: Callable[..., Path], check_a11y: Callable[..., Any],
) -> None:  # fmt: skip
    care = add_value(db, "Care", 0, "Paying attention to the people our work touches.")
    courage = add_value(db, "Courage", 1)
    folder = settings.instance_path
    story = approved_story(
        db, folder, add_member(db, "amira@example.org", "Amira Haddad"), title="The handover question",
        body=STORY_TEXT, values=[care], uploads=[("storm.png", png_bytes(640, 360, (31, 95, 140)))],
    )  # fmt: skip
    moderation.set_featured(db, story.id, "c@example.org", True)
    quiet = approved_story(
        db, folder, add_member(db, "jonas@example.org", "Jonas Øberg"), title="Saying no in a meeting",
        body="It was a small *no*, and it needed saying.", values=[courage], consent=StoryConsent.PUBLIC_ANONYMOUS,
    )  # fmt: skip
    approved_story(
        db, folder, add_member(db, "li@example.org", "Li Wei"), title="Members only story",
        consent=StoryConsent.MEMBERS_ONLY,
    )  # fmt: skip
    roundup = roundups.compile_roundup(db, "c@example.org", "Stories from November")
    campaign = roundups.create_campaign_for(db, settings.public_url, roundup, "c@example.org", subject="November")
    campaign.status, campaign.finished_at = CampaignStatus.SENT, utcnow()
    db.commit()

    page = new_page(width=1200, java_script_enabled=False)
    timings = {}
    timings["index"] = visit(page, "/archive")
    expect(page.locator('link[rel="alternate"][type="application/atom+xml"]')).to_have_count(1)
    expect(page.locator('meta[property="og:title"]')).to_have_attribute(
        "content", "Test Community: stories and newsletters"
    )
    expect(page.get_by_role("heading", name="Featured stories")).to_be_visible()
    expect(page.get_by_role("link", name="November")).to_be_visible()
    assert "Members only story" not in page.content()
    check_a11y(page, "the archive")
    shot(page, "1-index")

    page.get_by_role("link", name="The handover question").first.click()
    page.wait_for_load_state("load")
    assert page.url.endswith(f"/archive/stories/{story.id}")
    expect(page.get_by_text("Told by Amira Haddad")).to_be_visible()
    picture = page.locator(".story-images img").bounding_box()
    assert picture is not None and picture["width"] > 300  # the picture loaded and shows
    expect(page.locator("strong", has_text="who is carrying too much")).to_be_visible()
    check_a11y(page, "a story in the archive")
    shot(page, "2-story")

    timings["value"] = visit(page, "/archive/values/courage")
    expect(page.get_by_text("Saying no in a meeting")).to_be_visible()
    assert "Jonas" not in page.content()
    check_a11y(page, "a value's stories")
    shot(page, "3-value")

    timings["issue"] = visit(page, f"/archive/issues/{campaign.id}")
    expect(page.get_by_role("heading", name="Stories of Care")).to_be_visible()
    check_a11y(page, "a roundup in the archive")
    shot(page, "4-roundup")

    timings["featured"] = visit(page, "/archive/featured")
    check_a11y(page, "the featured stories")
    shot(page, "5-featured")

    phone = new_page(width=375, java_script_enabled=False)
    visit(phone, f"/archive/stories/{story.id}")
    width = phone.locator("body").bounding_box()
    assert width is not None and width["width"] <= 375
    shot(phone, "6-story-on-a-phone")

    # The author withdraws consent: the next load shows it gone.
    moderation.withdraw(db, story.id, story.author_id)
    db.commit()
    visit(page, f"/archive/stories/{story.id}", 410)
    expect(page.get_by_role("heading", name="This story was withdrawn")).to_be_visible()
    check_a11y(page, "a withdrawn story")
    shot(page, "7-withdrawn")
    visit(page, "/archive")
    assert "The handover question" not in page.content()
    assert quiet.title in page.content()
    assert outside_requests == []  # no third-party requests, no tracking, on any page
    for name, seconds in timings.items():
        assert seconds < 2.0, f"{name} took {seconds:.2f} s"
