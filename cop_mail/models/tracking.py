"""Opt-in engagement tracking: the links each message carried and the opens and clicks they got."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cop_mail.db import Base, utcnow


class TrackingKind(StrEnum):
    OPEN = "open"
    CLICK = "click"


class TrackedLink(Base):
    """A link as it stood in a campaign's message: a click redirect may only lead to one of these."""

    __tablename__ = "tracked_links"
    __table_args__ = (UniqueConstraint("campaign_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    position: Mapped[int]
    url: Mapped[str] = mapped_column(Text)
    label: Mapped[str] = mapped_column(String(300), default="")


class TrackingEvent(Base):
    """One open or click of one delivery. Machine events (privacy proxies, link scanners) are kept but flagged."""

    __tablename__ = "tracking_events"
    __table_args__ = (
        Index("ix_tracking_events_campaign_kind", "campaign_id", "kind"),
        Index("ix_tracking_events_delivery", "delivery_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"))
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    link_id: Mapped[int | None] = mapped_column(ForeignKey("tracked_links.id", ondelete="CASCADE"))
    machine: Mapped[bool] = mapped_column(default=False)
    machine_reason: Mapped[str] = mapped_column(String(100), default="")
    # Only a coarse client family ("Gmail image proxy", "Apple Mail privacy"), never an IP address.
    client: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
