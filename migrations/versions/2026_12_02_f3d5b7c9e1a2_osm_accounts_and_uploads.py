"""OSM accounts linked by organisers, uploads and their changeset log, and where each
submission is in OSM once uploaded

Revision ID: f3d5b7c9e1a2
Revises: e2c4a6b8d0f1
Create Date: 2026-12-02 02:40:00

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = 'f3d5b7c9e1a2'
down_revision = 'e2c4a6b8d0f1'
branch_labels = None
depends_on = None

JSONB = postgresql.JSONB(astext_type=sa.Text())


def upgrade():
    for column in (sa.Column('osm_type', sa.String(8)), sa.Column('osm_id', sa.BigInteger()),
                   sa.Column('osm_version', sa.Integer()), sa.Column('osm_changeset', sa.BigInteger()),
                   sa.Column('uploaded_version', sa.Integer()),
                   sa.Column('uploaded_at', sa.DateTime(timezone=True))):
        op.add_column('submission', column)
    op.create_table(
        'osm_account',
        sa.Column('organiser_id', sa.Integer(), sa.ForeignKey('organiser.id', ondelete='CASCADE'),
                  primary_key=True),
        sa.Column('osm_uid', sa.BigInteger(), nullable=False),
        sa.Column('display_name', sa.String(255), nullable=False),
        sa.Column('token_encrypted', sa.LargeBinary(), nullable=False),
        sa.Column('scopes', sa.String(200), nullable=False),
        sa.Column('linked_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_table(
        'osm_upload',
        sa.Column('id', sa.BigInteger(), primary_key=True),
        sa.Column('event_id', sa.Integer(), sa.ForeignKey('event.id', ondelete='CASCADE'), nullable=False),
        sa.Column('organiser_id', sa.Integer(), sa.ForeignKey('organiser.id', ondelete='SET NULL'),
                  nullable=True),
        sa.Column('requested_by', sa.String(300), nullable=False),
        sa.Column('job_id', sa.BigInteger(), nullable=True),
        sa.Column('status', sa.String(10), server_default='queued', nullable=False),
        sa.Column('step', sa.String(200), server_default='', nullable=False),
        sa.Column('resume_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('error_detail', JSONB, nullable=True),
        sa.Column('counts', JSONB, server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column('queued_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('queued', 'running', 'paused', 'stopped', 'done', 'failed')",
                           name='osm_upload_status'),
    )
    op.create_index('osm_upload_one_active', 'osm_upload', ['event_id'], unique=True,
                    postgresql_where=sa.text("status IN ('queued', 'running', 'paused')"))
    op.create_table(
        'osm_changeset_log',
        sa.Column('id', sa.BigInteger(), primary_key=True),
        sa.Column('upload_id', sa.BigInteger(), sa.ForeignKey('osm_upload.id', ondelete='CASCADE'),
                  nullable=False),
        sa.Column('event_id', sa.Integer(), sa.ForeignKey('event.id', ondelete='CASCADE'), nullable=False),
        sa.Column('changes', JSONB, nullable=False),
        sa.Column('tags', JSONB, nullable=False),
        sa.Column('payload_sha256', sa.String(64), nullable=False),
        sa.Column('placeholders', JSONB, nullable=False),
        sa.Column('changeset_id', sa.BigInteger(), nullable=True),
        sa.Column('state', sa.String(10), server_default='planned', nullable=False),
        sa.Column('applied', JSONB, nullable=True),
        sa.Column('error_detail', JSONB, nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("state IN ('planned', 'opened', 'sending', 'applied', 'closed', 'failed')",
                           name='osm_changeset_log_state'),
    )
    op.create_index('osm_changeset_log_upload', 'osm_changeset_log', ['upload_id', 'id'])


def downgrade():
    op.drop_index('osm_changeset_log_upload', table_name='osm_changeset_log')
    op.drop_table('osm_changeset_log')
    op.drop_index('osm_upload_one_active', table_name='osm_upload')
    op.drop_table('osm_upload')
    op.drop_table('osm_account')
    for name in ('uploaded_at', 'uploaded_version', 'osm_changeset', 'osm_version', 'osm_id', 'osm_type'):
        op.drop_column('submission', name)
