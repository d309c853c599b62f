"""`cop-mail up` end to end: the embedded stack starts, serves, catches mail, receives mail, stops."""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import smtplib
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from cop_mail.db import make_engine, make_session_factory
from cop_mail.embedded import free_port
from cop_mail.models import InboundMessage
from tests.conftest import csrf_token_from


def clean_env(instance: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SMTP_", "REDIS_", "DATABASE_", "OUTBOX", "INBOUND"))
    }
    env.update({"INSTANCE_PATH": str(instance), "PYTHONUNBUFFERED": "1"})
    env.pop("SECRET_KEY", None)
    return env


def read_until(process: subprocess.Popen[str], marker: str, timeout: float) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            if process.poll() is not None:
                break
            continue
        lines.append(line)
        if marker in line:
            return lines
    raise AssertionError("never saw " + repr(marker) + " in:\n" + "".join(lines))


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def stack(tmp_path: Path):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "cop_mail.cli", "up", "--port", str(port)],
        env=clean_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        lines = read_until(process, "Press Ctrl-C to stop", 90)
        yield process, port, "".join(lines), tmp_path
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        assert process.stdout is not None
        process.stdout.close()


def test_up_runs_the_whole_embedded_stack(stack):
    process, port, banner, instance = stack
    base = f"http://127.0.0.1:{port}"
    email = re.search(r"email:\s+(\S+)", banner).group(1)
    password = re.search(r"password:\s+(\S+)", banner).group(1)
    catcher_port = int(re.search(r"mail catcher on 127.0.0.1:(\d+)", banner).group(1))
    inbound_port = int(re.search(r"inbound receiver on port (\d+)", banner).group(1))
    redis_port = int(re.search(r"Redis at redis://127.0.0.1:(\d+)/", banner).group(1))

    # Anonymous visitors are sent to the login page; the printed owner account logs in.
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    login_page = opener.open(base + "/admin/").read().decode()
    assert "Log in" in login_page
    form = {"email": email, "password": password, "csrf_token": csrf_token_from(login_page), "next": "/admin/"}
    dashboard = opener.open(base + "/login", urllib.parse.urlencode(form).encode()).read().decode()
    assert "Dashboard" in dashboard

    # Mail sent through the catcher shows in the Outbox.
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.org", "b@example.org", "Caught by the outbox"
    message.set_content("hello")
    with smtplib.SMTP("127.0.0.1", catcher_port, timeout=10) as smtp:
        smtp.send_message(message)
    assert "Caught by the outbox" in opener.open(base + "/admin/outbox").read().decode()

    # Mail for the community's domain is stored by the inbound receiver before anything else.
    message.replace_header("To", "stories@localhost")
    with smtplib.SMTP("127.0.0.1", inbound_port, timeout=10) as smtp:
        smtp.send_message(message, to_addrs=["stories@localhost"])
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            smtp.send_message(message, to_addrs=["someone@elsewhere.example"])
    engine = make_engine(f"sqlite:///{instance / 'cop-mail.db'}")
    with make_session_factory(engine)() as session:
        stored = session.scalars(select(InboundMessage)).all()
        assert [m.envelope_to for m in stored] == [["stories@localhost"]]
    engine.dispose()

    # A second `up` in the same instance folder refuses instead of sharing its state.
    second = subprocess.run(
        [sys.executable, "-m", "cop_mail.cli", "up", "--port", str(free_port())],
        env=clean_env(instance),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 1
    assert "already running" in second.stderr and "Traceback" not in second.stderr

    # Ctrl-C stops every process, the private Redis included.
    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=30) == 0
    time.sleep(0.5)
    assert not port_open(port) and not port_open(catcher_port) and not port_open(inbound_port)
    assert not port_open(redis_port)


def test_up_refuses_a_busy_port(tmp_path: Path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "cop_mail.cli", "up", "--port", str(port)],
            env=clean_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"port {port}" in result.stderr and "--port" in result.stderr


def test_children_stop_when_up_itself_is_killed(stack):
    process, port, banner, _instance = stack
    inbound_port = int(re.search(r"inbound receiver on port (\d+)", banner).group(1))
    redis_port = int(re.search(r"Redis at redis://127.0.0.1:(\d+)/", banner).group(1))
    process.kill()  # SIGKILL to `up` alone: no chance to stop its children in order
    process.wait(timeout=10)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(port_open(p) for p in (port, inbound_port, redis_port)):
        time.sleep(0.2)
    assert not port_open(port) and not port_open(inbound_port) and not port_open(redis_port)
