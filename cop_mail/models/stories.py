"""Stories members tell, their images, and the roundups that gather them."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Column, ForeignKey, Index, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cop_mail.db import Base, JSONType, utcnow
from cop_mail.models.audience import Value


class StoryStatus(StrEnum):
    DRAFT = "draft"  # a reply to a story prompt, not yet sent in by its author
    SUBMITTED = "submitted"  # waiting for a coordinator
    PENDING_AUTHOR_CONFIRMATION = "pending_author_confirmation"  # an edit or wider sharing awaits the author
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"  # the author took their consent back


class StoryConsent(StrEnum):
    """How widely the author lets the story be shared; chosen by the author, never by a coordinator."""

    MEMBERS_ONLY = "members_only"
    PUBLIC = "public"
    PUBLIC_ANONYMOUS = "public_anonymous"

    @property
    def is_public(self) -> bool:
        return self is not StoryConsent.MEMBERS_ONLY


# From the narrowest sharing to the widest.
CONSENT_ORDER = (StoryConsent.MEMBERS_ONLY, StoryConsent.PUBLIC_ANONYMOUS, StoryConsent.PUBLIC)


class StorySource(StrEnum):
    WEB = "web"
    EMAIL = "email"
    PROMPT = "prompt"  # a reply to a story prompt campaign


story_values = Table(
    "story_values",
    Base.metadata,
    Column("story_id", ForeignKey("stories.id", ondelete="CASCADE"), primary_key=True),
    Column("value_id", ForeignKey("values.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Story(Base):
    __tablename__ = "stories"
    __table_args__ = (Index("ix_stories_status_approved", "status", "approved_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")  # Markdown as the author (or a confirmed edit) wrote it
    body_html: Mapped[str] = mapped_column(Text, default="")  # sanitised once on save, served as is
    practice_id: Mapped[int | None] = mapped_column(ForeignKey("practices.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(30), default=StoryStatus.SUBMITTED)
    source: Mapped[str] = mapped_column(String(10), default=StorySource.WEB)
    consent: Mapped[str] = mapped_column(String(20), default=StoryConsent.MEMBERS_ONLY)
    # Set only by the author's own act (form, email line, confirm link): nothing is public without it.
    consent_recorded_at: Mapped[datetime | None]
    # A coordinator may share less widely than the author allowed (never more): None = as the author chose.
    shared_as: Mapped[str | None] = mapped_column(String(20))
    featured: Mapped[bool] = mapped_column(default=False, index=True)
    featured_at: Mapped[datetime | None]
    # A coordinator's edit (or a wider sharing level) waiting for the author; version binds the link.
    proposed_title: Mapped[str | None] = mapped_column(String(200))
    proposed_body: Mapped[str | None] = mapped_column(Text)
    proposed_consent: Mapped[str | None] = mapped_column(String(20))
    proposal_version: Mapped[int] = mapped_column(default=0)
    proposal_note: Mapped[str] = mapped_column(Text, default="")
    rejection_note: Mapped[str] = mapped_column(Text, default="")
    # What happened on the way in (pictures refused, a sharing line read), for the coordinator.
    intake_note: Mapped[str] = mapped_column(Text, default="")
    moderated_by: Mapped[str] = mapped_column(String(320), default="")
    inbound_message_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id", ondelete="SET NULL"))
    prompt_campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    submitted_at: Mapped[datetime | None]
    approved_at: Mapped[datetime | None]
    withdrawn_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    values: Mapped[list[Value]] = relationship(secondary=story_values, lazy="selectin", order_by=Value.position)
    images: Mapped[list[StoryImage]] = relationship(
        back_populates="story", lazy="selectin", order_by="StoryImage.id", cascade="all, delete-orphan"
    )

    @property
    def sharing(self) -> StoryConsent:
        """How widely the story is shared: the author's choice, narrowed by a coordinator's."""
        chosen = StoryConsent(self.consent)
        if self.shared_as is None:
            return chosen
        narrowed = StoryConsent(self.shared_as)
        return min(chosen, narrowed, key=list(CONSENT_ORDER).index)

    @property
    def is_public(self) -> bool:
        return self.status == StoryStatus.APPROVED and self.sharing.is_public and self.consent_recorded_at is not None

    @property
    def shows_author_name(self) -> bool:
        return self.sharing != StoryConsent.PUBLIC_ANONYMOUS


class StoryImage(Base):
    """An uploaded picture, kept as a file under the instance folder; the row holds what was checked."""

    __tablename__ = "story_images"

    id: Mapped[int] = mapped_column(primary_key=True)
    story_id: Mapped[int] = mapped_column(ForeignKey("stories.id", ondelete="CASCADE"), index=True)
    stored_name: Mapped[str] = mapped_column(String(100), unique=True)
    original_name: Mapped[str] = mapped_column(String(255), default="")
    content_type: Mapped[str] = mapped_column(String(50))
    size: Mapped[int]
    width: Mapped[int | None]
    height: Mapped[int | None]
    sha256: Mapped[str] = mapped_column(String(64))
    alt_text: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    story: Mapped[Story] = relationship(back_populates="images")


class RoundupStatus(StrEnum):
    COMPILED = "compiled"  # has stories and a campaign; the campaign's status says where it is
    SKIPPED = "skipped"  # nothing new to tell: never sent empty, and the coordinator is told why


class Roundup(Base):
    __tablename__ = "roundups"
    __table_args__ = (UniqueConstraint("schedule_id", "due_on"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default=RoundupStatus.COMPILED, index=True)
    hand_picked: Mapped[bool] = mapped_column(default=False)
    since: Mapped[datetime | None]  # approved stories after this time; None = from the beginning
    until: Mapped[datetime]
    story_ids: Mapped[list[int]] = mapped_column(JSONType, default=list)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"), unique=True)
    schedule_id: Mapped[int | None] = mapped_column(ForeignKey("roundup_schedules.id", ondelete="SET NULL"))
    due_on: Mapped[date | None]  # the scheduled day this roundup is for: one per schedule and day
    note: Mapped[str] = mapped_column(Text, default="")  # why it was skipped, in plain words
    created_by: Mapped[str] = mapped_column(String(320), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class RoundupFrequency(StrEnum):
    MONTHLY = "monthly"  # the nth weekday of the month, e.g. the first Monday
    WEEKLY = "weekly"


class RoundupSchedule(Base):
    """A recurring roundup, e.g. the first Monday of each month at 09:00 Europe/Lisbon."""

    __tablename__ = "roundup_schedules"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    frequency: Mapped[str] = mapped_column(String(10), default=RoundupFrequency.MONTHLY)
    weekday: Mapped[int] = mapped_column(default=0)  # Monday = 0
    nth: Mapped[int] = mapped_column(default=1)  # 1-4 for that week of the month, -1 for the last
    hour: Mapped[int] = mapped_column(default=9)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    subject: Mapped[str] = mapped_column(String(500), default="")
    list_ids: Mapped[list[int]] = mapped_column(JSONType, default=list)
    segment_ids: Mapped[list[int]] = mapped_column(JSONType, default=list)
    send_automatically: Mapped[bool] = mapped_column(default=True)  # else the roundup waits as a draft
    active: Mapped[bool] = mapped_column(default=True)
    next_run_at: Mapped[datetime | None] = mapped_column(index=True)
    created_by: Mapped[str] = mapped_column(String(320), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
