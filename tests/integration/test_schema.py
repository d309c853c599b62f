"""The migrations create the whole schema, and the models and migrations agree."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

from sqlalchemy import inspect, text

from cop_mail import migrate
from cop_mail.db import Base, make_engine
from tests.conftest import PG_ADMIN_URL


def test_upgrade_creates_every_table_and_check_finds_no_difference(db_url: str):
    engine = make_engine(db_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert set(Base.metadata.tables) <= tables
    migrate.check(db_url)  # raises if autogenerate would produce any operation


def test_cli_db_upgrade_on_an_empty_postgres_database(tmp_path):
    name = f"copmail_cli_{uuid.uuid4().hex[:8]}"
    admin = make_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        env = {**os.environ, "DATABASE_URL": url, "INSTANCE_PATH": str(tmp_path)}
        result = subprocess.run(
            [sys.executable, "-m", "cop_mail.cli", "db", "upgrade"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert "up to date" in result.stdout
        check = subprocess.run(
            [sys.executable, "-m", "alembic", "check"], env=env, capture_output=True, text=True, timeout=120
        )
        assert check.returncode == 0, check.stderr
        assert "No new upgrade operations detected" in check.stdout + check.stderr
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
