"""Stories (values, images), roundups and their schedules, the resource library

Revision ID: 0008_stories
Revises: 0006_audience_import
Create Date: 2026-11-28 04:04:12.562101
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import cop_mail.db

revision: str = '0008_stories'
down_revision: str | Sequence[str] | None = '0006_audience_import'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = cop_mail.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table('roundup_schedules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('frequency', sa.String(length=10), nullable=False),
    sa.Column('weekday', sa.Integer(), nullable=False),
    sa.Column('nth', sa.Integer(), nullable=False),
    sa.Column('hour', sa.Integer(), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=500), nullable=False),
    sa.Column('list_ids', cop_mail.db.JSONType(), nullable=False),
    sa.Column('segment_ids', cop_mail.db.JSONType(), nullable=False),
    sa.Column('send_automatically', sa.Boolean(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('next_run_at', UTC, nullable=True),
    sa.Column('created_by', sa.String(length=320), nullable=False),
    sa.Column('created_at', UTC, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_roundup_schedules'))
    )
    with op.batch_alter_table('roundup_schedules', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_roundup_schedules_next_run_at'), ['next_run_at'], unique=False)

    op.create_table('resources',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('description_html', sa.Text(), nullable=False),
    sa.Column('url', sa.String(length=2000), nullable=False),
    sa.Column('mentor_member_id', sa.Integer(), nullable=True),
    sa.Column('search_text', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('contributed_by_member_id', sa.Integer(), nullable=True),
    sa.Column('contributed_by_admin', sa.String(length=320), nullable=False),
    sa.Column('moderation_note', sa.Text(), nullable=False),
    sa.Column('created_at', UTC, nullable=False),
    sa.Column('published_at', UTC, nullable=True),
    sa.Column('updated_at', UTC, nullable=False),
    sa.ForeignKeyConstraint(['contributed_by_member_id'], ['members.id'], name=op.f('fk_resources_contributed_by_member_id_members'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['mentor_member_id'], ['members.id'], name=op.f('fk_resources_mentor_member_id_members'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_resources'))
    )
    with op.batch_alter_table('resources', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_resources_contributed_by_member_id'), ['contributed_by_member_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_resources_published_at'), ['published_at'], unique=False)
        batch_op.create_index('ix_resources_status_kind', ['status', 'kind'], unique=False)

    op.create_table('roundups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('hand_picked', sa.Boolean(), nullable=False),
    sa.Column('since', UTC, nullable=True),
    sa.Column('until', UTC, nullable=False),
    sa.Column('story_ids', cop_mail.db.JSONType(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=True),
    sa.Column('schedule_id', sa.Integer(), nullable=True),
    sa.Column('due_on', sa.Date(), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=320), nullable=False),
    sa.Column('created_at', UTC, nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_roundups_campaign_id_campaigns'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['schedule_id'], ['roundup_schedules.id'], name=op.f('fk_roundups_schedule_id_roundup_schedules'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_roundups')),
    sa.UniqueConstraint('campaign_id', name=op.f('uq_roundups_campaign_id')),
    sa.UniqueConstraint('schedule_id', 'due_on', name=op.f('uq_roundups_schedule_id_due_on'))
    )
    with op.batch_alter_table('roundups', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_roundups_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_roundups_status'), ['status'], unique=False)

    op.create_table('resource_practices',
    sa.Column('resource_id', sa.Integer(), nullable=False),
    sa.Column('practice_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['practice_id'], ['practices.id'], name=op.f('fk_resource_practices_practice_id_practices'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['resource_id'], ['resources.id'], name=op.f('fk_resource_practices_resource_id_resources'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('resource_id', 'practice_id', name=op.f('pk_resource_practices'))
    )
    with op.batch_alter_table('resource_practices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_resource_practices_practice_id'), ['practice_id'], unique=False)

    op.create_table('resource_values',
    sa.Column('resource_id', sa.Integer(), nullable=False),
    sa.Column('value_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['resource_id'], ['resources.id'], name=op.f('fk_resource_values_resource_id_resources'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['value_id'], ['values.id'], name=op.f('fk_resource_values_value_id_values'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('resource_id', 'value_id', name=op.f('pk_resource_values'))
    )
    with op.batch_alter_table('resource_values', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_resource_values_value_id'), ['value_id'], unique=False)

    op.create_table('stories',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('body_html', sa.Text(), nullable=False),
    sa.Column('practice_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=30), nullable=False),
    sa.Column('source', sa.String(length=10), nullable=False),
    sa.Column('consent', sa.String(length=20), nullable=False),
    sa.Column('consent_recorded_at', UTC, nullable=True),
    sa.Column('shared_as', sa.String(length=20), nullable=True),
    sa.Column('featured', sa.Boolean(), nullable=False),
    sa.Column('featured_at', UTC, nullable=True),
    sa.Column('proposed_title', sa.String(length=200), nullable=True),
    sa.Column('proposed_body', sa.Text(), nullable=True),
    sa.Column('proposed_consent', sa.String(length=20), nullable=True),
    sa.Column('proposal_version', sa.Integer(), nullable=False),
    sa.Column('proposal_note', sa.Text(), nullable=False),
    sa.Column('rejection_note', sa.Text(), nullable=False),
    sa.Column('intake_note', sa.Text(), nullable=False),
    sa.Column('moderated_by', sa.String(length=320), nullable=False),
    sa.Column('inbound_message_id', sa.Integer(), nullable=True),
    sa.Column('prompt_campaign_id', sa.Integer(), nullable=True),
    sa.Column('created_at', UTC, nullable=False),
    sa.Column('submitted_at', UTC, nullable=True),
    sa.Column('approved_at', UTC, nullable=True),
    sa.Column('withdrawn_at', UTC, nullable=True),
    sa.Column('updated_at', UTC, nullable=False),
    sa.ForeignKeyConstraint(['author_id'], ['members.id'], name=op.f('fk_stories_author_id_members'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['inbound_message_id'], ['inbound_messages.id'], name=op.f('fk_stories_inbound_message_id_inbound_messages'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['practice_id'], ['practices.id'], name=op.f('fk_stories_practice_id_practices'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['prompt_campaign_id'], ['campaigns.id'], name=op.f('fk_stories_prompt_campaign_id_campaigns'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stories'))
    )
    with op.batch_alter_table('stories', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_stories_author_id'), ['author_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_stories_featured'), ['featured'], unique=False)
        batch_op.create_index('ix_stories_status_approved', ['status', 'approved_at'], unique=False)

    op.create_table('story_images',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('story_id', sa.Integer(), nullable=False),
    sa.Column('stored_name', sa.String(length=100), nullable=False),
    sa.Column('original_name', sa.String(length=255), nullable=False),
    sa.Column('content_type', sa.String(length=50), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('width', sa.Integer(), nullable=True),
    sa.Column('height', sa.Integer(), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('alt_text', sa.String(length=300), nullable=False),
    sa.Column('created_at', UTC, nullable=False),
    sa.ForeignKeyConstraint(['story_id'], ['stories.id'], name=op.f('fk_story_images_story_id_stories'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_story_images')),
    sa.UniqueConstraint('stored_name', name=op.f('uq_story_images_stored_name'))
    )
    with op.batch_alter_table('story_images', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_story_images_story_id'), ['story_id'], unique=False)

    op.create_table('story_values',
    sa.Column('story_id', sa.Integer(), nullable=False),
    sa.Column('value_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['story_id'], ['stories.id'], name=op.f('fk_story_values_story_id_stories'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['value_id'], ['values.id'], name=op.f('fk_story_values_value_id_values'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('story_id', 'value_id', name=op.f('pk_story_values'))
    )
    with op.batch_alter_table('story_values', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_story_values_value_id'), ['value_id'], unique=False)


def downgrade() -> None:
    for table in ('story_values', 'story_images', 'stories', 'resource_values', 'resource_practices', 'roundups',
                  'resources', 'roundup_schedules'):
        op.drop_table(table)
