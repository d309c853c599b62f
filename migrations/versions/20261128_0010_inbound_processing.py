"""inbound processing: sender and subject of stored messages, soft-bounce score of members

Revision ID: 0010_inbound
Revises: 0009_connect
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cop_mail.db

revision: str = "0010_inbound"
down_revision: str | Sequence[str] | None = "0009_connect"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_messages") as batch:
        batch.add_column(sa.Column("from_address", sa.String(320), nullable=False, server_default=""))
        batch.add_column(sa.Column("subject", sa.String(500), nullable=False, server_default=""))
    with op.batch_alter_table("members") as batch:
        batch.add_column(sa.Column("bounce_score", sa.Double(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("bounce_score_at", cop_mail.db.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("members") as batch:
        batch.drop_column("bounce_score_at")
        batch.drop_column("bounce_score")
    with op.batch_alter_table("inbound_messages") as batch:
        batch.drop_column("subject")
        batch.drop_column("from_address")
