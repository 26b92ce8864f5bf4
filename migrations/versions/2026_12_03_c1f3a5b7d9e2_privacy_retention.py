"""Each event's retention period for personal data and its privacy contact; when a participant
was erased, and by whom

Revision ID: c1f3a5b7d9e2
Revises: b8e1d3f5a7c9
Create Date: 2026-12-03 09:00:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'c1f3a5b7d9e2'
down_revision = 'b8e1d3f5a7c9'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('event', sa.Column('retention_days', sa.Integer(), server_default='90',
                                     nullable=False))
    op.add_column('event', sa.Column('privacy_contact', sa.Text(), server_default='',
                                     nullable=False))
    op.create_check_constraint('event_retention_days', 'event',
                               'retention_days BETWEEN 1 AND 3650')
    op.create_check_constraint('event_privacy_contact_length', 'event',
                               'char_length(privacy_contact) <= 200')
    op.add_column('participant', sa.Column('erased_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('participant', sa.Column('erased_by', sa.String(length=300), nullable=True))


def downgrade():
    op.drop_column('participant', 'erased_by')
    op.drop_column('participant', 'erased_at')
    op.drop_constraint('event_privacy_contact_length', 'event', type_='check')
    op.drop_constraint('event_retention_days', 'event', type_='check')
    op.drop_column('event', 'privacy_contact')
    op.drop_column('event', 'retention_days')
