"""A member's journeys in headless Chromium, starting from the email they received: answer an
introduction, tell a story, sign up and confirm at phone width. Screenshots of each step and an
accessibility check of each page the member sees."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.conftest import add_member

if TYPE_CHECKING:
    from cop_mail.models import Intro

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 812}


def intro_now(db: Session, intro_id: int) -> Intro:
    from cop_mail.connect.states import get_intro

    db.expire_all()
    return get_intro(db, intro_id)


def caught(live_server: Any) -> int:
    from cop_mail import mailcatcher

    return mailcatcher.list_messages(live_server.outbox)[0]


def link_in(message: Any, button: str, path: str) -> str:
    """The address behind a button in the plain-text part, which writes it as [label](address)."""
    text, _ = message.bodies()
    found = re.search(rf"\[{re.escape(button)}\]\((http://127\.0\.0\.1:\d+{path}[^\s)]*)\)", text)
    assert found is not None, f"no {button!r} link to {path} in:\n{text}"
    return found.group(1)


def test_two_members_say_yes_to_an_introduction_and_are_introduced(
    page: Page, new_page: Callable[..., Page], logged_in: Callable[..., Page], live_server: Any, db: Session,
    settings: Any, redis_conn: Any, run_jobs: Callable[..., int], shot: Callable[..., Any],
    check_a11y: Callable[..., Any],
) -> None:  # fmt: skip
    from cop_mail.connect import mail, rounds
    from cop_mail.models import IntroStatus

    ana = add_member(db, "Ana Souza", values=("Reciprocity",))
    ben = add_member(db, "Ben Okafor", values=("Reciprocity",))
    intro, to_send = rounds.introduce_by_hand(db, settings, ana.id, ben.id, "coordinator@example.org")
    db.commit()
    mail.enqueue_intro_emails(redis_conn, to_send)
    assert run_jobs() == 0
    to_ana = live_server.wait_for_mail(ana.email, "Would you like to meet Ben Okafor?")
    ben_yes = link_in(live_server.wait_for_mail(ben.email, "Would you like to meet Ana Souza?"),
                      "Yes, introduce us", "/intro/")  # fmt: skip

    # Ana reads her invitation and follows its button (which opens in a new tab, so here by its address):
    # the page asks; opening it changes nothing.
    page.set_content(to_ana.bodies()[1])
    shot(page, "0-ana-reads-her-invitation")
    ana_yes = page.get_by_role("link", name="Yes, introduce us").get_attribute("href") or ""
    assert re.fullmatch(rf"{live_server.url}/intro/[\w.-]+", ana_yes), ana_yes
    page.goto(ana_yes)
    expect(page.get_by_role("heading", level=1)).to_have_text("Would you like to meet Ben Okafor?")
    expect(page.get_by_text("You both care about Reciprocity.")).to_be_visible()
    expect(page.get_by_text(ben.email)).to_have_count(0)
    check_a11y(page, "the invitation page")
    shot(page, "1-ana-is-asked")
    assert intro_now(db, intro.id).a_answer is None
    page.get_by_role("button", name="Yes, introduce us").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Thank you, you said yes")
    expect(page.get_by_text("If Ben Okafor says yes too")).to_be_visible()
    check_a11y(page, "the thank-you page")
    shot(page, "2-ana-said-yes")
    assert run_jobs() == 0
    assert intro_now(db, intro.id).status == IntroStatus.ACCEPTED_A
    assert caught(live_server) == 2  # the two invitations: nothing more until Ben says yes too
    page.goto(ana_yes)  # the link again: her answer is remembered, and she may still change her mind
    expect(page.get_by_role("heading", level=1)).to_have_text("You said yes")
    expect(page.get_by_role("button", name="No longer interested")).to_be_visible()
    check_a11y(page, "the waiting page")
    shot(page, "3-ana-waits")

    # Ben answers on his phone, with JavaScript off: the form works on its own.
    phone = new_page(**PHONE, java_script_enabled=False)
    phone.goto(ben_yes)
    expect(phone.get_by_role("heading", level=1)).to_have_text("Would you like to meet Ana Souza?")
    assert phone.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    check_a11y(phone, "the invitation page without JavaScript")
    shot(phone, "4-ben-is-asked-on-a-phone-without-javascript")
    phone.get_by_role("button", name="Yes, introduce us").click()
    expect(phone.get_by_role("heading", level=1)).to_have_text("You're introduced!")
    expect(phone.get_by_text("Ana Souza said yes too.")).to_be_visible()
    check_a11y(phone, "the introduced page without JavaScript")
    shot(phone, "5-ben-said-yes-they-are-introduced")

    # The joint email reaches both, one thread, each able to reply straight to the other.
    assert run_jobs() == 0
    to_ana = live_server.wait_for_mail(ana.email, "Meet each other")
    to_ben = live_server.wait_for_mail(ben.email, "Meet each other")
    assert to_ana.message["Message-ID"] == to_ben.message["Message-ID"]
    assert to_ana.message["Reply-To"].addresses[0].addr_spec == ben.email
    assert to_ben.message["Reply-To"].addresses[0].addr_spec == ana.email
    assert caught(live_server) == 4
    answered = intro_now(db, intro.id)
    assert (answered.status, answered.a_channel, answered.b_channel) == (IntroStatus.INTRODUCED, "link", "link")
    desk = logged_in("viewer", on=new_page())
    desk.goto("/admin/outbox")
    desk.get_by_role("link", name=re.compile("Meet each other")).first.click()
    expect(desk.frame_locator("iframe").get_by_text("Ana Souza").first).to_be_visible()
    shot(desk, "6-the-joint-email-in-the-outbox")


def test_a_member_tells_a_story_and_a_coordinator_finds_it_waiting(
    new_page: Callable[..., Page], logged_in: Callable[..., Page], db: Session, settings: Any,
    shot: Callable[..., Any], check_a11y: Callable[..., Any],
) -> None:  # fmt: skip
    from cop_mail.models import Story, StoryConsent, StoryStatus
    from cop_mail.stories import links

    amira = add_member(db, "Amira Haddad", values=("Care", "Courage"), practices=("Gardening",))
    db.commit()

    def stories() -> int:
        db.expire_all()
        return db.scalar(select(func.count()).select_from(Story)) or 0

    member = new_page()
    member.goto(links.submit_url(settings, amira.id))
    expect(member.get_by_role("heading", level=1)).to_have_text("Tell your story")
    expect(member.get_by_text("before it is shared, Amira")).to_be_visible()
    check_a11y(member, "the story form")
    shot(member, "1-story-form")

    # An empty story: the browser itself holds the form back, as the field is required.
    member.get_by_label("Title").fill("The handover question")
    member.get_by_role("button", name="Send my story").click()
    body = member.get_by_label("Your story")
    assert body.evaluate("(el) => !el.validity.valid && el.validationMessage !== ''")
    expect(member.get_by_role("alert")).to_have_count(0)  # nothing was sent
    assert stories() == 0
    # A story of blanks gets past the browser; the server answers in plain words, naming the field.
    body.fill("   \n  ")
    member.get_by_role("button", name="Send my story").click()
    problem = member.get_by_role("alert")
    expect(problem).to_contain_text("Write your story in the text box.")
    expect(problem).to_contain_text(re.compile("your story", re.IGNORECASE))  # the field's label, "Your story"
    expect(member.get_by_label("Title")).to_have_value("The handover question")  # what was typed stays
    check_a11y(member, "the story form with a problem")
    shot(member, "2-empty-story-refused")
    assert stories() == 0

    body.fill("At every handover we ask one question: **who is carrying too much right now?**")
    member.get_by_label("Care").check()
    member.get_by_label("Practice").select_option(label="Gardening")
    public = "Share my story with the members and publish it in the public archive with my name."
    member.get_by_label(public).check()
    shot(member, "3-story-filled-in")
    member.get_by_role("button", name="Send my story").click()
    expect(member.get_by_role("heading", level=1)).to_have_text("Thank you for your story")
    expect(member.get_by_text("“The handover question” is with the coordinators.")).to_be_visible()
    expect(member.get_by_role("link", name="Withdraw my story")).to_have_attribute("href", re.compile("/withdraw/"))
    check_a11y(member, "the thank-you page")
    shot(member, "4-thank-you")
    story = db.scalars(select(Story)).one()
    assert (story.author_id, story.status, story.consent) == (amira.id, StoryStatus.SUBMITTED, StoryConsent.PUBLIC)
    assert [v.name for v in story.values] == ["Care"] and story.practice_id is not None

    # A coordinator finds it waiting for moderation.
    desk = logged_in("coordinator")
    desk.get_by_role("navigation", name="Main").get_by_role("link", name="Stories").click()
    expect(desk.get_by_role("heading", level=1)).to_have_text("Stories")
    row = desk.get_by_role("row").filter(has_text="The handover question")
    expect(row).to_contain_text("Amira Haddad")
    expect(row).to_contain_text("Public, with my name")
    expect(desk.get_by_role("link", name="To moderate (1)")).to_have_attribute("aria-current", "page")
    check_a11y(desk, "the stories waiting for moderation")
    shot(desk, "5-waiting-for-moderation")
    row.get_by_role("link", name="The handover question").click()
    expect(desk.locator("strong", has_text="who is carrying too much right now?")).to_be_visible()
    shot(desk, "6-the-story-to-moderate")


def test_sign_up_on_a_phone_and_confirm_from_the_email(
    new_page: Callable[..., Page], live_server: Any, db: Session, run_jobs: Callable[..., int],
    shot: Callable[..., Any], check_a11y: Callable[..., Any],
) -> None:  # fmt: skip
    from cop_mail.models import ListMembership, MailingList, Member, Value

    db.add_all([
        MailingList(name="Practitioners", slug="practitioners", opt_in="double", public=True,
                    description="Letters for people who practise.",
                    form_wording="Yes, email me the Practitioners letters."),
        Value(name="Reciprocity", position=1), Value(name="Care", position=2),
    ])  # fmt: skip
    db.commit()
    phone = new_page(**PHONE)

    def fits() -> None:
        assert phone.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"], "scrolls sideways"

    phone.goto("/signup/practitioners")
    expect(phone.get_by_role("heading", level=1)).to_have_text("Join Practitioners")
    expect(phone.get_by_text("Yes, email me the Practitioners letters.")).to_be_visible()
    fits()
    check_a11y(phone, "the signup form")
    shot(phone, "1-signup-form")
    phone.get_by_label("Email").fill("nadia@example.org")
    phone.get_by_label("Name").fill("Nadia Rahman")
    phone.get_by_label("Care").check()
    phone.get_by_role("button", name="Join").click()
    expect(phone).to_have_url(re.compile(r"/signup/practitioners/thanks$"))
    expect(phone.get_by_text("Please check your inbox")).to_be_visible()
    fits()
    check_a11y(phone, "the check-your-email page")
    shot(phone, "2-check-your-email")
    db.expire_all()
    assert db.scalars(select(Member.status)).all() == ["pending"]

    assert run_jobs() == 0
    received = live_server.wait_for_mail("nadia@example.org", "Please confirm your subscription")
    phone.goto(link_in(received, "Confirm my subscription", "/confirm/"))
    expect(phone.get_by_role("heading", level=1)).to_have_text("Confirm your subscription")
    db.expire_all()
    assert db.scalars(select(Member.status)).all() == ["pending"]  # opening the link alone confirms nothing
    fits()
    check_a11y(phone, "the confirm page")
    shot(phone, "3-confirm-page")
    phone.get_by_role("button", name="Yes, subscribe me").click()
    expect(phone.get_by_role("heading", level=1)).to_have_text("You are subscribed")
    expect(phone.get_by_role("link", name="Choose which emails you receive")).to_be_visible()
    fits()
    check_a11y(phone, "the confirmed page")
    shot(phone, "4-confirmed")
    db.expire_all()
    member = db.scalars(select(Member)).one()
    assert (member.status, [v.name for v in member.values]) == ("active", ["Care"])
    assert db.scalars(select(ListMembership.status)).all() == ["subscribed"]


BAD_PAGE = (
    '<html><head><title>Bad</title></head><body><main><h1>Bad</h1><input name="q">'
    '<p style="color:#aaa;background:#fff">faint</p><img src="x.png"></main></body></html>'
)


def test_the_accessibility_check_reads_pages_without_javascript(new_page: Callable[..., Page], check_a11y):
    """axe cannot run inside a page without JavaScript; the check reads a copy, and must still fail on a
    page with real problems there, or the checks above prove nothing."""
    bare = new_page(java_script_enabled=False)
    bare.route(re.compile(r"/made-to-fail$"), lambda route: route.fulfill(body=BAD_PAGE, content_type="text/html"))
    bare.goto("/made-to-fail")
    with pytest.raises(AssertionError) as failed:
        check_a11y(bare, "a page made to fail")
    for rule in ("label", "image-alt", "color-contrast"):
        assert f'"id": "{rule}"' in str(failed.value)
    bare.goto("/login")
    check_a11y(bare, "the login page without JavaScript")


def test_pages_reach_only_the_live_server(new_page: Callable[..., Page], outside_requests: list[str]) -> None:
    """What the archive's "no third-party requests" rests on: a try to reach elsewhere is refused and noted."""
    tracked = new_page(java_script_enabled=False)
    tracked.route(re.compile(r"/tracked$"), lambda route: route.fulfill(
        body='<html lang="en"><title>t</title><img alt="" src="https://tracker.example/pixel.gif">',
        content_type="text/html",
    ))  # fmt: skip
    tracked.goto("/tracked")
    expect(tracked.locator("img")).to_have_js_property("complete", True)
    assert outside_requests == ["https://tracker.example/pixel.gif"]
