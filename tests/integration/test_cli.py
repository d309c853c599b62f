"""The cop-mail command: readable errors, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cop_mail.embedded import free_port


def run_cli(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SMTP_", "REDIS_", "DATABASE_"))}
    return subprocess.run(
        [sys.executable, "-m", "cop_mail.cli", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_bad_settings_give_one_readable_message(tmp_path: Path):
    result = run_cli("db", "upgrade", env={"INSTANCE_PATH": str(tmp_path), "SMTP_PORT": "x", "SMTP_TLS": "ssl"})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "SMTP_PORT='x'" in result.stderr and "SMTP_TLS='ssl'" in result.stderr


def test_unreachable_database_is_one_line(tmp_path: Path):
    port = free_port()
    url = f"postgresql://postgres@127.0.0.1:{port}/nothing"
    result = run_cli("db", "upgrade", env={"INSTANCE_PATH": str(tmp_path), "DATABASE_URL": url})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("Error: cannot use the database")
    assert "DATABASE_URL" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_unreachable_redis_is_one_line(tmp_path: Path):
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = run_cli("worker", "--burst", env={"INSTANCE_PATH": str(tmp_path), "REDIS_URL": url})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "cannot reach Redis" in result.stderr and "REDIS_URL" in result.stderr


def test_create_admin_prints_a_generated_password_once(tmp_path: Path, sqlite_url: str):
    env = {"INSTANCE_PATH": str(tmp_path), "DATABASE_URL": sqlite_url}
    first = run_cli("create-admin", "--email", "Coord@Example.org", "--role", "coordinator", env=env)
    assert first.returncode == 0, first.stderr
    assert "Created coordinator coord@example.org" in first.stdout
    assert "Password (shown once): " in first.stdout
    again = run_cli("create-admin", "--email", "coord@example.org", env=env)
    assert again.returncode == 1 and "already exists" in again.stderr
    bad = run_cli("create-admin", "--email", "not-an-address", env=env)
    assert bad.returncode == 1 and "not a valid email address" in bad.stderr


def test_worker_processes_a_job_as_a_subprocess(tmp_path: Path, redis_conn, sqlite_url: str, redis_url: str):
    from rq import Queue

    job = Queue("default", connection=redis_conn).enqueue("cop_mail.maintenance.heartbeat_job")
    env = {"INSTANCE_PATH": str(tmp_path), "DATABASE_URL": sqlite_url, "REDIS_URL": redis_url}
    result = run_cli("worker", "--burst", env=env)
    assert result.returncode == 0, result.stderr
    job.refresh()
    assert job.is_finished
    assert redis_conn.get("cop-mail:heartbeat:scheduler") is not None
