"""Journeys: automated sequences (the welcome journey first) and each member's way through them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cop_mail.db import Base, JSONType, utcnow


class JourneyTrigger(StrEnum):
    JOINED_LIST = "joined_list"
    CONFIRMED_SIGNUP = "confirmed_signup"
    FIRST_CONNECTION = "first_connection"
    INACTIVE = "inactive"  # no explicit action for N days


class StepKind(StrEnum):
    WAIT = "wait"
    SEND_TEMPLATE = "send_template"
    OFFER_INTRO = "offer_intro"
    STORY_PROMPT = "story_prompt"
    ADD_TAG = "add_tag"


class EnrolmentStatus(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    STOPPED = "stopped"  # a condition ended it (unsubscribed, erased) or a coordinator did


class StepRunStatus(StrEnum):
    DONE = "done"
    SKIPPED = "skipped"  # a condition said no (e.g. already introduced)
    FAILED = "failed"


class Journey(Base):
    __tablename__ = "journeys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    trigger: Mapped[str] = mapped_column(String(30))
    # e.g. {"list_id": 3} for joined_list, {"days": 60} for inactive
    trigger_config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    active: Mapped[bool] = mapped_column(default=False)
    # The shipped welcome journey is recognisable (and restorable) by this key.
    builtin_key: Mapped[str | None] = mapped_column(String(50), unique=True)
    created_by: Mapped[str] = mapped_column(String(320), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class JourneyStep(Base):
    """One step. `key` is its lasting identity: runs are recorded by key, so reordering or
    editing a step never makes a member receive it again."""

    __tablename__ = "journey_steps"
    __table_args__ = (UniqueConstraint("journey_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    journey_id: Mapped[int] = mapped_column(ForeignKey("journeys.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(40))
    position: Mapped[int]
    kind: Mapped[str] = mapped_column(String(30))
    # wait: {"days": 3}; send_template: {"template": "...", "subject": ..., "body": ...}; add_tag: {"tag_id": 1}
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # e.g. {"skip_if_introduced": true}
    conditions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    removed_at: Mapped[datetime | None]


class JourneyEnrolment(Base):
    """A member's way through one journey: where they are and when the next step is due."""

    __tablename__ = "journey_enrolments"
    __table_args__ = (
        UniqueConstraint("journey_id", "member_id"),
        Index("ix_journey_enrolments_due", "status", "next_run_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    journey_id: Mapped[int] = mapped_column(ForeignKey("journeys.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(20), default=EnrolmentStatus.ACTIVE)
    next_run_at: Mapped[datetime | None]
    # Steps whose wait has begun: {"step key": "ISO time the wait ends"}.
    waits: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    stop_reason: Mapped[str] = mapped_column(Text, default="")
    lease_until: Mapped[datetime | None]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class JourneyStepRun(Base):
    """A step taken for a member. The unique (enrolment, step key) pair is what makes a
    retried job unable to take a step twice."""

    __tablename__ = "journey_step_runs"
    __table_args__ = (UniqueConstraint("enrolment_id", "step_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    enrolment_id: Mapped[int] = mapped_column(ForeignKey("journey_enrolments.id", ondelete="CASCADE"))
    journey_id: Mapped[int] = mapped_column(ForeignKey("journeys.id", ondelete="CASCADE"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), index=True)
    step_key: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(30))
    status: Mapped[str] = mapped_column(String(20))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    ran_at: Mapped[datetime] = mapped_column(default=utcnow)
