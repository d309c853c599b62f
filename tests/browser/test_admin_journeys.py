"""A coordinator's journeys through the admin in headless Chromium, with screenshots of each step
and an accessibility check of each page."""

from __future__ import annotations

import re
import smtplib
from email.message import EmailMessage

import pytest
from playwright.sync_api import Page, expect

from cop_mail.db import utcnow
from tests.browser.conftest import a11y_checker
from tests.integration.test_dashboard import seed_community

pytestmark = pytest.mark.browser


def test_log_in_and_find_an_empty_dashboard(page: Page, db, shot, check_a11y):
    from cop_mail import accounts
    from cop_mail.models import Role

    accounts.create_admin(db, "ana@example.org", "correct horse battery", Role.COORDINATOR, "Ana")
    db.commit()
    page.goto("/admin/")
    expect(page).to_have_url(re.compile(r"/login\?next=/admin/"))
    check_a11y(page, "the login page")
    shot(page, "1-login")
    page.get_by_label("Email").fill("ana@example.org")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("do not match")
    shot(page, "2-wrong-password")
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/admin/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")
    expect(page.get_by_role("heading", name="Welcome to Test Community")).to_be_visible()
    expect(page.get_by_text("Nothing needs you right now")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboard")).to_have_attribute(
        "aria-current", "page"
    )
    check_a11y(page, "the empty dashboard")
    shot(page, "3-empty-dashboard")
    # Keyboard: the first Tab reaches the skip link, which takes focus to the page's content.
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.closest('main') !== null")


def test_dashboard_with_a_community_and_a_campaign_report(logged_in, db, shot, check_a11y):
    community = seed_community(db, utcnow())
    page = logged_in("coordinator")
    expect(page.locator("svg.chart-svg")).to_have_count(5)
    expect(page.locator("#needs-you-title")).to_have_text("Needs you")
    check_a11y(page, "the dashboard with data")
    shot(page, "1-dashboard")
    # Every chart keeps its figures one click away, as a table.
    members_chart = page.locator("#chart-members")
    members_chart.get_by_text("Show the figures as a table").click()
    expect(members_chart.get_by_role("table")).to_be_visible()
    expect(members_chart.get_by_role("columnheader", name="Active")).to_be_visible()
    shot(page, "2-figures-as-a-table")
    # One click from "Needs you" to the work.
    page.get_by_role("link", name="Read them: replies we could not read for sure").click()
    expect(page).to_have_url(re.compile(r"/admin/inbox\?folder=review$"))
    shot(page, "3-inbox-from-needs-you")
    page.go_back()
    page.get_by_role("link", name="Report on November letter").click()
    expect(page).to_have_url(re.compile(rf"/admin/campaigns/{community.campaign_id}/report$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Report: November letter")
    expect(page.locator("svg.chart-svg")).to_have_count(5)
    expect(page.get_by_role("img", name=re.compile("Delivery funnel"))).to_be_visible()
    check_a11y(page, "the campaign report")
    shot(page, "4-campaign-report")
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    shot(page, "5-campaign-report-phone")


def test_outbox_shows_what_was_sent(logged_in, live_server, shot, check_a11y):
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "Test <c@cop-mail.test>", "ben@example.org", "Hello Ben"
    message.set_content("A plain hello")
    message.add_alternative("<p>A <strong>warm</strong> hello</p>", subtype="html")
    with smtplib.SMTP("127.0.0.1", live_server.smtp_port, timeout=10) as smtp:
        smtp.send_message(message)
    page = logged_in("viewer")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Outbox").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Outbox")
    check_a11y(page, "the Outbox")
    shot(page, "1-outbox")
    page.get_by_role("link", name="Hello Ben").click()
    expect(page.get_by_text("A plain hello")).to_be_visible()
    frame = page.frame_locator("iframe")
    expect(frame.locator("strong")).to_have_text("warm")
    check_a11y(page, "a message in the Outbox")
    shot(page, "2-message")


def test_a_viewer_is_refused_an_owner_page(logged_in, shot, check_a11y):
    page = logged_in("viewer")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Team")).to_have_count(0)
    response = page.goto("/admin/team")
    assert response is not None and response.status == 403
    expect(page.get_by_text("Your account is not allowed to do that")).to_be_visible()
    check_a11y(page, "the refusal")
    shot(page, "1-refused")
    page.get_by_role("link", name="Back to the dashboard").click()
    expect(page).to_have_url(re.compile(r"/admin/$"))


BAD_PAGE = (
    '<html><head><title>Bad</title></head><body><main><h1>Bad</h1><input name="q">'
    '<p style="color:#aaa;background:#fff">faint</p><img src="x.png"></main></body></html>'
)


@pytest.mark.parametrize("engine", ["in use", "fallback"])
def test_the_accessibility_check_catches_problems(engine, page: Page, check_a11y):
    """The checker in use (axe-core when npm could fetch it) and the fallback must both fail on a page
    with real problems, or they prove nothing; and both pass a good page."""
    check = check_a11y if engine == "in use" else a11y_checker(None)
    page.set_content(BAD_PAGE)
    with pytest.raises(AssertionError) as failed:
        check(page, "a page made to fail")
    for rule in ("label", "image-alt", "color-contrast"):
        assert f'"id": "{rule}"' in str(failed.value)
    page.goto("/login")
    check(page, "the login page")


# --- journeys through features that other pages provide ------------------------------------------


def test_import_members_from_a_csv_and_read_the_report(logged_in, db, run_jobs, tmp_path, shot, check_a11y):
    from cop_mail.models import MailingList, Member

    db.add(MailingList(name="Everyone", slug="everyone", opt_in="single"))
    db.commit()
    csv_file = tmp_path / "members.csv"
    csv_file.write_text(
        "email,name,values\n"
        "ana@example.org,Ana Lima,Care;Craft\n"
        "ben@example.org,Ben Okafor,Care\n"
        "not an address,Nobody,\n"
        "postmaster@example.org,Post Master,\n",
        encoding="utf-8",
    )
    page = logged_in("coordinator")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Imports").click()
    check_a11y(page, "the import page")
    page.get_by_label("CSV file").set_input_files(str(csv_file))
    shot(page, "1-upload")
    page.get_by_role("button", name="Upload and map columns").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("members.csv")
    page.get_by_label("Add everyone to the list").select_option(label="Everyone")
    check_a11y(page, "mapping the columns")
    shot(page, "2-map-columns")
    page.get_by_role("button", name=re.compile("^Dry run")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Dry run of members.csv")
    shot(page, "3-dry-run-queued")
    assert run_jobs() == 0
    expect(page.get_by_role("heading", name="What would happen")).to_be_visible()  # the page follows the task
    expect(page.locator("progress")).to_have_attribute("value", re.compile(r"^[1-9]"))
    check_a11y(page, "the dry run report")
    shot(page, "4-dry-run-report")
    page.get_by_label("These people agreed to hear from the community.").check()
    page.get_by_role("button", name="Import these rows now").click()
    assert run_jobs() == 0
    expect(page.get_by_role("heading", name="What happened")).to_be_visible()
    expect(page.locator(".stat").filter(has_text="imported").locator(".stat-value")).to_have_text("2")
    shot(page, "5-import-report")
    db.expire_all()
    assert {m.email for m in db.query(Member)} == {"ana@example.org", "ben@example.org"}


def test_build_a_segment_and_watch_the_live_count(logged_in, db, shot, check_a11y):
    seed_community(db, utcnow())
    page = logged_in("coordinator")
    page.goto("/admin/segments/new")
    expect(page.locator("#segment-preview")).to_contain_text("choose at least one")  # a new, empty condition
    values = page.get_by_label("Choose one or more")
    values.select_option(label="Care")
    expect(page.locator("#segment-preview [data-count]")).to_have_text("2")  # counted live, no reload
    shot(page, "1-one-value")
    values.select_option(label=["Care", "Craft"])
    expect(page.locator("#segment-preview [data-count]")).to_have_text("3")
    expect(page.locator("#segment-preview")).to_contain_text("fay@example.org")
    check_a11y(page, "the segment builder")
    shot(page, "2-two-values")
    page.get_by_role("button", name="Add a condition").first.click()  # posts the form back, no script needed
    expect(page.get_by_label("Filter on")).to_have_count(2)
    page.wait_for_load_state()  # the builder's script listens from here on
    page.get_by_label("Filter on").nth(1).select_option(label="Status")  # redraws the condition's choices
    statuses = page.get_by_label("Choose one or more").nth(1)
    expect(statuses.locator("option[value=active]")).to_have_count(1)
    statuses.select_option(value="active")
    expect(page.locator("#segment-preview [data-count]")).to_have_text("3")  # ana, ben, fay are all active
    page.get_by_label("Match").first.select_option(label="all of these (AND)")
    statuses.select_option(value="unsubscribed")
    expect(page.locator("#segment-preview [data-count]")).to_have_text("0")
    shot(page, "3-and-status")


def test_send_a_campaign_and_watch_the_progress_bar(logged_in, db, engine, run_jobs, shot, check_a11y):
    """Write a campaign as a draft, send it, watch the bar reach 100 %, find the message in the Outbox,
    then read the campaign's report from the dashboard."""
    from cop_mail.models import Campaign
    from tests.conftest import seed_list_members

    seed_list_members(engine, 3, "Everyone")
    page = logged_in("coordinator")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Campaigns").click()
    page.get_by_role("link", name="New campaign").click()
    page.get_by_label("Name (for you, not shown to members)").fill("Winter letter")
    page.get_by_label("Subject", exact=True).fill("News from the commons")
    page.get_by_label("List: Everyone").check()
    page.get_by_label("Heading", exact=True).fill("Hello, neighbours")
    page.get_by_label("Message (Markdown)").fill("We met **twice** this month.")
    page.get_by_label("Keep as a draft").check()
    check_a11y(page, "the campaign form")
    shot(page, "1-compose")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Winter letter")
    draft = db.query(Campaign).filter_by(name="Winter letter").one()
    check_a11y(page, "a drafted campaign")
    shot(page, "2-draft")
    page.get_by_role("button", name="Send now").click()
    box = page.locator("#progress")
    expect(box.locator("[data-field=status]")).to_have_text("sending")
    shot(page, "3-sending")
    assert run_jobs() == 0
    expect(box.locator("[data-field=status]")).to_have_text("sent", timeout=15_000)  # polled, no reload
    expect(box.locator("progress")).to_have_js_property("value", 100)
    expect(box.locator("[data-field=sent]")).to_have_text("3")
    check_a11y(page, "the campaign page")
    shot(page, "4-sent-100-percent")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Outbox").click()
    expect(page.get_by_role("link", name="News from the commons")).to_have_count(3)
    page.get_by_role("link", name="News from the commons").first.click()
    expect(page.frame_locator("iframe").get_by_text("Hello, neighbours")).to_be_visible()
    shot(page, "5-in-the-outbox")
    page.get_by_role("link", name=re.compile(r"^Test Community")).click()
    page.get_by_role("link", name="Report on Winter letter").click()
    expect(page).to_have_url(re.compile(rf"/admin/campaigns/{draft.id}/report$"))
    expect(page.locator(".stat").filter(has_text="Delivered").locator(".stat-value")).to_have_text("3")
    shot(page, "6-report")


def test_unsubscribe_by_the_link_in_a_received_email(browser, live_server, logged_in, db, engine, redis_conn,
                                                     run_jobs, shot, check_a11y):  # fmt: skip
    from cop_mail import mailcatcher
    from cop_mail.models import Member
    from cop_mail.sending import campaigns, jobs
    from tests.conftest import seed_list_members

    list_id = seed_list_members(engine, 2, "Everyone")
    content = {"template": "message", "heading": "Hello", "body": "News.", "button": None}
    letter = campaigns.create_campaign(db, name="Spring letter", kind="newsletter", subject="Spring news",
                                       actor="ana@example.org", content=content, list_ids=[list_id])  # fmt: skip
    campaigns.send_now(db, letter.id, "ana@example.org")
    db.commit()
    jobs.ring_plan(redis_conn, letter.id)
    assert run_jobs() == 0
    _, caught = mailcatcher.list_messages(live_server.outbox)
    received = next(m for m in caught if "member1@example.org" in m.to)
    text, _ = received.bodies()
    link = re.search(r"\[Unsubscribe\]\((http://127\.0\.0\.1:\d+/unsubscribe/[^\s)]+)\)", text)
    assert link is not None, "the email carries an unsubscribe link"
    # The member opens the link: no account, no login.
    member_view = browser.new_context(viewport={"width": 390, "height": 844})
    try:
        reader = member_view.new_page()
        reader.goto(link.group(1))
        expect(reader.get_by_role("heading", level=1)).to_contain_text("Unsubscribe from")
        check_a11y(reader, "the unsubscribe page")
        shot(reader, "1-unsubscribe-page")
        reader.get_by_role("button", name=re.compile("^Unsubscribe from")).click()
        expect(reader.get_by_role("heading", level=1)).to_be_visible()
        shot(reader, "2-unsubscribed")
    finally:
        member_view.close()
    db.expire_all()
    assert db.query(Member).filter_by(email="member1@example.org").one().wants_newsletters is False
    # The coordinator sees it in the campaign's report, by stream.
    page = logged_in("viewer")
    page.goto(f"/admin/campaigns/{letter.id}/report")
    expect(page.locator(".stat").filter(has_text="Unsubscribes").locator(".stat-value")).to_have_text("1")
    page.locator("#chart-unsubscribes").get_by_text("Show the figures as a table").click()
    expect(page.locator("#chart-unsubscribes").get_by_role("row", name="Newsletters 1")).to_be_visible()
    shot(page, "3-report-counts-it")


def test_run_an_introduction_round(logged_in, db, run_jobs, shot, check_a11y):
    from tests.conftest import add_member

    for name in ("Ana Lima", "Ben Okafor", "Cleo Diaz", "Dan Wu"):
        add_member(db, name, values=("Care", "Craft"), practices=("Gardening",))
    db.commit()
    page = logged_in("coordinator")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Introductions").click()
    check_a11y(page, "the introductions page")
    shot(page, "1-introductions")
    page.get_by_role("textbox", name="Name", exact=True).fill("November peers")
    page.get_by_role("button", name="Create round").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("November peers")
    page.get_by_role("button", name="Propose pairs").click()
    expect(page.get_by_role("status").filter(has_text="pairs;")).to_contain_text("2 pairs")
    check_a11y(page, "reviewing proposed pairs")
    shot(page, "2-proposed-pairs")
    page.get_by_role("button", name="Send invitations").click()
    expect(page.get_by_text("Sending invitations to every pair")).to_be_visible()
    assert run_jobs() == 0
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Outbox").click()
    expect(page.locator("tbody tr")).to_have_count(4)  # one private invitation to each member
    shot(page, "3-invitations-in-the-outbox")


def test_moderate_a_story_and_send_a_roundup(logged_in, db, engine, run_jobs, shot, check_a11y):
    from cop_mail.models import Story
    from tests.conftest import seed_list_members

    seed_list_members(engine, 2, "Everyone")
    story = Story(author_id=1, title="Fifteen minutes on Fridays", body="We ask how people are **doing**.",
                  body_html="<p>We ask how people are <strong>doing</strong>.</p>", status="submitted",
                  consent="public", consent_recorded_at=utcnow(), submitted_at=utcnow())  # fmt: skip
    db.add(story)
    db.commit()
    page = logged_in("coordinator")
    expect(page.locator("#needs-stories")).to_contain_text("Stories waiting for moderation")
    page.get_by_role("link", name="Moderate: stories waiting for moderation").click()
    page.get_by_role("link", name="Fifteen minutes on Fridays").click()
    check_a11y(page, "a story to moderate")
    shot(page, "1-story")
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status").first).to_be_visible()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Roundups").click()
    form = page.get_by_role("region", name="Make a roundup")
    form.get_by_label("Title").fill("Stories of November")
    form.get_by_label("List: Everyone").check()
    form.get_by_label("Send it now (otherwise it waits as a draft campaign)").check()
    check_a11y(page, "making a roundup")
    shot(page, "2-roundup-form")
    page.get_by_role("button", name="Make the roundup").click()
    expect(page.get_by_role("status").first).to_contain_text("Roundup made with 1 story")
    assert run_jobs() == 0
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Outbox").click()
    expect(page.locator("tbody tr")).to_have_count(2)
    page.locator("tbody a").first.click()
    expect(page.frame_locator("iframe").get_by_text("Fifteen minutes on Fridays").first).to_be_visible()
    shot(page, "3-roundup-in-the-outbox")
