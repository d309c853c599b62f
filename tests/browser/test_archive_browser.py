"""The public archive in headless Chromium with JavaScript off: it reads, links, fits a phone, and a
withdrawn story is gone on the next load. Screenshots go to test-artifacts/archive/.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from sqlalchemy.orm import Session
from werkzeug.serving import make_server

from cop_mail.db import utcnow
from cop_mail.models import CampaignStatus, StoryConsent
from cop_mail.settings import Settings
from cop_mail.stories import moderation, roundups
from tests.integration.test_stories import add_member, add_value, approved_story, png_bytes

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]

CHROMIUM = os.environ.get("COP_MAIL_CHROMIUM", "/usr/bin/chromium")
STORY_TEXT = """When the new intake arrived in the middle of a storm, we had no plan for the first week.

What we did have was a habit of asking one question at every handover: **who is carrying too much
right now?** That question turned a chaotic week into one people still talk about.

- ask it at every handover
- write the answer on the board
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install -y chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
        )  # fmt: skip
        yield browser
        browser.close()


@pytest.fixture
def live_server(app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


@pytest.fixture
def shots(artifacts_dir: Path) -> Path:
    folder = artifacts_dir / "archive"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def open_page(browser: Browser, width: int = 1200) -> Page:
    context = browser.new_context(java_script_enabled=False, viewport={"width": width, "height": 900})
    page = context.new_page()
    outside: list[str] = []
    page.on("request", lambda request: outside.append(request.url) if "127.0.0.1" not in request.url else None)
    page.outside = outside  # type: ignore[attr-defined]
    return page


def visit(page: Page, url: str, status: int = 200) -> float:
    started = time.perf_counter()
    response = page.goto(url, wait_until="load")
    elapsed = time.perf_counter() - started
    assert response is not None and response.status == status, (url, response and response.status)
    return elapsed


def test_the_archive_reads_without_javascript_and_fits_a_phone(
    browser: Browser, live_server: str, db: Session, settings: Settings, shots: Path
) -> None:
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

    page = open_page(browser)
    timings = {}
    timings["index"] = visit(page, f"{live_server}/archive")
    assert page.locator('link[rel="alternate"][type="application/atom+xml"]').count() == 1
    assert page.locator('meta[property="og:title"]').get_attribute("content") == (
        "Test Community: stories and newsletters"
    )
    assert page.get_by_role("heading", name="Featured stories").is_visible()
    assert page.get_by_role("link", name="November").is_visible()
    assert "Members only story" not in page.content()
    page.screenshot(path=str(shots / "archive-index.png"), full_page=True)

    page.get_by_role("link", name="The handover question").first.click()
    page.wait_for_load_state("load")
    assert page.url.endswith(f"/archive/stories/{story.id}")
    assert page.get_by_text("Told by Amira Haddad").is_visible()
    picture = page.locator(".story-images img").bounding_box()
    assert picture is not None and picture["width"] > 300  # the picture loaded and shows
    assert page.locator("strong", has_text="who is carrying too much").is_visible()
    page.screenshot(path=str(shots / "archive-story.png"), full_page=True)

    timings["value"] = visit(page, f"{live_server}/archive/values/courage")
    assert page.get_by_text("Saying no in a meeting").is_visible()
    assert "Jonas" not in page.content()
    page.screenshot(path=str(shots / "archive-value.png"), full_page=True)

    timings["issue"] = visit(page, f"{live_server}/archive/issues/{campaign.id}")
    assert page.get_by_role("heading", name="Stories of Care").is_visible()
    page.screenshot(path=str(shots / "archive-roundup.png"), full_page=True)

    timings["featured"] = visit(page, f"{live_server}/archive/featured")
    page.screenshot(path=str(shots / "archive-featured.png"), full_page=True)
    assert page.outside == []  # type: ignore[attr-defined]  # no third-party requests, no tracking

    phone = open_page(browser, 375)
    visit(phone, f"{live_server}/archive/stories/{story.id}")
    width = phone.locator("body").bounding_box()
    assert width is not None and width["width"] <= 375
    phone.screenshot(path=str(shots / "archive-story-phone.png"), full_page=True)

    # The author withdraws consent: the next load shows it gone.
    moderation.withdraw(db, story.id, story.author_id)
    db.commit()
    visit(page, f"{live_server}/archive/stories/{story.id}", 410)
    assert page.get_by_role("heading", name="This story was withdrawn").is_visible()
    page.screenshot(path=str(shots / "archive-withdrawn.png"), full_page=True)
    visit(page, f"{live_server}/archive")
    assert "The handover question" not in page.content()
    assert quiet.title in page.content()
    for name, seconds in timings.items():
        assert seconds < 2.0, f"{name} took {seconds:.2f} s"
