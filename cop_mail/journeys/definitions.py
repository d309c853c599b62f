"""Creating and editing journeys and their steps, with every problem said in plain words.

A step's `key` is its lasting identity: runs are recorded by key, so rewording a message or
moving a step never makes a member get it again, while a newly added step is new to everyone
still on the way. Removing a step only marks it removed, so members' histories keep naming it.
Functions never commit; the caller does (and audits).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from cop_mail.db import utcnow
from cop_mail.models import (
    EnrolmentStatus,
    Journey,
    JourneyEnrolment,
    JourneyStep,
    JourneyTrigger,
    MailingList,
    StepKind,
    Tag,
    Value,
)
from cop_mail.rendering import RenderError, markdown_to_html, render_coordinator_text
from cop_mail.rendering.placeholders import member_proxy

TRIGGER_LABELS: dict[str, str] = {
    JourneyTrigger.JOINED_LIST: "A member joins a list",
    JourneyTrigger.CONFIRMED_SIGNUP: "A member confirms their signup",
    JourneyTrigger.FIRST_CONNECTION: "A member makes their first connection",
    JourneyTrigger.INACTIVE: "A member has taken no action for a number of days",
}
STEP_LABELS: dict[str, str] = {
    StepKind.WAIT: "Wait",
    StepKind.SEND_TEMPLATE: "Send a message",
    StepKind.OFFER_INTRO: "Offer an introduction",
    StepKind.STORY_PROMPT: "Send a story prompt",
    StepKind.ADD_TAG: "Add a tag",
}
# The templates a "send a message" step can use; both are drawn with the "message" email template.
TEMPLATES: dict[str, str] = {
    "message": "Your message",
    "welcome": "Your message, then the community's values (from the Values page)",
}
LIST_TRIGGERS = frozenset({JourneyTrigger.JOINED_LIST, JourneyTrigger.CONFIRMED_SIGNUP})
MAX_WAIT_DAYS = 365
MAX_INACTIVE_DAYS = 3650
MAX_BODY = 20_000
# What a coordinator's text can use besides `member`: the same keys the email compiler gives it.
_SAMPLE_COMMUNITY = {
    "name": "the community",
    "postal_address": "",
    "accent_colour": "#2f6f4f",
    "logo_url": "",
    "public_url": "https://example.org",
}


class JourneyError(ValueError):
    """What is wrong with a journey or step form: one plain sentence per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(" ".join(problems))


@dataclass(frozen=True)
class JourneyInput:
    name: str
    trigger: str
    description: str = ""
    list_id: int | None = None
    days: str = ""  # for "no action for N days"; text as typed, checked here


@dataclass(frozen=True)
class StepInput:
    """A step form as typed; only the fields of the step's kind are read."""

    kind: str
    days: str = ""
    template: str = "message"
    subject: str = ""
    body: str = ""
    question: str = ""
    note: str = ""
    value_id: int | None = None
    tag: str = ""
    skip_if_introduced: bool = False


# --- journeys ------------------------------------------------------------------------------------


def get_journey(session: Session, journey_id: int) -> Journey:
    found = session.get(Journey, journey_id)
    if found is None:
        raise JourneyError([f"There is no journey number {journey_id}."])
    return found


def find_journey(session: Session, journey_id: int) -> Journey | None:
    return session.get(Journey, journey_id)


def list_journeys(session: Session) -> list[Journey]:
    return list(session.scalars(select(Journey).order_by(Journey.active.desc(), Journey.name)))


def clean_journey(session: Session, data: JourneyInput, journey_id: int | None = None) -> dict[str, Any]:
    problems: list[str] = []
    name = " ".join(data.name.split())
    if not name:
        problems.append("Give the journey a name.")
    elif len(name) > 200:
        problems.append("The name is too long: at most 200 characters.")
    elif session.scalar(select(Journey.id).where(Journey.name == name, Journey.id != (journey_id or 0))):
        problems.append(f"Another journey is already called “{name}”.")
    config: dict[str, Any] = {}
    if data.trigger not in TRIGGER_LABELS:
        problems.append("Choose what starts the journey.")
    elif data.trigger in LIST_TRIGGERS:
        if data.list_id is not None and session.get(MailingList, data.list_id) is None:
            problems.append("That list no longer exists; choose another, or any list.")
        config["list_id"] = data.list_id
    elif data.trigger == JourneyTrigger.INACTIVE:
        days = _whole_number(data.days, 1, MAX_INACTIVE_DAYS)
        if days is None:
            problems.append(
                "Say after how many days without any action a member enters: "
                f"a whole number from 1 to {MAX_INACTIVE_DAYS}."
            )
        config["days"] = days
    if len(data.description) > 2000:
        problems.append("The description is too long: at most 2,000 characters.")
    if problems:
        raise JourneyError(problems)
    return {"name": name, "trigger": data.trigger, "trigger_config": config, "description": data.description.strip()}


def create_journey(session: Session, data: JourneyInput, actor: str) -> Journey:
    """A new journey, switched off until it has steps and a coordinator switches it on."""
    journey = Journey(**clean_journey(session, data), active=False, created_by=actor)
    session.add(journey)
    session.flush()
    return journey


def update_journey(session: Session, journey_id: int, data: JourneyInput) -> Journey:
    """Rename it or change what starts it; members already in it carry on."""
    journey = get_journey(session, journey_id)
    for name, value in clean_journey(session, data, journey_id).items():
        setattr(journey, name, value)
    session.flush()
    return journey


def set_active(session: Session, journey_id: int, active: bool, now: datetime | None = None) -> Journey:
    """Switch on (members enter and move on) or off (nobody enters; those in it wait where they are)."""
    journey = get_journey(session, journey_id)
    if active and not any(step.kind != StepKind.WAIT for step in live_steps(session, journey_id)):
        raise JourneyError(["Add a step that does something (a message, an introduction) before switching it on."])
    journey.active = active
    if active:
        wake(session, journey_id, now)
    session.flush()
    return journey


def wake(session: Session, journey_id: int, now: datetime | None = None) -> None:
    """Have the runner look at everyone in the journey again (waits keep their end times)."""
    session.execute(
        update(JourneyEnrolment)
        .where(JourneyEnrolment.journey_id == journey_id, JourneyEnrolment.status == EnrolmentStatus.ACTIVE)
        .values(next_run_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )


# --- steps ---------------------------------------------------------------------------------------


def live_steps(session: Session, journey_id: int) -> list[JourneyStep]:
    """The journey's steps in order, without removed ones."""
    return list(
        session.scalars(
            select(JourneyStep)
            .where(JourneyStep.journey_id == journey_id, JourneyStep.removed_at.is_(None))
            .order_by(JourneyStep.position, JourneyStep.id)
        )
    )


def all_steps(session: Session, journey_id: int) -> dict[str, JourneyStep]:
    """Every step ever, removed ones too, by key: histories name steps that are gone."""
    return {s.key: s for s in session.scalars(select(JourneyStep).where(JourneyStep.journey_id == journey_id))}


def get_step(session: Session, journey_id: int, key: str) -> JourneyStep:
    step = session.scalar(
        select(JourneyStep).where(
            JourneyStep.journey_id == journey_id, JourneyStep.key == key, JourneyStep.removed_at.is_(None)
        )
    )
    if step is None:
        raise JourneyError(["That step is no longer part of the journey."])
    return step


def new_key() -> str:
    return secrets.token_hex(8)


def add_step(session: Session, journey_id: int, data: StepInput, after_key: str | None = None) -> JourneyStep:
    """Add a step at the end, or just after `after_key`."""
    get_journey(session, journey_id)
    config, conditions = clean_step(session, data)
    steps = live_steps(session, journey_id)
    index = len(steps)
    if after_key:
        keys = [s.key for s in steps]
        index = keys.index(after_key) + 1 if after_key in keys else len(steps)
    step = JourneyStep(journey_id=journey_id, key=new_key(), position=0, kind=data.kind, config=config)
    step.conditions = conditions
    session.add(step)
    steps.insert(index, step)
    _renumber(steps)
    session.flush()
    wake(session, journey_id)
    return step


def update_step(session: Session, journey_id: int, key: str, data: StepInput) -> JourneyStep:
    """Change what a step says or does; its key stays, so members who took it do not get it again."""
    step = get_step(session, journey_id, key)
    config, conditions = clean_step(session, replace(data, kind=step.kind))
    step.config, step.conditions = config, conditions
    session.flush()
    wake(session, journey_id)
    return step


def move_step(session: Session, journey_id: int, key: str, offset: int) -> None:
    """Move a step up (-1) or down (+1); the first step cannot go higher, nor the last lower."""
    steps = live_steps(session, journey_id)
    keys = [s.key for s in steps]
    if key not in keys:
        raise JourneyError(["That step is no longer part of the journey."])
    here = keys.index(key)
    there = min(max(here + offset, 0), len(steps) - 1)
    steps.insert(there, steps.pop(here))
    _renumber(steps)
    session.flush()
    wake(session, journey_id)


def remove_step(session: Session, journey_id: int, key: str, now: datetime | None = None) -> JourneyStep:
    step = get_step(session, journey_id, key)
    step.removed_at = now or utcnow()
    _renumber(live_steps(session, journey_id))
    session.flush()
    wake(session, journey_id)
    return step


def _renumber(steps: list[JourneyStep]) -> None:
    for position, step in enumerate(steps, start=1):
        step.position = position


def clean_step(session: Session, data: StepInput) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config, conditions) for a step form; JourneyError lists every problem at once."""
    problems: list[str] = []
    if data.kind not in STEP_LABELS:
        raise JourneyError(["Choose what the step does."])
    config = _CLEANERS[StepKind(data.kind)](session, data, problems)
    if problems:
        raise JourneyError(problems)
    conditions = {"skip_if_introduced": True} if data.skip_if_introduced and data.kind != StepKind.WAIT else {}
    return config, conditions


def _clean_wait(session: Session, data: StepInput, problems: list[str]) -> dict[str, Any]:
    days = _whole_number(data.days, 1, MAX_WAIT_DAYS)
    if days is None:
        problems.append(f"A wait is a whole number of days from 1 to {MAX_WAIT_DAYS}.")
    return {"days": days}


def _clean_message(session: Session, data: StepInput, problems: list[str]) -> dict[str, Any]:
    if data.template not in TEMPLATES:
        names = ", ".join(f"“{label}”" for label in TEMPLATES.values())
        problems.append(f"There is no message template called “{data.template}”; choose one of {names}.")
    subject, body = " ".join(data.subject.split()), data.body.strip()
    if not subject:
        problems.append("Write the message's subject.")
    elif len(subject) > 200:
        problems.append("The subject is too long: at most 200 characters.")
    else:
        _check_text(subject, "The subject", problems, html=False)
    if not body:
        problems.append("Write the message.")
    elif len(body) > MAX_BODY:
        problems.append(f"The message is too long: at most {MAX_BODY:,} characters.")
    else:
        _check_text(body, "The message", problems, markdown=True)
    return {"template": data.template, "subject": subject, "body": body}


def _clean_intro(session: Session, data: StepInput, problems: list[str]) -> dict[str, Any]:
    note = data.note.strip()
    if len(note) > 2000:
        problems.append("The note is too long: at most 2,000 characters.")
    elif note:
        _check_text(note, "The note", problems, markdown=True)
    return {"note": note}


def _clean_prompt(session: Session, data: StepInput, problems: list[str]) -> dict[str, Any]:
    question, note = " ".join(data.question.split()), data.note.strip()
    if not question:
        problems.append("Write the question the story prompt asks.")
    elif len(question) > 300:
        problems.append("The question is too long: at most 300 characters.")
    if len(note) > 2000:
        problems.append("The note is too long: at most 2,000 characters.")
    elif note:
        _check_text(note, "The note", problems, markdown=True)
    if data.value_id is not None and session.get(Value, data.value_id) is None:
        problems.append("That value no longer exists; choose another, or let each member's own value be used.")
    return {"question": question, "note": note, "value_id": data.value_id}


def _clean_tag(session: Session, data: StepInput, problems: list[str]) -> dict[str, Any]:
    name = " ".join(data.tag.split())
    if not name:
        problems.append("Name the tag to add.")
        return {}
    if len(name) > 100:
        problems.append("The tag is too long: at most 100 characters.")
        return {}
    tag = session.scalar(select(Tag).where(func.lower(Tag.name) == name.lower()))
    if tag is None:
        tag = Tag(name=name)
        session.add(tag)
        session.flush()
    return {"tag_id": tag.id, "tag": tag.name}


_CLEANERS = {
    StepKind.WAIT: _clean_wait,
    StepKind.SEND_TEMPLATE: _clean_message,
    StepKind.OFFER_INTRO: _clean_intro,
    StepKind.STORY_PROMPT: _clean_prompt,
    StepKind.ADD_TAG: _clean_tag,
}


def _check_text(source: str, what: str, problems: list[str], *, html: bool = True, markdown: bool = False) -> None:
    """Fill the text in the sandbox now, so a mistake shows in the form rather than in a member's mail."""
    context: Mapping[str, Any] = {"member": member_proxy(), "community": _SAMPLE_COMMUNITY}
    try:
        rendered = render_coordinator_text(source, context, html=html, field=what)
        if markdown:
            markdown_to_html(rendered, base_url=_SAMPLE_COMMUNITY["public_url"], field=what)
    except RenderError as exc:
        where = f", line {exc.line}" if exc.line else ""
        problems.append(f"{what}{where}: {exc.message}.")


def _whole_number(text: str, low: int, high: int) -> int | None:
    try:
        number = int(str(text).strip())
    except ValueError:
        return None
    return number if low <= number <= high else None
