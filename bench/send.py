"""End-to-end sending speed: press send on a newsletter to N members, with real workers, beside
the raw limit measured in the same run.

- A minimal SMTP sink in its own process only counts messages (aiosmtpd itself costs ~1.7 ms of
  CPU per message and would be the bottleneck).
- Raw limit: pre-built messages of the same size pushed with smtplib over persistent
  connections to the same sink, from as many processes as there are workers; measured before
  and after the end-to-end run (the mean is reported, since the machine may be shared).
- End to end: N members seeded, a value-themed newsletter (the real template) compiled, 2 real
  `cop-mail worker` processes started and idle, then the clock runs from the send command
  (status change, commit, enqueue) until the sink accepts the last message. Then the same with
  RSA-2048 DKIM signing, and (unless --no-features) with the attention budget checking every
  member (a cap no one reaches) and open and click tracking on, to show what those cost.

    .venv/bin/python bench/send.py [--n 10000] [--workers 2] [--database-url postgresql://...]

Ends with `BENCH <name> <value> <unit>` lines. Targets: >= 1,000 msg/s (600 with DKIM) with
2 workers, and at least half the raw limit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from redis import Redis  # noqa: E402
from rq import Worker  # noqa: E402
from sqlalchemy import insert, text  # noqa: E402

from cop_mail import community, migrate  # noqa: E402
from cop_mail.db import make_engine, make_session_factory, utcnow  # noqa: E402
from cop_mail.models import ListMembership, MailingList, Member  # noqa: E402
from cop_mail.rendering import samples  # noqa: E402
from cop_mail.sending import campaigns, jobs, pipeline  # noqa: E402
from cop_mail.settings import Settings  # noqa: E402
from cop_mail.tokens import address_hash  # noqa: E402

COP_MAIL = str(ROOT / ".venv" / "bin" / "cop-mail")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- the counting sink ----------------------------------------------------------------------


async def _session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, count: Any, last: Any) -> None:
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    writer.write(b"220 sink ESMTP\r\n")
    while True:
        line = await reader.readline()
        if not line:
            break
        verb = line[:4].upper()
        if verb in (b"EHLO", b"HELO"):
            writer.write(b"250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 52428800\r\n")
        elif verb == b"DATA":
            writer.write(b"354 go ahead\r\n")
            await writer.drain()
            await reader.readuntil(b"\r\n.\r\n")
            with count.get_lock():
                count.value += 1
            last.value = time.time()
            writer.write(b"250 OK\r\n")
        elif verb == b"QUIT":
            writer.write(b"221 bye\r\n")
            await writer.drain()
            break
        else:  # MAIL, RCPT, RSET, NOOP
            writer.write(b"250 OK\r\n")
        await writer.drain()
    writer.close()


def run_sink(port: int, count: Any, last: Any, ready: Any) -> None:
    async def main() -> None:
        server = await asyncio.start_server(
            lambda r, w: _session(r, w, count, last), "127.0.0.1", port, limit=64 * 1024 * 1024
        )
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# --- the raw limit ----------------------------------------------------------------------------


def push_raw(port: int, message: bytes, count: int) -> None:
    client = smtplib.SMTP("127.0.0.1", port, local_hostname="bench.local")
    client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for i in range(count):
        client.sendmail("bounces@bench.local", [f"member{i}@example.org"], message)
    client.quit()


def raw_rate(port: int, message: bytes, n: int, processes: int, counter: Any) -> float:
    before = counter.value
    started = time.time()
    workers = [multiprocessing.Process(target=push_raw, args=(port, message, n // processes)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.time() - started
    return (counter.value - before) / elapsed


# --- the service under test -------------------------------------------------------------------


def seed(engine: Any, n: int) -> int:
    now = utcnow()
    with engine.begin() as conn:
        list_id = conn.execute(
            insert(MailingList).values(name="Everyone", slug="everyone", opt_in="single", created_at=now)
        ).inserted_primary_key[0]
        for start in range(1, n + 1, 5000):
            ids = range(start, min(start + 5000, n + 1))
            conn.execute(
                insert(Member),
                [
                    {"id": i, "email": f"member{i}@example.org", "email_hash": address_hash(f"member{i}@example.org"),
                     "name": f"Member Number{i}", "status": "active", "created_at": now, "updated_at": now,
                     "joined_at": now}
                    for i in ids
                ],
            )  # fmt: skip
            conn.execute(
                insert(ListMembership),
                [{"list_id": list_id, "member_id": i, "status": "subscribed", "created_at": now} for i in ids],
            )
    return int(list_id)


def newsletter_campaign(session: Any, list_id: int, name: str) -> int:
    content = {"template": "newsletter", **samples.newsletter()}
    campaign = campaigns.create_campaign(
        session, name=name, kind="newsletter", subject="", actor="bench", content=content, list_ids=[list_id]
    )
    session.commit()
    return campaign.id


def environment(settings: Settings, dkim_file: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url or "",
        SECRET_KEY=settings.secret_key,
        PUBLIC_URL=settings.public_url,
        MAIL_DOMAIN=settings.mail_domain,
        MAIL_FROM=settings.mail_from,
        INSTANCE_PATH=str(settings.instance_path),
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(settings.smtp_port),
        SMTP_CONNECTIONS="16",
        COMMUNITY_NAME=settings.community_name,
        POSTAL_ADDRESS=settings.postal_address,
    )
    if dkim_file is not None:
        env.update(DKIM_SELECTOR="bench", DKIM_DOMAIN=settings.mail_domain, DKIM_PRIVATE_KEY_FILE=str(dkim_file))
    return env


def start_workers(env: dict[str, str], count: int, redis: Redis, logs: Path) -> list[subprocess.Popen[bytes]]:
    procs = []
    for index in range(count):
        with open(logs / f"worker-{len(list(logs.iterdir()))}-{index}.log", "wb") as log:
            procs.append(
                subprocess.Popen(
                    [COP_MAIL, "worker", "--queue", "send"], env=env, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )  # fmt: skip
    deadline = time.time() + 60
    while len(Worker.all(connection=redis)) < count:
        if time.time() > deadline:
            raise SystemExit("workers did not start; see " + str(logs))
        time.sleep(0.1)
    return procs


def stop_workers(procs: list[subprocess.Popen[bytes]], redis: Redis) -> None:
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        proc.wait()
    deadline = time.time() + 10
    while Worker.all(connection=redis) and time.time() < deadline:
        time.sleep(0.1)


def tree_memory_kb(pid: int) -> tuple[int, int]:
    """(largest resident set of one process, proportional set size of the whole tree) in KiB, for a
    worker and its children (the job process and RQ's scheduler). Forked processes share pages,
    so the tree's RSS sum would count the same memory several times; PSS splits shared pages."""
    largest, pss = 0, 0
    pids = [pid]
    while pids:
        current = pids.pop()
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    largest = max(largest, int(line.split()[1]))
            for line in Path(f"/proc/{current}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1])
            for task in Path(f"/proc/{current}/task").iterdir():
                pids += [int(c) for c in (task / "children").read_text().split()]
    return largest, pss


def press_send(
    sessions: Any, redis: Redis, campaign_id: int, n: int, counter: Any, last: Any, procs: list[Any]
) -> tuple[float, tuple[int, int]]:
    """(messages per second from the send command to the last accepted message, peak memory KiB)."""
    before = counter.value
    started = time.time()
    with sessions() as session:
        campaigns.send_now(session, campaign_id, "bench")
        session.commit()
    jobs.ring_plan(redis, campaign_id)
    peak = (0, 0)
    deadline = time.time() + max(120, n / 50)
    while counter.value - before < n:
        for proc in procs:
            largest, pss = tree_memory_kb(proc.pid)
            peak = (max(peak[0], largest), max(peak[1], pss))
        if time.time() > deadline:
            raise SystemExit(f"only {counter.value - before} of {n} messages arrived")
        time.sleep(0.05)
    return n / (last.value - started), peak


def sample_message(settings: Settings, sessions: Any, campaign_id: int) -> bytes:
    """One real message of the campaign, to push raw at the same size."""
    with sessions() as session:
        info = pipeline.load_campaign(session.connection(), campaign_id)
    assert info is not None
    composer = pipeline.CampaignComposer.for_campaign(settings, info)
    recipient = pipeline.Recipient(1, 1, "member1@example.org", "Member Number1", "Member", "<1.x.1@bench.local>", 1)
    return composer.message(recipient)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--no-dkim", action="store_true")
    parser.add_argument("--no-features", action="store_true", help="skip the run with budget and tracking on")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="cop-mail-bench-send-"))
    logs = folder / "logs"
    logs.mkdir()
    redis_port, sink_port = free_port(), free_port()
    redis_proc = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    counter = multiprocessing.Value("q", 0)
    last = multiprocessing.Value("d", 0.0)
    ready = multiprocessing.Event()
    sink = multiprocessing.Process(target=run_sink, args=(sink_port, counter, last, ready), daemon=True)
    sink.start()
    ready.wait(10)
    procs: list[Any] = []
    pg_name = None
    try:
        database_url = args.database_url or f"sqlite:///{folder / 'bench.db'}"
        if database_url.startswith("postgresql"):
            pg_name = f"copmail_bench_{os.getpid()}"
            admin = make_engine(database_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{pg_name}"'))
            admin.dispose()
            database_url = database_url.rsplit("/", 1)[0] + f"/{pg_name}"
        migrate.upgrade(database_url)
        redis = Redis(port=redis_port)
        for _ in range(100):
            with contextlib.suppress(Exception):
                redis.ping()
                break
            time.sleep(0.05)
        settings = Settings(
            instance_path=folder / "instance", database_url=database_url, secret_key="bench-secret-" + "x" * 40,
            redis_url=f"redis://127.0.0.1:{redis_port}/0", public_url="https://community.example.org",
            mail_from="Riverside Practice <news@bench.local>", mail_domain="bench.local", smtp_port=sink_port,
            community_name="Riverside Practice", postal_address="1 Commons Lane, Testville",
        )  # fmt: skip
        engine = make_engine(database_url)
        sessions = make_session_factory(engine)
        started = time.time()
        list_id = seed(engine, args.n)
        print(f"seeded {args.n} members in {time.time() - started:.1f}s ({database_url.split(':')[0]})")

        first = newsletter_campaign(sessions(), list_id, "Bench newsletter")
        message = sample_message(settings, sessions, first)
        raw = raw_rate(sink_port, message, args.n, args.workers, counter)
        print(f"raw: {raw:.0f} msg/s, {len(message)} bytes per message")

        procs = start_workers(environment(settings, None), args.workers, redis, logs)
        rate, rss = press_send(sessions, redis, first, args.n, counter, last, procs)
        stop_workers(procs, redis)
        # The machine is shared: measure the raw limit again and take the mean of both.
        raw_after = raw_rate(sink_port, message, args.n, args.workers, counter)
        print(f"raw again: {raw_after:.0f} msg/s")
        raw = (raw + raw_after) / 2
        print(
            f"end to end: {rate:.0f} msg/s; peak memory: largest process {rss[0] / 1024:.0f} MiB RSS, "
            f"one worker with its job and scheduler {rss[1] / 1024:.0f} MiB PSS"
        )

        dkim_rate = None
        if not args.no_dkim:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            key_file = folder / "dkim.pem"
            key_file.write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )
            second = newsletter_campaign(sessions(), list_id, "Bench newsletter, signed")
            procs = start_workers(environment(settings, key_file), args.workers, redis, logs)
            dkim_rate, _ = press_send(sessions, redis, second, args.n, counter, last, procs)
            stop_workers(procs, redis)
            print(f"end to end with DKIM: {dkim_rate:.0f} msg/s")
        features_rate = None
        if not args.no_features:
            with sessions() as session:
                # A cap nobody reaches: every batch pays for the check, no message is held.
                community.update(session, "bench", budget_max_emails=1000, tracking_enabled=True)
                session.commit()
            third = newsletter_campaign(sessions(), list_id, "Bench newsletter, budget and tracking")
            procs = start_workers(environment(settings, None), args.workers, redis, logs)
            features_rate, _ = press_send(sessions, redis, third, args.n, counter, last, procs)
            stop_workers(procs, redis)
            print(f"end to end with the attention budget and tracking on: {features_rate:.0f} msg/s")
        procs = []
        engine.dispose()

        print(f"BENCH send_msgs_per_s {rate:.0f} msg/s")
        print(f"BENCH send_raw_msgs_per_s {raw:.0f} msg/s")
        print(f"BENCH send_ratio {rate / raw:.2f} x")
        if dkim_rate is not None:
            print(f"BENCH send_dkim_msgs_per_s {dkim_rate:.0f} msg/s")
        if features_rate is not None:
            print(f"BENCH send_budget_tracking_msgs_per_s {features_rate:.0f} msg/s")
            print(f"BENCH send_budget_tracking_vs_plain_ratio {features_rate / rate:.2f} x")
        print(f"BENCH send_worker_peak_rss_mib {rss[0] / 1024:.0f} MiB")
        print(f"BENCH send_worker_tree_peak_pss_mib {rss[1] / 1024:.0f} MiB")
    finally:
        if procs:
            for proc in procs:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        sink.terminate()
        redis_proc.terminate()
        redis_proc.wait()
        if pg_name and args.database_url:
            admin = make_engine(args.database_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))
            admin.dispose()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
