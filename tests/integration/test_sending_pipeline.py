"""A campaign end to end in-process: plan, claim batches, send to a real SMTP sink, record outcomes."""

from __future__ import annotations

import email
import time
from collections import Counter
from email import policy

import pytest
from sqlalchemy import func, select

from cop_mail.models import Campaign, CampaignStatus, Delivery, DeliveryStatus, Member, MemberStatus, Suppression
from cop_mail.sending import campaigns, pipeline, planner, reconcile, report
from cop_mail.settings import Settings
from tests.conftest import seed_list_members


def make_campaign(session, list_id: int, **content) -> int:
    campaign = campaigns.create_campaign(
        session,
        name="Autumn letter",
        kind="newsletter",
        subject="Hello {{ member.first_name | default('friend') }}",
        actor="owner@example.org",
        content={"template": "message", "heading": "Autumn", "body": "Hello **there**.", "button": None, **content},
        list_ids=[list_id],
    )
    session.commit()
    return campaign.id


def start(session, campaign_id: int) -> None:
    campaigns.send_now(session, campaign_id, "owner@example.org")
    session.commit()
    planner.plan_campaign(session, campaign_id)


def drain(engine, settings: Settings, campaign_id: int, redis=None, rounds: int = 200) -> list[pipeline.BatchResult]:
    results = []
    for _ in range(rounds):
        result = pipeline.send_batch(engine, settings, redis, campaign_id, "test-worker")
        results.append(result)
        if result.claimed == 0:
            break
    return results


def recipients_of(sink) -> Counter[str]:
    return Counter(rcpt for message in sink.messages for rcpt in message.rcpt_tos)


@pytest.fixture
def send_settings(make_settings, smtp_sink, redis_conn, engine) -> Settings:
    return make_settings(smtp_port=smtp_sink.port, send_batch_size=40, smtp_timeout=5)


def test_every_member_gets_exactly_one_message(db, engine, send_settings, smtp_sink):
    list_id = seed_list_members(engine, 150)
    campaign_id = make_campaign(db, list_id)
    start(db, campaign_id)

    results = drain(engine, send_settings, campaign_id)

    assert sum(r.sent for r in results) == 150
    got = recipients_of(smtp_sink)
    assert len(got) == 150 and set(got.values()) == {1}
    statuses = dict(db.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all())
    assert statuses == {DeliveryStatus.SENT: 150}
    # The Message-ID the member received is the one stored on their row.
    stored = set(db.scalars(select(Delivery.message_id)))
    sent_ids = {email.message_from_bytes(m.data, policy=policy.default)["Message-ID"] for m in smtp_sink.messages}
    assert sent_ids == stored and all(mid.endswith("@cop-mail.test>") for mid in stored)
    db.expire_all()
    reconcile.finish_if_done(db, campaign_id)
    assert db.get(Campaign, campaign_id).status == CampaignStatus.SENT


def test_planning_twice_adds_nobody_twice(db, engine, send_settings):
    list_id = seed_list_members(engine, 30)
    campaign_id = make_campaign(db, list_id)
    campaigns.send_now(db, campaign_id, "owner@example.org")
    db.commit()
    assert planner.plan_campaign(db, campaign_id, chunk=7) == 30
    db.execute(Campaign.__table__.update().values(planned_at=None))
    db.commit()
    assert planner.plan_campaign(db, campaign_id, chunk=7) == 0
    assert db.scalar(select(func.count(Delivery.id))) == 30


def test_planning_skips_members_who_may_not_receive(db, engine, send_settings):
    list_id = seed_list_members(engine, 10)
    db.execute(Member.__table__.update().where(Member.id == 2).values(status=MemberStatus.UNSUBSCRIBED))
    db.execute(Member.__table__.update().where(Member.id == 3).values(wants_newsletters=False))
    db.commit()
    campaign_id = make_campaign(db, list_id)
    start(db, campaign_id)
    planned = set(db.scalars(select(Delivery.member_id)))
    assert planned == set(range(1, 11)) - {2, 3}


def test_hard_bounce_fails_once_and_suppresses_the_member(db, engine, send_settings, smtp_sink):
    list_id = seed_list_members(engine, 20)
    campaign_id = make_campaign(db, list_id)
    start(db, campaign_id)
    smtp_sink.responder = lambda m: "550 5.1.1 no such user" if m.rcpt_tos == ["member7@example.org"] else None

    drain(engine, send_settings, campaign_id)

    row = db.scalar(select(Delivery).where(Delivery.member_id == 7))
    assert (row.status, row.attempts, row.bounce_type, row.smtp_code) == ("failed", 1, "hard", 550)
    assert db.get(Member, 7).status == MemberStatus.BOUNCED
    assert db.scalar(select(func.count(Suppression.id))) == 1
    assert len(smtp_sink.refused) == 1 and len(smtp_sink.messages) == 19


def test_temporary_refusal_is_retried_until_delivered(db, engine, send_settings, smtp_sink):
    settings = send_settings.with_overrides(send_retry_seconds=0.01)
    list_id = seed_list_members(engine, 12)
    campaign_id = make_campaign(db, list_id)
    start(db, campaign_id)
    refusals = Counter()

    def twice_for_member_5(message):
        if message.rcpt_tos == ["member5@example.org"] and refusals["m5"] < 2:
            refusals["m5"] += 1
            return "451 4.7.1 try again later"
        return None

    smtp_sink.responder = twice_for_member_5
    for _ in range(20):
        drain(engine, settings, campaign_id)
        if db.scalar(select(func.count()).where(Delivery.status != DeliveryStatus.SENT)) == 0:
            break
        time.sleep(0.05)
    assert recipients_of(smtp_sink)["member5@example.org"] == 1
    row = db.scalar(select(Delivery).where(Delivery.member_id == 5))
    assert (row.status, row.attempts) == ("sent", 3)


def test_unsubscribed_after_planning_is_suppressed_not_sent(db, engine, send_settings, smtp_sink):
    list_id = seed_list_members(engine, 10)
    campaign_id = make_campaign(db, list_id)
    start(db, campaign_id)
    db.execute(Member.__table__.update().where(Member.id == 4).values(wants_newsletters=False))
    db.commit()

    drain(engine, send_settings, campaign_id)

    assert "member4@example.org" not in recipients_of(smtp_sink)
    assert db.scalar(select(Delivery.status).where(Delivery.member_id == 4)) == DeliveryStatus.SUPPRESSED
    assert report.progress(db, campaign_id).suppressed == 1


def test_paused_campaign_sends_nothing_and_gives_rows_back(db, engine, send_settings, smtp_sink):
    list_id = seed_list_members(engine, 10)
    campaign_id = make_campaign(db, list_id)
    start(db, campaign_id)
    campaigns.pause(db, campaign_id, "owner@example.org")
    db.commit()

    result = pipeline.send_batch(engine, send_settings, None, campaign_id, "w")

    assert result.claimed == 0 and smtp_sink.messages == []
    campaigns.resume(db, campaign_id, "owner@example.org")
    db.commit()
    drain(engine, send_settings, campaign_id)
    assert len(recipients_of(smtp_sink)) == 10


def test_segment_audience_is_planned_and_a_deleted_segment_fails_the_campaign(db, engine, send_settings):
    from cop_mail.audience.segments import save_segment
    from cop_mail.models import Segment

    seed_list_members(engine, 6)
    db.execute(Member.__table__.update().where(Member.id.in_([2, 4])).values(location="Lisbon"))
    db.commit()
    segment = save_segment(
        db, "Lisbon", {"match": "all", "rules": [{"field": "location", "op": "equals", "value": "Lisbon"}]}
    )
    db.commit()
    campaign = campaigns.create_campaign(
        db, name="Local", kind="newsletter", subject="Hi", actor="x", segment_ids=[segment.id],
        content={"template": "message", "heading": "Hi", "body": "Body", "button": None},
    )  # fmt: skip
    db.commit()
    start(db, campaign.id)
    assert set(db.scalars(select(Delivery.member_id))) == {2, 4}

    other = campaigns.create_campaign(
        db, name="Gone", kind="newsletter", subject="Hi", actor="x", segment_ids=[segment.id],
        content={"template": "message", "heading": "Hi", "body": "Body", "button": None},
    )  # fmt: skip
    db.commit()
    campaigns.send_now(db, other.id, "x")
    db.execute(Segment.__table__.delete())
    db.commit()
    assert planner.plan_campaign(db, other.id) == 0
    db.expire_all()
    failed = db.get(Campaign, other.id)
    assert failed.status == "failed" and "no longer exists" in campaigns.status_history(db, other.id)[-1].reason


def test_suppressed_address_is_skipped_at_send_time_even_if_still_active(db, engine, send_settings, smtp_sink):
    from cop_mail.tokens import address_hash

    list_id = seed_list_members(engine, 5)
    campaign_id = make_campaign(db, list_id)
    start(db, campaign_id)
    # A suppression that reached the table without touching the member (e.g. another tool's list).
    db.add(Suppression(email_hash=address_hash("member3@example.org"), reason="imported"))
    db.commit()

    drain(engine, send_settings, campaign_id)

    assert "member3@example.org" not in recipients_of(smtp_sink)
    assert db.scalar(select(Delivery.status).where(Delivery.member_id == 3)) == DeliveryStatus.SUPPRESSED
