"""Walkers' phones sync what changed since their last snapshot (the writing transaction of each submission, and the points that left their view); new events are not listed on /events by default

Revision ID: b3e9f1a7c5d2
Revises: a8d6c4e2f0b1
Create Date: 2026-12-01 23:30:00

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = 'b3e9f1a7c5d2'
down_revision = 'a8d6c4e2f0b1'
branch_labels = None
depends_on = None

# Each written row carries the transaction that wrote it: a phone that saw the event at a
# snapshot asks for the rows that snapshot could not see.
STAMP = """
CREATE FUNCTION stamp_submission_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.changed_xid := pg_current_xact_id();
    RETURN NEW;
END
$$
"""

# A point leaves the walkers' view when it is deleted, or when it stops being approved (others
# saw it only approved; its author still sees it). Rows deleted with their event count for
# nothing: the event is gone.
REMOVED = """
CREATE FUNCTION log_submission_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO submission_removed (event_id, client_id, participant_id, was_approved)
        SELECT event_id, client_id, participant_id, status = 'approved' FROM gone
        WHERE event_id IN (SELECT id FROM event);
    ELSE
        INSERT INTO submission_removed (event_id, client_id, participant_id, was_approved)
        SELECT g.event_id, g.client_id, NULL, true
        FROM gone g JOIN changed c ON c.id = g.id
        WHERE g.status = 'approved' AND c.status <> 'approved';
    END IF;
    RETURN NULL;
END
$$
"""


def upgrade():
    op.alter_column('event', 'listed', server_default=sa.text('false'))
    # A failed check's error as a code and its parameters, so that the page says it in French.
    op.add_column('osm_check', sa.Column('error_detail', postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column('osm_snapshot', sa.Column('last_error_detail', postgresql.JSONB(astext_type=sa.Text()),
                                            nullable=True))
    # xid8 has no SQLAlchemy type: written as SQL. Existing rows get this migration's transaction.
    op.execute("ALTER TABLE submission ADD COLUMN changed_xid xid8 NOT NULL DEFAULT pg_current_xact_id()")
    op.create_index('submission_event_changed', 'submission', ['event_id', 'changed_xid'], unique=False)
    op.create_table('submission_removed',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('client_id', sa.UUID(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=True),
    sa.Column('was_approved', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['event.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.execute("ALTER TABLE submission_removed ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id()")
    op.create_index('submission_removed_event_xid', 'submission_removed', ['event_id', 'xid'], unique=False)
    op.execute(STAMP)
    op.execute(REMOVED)
    op.execute("CREATE TRIGGER submission_update_stamps_xid BEFORE UPDATE ON submission "
               "FOR EACH ROW EXECUTE FUNCTION stamp_submission_change()")
    op.execute("CREATE TRIGGER submission_update_logs_removed AFTER UPDATE ON submission "
               "REFERENCING OLD TABLE AS gone NEW TABLE AS changed "
               "FOR EACH STATEMENT EXECUTE FUNCTION log_submission_removed()")
    op.execute("CREATE TRIGGER submission_delete_logs_removed AFTER DELETE ON submission "
               "REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION log_submission_removed()")


def downgrade():
    op.execute("DROP TRIGGER submission_delete_logs_removed ON submission")
    op.execute("DROP TRIGGER submission_update_logs_removed ON submission")
    op.execute("DROP TRIGGER submission_update_stamps_xid ON submission")
    op.execute("DROP FUNCTION log_submission_removed()")
    op.execute("DROP FUNCTION stamp_submission_change()")
    op.drop_index('submission_removed_event_xid', table_name='submission_removed')
    op.drop_table('submission_removed')
    op.drop_index('submission_event_changed', table_name='submission')
    op.drop_column('submission', 'changed_xid')
    op.alter_column('event', 'listed', server_default=sa.text('true'))
    op.drop_column('osm_snapshot', 'last_error_detail')
    op.drop_column('osm_check', 'error_detail')
