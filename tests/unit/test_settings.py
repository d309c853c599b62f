from __future__ import annotations

from pathlib import Path

import pytest

from cop_mail.settings import Settings, SettingsError


def test_defaults_use_an_embedded_sqlite_file_under_the_instance_folder(tmp_path: Path):
    settings = Settings.from_env({"INSTANCE_PATH": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path / 'cop-mail.db'}"
    assert settings.redis_url is None
    assert settings.smtp_tls == "none"


def test_secret_key_is_generated_once_and_kept(tmp_path: Path):
    first = Settings.from_env({"INSTANCE_PATH": str(tmp_path)}).secret_key
    second = Settings.from_env({"INSTANCE_PATH": str(tmp_path)}).secret_key
    assert first == second and len(first) >= 40
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    other = Settings.from_env({"INSTANCE_PATH": str(tmp_path / "other")}).secret_key
    assert other != first


def test_secret_key_from_the_environment_wins(tmp_path: Path):
    settings = Settings.from_env({"INSTANCE_PATH": str(tmp_path), "SECRET_KEY": "from-env"})
    assert settings.secret_key == "from-env"
    assert not (tmp_path / "secret_key").exists()


def test_every_problem_is_reported_at_once(tmp_path: Path):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(
            {
                "INSTANCE_PATH": str(tmp_path),
                "SMTP_PORT": "seventy",
                "SMTP_TLS": "maybe",
                "REDIS_URL": "localhost:6379",
                "PUBLIC_URL": "ftp://example.org",
                "SMTP_TIMEOUT": "-1",
                "ACCENT_COLOUR": "green",
                "DATABASE_URL": "mysql://x/y",
                "DKIM_PRIVATE_KEY_FILE": str(tmp_path / "missing.pem"),
            }
        )
    problems = caught.value.problems
    names = [problem.split("=", 1)[0].split(" ", 1)[0] for problem in problems]
    assert names == [
        "REDIS_URL",
        "PUBLIC_URL",
        "SMTP_PORT",
        "SMTP_TLS",
        "SMTP_TIMEOUT",
        "ACCENT_COLOUR",
        "DKIM_PRIVATE_KEY_FILE",
        "DATABASE_URL",
    ]
    assert "one of none, starttls, tls" in str(caught.value)
    assert "cop-mail cannot start" in str(caught.value)


def test_typed_values_are_parsed(tmp_path: Path):
    key = tmp_path / "dkim.pem"
    key.write_bytes(b"-----BEGIN PRIVATE KEY-----\n")
    settings = Settings.from_env(
        {
            "INSTANCE_PATH": str(tmp_path),
            "SMTP_PORT": "587",
            "SMTP_TLS": "STARTTLS",
            "SMTP_TIMEOUT": "12.5",
            "PUBLIC_URL": "https://community.example.org/",
            "REDIS_URL": "redis://127.0.0.1:6379/3",
            "DKIM_PRIVATE_KEY_FILE": str(key),
            "DKIM_SELECTOR": "cop",
        }
    )
    assert (settings.smtp_port, settings.smtp_tls, settings.smtp_timeout) == (587, "starttls", 12.5)
    assert settings.public_url == "https://community.example.org"
    assert settings.public_is_https
    assert settings.dkim_private_key == b"-----BEGIN PRIVATE KEY-----\n"


def test_dkim_key_without_selector_is_a_problem(tmp_path: Path):
    key = tmp_path / "dkim.pem"
    key.write_bytes(b"x")
    with pytest.raises(SettingsError, match="DKIM_SELECTOR"):
        Settings.from_env({"INSTANCE_PATH": str(tmp_path), "DKIM_PRIVATE_KEY_FILE": str(key)})
