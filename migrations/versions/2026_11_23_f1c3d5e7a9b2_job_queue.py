"""The job queue (procrastinate's tables and functions) and the checks against OSM it runs

procrastinate's schema on the same PostgreSQL; osm_check: one row per check of an event
against OSM, run as a job.

Revision ID: f1c3d5e7a9b2
Revises: e4b7a2c91d3f
Create Date: 2026-11-23 16:10:00

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = 'f1c3d5e7a9b2'
down_revision = 'e4b7a2c91d3f'
branch_labels = None
depends_on = None


def upgrade():
    # The schema of the procrastinate release pinned in pyproject.toml; a later release brings
    # its own migration scripts, to be run from a new revision here.
    from procrastinate.schema import SchemaManager

    # Straight to psycopg with no parameters, so that its '%' and ':' are not read as such.
    op.get_bind().connection.dbapi_connection.cursor().execute(SchemaManager.get_schema())

    op.create_table('osm_check',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.BigInteger(), nullable=True),
    sa.Column('status', sa.String(length=10), server_default='queued', nullable=False),
    sa.Column('step', sa.String(length=200), server_default='', nullable=False),
    sa.Column('fetch_osm', sa.Boolean(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('counts', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('requested_by', sa.String(length=300), nullable=False),
    sa.Column('queued_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed')", name='osm_check_status'),
    sa.ForeignKeyConstraint(['event_id'], ['event.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('osm_check_event', 'osm_check', ['event_id', 'id'], unique=False)
    # At most one check queued or running per event, even when two organisers ask at once.
    op.create_index('osm_check_one_active', 'osm_check', ['event_id'], unique=True,
                    postgresql_where=sa.text("status IN ('queued', 'running')"))


def downgrade():
    op.drop_table('osm_check')
    op.execute("""
        DO $$
        DECLARE name text;
        BEGIN
            FOR name IN SELECT tablename FROM pg_tables
                        WHERE schemaname = current_schema() AND tablename LIKE 'procrastinate%' LOOP
                EXECUTE format('DROP TABLE IF EXISTS %I CASCADE', name);
            END LOOP;
            FOR name IN SELECT p.oid::regprocedure::text FROM pg_proc p
                        WHERE p.pronamespace = current_schema()::regnamespace
                          AND p.proname LIKE 'procrastinate%' LOOP
                EXECUTE 'DROP FUNCTION IF EXISTS ' || name || ' CASCADE';
            END LOOP;
            FOR name IN SELECT typname FROM pg_type
                        WHERE typnamespace = current_schema()::regnamespace
                          AND typname LIKE 'procrastinate%' AND typtype IN ('e', 'c') LOOP
                EXECUTE format('DROP TYPE IF EXISTS %I CASCADE', name);
            END LOOP;
        END
        $$
    """)
