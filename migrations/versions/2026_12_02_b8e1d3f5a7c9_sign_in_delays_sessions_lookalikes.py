"""Sign-in failures counted per (email, address) instead of a hard block; server-side organiser
sessions that signing out ends; joins counted per address; one pseudonym skeleton per event, so
look-alike pseudonyms are refused

Revision ID: b8e1d3f5a7c9
Revises: a4c6e8f0b2d4
Create Date: 2026-12-02 05:00:00

"""
from alembic import op
import sqlalchemy as sa

from cartoparty.lookalikes import skeleton

# revision identifiers, used by Alembic.
revision = 'b8e1d3f5a7c9'
down_revision = 'a4c6e8f0b2d4'
branch_labels = None
depends_on = None


def fill_skeletons():
    """Each participant's skeleton; a look-alike that joined before this check keeps its
    pseudonym, its skeleton made unique by its id after a newline (no pseudonym has one)."""
    connection = op.get_bind()
    seen, rows = set(), []
    for id_, event_id, pseudonym in connection.execute(
            sa.text("SELECT id, event_id, pseudonym FROM participant ORDER BY id")):
        value = skeleton(pseudonym)
        if (event_id, value) in seen:
            value = f"{value}\n{id_}"
        seen.add((event_id, value))
        rows.append({"id": id_, "skeleton": value})
    if rows:
        connection.execute(sa.text("UPDATE participant SET pseudonym_skeleton = :skeleton WHERE id = :id"),
                           rows)


def upgrade():
    op.add_column('participant', sa.Column('pseudonym_skeleton', sa.Text(), nullable=True))
    fill_skeletons()
    op.drop_index('participant_pseudonym_unique', table_name='participant')
    op.create_index('participant_skeleton_unique', 'participant', ['event_id', 'pseudonym_skeleton'],
                    unique=True)

    op.drop_index('ix_sign_in_attempt_email', table_name='sign_in_attempt')
    op.drop_index('ix_sign_in_attempt_address', table_name='sign_in_attempt')
    op.drop_table('sign_in_attempt')
    op.create_table(
        'sign_in_failure',
        sa.Column('key', sa.String(64), primary_key=True),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('last_failed_at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_sign_in_failure_last_failed_at', 'sign_in_failure', ['last_failed_at'])

    op.create_table(
        'organiser_session',
        sa.Column('key_hash', sa.String(64), primary_key=True),
        sa.Column('organiser_id', sa.Integer(), sa.ForeignKey('organiser.id', ondelete='CASCADE'),
                  nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.Column('last_seen_at', sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
    )
    op.create_index('ix_organiser_session_organiser_id', 'organiser_session', ['organiser_id'])

    op.create_table(
        'join_rate',
        sa.Column('address_hash', sa.String(64), primary_key=True),
        sa.Column('window_started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('joins', sa.Integer(), nullable=False),
    )
    op.create_index('ix_join_rate_window_started_at', 'join_rate', ['window_started_at'])


def downgrade():
    op.drop_table('join_rate')
    op.drop_table('organiser_session')
    op.drop_table('sign_in_failure')
    op.create_table(
        'sign_in_attempt',
        sa.Column('id', sa.BigInteger(), primary_key=True),
        sa.Column('email', sa.String(254), nullable=False),
        sa.Column('address', sa.String(64), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    )
    op.create_index('ix_sign_in_attempt_address', 'sign_in_attempt', ['address'])
    op.create_index('ix_sign_in_attempt_email', 'sign_in_attempt', ['email'])
    op.drop_index('participant_skeleton_unique', table_name='participant')
    # The old index holds: pseudonyms equal but for case share a skeleton, so none joined since.
    op.create_index('participant_pseudonym_unique', 'participant',
                    ['event_id', sa.literal_column('lower(pseudonym)')], unique=True)
    op.drop_column('participant', 'pseudonym_skeleton')
