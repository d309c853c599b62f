from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, String, true
from sqlalchemy.orm import Mapped, mapped_column

from cop_mail.db import Base, utcnow


class Role(StrEnum):
    VIEWER = "viewer"
    COORDINATOR = "coordinator"
    OWNER = "owner"

    @property
    def rank(self) -> int:
        return {"viewer": 0, "coordinator": 1, "owner": 2}[self.value]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


class Admin(Base):
    """A coordinator account for the web admin."""

    __tablename__ = "admins"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(20), default=Role.COORDINATOR)
    active: Mapped[bool] = mapped_column(default=True)
    # Email me when my campaign finishes or my import is done.
    email_notices: Mapped[bool] = mapped_column(default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]


class AuditEvent(Base):
    """Who did what, when: every admin action that changes state."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    admin_id: Mapped[int | None] = mapped_column(ForeignKey("admins.id", ondelete="SET NULL"), index=True)
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(100), index=True)
    target: Mapped[str] = mapped_column(String(200), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    ip: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
