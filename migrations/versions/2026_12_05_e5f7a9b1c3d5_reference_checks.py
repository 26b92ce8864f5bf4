"""Verification walks: the reference dataset's own description (columns, CRS, preset), the
walkers' verdicts on its rows (submissions that name a row), and the organiser's settlement

Revision ID: e5f7a9b1c3d5
Revises: d4e6f8a0b2c4
Create Date: 2026-12-05 09:00:00

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = 'e5f7a9b1c3d5'
down_revision = 'd4e6f8a0b2c4'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'reference_dataset',
        sa.Column('event_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=10), nullable=False),
        sa.Column('preset', sa.String(length=40), nullable=False),
        sa.Column('source', sa.String(length=200), nullable=False),
        sa.Column('schema', sa.String(length=40), nullable=True),
        sa.Column('format', sa.String(length=10), nullable=False),
        sa.Column('columns', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('delimiter', sa.String(length=1), nullable=False),
        sa.Column('lat_column', sa.Text(), nullable=True),
        sa.Column('lon_column', sa.Text(), nullable=True),
        sa.Column('crs', sa.String(length=20), nullable=False),
        sa.Column('imported_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.ForeignKeyConstraint(['event_id'], ['event.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('event_id'),
    )
    op.add_column('submission', sa.Column('reference_row_id', sa.BigInteger(), nullable=True))
    op.add_column('submission', sa.Column('verdict', sa.String(length=10), nullable=True))
    op.create_foreign_key('submission_reference_row_id_fkey', 'submission', 'reference_row',
                          ['reference_row_id'], ['id'])
    op.create_check_constraint(
        'submission_verdict', 'submission',
        "(verdict IS NULL) = (reference_row_id IS NULL) AND "
        "(verdict IS NULL OR verdict IN ('confirmed', 'different', 'moved', 'missing'))")
    op.create_index('ix_submission_reference_row_id', 'submission', ['reference_row_id'],
                    postgresql_where=sa.text('reference_row_id IS NOT NULL'))
    op.add_column('reference_row', sa.Column('settled', sa.String(length=12), nullable=True))
    op.add_column('reference_row', sa.Column('settled_from_id', sa.BigInteger(), nullable=True))
    op.add_column('reference_row', sa.Column('settled_by', sa.String(length=300), nullable=True))
    op.add_column('reference_row', sa.Column('settled_at', sa.DateTime(timezone=True), nullable=True))
    op.create_foreign_key('reference_row_settled_from_id_fkey', 'reference_row', 'submission',
                          ['settled_from_id'], ['id'], ondelete='SET NULL')
    op.create_check_constraint(
        'reference_row_settled', 'reference_row',
        "settled IS NULL OR settled IN ('confirmed', 'corrected', 'moved', 'missing', 'not_checked')")


def downgrade():
    op.drop_constraint('reference_row_settled', 'reference_row', type_='check')
    op.drop_constraint('reference_row_settled_from_id_fkey', 'reference_row', type_='foreignkey')
    for column in ('settled_at', 'settled_by', 'settled_from_id', 'settled'):
        op.drop_column('reference_row', column)
    op.drop_index('ix_submission_reference_row_id', table_name='submission')
    op.drop_constraint('submission_verdict', 'submission', type_='check')
    op.drop_constraint('submission_reference_row_id_fkey', 'submission', type_='foreignkey')
    op.drop_column('submission', 'verdict')
    op.drop_column('submission', 'reference_row_id')
    op.drop_table('reference_dataset')
