"""Time the dashboard and a campaign report on a large community in PostgreSQL.

Seeds a fresh database with COPY: 100,000 members (with values, a history of leaving, connections,
introductions, stories), 1,000 sent campaigns with deliveries (the last one sent to every member,
with engagement tracking on: opens, clicks on its links, machine opens), replies and unsubscribes;
then requests both pages through the Flask test client and reports the median, beside the raw
reference of `SELECT count(*) FROM members` measured in the same run.

    .venv/bin/python bench/dashboard.py [--n 100000] [--campaigns 1000] [--per-campaign 200] [--requests 7]
        [--pg postgresql://postgres@127.0.0.1:5432/postgres]

Ends with `BENCH <name> <value> <unit>` lines. Target: each page under 1,000 ms at 100,000 members.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Table, text  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from cop_mail import accounts, migrate  # noqa: E402
from cop_mail.db import Base, make_engine, utcnow  # noqa: E402
from cop_mail.models import Role  # noqa: E402
from cop_mail.settings import Settings  # noqa: E402
from cop_mail.tokens import address_hash  # noqa: E402

PG_ADMIN_URL = os.environ.get("COP_MAIL_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
VALUES = ["Reciprocity", "Care", "Courage", "Openness", "Joy", "Justice", "Humility", "Curiosity"]
STATUSES = ["active"] * 88 + ["pending"] * 4 + ["unsubscribed"] * 5 + ["bounced"] * 2 + ["complained"]
INTRO_STATUSES = ["invited", "accepted_a", "accepted_b", "introduced", "met", "declined", "expired"]
STORY_STATUSES = ["submitted"] * 2 + ["approved"] * 6 + ["rejected", "withdrawn"]
DAYS = 400
TRACKED_LINKS = 8


# --- COPY with every required column filled --------------------------------------------------


def _python_default(column: Any, now: datetime) -> Any:
    default = column.default
    if default is None or not hasattr(default, "arg"):
        return None
    value = default.arg
    if callable(value):
        name = getattr(value, "__name__", "")
        if name in ("utcnow", "now"):
            return now
        if name in ("dict", "list"):
            return "{}" if name == "dict" else "[]"
        return None  # context-dependent (e.g. the email hash): the caller gives it
    return str(value) if hasattr(value, "value") else value


def defaults_for(table: Table, now: datetime) -> dict[str, Any]:
    """What the ORM would fill in for columns the caller leaves out (COPY skips Python defaults)."""
    found = {}
    for column in table.columns:
        value = _python_default(column, now)
        if value is not None:
            found[column.name] = value
    return found


def copy_rows(engine: Engine, table_name: str, rows: Iterable[dict[str, Any]], now: datetime) -> int:
    table = Base.metadata.tables[table_name]
    defaults = defaults_for(table, now)
    iterator = iter(rows)
    first = next(iterator, None)
    if first is None:
        return 0
    columns = list(dict.fromkeys([*first, *defaults]))
    quoted = ", ".join(f'"{c}"' for c in columns)
    count = 0
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        with cursor.copy(f'COPY "{table_name}" ({quoted}) FROM STDIN') as copy:  # type: ignore[attr-defined]
            for row in _chain(first, iterator):
                merged = {**defaults, **row}
                copy.write_row([merged.get(c) for c in columns])
                count += 1
        cursor.close()
        raw.commit()
    finally:
        raw.close()
    return count


def _chain(first: dict[str, Any], rest: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    yield first
    yield from rest


# --- the community ---------------------------------------------------------------------------


def seed(engine: Engine, n: int, campaigns: int, per_campaign: int, seed_value: int = 7) -> dict[str, int]:
    rng = random.Random(seed_value)
    now = utcnow()
    ago = lambda days: now - timedelta(days=days)  # noqa: E731
    counts: dict[str, int] = {}
    statuses = [rng.choice(STATUSES) for _ in range(n)]
    joined = [ago(rng.uniform(0, DAYS)) for _ in range(n)]
    counts["members"] = copy_rows(engine, "members", (
        {"id": i + 1, "email": f"member{i + 1}@example.org", "email_hash": address_hash(f"member{i + 1}@example.org"),
         "name": f"Member {i + 1}", "status": statuses[i], "joined_at": joined[i], "created_at": joined[i],
         "connections_count": rng.choice((0, 0, 1, 1, 2, 3, 5))}
        for i in range(n)
    ), now)  # fmt: skip
    copy_rows(engine, "values", ({"id": i + 1, "name": name, "position": i} for i, name in enumerate(VALUES)), now)
    counts["member_values"] = copy_rows(engine, "member_values", (
        {"member_id": m, "value_id": v}
        for m in range(1, n + 1) for v in rng.sample(range(1, len(VALUES) + 1), rng.randint(0, 2))
    ), now)  # fmt: skip
    leavers = [i + 1 for i, s in enumerate(statuses) if s in ("unsubscribed", "complained")]
    copy_rows(engine, "consent_events", (
        {"member_id": m, "kind": "unsubscribed_all", "created_at": ago(rng.uniform(0, 100)), "detail": "{}"}
        for m in leavers
    ), now)  # fmt: skip
    copy_rows(engine, "member_events", (
        {"member_id": i + 1, "kind": "suppressed", "created_at": ago(rng.uniform(0, 100)), "detail": "{}"}
        for i, s in enumerate(statuses) if s in ("bounced", "complained")
    ), now)  # fmt: skip
    pairs = {tuple(sorted(rng.sample(range(1, n + 1), 2))) for _ in range(n // 5)}
    counts["connections"] = copy_rows(engine, "connections", (
        {"member_a_id": a, "member_b_id": b, "began_at": ago(rng.uniform(0, DAYS))} for a, b in sorted(pairs)
    ), now)  # fmt: skip
    copy_rows(engine, "intros", (
        {"member_a_id": a, "member_b_id": b, "status": rng.choice(INTRO_STATUSES),
         "invited_at": ago(rng.uniform(0, 60))}
        for a, b in (sorted(rng.sample(range(1, n + 1), 2)) for _ in range(n // 20))
    ), now)  # fmt: skip
    story_status = [rng.choice(STORY_STATUSES) for _ in range(n // 50)]
    copy_rows(engine, "stories", (
        {"id": i + 1, "author_id": rng.randint(1, n), "title": f"Story {i + 1}", "status": s,
         "submitted_at": (sub := ago(rng.uniform(0, DAYS))), "approved_at": sub if s == "approved" else None}
        for i, s in enumerate(story_status)
    ), now)  # fmt: skip
    copy_rows(engine, "story_values", (
        {"story_id": i + 1, "value_id": rng.randint(1, len(VALUES))} for i in range(len(story_status))
    ), now)  # fmt: skip
    counts.update(_seed_campaigns(engine, rng, now, n, campaigns, per_campaign))
    with engine.begin() as connection:
        # Rows came with their ids: move the sequences past them, then refresh the planner's statistics.
        for table in ("members", "values", "campaigns", "stories", "deliveries", "tracked_links"):
            connection.execute(text(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM \"{table}\"))"))  # noqa: S608
        connection.execute(text("ANALYZE"))
    return counts


def _seed_campaigns(engine: Engine, rng: random.Random, now: datetime, n: int, campaigns: int,
                    per_campaign: int) -> dict[str, int]:  # fmt: skip
    starts = sorted(now - timedelta(days=rng.uniform(1, DAYS)) for _ in range(campaigns - 1)) + [
        now - timedelta(hours=30)
    ]
    copy_rows(engine, "campaigns", (
        {"id": i + 1, "name": f"Letter {i + 1}", "subject": f"News {i + 1}", "status": "sent", "kind": "newsletter",
         "started_at": start, "finished_at": start + timedelta(hours=1), "created_at": start}
        for i, start in enumerate(starts)
    ), now)  # fmt: skip
    replies: list[dict[str, Any]] = []
    unsubscribes: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    delivery_ids = itertools.count(1)
    copy_rows(engine, "community_settings", iter([{"id": 1, "values": '{"tracking_enabled": true}'}]), now)
    copy_rows(engine, "tracked_links", (
        {"id": i, "campaign_id": campaigns, "position": i, "url": f"https://example.org/read/{i}", "label": f"Read {i}"}
        for i in range(1, TRACKED_LINKS + 1)
    ), now)  # fmt: skip

    def engagement(delivery: dict[str, Any]) -> None:
        """The tracked campaign: proxies fetch some pixels on arrival; about a third open, a few click."""
        ids = {key: delivery[column] for key, column in
               (("delivery_id", "id"), ("campaign_id", "campaign_id"), ("member_id", "member_id"))}  # fmt: skip
        start = delivery["sent_at"]
        if rng.random() < 0.15:
            events.append({**ids, "kind": "open", "machine": True, "machine_reason": "privacy proxy",
                           "client": "Apple Mail privacy protection", "created_at": start})  # fmt: skip
        if rng.random() < 0.35:
            delivery["opened_at"] = start + timedelta(hours=rng.uniform(0.05, 72))
            events.append({**ids, "kind": "open", "client": "Other", "created_at": delivery["opened_at"]})
            if rng.random() < 0.2:
                delivery["clicked_at"] = delivery["opened_at"] + timedelta(minutes=1)
                events.append({**ids, "kind": "click", "link_id": rng.randint(1, TRACKED_LINKS), "client": "Other",
                               "created_at": delivery["clicked_at"]})  # fmt: skip

    def outcome(campaign_id: int, member_id: int, start: datetime) -> dict[str, Any]:
        roll = rng.random()
        status, bounce = ("sent", None)
        if roll < 0.02:
            status, bounce = "failed", "hard"
        elif roll < 0.04:
            bounce = "soft"
        elif roll < 0.05:
            status = "suppressed"
        elif roll < 0.052:
            status = "deferred"
        if status == "sent" and rng.random() < 0.01:
            replies.append(
                {
                    "raw": b"",
                    "member_id": member_id,
                    "subject_kind": "campaign",
                    "subject_id": campaign_id,
                    "status": "processed",
                    "received_at": start + timedelta(hours=rng.uniform(0, 96)),
                }
            )
        if status == "sent" and rng.random() < 0.004:
            unsubscribes.append(
                {
                    "member_id": member_id,
                    "kind": "stream_off",
                    "stream": "newsletters",
                    "created_at": start + timedelta(hours=rng.uniform(0, 96)),
                    "detail": f'{{"campaign_id": {campaign_id}}}',
                }
            )
        delivery = {"id": next(delivery_ids), "campaign_id": campaign_id, "member_id": member_id, "status": status,
                    "bounce_type": bounce, "sent_at": start if status == "sent" else None, "created_at": start,
                    "updated_at": start, "opened_at": None, "clicked_at": None}  # fmt: skip
        if campaign_id == campaigns and status == "sent":
            engagement(delivery)
        return delivery

    def rows() -> Iterator[dict[str, Any]]:
        for i, start in enumerate(starts[:-1]):
            for member_id in rng.sample(range(1, n + 1), min(per_campaign, n)):
                yield outcome(i + 1, member_id, start)
        for member_id in range(1, n + 1):  # the last campaign went to everyone
            yield outcome(campaigns, member_id, starts[-1])

    counts = {"deliveries": copy_rows(engine, "deliveries", rows(), now)}
    counts["replies"] = copy_rows(engine, "inbound_messages", iter(replies), now)
    copy_rows(engine, "inbound_messages", (
        {"raw": b"", "status": "needs_review", "received_at": now - timedelta(hours=h)} for h in range(25)
    ), now)  # fmt: skip
    counts["unsubscribes"] = copy_rows(engine, "consent_events", iter(unsubscribes), now)
    counts["tracking_events"] = copy_rows(engine, "tracking_events", iter(events), now)
    return counts


# --- timing ----------------------------------------------------------------------------------


def median_ms(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm: templates compiled, connections open
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def time_pages(url: str, campaign_id: int, repeats: int) -> dict[str, float]:
    from cop_mail.web import create_app

    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(instance_path=Path(folder), database_url=url, secret_key="bench-" + "x" * 40)
        app = create_app(settings, TESTING=True)
        with app.extensions["cop_mail.sessions"]() as session:
            admin = accounts.create_admin(session, "bench@example.org", "correct horse battery", Role.VIEWER)
            session.commit()
            admin_id, fingerprint = admin.id, admin.password_hash[-16:]
        client = app.test_client()
        with client.session_transaction() as cookie:  # logged in without the login form (no Redis here)
            cookie["admin_id"], cookie["pw"] = admin_id, fingerprint

        def page(path: str) -> Callable[[], None]:
            def get() -> None:
                response = client.get(path)
                assert response.status_code == 200, (path, response.status_code)

            return get

        figures = {
            "dashboard_ms": median_ms(page("/admin/"), repeats),
            "campaign_report_ms": median_ms(page(f"/admin/campaigns/{campaign_id}/report"), repeats),
            "campaign_report_small_ms": median_ms(page("/admin/campaigns/1/report"), repeats),
        }
        engine = app.extensions["cop_mail.engine"]
        with engine.connect() as connection:
            figures["raw_count_members_ms"] = median_ms(
                lambda: connection.execute(text("SELECT count(*) FROM members")).scalar(), repeats
            )
            figures["raw_count_deliveries_ms"] = median_ms(
                lambda: connection.execute(
                    text("SELECT count(*) FROM deliveries WHERE campaign_id = :c"), {"c": campaign_id}
                ).scalar(),
                repeats,
            )
        engine.dispose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="members")
    parser.add_argument("--campaigns", type=int, default=1_000)
    parser.add_argument("--per-campaign", type=int, default=200, help="deliveries of each earlier campaign")
    parser.add_argument("--requests", type=int, default=7, help="timed requests per page (median)")
    parser.add_argument("--pg", default=PG_ADMIN_URL, help="a PostgreSQL URL allowed to create databases")
    args = parser.parse_args()
    name = f"copmail_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = make_engine(args.pg, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = args.pg.rsplit("/", 1)[0] + f"/{name}"
    try:
        migrate.upgrade(url)
        engine = make_engine(url)
        started = time.perf_counter()
        counts = seed(engine, args.n, args.campaigns, args.per_campaign)
        seeded = time.perf_counter() - started
        engine.dispose()
        print(f"seeded in {seeded:.1f} s: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
        figures = time_pages(url, args.campaigns, args.requests)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    print(f"BENCH seed_s {seeded:.1f} s")
    print(f"BENCH members {counts['members']} members")
    print(f"BENCH deliveries {counts['deliveries']} rows")
    for key, value in figures.items():
        print(f"BENCH {key} {value:.1f} ms")


if __name__ == "__main__":
    main()
