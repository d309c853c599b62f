"""A server that pushes back, a coordinator who pauses, a member who leaves, four workers at once:
real worker processes against SMTP sinks, and every member still gets exactly one message."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from cop_mail.audience.subscriptions import unsubscribe_stream
from cop_mail.models import Delivery, DeliveryStatus, Member, MemberStatus, Suppression
from cop_mail.sending import campaigns, jobs
from tests.conftest import SinkMessage, free_port
from tests.reliability.test_sending_crashes import (
    CRASH_OVERRIDES,
    Workers,
    begin_send,
    check_exactly_once,
    make_workers,
    wait_until_sent,
)

pytestmark = pytest.mark.slow


class PlannedSink:
    """An SMTP server following a seeded plan per recipient and attempt: accept, reply with a
    code, drop the connection after the message arrived (before the reply), or stall past the
    client's timeout. Dropped and stalled messages count as received: the server got them."""

    def __init__(self, plan: dict[str, list[str]], stall_seconds: float, pipelining: bool = False):
        self.plan = plan
        self.pipelining = pipelining
        self.stall_seconds = stall_seconds
        self.attempts: Counter[str] = Counter()
        self.messages: list[SinkMessage] = []
        self.refused: list[tuple[SinkMessage, str]] = []
        self.cut: list[str] = []
        self.lock = threading.Lock()
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]):
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = SinkMessage(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
        (recipient,) = message.rcpt_tos
        with self.lock:
            attempt = self.attempts[recipient]
            self.attempts[recipient] += 1
        steps = self.plan.get(recipient, [])
        action = steps[attempt] if attempt < len(steps) else "accept"
        if action in ("accept", "drop", "stall"):
            self.messages.append(message)
        if action == "drop":
            self.cut.append(recipient)
            server.transport.abort()
            return "250 OK"
        if action == "stall":
            self.cut.append(recipient)
            await asyncio.sleep(self.stall_seconds)
            return "250 OK (too late)"
        if action != "accept":
            self.refused.append((message, action))
            return action
        return "250 OK"


def fault_plan(addresses: list[str], rng: random.Random) -> tuple[dict[str, list[str]], dict[str, set[str]]]:
    """20 % refused for now (451, 454 or 421, once or twice), 1 % refused for good (550),
    and a few connections dropped or stalled before the final reply."""
    shuffled = addresses[:]
    rng.shuffle(shuffled)
    n = len(addresses)
    groups = {
        "hard": set(shuffled[: n // 100]),
        "temporary": set(shuffled[n // 100 : n // 100 + n // 5]),
        "drop": set(shuffled[n // 100 + n // 5 : n // 100 + n // 5 + 3]),
        "stall": set(shuffled[n // 100 + n // 5 + 3 : n // 100 + n // 5 + 5]),
    }
    plan: dict[str, list[str]] = {}
    for address in groups["hard"]:
        plan[address] = ["550 5.1.1 mailbox unavailable"] * 5
    for address in groups["temporary"]:
        codes = ["451 4.3.0 try again later", "454 4.7.0 throttled, slow down", "421 4.7.0 closing, too busy"]
        plan[address] = [rng.choice(codes) for _ in range(rng.choice((1, 2)))]
    for address in groups["drop"]:
        plan[address] = ["drop"]
    for address in groups["stall"]:
        plan[address] = ["stall"]
    return plan, groups


@pytest.fixture
def crash_settings(make_settings, smtp_sink, redis_conn, engine):
    return make_settings(smtp_port=smtp_sink.port, **CRASH_OVERRIDES)


@pytest.fixture
def workers() -> Iterator[list[Workers]]:
    made: list[Workers] = []
    yield made
    for group in made:
        group.stop()


@pytest.fixture
def planned_sink() -> Iterator[list[PlannedSink]]:
    made: list[PlannedSink] = []
    yield made
    for sink in made:
        sink.controller.stop()


@pytest.mark.parametrize("seed", [5, 6])
def test_pushback_hard_bounces_drops_and_stalls(
    db, engine, make_settings, redis_conn, workers, planned_sink, tmp_path, seed
):
    rng = random.Random(seed)
    addresses = [f"member{i}@example.org" for i in range(1, 501)]
    plan, groups = fault_plan(addresses, rng)
    sink = PlannedSink(plan, stall_seconds=2.5, pipelining=seed % 2 == 0)
    sink.controller.start()
    planned_sink.append(sink)
    settings = make_settings(
        smtp_port=sink.port, smtp_timeout=1.5, smtp_connections=8, send_batch_size=20, send_lease_seconds=3,
        send_retry_seconds=0.2, send_pushback_seconds=0.05, send_max_attempts=30, send_max_consecutive_failures=1000,
    )  # fmt: skip
    group = make_workers(workers, settings, tmp_path)
    group.start(2)
    campaign_id = begin_send(db, engine, redis_conn, 500)

    wait_until_sent(db, lambda: redis_conn, campaign_id, group, 2)

    rows = dict(db.execute(select(Member.email, Delivery).join(Delivery, Delivery.member_id == Member.id)).all())
    received = Counter(r for m in sink.messages for r in m.rcpt_tos)
    for address in groups["hard"]:
        row = rows[address]
        assert (row.status, row.attempts, row.bounce_type) == ("failed", 1, "hard")
        assert sink.attempts[address] == 1 and received[address] == 0
    assert db.scalar(select(func.count(Suppression.id))) == len(groups["hard"])
    assert db.scalar(select(func.count()).where(Member.status == MemberStatus.BOUNCED)) == len(groups["hard"])
    for address in groups["temporary"]:
        assert rows[address].status == DeliveryStatus.SENT and received[address] == 1
    cut = len(sink.cut)
    uncertain = [a for a, row in rows.items() if row.status == DeliveryStatus.UNCERTAIN]
    assert set(uncertain) <= groups["drop"] | groups["stall"] and len(uncertain) <= cut
    for address, row in rows.items():
        if address not in groups["hard"]:
            assert row.status in (DeliveryStatus.SENT, DeliveryStatus.UNCERTAIN), (address, row.status)
            assert received[address] == 1 if row.status == DeliveryStatus.SENT else received[address] <= 1


def test_pause_stops_new_messages_within_two_seconds_and_resume_completes(
    db, engine, crash_settings, redis_conn, smtp_sink, workers, tmp_path
):
    arrivals: list[float] = []
    smtp_sink.responder = lambda message: arrivals.append(time.monotonic())  # type: ignore[func-returns-value]
    group = make_workers(workers, crash_settings, tmp_path)
    group.start(2)
    campaign_id = begin_send(db, engine, redis_conn, 1500)
    smtp_sink.wait_for(450, timeout=60)  # 30 %

    campaigns.pause(db, campaign_id, "owner@example.org")
    db.commit()
    paused_at = time.monotonic()
    time.sleep(2.5)
    late = [t for t in arrivals if t > paused_at + 2.0]
    at_pause = sum(1 for t in arrivals if t <= paused_at)
    assert late == []
    # Only a message already past its mark (one per worker) can still arrive after the pause.
    assert len(arrivals) - at_pause <= 2
    assert len(arrivals) < 1500

    campaigns.resume(db, campaign_id, "owner@example.org")
    db.commit()
    jobs.ring_batches(redis_conn, campaign_id)
    wait_until_sent(db, lambda: redis_conn, campaign_id, group, 2)
    statuses = check_exactly_once(db, smtp_sink, kills=0)
    assert statuses == {DeliveryStatus.SENT: 1500}


def test_member_who_unsubscribes_mid_send_gets_nothing_more(
    db, engine, crash_settings, redis_conn, smtp_sink, workers, tmp_path
):
    group = make_workers(workers, crash_settings, tmp_path)
    group.start(2)
    campaign_id = begin_send(db, engine, redis_conn, 1500)
    smtp_sink.wait_for(200, timeout=60)
    queued = select(Delivery.member_id).where(Delivery.status == DeliveryStatus.QUEUED)
    waiting = db.scalars(queued.order_by(Delivery.id.desc()).limit(20)).all()
    assert len(waiting) == 20
    for member_id in waiting:
        unsubscribe_stream(db, member_id, "newsletters", source="test")
    db.commit()

    wait_until_sent(db, lambda: redis_conn, campaign_id, group, 2)

    leavers = set(db.scalars(select(Member.email).where(Member.id.in_(waiting))))
    received = Counter(r for m in smtp_sink.messages for r in m.rcpt_tos)
    assert all(received[address] == 0 for address in leavers)
    statuses = Counter(db.scalars(select(Delivery.status).where(Delivery.member_id.in_(waiting))))
    assert statuses == {DeliveryStatus.SUPPRESSED: 20}
    others = db.execute(
        select(Member.email, Delivery.status)
        .join(Delivery, Delivery.member_id == Member.id)
        .where(Member.id.not_in(waiting))
    ).all()
    assert all(status == DeliveryStatus.SENT and received[address] == 1 for address, status in others)


def test_four_workers_on_one_campaign_send_nothing_twice(
    db, engine, crash_settings, redis_conn, smtp_sink, workers, tmp_path
):
    group = make_workers(workers, crash_settings, tmp_path)
    group.start(4)
    campaign_id = begin_send(db, engine, redis_conn, 1200)

    wait_until_sent(db, lambda: redis_conn, campaign_id, group, 4)

    assert check_exactly_once(db, smtp_sink, kills=0) == {DeliveryStatus.SENT: 1200}
    claimers = {token.rsplit(":", 1)[0] for token in db.scalars(select(Delivery.claimed_by).distinct())}
    assert len(claimers) >= 2  # the work really was shared
