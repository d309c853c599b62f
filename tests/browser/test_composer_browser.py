"""The newsletter composer in headless Chromium: compose a value-themed issue, watch the live preview
at phone width, send a test that arrives over SMTP, and save the draft; and the same form without
JavaScript.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from cop_mail import accounts, mailcatcher
from cop_mail.models import Campaign, Role
from cop_mail.settings import Settings
from tests.browser.conftest import PASSWORD
from tests.integration.test_compose_newsletter import Issue, seed_issue

pytestmark = pytest.mark.browser

ESSAY = """Care is the quiet part of our work, {{ member.first_name | default("friend") }}.
This month we asked what care looks like **in practice**,
and your answers were concrete: a checklist that starts with "who might this affect?", and a
standing fifteen minutes each Friday to ask how people are doing.
"""
DESK = {"width": 1440, "height": 1000}


@pytest.fixture
def issue(db: Session, settings: Settings) -> Issue:
    found = seed_issue(db, settings.instance_path)
    accounts.create_admin(db, "rosa@example.org", PASSWORD, Role.COORDINATOR, name="Rosa Martínez")
    db.commit()
    return found


@pytest.fixture
def rosa(new_page: Callable[..., Page], logged_in: Callable[..., Page], issue: Issue) -> Callable[..., Page]:
    """Rosa, the coordinator, logged in at her desk; `rosa(java_script_enabled=False)` for a browser without scripts."""
    return lambda **options: logged_in("coordinator", "rosa@example.org", on=new_page(**DESK, **options))


def frame_width(page: Page, selector: str) -> dict[str, int]:
    frame = page.locator(selector).element_handle().content_frame()
    assert frame is not None
    return frame.evaluate("() => ({scroll: document.documentElement.scrollWidth, view: window.innerWidth})")


def test_compose_a_value_themed_newsletter_preview_it_on_a_phone_and_send_a_test(
    rosa: Callable[..., Page],
    live_server: Any,
    issue: Issue,
    db: Session,
    shot: Callable[..., Path],
    check_a11y: Callable[..., Any],
) -> None:
    page = rosa()
    page.goto("/admin/newsletters")
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
    check_a11y(page, "the composer")
    shot(page.locator("#preview-card"), "1-preview")
    shot(page.locator("#preview-phone"), "2-phone-375")

    page.get_by_label("Your essay (Markdown)").fill("Thank you, {{ member.first_name\n")
    expect(page.locator("#preview-errors")).to_contain_text("Essay, line 1: template syntax", timeout=10_000)
    shot(page.locator("#preview-errors"), "3-error")
    page.get_by_label("Your essay (Markdown)").fill(ESSAY)
    expect(page.locator("#preview-errors")).to_be_empty(timeout=10_000)

    page.get_by_label("Preview as member (email address; empty: a sample member)").fill("amira@example.org")
    expect(phone.get_by_text("Hi Amira,")).to_be_visible(timeout=10_000)

    page.get_by_role("button", name="Send a test to rosa@example.org").click()
    expect(page.get_by_text("A test went to rosa@example.org")).to_be_visible()
    received = live_server.wait_for_mail("rosa@example.org", "[TEST]")
    assert mailcatcher.list_messages(live_server.outbox)[0] == 1  # one test, to Rosa alone
    assert received.subject == "[TEST] Care: What care looks like in practice"
    _, body = received.bodies()
    assert "Hi Rosa," in body and "The handover question" in body
    expect(phone.get_by_text("Hi Amira,")).to_be_visible()  # the page came back with the same preview
    shot(page, "4-test-sent")

    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved as a draft.")).to_be_visible()
    campaign = db.scalars(select(Campaign)).one()
    assert campaign.content["story_ids"] == [issue.public.id]
    assert campaign.content["resource_ids"] == [issue.method.id]
    expect(page.frame_locator("#preview-phone").get_by_text("The handover question").first).to_be_visible()
    shot(page, "5-saved")


def test_the_composer_works_without_javascript(
    rosa: Callable[..., Page], db: Session, shot: Callable[..., Path], check_a11y: Callable[..., Any]
) -> None:
    page = rosa(java_script_enabled=False)
    page.goto("/admin/newsletters/new")
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
    check_a11y(page, "the composer without JavaScript")
    shot(page, "1-preview-without-javascript")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved as a draft.")).to_be_visible()
    assert db.scalars(select(Campaign.name)).all() == ["Care without scripts"]
