from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from cop_mail.db import Base, JSONType, utcnow


class CampaignKind(StrEnum):
    NEWSLETTER = "newsletter"
    INTRO = "intro"
    ROUNDUP = "roundup"
    STORY_PROMPT = "story_prompt"
    RESOURCE_DIGEST = "resource_digest"
    TRANSACTIONAL = "transactional"


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    PAUSED = "paused"
    SENT = "sent"
    CANCELLED = "cancelled"
    FAILED = "failed"


class DeliveryStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DEFERRED = "deferred"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    UNCERTAIN = "uncertain"
    # The attention budget: held until the member's next window (next_attempt_at), or dropped
    # by the stream's setting; last_error says which budget and why.
    HELD = "held"
    DROPPED = "dropped"


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(30), default=CampaignKind.NEWSLETTER)
    name: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(String(500), default="")
    preheader: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[str] = mapped_column(String(20), default=CampaignStatus.DRAFT, index=True)
    # Everything the template needs: theme value, essay, story and resource ids, spotlight...
    content: Mapped[dict[str, Any]] = mapped_column(default=dict)
    list_ids: Mapped[list[int]] = mapped_column(JSONType, default=list)
    segment_ids: Mapped[list[int]] = mapped_column(JSONType, default=list)
    scheduled_at: Mapped[datetime | None] = mapped_column(index=True)
    schedule_timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    paused_reason: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(320), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    planned_at: Mapped[datetime | None]
    # Sending: resend rows left uncertain by a crash (a duplicate annoys more than a visible gap)
    # and the run of failed attempts that pauses the campaign when it grows too long.
    resend_uncertain: Mapped[bool] = mapped_column(default=False, server_default=false())
    consecutive_failures: Mapped[int] = mapped_column(default=0, server_default="0")
    # When the "campaign finished" notice went to the coordinator who made it (claimed before sending).
    notice_sent_at: Mapped[datetime | None]


class CampaignStatusChange(Base):
    __tablename__ = "campaign_status_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[str] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Delivery(Base):
    """One row per campaign and member: the source of truth for who got what."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("campaign_id", "member_id"),
        Index("ix_deliveries_claim", "campaign_id", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"), index=True)
    status: Mapped[str] = mapped_column(String(20), default=DeliveryStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    lease_until: Mapped[datetime | None]
    # Written (and committed) just before DATA: tells a crash mid-transmission from one before it.
    data_sent_at: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    message_id: Mapped[str | None] = mapped_column(String(300), index=True)
    smtp_code: Mapped[int | None]
    last_error: Mapped[str] = mapped_column(Text, default="")
    bounce_type: Mapped[str | None] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    # Engagement, when tracking is on: the first human open and click (machine ones are not counted).
    opened_at: Mapped[datetime | None]
    clicked_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
