"""Fixtures on real services: PostgreSQL, SQLite, a private Redis server, an SMTP
sink (aiosmtpd) and RQ workers. Nothing here fakes a service.

- `pg_url` / `sqlite_url`: one database per test run, schema from `alembic upgrade head`.
- `db_url`: parametrised over both; `db`: a session on it, every table emptied after the test.
- `redis_server`: a redis-server of our own on a free loopback port (so parallel test runs
  never share one); `redis_conn`: database 1 on it, flushed around each test.
- `smtp_sink`: an aiosmtpd server on a free loopback port recording every message, with an
  optional `responder` hook for fault injection.
- `run_jobs`: runs every queued RQ job with an in-process SimpleWorker in burst mode.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from redis import Redis
from rq import Queue
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from cop_mail import migrate
from cop_mail.db import Base, make_engine, make_session_factory
from cop_mail.queues import ALL_QUEUES, PromptSimpleWorker
from cop_mail.settings import Settings

PG_ADMIN_URL = os.environ.get("COP_MAIL_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
TEST_SECRET = "test-secret-" + "x" * 40


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- databases -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    name = f"copmail_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = make_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    migrate.upgrade(url)
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'cop-mail.db'}"
    migrate.upgrade(url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


_engines: dict[str, Engine] = {}


def engine_for(url: str) -> Engine:
    if url not in _engines:
        _engines[url] = make_engine(url)
    return _engines[url]


_used_tables_query: dict[str, str] = {}


def _used_tables_sql(engine: Engine, tables: list[str]) -> str:
    """One query naming the tables a test touched: rows in them, or their id sequence advanced."""
    if engine.url.render_as_string() not in _used_tables_query:
        with engine.connect() as connection:
            sequences = dict(
                connection.execute(
                    text("SELECT table_name, pg_get_serial_sequence(quote_ident(table_name), 'id') "
                         "FROM information_schema.columns WHERE table_schema = 'public' AND column_name = 'id'")
                ).all()
            )  # fmt: skip
        parts = []
        for table in tables:
            sequence = sequences.get(table)
            # Names from our metadata and the catalogue, never from input.
            called = f" OR (SELECT is_called FROM {sequence})" if sequence else ""  # noqa: S608
            parts.append(f"SELECT '{table}' WHERE EXISTS (SELECT 1 FROM \"{table}\"){called}")  # noqa: S608
        _used_tables_query[engine.url.render_as_string()] = " UNION ALL ".join(parts)
    return _used_tables_query[engine.url.render_as_string()]


def empty_all_tables(engine: Engine) -> None:
    tables = [table.name for table in Base.metadata.sorted_tables]
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # TRUNCATE costs about 3 ms per table whether or not it holds rows: empty only what was used.
            used = list(connection.scalars(text(_used_tables_sql(engine, tables))))
            if used:
                names = ", ".join(f'"{t}"' for t in used)
                connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(tables):
                connection.execute(text(f'DELETE FROM "{table}"'))  # noqa: S608 (names from our metadata)
            if connection.execute(text("SELECT name FROM sqlite_master WHERE name='sqlite_sequence'")).first():
                connection.execute(text("DELETE FROM sqlite_sequence"))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = engine_for(db_url)
    yield engine
    empty_all_tables(engine)


@pytest.fixture
def db(engine: Engine) -> Iterator[Session]:
    session = make_session_factory(engine)()
    yield session
    session.rollback()
    session.close()


@pytest.fixture
def sessions(engine: Engine) -> Callable[[], Session]:
    """A session factory for code under test that opens its own sessions."""
    return make_session_factory(engine)


# --- Redis -----------------------------------------------------------------------------


@dataclass
class RedisServer:
    """A redis-server process of the test run's own; can be killed and restarted empty."""

    folder: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/1"

    def start(self) -> None:
        executable = shutil.which("redis-server")
        assert executable, "redis-server must be installed for the tests (apt-get install redis-server)"
        self.process = subprocess.Popen(
            [
                executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                Redis(port=self.port, socket_connect_timeout=0.5).ping()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def restart_empty(self) -> None:
        self.kill()
        self.start()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.kill()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def redis_conn(redis_server: RedisServer) -> Iterator[Redis]:
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()
    connection = Redis.from_url(redis_server.url)
    connection.flushdb()
    yield connection
    with contextlib.suppress(Exception):  # a test may have killed the server on purpose
        connection.flushdb()
    connection.close()


# --- SMTP sink -------------------------------------------------------------------------


@dataclass
class SinkMessage:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes


class _SinkHandler:
    def __init__(self, sink: SmtpSink):
        self.sink = sink

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = SinkMessage(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
        if self.sink.responder is not None:
            reply = self.sink.responder(message)
            if reply is not None:
                self.sink.refused.append((message, reply))
                return reply
        self.sink.messages.append(message)
        return "250 OK"


class SmtpSink:
    """A real SMTP server on loopback that records what it accepts.

    `responder(message) -> reply | None` may return an SMTP reply such as "451 try later"
    to refuse a message (fault injection); None accepts it.
    """

    def __init__(self) -> None:
        self.messages: list[SinkMessage] = []
        self.refused: list[tuple[SinkMessage, str]] = []
        self.responder: Callable[[SinkMessage], str | None] | None = None
        self.port = free_port()
        self.controller = Controller(_SinkHandler(self), hostname="127.0.0.1", port=self.port)

    def wait_for(self, count: int, timeout: float = 10) -> list[SinkMessage]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.messages) >= count, f"expected {count} messages, the sink has {len(self.messages)}"
        return self.messages


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.controller.start()
    yield sink
    sink.controller.stop()


# --- settings, app, jobs ---------------------------------------------------------------


@pytest.fixture
def make_settings(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[..., Settings]:
    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "instance_path": tmp_path / "instance",
            "database_url": request.getfixturevalue("db_url"),
            "secret_key": TEST_SECRET,
            "redis_url": request.getfixturevalue("redis_url"),
            "public_url": "http://cop-mail.test",
            "mail_from": "Test Community <community@cop-mail.test>",
            "mail_domain": "cop-mail.test",
            "community_name": "Test Community",
            "postal_address": "1 Commons Lane, Testville",
            "testing": True,
        }
        values.update(overrides)
        return Settings(**values)

    return build


@pytest.fixture
def settings(make_settings: Callable[..., Settings], redis_conn: Redis, engine: Engine) -> Settings:
    return make_settings()


def dispose_app(app: Any) -> None:
    app.extensions["cop_mail.engine"].dispose()
    if app.extensions["cop_mail.redis"] is not None:
        app.extensions["cop_mail.redis"].close()


@pytest.fixture
def make_app(settings: Settings) -> Iterator[Callable[..., Any]]:
    """Build more apps (other settings) in a test; each is disposed of afterwards."""
    from cop_mail.web import create_app

    built: list[Any] = []

    def build(custom: Settings | None = None, **config: Any) -> Any:
        built.append(create_app(custom or settings, TESTING=True, **config))
        return built[-1]

    yield build
    for app in built:
        dispose_app(app)


@pytest.fixture
def app(make_app: Callable[..., Any]) -> Any:
    return make_app()


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token_from(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page has no CSRF token"
    return found.group(1)


@pytest.fixture
def login(client: Any, db: Session) -> Callable[..., Any]:
    """Create an account with the given role and log the test client in as it."""
    from cop_mail import accounts
    from cop_mail.models import Role

    def do_login(role: str = "owner", email: str | None = None) -> Any:
        address = email or f"{role}@example.org"
        admin = accounts.find_admin_by_email(db, address) or accounts.create_admin(
            db, address, "correct horse battery", Role(role)
        )
        db.commit()
        token = csrf_token_from(client.get("/login").get_data(as_text=True))
        response = client.post(
            "/login", data={"email": address, "password": "correct horse battery", "csrf_token": token}
        )
        assert response.status_code == 302, response.get_data(as_text=True)
        return admin

    return do_login


@pytest.fixture
def run_jobs(redis_conn: Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., int]]:
    """Run queued jobs in-process until the queues are empty; returns the number of failed jobs."""
    from cop_mail import jobs

    for name in Settings.field_names():
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url or "")
    monkeypatch.setenv("SECRET_KEY", settings.secret_key)
    monkeypatch.setenv("PUBLIC_URL", settings.public_url)
    monkeypatch.setenv("MAIL_DOMAIN", settings.mail_domain)
    monkeypatch.setenv("MAIL_FROM", settings.mail_from)
    monkeypatch.setenv("SMTP_HOST", settings.smtp_host)
    monkeypatch.setenv("SMTP_PORT", str(settings.smtp_port))
    monkeypatch.setenv("COMMUNITY_NAME", settings.community_name)
    monkeypatch.setenv("POSTAL_ADDRESS", settings.postal_address)
    monkeypatch.setenv("INSTANCE_PATH", str(settings.instance_path))
    jobs.reset_process_state()

    def run(queues: tuple[str, ...] = ALL_QUEUES, max_jobs: int | None = None) -> int:
        worker = PromptSimpleWorker([Queue(q, connection=redis_conn) for q in queues], connection=redis_conn)
        worker.work(burst=True, max_jobs=max_jobs, with_scheduler=False)
        return worker.failed_job_count

    yield run
    jobs.reset_process_state()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    folder = Path(os.environ.get("COP_MAIL_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def scratch_dir() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="cop-mail-test-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


# --- sending: an audience seeded in bulk -------------------------------------------------


def seed_list_members(engine: Engine, count: int, list_name: str = "Everyone", first_id: int = 1) -> int:
    """`count` active members subscribed to one list (Core inserts, fast at 100,000); returns the list id."""
    from sqlalchemy import insert, select

    from cop_mail.db import utcnow
    from cop_mail.models import ListMembership, MailingList, Member

    now = utcnow()
    with engine.begin() as connection:
        list_id = connection.scalar(select(MailingList.id).where(MailingList.name == list_name))
        if list_id is None:
            slug = re.sub(r"[^a-z0-9]+", "-", list_name.lower())
            list_id = connection.execute(
                insert(MailingList).values(name=list_name, slug=slug, opt_in="single", created_at=now)
            ).inserted_primary_key[0]
        for start in range(first_id, first_id + count, 5000):
            ids = range(start, min(start + 5000, first_id + count))
            connection.execute(
                insert(Member),
                [
                    {
                        "id": i,
                        "email": f"member{i}@example.org",
                        "name": f"Member {i}",
                        "status": "active",
                        "created_at": now,
                        "updated_at": now,
                        "joined_at": now,
                    }
                    for i in ids
                ],
            )
            connection.execute(
                insert(ListMembership),
                [{"list_id": list_id, "member_id": i, "status": "subscribed", "created_at": now} for i in ids],
            )
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("SELECT setval('members_id_seq', (SELECT max(id) FROM members))")
    return int(list_id)


# --- introductions: members with values and practices ------------------------------------


def add_member(
    session: Session, name: str, *, values: tuple[str, ...] = (), practices: tuple[str, ...] = (), **fields: Any
) -> Any:
    """An active member named `name` (address from the name) holding these values and practices, flushed."""
    from sqlalchemy import select

    from cop_mail.models import Member, Practice, Value

    def named(model: Any, wanted: str) -> Any:
        found = session.scalar(select(model).where(model.name == wanted))
        if found is None:
            found = model(name=wanted)
            session.add(found)
            session.flush()
        return found

    slug = re.sub(r"[^a-z0-9]+", ".", name.lower()).strip(".")
    fields.setdefault("attributes", {})
    member = Member(email=fields.pop("email", f"{slug}@example.org"), name=name, **fields)
    member.values = [named(Value, v) for v in values]
    member.practices = [named(Practice, p) for p in practices]
    session.add(member)
    session.flush()
    return member
