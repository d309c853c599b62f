"""Preference commands sent by reply: a short grammar on the first line, any case.

    PAUSE 2 months | PAUSE 3 weeks | PAUSE 10 days | PAUSE
    NO INTROS
    UNSUBSCRIBE | UNSUBSCRIBE newsletters
    DIGEST ONLY
    RESUME
    INTROS EVERY 4 WEEKS

The whole first line must be the command, so "Pause for thought: yes!" is a reply, not a pause.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from dateutil.relativedelta import relativedelta

from cop_mail.inbound.parsing import ParsedMessage, visible_reply_text

DEFAULT_PAUSE = (1, "month")
MAX_PAUSE_DAYS = 366
MAX_INTRO_WEEKS = 52
_UNIT_DAYS = {"day": 1, "week": 7, "month": 30}
_NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
}  # fmt: skip
_AMOUNT = r"(\d{1,3}|" + "|".join(_NUMBER_WORDS) + r")"
_UNIT = r"(days?|weeks?|months?)"

_PAUSE = re.compile(rf"pause(?:\s+(?:for\s+)?{_AMOUNT}\s*{_UNIT})?")
_NO_INTROS = re.compile(r"no\s+(?:more\s+)?intro(?:s|ductions?)?")
_UNSUBSCRIBE = re.compile(r"unsubscribe(?:\s+(?:from\s+)?([a-z0-9][a-z0-9 _\-]{0,40}))?")
_DIGEST_ONLY = re.compile(r"digest(?:\s+only)?")
_RESUME = re.compile(r"resume|unpause")
_CADENCE = re.compile(rf"intro(?:s|ductions?)?\s+every\s+(?:{_AMOUNT}\s*)?(weeks?|months?)")
_ALL_STREAMS = {"all", "everything", "all emails", "all mail"}


class CommandKind(StrEnum):
    PAUSE = "pause"
    NO_INTROS = "no_intros"
    UNSUBSCRIBE = "unsubscribe"
    DIGEST_ONLY = "digest_only"
    RESUME = "resume"
    INTRO_CADENCE = "intro_cadence"


@dataclass(frozen=True)
class Command:
    kind: CommandKind
    line: str  # the first line as the member wrote it
    confirmation: str  # the short reply confirming what was done
    amount: int | None = None  # PAUSE: how many units
    unit: str | None = None  # PAUSE: day / week / month
    stream: str | None = None  # UNSUBSCRIBE: a list or stream name; None means everything
    every_weeks: int | None = None  # INTROS EVERY n WEEKS

    @property
    def days(self) -> int | None:
        """Pause length in days (months count as 30) for display and limits."""
        if self.amount is None or self.unit is None:
            return None
        return self.amount * _UNIT_DAYS[self.unit]

    def pause_until(self, now: datetime) -> datetime | None:
        """When a pause ends, by the calendar (2 months from 31 Jan is 31 Mar)."""
        if self.kind is not CommandKind.PAUSE or self.amount is None:
            return None
        if self.unit == "month":
            return now + relativedelta(months=self.amount)
        return now + timedelta(days=self.days or 0)


def command_from_reply(parsed: ParsedMessage, community_name: str | None = None) -> Command | None:
    return parse_command(visible_reply_text(parsed), community_name)


def parse_command(text: str, community_name: str | None = None) -> Command | None:
    """The command on the first non-empty line of `text`, or None."""
    line = _first_line(text or "")
    if not line:
        return None
    spoken = " ".join(re.sub(r"[.!]+$", "", line).lower().split())
    name = community_name or "the community"
    for parse in (_pause, _no_intros, _unsubscribe, _digest_only, _resume, _cadence):
        command = parse(spoken, line, name)
        if command is not None:
            return command
    return None


def _first_line(text: str) -> str:
    for line in text.replace("\r", "\n").split("\n"):
        stripped = line.strip().strip("*_").strip()
        if stripped:
            return stripped[:200]
    return ""


def _amount(word: str) -> int:
    return int(word) if word.isdecimal() else _NUMBER_WORDS[word]


def _pause(spoken: str, line: str, name: str) -> Command | None:
    found = _PAUSE.fullmatch(spoken)
    if not found:
        return None
    amount, unit = (_amount(found.group(1)), found.group(2).rstrip("s")) if found.group(1) else DEFAULT_PAUSE
    if amount < 1 or amount * _UNIT_DAYS[unit] > MAX_PAUSE_DAYS:
        return None
    period = f"{amount} {unit}" + ("s" if amount != 1 else "")
    text = f"Done: emails from {name} are paused for {period}. Reply RESUME to start again sooner."
    return Command(CommandKind.PAUSE, line, text, amount=amount, unit=unit)


def _no_intros(spoken: str, line: str, name: str) -> Command | None:
    if not _NO_INTROS.fullmatch(spoken):
        return None
    text = f"Done: {name} will not suggest introductions to you. Reply RESUME if you change your mind."
    return Command(CommandKind.NO_INTROS, line, text)


def _unsubscribe(spoken: str, line: str, name: str) -> Command | None:
    found = _UNSUBSCRIBE.fullmatch(spoken)
    if not found:
        return None
    stream = (found.group(1) or "").strip() or None
    if stream in _ALL_STREAMS:
        stream = None
    if stream:
        text = f"Done: you will no longer receive {stream} from {name}."
    else:
        text = f"Done: you are unsubscribed from {name} and will get no more emails from us."
    return Command(CommandKind.UNSUBSCRIBE, line, text, stream=stream)


def _digest_only(spoken: str, line: str, name: str) -> Command | None:
    if not _DIGEST_ONLY.fullmatch(spoken):
        return None
    text = f"Done: from now on you will only get the {name} digest. Reply RESUME for everything again."
    return Command(CommandKind.DIGEST_ONLY, line, text)


def _resume(spoken: str, line: str, name: str) -> Command | None:
    if not _RESUME.fullmatch(spoken):
        return None
    return Command(CommandKind.RESUME, line, f"Welcome back: emails from {name} start again.")


def _cadence(spoken: str, line: str, name: str) -> Command | None:
    found = _CADENCE.fullmatch(spoken)
    if not found:
        return None
    amount = _amount(found.group(1)) if found.group(1) else 1
    weeks = amount * (4 if found.group(2).startswith("month") else 1)
    if not 1 <= weeks <= MAX_INTRO_WEEKS:
        return None
    period = "week" if weeks == 1 else f"{weeks} weeks"
    text = f"Done: {name} will suggest an introduction at most once every {period}."
    return Command(CommandKind.INTRO_CADENCE, line, text, every_weeks=weeks)
