"""restitution published or not, events listed on /events, participants' feedback

Revision ID: a8d6c4e2f0b1
Revises: f1c3d5e7a9b2
Create Date: 2026-11-23 18:00:00

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = 'a8d6c4e2f0b1'
down_revision = 'f1c3d5e7a9b2'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('event', sa.Column('restitution_published_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('event', sa.Column('listed', sa.Boolean(), server_default=sa.text('true'), nullable=False))
    op.add_column('participant', sa.Column('feedback_at', sa.DateTime(timezone=True), nullable=True))
    # No participant_id: an answer is not tied to the walker who gave it (participant.feedback_at
    # only says that they answered). A random id and a time to the hour keep the two apart.
    op.create_table('feedback',
    sa.Column('id', postgresql.UUID(as_uuid=True), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('learnt', sa.Text(), server_default='', nullable=False),
    sa.Column('improve', sa.Text(), server_default='', nullable=False),
    sa.Column('come_again', sa.String(length=5), nullable=False),
    sa.Column('signature', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text("date_trunc('hour', now())"), nullable=False),
    sa.CheckConstraint("come_again IN ('yes', 'maybe', 'no')", name='feedback_come_again'),
    sa.CheckConstraint('char_length(learnt) <= 2000 AND char_length(improve) <= 2000', name='feedback_text_length'),
    sa.ForeignKeyConstraint(['event_id'], ['event.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_feedback_event_id'), 'feedback', ['event_id'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_feedback_event_id'), table_name='feedback')
    op.drop_table('feedback')
    op.drop_column('participant', 'feedback_at')
    op.drop_column('event', 'listed')
    op.drop_column('event', 'restitution_published_at')
