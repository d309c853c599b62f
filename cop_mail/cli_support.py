"""What every `cop-mail` command shares: settings loading and plain-words errors."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from cop_mail.settings import Settings, SettingsError


def load_settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)


def plain_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the expected operational failures into one readable line and exit code 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from sqlalchemy.exc import OperationalError

        from cop_mail.accounts import AccountError
        from cop_mail.embedded import StartupError
        from cop_mail.queues import RedisUnavailable

        try:
            return func(*args, **kwargs)
        except (StartupError, RedisUnavailable, AccountError) as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)
        except OperationalError as exc:
            click.echo(f"Error: cannot use the database ({_first_line(exc.orig)}); check DATABASE_URL", err=True)
            sys.exit(1)

    return wrapper


def _first_line(exc: object) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
