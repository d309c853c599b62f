"""Recovery of claims left behind by a dead worker, resending uncertain rows when asked, and the
RQ jobs driving a whole campaign (planner, batches, reconciler) through a real Redis."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from sqlalchemy import select, update

from cop_mail import jobs as job_support
from cop_mail.db import utcnow
from cop_mail.models import Campaign, CampaignStatus, Delivery, DeliveryStatus
from cop_mail.sending import claims, jobs, pipeline, reconcile
from tests.conftest import seed_list_members
from tests.integration.test_sending_pipeline import drain, make_campaign, recipients_of, start


def claim_and_mark(engine, campaign_id: int, marked: int, size: int = 5) -> list[claims.ClaimedRow]:
    """A worker that claimed `size` rows and marked the first `marked` before it died."""
    with pipeline.sending_connection(engine) as conn:
        rows = claims.claim_batch(conn, campaign_id, "dead-worker:1", size, 60, "cop-mail.test")
        campaign = pipeline.load_campaign(conn, campaign_id)
        marker = claims.Marker(conn, claims.mark_statement(campaign.kind, campaign.list_ids, [], utcnow()))
        for row in rows[:marked]:
            assert marker(row.delivery_id, "dead-worker:1", utcnow())
        marker.close()
    return rows


def test_expired_claim_latest_mark_is_uncertain_earlier_sent_rest_requeued(db, engine, make_settings):
    list_id = seed_list_members(engine, 8)
    campaign_id = make_campaign(db, list_id)
    start(db, campaign_id)
    rows = claim_and_mark(engine, campaign_id, marked=3)

    # Not expired yet: nothing is touched.
    assert reconcile.recover_expired(db.connection(), utcnow()) == (0, 0, 0)
    later = utcnow() + timedelta(seconds=61)
    assert reconcile.recover_expired(db.connection(), later) == (1, 2, 2)
    db.commit()

    status = dict(db.execute(select(Delivery.id, Delivery.status)).all())
    assert [status[r.delivery_id] for r in rows] == ["sent", "sent", "uncertain", "queued", "queued"]
    uncertain = db.get(Delivery, rows[2].delivery_id)
    assert "in flight" in uncertain.last_error and uncertain.attempts == 1
    assert db.get(Delivery, rows[0].delivery_id).sent_at is not None
    assert db.get(Delivery, rows[3].delivery_id).claimed_by is None


def test_a_row_taken_back_is_never_sent_by_its_old_claim(db, engine, make_settings, smtp_sink):
    list_id = seed_list_members(engine, 3)
    campaign_id = make_campaign(db, list_id)
    start(db, campaign_id)
    rows = claim_and_mark(engine, campaign_id, marked=0, size=3)
    reconcile.recover_expired(db.connection(), utcnow() + timedelta(seconds=61))
    db.commit()
    with pipeline.sending_connection(engine) as conn:
        campaign = pipeline.load_campaign(conn, campaign_id)
        marker = claims.Marker(conn, claims.mark_statement(campaign.kind, campaign.list_ids, [], utcnow()))
        # The slow worker comes back: its mark fails, so it cannot send.
        assert not marker(rows[0].delivery_id, "dead-worker:1", utcnow())
        assert claims.why_not_marked(conn, campaign_id, rows[0].delivery_id, "dead-worker:1") == "lost"
        marker.close()


def test_uncertain_rows_are_resent_only_when_the_campaign_asks(db, engine, make_settings, smtp_sink):
    settings = make_settings(smtp_port=smtp_sink.port)
    list_id = seed_list_members(engine, 4)
    campaign_id = make_campaign(db, list_id)
    start(db, campaign_id)
    rows = claim_and_mark(engine, campaign_id, marked=1, size=1)
    reconcile.recover_expired(db.connection(), utcnow() + timedelta(seconds=61))
    db.commit()
    drain(engine, settings, campaign_id)
    assert reconcile.requeue_uncertain(db.connection()) == 0  # default: not resent
    assert reconcile.finish_if_done(db, campaign_id)
    assert len(smtp_sink.messages) == 3

    db.execute(update(Campaign).values(resend_uncertain=True, status=CampaignStatus.SENDING))
    db.commit()
    assert reconcile.requeue_uncertain(db.connection()) == 1
    db.commit()
    drain(engine, settings, campaign_id)
    row = db.get(Delivery, rows[0].delivery_id)
    db.refresh(row)
    assert row.status == DeliveryStatus.SENT
    resent = [m for m in smtp_sink.messages if b"Message-ID: " + row.message_id.encode() in m.data]
    assert len(resent) == 1  # with the Message-ID it had, so a receiver can tell it is the same message


def test_rq_jobs_send_a_whole_campaign(db, engine, run_jobs, smtp_sink, redis_conn, monkeypatch):
    monkeypatch.setenv("SMTP_PORT", str(smtp_sink.port))
    monkeypatch.setenv("SEND_BATCH_SIZE", "7")
    job_support.reset_process_state()
    list_id = seed_list_members(engine, 30)
    campaign_id = make_campaign(db, list_id)
    from cop_mail.sending import campaigns

    campaigns.send_now(db, campaign_id, "owner@example.org")
    db.commit()
    assert jobs.ring_plan(redis_conn, campaign_id)

    assert run_jobs() == 0
    db.expire_all()
    assert db.get(Campaign, campaign_id).status == CampaignStatus.SENT
    got = recipients_of(smtp_sink)
    assert len(got) == 30 and set(got.values()) == {1}


def test_reconcile_job_rings_again_after_redis_lost_everything(
    db, engine, run_jobs, smtp_sink, redis_conn, monkeypatch
):
    monkeypatch.setenv("SMTP_PORT", str(smtp_sink.port))
    job_support.reset_process_state()
    list_id = seed_list_members(engine, 12)
    campaign_id = make_campaign(db, list_id)
    start(db, campaign_id)  # sending and planned, but no job was ever enqueued
    redis_conn.flushdb()

    result = jobs.reconcile_job()
    assert result["rung"] == [campaign_id]
    assert run_jobs() == 0
    db.expire_all()
    assert db.get(Campaign, campaign_id).status == CampaignStatus.SENT
    assert Counter(db.scalars(select(Delivery.status))) == {DeliveryStatus.SENT: 12}
