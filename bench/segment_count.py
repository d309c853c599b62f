"""Count segments over 100,000 members (default; --n) with values, practices, tags, lists,
engagement, connections and custom attributes, on a fresh PostgreSQL database (and SQLite),
beside the raw reference `SELECT count(*) FROM members` measured in the same run. Also times
one page of the member directory (first and deep pages, filtered and searched).

    .venv/bin/python bench/segment_count.py [--n 100000] [--repeat 7]

Ends with `BENCH <name> <value> <unit>` lines. Target: segment counts under 300 ms on PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text  # noqa: E402

from cop_mail import migrate  # noqa: E402
from cop_mail.audience import members, segments  # noqa: E402
from cop_mail.db import make_engine, make_session_factory  # noqa: E402
from cop_mail.tokens import address_hash  # noqa: E402

VALUES = ["Reciprocity", "Care", "Courage", "Openness", "Joy", "Justice", "Humility", "Curiosity"]
PRACTICES = [f"Practice {n}" for n in range(12)]
TAGS = [f"tag-{n}" for n in range(20)]
LISTS = ["Newsletter", "Digest", "Mentors"]
PLACES = ["Lisbon", "Porto", "Berlin", "Nairobi", "Quito", "Montréal", "", ""]
LOCALES = ["en", "en", "pt", "pt-BR", "es", "fr", "de"]
STATUSES = ["active"] * 90 + ["pending"] * 4 + ["unsubscribed"] * 4 + ["bounced", "complained"]
ROLES = ["host", "guest", "mentor", "", "organiser"]


def generate(n: int, seed: int = 11) -> dict[str, list[tuple[Any, ...]]]:
    """Rows for every table, ids from 1: a community with a small core and a wide periphery."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    data: dict[str, list[tuple[Any, ...]]] = {k: [] for k in ("members", "values", "practices", "tags", "lists")}
    for key in ("member_values", "member_practices", "member_tags", "list_memberships", "suppressions"):
        data[key] = []
    for member_id in range(1, n + 1):
        email = f"member{member_id}@example.org"
        engaged = now - timedelta(days=rng.randrange(720)) if rng.random() < 0.6 else None
        introduced = now - timedelta(days=rng.randrange(365)) if rng.random() < 0.3 else None
        connections = min(int(rng.expovariate(0.5)), 40)
        attributes = json.dumps({"role": rng.choice(ROLES), "cohort": str(2020 + rng.randrange(7))})
        data["members"].append((
            member_id, email, address_hash(email), f"Member {member_id}", "", rng.choice(LOCALES), "UTC",
            rng.choice(PLACES), rng.choice(STATUSES), attributes, now - timedelta(days=rng.randrange(1100)),
            True, True, 4, True, True, engaged, connections, introduced, now, now,
        ))  # fmt: skip
        for value in rng.sample(range(1, len(VALUES) + 1), rng.choice([0, 1, 1, 2, 2, 3])):
            data["member_values"].append((member_id, value))
        for practice in rng.sample(range(1, len(PRACTICES) + 1), rng.choice([0, 1, 1, 2])):
            data["member_practices"].append((member_id, practice))
        for tag in rng.sample(range(1, len(TAGS) + 1), rng.choice([0, 0, 1, 2])):
            data["member_tags"].append((member_id, tag))
        for list_id in rng.sample(range(1, len(LISTS) + 1), rng.choice([1, 1, 2])):
            status = "subscribed" if rng.random() < 0.92 else "unsubscribed"
            data["list_memberships"].append((list_id, member_id, status, "bench", now))
        if rng.random() < 0.01:
            data["suppressions"].append((address_hash(email), "bounced", now))
    data["values"] = [(i, name, "", "#2f6f4f", i) for i, name in enumerate(VALUES, 1)]
    data["practices"] = [(i, name, "") for i, name in enumerate(PRACTICES, 1)]
    data["tags"] = [(i, name) for i, name in enumerate(TAGS, 1)]
    data["lists"] = [(i, name, name.lower(), "", "double", False, "", now) for i, name in enumerate(LISTS, 1)]
    return data


COLUMNS = {
    "values": "id, name, description, colour, position",
    "practices": "id, name, description",
    "tags": "id, name",
    "lists": "id, name, slug, description, opt_in, public, form_wording, created_at",
    "members": "id, email, email_hash, name, preferred_name, locale, timezone, location, status, attributes, "
    "joined_at, wants_newsletters, wants_intros, intro_cadence_weeks, wants_roundups, wants_resources, "
    "last_engaged_at, connections_count, last_introduced_at, created_at, updated_at",
    "member_values": "member_id, value_id",
    "member_practices": "member_id, practice_id",
    "member_tags": "member_id, tag_id",
    "list_memberships": "list_id, member_id, status, source, created_at",
    "suppressions": "email_hash, reason, created_at",
}


def seed(engine: Any, data: dict[str, list[tuple[Any, ...]]]) -> float:
    started = time.perf_counter()
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        for table, columns in COLUMNS.items():
            if engine.dialect.name == "postgresql":
                with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for row in data[table]:
                        copy.write_row(row)
            else:
                marks = ", ".join("?" * len(columns.split(", ")))
                sql = f'INSERT INTO "{table}" ({columns}) VALUES ({marks})'  # noqa: S608 - fixed names
                cursor.executemany(sql, [_sqlite_row(row) for row in data[table]])
        if engine.dialect.name == "postgresql":
            for table in ("values", "practices", "tags", "lists"):
                sql = f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM \"{table}\"))"  # noqa: S608
                cursor.execute(sql)
        connection.commit()
        cursor.execute("ANALYZE")
        connection.commit()
    finally:
        connection.close()
    return time.perf_counter() - started


def _sqlite_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    # The same text form UTCDateTime stores, so comparisons match the application's.
    return tuple(value.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(value, datetime) else value for value in row)


def segment_rules() -> dict[str, dict[str, Any]]:
    care, joy, courage = VALUES.index("Care") + 1, VALUES.index("Joy") + 1, VALUES.index("Courage") + 1
    periphery = {"field": "connections", "op": "periphery"}
    return {
        "value": {"match": "all", "rules": [{"field": "value", "op": "any", "value": [care]}]},
        "periphery_newcomers": {
            "match": "all",
            "rules": [periphery, {"field": "joined", "op": "within_days", "value": 365}],
        },
        "nested_and_or": {
            "match": "all",
            "rules": [
                {"field": "value", "op": "any", "value": [care, joy]},
                {
                    "match": "any",
                    "rules": [
                        periphery,
                        {"field": "last_engaged", "op": "not_within_days", "value": 90},
                        {
                            "match": "all",
                            "rules": [
                                {"field": "introduced", "op": "never"},
                                {"field": "practice", "op": "none", "value": [1, 2]},
                            ],
                        },
                    ],
                },
                {"field": "list", "op": "in", "value": [1]},
                {"field": "status", "op": "in", "value": ["active"]},
            ],
        },  # fmt: skip
        "attributes_locale": {
            "match": "all",
            "rules": [
                {"field": "attribute", "key": "role", "op": "equals", "value": "host"},
                {"field": "locale", "op": "starts_with", "value": "pt"},
            ],
        },
        "all_values_tags": {
            "match": "all",
            "rules": [
                {"field": "value", "op": "all", "value": [care, courage]},
                {"field": "tag", "op": "any", "value": [1, 2, 3]},
                {"field": "location", "op": "is_set"},
            ],
        },
    }


def median_ms(action: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    result = action()  # warm the caches and the plan
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = action()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings), result


def measure(label: str, url: str, data: dict[str, list[tuple[Any, ...]]], repeat: int) -> dict[str, float]:
    migrate.upgrade(url)
    engine = make_engine(url)
    figures = {"seed_s": seed(engine, data)}
    with make_session_factory(engine)() as session:
        figures["raw"], total = median_ms(lambda: session.scalar(text("SELECT count(*) FROM members")), repeat)
        print(f"{label}: {total:,} members seeded in {figures['seed_s']:.1f} s; raw count {figures['raw']:.1f} ms")
        for name, rules in segment_rules().items():
            figures[name], count = median_ms(lambda rules=rules: segments.count_segment(session, rules), repeat)
            print(f"  {name}: {count:,} members, median {figures[name]:.1f} ms", flush=True)
        figures["reachable"], _ = median_ms(
            lambda: segments.count_reachable(session, segment_rules()["nested_and_or"]), repeat
        )
        figures.update(directory_pages(session, repeat))
    engine.dispose()
    return figures


def directory_pages(session: Any, repeat: int) -> dict[str, float]:
    """The admin's member table: first page, a page deep in the list, a filter and a search."""
    first = members.search_members(session, sort="joined")
    deep_cursor = first.next_cursor
    for _ in range(20):  # walk 20 pages in, then time the 21st
        deep_cursor = members.search_members(session, sort="joined", cursor=deep_cursor).next_cursor
    filtered = members.MemberFilter(status="active", value_id=2)
    searched = members.MemberFilter(search="member4242")
    return {
        "page_first": median_ms(lambda: members.search_members(session, sort="joined"), repeat)[0],
        "page_deep": median_ms(lambda: members.search_members(session, sort="joined", cursor=deep_cursor), repeat)[0],
        "page_filtered": median_ms(lambda: members.search_members(session, filtered, sort="email"), repeat)[0],
        "page_search": median_ms(lambda: members.search_members(session, searched), repeat)[0],
    }


def with_postgres(admin_url: str, run: Callable[[str], dict[str, float]]) -> dict[str, float]:
    name = f"copmail_bench_segments_{uuid.uuid4().hex[:8]}"
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        return run(admin_url.rsplit("/", 1)[0] + f"/{name}")
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def report(pg: dict[str, float], sqlite: dict[str, float] | None) -> None:
    names = list(segment_rules())
    counts = [pg[name] for name in names]
    print(f"BENCH segment_count_pg_ms {statistics.median(counts):.1f} ms")
    print(f"BENCH segment_count_pg_max_ms {max(counts):.1f} ms")
    print(f"BENCH segment_count_pg_nested_ms {pg['nested_and_or']:.1f} ms")
    print(f"BENCH raw_count_members_pg_ms {pg['raw']:.1f} ms")
    print(f"BENCH segment_count_vs_raw_ratio {statistics.median(counts) / pg['raw']:.1f} x")
    print(f"BENCH segment_reachable_pg_ms {pg['reachable']:.1f} ms")
    for key in ("page_first", "page_deep", "page_filtered", "page_search"):
        print(f"BENCH members_{key}_pg_ms {pg[key]:.1f} ms")
    if sqlite:
        print(f"BENCH segment_count_sqlite_ms {statistics.median([sqlite[name] for name in names]):.1f} ms")
        print(f"BENCH raw_count_members_sqlite_ms {sqlite['raw']:.1f} ms")
        print(f"BENCH members_page_deep_sqlite_ms {sqlite['page_deep']:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument(
        "--pg", default=os.environ.get("COP_MAIL_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    data = generate(args.n)
    pg = with_postgres(args.pg, lambda url: measure("PostgreSQL", url, data, args.repeat))
    sqlite = None
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory() as folder:
            sqlite = measure("SQLite", f"sqlite:///{folder}/bench.db", data, args.repeat)
    report(pg, sqlite)


if __name__ == "__main__":
    main()
