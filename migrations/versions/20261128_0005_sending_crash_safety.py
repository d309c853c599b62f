"""sending: data_sent marker on deliveries, resend_uncertain and failure run on campaigns

Revision ID: 0005_sending
Revises: 0001
Create Date: 2026-11-28 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cop_mail.db

revision: str = "0005_sending"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("resend_uncertain", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("consecutive_failures", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("data_sent_at", cop_mail.db.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("data_sent_at")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("consecutive_failures")
        batch_op.drop_column("resend_uncertain")
