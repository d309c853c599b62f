"""Where members are in their journeys, in plain words: for a member's page and a journey's page."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cop_mail.journeys import definitions
from cop_mail.models import (
    EnrolmentStatus,
    Journey,
    JourneyEnrolment,
    JourneyStep,
    JourneyStepRun,
    Member,
    StepKind,
)

PAGE_SIZE = 50


@dataclass(frozen=True)
class StepLine:
    """One step as a member sees it: taken (done, skipped, failed), waiting, next or later."""

    words: str
    state: str
    at: datetime | None = None
    note: str = ""


@dataclass(frozen=True)
class Progress:
    journey: Journey
    enrolment: JourneyEnrolment
    lines: list[StepLine]

    @property
    def taken(self) -> list[StepLine]:
        return [line for line in self.lines if line.state in ("done", "skipped", "failed")]

    @property
    def next(self) -> StepLine | None:
        return next((line for line in self.lines if line.state in ("waiting", "next")), None)


def describe(step: JourneyStep) -> str:
    """A step in a few plain words."""
    config: dict[str, Any] = step.config or {}
    kind = step.kind
    if kind == StepKind.WAIT:
        days = int(config.get("days") or 0)
        words = f"Wait {days} day" + ("" if days == 1 else "s")
    elif kind == StepKind.SEND_TEMPLATE:
        words = f"Send “{config.get('subject', '')}”"
    elif kind == StepKind.STORY_PROMPT:
        words = f"Send the story prompt “{config.get('question', '')}”"
    elif kind == StepKind.ADD_TAG:
        words = f"Add the tag “{config.get('tag', '')}”"
    else:
        words = definitions.STEP_LABELS.get(kind, kind)
    if (step.conditions or {}).get("skip_if_introduced"):
        words += " (skipped for members already introduced or connected)"
    return words


def run_note(run: JourneyStepRun) -> str:
    detail: dict[str, Any] = run.detail or {}
    if detail.get("reason"):
        return str(detail["reason"])
    if detail.get("intro_id"):
        return f"introduction #{detail['intro_id']}"
    if detail.get("delivery_id"):
        return f"message #{detail['delivery_id']}"
    if detail.get("tag"):
        return "already had it" if detail.get("already") else ""
    return ""


def lines_for(
    enrolment: JourneyEnrolment, steps: dict[str, JourneyStep], live: list[JourneyStep], runs: list[JourneyStepRun]
) -> list[StepLine]:
    lines = []
    for run in runs:
        step = steps.get(run.step_key)
        words = describe(step) if step is not None else definitions.STEP_LABELS.get(run.kind, run.kind)
        lines.append(StepLine(words, str(run.status), run.ran_at, run_note(run)))
    if enrolment.status != EnrolmentStatus.ACTIVE:
        return lines
    taken = {run.step_key for run in runs}
    for step in (s for s in live if s.key not in taken):
        if not any(line.state in ("waiting", "next") for line in lines):
            wait_ends = (enrolment.waits or {}).get(step.key)
            if wait_ends:
                lines.append(StepLine(describe(step), "waiting", datetime.fromisoformat(wait_ends)))
            else:
                lines.append(StepLine(describe(step), "next", enrolment.next_run_at))
        else:
            lines.append(StepLine(describe(step), "later"))
    return lines


def _runs_by_enrolment(session: Session, enrolment_ids: Iterable[int]) -> dict[int, list[JourneyStepRun]]:
    found: dict[int, list[JourneyStepRun]] = defaultdict(list)
    ids = list(enrolment_ids)
    if not ids:
        return found
    statement = (
        select(JourneyStepRun)
        .where(JourneyStepRun.enrolment_id.in_(ids))
        .order_by(JourneyStepRun.ran_at, JourneyStepRun.id)
    )
    for run in session.scalars(statement):
        found[run.enrolment_id].append(run)
    return found


def member_journeys(session: Session, member_id: int) -> list[Progress]:
    """Every journey the member is or was in, newest first, with each step's state."""
    rows = session.execute(
        select(JourneyEnrolment, Journey)
        .join(Journey, Journey.id == JourneyEnrolment.journey_id)
        .where(JourneyEnrolment.member_id == member_id)
        .order_by(JourneyEnrolment.started_at.desc(), JourneyEnrolment.id.desc())
    ).all()
    runs = _runs_by_enrolment(session, [enrolment.id for enrolment, _ in rows])
    found = []
    for enrolment, journey in rows:
        steps, live = definitions.all_steps(session, journey.id), definitions.live_steps(session, journey.id)
        found.append(Progress(journey, enrolment, lines_for(enrolment, steps, live, runs[enrolment.id])))
    return found


@dataclass(frozen=True)
class MemberRow:
    progress: Progress
    member_id: int
    name: str
    email: str


def journey_members(
    session: Session, journey_id: int, status: str = "", page: int = 1, size: int = PAGE_SIZE
) -> tuple[list[MemberRow], int]:
    """One page of the members in a journey (newest first) with their progress, and the total."""
    journey = definitions.get_journey(session, journey_id)
    condition = JourneyEnrolment.journey_id == journey_id
    if status in {s.value for s in EnrolmentStatus}:
        condition = condition & (JourneyEnrolment.status == status)
    total = session.scalar(select(func.count()).select_from(JourneyEnrolment).where(condition)) or 0
    rows = session.execute(
        select(JourneyEnrolment, Member.id, Member.name, Member.preferred_name, Member.email)
        .join(Member, Member.id == JourneyEnrolment.member_id)
        .where(condition)
        .order_by(JourneyEnrolment.started_at.desc(), JourneyEnrolment.id.desc())
        .limit(size)
        .offset((max(page, 1) - 1) * size)
    ).all()
    runs = _runs_by_enrolment(session, [row[0].id for row in rows])
    steps, live = definitions.all_steps(session, journey_id), definitions.live_steps(session, journey_id)
    found = [
        MemberRow(Progress(journey, e, lines_for(e, steps, live, runs[e.id])), m_id, preferred or name or "", email)
        for e, m_id, name, preferred, email in rows
    ]
    return found, int(total)


def counts(session: Session) -> dict[int, dict[str, int]]:
    """Per journey: how many members are in it (active), finished it (completed), or left (stopped)."""
    found: dict[int, dict[str, int]] = defaultdict(lambda: {s.value: 0 for s in EnrolmentStatus})
    statement = select(JourneyEnrolment.journey_id, JourneyEnrolment.status, func.count()).group_by(
        JourneyEnrolment.journey_id, JourneyEnrolment.status
    )
    for journey_id, status, count in session.execute(statement):
        found[journey_id][status] = int(count)
    return found
