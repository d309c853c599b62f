"""The campaign status machine: allowed changes only, each recorded with who, when and why;
scheduling in a time zone; the scheduler starting due campaigns; retrying failed rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from cop_mail.models import Campaign, CampaignStatus, CampaignStatusChange, Delivery, DeliveryStatus
from cop_mail.sending import campaigns, planner, reconcile
from cop_mail.sending.campaigns import CampaignStateError
from tests.conftest import seed_list_members

S = CampaignStatus


def new_campaign(db, list_ids=(1,)) -> int:
    campaign = campaigns.create_campaign(
        db, name="Letter", kind="newsletter", subject="Hi", actor="ana@example.org", list_ids=list_ids
    )
    db.commit()
    return campaign.id


def test_every_change_is_recorded_with_actor_and_reason(db):
    campaign_id = new_campaign(db)
    campaigns.send_now(db, campaign_id, "ana@example.org")
    campaigns.pause(db, campaign_id, "ben@example.org", "a typo in the subject")
    campaigns.resume(db, campaign_id, "ana@example.org")
    campaigns.cancel(db, campaign_id, "cli")
    db.commit()

    history = [(c.from_status, c.to_status, c.actor, c.reason) for c in campaigns.status_history(db, campaign_id)]
    assert history == [
        ("draft", "sending", "ana@example.org", "send now"),
        ("sending", "paused", "ben@example.org", "a typo in the subject"),
        ("paused", "sending", "ana@example.org", "resumed"),
        ("sending", "cancelled", "cli", "cancelled"),
    ]
    campaign = db.get(Campaign, campaign_id)
    assert campaign.started_at is not None and campaign.finished_at is not None
    assert all(c.created_at.tzinfo is not None for c in campaigns.status_history(db, campaign_id))


@pytest.mark.parametrize(
    ("start", "action"),
    [
        (S.DRAFT, "pause"),
        (S.DRAFT, "resume"),
        (S.SENT, "pause"),
        (S.CANCELLED, "resume"),
        (S.CANCELLED, "send_now"),
        (S.PAUSED, "pause"),
    ],
)
def test_changes_the_status_does_not_allow_are_refused(db, start, action):
    campaign_id = new_campaign(db)
    db.execute(update(Campaign).values(status=start))
    db.commit()
    with pytest.raises(CampaignStateError):
        getattr(campaigns, action)(db, campaign_id, "ana@example.org")
    assert db.scalar(select(Campaign.status)) == start
    assert db.scalar(select(CampaignStatusChange.id)) is None


def test_a_stale_read_cannot_win_a_race(db, sessions):
    campaign_id = new_campaign(db)
    campaigns.send_now(db, campaign_id, "ana@example.org")
    db.commit()
    other = sessions()
    campaigns.pause(other, campaign_id, "ben@example.org")
    other.commit()
    other.close()
    # `db` still believes the campaign is sending; the conditional update sees the truth.
    with pytest.raises(CampaignStateError):
        campaigns.pause(db, campaign_id, "ana@example.org")


def test_sending_needs_an_audience(db):
    campaign_id = new_campaign(db, list_ids=())
    with pytest.raises(CampaignStateError, match="list or segment"):
        campaigns.send_now(db, campaign_id, "ana@example.org")


def test_schedule_at_a_wall_clock_time_in_a_time_zone(db):
    campaign_id = new_campaign(db)
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    campaigns.schedule(db, campaign_id, datetime(2026, 12, 1, 9, 0), "America/New_York", "ana@example.org", now=now)
    db.commit()
    campaign = db.get(Campaign, campaign_id)
    assert campaign.status == S.SCHEDULED and campaign.schedule_timezone == "America/New_York"
    assert campaign.scheduled_at == datetime(2026, 12, 1, 14, 0, tzinfo=UTC)  # 09:00 EST
    # Summer time: 09:00 in Lisbon in July is 08:00 UTC.
    campaigns.schedule(db, campaign_id, datetime(2027, 7, 1, 9, 0), "Europe/Lisbon", "ana@example.org", now=now)
    assert db.get(Campaign, campaign_id).scheduled_at == datetime(2027, 7, 1, 8, 0, tzinfo=UTC)


def test_schedule_refuses_the_past_and_unknown_zones(db):
    campaign_id = new_campaign(db)
    with pytest.raises(CampaignStateError, match="future"):
        campaigns.schedule(db, campaign_id, datetime(2020, 1, 1, 9, 0), "UTC", "ana@example.org")
    with pytest.raises(CampaignStateError, match="time zone"):
        campaigns.schedule(db, campaign_id, datetime(2099, 1, 1, 9, 0), "Mars/Olympus", "ana@example.org")


def test_due_scheduled_campaigns_start_once(db):
    campaign_id = new_campaign(db)
    soon = datetime.now(UTC) + timedelta(minutes=5)
    campaigns.schedule(db, campaign_id, soon.replace(tzinfo=None), "UTC", "ana@example.org")
    db.commit()
    assert campaigns.start_due(db, datetime.now(UTC)) == []
    later = soon + timedelta(seconds=1)
    assert campaigns.start_due(db, later) == [campaign_id]
    assert campaigns.start_due(db, later) == []
    db.commit()
    last = campaigns.status_history(db, campaign_id)[-1]
    assert (last.to_status, last.actor) == ("sending", "scheduler")


def test_reconciler_starts_due_campaigns_and_rings_the_planner(db):
    campaign_id = new_campaign(db)
    db.execute(update(Campaign).values(status=S.SCHEDULED, scheduled_at=datetime.now(UTC) - timedelta(seconds=1)))
    db.commit()
    planned, rung = [], []
    report = reconcile.reconcile(db, ring_plan=planned.append, ring_batches=rung.append)
    assert report.started == [campaign_id] and campaign_id in planned


def test_retry_failed_requeues_soft_failures_but_not_hard_bounces(db, engine):
    list_id = seed_list_members(engine, 3)
    campaign_id = new_campaign(db, list_ids=[list_id])
    campaigns.send_now(db, campaign_id, "ana@example.org")
    db.commit()
    planner.plan_campaign(db, campaign_id)
    db.execute(update(Delivery).where(Delivery.member_id == 1).values(status="failed", bounce_type="hard"))
    db.execute(update(Delivery).where(Delivery.member_id == 2).values(status="failed", bounce_type="soft", attempts=6))
    db.execute(update(Delivery).where(Delivery.member_id == 3).values(status="sent"))
    db.execute(update(Campaign).values(status=S.SENT))
    db.commit()

    assert campaigns.retry_failed(db, campaign_id, "ana@example.org") == 1
    db.commit()
    rows = dict(db.execute(select(Delivery.member_id, Delivery.status)).all())
    assert rows == {1: DeliveryStatus.FAILED, 2: DeliveryStatus.QUEUED, 3: DeliveryStatus.SENT}
    assert db.get(Campaign, campaign_id).status == S.SENDING


def test_a_campaign_finishes_only_when_planned_and_every_row_has_an_outcome(db, engine):
    list_id = seed_list_members(engine, 2)
    campaign_id = new_campaign(db, list_ids=[list_id])
    campaigns.send_now(db, campaign_id, "ana@example.org")
    db.commit()
    assert not reconcile.finish_if_done(db, campaign_id)  # not planned yet: no rows means nothing
    planner.plan_campaign(db, campaign_id)
    assert not reconcile.finish_if_done(db, campaign_id)
    db.execute(update(Delivery).values(status="sent"))
    db.commit()
    assert reconcile.finish_if_done(db, campaign_id)
    assert db.get(Campaign, campaign_id).status == S.SENT
