"""Throttling shared through a real Redis: rates across workers, pushback, connection slots,
and a campaign that pauses itself after a run of failures."""

from __future__ import annotations

import threading
import time

from sqlalchemy import select

from cop_mail.models import Campaign, CampaignStatus, Delivery, DeliveryStatus
from cop_mail.sending import campaigns
from cop_mail.sending.throttle import Limits, Throttle
from tests.conftest import seed_list_members
from tests.integration.test_sending_pipeline import drain, make_campaign, start


def always() -> bool:
    return True


def test_rate_limit_is_shared_by_every_worker(redis_conn):
    limits = Limits(per_second=40)
    workers = [Throttle(redis_conn, limits, 1, "smtp:25") for _ in range(3)]
    sent: list[float] = []

    def send(throttle: Throttle, count: int) -> None:
        for _ in range(count):
            throttle.wait_turn(always)
            sent.append(time.monotonic())

    threads = [threading.Thread(target=send, args=(throttle, 40)) for throttle in workers]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    # 120 messages paced at 40/s across three workers: about 3 s (unshared limits would take 1 s).
    assert elapsed >= 2.8, elapsed
    in_any_second = max(sum(1 for t in sent if s <= t < s + 1.0) for s in sent)
    assert in_any_second <= 41


def test_campaign_limit_leaves_other_campaigns_alone(redis_conn):
    limits = Limits(campaign_per_second=5)
    slow = Throttle(redis_conn, limits, 1, "smtp:25")
    other = Throttle(redis_conn, limits, 2, "smtp:25")
    slow.wait_turn(always)
    other.wait_turn(always)  # campaign 2 has its own pace
    assert other.waited == 0
    slow.wait_turn(always)
    assert 0.15 <= slow.waited <= 0.5


def test_pushback_is_shared_grows_and_ends_at_the_first_success(redis_conn):
    first = Throttle(redis_conn, Limits(per_second=1000), 1, "smtp:25", pushback_seconds=0.2)
    second = Throttle(redis_conn, Limits(per_second=1000), 2, "smtp:25", pushback_seconds=0.2)
    assert first.pushback() == 0.2
    assert second.pushback() == 0.4  # the run of 421/454 continues across workers
    started = time.monotonic()
    second.wait_turn(always)
    assert 0.3 <= time.monotonic() - started < 1.0
    second.success()
    assert first.pushback() == 0.2  # a new run starts small again


def test_connection_slots_per_server(redis_conn):
    limits = Limits(connections=2)
    a, b, c = (Throttle(redis_conn, limits, 1, "smtp:25") for _ in range(3))
    assert a.acquire_connection(30, 0, always) and b.acquire_connection(30, 0, always)
    assert not c.acquire_connection(30, 0.2, always)
    a.release_connection()
    assert c.acquire_connection(30, 0, always)
    # Another server has its own slots.
    assert Throttle(redis_conn, limits, 1, "other:25").acquire_connection(30, 0, always)


def test_leases_of_a_dead_worker_expire(redis_conn):
    limits = Limits(connections=1)
    Throttle(redis_conn, limits, 1, "smtp:25").acquire_connection(0.3, 0, always)
    assert Throttle(redis_conn, limits, 1, "smtp:25").acquire_connection(30, 1.0, always)


def test_run_of_failures_pauses_the_campaign_with_the_reason(db, engine, make_settings, smtp_sink, redis_conn):
    settings = make_settings(
        smtp_port=smtp_sink.port, send_batch_size=10, send_max_consecutive_failures=8, send_retry_seconds=60
    )
    list_id = seed_list_members(engine, 30)
    campaign_id = make_campaign(db, list_id)
    start(db, campaign_id)
    smtp_sink.responder = lambda message: "451 4.3.2 system not accepting messages"

    drain(engine, settings, campaign_id, redis=redis_conn)

    db.expire_all()
    campaign = db.get(Campaign, campaign_id)
    assert campaign.status == CampaignStatus.PAUSED
    assert "8 messages in a row" in campaign.paused_reason and "451 4.3.2" in campaign.paused_reason
    attempted = db.scalar(select(Delivery.id).where(Delivery.status == DeliveryStatus.SENT))
    assert attempted is None and len(smtp_sink.refused) <= 10
    last = campaigns.status_history(db, campaign_id)[-1]
    assert (last.to_status, last.actor) == ("paused", "system") and "451" in last.reason


def test_a_success_resets_the_run(db, engine, make_settings, smtp_sink, redis_conn):
    settings = make_settings(
        smtp_port=smtp_sink.port, send_batch_size=50, send_max_consecutive_failures=5, send_retry_seconds=60
    )
    list_id = seed_list_members(engine, 40)
    campaign_id = make_campaign(db, list_id)
    start(db, campaign_id)
    count = {"n": 0}

    def every_fourth_refused(message):
        count["n"] += 1
        return "451 try later" if count["n"] % 4 else None

    smtp_sink.responder = every_fourth_refused
    drain(engine, settings, campaign_id, redis=redis_conn)
    db.expire_all()
    assert db.get(Campaign, campaign_id).status == CampaignStatus.SENDING


def test_a_rate_limited_campaign_is_paced(db, engine, make_settings, smtp_sink, redis_conn):
    settings = make_settings(smtp_port=smtp_sink.port, send_rate_per_second=20)
    list_id = seed_list_members(engine, 30)
    campaign_id = make_campaign(db, list_id)
    start(db, campaign_id)
    arrivals: list[float] = []
    smtp_sink.responder = lambda message: arrivals.append(time.monotonic())  # type: ignore[func-returns-value]

    drain(engine, settings, campaign_id, redis=redis_conn)

    assert len(arrivals) == 30
    assert arrivals[-1] - arrivals[0] >= 29 / 20 * 0.9  # one message every 50 ms
