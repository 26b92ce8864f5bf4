"""An event's plan of OpenStreetMap changes and its changeset settings

Revision ID: e2c4a6b8d0f1
Revises: d7a1c3e5f9b4
Create Date: 2026-12-02 02:00:00

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = 'e2c4a6b8d0f1'
down_revision = 'd7a1c3e5f9b4'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'osm_plan',
        sa.Column('event_id', sa.Integer(), sa.ForeignKey('event.id', ondelete='CASCADE'),
                  primary_key=True),
        sa.Column('built_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('built_by', sa.String(300), nullable=True),
        sa.Column('base', sa.String(8), nullable=True),
        sa.Column('base_error_detail', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column('comment', sa.String(255), server_default='', nullable=False),
        sa.Column('hashtags', sa.String(255), server_default='', nullable=False),
        sa.Column('wiki_page', sa.String(255), server_default='', nullable=False),
        sa.Column('mark_checked', sa.Boolean(), server_default=sa.text('false'), nullable=False),
        sa.Column('max_changes', sa.Integer(), server_default='1000', nullable=False),
        sa.Column('max_size', sa.Float(), server_default='0.05', nullable=False),
        sa.CheckConstraint("base IN ('api', 'stored')", name='osm_plan_base'),
        sa.CheckConstraint('max_changes BETWEEN 1 AND 10000', name='osm_plan_max_changes'),
        sa.CheckConstraint('max_size > 0 AND max_size <= 1', name='osm_plan_max_size'),
    )
    op.create_table(
        'osm_change',
        sa.Column('id', sa.BigInteger(), primary_key=True),
        sa.Column('event_id', sa.Integer(), sa.ForeignKey('event.id', ondelete='CASCADE'),
                  nullable=False),
        sa.Column('key', sa.String(60), nullable=False),
        sa.Column('action', sa.String(8), nullable=False),
        sa.Column('osm_type', sa.String(8), nullable=True),
        sa.Column('osm_id', sa.BigInteger(), nullable=True),
        sa.Column('base_version', sa.Integer(), nullable=True),
        sa.Column('lat', sa.Float(), nullable=False),
        sa.Column('lon', sa.Float(), nullable=False),
        sa.Column('tags_before', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('tags_after', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('diff', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('conflicts', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('element', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column('submission_ids', postgresql.ARRAY(sa.BigInteger()), nullable=False),
        sa.Column('reason', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column('held_by', sa.String(300), nullable=True),
        sa.CheckConstraint("action IN ('create', 'modify', 'held')", name='osm_change_action'),
    )
    op.create_index('osm_change_event_key', 'osm_change', ['event_id', 'key'], unique=True)


def downgrade():
    op.drop_index('osm_change_event_key', table_name='osm_change')
    op.drop_table('osm_change')
    op.drop_table('osm_plan')
