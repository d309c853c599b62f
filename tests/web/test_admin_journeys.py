"""Journeys in the admin through the real app: the welcome journey on first visit, creating and
editing journeys and steps with plain forms and CSRF, switching on and off, roles, plain errors,
the members of a journey page by page, and the journeys on a member's page."""

from __future__ import annotations

import html
import re
from datetime import timedelta

from sqlalchemy import func, select

from cop_mail.db import utcnow
from cop_mail.journeys import definitions, runner, welcome
from cop_mail.models import AuditEvent, Journey, JourneyEnrolment, JourneyStep, MailingList, Member, Value
from tests.conftest import add_member, csrf_token_from


def post(client, page_path: str, action: str, data: dict, follow: bool = False):
    token = csrf_token_from(client.get(page_path).get_data(as_text=True))
    return client.post(action, data={"csrf_token": token, **data}, follow_redirects=follow)


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def journey_named(db, name: str) -> Journey:
    db.expire_all()
    found = db.scalar(select(Journey).where(Journey.name == name))
    assert found is not None
    return found


def test_the_first_visit_shows_the_welcome_journey_switched_off_and_says_to_switch_it_on(client, login, db):
    login("viewer")
    page = text(client.get("/admin/journeys"))
    assert "Start with the welcome journey" in page and "No journey is switched on yet" in page
    assert "Switch on the welcome journey" not in page  # a viewer cannot
    assert "CSV import" in page  # imports do not enter journeys, and the page says so
    made = welcome.find_welcome_journey(db)
    assert made is not None and made.active is False
    client.get("/admin/journeys")
    assert db.scalar(select(func.count(Journey.id))) == 1
    detail = text(client.get(f"/admin/journeys/{made.id}"))
    assert "Switched off" in detail and "Offer an introduction" in detail and "Wait 3 days" in detail


def test_a_coordinator_switches_the_welcome_journey_on_from_the_empty_state(client, login, db):
    login("coordinator")
    response = post(client, "/admin/journeys", f"/admin/journeys/{_welcome_id(client, db)}/switch",
                    {"active": "on", "back": "list"}, follow=True)  # fmt: skip
    assert response.status_code == 200
    page = text(response)
    assert "is on: members enter it from now on" in page and "No journey is switched on yet" not in page
    assert welcome.find_welcome_journey(db).active is True
    assert db.scalar(select(AuditEvent.action).where(AuditEvent.action == "journey.switch_on"))


def _welcome_id(client, db) -> int:
    client.get("/admin/journeys")
    found = welcome.find_welcome_journey(db)
    assert found is not None
    return found.id


def test_create_a_journey_add_edit_move_and_remove_steps_then_switch_it_on(client, login, db):
    db.add(MailingList(name="Growers", slug="growers", opt_in="single"))
    db.commit()
    login("coordinator")
    growers = db.scalar(select(MailingList.id))
    response = post(client, "/admin/journeys", "/admin/journeys",
                    {"name": "Growers' welcome", "trigger": "joined_list", "list_id": str(growers)})  # fmt: skip
    assert response.status_code == 302
    journey = journey_named(db, "Growers' welcome")
    assert journey.trigger_config == {"list_id": growers} and journey.active is False
    page_path = f"/admin/journeys/{journey.id}"
    # Switching on with no steps is refused in plain words.
    refused = post(client, page_path, f"{page_path}/switch", {"active": "on"}, follow=True)
    assert "Add a step that does something" in text(refused)
    # Add a message, a wait, then a tag placed after the message.
    new_message = client.get(f"{page_path}/steps/new?kind=send_template")
    assert new_message.status_code == 200 and 'name="subject"' in new_message.get_data(as_text=True)
    message = {"kind": "send_template", "template": "message", "subject": "Hello {{ member.first_name }}",
               "body": "Welcome to **the growers**."}  # fmt: skip
    assert post(client, page_path, f"{page_path}/steps", message).status_code == 302
    assert post(client, page_path, f"{page_path}/steps", {"kind": "wait", "days": "2"}).status_code == 302
    first_key = definitions.live_steps(db, journey.id)[0].key
    tag = {"kind": "add_tag", "tag": "grower", "after": first_key, "skip_if_introduced": "on"}
    assert post(client, page_path, f"{page_path}/steps", tag).status_code == 302
    db.expire_all()
    steps = definitions.live_steps(db, journey.id)
    assert [s.kind for s in steps] == ["send_template", "add_tag", "wait"]
    assert steps[1].conditions == {"skip_if_introduced": True}
    # Edit the message: the key stays.
    edit_path = f"{page_path}/steps/{first_key}"
    assert "Hello {{ member.first_name }}" in text(client.get(edit_path))
    edited = post(client, edit_path, edit_path, {**message, "subject": "Hi there"})
    assert edited.status_code == 302
    db.expire_all()
    assert definitions.live_steps(db, journey.id)[0].config["subject"] == "Hi there"
    assert definitions.live_steps(db, journey.id)[0].key == first_key
    # Move the wait up, remove the tag.
    wait_key = steps[2].key
    assert post(client, page_path, f"{page_path}/steps/{wait_key}/move", {"direction": "up"}).status_code == 302
    db.expire_all()
    assert [s.kind for s in definitions.live_steps(db, journey.id)] == ["send_template", "wait", "add_tag"]
    assert post(client, page_path, f"{page_path}/steps/{steps[1].key}/remove", {}).status_code == 302
    db.expire_all()
    assert [s.kind for s in definitions.live_steps(db, journey.id)] == ["send_template", "wait"]
    assert db.scalar(select(JourneyStep.removed_at).where(JourneyStep.key == steps[1].key)) is not None
    # Rename, change the trigger, switch on.
    settings_form = {
        "name": "Growers, welcome",
        "trigger": "inactive",
        "days": "45",
        "description": "For quiet growers",
    }
    assert post(client, page_path, page_path, settings_form).status_code == 302
    switched = post(client, page_path, f"{page_path}/switch", {"active": "on"}, follow=True)
    assert "is on" in text(switched)
    journey = journey_named(db, "Growers, welcome")
    assert (journey.trigger, journey.trigger_config, journey.active) == ("inactive", {"days": 45}, True)
    page = text(client.get(page_path))
    assert "Switched on" in page and "Send “Hi there”" in page and "Wait 2 days" in page
    actions = set(db.scalars(select(AuditEvent.action)))
    assert {"journey.create", "journey.step_add", "journey.step_update", "journey.step_move",
            "journey.step_remove", "journey.update", "journey.switch_on"} <= actions  # fmt: skip


def test_bad_input_comes_back_with_plain_errors_and_what_was_typed(client, login, db):
    login("coordinator")
    created = post(client, "/admin/journeys", "/admin/journeys", {"name": "", "trigger": "inactive", "days": "0"})
    assert created.status_code == 400
    page = text(created)
    assert "Give the journey a name." in page
    assert "a whole number from 1 to 3650" in page
    journey_id = _welcome_id(client, db)
    page_path = f"/admin/journeys/{journey_id}"
    bad_wait = post(client, page_path, f"{page_path}/steps", {"kind": "wait", "days": "-1"})
    assert bad_wait.status_code == 400
    assert "A wait is a whole number of days from 1 to 365." in text(bad_wait)
    assert 'value="-1"' in bad_wait.get_data(as_text=True)
    wrong = {"kind": "send_template", "template": "newsletter", "subject": "Hi", "body": "Hello"}
    bad_template = post(client, page_path, f"{page_path}/steps", wrong)
    assert bad_template.status_code == 400
    assert "There is no message template called “newsletter”" in text(bad_template)
    bad_field = post(client, page_path, f"{page_path}/steps",
                     {"kind": "send_template", "template": "message", "subject": "Hi {{ member.nick }}",
                      "body": "{% for %}"})  # fmt: skip
    assert bad_field.status_code == 400
    errors = text(bad_field)
    assert "The subject" in errors and "nick" in errors and "The message, line 1" in errors
    assert len(definitions.live_steps(db, journey_id)) == len(welcome.WELCOME_STEPS)  # nothing was added
    taken = post(client, "/admin/journeys", "/admin/journeys", {"name": "Welcome", "trigger": "joined_list"})
    assert taken.status_code == 400 and "Another journey is already called “Welcome”." in text(taken)


def test_a_viewer_reads_but_is_refused_every_change(client, login, db):
    login("viewer")
    journey_id = _welcome_id(client, db)
    key = definitions.live_steps(db, journey_id)[0].key
    page_path = f"/admin/journeys/{journey_id}"
    page = text(client.get(page_path))
    assert "Switch on" not in page and "Add a step" not in page
    assert client.get(f"{page_path}/steps/{key}").status_code == 200
    assert client.get(f"{page_path}/members").status_code == 200
    token = csrf_token_from(client.get("/admin/journeys").get_data(as_text=True))
    for action, data in (
        ("/admin/journeys", {"name": "Mine", "trigger": "joined_list"}),
        (page_path, {"name": "Renamed", "trigger": "joined_list"}),
        (f"{page_path}/switch", {"active": "on"}),
        (f"{page_path}/steps", {"kind": "wait", "days": "1"}),
        (f"{page_path}/steps/{key}", {"subject": "x", "body": "y"}),
        (f"{page_path}/steps/{key}/move", {"direction": "down"}),
        (f"{page_path}/steps/{key}/remove", {}),
    ):
        assert client.post(action, data={"csrf_token": token, **data}).status_code == 403, action
    assert client.get(f"{page_path}/steps/new?kind=wait").status_code == 403
    db.expire_all()
    assert welcome.find_welcome_journey(db).active is False
    assert len(definitions.live_steps(db, journey_id)) == len(welcome.WELCOME_STEPS)


def test_a_post_without_the_csrf_token_is_refused(client, login, db):
    login("coordinator")
    journey_id = _welcome_id(client, db)
    assert client.post(f"/admin/journeys/{journey_id}/switch", data={"active": "on"}).status_code == 400
    assert welcome.find_welcome_journey(db).active is False


def test_the_members_of_a_journey_page_by_page_and_a_members_journeys(client, login, db, settings):
    journey = welcome.ensure_welcome_journey(db)
    definitions.set_active(db, journey.id, True)
    db.add(Value(name="Care", description="We look after one another."))
    members = [add_member(db, f"Member {i:02d}") for i in range(55)]
    db.commit()
    from cop_mail.journeys import triggers

    now = utcnow()
    for i, member in enumerate(members):
        triggers.enrol(db, journey.id, member.id, now - timedelta(minutes=60 - i))
    db.commit()
    runner.advance_due(db, settings, now)  # each gets the welcome, then waits
    db.execute(Member.__table__.update().where(Member.id == members[0].id).values(status="unsubscribed"))
    db.commit()
    runner.advance_due(db, settings, now)
    login("viewer")
    first = text(client.get(f"/admin/journeys/{journey.id}/members"))
    assert "Page 1 of 2" in first and "Member 54" in first and "Member 00" not in first
    assert "Wait 3 days" in first and "until" in first
    second = text(client.get(f"/admin/journeys/{journey.id}/members?page=2"))
    assert "Member 00" in second and "the member unsubscribed from everything" in second
    stopped = text(client.get(f"/admin/journeys/{journey.id}/members?status=stopped"))
    assert "Member 00" in stopped and "Member 01" not in stopped
    listing = text(client.get("/admin/journeys"))
    assert re.search(r">54<span class=\"visually-hidden\"> in it now in Welcome", listing)
    # The member's own page shows the journey, each step taken with when, and what comes next.
    member_page = text(client.get(f"/admin/members/{members[5].id}"))
    assert "Journeys" in member_page and "in it now" in member_page
    assert "Send “{{ member.first_name | default('Hello') }}, welcome to {{ community.name }}”" in member_page
    assert "waiting" in member_page and "Offer an introduction" in member_page
    until = (now + timedelta(days=3)).strftime("%Y-%m-%d %H:%M")
    assert f"until {until}" in member_page
    assert db.scalar(select(func.count(JourneyEnrolment.id))) == 55
