"""Import a generated member CSV (100,000 rows by default) into fresh SQLite and PostgreSQL
databases, beside the raw limit measured in the same run: a plain DB-API executemany of the
same rows into the members table (and PostgreSQL COPY).

    .venv/bin/python bench/import_members.py [--n 100000] [--pg postgresql://postgres@127.0.0.1/postgres]

Ends with `BENCH <name> <value> <unit>` lines. Target: each import under 30 s.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text  # noqa: E402

from cop_mail import migrate  # noqa: E402
from cop_mail.audience import importer  # noqa: E402
from cop_mail.db import make_engine, make_session_factory, utcnow  # noqa: E402
from cop_mail.models import MailingList  # noqa: E402
from cop_mail.tokens import address_hash  # noqa: E402

VALUES = ["Reciprocity", "Care", "Courage", "Openness", "Joy", "Justice", "Humility", "Curiosity"]
PRACTICES = [f"Practice {n}" for n in range(12)]
TAGS = [f"tag-{n}" for n in range(20)]
PLACES = ["Lisbon", "Porto", "Berlin", "Nairobi", "Quito", "Montréal", ""]


def generate_csv(n: int, seed: int = 7) -> bytes:
    """Realistic rows: 1 % duplicates in other case, 0.5 % invalid addresses, separated term lists."""
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["Email", "Name", "Values", "Practices", "Tags", "Location"])
    for i in range(n):
        if i and rng.random() < 0.01:
            email = f"Member{rng.randrange(i)}@Example.org"
        elif rng.random() < 0.005:
            email = f"broken-{i}.example.org"
        else:
            email = f"member{i}@example.org"
        writer.writerow(
            [
                email,
                f"Member Nº {i}",
                "|".join(rng.sample(VALUES, rng.randint(0, 3))),
                ";".join(rng.sample(PRACTICES, rng.randint(0, 2))),
                ";".join(rng.sample(TAGS, rng.randint(0, 2))),
                rng.choice(PLACES),
            ]
        )
    return out.getvalue().encode("utf-8")


def raw_rows(n: int) -> list[tuple[object, ...]]:
    now = utcnow()
    rows = []
    for i in range(n):
        email = f"member{i}@example.org"
        rows.append(
            (email, address_hash(email), f"Member Nº {i}", "", "en", "UTC", "", "active", "{}", now, now, now)
            + (True, True, 4, True, True, 0)
        )
    return rows


_RAW_COLUMNS = (
    "email, email_hash, name, preferred_name, locale, timezone, location, status, attributes, joined_at, "
    "created_at, updated_at, wants_newsletters, wants_intros, intro_cadence_weeks, wants_roundups, "
    "wants_resources, connections_count"
)


def raw_executemany(engine, rows) -> float:  # type: ignore[no-untyped-def]
    marker = "?" if engine.dialect.name == "sqlite" else "%s"
    placeholders = ", ".join([marker] * 18)
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        started = time.perf_counter()
        sql = f"INSERT INTO members ({_RAW_COLUMNS}) VALUES ({placeholders})"  # noqa: S608 - fixed column list
        cursor.executemany(sql, rows)
        connection.commit()
        return time.perf_counter() - started
    finally:
        connection.close()


def raw_copy(engine, rows) -> float:  # type: ignore[no-untyped-def]
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        columns = _RAW_COLUMNS.split(", ")
        started = time.perf_counter()
        with cursor.copy(f"COPY members ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        connection.commit()
        return time.perf_counter() - started
    finally:
        connection.close()


def empty_members(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM members"))


def timed_import(engine, data: bytes) -> tuple[float, dict[str, int]]:  # type: ignore[no-untyped-def]
    sessions = make_session_factory(engine)
    with sessions() as session:
        session.add(MailingList(name="Everyone", slug="everyone"))
        session.commit()
        list_id = session.scalar(text("SELECT id FROM lists WHERE slug = 'everyone'"))
    with sessions() as session:
        started = time.perf_counter()
        plan = importer.import_rows(session, data, importer.ImportOptions(list_id=list_id, filename="bench.csv"))
        session.commit()
        elapsed = time.perf_counter() - started
    summary = plan.summary()
    return elapsed, {key: summary[key] for key in ("rows", "imported", "updated", "skipped")}


def bench_database(label: str, url: str, data: bytes, n: int) -> dict[str, float]:
    migrate.upgrade(url)
    engine = make_engine(url)
    rows = raw_rows(n)
    figures = {"raw": raw_executemany(engine, rows)}
    empty_members(engine)
    if engine.dialect.name == "postgresql":
        figures["copy"] = raw_copy(engine, rows)
        empty_members(engine)
    figures["import"], counts = timed_import(engine, data)
    print(f"{label}: {counts}; import {figures['import']:.2f} s, raw executemany {figures['raw']:.2f} s", flush=True)
    engine.dispose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument(
        "--pg", default=os.environ.get("COP_MAIL_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--skip-pg", action="store_true")
    args = parser.parse_args()
    data = generate_csv(args.n)
    print(f"CSV: {args.n:,} rows, {len(data) / 1_048_576:.1f} MB", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        sqlite = bench_database("SQLite", f"sqlite:///{folder}/bench.db", data, args.n)
    pg = None if args.skip_pg else bench_postgres(args.pg, data, args.n)
    report(args.n, sqlite, pg)


def bench_postgres(admin_url: str, data: bytes, n: int) -> dict[str, float]:
    name = f"copmail_bench_import_{uuid.uuid4().hex[:8]}"
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        return bench_database("PostgreSQL", admin_url.rsplit("/", 1)[0] + f"/{name}", data, n)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def report(n: int, sqlite: dict[str, float], pg: dict[str, float] | None) -> None:
    print(f"BENCH import_sqlite_seconds {sqlite['import']:.2f} s")
    print(f"BENCH import_sqlite_rows_per_second {n / sqlite['import']:.0f} rows/s")
    print(f"BENCH raw_executemany_sqlite_seconds {sqlite['raw']:.2f} s")
    print(f"BENCH import_sqlite_vs_raw_ratio {sqlite['import'] / sqlite['raw']:.1f} x")
    if pg:
        print(f"BENCH import_pg_seconds {pg['import']:.2f} s")
        print(f"BENCH import_pg_rows_per_second {n / pg['import']:.0f} rows/s")
        print(f"BENCH raw_executemany_pg_seconds {pg['raw']:.2f} s")
        print(f"BENCH raw_copy_pg_seconds {pg['copy']:.2f} s")
        print(f"BENCH import_pg_vs_raw_ratio {pg['import'] / pg['raw']:.1f} x")


if __name__ == "__main__":
    main()
