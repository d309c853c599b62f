"""The newsletter composer in headless Chromium: compose a value-themed issue, watch the live preview
at phone width, send a test that arrives in the SMTP sink, and save the draft; and the same form
without JavaScript. Screenshots go to test-artifacts/composer/.
"""

from __future__ import annotations

import email
import email.policy
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.serving import make_server

from cop_mail import accounts
from cop_mail.models import Campaign, Role
from cop_mail.settings import Settings
from tests.integration.test_compose_newsletter import Issue, seed_issue

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]

CHROMIUM = os.environ.get("COP_MAIL_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "correct horse battery"
ESSAY = """Care is the quiet part of our work, {{ member.first_name | default("friend") }}.
This month we asked what care looks like **in practice**,
and your answers were concrete: a checklist that starts with "who might this affect?", and a
standing fifteen minutes each Friday to ask how people are doing.
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
def sink_settings(make_settings: Callable[..., Settings], smtp_sink: Any, redis_conn: Any) -> Settings:
    return make_settings(smtp_port=smtp_sink.port)


@pytest.fixture
def live_server(make_app: Callable[..., Any], sink_settings: Settings) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, make_app(sink_settings), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


@pytest.fixture
def shots(artifacts_dir: Path) -> Path:
    folder = artifacts_dir / "composer"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def issue(db: Session, sink_settings: Settings) -> Issue:
    found = seed_issue(db, sink_settings.instance_path)
    accounts.create_admin(db, "rosa@example.org", PASSWORD, Role.COORDINATOR, name="Rosa Martínez")
    db.commit()
    return found


def logged_in(browser: Browser, live_server: str, javascript: bool = True) -> Page:
    context = browser.new_context(java_script_enabled=javascript, viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    page.goto(f"{live_server}/login")
    page.get_by_label("Email").fill("rosa@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/admin**")
    return page


def frame_width(page: Page, selector: str) -> dict[str, int]:
    frame = page.locator(selector).element_handle().content_frame()  # type: ignore[union-attr]
    assert frame is not None
    return frame.evaluate(  # type: ignore[no-any-return]
        "() => ({scroll: document.documentElement.scrollWidth, view: window.innerWidth})"
    )


def test_compose_a_value_themed_newsletter_preview_it_on_a_phone_and_send_a_test(
    browser: Browser, live_server: str, issue: Issue, smtp_sink: Any, db: Session, shots: Path
) -> None:
    page = logged_in(browser, live_server)
    page.goto(f"{live_server}/admin/newsletters")
    page.get_by_role("link", name="New newsletter").click()
    expect(page.get_by_role("heading", name="New newsletter")).to_be_visible()

    page.get_by_label("Value this issue is about").select_option(label="Care")
    page.get_by_label("Title", exact=True).fill("What care looks like in practice")
    page.get_by_label("Your essay (Markdown)").fill(ESSAY)
    page.get_by_label("Search stories").fill("handover")
    story = page.locator("#story-list").get_by_label("The handover question")
    expect(page.locator("#story-list li")).to_have_count(1)  # searched in place, without reloading
    story.check()
    page.locator("#resource-list").get_by_label("The Friday fifteen").check()
    page.get_by_label("Member's email address").fill("kwame@example.org")
    page.get_by_label("A few lines about them").fill("Kwame welcomes every new volunteer with a walk.")

    phone = page.frame_locator("#preview-phone")
    expect(phone.get_by_text("The handover question").first).to_be_visible(timeout=10_000)
    expect(phone.get_by_text("Hi Alex,")).to_be_visible()
    expect(phone.get_by_text("Kwame Mensah")).to_be_visible()
    expect(page.locator("#preview-subject")).to_have_text("Care: What care looks like in practice")
    expect(page.locator("#checks li.ok")).to_have_count(5)
    expect(page.frame_locator("#preview-desktop").get_by_text("Kwame Mensah")).to_be_visible()
    widths = frame_width(page, "#preview-phone")
    assert widths["view"] == 375 and widths["scroll"] <= 375, widths
    assert frame_width(page, "#preview-desktop")["view"] == 600
    page.locator("#preview-card").screenshot(path=str(shots / "composer-preview.png"))
    page.locator("#preview-phone").screenshot(path=str(shots / "composer-phone-375.png"))

    page.get_by_label("Your essay (Markdown)").fill("Thank you, {{ member.first_name\n")
    expect(page.locator("#preview-errors")).to_contain_text("Essay, line 1: template syntax", timeout=10_000)
    page.locator("#preview-errors").screenshot(path=str(shots / "composer-error.png"))
    page.get_by_label("Your essay (Markdown)").fill(ESSAY)
    expect(page.locator("#preview-errors")).to_be_empty(timeout=10_000)

    page.get_by_label("Preview as member (email address; empty: a sample member)").fill("amira@example.org")
    expect(phone.get_by_text("Hi Amira,")).to_be_visible(timeout=10_000)

    page.get_by_role("button", name="Send a test to rosa@example.org").click()
    expect(page.get_by_text("A test went to rosa@example.org")).to_be_visible()
    (received,) = smtp_sink.wait_for(1)
    message = email.message_from_bytes(received.data, policy=email.policy.default)
    assert message["Subject"] == "[TEST] Care: What care looks like in practice"
    body = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "Hi Rosa," in body and "The handover question" in body
    expect(phone.get_by_text("Hi Amira,")).to_be_visible()  # the page came back with the same preview
    page.screenshot(path=str(shots / "composer-test-sent.png"), full_page=True)

    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved as a draft.")).to_be_visible()
    campaign = db.scalars(select(Campaign)).one()
    assert campaign.content["story_ids"] == [issue.public.id]
    assert campaign.content["resource_ids"] == [issue.method.id]
    expect(page.frame_locator("#preview-phone").get_by_text("The handover question").first).to_be_visible()
    page.screenshot(path=str(shots / "composer-saved.png"), full_page=True)


def test_the_composer_works_without_javascript(
    browser: Browser, live_server: str, issue: Issue, db: Session, shots: Path
) -> None:
    page = logged_in(browser, live_server, javascript=False)
    page.goto(f"{live_server}/admin/newsletters/new")
    page.get_by_label("Value this issue is about").select_option(label="Care")
    page.get_by_label("Title", exact=True).fill("Care without scripts")
    page.get_by_label("Your essay (Markdown)").fill(ESSAY)
    page.get_by_label("Search stories").fill("meeting")
    page.locator("#stories-heading ~ .search-row").get_by_role("button", name="Search").click()
    page.locator("#story-list").get_by_label("Saying no in a meeting").check()
    page.get_by_role("button", name="Preview", exact=True).click()
    phone = page.frame_locator("#preview-phone")
    expect(phone.get_by_text("Saying no in a meeting").first).to_be_visible()
    expect(phone.get_by_text("A member of the community")).to_be_visible()
    page.screenshot(path=str(shots / "composer-no-javascript.png"), full_page=True)
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved as a draft.")).to_be_visible()
    assert db.scalars(select(Campaign.name)).all() == ["Care without scripts"]
