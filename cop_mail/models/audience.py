from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, ForeignKey, Index, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from cop_mail.db import Base, utcnow
from cop_mail.tokens import address_hash


class MemberStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    ERASED = "erased"


# Statuses that no import or signup may turn back into "active".
BLOCKED_STATUSES = frozenset(
    {MemberStatus.UNSUBSCRIBED, MemberStatus.BOUNCED, MemberStatus.COMPLAINED, MemberStatus.ERASED}
)


class Stream(StrEnum):
    """The mail streams a member can turn on or off, one per kind of community work."""

    NEWSLETTERS = "newsletters"
    INTROS = "intros"
    ROUNDUPS = "roundups"
    RESOURCES = "resources"
    TRANSACTIONAL = "transactional"


class OptIn(StrEnum):
    SINGLE = "single"
    DOUBLE = "double"


member_values = Table(
    "member_values",
    Base.metadata,
    Column("member_id", ForeignKey("members.id", ondelete="CASCADE"), primary_key=True),
    Column("value_id", ForeignKey("values.id", ondelete="CASCADE"), primary_key=True, index=True),
)
member_practices = Table(
    "member_practices",
    Base.metadata,
    Column("member_id", ForeignKey("members.id", ondelete="CASCADE"), primary_key=True),
    Column("practice_id", ForeignKey("practices.id", ondelete="CASCADE"), primary_key=True, index=True),
)
member_tags = Table(
    "member_tags",
    Base.metadata,
    Column("member_id", ForeignKey("members.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True, index=True),
)


def _email_hash_default(context: Any) -> str:
    return address_hash(context.get_current_parameters()["email"])


class Member(Base):
    __tablename__ = "members"
    __table_args__ = (Index("ix_members_status_joined", "status", "joined_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    # address_hash(email), so the suppression list (hashes only) applies inside SQL audience queries.
    email_hash: Mapped[str] = mapped_column(String(64), default=_email_hash_default, index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    preferred_name: Mapped[str] = mapped_column(String(200), default="")
    locale: Mapped[str] = mapped_column(String(20), default="en", index=True)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    location: Mapped[str] = mapped_column(String(200), default="", index=True)
    status: Mapped[str] = mapped_column(String(20), default=MemberStatus.ACTIVE)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    joined_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # Stream preferences: on unless the member turned them off.
    wants_newsletters: Mapped[bool] = mapped_column(default=True)
    wants_intros: Mapped[bool] = mapped_column(default=True)
    intro_cadence_weeks: Mapped[int | None] = mapped_column(default=4)
    wants_roundups: Mapped[bool] = mapped_column(default=True)
    wants_resources: Mapped[bool] = mapped_column(default=True)
    paused_until: Mapped[datetime | None]
    # Kept up to date by the code that records the events, so segments stay one cheap query.
    last_engaged_at: Mapped[datetime | None] = mapped_column(index=True)
    connections_count: Mapped[int] = mapped_column(default=0, index=True)
    last_introduced_at: Mapped[datetime | None]
    # Soft bounces add to a score that decays; at a threshold the address is suppressed.
    bounce_score: Mapped[float] = mapped_column(default=0.0)
    bounce_score_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    values: Mapped[list[Value]] = relationship(secondary=member_values, lazy="selectin")
    practices: Mapped[list[Practice]] = relationship(secondary=member_practices, lazy="selectin")
    tags: Mapped[list[Tag]] = relationship(secondary=member_tags, lazy="selectin")

    @validates("email")
    def _keep_email_hash(self, _key: str, email: str) -> str:
        self.email_hash = address_hash(email)
        return email

    @property
    def display_name(self) -> str:
        return self.preferred_name or self.name or self.email.split("@", 1)[0]

    @property
    def first_name(self) -> str:
        return (self.preferred_name or self.name).split(" ", 1)[0] if (self.preferred_name or self.name) else ""


class Value(Base):
    """A value the community names as shared; newsletters take one as their theme."""

    __tablename__ = "values"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    colour: Mapped[str] = mapped_column(String(7), default="#2f6f4f")
    position: Mapped[int] = mapped_column(default=0)


class Practice(Base):
    """What members do: the varied ways they put the shared values into practice."""

    __tablename__ = "practices"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")


class Tag(Base):
    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)


class MailingList(Base):
    __tablename__ = "lists"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    opt_in: Mapped[str] = mapped_column(String(10), default=OptIn.DOUBLE)
    public: Mapped[bool] = mapped_column(default=False)
    form_wording: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ListMembership(Base):
    __tablename__ = "list_memberships"
    __table_args__ = (UniqueConstraint("list_id", "member_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="subscribed")  # pending, subscribed, unsubscribed
    source: Mapped[str] = mapped_column(String(50), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    confirmed_at: Mapped[datetime | None]
    unsubscribed_at: Mapped[datetime | None]


class Suppression(Base):
    """Addresses never to mail again, stored as hashes so erasure keeps them suppressed."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64), unique=True)
    reason: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConsentEvent(Base):
    """Every consent given or withdrawn, with its time, source and the wording shown."""

    __tablename__ = "consent_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"), index=True)
    kind: Mapped[str] = mapped_column(String(50))
    stream: Mapped[str | None] = mapped_column(String(20))
    list_id: Mapped[int | None] = mapped_column(ForeignKey("lists.id", ondelete="SET NULL"))
    wording: Mapped[str] = mapped_column(Text, default="")
    ip: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MemberEvent(Base):
    """A member's timeline: replies, accepted intros, stories, clicks, preference changes."""

    __tablename__ = "member_events"
    __table_args__ = (Index("ix_member_events_member_created", "member_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(50), index=True)
    explicit: Mapped[bool] = mapped_column(default=False)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Segment(Base):
    """A saved rule set (nested AND/OR groups) compiled to one SQL query."""

    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    rules: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
