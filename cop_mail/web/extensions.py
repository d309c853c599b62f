"""Per-app resources: CSRF, the database session per request, Redis, settings."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, g
from flask_wtf.csrf import CSRFProtect
from redis import Redis
from sqlalchemy.orm import Session

from cop_mail.db import make_engine, make_session_factory
from cop_mail.queues import connect_redis
from cop_mail.settings import Settings

csrf = CSRFProtect()


def register(app: Flask, settings: Settings) -> None:
    csrf.init_app(app)
    engine = make_engine(settings.database_url)
    app.extensions["cop_mail.engine"] = engine
    app.extensions["cop_mail.sessions"] = make_session_factory(engine)
    app.extensions["cop_mail.redis"] = connect_redis(settings.redis_url) if settings.redis_url else None
    app.teardown_appcontext(_close_session)
    app.context_processor(_template_globals)


def db() -> Session:
    """The request's database session, opened on first use and closed at teardown."""
    if "db" not in g:
        g.db = current_app.extensions["cop_mail.sessions"]()
    return g.db


def redis() -> Redis:
    connection = current_app.extensions["cop_mail.redis"]
    if connection is None:
        raise RuntimeError("REDIS_URL is not set")
    return connection


def settings() -> Settings:
    return current_app.config["COP_MAIL"]


def _close_session(_exc: BaseException | None) -> None:
    session = g.pop("db", None)
    if session is not None:
        session.close()


def _template_globals() -> dict[str, Any]:
    return {
        "community_name": settings().community_name,
        "accent_colour": settings().accent_colour,
        "has_endpoint": lambda name: name in current_app.view_functions,
    }
