"""Thin RQ entry points: open a session, call one plain function, commit, log.

Each job takes ids only and is safe to run twice. The per-process engine is
built once (workers preload this module before forking).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from redis import Redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from cop_mail.db import make_engine, make_session_factory
from cop_mail.queues import connect_redis
from cop_mail.settings import Settings

log = logging.getLogger("cop_mail.jobs")


@cache
def job_settings() -> Settings:
    return Settings.from_env()


_engines: dict[str, Engine] = {}


@cache
def _sessions(url: str) -> sessionmaker[Session]:
    _engines[url] = make_engine(url)
    return make_session_factory(_engines[url])


def reset_process_state() -> None:
    """Forget cached settings and engines (after a fork, or when tests change the environment)."""
    job_settings.cache_clear()
    for factory in list(_engines.values()):
        factory.dispose()
    _engines.clear()
    _sessions.cache_clear()


def job_sessions() -> sessionmaker[Session]:
    return _sessions(job_settings().database_url)


@contextmanager
def job_session() -> Iterator[Session]:
    session = _sessions(job_settings().database_url)()
    try:
        yield session
    finally:
        session.close()


def job_redis() -> Redis:
    url = job_settings().redis_url
    if not url:
        raise RuntimeError("REDIS_URL is not set for this worker")
    return connect_redis(url)
