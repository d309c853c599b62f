"""The resource library: methods, tools, readings, templates and mentors that work."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, ForeignKey, Index, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cop_mail.db import Base, utcnow
from cop_mail.models.audience import Practice, Value


class ResourceKind(StrEnum):
    METHOD = "method"
    TOOL = "tool"
    READING = "reading"
    TEMPLATE = "template"
    MENTOR = "mentor"


class ResourceStatus(StrEnum):
    PENDING = "pending"  # suggested by a member, waiting for a coordinator
    PUBLISHED = "published"
    REJECTED = "rejected"


resource_values = Table(
    "resource_values",
    Base.metadata,
    Column("resource_id", ForeignKey("resources.id", ondelete="CASCADE"), primary_key=True),
    Column("value_id", ForeignKey("values.id", ondelete="CASCADE"), primary_key=True, index=True),
)
resource_practices = Table(
    "resource_practices",
    Base.metadata,
    Column("resource_id", ForeignKey("resources.id", ondelete="CASCADE"), primary_key=True),
    Column("practice_id", ForeignKey("practices.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Resource(Base):
    __tablename__ = "resources"
    __table_args__ = (Index("ix_resources_status_kind", "status", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), default=ResourceKind.METHOD)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")  # Markdown
    description_html: Mapped[str] = mapped_column(Text, default="")  # sanitised once on save
    url: Mapped[str] = mapped_column(String(2000), default="")
    # For mentors who are members: the introductions feature can connect them.
    mentor_member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"))
    # Lower-cased title, description and tag names: one LIKE on both databases.
    search_text: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default=ResourceStatus.PUBLISHED)
    contributed_by_member_id: Mapped[int | None] = mapped_column(
        ForeignKey("members.id", ondelete="SET NULL"), index=True
    )
    contributed_by_admin: Mapped[str] = mapped_column(String(320), default="")
    moderation_note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    values: Mapped[list[Value]] = relationship(secondary=resource_values, lazy="selectin", order_by=Value.position)
    practices: Mapped[list[Practice]] = relationship(
        secondary=resource_practices, lazy="selectin", order_by=Practice.name
    )
