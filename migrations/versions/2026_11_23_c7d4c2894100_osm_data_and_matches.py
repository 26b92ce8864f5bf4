"""OSM elements, snapshots and matches

Revision ID: c7d4c2894100
Revises: 7498fed256e7
Create Date: 2026-11-23 14:25:22.864462

"""
from alembic import op
import sqlalchemy as sa
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = 'c7d4c2894100'
down_revision = '7498fed256e7'
branch_labels = None
depends_on = None


def upgrade():
    op.create_geospatial_table('osm_element',
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('osm_type', sa.String(length=8), nullable=False),
    sa.Column('osm_id', sa.BigInteger(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=True),
    sa.Column('timestamp', sa.DateTime(timezone=True), nullable=True),
    sa.Column('tags', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('geom', Geometry(geometry_type='POINT', srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry', nullable=False), nullable=False),
    sa.CheckConstraint("osm_type IN ('node', 'way', 'relation')", name='osm_element_type'),
    sa.ForeignKeyConstraint(['event_id'], ['event.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('event_id', 'osm_type', 'osm_id')
    )
    op.create_geospatial_index('idx_osm_element_geom', 'osm_element', ['geom'], unique=False, postgresql_using='gist', postgresql_ops={})
    # Matching measures in metres on the sphere: index the geography too.
    op.execute("CREATE INDEX osm_element_geography ON osm_element USING gist ((geom::geography))")
    op.create_table('osm_snapshot',
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=300), nullable=False),
    sa.Column('fetched_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('element_count', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('last_error_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['event_id'], ['event.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('event_id')
    )
    op.create_table('match',
    sa.Column('submission_id', sa.BigInteger(), nullable=False),
    sa.Column('outcome', sa.String(length=10), nullable=False),
    sa.Column('osm_type', sa.String(length=8), nullable=True),
    sa.Column('osm_id', sa.BigInteger(), nullable=True),
    sa.Column('osm_version', sa.Integer(), nullable=True),
    sa.Column('distance_m', sa.Float(), nullable=True),
    sa.Column('tag_diff', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('duplicate_of_id', sa.BigInteger(), nullable=True),
    sa.Column('overridden_by', sa.String(length=300), nullable=True),
    sa.Column('matched_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("outcome IN ('new', 'existing', 'update', 'ambiguous', 'duplicate')", name='match_outcome'),
    sa.ForeignKeyConstraint(['duplicate_of_id'], ['submission.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['submission_id'], ['submission.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('submission_id')
    )


def downgrade():
    op.execute("DROP INDEX IF EXISTS osm_element_geography")
    op.drop_table('match')
    op.drop_table('osm_snapshot')
    op.drop_geospatial_index('idx_osm_element_geom', table_name='osm_element', postgresql_using='gist', column_name='geom')
    op.drop_geospatial_table('osm_element')
