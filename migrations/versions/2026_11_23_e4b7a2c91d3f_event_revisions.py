"""Event revision counters and the submission change log, kept by triggers; a wider index for the review map's filters; no geography index on OSM elements

Revision ID: e4b7a2c91d3f
Revises: c7d4c2894100
Create Date: 2026-11-23 16:05:00

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = 'e4b7a2c91d3f'
down_revision = 'c7d4c2894100'
branch_labels = None
depends_on = None

SHARDS = 16
PRUNE_AFTER = "1 hour"

# One upsert per statement, not per row: loading 100,000 points bumps the counter once.
# `changed` is the statement's transition table: the rows it inserted, updated or deleted.
BUMP = """
CREATE FUNCTION bump_event_revision() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- EXECUTE: planned anew each time. A cached plan made for 100,000 matches (a scan of all
    -- submissions) would make each later one-row statement of the session take 30 ms.
    EXECUTE 'INSERT INTO event_revision (event_id, shard, revision)
             SELECT DISTINCT s.event_id, pg_backend_pid() % {shards}, 1
             FROM changed c JOIN submission s ON s.id = c.submission_id JOIN event e ON e.id = s.event_id
             ON CONFLICT (event_id, shard) DO UPDATE SET revision = event_revision.revision + 1';
    RETURN NULL;
END
$$
""".format(shards=SHARDS)

# For submissions, the same bump, and a row in the change log for each row that arrives (+1) or
# leaves (-1): an update is both. Rows deleted with their event (ON DELETE CASCADE) count for
# nothing: the event is gone already. Now and then, rows older than PRUNE_AFTER go, a batch at a
# time and skipping those another session is already deleting, so that writers never queue.
LOG = """
CREATE FUNCTION log_submission_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR TG_OP = 'UPDATE' THEN
        INSERT INTO event_revision (event_id, shard, revision)
        SELECT DISTINCT event_id, pg_backend_pid() % {shards}, 1 FROM changed
        WHERE event_id IN (SELECT id FROM event)
        ON CONFLICT (event_id, shard) DO UPDATE SET revision = event_revision.revision + 1;
        INSERT INTO submission_change (event_id, txid, sign, preset, status, participant_id,
                                       received_at, lon, lat)
        SELECT event_id, pg_current_xact_id()::text::bigint, 1, preset, status, participant_id,
               received_at, ST_X(geom), ST_Y(geom) FROM changed;
    END IF;
    IF TG_OP = 'DELETE' OR TG_OP = 'UPDATE' THEN
        INSERT INTO event_revision (event_id, shard, revision)
        SELECT DISTINCT event_id, pg_backend_pid() % {shards}, 1 FROM gone
        WHERE event_id IN (SELECT id FROM event)
        ON CONFLICT (event_id, shard) DO UPDATE SET revision = event_revision.revision + 1;
        INSERT INTO submission_change (event_id, txid, sign, preset, status, participant_id,
                                       received_at, lon, lat)
        SELECT event_id, pg_current_xact_id()::text::bigint, -1, preset, status, participant_id,
               received_at, ST_X(geom), ST_Y(geom) FROM gone
        WHERE event_id IN (SELECT id FROM event);
    END IF;
    IF random() < 0.01 THEN
        DELETE FROM submission_change WHERE id = ANY(ARRAY(
            SELECT id FROM submission_change WHERE changed_at < now() - interval '{prune}'
            LIMIT 10000 FOR UPDATE SKIP LOCKED));
    END IF;
    RETURN NULL;
END
$$
""".format(shards=SHARDS, prune=PRUNE_AFTER)

# PostgreSQL allows a transition table on a trigger for one kind of statement only.
TRIGGERS = [
    ("submission", "INSERT", "NEW TABLE AS changed", "log_submission_change"),
    ("submission", "UPDATE", "OLD TABLE AS gone NEW TABLE AS changed", "log_submission_change"),
    ("submission", "DELETE", "OLD TABLE AS gone", "log_submission_change"),
] + [(table, action, f"{'OLD' if action == 'DELETE' else 'NEW'} TABLE AS changed", "bump_event_revision")
     for table in ("photo", "match") for action in ("INSERT", "UPDATE", "DELETE")]


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
    op.create_table('submission_change',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('txid', sa.BigInteger(), nullable=False),
    sa.Column('sign', sa.SmallInteger(), nullable=False),
    sa.Column('preset', sa.String(length=40), nullable=False),
    sa.Column('status', postgresql.ENUM('pending', 'approved', 'rejected', name='submission_status',
                                        create_type=False), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('submission_change_event_txid', 'submission_change', ['event_id', 'txid'], unique=False)
    op.create_index('submission_change_changed_at', 'submission_change', ['changed_at'], unique=False,
                    postgresql_using='brin')
    # Matching finds its pairs on a grid (conflate.py): the geography index only slowed loading.
    op.drop_index('osm_element_geography', table_name='osm_element', postgresql_using='gist')
    op.execute(BUMP)
    op.execute(LOG)
    for table, action, tables, function in TRIGGERS:
        op.execute(f"CREATE TRIGGER {table}_{action.lower()}_bumps_revision AFTER {action} ON {table} "
                   f"REFERENCING {tables} FOR EACH STATEMENT EXECUTE FUNCTION {function}()")
    # Events that already have submissions start from a non-zero revision.
    op.execute("INSERT INTO event_revision (event_id, shard, revision) "
               "SELECT DISTINCT event_id, 0, 1 FROM submission")


def downgrade():
    for table, action, *_ in TRIGGERS:
        op.execute(f"DROP TRIGGER {table}_{action.lower()}_bumps_revision ON {table}")
    op.execute("DROP FUNCTION bump_event_revision()")
    op.execute("DROP FUNCTION log_submission_change()")
    op.drop_table('submission_change')
    op.create_index('osm_element_geography', 'osm_element', [sa.text('(geom::geography)')], unique=False,
                    postgresql_using='gist')
    op.drop_index('submission_event_status', table_name='submission')
    op.create_index('submission_event_status', 'submission', ['event_id', 'status'], unique=False)
    op.drop_table('event_revision')
