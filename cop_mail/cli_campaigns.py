"""`cop-mail campaigns ...`: see and steer campaigns from a shell (the same functions as the admin)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from cop_mail.settings import Settings

ACTOR = "cli"
F = TypeVar("F", bound=Callable[..., Any])


def plain_errors(func: F) -> F:
    """cop_mail.cli's readable errors, looked up when called (cop_mail.cli imports this module)."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from cop_mail.cli_support import plain_errors as readable

        return readable(func)(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def load_settings() -> Settings:
    from cop_mail.cli_support import load_settings as load

    return load()


@click.group("campaigns")
def campaigns_group() -> None:
    """List, send, pause, resume and cancel campaigns; show their progress."""


@contextmanager
def _session() -> Iterator[tuple[Session, Settings]]:
    from cop_mail.db import make_engine, make_session_factory

    settings = load_settings()
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            yield session, settings
    finally:
        engine.dispose()


def _steer(action: Callable[[Session], Any], after: Callable[[Any, int], Any] | None, campaign_id: int) -> None:
    """Run one state change, commit, then ring the doorbell; problems become one readable line."""
    from cop_mail.sending.campaigns import CampaignNotFound, CampaignStateError

    with _session() as (session, settings):
        try:
            action(session)
        except (CampaignNotFound, CampaignStateError) as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)
        session.commit()
        if after is not None and settings.redis_url:
            from cop_mail.queues import connect_redis

            after(connect_redis(settings.redis_url), campaign_id)
        _print_status(session, campaign_id)


def _print_status(session: Session, campaign_id: int) -> None:
    from cop_mail.sending.report import format_progress, progress

    click.echo(format_progress(progress(session, campaign_id)))


@campaigns_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include transactional messages.")
@plain_errors
def list_campaigns(show_all: bool) -> None:
    """Campaigns, newest first."""
    from cop_mail.models import Campaign, CampaignKind

    with _session() as (session, _settings):
        query = select(Campaign).order_by(Campaign.id.desc()).limit(100)
        if not show_all:
            query = query.where(Campaign.kind != CampaignKind.TRANSACTIONAL)
        rows = session.scalars(query).all()
        if not rows:
            click.echo("No campaigns yet.")
        for campaign in rows:
            click.echo(f"{campaign.id:>6}  {campaign.status:<10} {campaign.kind:<16} {campaign.name}")


@campaigns_group.command("status")
@click.argument("campaign_id", type=int)
@plain_errors
def status(campaign_id: int) -> None:
    """Counts, rate and ETA of one campaign."""
    from cop_mail.sending.campaigns import CampaignNotFound

    with _session() as (session, _settings):
        try:
            _print_status(session, campaign_id)
        except CampaignNotFound as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)


@campaigns_group.command("send")
@click.argument("campaign_id", type=int)
@plain_errors
def send(campaign_id: int) -> None:
    """Start sending a draft or scheduled campaign now."""
    from cop_mail.sending import campaigns, jobs
    from cop_mail.sending.pipeline import check_campaign

    def start(session: Session) -> None:
        # Compile now: a content problem is reported here, not by a worker later.
        check_campaign(load_settings(), campaigns.get_campaign(session, campaign_id))
        campaigns.send_now(session, campaign_id, ACTOR)

    _steer(start, jobs.ring_plan, campaign_id)


@campaigns_group.command("pause")
@click.argument("campaign_id", type=int)
@plain_errors
def pause(campaign_id: int) -> None:
    """Stop sending; no new message leaves once the workers see it (within a message)."""
    from cop_mail.sending import campaigns

    _steer(lambda s: campaigns.pause(s, campaign_id, ACTOR), None, campaign_id)


@campaigns_group.command("resume")
@click.argument("campaign_id", type=int)
@plain_errors
def resume(campaign_id: int) -> None:
    """Carry on a paused campaign where it stopped."""
    from cop_mail.sending import campaigns, jobs

    _steer(lambda s: campaigns.resume(s, campaign_id, ACTOR), jobs.ring_batches, campaign_id)


@campaigns_group.command("cancel")
@click.argument("campaign_id", type=int)
@plain_errors
def cancel(campaign_id: int) -> None:
    """Stop for good: rows not yet sent stay unsent."""
    from cop_mail.sending import campaigns

    _steer(lambda s: campaigns.cancel(s, campaign_id, ACTOR), None, campaign_id)


@campaigns_group.command("retry-failed")
@click.argument("campaign_id", type=int)
@plain_errors
def retry_failed(campaign_id: int) -> None:
    """Queue failed deliveries again (hard bounces excepted)."""
    from cop_mail.sending import campaigns, jobs

    _steer(lambda s: campaigns.retry_failed(s, campaign_id, ACTOR), jobs.ring_batches, campaign_id)
