"""audience: member email hash (suppression in SQL), uploaded import files and their reports

Revision ID: 0006_audience_import
Revises: 0005_sending
Create Date: 2026-11-28 04:02:18
"""

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cop_mail.db

revision: str = "0006_audience_import"
down_revision: str | Sequence[str] | None = "0005_sending"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "import_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("encoding", sa.String(length=30), nullable=False),
        sa.Column("delimiter", sa.String(length=5), nullable=False),
        sa.Column("has_header", sa.Boolean(), nullable=False),
        sa.Column("header", cop_mail.db.JSONType(), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_by", sa.String(length=320), nullable=False),
        sa.Column("created_at", cop_mail.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_files")),
    )
    with op.batch_alter_table("import_files", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_import_files_created_at"), ["created_at"], unique=False)

    op.create_table(
        "import_reports",
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", cop_mail.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["background_tasks.id"],
            name=op.f("fk_import_reports_task_id_background_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_import_reports")),
    )
    with op.batch_alter_table("import_reports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_import_reports_created_at"), ["created_at"], unique=False)

    # Nullable first, filled from the addresses already stored, then required.
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email_hash", sa.String(length=64), nullable=True))
    _fill_email_hashes()
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.alter_column("email_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_index(batch_op.f("ix_members_email_hash"), ["email_hash"], unique=False)


def _fill_email_hashes() -> None:
    # The same digest as cop_mail.tokens.address_hash, written out so this revision never changes meaning.
    connection = op.get_bind()
    members = sa.table("members", sa.column("id", sa.Integer), sa.column("email", sa.String), sa.column("email_hash"))
    rows = connection.execute(sa.select(members.c.id, members.c.email)).all()
    update = members.update().where(members.c.id == sa.bindparam("b_id")).values(email_hash=sa.bindparam("b_hash"))
    for start in range(0, len(rows), 5000):
        chunk = rows[start : start + 5000]
        connection.execute(
            update,
            [{"b_id": id_, "b_hash": hashlib.sha256(email.strip().lower().encode()).hexdigest()} for id_, email in chunk],
        )


def downgrade() -> None:
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_members_email_hash"))
        batch_op.drop_column("email_hash")

    with op.batch_alter_table("import_reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_import_reports_created_at"))
    op.drop_table("import_reports")
    with op.batch_alter_table("import_files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_import_files_created_at"))
    op.drop_table("import_files")
