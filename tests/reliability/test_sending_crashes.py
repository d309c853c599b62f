"""Crash safety with real worker processes: SIGKILL of whole process groups at random moments,
and Redis killed and restarted empty mid-send. After recovery every row has an outcome, nobody
is missing, and only a message in flight at a kill may be uncertain (at most one per kill)."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from redis import Redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cop_mail.models import Campaign, CampaignStatus, Delivery, DeliveryStatus, Member
from cop_mail.sending import jobs, reconcile
from cop_mail.settings import Settings
from tests.conftest import seed_list_members
from tests.integration.test_sending_pipeline import make_campaign

pytestmark = pytest.mark.slow
COP_MAIL = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "cop-mail")


def worker_environment(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEND_", "SMTP_", "CAMPAIGN_"))}
    env.update(
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url or "",
        SECRET_KEY=settings.secret_key,
        PUBLIC_URL=settings.public_url,
        MAIL_DOMAIN=settings.mail_domain,
        MAIL_FROM=settings.mail_from,
        COMMUNITY_NAME=settings.community_name,
        POSTAL_ADDRESS=settings.postal_address,
        INSTANCE_PATH=str(settings.instance_path),
        SMTP_HOST=settings.smtp_host,
        SMTP_PORT=str(settings.smtp_port),
        SMTP_TIMEOUT=str(settings.smtp_timeout),
        SMTP_CONNECTIONS=str(settings.smtp_connections),
        SEND_BATCH_SIZE=str(settings.send_batch_size),
        SEND_LEASE_SECONDS=str(settings.send_lease_seconds),
        SEND_RETRY_SECONDS=str(settings.send_retry_seconds),
        SEND_MAX_ATTEMPTS=str(settings.send_max_attempts),
        SEND_PUSHBACK_SECONDS=str(settings.send_pushback_seconds),
        SEND_MAX_CONSECUTIVE_FAILURES=str(settings.send_max_consecutive_failures),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def descendants(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                found += [int(child), *descendants(int(child))]
    return found


def kill_group_and_horses(pid: int) -> None:
    """SIGKILL a worker's process group and its children's: RQ's work horse (the forked child
    running the job) and its scheduler each lead a process group of their own."""
    for member in [pid, *descendants(pid)]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(member, signal.SIGKILL)


@dataclass
class Workers:
    """Real `cop-mail worker` processes, each the leader of its own process group."""

    env: dict[str, str]
    logs: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    kills: int = 0
    started: int = 0

    def start(self, count: int = 1) -> None:
        for _ in range(count):
            self.started += 1
            with open(self.logs / f"worker-{self.started}.log", "wb") as log:
                self.processes.append(
                    subprocess.Popen(
                        [COP_MAIL, "worker", "--queue", "send"],
                        env=self.env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )

    def alive(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.processes if p.poll() is None]

    def kill_random(self, rng: random.Random) -> None:
        """SIGKILL a whole worker process group (the worker and the child running the job)."""
        victims = self.alive()
        if not victims:
            return
        victim = rng.choice(victims)
        kill_group_and_horses(victim.pid)
        victim.wait()
        self.kills += 1

    def keep(self, count: int) -> None:
        """Replace dead workers (a killed one, or one that quit when Redis went away)."""
        missing = count - len(self.alive())
        if missing > 0:
            self.start(missing)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                kill_group_and_horses(process.pid)
                process.wait()

    def log_tail(self, lines: int = 40) -> str:
        text = []
        for path in sorted(self.logs.glob("worker-*.log")):
            text.append(f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(text)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[Workers]]:
    made: list[Workers] = []
    yield made
    for group in made:
        group.stop()


def make_workers(made: list[Workers], settings: Settings, tmp_path: Path, **extra: str) -> Workers:
    logs = tmp_path / f"logs-{len(made)}"
    logs.mkdir()
    group = Workers(worker_environment(settings, **extra), logs)
    made.append(group)
    return group


# Short leases, retries and pushback, so recovery happens within a test's patience.
CRASH_OVERRIDES = {
    "smtp_timeout": 3,
    "smtp_connections": 8,
    "send_batch_size": 20,
    "send_lease_seconds": 2,
    "send_retry_seconds": 0.2,
    "send_pushback_seconds": 0.1,
    "send_max_attempts": 30,
    "send_max_consecutive_failures": 1000,
}


@pytest.fixture
def crash_settings(make_settings, smtp_sink, redis_conn, engine) -> Settings:
    return make_settings(smtp_port=smtp_sink.port, **CRASH_OVERRIDES)


def begin_send(session: Session, engine, redis: Redis, members: int) -> int:
    list_id = seed_list_members(engine, members)
    campaign_id = make_campaign(session, list_id)
    from cop_mail.sending import campaigns

    campaigns.send_now(session, campaign_id, "owner@example.org")
    session.commit()
    jobs.ring_plan(redis, campaign_id)
    return campaign_id


def reconcile_once(session: Session, redis: Redis) -> None:
    reconcile.reconcile(
        session,
        ring_plan=lambda cid: jobs.ring_plan(redis, cid),
        ring_batches=lambda cid: jobs.ring_batches(redis, cid),
    )
    session.commit()


def wait_until_sent(
    session: Session, redis_factory, campaign_id: int, group: Workers, worker_count: int, timeout: float = 90
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        group.keep(worker_count)
        try:
            reconcile_once(session, redis_factory())
        except Exception:  # Redis may be down on purpose; the next pass rings again
            session.rollback()
        session.expire_all()
        if session.get(Campaign, campaign_id).status == CampaignStatus.SENT:
            return
        time.sleep(0.3)
    counts = dict(session.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all())
    pytest.fail(f"campaign not finished: {counts}\n{group.log_tail()}")


def check_exactly_once(session: Session, sink, kills: int) -> Counter[str]:
    """Every row has an outcome; sent rows arrived once; uncertain at most once and at most one per kill."""
    rows = session.execute(select(Member.email, Delivery.status).join(Member, Member.id == Delivery.member_id)).all()
    received = Counter(rcpt for message in sink.messages for rcpt in message.rcpt_tos)
    statuses = Counter(status for _, status in rows)
    assert set(statuses) <= {DeliveryStatus.SENT, DeliveryStatus.UNCERTAIN}, statuses
    for address, status in rows:
        if status == DeliveryStatus.SENT:
            assert received[address] == 1, (address, received[address])
        else:
            assert received[address] <= 1, (address, received[address])
    assert statuses[DeliveryStatus.UNCERTAIN] <= kills
    assert set(received) <= {address for address, _ in rows}
    return statuses


@pytest.mark.parametrize("seed", [11, 22, 33])
def test_random_sigkills_lose_nobody_and_duplicate_nobody(
    db, engine, crash_settings, redis_conn, redis_url, smtp_sink, workers, tmp_path, seed
):
    rng = random.Random(seed)
    group = make_workers(workers, crash_settings, tmp_path)
    group.start(2)
    campaign_id = begin_send(db, engine, redis_conn, 1500)
    smtp_sink.wait_for(20, timeout=30)
    for _ in range(4):
        # Kill while messages are flowing: a worker that was just restarted needs a moment to boot.
        time.sleep(rng.uniform(0.05, 0.5))
        smtp_sink.wait_for(len(smtp_sink.messages) + 10, timeout=30)
        group.kill_random(rng)
        group.keep(2)

    wait_until_sent(db, lambda: redis_conn, campaign_id, group, 2)

    statuses = check_exactly_once(db, smtp_sink, group.kills)
    assert statuses[DeliveryStatus.SENT] + statuses[DeliveryStatus.UNCERTAIN] == 1500
    assert group.kills == 4


def test_redis_killed_and_restarted_empty_mid_send(
    db, engine, crash_settings, redis_server, redis_conn, smtp_sink, workers, tmp_path
):
    group = make_workers(workers, crash_settings, tmp_path)
    group.start(2)
    campaign_id = begin_send(db, engine, redis_conn, 3000)
    smtp_sink.wait_for(100, timeout=30)

    before = redis_conn.info("server")["run_id"]
    redis_server.kill()
    time.sleep(1.0)
    waiting = db.scalar(select(func.count()).where(Delivery.status == DeliveryStatus.QUEUED))
    redis_server.start()  # a new process without persistence: every queued job and throttle key is gone
    fresh = Redis.from_url(redis_server.url)
    # Workers reconnect (and register themselves) at once, so compare the server's identity, not its size.
    assert fresh.info("server")["run_id"] != before and waiting > 0

    wait_until_sent(db, lambda: fresh, campaign_id, group, 2)

    statuses = check_exactly_once(db, smtp_sink, kills=0)
    assert statuses == {DeliveryStatus.SENT: 3000}
