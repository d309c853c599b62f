"""When a recurring round runs next: an RFC 5545 RRULE read in the round's own time zone.

"Every other Monday at 09:00" is `FREQ=WEEKLY;INTERVAL=2;BYDAY=MO;BYHOUR=9;BYMINUTE=0;BYSECOND=0`,
counted from the week the round was created, so "every other" stays on the same Mondays.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrule, rrulestr

WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
MAX_RULE_CHARS = 200


class ScheduleError(ValueError):
    """A schedule that cannot be used; the message says why in plain words."""


def weekly_rule(every_weeks: int, weekday: int, hour: int) -> str:
    if not 1 <= every_weeks <= 12:
        raise ScheduleError("a round can repeat every 1 to 12 weeks")
    if not 0 <= weekday <= 6 or not 0 <= hour <= 23:
        raise ScheduleError("choose a weekday and an hour from 0 to 23")
    return f"FREQ=WEEKLY;INTERVAL={every_weeks};BYDAY={WEEKDAYS[weekday]};BYHOUR={hour};BYMINUTE=0;BYSECOND=0"


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(f"unknown time zone {name!r}") from exc


def parse_rule(text: str, timezone: str, anchor: datetime) -> rrule:
    """The rule as dateutil reads it, starting from `anchor` (aware) in `timezone`."""
    if not text or len(text) > MAX_RULE_CHARS or "DTSTART" in text.upper() or "\n" in text:
        raise ScheduleError("the schedule must be one RRULE line, e.g. FREQ=WEEKLY;INTERVAL=2;BYDAY=MO;BYHOUR=9")
    start = anchor.astimezone(zone(timezone)).replace(tzinfo=None, minute=0, second=0, microsecond=0)
    try:
        rule = rrulestr(text.removeprefix("RRULE:"), dtstart=start, forceset=False)
    except (ValueError, TypeError) as exc:
        raise ScheduleError(f"the schedule is not a rule we can read: {exc}") from exc
    if not isinstance(rule, rrule):
        raise ScheduleError("the schedule must be a single RRULE")
    return rule


def next_run(text: str, timezone: str, anchor: datetime, after: datetime) -> datetime | None:
    """The first run strictly after `after` (aware, UTC), or None when the rule has ended."""
    tz = zone(timezone)
    rule = parse_rule(text, timezone, anchor)
    local_after = after.astimezone(tz).replace(tzinfo=None)
    found = rule.after(local_after, inc=False)
    if found is None:
        return None
    return found.replace(tzinfo=tz).astimezone(UTC)
