"""Roundups: compiling, skipping when empty, the campaign's content, schedules and the periodic job."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from cop_mail.db import utcnow
from cop_mail.models import (
    AuditEvent,
    Campaign,
    CampaignStatus,
    MailingList,
    Roundup,
    RoundupFrequency,
    RoundupSchedule,
    RoundupStatus,
    StoryConsent,
)
from cop_mail.queues import DEFAULT, enqueue
from cop_mail.sending.campaigns import send_now
from cop_mail.settings import Settings
from cop_mail.stories import links, moderation, roundups
from cop_mail.stories.jobs import run_roundup_schedules_job
from tests.integration.test_stories import add_member, add_value, approved_story, submit

PUBLIC_URL = "http://cop-mail.test"


def a_list(session: Session) -> MailingList:
    mailing_list = MailingList(name="Everyone", slug="everyone", opt_in="single")
    session.add(mailing_list)
    session.flush()
    return mailing_list


def test_a_roundup_with_nothing_new_is_skipped_and_the_coordinator_told(db: Session) -> None:
    roundup = roundups.compile_roundup(db, "coordinator@example.org", "November roundup")
    db.commit()
    assert roundup.status == RoundupStatus.SKIPPED
    assert roundup.campaign_id is None
    assert "skipped rather than sent empty" in roundup.note
    event = db.scalars(select(AuditEvent)).one()
    assert (event.action, event.target) == ("roundup.skipped", f"roundup:{roundup.id}")
    assert db.scalar(select(Campaign.id)) is None
    with pytest.raises(roundups.RoundupError):
        roundups.create_campaign_for(db, PUBLIC_URL, roundup, "c@example.org", subject="Nothing")


def test_a_roundup_groups_stories_by_value_with_meet_the_storyteller_links(db: Session, tmp_path: Path) -> None:
    care, courage = add_value(db, "Care", 0, "Paying attention."), add_value(db, "Courage", 1)
    public = approved_story(db, tmp_path, add_member(db, preferred_name="Ana"), title="Public", values=[courage])
    hidden = approved_story(
        db, tmp_path, add_member(db, "bo@example.org", "Bo"), title="Nameless", consent=StoryConsent.PUBLIC_ANONYMOUS,
        values=[care],
    )  # fmt: skip
    inner = approved_story(
        db, tmp_path, add_member(db, "cy@example.org", "Cy"), title="Members", consent=StoryConsent.MEMBERS_ONLY
    )
    submit(db, tmp_path, add_member(db, "dee@example.org"), title="Not approved yet")

    roundup = roundups.compile_roundup(db, "c@example.org", "Stories from November")
    campaign = roundups.create_campaign_for(
        db, PUBLIC_URL, roundup, "c@example.org", subject="Stories", list_ids=[a_list(db).id]
    )
    db.commit()

    assert roundup.story_ids == [public.id, hidden.id, inner.id]
    assert (campaign.kind, campaign.status, campaign.preheader) == (
        "roundup",
        "draft",
        "3 stories from members of the community",
    )
    content = campaign.content
    assert [g["value"] for g in content["groups"]] == ["Courage", "Care", "More stories"]
    cards = {card["title"]: card for group in content["groups"] for card in group["stories"]}
    assert cards["Public"]["storyteller"] == "Ana"
    assert cards["Public"]["url"] == f"{PUBLIC_URL}/archive/stories/{public.id}"
    assert cards["Nameless"]["storyteller"] == roundups.ANONYMOUS
    assert cards["Members"]["url"] == f"{PUBLIC_URL}/stories/{inner.id}/read/@@cm:meet_token@@"
    assert cards["Members"]["storyteller_url"] == f"{PUBLIC_URL}/stories/{inner.id}/meet/@@cm:meet_token@@"
    assert content["groups"][1]["description"] == "Paying attention."
    assert "@" not in str([c["storyteller"] for c in cards.values()])  # never an address


def test_the_next_roundup_starts_where_the_last_one_that_went_out_ended(db: Session, tmp_path: Path) -> None:
    mailing_list = a_list(db)
    member = add_member(db)
    first = approved_story(db, tmp_path, member, title="First")
    roundup = roundups.compile_roundup(db, "c@example.org", "One")
    campaign = roundups.create_campaign_for(
        db, PUBLIC_URL, roundup, "c@example.org", subject="One", list_ids=[mailing_list.id]
    )
    db.commit()
    # A draft that never went out does not move the start.
    assert roundups.last_cutoff(db) is None
    send_now(db, campaign.id, "c@example.org")
    db.commit()
    assert roundups.last_cutoff(db) == roundup.until

    second = approved_story(db, tmp_path, member, title="Second")
    again = roundups.compile_roundup(db, "c@example.org", "Two")
    assert again.story_ids == [second.id]
    assert first.id not in again.story_ids


def test_hand_picked_roundups_take_only_approved_stories(db: Session, tmp_path: Path) -> None:
    member = add_member(db)
    approved = approved_story(db, tmp_path, member)
    waiting = submit(db, tmp_path, member, title="Waiting")
    with pytest.raises(roundups.RoundupError, match=str(waiting.id)):
        roundups.compile_roundup(db, "c@example.org", "Picked", story_ids=[approved.id, waiting.id])
    picked = roundups.compile_roundup(db, "c@example.org", "Picked", story_ids=[approved.id])
    assert picked.hand_picked and picked.story_ids == [approved.id]


def test_withdrawing_a_story_rebuilds_unsent_roundups_and_cancels_an_emptied_one(db: Session, tmp_path: Path) -> None:
    mailing_list = a_list(db)
    ana, bo = add_member(db), add_member(db, "bo@example.org", "Bo")
    kept = approved_story(db, tmp_path, ana, title="Kept")
    gone = approved_story(db, tmp_path, bo, title="Gone")
    both = roundups.compile_roundup(db, "c@example.org", "Both", story_ids=[kept.id, gone.id])
    both_campaign = roundups.create_campaign_for(
        db, PUBLIC_URL, both, "c@example.org", subject="S", list_ids=[mailing_list.id]
    )
    alone = roundups.compile_roundup(db, "c@example.org", "Alone", story_ids=[gone.id])
    alone_campaign = roundups.create_campaign_for(
        db, PUBLIC_URL, alone, "c@example.org", subject="S", list_ids=[mailing_list.id]
    )
    both_campaign.content = {**both_campaign.content, "intro": "A coordinator's words"}
    db.commit()

    moderation.withdraw(db, gone.id, bo.id)
    db.commit()
    db.refresh(both_campaign)
    db.refresh(alone_campaign)
    assert both.story_ids == [kept.id]
    assert both_campaign.content["story_ids"] == [kept.id]
    assert both_campaign.content["intro"] == "A coordinator's words"
    assert alone.status == RoundupStatus.SKIPPED and "withdrawn" in alone.note
    assert alone_campaign.status == CampaignStatus.CANCELLED


def test_meet_tokens_are_one_per_member_and_only_for_meeting(settings: Settings) -> None:
    token = roundups.recipient_fields(settings, 42)["meet_token"]
    assert links.read_meet_token(settings, token) == 42
    with pytest.raises(links.StoryLinkError):
        links.read_withdraw_token(settings, token, 1)


# --- schedules -----------------------------------------------------------------------------


def schedule(**fields: object) -> RoundupSchedule:
    values: dict[str, object] = {
        "name": "Monthly roundup", "frequency": RoundupFrequency.MONTHLY, "weekday": 0, "nth": 1, "hour": 9,
        "timezone": "Europe/Lisbon", "list_ids": [1], "segment_ids": [], "send_automatically": True, "active": True,
    }  # fmt: skip
    values.update(fields)
    return RoundupSchedule(**values)


@pytest.mark.parametrize(
    ("fields", "after", "expected"),
    [
        ({}, datetime(2026, 11, 28, 12, tzinfo=UTC), datetime(2026, 12, 7, 9, tzinfo=UTC)),  # Lisbon is UTC in winter
        ({}, datetime(2026, 12, 7, 8, 59, tzinfo=UTC), datetime(2026, 12, 7, 9, tzinfo=UTC)),
        ({}, datetime(2026, 12, 7, 9, tzinfo=UTC), datetime(2027, 1, 4, 9, tzinfo=UTC)),
        ({"timezone": "Europe/Berlin"}, datetime(2027, 6, 1, tzinfo=UTC), datetime(2027, 6, 7, 7, tzinfo=UTC)),
        ({"nth": -1, "weekday": 4}, datetime(2027, 2, 1, tzinfo=UTC), datetime(2027, 2, 26, 9, tzinfo=UTC)),
        (
            {"frequency": "weekly", "weekday": 2},
            datetime(2026, 11, 28, tzinfo=UTC),
            datetime(2026, 12, 2, 9, tzinfo=UTC),
        ),
    ],
    ids=["first-monday", "same-day-before", "same-day-after", "summer-time", "last-friday", "weekly"],
)
def test_the_next_run_follows_the_calendar(fields: dict[str, object], after: datetime, expected: datetime) -> None:
    assert roundups.next_occurrence(schedule(**fields), after) == expected


def test_a_schedule_needs_an_audience_and_a_real_time_zone(db: Session) -> None:
    with pytest.raises(roundups.RoundupError, match="list or segment"):
        roundups.save_schedule(db, schedule(list_ids=[]), "c@example.org")
    with pytest.raises(roundups.RoundupError, match="time zone"):
        roundups.save_schedule(db, schedule(timezone="Mars/Olympus"), "c@example.org")
    assert roundups.nth_weekday(2026, 12, 0, 1) == date(2026, 12, 7)


def test_a_due_schedule_makes_one_roundup_per_date_and_starts_sending(
    db: Session, tmp_path: Path, settings: Settings
) -> None:
    mailing_list = a_list(db)
    story = approved_story(db, tmp_path, add_member(db))
    plan = schedule(list_ids=[mailing_list.id])
    roundups.save_schedule(db, plan, "c@example.org", now=datetime(2026, 11, 28, tzinfo=UTC))
    db.commit()
    due = plan.next_run_at
    assert due == datetime(2026, 12, 7, 9, tzinfo=UTC)

    run = roundups.run_schedule(db, settings, plan.id, now=due + timedelta(minutes=5))
    db.commit()
    assert run.started and run.roundup is not None
    assert run.roundup.story_ids == [story.id] and run.roundup.due_on == date(2026, 12, 7)
    campaign = db.get(Campaign, run.campaign_id)
    assert campaign is not None and campaign.status == CampaignStatus.SENDING
    assert campaign.subject == "Stories from Test Community, December 2026"
    assert plan.next_run_at == datetime(2027, 1, 4, 9, tzinfo=UTC)

    # The same date again (a job retried after its commit was lost): no second roundup.
    plan.next_run_at = due
    again = roundups.run_schedule(db, settings, plan.id, now=due + timedelta(minutes=6))
    db.commit()
    assert again.roundup is None
    assert len(db.scalars(select(Roundup)).all()) == 1


def test_a_due_schedule_with_no_new_stories_is_skipped_not_sent(db: Session, settings: Settings) -> None:
    plan = schedule(list_ids=[a_list(db).id], send_automatically=True)
    roundups.save_schedule(db, plan, "c@example.org", now=utcnow() - timedelta(days=40))
    db.commit()
    run = roundups.run_schedule(db, settings, plan.id)
    db.commit()
    assert run.roundup is not None and run.roundup.status == RoundupStatus.SKIPPED
    assert not run.started and run.campaign_id is None
    assert db.scalar(select(Campaign.id)) is None
    assert db.scalars(select(AuditEvent.action).where(AuditEvent.action == "roundup.skipped")).all()
    assert plan.next_run_at is not None and plan.next_run_at > utcnow()  # once, not once per missed month


def test_the_periodic_job_makes_due_roundups_and_rings_the_planner(
    db: Session, tmp_path: Path, settings: Settings, redis_conn, run_jobs
) -> None:
    mailing_list = a_list(db)
    approved_story(db, tmp_path, add_member(db))
    plan = schedule(list_ids=[mailing_list.id], send_automatically=True, timezone="UTC")
    roundups.save_schedule(db, plan, "c@example.org", now=utcnow() - timedelta(days=40))
    other = schedule(name="Paused", list_ids=[mailing_list.id], active=False)
    roundups.save_schedule(db, other, "c@example.org")
    db.commit()

    enqueue(redis_conn, run_roundup_schedules_job, queue=DEFAULT, retries=0)
    assert run_jobs((DEFAULT,)) == 0
    roundup = db.scalars(select(Roundup)).one()
    assert roundup.schedule_id == plan.id and roundup.status == RoundupStatus.COMPILED
    assert "plan-" + str(roundup.campaign_id) in [job.decode() for job in redis_conn.lrange("rq:queue:send", 0, -1)]

    # A second run finds nothing due.
    enqueue(redis_conn, run_roundup_schedules_job, queue=DEFAULT, retries=0)
    assert run_jobs((DEFAULT,)) == 0
    assert len(db.scalars(select(Roundup)).all()) == 1
