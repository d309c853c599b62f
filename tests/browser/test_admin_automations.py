"""Automations in the admin, in headless Chromium: the community's settings (tracking, the attention
budget), switching on and rewording the welcome journey and following a member through it, and a
coordinator's own account page. Screenshots of each step, an accessibility check of each page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from cop_mail import community
from cop_mail.audience import subscriptions as subs
from cop_mail.models import Admin, Journey, JourneyEnrolment, MailingList, Member, Value

pytestmark = pytest.mark.browser


def test_an_owner_switches_tracking_on_and_sets_the_attention_budget(logged_in, db, shot, check_a11y):
    page = logged_in("owner")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Settings").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Settings")
    expect(page.get_by_label("Track opens and clicks")).not_to_be_checked()  # off until switched on
    check_a11y(page, "the settings page")
    shot(page, "1-settings")

    # A window of 40 days is refused in plain words, and nothing is saved.
    page.get_by_label("Most emails per member").fill("2")
    page.get_by_label("In any stretch of this many days").fill("40")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_text(re.compile("1 to 31|between 1 and 31")).first).to_be_visible()
    db.expire_all()
    assert community.load(db).budget_max_emails == 0
    check_a11y(page, "the settings page with an error")
    shot(page, "2-refused")

    page.get_by_label("Track opens and clicks").check()
    page.get_by_label("Most emails per member").fill("2")
    page.get_by_label("In any stretch of this many days").fill("7")
    page.get_by_role("group", name="Newsletters over the budget").get_by_label("drop (not sent)").check()
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status").or_(page.locator(".flash-success")).first).to_be_visible()
    db.expire_all()
    prefs = community.load(db)
    assert prefs.tracking_enabled and (prefs.budget_max_emails, prefs.budget_window_days) == (2, 7)
    assert prefs.budget_over["newsletters"] == "drop" and prefs.budget_over["roundups"] == "defer"
    shot(page, "3-saved")


def test_a_viewer_reads_the_settings_but_cannot_change_them(logged_in, shot, check_a11y):
    page = logged_in("viewer")
    page.goto("/admin/settings")
    expect(page.get_by_role("heading", level=1)).to_have_text("Settings")
    expect(page.get_by_role("button", name="Save settings")).to_have_count(0)
    check_a11y(page, "the settings page for a viewer")
    shot(page, "1-read-only")


def test_switch_on_the_welcome_journey_reword_it_and_follow_a_member(logged_in, db, live_server, shot, check_a11y):
    everyone = MailingList(name="Everyone", slug="everyone", opt_in="single", public=True)
    db.add_all([everyone, Value(name="Care", description="We look after one another.", position=1)])
    db.commit()
    page = logged_in("coordinator")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Journeys").click()
    expect(page.get_by_role("heading", name="Start with the welcome journey")).to_be_visible()
    check_a11y(page, "the journeys page before any is on")
    shot(page, "1-journeys-empty")
    page.get_by_role("button", name="Switch on the welcome journey").click()
    welcome = db.scalars(select(Journey)).one()
    db.refresh(welcome)
    assert welcome.active

    # Reword the welcome message: its step keeps its identity.
    page.get_by_role("link", name=welcome.name).first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text(welcome.name)
    check_a11y(page, "a journey")
    shot(page, "2-welcome-journey")
    page.locator(".journey-steps li").first.get_by_role("link", name=re.compile("Edit")).click()
    page.get_by_label("Subject (also the message's heading)").fill("Welcome, {{ member.first_name }}!")
    page.get_by_role("button", name="Save step").click()
    expect(page.locator(".journey-steps")).to_contain_text("Welcome, {{ member.first_name }}!")

    # A tag step at the end, through the form (no JavaScript needed).
    page.get_by_role("link", name="Add a tag").click()
    page.get_by_label("Tag to add (made if it does not exist yet)").fill("welcomed")
    check_a11y(page, "a new step")
    page.get_by_role("button", name="Add step").click()
    expect(page.locator(".journey-steps li")).to_have_count(6)
    shot(page, "3-reworded-with-a-tag-step")

    # A member joins the list: their page shows where they are in the journey.
    result = subs.sign_up(db, everyone, subs.SignupRequest(email="ana@example.org", name="Ana Lima"))
    db.commit()
    member = db.get(Member, result.member_id)
    assert db.scalars(select(JourneyEnrolment.member_id)).all() == [member.id]
    page.goto(f"/admin/members/{member.id}")
    section = page.locator("section", has=page.get_by_role("heading", name="Journeys"))
    expect(section).to_contain_text(welcome.name)
    check_a11y(page, "a member in a journey")
    shot(page, "4-member-in-the-journey")


def test_a_coordinator_changes_their_password_and_turns_notices_off(logged_in, db, shot, check_a11y):
    page = logged_in("coordinator")
    page.get_by_role("link", name=re.compile("your account")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your account")
    check_a11y(page, "the account page")
    shot(page, "1-account")
    page.get_by_label("Current password").fill("wrong password")
    page.get_by_label("New password (at least 10 characters)").fill("a much longer one")
    page.get_by_label("New password again").fill("a much longer one")
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_text("the current password is not right")).to_be_visible()
    shot(page, "2-wrong-password")
    page.get_by_label(re.compile("Email me when a campaign")).uncheck()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Notices are off")).to_be_visible()
    db.expire_all()
    assert db.scalars(select(Admin.email_notices).where(Admin.role == "coordinator")).one() is False
    check_a11y(page, "the account page after saving")
