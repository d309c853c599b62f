"""Introductions between members, the rounds that propose them, the connections they make,
and what members offer and ask for help with (mentor rounds)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cop_mail.db import Base, JSONType, utcnow


class IntroKind(StrEnum):
    PEER = "peer"
    MENTOR = "mentor"


class IntroStatus(StrEnum):
    PROPOSED = "proposed"  # in a round under review; nobody has been asked yet
    INVITED = "invited"  # both asked privately
    ACCEPTED_A = "accepted_a"  # A said yes; waiting for B
    ACCEPTED_B = "accepted_b"
    INTRODUCED = "introduced"  # both said yes: the joint email went out
    MET = "met"
    NOT_MET = "not_met"
    DECLINED = "declined"  # one side said no (or not now); never shown to the other
    EXPIRED = "expired"  # no answer after the reminder
    CANCELLED = "cancelled"  # removed in review, or a member left introductions before it completed


# An invitation is open (answers count) in these statuses.
OPEN_STATUSES = (IntroStatus.INVITED, IntroStatus.ACCEPTED_A, IntroStatus.ACCEPTED_B)
CLOSED_STATUSES = (IntroStatus.DECLINED, IntroStatus.EXPIRED, IntroStatus.CANCELLED)


class IntroAnswer(StrEnum):
    ACCEPT = "accept"
    DECLINE = "decline"
    LATER = "later"  # "not now": closes this introduction without a no


class FollowupAnswer(StrEnum):
    MET = "met"
    NOT_MET = "not_met"
    SKIP = "skip"


class AnswerChannel(StrEnum):
    REPLY = "reply"  # an email reply through the reply+<token> address
    LINK = "link"  # the button on the signed page
    COORDINATOR = "coordinator"  # marked by a coordinator (e.g. from the inbox)


class Intro(Base):
    """One proposed introduction between two members, and where its consent stands."""

    __tablename__ = "intros"
    __table_args__ = (
        CheckConstraint("member_a_id <> member_b_id", name="two_members"),
        Index("ix_intros_status_invited", "status", "invited_at"),
        Index("ix_intros_member_a", "member_a_id", "status"),
        Index("ix_intros_member_b", "member_b_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), default=IntroKind.PEER)
    round_id: Mapped[int | None] = mapped_column(ForeignKey("intro_rounds.id", ondelete="SET NULL"), index=True)
    # In mentor introductions A asked for help and B offered it.
    member_a_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    member_b_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(20), default=IntroStatus.PROPOSED)
    # Why this pair, in plain words for the coordinator (from matching, or "chosen by hand").
    reason: Mapped[str] = mapped_column(Text, default="")
    score: Mapped[float] = mapped_column(default=0.0)
    periphery: Mapped[bool] = mapped_column(default=False)
    shared_values: Mapped[list[str]] = mapped_column(JSONType, default=list)
    topics: Mapped[list[str]] = mapped_column(JSONType, default=list)
    note: Mapped[str] = mapped_column(Text, default="")  # the coordinator's words for both members
    # Why it ended (declined, expired, cancelled): for coordinators only, never sent to the other member.
    closed_reason: Mapped[str] = mapped_column(Text, default="")
    a_answer: Mapped[str | None] = mapped_column(String(10))
    a_answered_at: Mapped[datetime | None]
    a_channel: Mapped[str | None] = mapped_column(String(12))
    b_answer: Mapped[str | None] = mapped_column(String(10))
    b_answered_at: Mapped[datetime | None]
    b_channel: Mapped[str | None] = mapped_column(String(12))
    a_followup: Mapped[str | None] = mapped_column(String(10))
    b_followup: Mapped[str | None] = mapped_column(String(10))
    # Message-IDs: each member's invitation starts their private thread; the joint email starts theirs.
    a_thread_id: Mapped[str | None] = mapped_column(String(300))
    b_thread_id: Mapped[str | None] = mapped_column(String(300))
    joint_message_id: Mapped[str | None] = mapped_column(String(300), index=True)
    created_by: Mapped[str] = mapped_column(String(320), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    invited_at: Mapped[datetime | None]
    reminded_at: Mapped[datetime | None]
    introduced_at: Mapped[datetime | None] = mapped_column(index=True)
    followed_up_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def side_of(self, member_id: int) -> str | None:
        """'a', 'b', or None when the member is not part of this introduction."""
        if member_id == self.member_a_id:
            return "a"
        if member_id == self.member_b_id:
            return "b"
        return None

    def other_id(self, member_id: int) -> int:
        return self.member_b_id if member_id == self.member_a_id else self.member_a_id


class IntroStatusChange(Base):
    __tablename__ = "intro_status_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    intro_id: Mapped[int] = mapped_column(ForeignKey("intros.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[str] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(320))  # "member:12 by reply", an admin's email, "system"
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RoundStatus(StrEnum):
    DRAFT = "draft"
    REVIEWING = "reviewing"  # proposals made; the coordinator swaps, removes and adds
    SENDING = "sending"
    SENT = "sent"


class IntroRound(Base):
    """A round of introductions over a segment. A round with a schedule is also the template
    its recurring rounds are copied from (`parent_id` on each copy)."""

    __tablename__ = "intro_rounds"
    __table_args__ = (UniqueConstraint("parent_id", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(10), default=IntroKind.PEER)
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id", ondelete="SET NULL"))
    max_pairs: Mapped[int] = mapped_column(default=20)
    # Constraints: same_language, same_location, timezone_window_hours, never_pairs [[a, b], ...].
    rules: Mapped[dict[str, Any]] = mapped_column(default=dict)
    note: Mapped[str] = mapped_column(Text, default="")  # the coordinator's words in every invitation
    status: Mapped[str] = mapped_column(String(12), default=RoundStatus.DRAFT, index=True)
    seed: Mapped[str] = mapped_column(String(50), default="0")
    # Who could not be paired and why: [{"member_id": 3, "reason": "cadence"}, ...].
    unmatched: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    # Recurring: an RFC 5545 RRULE such as "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO;BYHOUR=9", in schedule_timezone.
    schedule: Mapped[str | None] = mapped_column(String(200))
    schedule_timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    next_run_at: Mapped[datetime | None] = mapped_column(index=True)
    auto_send: Mapped[bool] = mapped_column(default=False)  # else each recurring round waits for review
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("intro_rounds.id", ondelete="SET NULL"), index=True)
    due_at: Mapped[datetime | None]  # the scheduled time a recurring copy was made for
    created_by: Mapped[str] = mapped_column(String(320), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    proposed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]


class ConnectionHow(StrEnum):
    INTRODUCTION = "introduction"
    COORDINATOR = "coordinator"
    OTHER = "other"


class Connection(Base):
    """An edge of the community's web: two members who know each other, since when and how."""

    __tablename__ = "connections"
    __table_args__ = (
        UniqueConstraint("member_a_id", "member_b_id"),
        CheckConstraint("member_a_id < member_b_id", name="ordered_pair"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_a_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    member_b_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), index=True)
    began_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    how: Mapped[str] = mapped_column(String(20), default=ConnectionHow.INTRODUCTION)
    intro_id: Mapped[int | None] = mapped_column(ForeignKey("intros.id", ondelete="SET NULL"))
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(320), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class HelpTopicKind(StrEnum):
    OFFER = "offer"
    ASK = "ask"


class HelpTopic(Base):
    """Something a member offers help with, or asks for help with (mentor introductions)."""

    __tablename__ = "help_topics"
    __table_args__ = (UniqueConstraint("member_id", "kind", "topic"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(5))
    topic: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
