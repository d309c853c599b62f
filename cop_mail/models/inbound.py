from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cop_mail.db import Base, JSONType, utcnow


class InboundStatus(StrEnum):
    RECEIVED = "received"
    PROCESSED = "processed"
    QUARANTINED = "quarantined"
    NEEDS_REVIEW = "needs_review"
    DISCARDED = "discarded"
    DUPLICATE = "duplicate"


class InboundMessage(Base):
    """Every accepted message, stored raw and committed before it is parsed."""

    __tablename__ = "inbound_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    source: Mapped[str] = mapped_column(String(20), default="smtp")  # smtp, lmtp, webhook, imap
    envelope_from: Mapped[str] = mapped_column(String(500), default="")
    envelope_to: Mapped[list[str]] = mapped_column(JSONType, default=list)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(default=0)
    message_id: Mapped[str | None] = mapped_column(String(500), index=True)
    from_address: Mapped[str] = mapped_column(String(320), default="")
    subject: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[str] = mapped_column(String(20), default=InboundStatus.RECEIVED, index=True)
    classification: Mapped[str | None] = mapped_column(String(30))
    reason: Mapped[str] = mapped_column(Text, default="")
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"), index=True)
    subject_kind: Mapped[str | None] = mapped_column(String(30))
    subject_id: Mapped[int | None]
    intent: Mapped[str | None] = mapped_column(String(30))
    attempts: Mapped[int] = mapped_column(default=0)
    processed_at: Mapped[datetime | None]
