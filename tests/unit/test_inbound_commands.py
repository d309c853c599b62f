from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cop_mail.inbound.commands import CommandKind, command_from_reply, parse_command
from cop_mail.inbound.parsing import parse_message
from tests.corpus.inbound import reply_message


@pytest.mark.parametrize(
    ("line", "kind", "days"),
    [
        ("PAUSE 2 months", CommandKind.PAUSE, 60),
        ("pause 3 weeks", CommandKind.PAUSE, 21),
        ("Pause 10 days.", CommandKind.PAUSE, 10),
        ("PAUSE for two weeks", CommandKind.PAUSE, 14),
        ("pause 1 month!", CommandKind.PAUSE, 30),
        ("PAUSE", CommandKind.PAUSE, 30),
        ("  **PAUSE 2 MONTHS**  ", CommandKind.PAUSE, 60),
    ],
)
def test_pause(line: str, kind: CommandKind, days: int):
    command = parse_command(line)
    assert command is not None and command.kind is kind and command.days == days


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("NO INTROS", CommandKind.NO_INTROS),
        ("no introductions", CommandKind.NO_INTROS),
        ("No more intros.", CommandKind.NO_INTROS),
        ("UNSUBSCRIBE", CommandKind.UNSUBSCRIBE),
        ("unsubscribe all", CommandKind.UNSUBSCRIBE),
        ("DIGEST ONLY", CommandKind.DIGEST_ONLY),
        ("digest", CommandKind.DIGEST_ONLY),
        ("RESUME", CommandKind.RESUME),
        ("unpause", CommandKind.RESUME),
        ("INTROS EVERY 4 WEEKS", CommandKind.INTRO_CADENCE),
    ],
)
def test_simple_commands(line: str, kind: CommandKind):
    command = parse_command(line)
    assert command is not None and command.kind is kind
    assert command.line == line.strip()


def test_unsubscribe_from_one_stream():
    command = parse_command("UNSUBSCRIBE newsletters")
    assert command is not None and command.stream == "newsletters"
    assert "newsletters" in command.confirmation
    assert parse_command("Unsubscribe from event-invitations").stream == "event-invitations"  # type: ignore[union-attr]
    assert parse_command("unsubscribe everything").stream is None  # type: ignore[union-attr]


def test_intro_cadence():
    assert parse_command("intros every 4 weeks").every_weeks == 4  # type: ignore[union-attr]
    assert parse_command("Introductions every two weeks").every_weeks == 2  # type: ignore[union-attr]
    assert parse_command("intros every month").every_weeks == 4  # type: ignore[union-attr]
    assert parse_command("intros every 2 months").every_weeks == 8  # type: ignore[union-attr]
    assert parse_command("intros every 100 weeks") is None


@pytest.mark.parametrize(
    "text",
    [
        "Pause for thought: yes, happy to meet Ben!",
        "I will unsubscribe my old address soon",
        "pause 400 days",
        "pause 0 days",
        "PAUSE 2 fortnights",
        "Yes\nPAUSE 2 months",
        "",
        "   \n  ",
        "resume my subscription please, and yes",
    ],
)
def test_not_commands(text: str):
    assert parse_command(text) is None


def test_command_is_the_first_non_empty_line():
    command = parse_command("\n\n  NO INTROS  \nThanks for everything.\n")
    assert command is not None and command.kind is CommandKind.NO_INTROS


def test_confirmation_names_the_community():
    command = parse_command("PAUSE 3 weeks", community_name="Garden Network")
    assert command is not None
    assert command.confirmation == (
        "Done: emails from Garden Network are paused for 3 weeks. Reply RESUME to start again sooner."
    )
    for line in ("NO INTROS", "UNSUBSCRIBE", "DIGEST ONLY", "RESUME", "INTROS EVERY 4 WEEKS"):
        found = parse_command(line, community_name="Garden Network")
        assert found is not None and "Garden Network" in found.confirmation


def test_pause_until_follows_the_calendar():
    start = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
    assert parse_command("PAUSE 1 month").pause_until(start) == datetime(2026, 2, 28, 12, 0, tzinfo=UTC)  # type: ignore[union-attr]
    assert parse_command("PAUSE 10 days").pause_until(start) == datetime(2026, 2, 10, 12, 0, tzinfo=UTC)  # type: ignore[union-attr]
    assert parse_command("NO INTROS").pause_until(start) is None  # type: ignore[union-attr]


def test_command_from_a_quoted_reply():
    raw = reply_message("PAUSE 2 months", "en", "signature", invitation="UNSUBSCRIBE\nReply YES")
    command = command_from_reply(parse_message(raw))
    assert command is not None and command.kind is CommandKind.PAUSE and command.amount == 2
    quoted_only = reply_message("", "en", "gmail", invitation="UNSUBSCRIBE")
    assert command_from_reply(parse_message(quoted_only)) is None
