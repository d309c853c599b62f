"""The community's own settings, edited by owners in the admin (not the operator's environment)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from cop_mail.db import Base, utcnow


class CommunitySettings(Base):
    """One row (id 1) holding a JSON document; `cop_mail.community` gives it types and defaults."""

    __tablename__ = "community_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    values: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_by: Mapped[str] = mapped_column(String(320), default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
