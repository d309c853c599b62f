from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from cop_mail.db import Base, JSONType, utcnow


class ImportFile(Base):
    """An uploaded member CSV, kept (gzip) in the database so any worker machine can read it.

    Purged after a few days: it holds personal data that the members table already has.
    """

    __tablename__ = "import_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    filename: Mapped[str] = mapped_column(String(255))
    size: Mapped[int]
    encoding: Mapped[str] = mapped_column(String(30))
    delimiter: Mapped[str] = mapped_column(String(5))
    has_header: Mapped[bool] = mapped_column(default=True)
    header: Mapped[list[str]] = mapped_column(JSONType, default=list)
    row_count: Mapped[int] = mapped_column(default=0)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_by: Mapped[str] = mapped_column(String(320), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class ImportReport(Base):
    """The per-row outcome of one import run (gzip CSV), downloadable from the task page."""

    __tablename__ = "import_reports"

    task_id: Mapped[int] = mapped_column(ForeignKey("background_tasks.id", ondelete="CASCADE"), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
