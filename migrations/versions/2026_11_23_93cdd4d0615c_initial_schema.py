"""events, participants, submissions, photos and organisers

Revision ID: 93cdd4d0615c
Revises: 
Create Date: 2026-11-23 13:01:00.345298

"""
from alembic import op
import sqlalchemy as sa
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = '93cdd4d0615c'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.create_geospatial_table('event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('slug', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('zone', Geometry(geometry_type='MULTIPOLYGON', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.Column('presets', postgresql.ARRAY(sa.String(length=40)), nullable=False),
    sa.Column('join_code', sa.String(length=16), nullable=False),
    sa.Column('licence', sa.String(length=100), nullable=False),
    sa.Column('allow_outside_zone', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("slug ~ '^[a-z0-9][a-z0-9-]*$'", name='event_slug_format'),
    sa.CheckConstraint('ends_at IS NULL OR starts_at IS NULL OR ends_at >= starts_at', name='event_ends_after_start'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('join_code'),
    sa.UniqueConstraint('slug')
    )
    op.create_geospatial_index('idx_event_zone', 'event', ['zone'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_table('organiser',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('email')
    )
    op.create_table('event_organiser',
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('organiser_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['event.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['organiser_id'], ['organiser.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('event_id', 'organiser_id')
    )
    op.create_table('participant',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('pseudonym', sa.String(length=40), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('consented_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['event.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    op.create_index(op.f('ix_participant_event_id'), 'participant', ['event_id'], unique=False)
    op.create_index('participant_pseudonym_unique', 'participant', ['event_id', sa.literal_column('lower(pseudonym)')], unique=True)
    op.create_geospatial_table('submission',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.UUID(), nullable=False),
    sa.Column('preset', sa.String(length=40), nullable=False),
    sa.Column('geom', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.Column('accuracy', sa.Float(), nullable=True),
    sa.Column('tags', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('observed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('status', sa.Enum('pending', 'approved', 'rejected', name='submission_status'), server_default='pending', nullable=False),
    sa.Column('body_sha256', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['event.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['participant_id'], ['participant.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('event_id', 'client_id', name='submission_client_id_unique')
    )
    op.create_geospatial_index('idx_submission_geom', 'submission', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index(op.f('ix_submission_participant_id'), 'submission', ['participant_id'], unique=False)
    op.create_index('submission_event_status', 'submission', ['event_id', 'status'], unique=False)
    op.create_table('photo',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('submission_id', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('media_type', sa.String(length=20), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['submission_id'], ['submission.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('submission_id', 'sha256', name='photo_once_per_submission')
    )
    op.create_index(op.f('ix_photo_submission_id'), 'photo', ['submission_id'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_photo_submission_id'), table_name='photo')
    op.drop_table('photo')
    op.drop_index('submission_event_status', table_name='submission')
    op.drop_index(op.f('ix_submission_participant_id'), table_name='submission')
    op.drop_geospatial_index('idx_submission_geom', table_name='submission', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('submission')
    op.drop_index('participant_pseudonym_unique', table_name='participant')
    op.drop_index(op.f('ix_participant_event_id'), table_name='participant')
    op.drop_table('participant')
    op.drop_table('event_organiser')
    op.drop_table('organiser')
    op.drop_geospatial_index('idx_event_zone', table_name='event', postgresql_using='gist', column_name='zone')
    op.drop_geospatial_table('event')
    sa.Enum(name='submission_status').drop(op.get_bind(), checkfirst=True)
