"""Journeys end to end on SQLite and PostgreSQL, through real RQ jobs to a real SMTP sink.

The welcome journey is the main case: joining a list enters it, the welcome message arrives, the
waits are passed by giving the runner a later `now`, an introduction is offered and a story
prompt follows. Around it: a step is never taken twice (job run twice, runners at the same time,
a runner that died holding its lease), editing a journey does not resend what was taken, the
conditions and stops, switched-off journeys, and the other triggers.
"""

from __future__ import annotations

import email
import email.policy
import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from cop_mail.audience import subscriptions as subs
from cop_mail.audience.consent import record_member_event
from cop_mail.connect.connections import record_connection
from cop_mail.db import utcnow
from cop_mail.integrations import tokens
from cop_mail.journeys import definitions, jobs, progress, runner, welcome
from cop_mail.models import (
    Campaign,
    ConnectionHow,
    ConsentEvent,
    Delivery,
    EnrolmentStatus,
    Intro,
    Journey,
    JourneyEnrolment,
    JourneyStep,
    JourneyStepRun,
    MailingList,
    Member,
    StepKind,
    Tag,
    Value,
)
from cop_mail.queues import DEFAULT, enqueue
from tests.conftest import add_member

LATER = timedelta(days=3, minutes=1)
MUCH_LATER = timedelta(days=10, minutes=2)


@pytest.fixture
def settings(make_settings, redis_conn, engine, smtp_sink):
    return make_settings(smtp_port=smtp_sink.port)



@pytest.fixture
def everyone(db) -> MailingList:
    mailing_list = MailingList(name="Everyone", slug="everyone", opt_in="single", public=True)
    db.add(mailing_list)
    db.add_all(
        [
            Value(name="Care", description="We look after one another {{ and our tools }}.", position=1),
            Value(name="Craft", description="We do the work <well>.", position=2),
        ]
    )
    db.commit()
    return mailing_list


@pytest.fixture
def welcome_on(db) -> Journey:
    journey = welcome.ensure_welcome_journey(db)
    definitions.set_active(db, journey.id, True)
    db.commit()
    return journey


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def text_of(message: email.message.EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()


def join(db, mailing_list, address="ana@example.org", name="Ana Lima", values=("Care",)) -> Member:
    value_ids = tuple(db.scalars(select(Value.id).where(Value.name.in_(values))))
    result = subs.sign_up(db, mailing_list, subs.SignupRequest(email=address, name=name, value_ids=value_ids))
    db.commit()
    assert result.outcome is subs.SignupOutcome.SUBSCRIBED
    member = db.get(Member, result.member_id)
    assert member is not None
    return member


def advance(db, settings, redis_conn, now=None) -> runner.Pass:
    """One runner pass at `now`, then the doorbells, as the job does."""
    done = runner.advance_due(db, settings, now=now)
    jobs.ring(redis_conn, done)
    return done


def enrolment_of(db, member_id: int, journey_id: int) -> JourneyEnrolment:
    db.expire_all()
    found = db.scalar(
        select(JourneyEnrolment).where(
            JourneyEnrolment.member_id == member_id, JourneyEnrolment.journey_id == journey_id
        )
    )
    assert found is not None
    return found


def runs(db, member_id: int) -> list[tuple[str, str]]:
    """(kind, status) of each step taken for the member, in order."""
    db.expire_all()
    rows = db.execute(
        select(JourneyStepRun.kind, JourneyStepRun.status)
        .where(JourneyStepRun.member_id == member_id)
        .order_by(JourneyStepRun.ran_at, JourneyStepRun.id)
    )
    return [(kind, status) for kind, status in rows]


def messages_to(db, member_id: int, template: str) -> int:
    return (
        db.scalar(
            select(func.count(Delivery.id))
            .join(Campaign, Campaign.id == Delivery.campaign_id)
            .where(Delivery.member_id == member_id, Campaign.name == f"{template} to member {member_id}")
        )
        or 0
    )


def subjects(smtp_sink, address: str) -> list[str]:
    return [parse(m.data)["Subject"] for m in smtp_sink.messages if address in m.rcpt_tos]


def make_journey(db, trigger: str, *steps: definitions.StepInput, list_id=None, days="") -> Journey:
    journey = definitions.create_journey(
        db, definitions.JourneyInput(name=f"{trigger} journey", trigger=trigger, list_id=list_id, days=days), "test"
    )
    for step in steps:
        definitions.add_step(db, journey.id, step)
    definitions.set_active(db, journey.id, True)
    db.commit()
    return journey


def tag_step(name: str) -> definitions.StepInput:
    return definitions.StepInput(kind=StepKind.ADD_TAG, tag=name)


# --- the welcome journey, end to end ---------------------------------------------------------------


def test_joining_a_list_enters_the_welcome_journey_and_the_welcome_message_arrives(
    db, settings, redis_conn, run_jobs, smtp_sink, everyone, welcome_on
):
    ana = join(db, everyone)
    enrolment = enrolment_of(db, ana.id, welcome_on.id)
    assert enrolment.status == EnrolmentStatus.ACTIVE and enrolment.next_run_at is not None
    enqueue(redis_conn, jobs.advance_journeys_job, queue=DEFAULT)
    assert run_jobs() == 0
    [sent] = smtp_sink.wait_for(1)
    message = parse(sent.data)
    assert sent.rcpt_tos == ["ana@example.org"]
    assert message["Subject"] == "Ana, welcome to Test Community"
    text = text_of(message)
    assert "community of practice" in text and "These are the values we hold in common" in text
    # The values come from the Values page and are shown as written, never run as a template.
    assert "Care" in text and "We look after one another {{ and our tools }}." in text
    assert "We do the work <well>." in text
    assert "Craft" in message.get_body(("html",)).get_content()
    # Now the member waits three days for the next step.
    enrolment = enrolment_of(db, ana.id, welcome_on.id)
    assert enrolment.status == EnrolmentStatus.ACTIVE and enrolment.lease_until is None
    assert timedelta(days=2, hours=23) < enrolment.next_run_at - utcnow() <= timedelta(days=3)
    assert len(enrolment.waits) == 1
    assert runs(db, ana.id) == [("send_template", "done")]


def test_after_the_waits_an_introduction_is_offered_and_then_a_story_prompt(
    db, settings, redis_conn, run_jobs, smtp_sink, everyone, welcome_on
):
    ben = add_member(db, "Ben Okafor", values=("Care",), practices=("Gardening",), connections_count=3)
    add_member(db, "Cleo Diaz", values=(), practices=("Weaving",))
    db.commit()
    ana = join(db, everyone)
    start = utcnow()
    advance(db, settings, redis_conn, start)
    assert advance(db, settings, redis_conn, start + timedelta(days=2)).steps_taken == 0  # still waiting
    assert run_jobs() == 0
    smtp_sink.wait_for(1)
    # Three days on: the introduction, with the same consent as any other (both are asked privately).
    done = advance(db, settings, redis_conn, start + LATER)
    assert done.steps_taken == 1 and len(done.intro_mail) == 2
    assert run_jobs() == 0
    smtp_sink.wait_for(3)
    intro = db.scalar(select(Intro))
    assert {intro.member_a_id, intro.member_b_id} == {ana.id, ben.id}  # the one sharing a value
    assert intro.status == "invited"
    assert subjects(smtp_sink, "ana@example.org")[-1] == "Would you like to meet Ben Okafor?"
    assert subjects(smtp_sink, "ben.okafor@example.org") == ["Would you like to meet Ana Lima?"]
    # Seven more days: the story prompt, with a signed link to the story form; then the journey is done.
    done = advance(db, settings, redis_conn, start + MUCH_LATER + timedelta(days=1))
    assert done.steps_taken == 1 and done.completed == 1
    assert run_jobs() == 0
    smtp_sink.wait_for(4)
    prompt = parse(smtp_sink.messages[-1].data)
    assert prompt["Subject"] == welcome.STORY_QUESTION
    text = text_of(prompt)
    assert "A question about care" in text and "/stories/submit/" in text
    enrolment = enrolment_of(db, ana.id, welcome_on.id)
    assert enrolment.status == EnrolmentStatus.COMPLETED and enrolment.finished_at is not None
    assert runs(db, ana.id) == [
        ("send_template", "done"),
        ("wait", "done"),
        ("offer_intro", "done"),
        ("wait", "done"),
        ("story_prompt", "done"),
    ]
    # The member's page shows each step taken, with when.
    [shown] = progress.member_journeys(db, ana.id)
    assert [line.state for line in shown.lines] == ["done"] * 5 and shown.next is None
    assert shown.lines[2].note == f"introduction #{intro.id}"


def test_the_member_page_shows_the_next_step_and_when_it_is_due(db, settings, redis_conn, everyone, welcome_on):
    ana = join(db, everyone)
    start = utcnow()
    advance(db, settings, redis_conn, start)
    [shown] = progress.member_journeys(db, ana.id)
    assert [line.state for line in shown.lines] == ["done", "waiting", "later", "later", "later"]
    assert shown.next is not None and shown.next.words == "Wait 3 days"
    assert shown.next.at == start + timedelta(days=3)


# --- once, and only once ------------------------------------------------------------------------------


def test_running_the_job_twice_takes_each_step_once(
    db, settings, redis_conn, run_jobs, smtp_sink, everyone, welcome_on
):
    ana = join(db, everyone)
    enqueue(redis_conn, jobs.advance_journeys_job, queue=DEFAULT)
    enqueue(redis_conn, jobs.advance_journeys_job, queue=DEFAULT)
    assert run_jobs() == 0
    assert jobs.advance_journeys_job() == 0  # and once more by hand: nothing is due
    assert run_jobs() == 0
    smtp_sink.wait_for(1)
    assert len(smtp_sink.messages) == 1
    assert messages_to(db, ana.id, "message") == 1
    assert runs(db, ana.id) == [("send_template", "done")]


@pytest.mark.parametrize("claiming", ["with a lease", "lease lost"])
def test_runners_at_the_same_moment_never_take_a_step_twice(
    db, sessions, settings, redis_conn, everyone, welcome_on, claiming
):
    """Eight runners at once. With leases each member is worked on by one runner; when leases are
    bypassed (as if each runner's lease had run out) the unique run row still lets only one win."""
    members = [join(db, everyone, f"m{i}@example.org", f"Member {i}") for i in range(12)]
    enrolment_ids = list(db.scalars(select(JourneyEnrolment.id)))
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def run_once() -> None:
        session = sessions()
        try:
            barrier.wait()
            if claiming == "with a lease":
                runner.advance_due(session, settings)
            else:
                for enrolment_id in enrolment_ids:
                    runner.advance_one(session, settings, enrolment_id, utcnow(), runner.Pass())
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            session.close()

    threads = [threading.Thread(target=run_once) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    for member in members:
        assert runs(db, member.id) == [("send_template", "done")]
        assert messages_to(db, member.id, "message") == 1


def test_a_runner_that_died_holding_its_lease_is_taken_over_once_the_lease_runs_out(
    db, settings, redis_conn, everyone, welcome_on
):
    ana = join(db, everyone)
    now = utcnow()
    assert len(runner.claim_due(db, now)) == 1  # ... and the runner dies here
    assert advance(db, settings, redis_conn, now + timedelta(minutes=1)).claimed == 0  # still leased
    done = advance(db, settings, redis_conn, now + runner.LEASE + timedelta(seconds=1))
    assert done.claimed == 1 and done.steps_taken == 1
    assert advance(db, settings, redis_conn, now + runner.LEASE + timedelta(seconds=2)).steps_taken == 0
    assert messages_to(db, ana.id, "message") == 1


def test_a_step_that_cannot_be_taken_is_recorded_as_failed_and_the_member_moves_on(db, settings, redis_conn, everyone):
    journey = make_journey(
        db,
        "joined_list",
        definitions.StepInput(kind=StepKind.SEND_TEMPLATE, subject="Hello", body="Hi."),
        tag_step("newcomer"),
    )
    broken = db.scalar(select(JourneyStep).where(JourneyStep.kind == StepKind.SEND_TEMPLATE))
    broken.config = {**broken.config, "subject": "{{ member.nickname }}"}  # written past the form's checks
    db.commit()
    ana = join(db, everyone)
    advance(db, settings, redis_conn)
    assert runs(db, ana.id) == [("send_template", "failed"), ("add_tag", "done")]
    assert messages_to(db, ana.id, "message") == 0
    assert enrolment_of(db, ana.id, journey.id).status == EnrolmentStatus.COMPLETED
    [shown] = progress.member_journeys(db, ana.id)
    assert "nickname" in shown.lines[0].note


# --- editing -------------------------------------------------------------------------------------


def test_editing_the_journey_does_not_resend_taken_steps_but_a_new_later_step_runs(
    db, settings, redis_conn, run_jobs, smtp_sink, everyone, welcome_on
):
    ana = join(db, everyone)
    start = utcnow()
    advance(db, settings, redis_conn, start)
    steps = definitions.live_steps(db, welcome_on.id)
    first, prompt = steps[0], steps[4]
    # Reword the welcome, move the story prompt to the top, drop the introduction, add a tag at the end.
    definitions.update_step(
        db, welcome_on.id, first.key, definitions.StepInput(kind="", subject="Welcome, again", body="New words.")
    )
    for _ in range(4):
        definitions.move_step(db, welcome_on.id, prompt.key, -1)
    definitions.remove_step(db, welcome_on.id, steps[2].key)
    definitions.add_step(db, welcome_on.id, tag_step("welcomed"))
    db.commit()
    assert [s.kind for s in definitions.live_steps(db, welcome_on.id)] == [
        "story_prompt", "send_template", "wait", "wait", "add_tag",
    ]  # fmt: skip
    assert first.key in {s.key for s in definitions.live_steps(db, welcome_on.id)}  # keys stay
    # The edit wakes the member up; the story prompt, now first and never taken, goes out; the wait holds.
    done = advance(db, settings, redis_conn, start + timedelta(minutes=1))
    assert done.steps_taken == 1
    advance(db, settings, redis_conn, start + LATER)  # the first wait ends; the second begins
    advance(db, settings, redis_conn, start + LATER + timedelta(days=7, minutes=1))
    assert run_jobs() == 0
    smtp_sink.wait_for(2)
    assert subjects(smtp_sink, "ana@example.org") == ["Ana, welcome to Test Community", welcome.STORY_QUESTION]
    assert messages_to(db, ana.id, "message") == 1 and messages_to(db, ana.id, "story_prompt") == 1
    db.expire_all()
    assert [t.name for t in db.get(Member, ana.id).tags] == ["welcomed"]
    assert enrolment_of(db, ana.id, welcome_on.id).status == EnrolmentStatus.COMPLETED
    # A member who joins now gets the new words.
    ben = join(db, everyone, "ben@example.org", "Ben Okafor")
    advance(db, settings, redis_conn)
    assert run_jobs() == 0
    smtp_sink.wait_for(4)
    assert subjects(smtp_sink, "ben@example.org") == [welcome.STORY_QUESTION, "Welcome, again"]
    assert messages_to(db, ben.id, "message") == 1


# --- conditions and stops ----------------------------------------------------------------------------


def test_the_introduction_is_skipped_for_a_member_already_connected(db, settings, redis_conn, everyone, welcome_on):
    add_member(db, "Ben Okafor", values=("Care",))
    db.commit()
    ana = join(db, everyone)
    cleo = add_member(db, "Cleo Diaz")
    record_connection(db, ana.id, cleo.id, ConnectionHow.COORDINATOR)
    db.commit()
    start = utcnow()
    advance(db, settings, redis_conn, start)
    advance(db, settings, redis_conn, start + LATER)
    assert runs(db, ana.id)[-1] == ("offer_intro", "skipped")
    assert db.scalar(select(func.count(Intro.id))) == 0
    [shown] = progress.member_journeys(db, ana.id)
    assert shown.lines[2].state == "skipped" and shown.lines[2].note == "already introduced or connected"


def test_unsubscribing_from_everything_stops_the_journey(
    db, settings, redis_conn, run_jobs, smtp_sink, everyone, welcome_on
):
    ana = join(db, everyone)
    start = utcnow()
    advance(db, settings, redis_conn, start)
    subs.unsubscribe_all(db, ana.id, source="link")
    db.commit()
    done = advance(db, settings, redis_conn, start + timedelta(minutes=1))  # stopped now, not in three days
    assert done.stopped == 1
    enrolment = enrolment_of(db, ana.id, welcome_on.id)
    assert enrolment.status == EnrolmentStatus.STOPPED
    assert enrolment.stop_reason == "the member unsubscribed from everything"
    advance(db, settings, redis_conn, start + MUCH_LATER * 2)
    assert runs(db, ana.id) == [("send_template", "done")]
    assert run_jobs() == 0
    smtp_sink.wait_for(1)
    assert len(smtp_sink.messages) == 1


def test_leaving_the_list_a_journey_is_about_stops_it(db, settings, redis_conn, everyone):
    journey = make_journey(
        db, "joined_list", tag_step("a"), definitions.StepInput(kind="wait", days="2"), tag_step("b"),
        list_id=everyone.id,
    )  # fmt: skip
    ana = join(db, everyone)
    advance(db, settings, redis_conn)
    subs.unsubscribe_list(db, ana.id, everyone.id)
    db.commit()
    advance(db, settings, redis_conn, utcnow() + timedelta(days=3))
    enrolment = enrolment_of(db, ana.id, journey.id)
    assert (enrolment.status, enrolment.stop_reason) == ("stopped", "the member left the list “Everyone”")
    assert runs(db, ana.id) == [("add_tag", "done")]


def test_a_switched_off_journey_enrols_nobody_and_pauses_those_in_it(db, settings, redis_conn, everyone):
    journey = welcome.ensure_welcome_journey(db)
    assert journey.active is False
    join(db, everyone)
    assert db.scalar(select(func.count(JourneyEnrolment.id))) == 0
    definitions.set_active(db, journey.id, True)
    db.commit()
    ben = join(db, everyone, "ben@example.org", "Ben Okafor")
    definitions.set_active(db, journey.id, False)
    db.commit()
    assert advance(db, settings, redis_conn).claimed == 0  # switched off: Ben waits where he is
    definitions.set_active(db, journey.id, True)
    db.commit()
    assert advance(db, settings, redis_conn).steps_taken == 1
    assert runs(db, ben.id) == [("send_template", "done")]


def test_the_welcome_journey_is_made_once(db):
    first = welcome.ensure_welcome_journey(db)
    again = welcome.ensure_welcome_journey(db)
    assert first.id == again.id and db.scalar(select(func.count(Journey.id))) == 1
    assert [s.kind for s in definitions.live_steps(db, first.id)] == [
        "send_template", "wait", "offer_intro", "wait", "story_prompt",
    ]  # fmt: skip
    assert (first.trigger, first.trigger_config, first.active) == ("joined_list", {"list_id": None}, False)


# --- the other triggers -------------------------------------------------------------------------------


def test_confirming_a_double_opt_in_signup_is_joining_a_list_and_a_confirmed_signup(db, settings, everyone):
    practitioners = MailingList(name="Practitioners", slug="practitioners", opt_in="double", public=True)
    db.add(practitioners)
    db.commit()
    joined = make_journey(db, "joined_list", tag_step("joined"), list_id=practitioners.id)
    confirmed = make_journey(db, "confirmed_signup", tag_step("confirmed"))
    result = subs.sign_up(db, practitioners, subs.SignupRequest(email="ana@example.org", name="Ana"))
    db.commit()
    assert db.scalar(select(func.count(JourneyEnrolment.id))) == 0  # not until the address is confirmed
    request = db.scalar(select(ConsentEvent).where(ConsentEvent.kind == "signup_requested"))
    link = subs.ConfirmLink(result.member_id, practitioners.id, request.id)
    assert subs.confirm_subscription(db, link) is subs.ConfirmOutcome.CONFIRMED
    db.commit()
    entered = set(db.scalars(select(JourneyEnrolment.journey_id)))
    assert entered == {joined.id, confirmed.id}
    # Joining another list (not the journey's) enters nothing more.
    join(db, everyone)
    assert db.scalar(select(func.count(JourneyEnrolment.id))) == 2


def test_a_member_created_through_the_api_with_a_list_enters_the_journey(db, client, everyone, welcome_on):
    _, secret = tokens.create_token(db, "website", tuple(tokens.SCOPES), "owner@example.org")
    db.commit()
    response = client.post(
        "/api/members",
        json={"email": "ana@example.org", "name": "Ana Lima", "list_ids": [everyone.id]},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    member_id = response.get_json()["member"]["id"]
    assert enrolment_of(db, member_id, welcome_on.id).status == EnrolmentStatus.ACTIVE


def test_a_first_connection_enters_both_members_once(db, settings, redis_conn):
    journey = make_journey(db, "first_connection", tag_step("connected"))
    ana, ben, cleo = (add_member(db, n) for n in ("Ana Lima", "Ben Okafor", "Cleo Diaz"))
    db.commit()
    how = ConnectionHow.COORDINATOR
    record_connection(db, ana.id, ben.id, how)
    db.commit()
    assert set(db.scalars(select(JourneyEnrolment.member_id))) == {ana.id, ben.id}
    record_connection(db, ana.id, cleo.id, how)  # Ana's second connection, Cleo's first
    db.commit()
    assert set(db.scalars(select(JourneyEnrolment.member_id))) == {ana.id, ben.id, cleo.id}
    advance(db, settings, redis_conn)
    tag = db.scalar(select(Tag).where(Tag.name == "connected"))
    db.expire_all()
    assert all(tag in db.get(Member, m.id).tags for m in (ana, ben, cleo))
    assert db.scalar(select(func.count(JourneyStepRun.id))) == 3
    assert {e.journey_id for e in db.scalars(select(JourneyEnrolment))} == {journey.id}


def test_members_quiet_for_n_days_enter_the_inactivity_journey(db, settings, redis_conn, run_jobs):
    journey = make_journey(db, "inactive", tag_step("quiet"), days="30")
    now = utcnow()
    old = now - timedelta(days=90)
    quiet = add_member(db, "Quiet Quinn", joined_at=old)
    replied = add_member(db, "Replied Rui", joined_at=old)
    record_member_event(db, replied.id, "replied", explicit=True, at=now - timedelta(days=10))
    opened = add_member(db, "Opened Olu", joined_at=old)
    record_member_event(db, opened.id, "opened", explicit=False, at=now - timedelta(days=1))  # not an action
    engaged = add_member(db, "Engaged Eve", joined_at=old, last_engaged_at=now - timedelta(days=2))
    add_member(db, "New Nia", joined_at=now - timedelta(days=5))
    add_member(db, "Gone Gil", joined_at=old, status="unsubscribed")
    db.commit()
    assert jobs.enrol_inactive_members_job() == 2
    assert set(db.scalars(select(JourneyEnrolment.member_id))) == {quiet.id, opened.id}
    assert jobs.enrol_inactive_members_job() == 0  # once per member
    assert engaged.id not in set(db.scalars(select(JourneyEnrolment.member_id)))
    advance(db, settings, redis_conn)
    assert runs(db, quiet.id) == [("add_tag", "done")]
    assert db.scalar(select(func.count(JourneyEnrolment.id)).where(JourneyEnrolment.journey_id == journey.id)) == 2


def test_a_story_prompt_is_skipped_for_a_member_who_turned_story_prompts_off(db, settings, redis_conn, everyone):
    make_journey(db, "joined_list", definitions.StepInput(kind="story_prompt", question="What happened?"))
    ana = join(db, everyone)
    ana.wants_roundups = False
    db.commit()
    advance(db, settings, redis_conn)
    assert runs(db, ana.id) == [("story_prompt", "skipped")]
    assert messages_to(db, ana.id, "story_prompt") == 0


def test_stop_reasons_in_bulk_cover_every_blocked_status(db, settings, redis_conn, everyone, welcome_on):
    members: dict[str, Any] = {}
    for status in ("bounced", "complained", "erased"):
        members[status] = join(db, everyone, f"{status}@example.org", status.title())
    advance(db, settings, redis_conn)
    for status, member in members.items():
        db.execute(update(Member).where(Member.id == member.id).values(status=status))
    db.commit()
    assert advance(db, settings, redis_conn).stopped == 3
    reasons = {e.member_id: e.stop_reason for e in db.scalars(select(JourneyEnrolment))}
    assert reasons[members["bounced"].id] == "mail to the member bounced"
    assert reasons[members["erased"].id] == "the member was erased"
