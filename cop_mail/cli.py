"""The `cop-mail` command. Each command reads settings, calls one function, and says
what happened in plain words; configuration problems never end in a traceback."""

from __future__ import annotations

import sys

import click

from cop_mail.cli_support import load_settings, plain_errors
from cop_mail.settings import Settings


@click.group()
@click.version_option(package_name="cop-mail")
def main() -> None:
    """cop-mail: email and newsletter automation for communities of practice."""


@main.command()
@click.option("--port", default=5000, show_default=True, help="Port of the web admin.")
@click.option("--host", default="127.0.0.1", show_default=True)
@plain_errors
def up(port: int, host: str) -> None:
    """Run everything on the embedded default: web, worker, scheduler, inbound, mail catcher."""
    from cop_mail.embedded import run_embedded

    sys.exit(run_embedded(load_settings(), host, port))


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@plain_errors
def db_upgrade(revision: str) -> None:
    """Create or upgrade the schema to the latest migration."""
    from cop_mail import migrate

    settings = load_settings()
    settings.instance_path.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(settings.database_url, revision)
    click.echo("The database schema is up to date.")


@main.command()
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@click.option("--queue", "queues", multiple=True, help="Queue to listen on (repeatable); default: all.")
@plain_errors
def worker(burst: bool, queues: tuple[str, ...]) -> None:
    """Run an RQ worker (any number, on any number of machines)."""
    from cop_mail.queues import ALL_QUEUES
    from worker.run import run_worker

    run_worker(_require_redis(load_settings()), queues or ALL_QUEUES, burst)


@main.command()
@plain_errors
def scheduler() -> None:
    """Run the scheduler of periodic jobs (reconciling, scheduled campaigns, recurring rounds)."""
    from worker.run import run_scheduler

    run_scheduler(_require_redis(load_settings()))


@main.command()
@click.option("--port", type=int, default=None, help="Port of the SMTP receiver (default: INBOUND_PORT).")
@click.option("--host", default=None, help="Address to listen on (default: INBOUND_HOST).")
@click.option("--lmtp", is_flag=True, help="Speak LMTP instead of SMTP (for an MTA's local delivery).")
@plain_errors
def inbound(port: int | None, host: str | None, lmtp: bool) -> None:
    """Run the inbound SMTP receiver for replies, bounces and stories."""
    from cop_mail.inbound.receiver import serve_forever

    settings = _require_redis(load_settings())
    serve_forever(settings, host or settings.inbound_host, port or settings.inbound_port, lmtp)


@main.command()
@click.option("--port", default=5000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@plain_errors
def web(port: int, host: str) -> None:
    """Run the web admin alone (production runs `gunicorn 'cop_mail.web:create_app()'`)."""
    from cop_mail.embedded import serve_web

    serve_web(_require_redis(load_settings()), host, port)


@main.command()
@click.option("--port", default=1025, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@plain_errors
def mailcatcher(port: int, host: str) -> None:
    """Run the local mail catcher whose messages the admin's Outbox shows."""
    from cop_mail.embedded import serve_mailcatcher

    serve_mailcatcher(load_settings(), host, port)


@main.command("create-admin")
@click.option("--email", prompt=True)
@click.option("--name", default="")
@click.option("--role", type=click.Choice(["owner", "coordinator", "viewer"]), default="owner", show_default=True)
@click.option("--password", default=None, help="Default: a random password, printed once.")
@plain_errors
def create_admin(email: str, name: str, role: str, password: str | None) -> None:
    """Create a coordinator account."""
    from cop_mail import accounts
    from cop_mail.db import make_engine, make_session_factory
    from cop_mail.models import Role

    settings = load_settings()
    secret = password or accounts.generate_password()
    with make_session_factory(make_engine(settings.database_url))() as session:
        admin = accounts.create_admin(session, email, secret, Role(role), name)
        accounts.audit(session, "cli", "admin.create", admin.email, role=role)
        session.commit()
    click.echo(f"Created {role} {admin.email}.")
    if password is None:
        click.echo(f"Password (shown once): {secret}")


def _require_redis(settings: Settings) -> Settings:
    if not settings.redis_url:
        click.echo("Error: REDIS_URL is not set (for example redis://127.0.0.1:6379/0)", err=True)
        sys.exit(2)
    return settings


from cop_mail.cli_campaigns import campaigns_group  # noqa: E402

main.add_command(campaigns_group)
from cop_mail.cli_members import members_group  # noqa: E402

main.add_command(members_group)

if __name__ == "__main__":
    main()
