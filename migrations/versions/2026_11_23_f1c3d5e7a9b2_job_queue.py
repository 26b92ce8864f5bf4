"""The job queue: procrastinate's tables and functions, on the same PostgreSQL

Revision ID: f1c3d5e7a9b2
Revises: e4b7a2c91d3f
Create Date: 2026-11-23 16:10:00

"""
from alembic import op

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


def downgrade():
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
