"""A town's own dataset (defibrillators, trees) loaded into an event to be checked in the
field: one row per record, its own identifier, position and original fields

Revision ID: d4e6f8a0b2c4
Revises: c1f3a5b7d9e2
Create Date: 2026-12-04 09:00:00

"""
import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = 'd4e6f8a0b2c4'
down_revision = 'c1f3a5b7d9e2'
branch_labels = None
depends_on = None


def upgrade():
    op.create_geospatial_table(
        'reference_row',
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('event_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=10), nullable=False),
        sa.Column('row_number', sa.Integer(), nullable=False),
        sa.Column('source_id', sa.Text(), nullable=False),
        sa.Column('geom', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False,
                                   from_text='ST_GeomFromEWKT', name='geometry', nullable=False),
                  nullable=False),
        sa.Column('fields', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('fixed', sa.String(length=40), nullable=True),
        sa.Column('imported_at', sa.DateTime(timezone=True), server_default=sa.text('now()'),
                  nullable=False),
        sa.CheckConstraint("kind IN ('dae', 'trees', 'geojson', 'csv')", name='reference_row_kind'),
        sa.ForeignKeyConstraint(['event_id'], ['event.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('event_id', 'source_id', name='reference_row_source_id'),
    )
    op.create_geospatial_index('idx_reference_row_geom', 'reference_row', ['geom'], unique=False,
                               postgresql_using='gist', postgresql_ops={})


def downgrade():
    op.drop_geospatial_index('idx_reference_row_geom', table_name='reference_row',
                             postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('reference_row')
