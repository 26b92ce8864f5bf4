"""Event revision counters kept by triggers; a wider index for the review map's filters

Revision ID: e4b7a2c91d3f
Revises: c7d4c2894100
Create Date: 2026-11-23 16:05:00

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = 'e4b7a2c91d3f'
down_revision = 'c7d4c2894100'
branch_labels = None
depends_on = None

SHARDS = 16

# One upsert per statement, not per row: loading 100,000 points bumps the counter once.
# `changed` is the statement's transition table: the rows it inserted, updated or deleted.
BUMP = """
CREATE FUNCTION bump_event_revision() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'submission' THEN
        INSERT INTO event_revision (event_id, shard, revision)
        SELECT DISTINCT event_id, pg_backend_pid() % {shards}, 1 FROM changed
        ON CONFLICT (event_id, shard) DO UPDATE SET revision = event_revision.revision + 1;
    ELSE
        INSERT INTO event_revision (event_id, shard, revision)
        SELECT DISTINCT s.event_id, pg_backend_pid() % {shards}, 1
        FROM changed c JOIN submission s ON s.id = c.submission_id
        ON CONFLICT (event_id, shard) DO UPDATE SET revision = event_revision.revision + 1;
    END IF;
    RETURN NULL;
END
$$
""".format(shards=SHARDS)

# PostgreSQL allows a transition table on a trigger for one kind of statement only.
TRIGGERS = [(table, action, "OLD" if action == "DELETE" else "NEW")
            for table in ("submission", "photo", "match")
            for action in ("INSERT", "UPDATE", "DELETE")]


def upgrade():
    op.create_table('event_revision',
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('shard', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('revision', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['event.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('event_id', 'shard')
    )
    op.drop_index('submission_event_status', table_name='submission')
    op.create_index('submission_event_status', 'submission',
                    ['event_id', 'status', 'preset', 'participant_id'], unique=False)
    op.execute(BUMP)
    for table, action, which in TRIGGERS:
        op.execute(f"CREATE TRIGGER {table}_{action.lower()}_bumps_revision AFTER {action} ON {table} "
                   f"REFERENCING {which} TABLE AS changed "
                   "FOR EACH STATEMENT EXECUTE FUNCTION bump_event_revision()")
    # Events that already have submissions start from a non-zero revision.
    op.execute("INSERT INTO event_revision (event_id, shard, revision) "
               "SELECT DISTINCT event_id, 0, 1 FROM submission")


def downgrade():
    for table, action, _ in TRIGGERS:
        op.execute(f"DROP TRIGGER {table}_{action.lower()}_bumps_revision ON {table}")
    op.execute("DROP FUNCTION bump_event_revision()")
    op.drop_index('submission_event_status', table_name='submission')
    op.create_index('submission_event_status', 'submission', ['event_id', 'status'], unique=False)
    op.drop_table('event_revision')
