"""Values coverage: which values were a newsletter's theme or a story's subject, month by month,
and which have gone quiet while members still hold them.

A value is "featured" when a sent newsletter took it as its theme (Campaign.content
["theme_value_id"]) or an approved story illustrates it. Everything is counted in SQL; only the
small per-month totals reach Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cop_mail.db import utcnow
from cop_mail.models import (
    Campaign,
    CampaignKind,
    CampaignStatus,
    Member,
    MemberStatus,
    Story,
    StoryStatus,
    Value,
    member_values,
    story_values,
)

DEFAULT_MONTHS = 12
DEFAULT_QUIET_DAYS = 90


@dataclass
class MonthCell:
    month: date  # the first day of the month
    newsletters: int = 0
    stories: int = 0


@dataclass
class ValueCoverage:
    value_id: int
    name: str
    members: int
    cells: list[MonthCell]
    last_featured: datetime | None = None

    @property
    def newsletters(self) -> int:
        return sum(cell.newsletters for cell in self.cells)

    @property
    def stories(self) -> int:
        return sum(cell.stories for cell in self.cells)


@dataclass
class CoverageReport:
    months: list[date]
    rows: list[ValueCoverage]
    quiet_days: int
    now: datetime
    quiet: list[ValueCoverage] = field(default_factory=list)  # not featured for quiet_days, most held first


def month_start(moment: datetime | date) -> date:
    return date(moment.year, moment.month, 1)


def months_back(now: datetime, count: int) -> list[date]:
    months = [month_start(now)]
    while len(months) < count:
        previous = months[-1] - timedelta(days=1)
        months.append(month_start(previous))
    return list(reversed(months))


def _theme_rows(session: Session) -> list[tuple[int, datetime]]:
    when = func.coalesce(Campaign.finished_at, Campaign.started_at, Campaign.created_at)
    rows = session.execute(
        select(Campaign.content["theme_value_id"].as_string(), when).where(
            Campaign.kind == CampaignKind.NEWSLETTER, Campaign.status == CampaignStatus.SENT
        )
    ).all()
    themes = []
    for raw, moment in rows:
        try:
            themes.append((int(raw), moment))
        except (TypeError, ValueError):
            continue  # a newsletter without a theme
    return themes


def _story_rows(session: Session) -> list[tuple[int, datetime]]:
    return [
        (value_id, moment)
        for value_id, moment in session.execute(
            select(story_values.c.value_id, Story.approved_at)
            .join(Story, Story.id == story_values.c.story_id)
            .where(Story.status == StoryStatus.APPROVED, Story.approved_at.is_not(None))
        ).all()
    ]


def _holders(session: Session) -> dict[int, int]:
    rows = session.execute(
        select(member_values.c.value_id, func.count())
        .join(Member, Member.id == member_values.c.member_id)
        .where(Member.status == MemberStatus.ACTIVE)
        .group_by(member_values.c.value_id)
    ).all()
    return {value_id: int(count) for value_id, count in rows}


def coverage_report(
    session: Session, now: datetime | None = None, months: int = DEFAULT_MONTHS, quiet_days: int = DEFAULT_QUIET_DAYS
) -> CoverageReport:
    now = now or utcnow()
    window = months_back(now, months)
    holders = _holders(session)
    rows = {
        value.id: ValueCoverage(value.id, value.name, holders.get(value.id, 0), [MonthCell(m) for m in window])
        for value in session.scalars(select(Value).order_by(Value.position, Value.name))
    }
    index = {month: position for position, month in enumerate(window)}
    for kind, pairs in (("newsletters", _theme_rows(session)), ("stories", _story_rows(session))):
        for value_id, moment in pairs:
            row = rows.get(value_id)
            if row is None:
                continue
            row.last_featured = max(filter(None, (row.last_featured, moment)))
            position = index.get(month_start(moment))
            if position is not None:
                cell = row.cells[position]
                setattr(cell, kind, getattr(cell, kind) + 1)
    cutoff = now - timedelta(days=quiet_days)
    quiet = [row for row in rows.values() if row.last_featured is None or row.last_featured < cutoff]
    quiet.sort(key=lambda row: (-row.members, row.name))
    return CoverageReport(window, list(rows.values()), quiet_days, now, quiet)
