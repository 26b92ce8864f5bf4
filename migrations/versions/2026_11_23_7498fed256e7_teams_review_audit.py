"""teams, review fields, audit trail and sign-in attempts

Revision ID: 7498fed256e7
Revises: 93cdd4d0615c
Create Date: 2026-11-23 13:39:53.182426

"""
from alembic import op
import sqlalchemy as sa
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = '7498fed256e7'
down_revision = '93cdd4d0615c'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('sign_in_attempt',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_sign_in_attempt_address'), 'sign_in_attempt', ['address'], unique=False)
    op.create_index(op.f('ix_sign_in_attempt_email'), 'sign_in_attempt', ['email'], unique=False)
    op.create_geospatial_table('team',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('presets', postgresql.ARRAY(sa.String(length=40)), nullable=False),
    sa.Column('sector', Geometry(geometry_type='MULTIPOLYGON', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry'), nullable=True),
    sa.Column('join_code', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['event.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('event_id', 'name', name='team_name_unique'),
    sa.UniqueConstraint('join_code')
    )
    op.create_geospatial_index('idx_team_sector', 'team', ['sector'], unique=False, postgresql_using='gist', postgresql_ops={})
    op.create_index(op.f('ix_team_event_id'), 'team', ['event_id'], unique=False)
    op.create_table('audit_entry',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('submission_id', sa.BigInteger(), nullable=False),
    sa.Column('organiser_id', sa.Integer(), nullable=True),
    sa.Column('actor', sa.String(length=300), nullable=False),
    sa.Column('action', sa.String(length=20), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('before', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('after', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.ForeignKeyConstraint(['organiser_id'], ['organiser.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['submission_id'], ['submission.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_audit_entry_submission_id'), 'audit_entry', ['submission_id'], unique=False)
    op.add_column('participant', sa.Column('team_id', sa.Integer(), nullable=True))
    op.create_index(op.f('ix_participant_team_id'), 'participant', ['team_id'], unique=False)
    op.create_foreign_key('participant_team_id_fkey', 'participant', 'team', ['team_id'], ['id'], ondelete='SET NULL')
    op.add_column('submission', sa.Column('version', sa.Integer(), server_default='1', nullable=False))
    op.add_column('submission', sa.Column('review_reason', sa.Text(), nullable=True))
    op.add_column('submission', sa.Column('reviewed_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('submission', sa.Column('duplicate_of_id', sa.BigInteger(), nullable=True))
    op.create_index('submission_event_received', 'submission', ['event_id', 'received_at'], unique=False)
    op.create_foreign_key('submission_duplicate_of_id_fkey', 'submission', 'submission', ['duplicate_of_id'], ['id'], ondelete='SET NULL')


def downgrade():
    op.drop_constraint('submission_duplicate_of_id_fkey', 'submission', type_='foreignkey')
    op.drop_index('submission_event_received', table_name='submission')
    op.drop_column('submission', 'duplicate_of_id')
    op.drop_column('submission', 'reviewed_at')
    op.drop_column('submission', 'review_reason')
    op.drop_column('submission', 'version')
    op.drop_constraint('participant_team_id_fkey', 'participant', type_='foreignkey')
    op.drop_index(op.f('ix_participant_team_id'), table_name='participant')
    op.drop_column('participant', 'team_id')
    op.drop_index(op.f('ix_audit_entry_submission_id'), table_name='audit_entry')
    op.drop_table('audit_entry')
    op.drop_index(op.f('ix_team_event_id'), table_name='team')
    op.drop_geospatial_index('idx_team_sector', table_name='team', postgresql_using='gist', column_name='sector')
    op.drop_geospatial_table('team')
    op.drop_index(op.f('ix_sign_in_attempt_email'), table_name='sign_in_attempt')
    op.drop_index(op.f('ix_sign_in_attempt_address'), table_name='sign_in_attempt')
    op.drop_table('sign_in_attempt')
