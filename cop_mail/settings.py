"""Typed settings read from the environment.

`Settings.from_env()` collects every problem before failing, so an operator
fixes a broken configuration in one go instead of one traceback at a time.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

SMTP_TLS_MODES = ("none", "starttls", "tls")
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(Exception):
    """Raised with every problem found in the environment, one per line."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("cop-mail cannot start; fix these settings:\n  - " + "\n  - ".join(problems))


@dataclass(frozen=True)
class Settings:
    instance_path: Path
    database_url: str
    secret_key: str
    redis_url: str | None = None
    public_url: str = "http://127.0.0.1:5000"
    mail_from: str = "Community <community@localhost>"
    mail_domain: str = "localhost"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_tls: str = "none"
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_timeout: float = 30.0
    smtp_connections: int = 2
    inbound_host: str = "127.0.0.1"
    inbound_port: int = 2525
    inbound_max_bytes: int = 20 * 1024 * 1024
    inbound_webhook_secret: str | None = None
    stories_local_part: str = "stories"
    community_name: str = "Our Community"
    postal_address: str = "Postal address not set"
    accent_colour: str = "#2f6f4f"
    logo_url: str | None = None
    dkim_selector: str | None = None
    dkim_domain: str | None = None
    dkim_private_key: bytes | None = field(default=None, repr=False)
    outbox_dir: Path | None = None
    send_rate_per_second: float = 0.0
    # Sending: limits shared by every worker through Redis (0 = no limit) and crash-safety timings.
    send_rate_per_minute: float = 0.0
    send_rate_per_hour: float = 0.0
    campaign_rate_per_second: float = 0.0
    campaign_rate_per_minute: float = 0.0
    campaign_rate_per_hour: float = 0.0
    send_batch_size: int = 250
    send_lease_seconds: float = 120.0
    send_retry_seconds: float = 60.0
    send_max_attempts: int = 6
    send_pushback_seconds: float = 5.0
    send_max_consecutive_failures: int = 50
    login_attempts_per_15_min: int = 10
    # Introductions: days without an answer before the one reminder (and again before expiry),
    # and days after the joint email before the follow-up.
    intro_answer_days: int = 5
    intro_followup_days: int = 21
    imap_host: str | None = None
    imap_port: int = 993
    imap_user: str | None = None
    imap_password: str | None = field(default=None, repr=False)
    imap_folder: str = "INBOX"
    imap_tls: str = "tls"
    testing: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def public_is_https(self) -> bool:
        return self.public_url.startswith("https://")

    @property
    def templates_path(self) -> Path:
        return PROJECT_ROOT / "templates"

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        reader = _Reader(env)
        instance = Path(env.get("INSTANCE_PATH", "instance")).resolve()
        values: dict[str, Any] = {
            "instance_path": instance,
            "database_url": env.get("DATABASE_URL") or f"sqlite:///{instance / 'cop-mail.db'}",
            "redis_url": reader.url("REDIS_URL", ("redis", "rediss", "unix")),
            "public_url": reader.url("PUBLIC_URL", ("http", "https")) or cls.public_url,
            "mail_from": reader.text("MAIL_FROM", cls.mail_from),
            "mail_domain": reader.text("MAIL_DOMAIN", cls.mail_domain),
            "smtp_host": reader.text("SMTP_HOST", cls.smtp_host),
            "smtp_port": reader.integer("SMTP_PORT", cls.smtp_port, 1, 65535),
            "smtp_tls": reader.choice("SMTP_TLS", cls.smtp_tls, SMTP_TLS_MODES),
            "smtp_user": env.get("SMTP_USER") or None,
            "smtp_password": env.get("SMTP_PASSWORD") or None,
            "smtp_timeout": reader.number("SMTP_TIMEOUT", cls.smtp_timeout, 0.1, 600),
            "smtp_connections": reader.integer("SMTP_CONNECTIONS", cls.smtp_connections, 1, 100),
            "inbound_host": reader.text("INBOUND_HOST", cls.inbound_host),
            "inbound_port": reader.integer("INBOUND_PORT", cls.inbound_port, 1, 65535),
            "inbound_max_bytes": reader.integer("INBOUND_MAX_BYTES", cls.inbound_max_bytes, 1024, 2**31),
            "inbound_webhook_secret": env.get("INBOUND_WEBHOOK_SECRET") or None,
            "stories_local_part": reader.text("STORIES_LOCAL_PART", cls.stories_local_part),
            "community_name": reader.text("COMMUNITY_NAME", cls.community_name),
            "postal_address": reader.text("POSTAL_ADDRESS", cls.postal_address),
            "accent_colour": reader.colour("ACCENT_COLOUR", cls.accent_colour),
            "logo_url": reader.url("LOGO_URL", ("http", "https")),
            "dkim_selector": env.get("DKIM_SELECTOR") or None,
            "dkim_domain": env.get("DKIM_DOMAIN") or None,
            "dkim_private_key": reader.key_file("DKIM_PRIVATE_KEY_FILE"),
            "outbox_dir": Path(env["OUTBOX_DIR"]).resolve() if env.get("OUTBOX_DIR") else None,
            "send_rate_per_second": reader.number("SEND_RATE_PER_SECOND", 0.0, 0.0, 1e6),
            "send_rate_per_minute": reader.number("SEND_RATE_PER_MINUTE", 0.0, 0.0, 1e8),
            "send_rate_per_hour": reader.number("SEND_RATE_PER_HOUR", 0.0, 0.0, 1e9),
            "campaign_rate_per_second": reader.number("CAMPAIGN_RATE_PER_SECOND", 0.0, 0.0, 1e6),
            "campaign_rate_per_minute": reader.number("CAMPAIGN_RATE_PER_MINUTE", 0.0, 0.0, 1e8),
            "campaign_rate_per_hour": reader.number("CAMPAIGN_RATE_PER_HOUR", 0.0, 0.0, 1e9),
            "send_batch_size": reader.integer("SEND_BATCH_SIZE", cls.send_batch_size, 1, 5000),
            "send_lease_seconds": reader.number("SEND_LEASE_SECONDS", cls.send_lease_seconds, 1, 86400),
            "send_retry_seconds": reader.number("SEND_RETRY_SECONDS", cls.send_retry_seconds, 0.01, 86400),
            "send_max_attempts": reader.integer("SEND_MAX_ATTEMPTS", cls.send_max_attempts, 1, 100),
            "send_pushback_seconds": reader.number("SEND_PUSHBACK_SECONDS", cls.send_pushback_seconds, 0.01, 3600),
            "send_max_consecutive_failures": reader.integer(
                "SEND_MAX_CONSECUTIVE_FAILURES", cls.send_max_consecutive_failures, 1, 1_000_000
            ),
            "login_attempts_per_15_min": reader.integer("LOGIN_ATTEMPTS_PER_15_MIN", 10, 1, 10_000),
            "imap_host": env.get("IMAP_HOST") or None,
            "imap_port": reader.integer("IMAP_PORT", cls.imap_port, 1, 65535),
            "imap_user": env.get("IMAP_USER") or None,
            "imap_password": env.get("IMAP_PASSWORD") or None,
            "imap_folder": reader.text("IMAP_FOLDER", cls.imap_folder),
            "imap_tls": reader.choice("IMAP_TLS", cls.imap_tls, SMTP_TLS_MODES),
            "intro_answer_days": reader.integer("INTRO_ANSWER_DAYS", cls.intro_answer_days, 1, 365),
            "intro_followup_days": reader.integer("INTRO_FOLLOWUP_DAYS", cls.intro_followup_days, 1, 365),
        }
        if values["imap_host"] and not (values["imap_user"] and values["imap_password"]):
            reader.problems.append("IMAP_USER and IMAP_PASSWORD must be set when IMAP_HOST is")
        if values["dkim_private_key"] and not values["dkim_selector"]:
            reader.problems.append("DKIM_SELECTOR must be set when DKIM_PRIVATE_KEY_FILE is")
        if not values["database_url"].split(":", 1)[0].startswith(("sqlite", "postgresql")):
            reader.problems.append("DATABASE_URL must start with sqlite:// or postgresql://")
        if reader.problems:
            raise SettingsError(reader.problems)
        values["secret_key"] = env.get("SECRET_KEY") or load_or_create_secret(instance)
        return cls(**values)


class _Reader:
    """Reads typed values, recording problems instead of raising on the first."""

    def __init__(self, env: Mapping[str, str]):
        self.env = env
        self.problems: list[str] = []

    def _get(self, name: str) -> str | None:
        raw = self.env.get(name)
        return raw.strip() if raw and raw.strip() else None

    def _parse(self, name: str, default: Any, parse: Callable[[str], Any], expected: str) -> Any:
        raw = self._get(name)
        if raw is None:
            return default
        try:
            return parse(raw)
        except (ValueError, OSError):
            self.problems.append(f"{name}={raw!r} is not {expected}")
            return default

    def text(self, name: str, default: str) -> str:
        return self._get(name) or default

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        def parse(raw: str) -> int:
            value = int(raw)
            if not low <= value <= high:
                raise ValueError
            return value

        return self._parse(name, default, parse, f"a whole number from {low} to {high}")

    def number(self, name: str, default: float, low: float, high: float) -> float:
        def parse(raw: str) -> float:
            value = float(raw)
            if not low <= value <= high:
                raise ValueError
            return value

        return self._parse(name, default, parse, f"a number from {low:g} to {high:g}")

    def choice(self, name: str, default: str, options: tuple[str, ...]) -> str:
        def parse(raw: str) -> str:
            if raw.lower() not in options:
                raise ValueError
            return raw.lower()

        return self._parse(name, default, parse, "one of " + ", ".join(options))

    def url(self, name: str, schemes: tuple[str, ...]) -> str | None:
        def parse(raw: str) -> str:
            parsed = urlparse(raw)
            if parsed.scheme not in schemes or not (parsed.netloc or parsed.path):
                raise ValueError
            return raw.rstrip("/") if parsed.scheme in ("http", "https") else raw

        return self._parse(name, None, parse, "a URL starting with " + " or ".join(f"{s}://" for s in schemes))

    def colour(self, name: str, default: str) -> str:
        def parse(raw: str) -> str:
            if len(raw) != 7 or raw[0] != "#":
                raise ValueError
            int(raw[1:], 16)
            return raw

        return self._parse(name, default, parse, "a colour like #2f6f4f")

    def key_file(self, name: str) -> bytes | None:
        return self._parse(name, None, lambda raw: Path(raw).read_bytes(), "a readable PEM key file")


def load_or_create_secret(instance: Path) -> str:
    """Keep one random secret per instance so sessions and signed links survive restarts."""
    path = instance / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret)
    return secret
