"""Introductions, their rounds and status changes, connections, and help topics (offers and asks)

Revision ID: 0009_connect
Revises: 0008_stories
Create Date: 2026-11-28 04:15:18.756099
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cop_mail.db

revision: str = '0009_connect'
down_revision: str | Sequence[str] | None = '0008_stories'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('help_topics',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=5), nullable=False),
    sa.Column('topic', sa.String(length=200), nullable=False),
    sa.Column('created_at', cop_mail.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_help_topics_member_id_members'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_help_topics')),
    sa.UniqueConstraint('member_id', 'kind', 'topic', name=op.f('uq_help_topics_member_id_kind_topic'))
    )
    with op.batch_alter_table('help_topics', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_help_topics_member_id'), ['member_id'], unique=False)

    op.create_table('intro_rounds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('segment_id', sa.Integer(), nullable=True),
    sa.Column('max_pairs', sa.Integer(), nullable=False),
    sa.Column('rules', cop_mail.db.JSONType(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('seed', sa.String(length=50), nullable=False),
    sa.Column('unmatched', cop_mail.db.JSONType(), nullable=False),
    sa.Column('schedule', sa.String(length=200), nullable=True),
    sa.Column('schedule_timezone', sa.String(length=64), nullable=False),
    sa.Column('next_run_at', cop_mail.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('auto_send', sa.Boolean(), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('due_at', cop_mail.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_by', sa.String(length=320), nullable=False),
    sa.Column('created_at', cop_mail.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('proposed_at', cop_mail.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('sent_at', cop_mail.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['parent_id'], ['intro_rounds.id'], name=op.f('fk_intro_rounds_parent_id_intro_rounds'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['segment_id'], ['segments.id'], name=op.f('fk_intro_rounds_segment_id_segments'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_intro_rounds')),
    sa.UniqueConstraint('parent_id', 'due_at', name=op.f('uq_intro_rounds_parent_id_due_at'))
    )
    with op.batch_alter_table('intro_rounds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_intro_rounds_next_run_at'), ['next_run_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_intro_rounds_parent_id'), ['parent_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_intro_rounds_status'), ['status'], unique=False)

    op.create_table('intros',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('round_id', sa.Integer(), nullable=True),
    sa.Column('member_a_id', sa.Integer(), nullable=False),
    sa.Column('member_b_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('score', sa.Double(), nullable=False),
    sa.Column('periphery', sa.Boolean(), nullable=False),
    sa.Column('shared_values', cop_mail.db.JSONType(), nullable=False),
    sa.Column('topics', cop_mail.db.JSONType(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('closed_reason', sa.Text(), nullable=False),
    sa.Column('a_answer', sa.String(length=10), nullable=True),
    sa.Column('a_answered_at', cop_mail.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('a_channel', sa.String(length=12), nullable=True),
    sa.Column('b_answer', sa.String(length=10), nullable=True),
    sa.Column('b_answered_at', cop_mail.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('b_channel', sa.String(length=12), nullable=True),
    sa.Column('a_followup', sa.String(length=10), nullable=True),
    sa.Column('b_followup', sa.String(length=10), nullable=True),
    sa.Column('a_thread_id', sa.String(length=300), nullable=True),
    sa.Column('b_thread_id', sa.String(length=300), nullable=True),
    sa.Column('joint_message_id', sa.String(length=300), nullable=True),
    sa.Column('created_by', sa.String(length=320), nullable=False),
    sa.Column('created_at', cop_mail.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('invited_at', cop_mail.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('reminded_at', cop_mail.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('introduced_at', cop_mail.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('followed_up_at', cop_mail.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('closed_at', cop_mail.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', cop_mail.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('member_a_id <> member_b_id', name=op.f('ck_intros_two_members')),
    sa.ForeignKeyConstraint(['member_a_id'], ['members.id'], name=op.f('fk_intros_member_a_id_members'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['member_b_id'], ['members.id'], name=op.f('fk_intros_member_b_id_members'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['round_id'], ['intro_rounds.id'], name=op.f('fk_intros_round_id_intro_rounds'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_intros'))
    )
    with op.batch_alter_table('intros', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_intros_introduced_at'), ['introduced_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_intros_joint_message_id'), ['joint_message_id'], unique=False)
        batch_op.create_index('ix_intros_member_a', ['member_a_id', 'status'], unique=False)
        batch_op.create_index('ix_intros_member_b', ['member_b_id', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_intros_round_id'), ['round_id'], unique=False)
        batch_op.create_index('ix_intros_status_invited', ['status', 'invited_at'], unique=False)

    op.create_table('connections',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_a_id', sa.Integer(), nullable=False),
    sa.Column('member_b_id', sa.Integer(), nullable=False),
    sa.Column('began_at', cop_mail.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('how', sa.String(length=20), nullable=False),
    sa.Column('intro_id', sa.Integer(), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=320), nullable=False),
    sa.Column('created_at', cop_mail.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('member_a_id < member_b_id', name=op.f('ck_connections_ordered_pair')),
    sa.ForeignKeyConstraint(['intro_id'], ['intros.id'], name=op.f('fk_connections_intro_id_intros'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['member_a_id'], ['members.id'], name=op.f('fk_connections_member_a_id_members'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['member_b_id'], ['members.id'], name=op.f('fk_connections_member_b_id_members'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_connections')),
    sa.UniqueConstraint('member_a_id', 'member_b_id', name=op.f('uq_connections_member_a_id_member_b_id'))
    )
    with op.batch_alter_table('connections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_connections_began_at'), ['began_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_connections_member_b_id'), ['member_b_id'], unique=False)

    op.create_table('intro_status_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('intro_id', sa.Integer(), nullable=False),
    sa.Column('from_status', sa.String(length=20), nullable=False),
    sa.Column('to_status', sa.String(length=20), nullable=False),
    sa.Column('actor', sa.String(length=320), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_at', cop_mail.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['intro_id'], ['intros.id'], name=op.f('fk_intro_status_changes_intro_id_intros'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_intro_status_changes'))
    )
    with op.batch_alter_table('intro_status_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_intro_status_changes_intro_id'), ['intro_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('intro_status_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_intro_status_changes_intro_id'))

    op.drop_table('intro_status_changes')
    with op.batch_alter_table('connections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_connections_member_b_id'))
        batch_op.drop_index(batch_op.f('ix_connections_began_at'))

    op.drop_table('connections')
    with op.batch_alter_table('intros', schema=None) as batch_op:
        batch_op.drop_index('ix_intros_status_invited')
        batch_op.drop_index(batch_op.f('ix_intros_round_id'))
        batch_op.drop_index('ix_intros_member_b')
        batch_op.drop_index('ix_intros_member_a')
        batch_op.drop_index(batch_op.f('ix_intros_joint_message_id'))
        batch_op.drop_index(batch_op.f('ix_intros_introduced_at'))

    op.drop_table('intros')
    with op.batch_alter_table('intro_rounds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_intro_rounds_status'))
        batch_op.drop_index(batch_op.f('ix_intro_rounds_parent_id'))
        batch_op.drop_index(batch_op.f('ix_intro_rounds_next_run_at'))

    op.drop_table('intro_rounds')
    with op.batch_alter_table('help_topics', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_help_topics_member_id'))

    op.drop_table('help_topics')
