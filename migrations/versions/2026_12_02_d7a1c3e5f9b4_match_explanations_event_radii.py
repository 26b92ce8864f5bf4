"""Each match keeps what decided it (its cost parts and the runner-up); an event may set its own matching radius per preset

Revision ID: d7a1c3e5f9b4
Revises: b3e9f1a7c5d2
Create Date: 2026-12-02 00:25:00

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = 'd7a1c3e5f9b4'
down_revision = 'b3e9f1a7c5d2'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('match', sa.Column('explanation', postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column('event', sa.Column('match_radii', postgresql.JSONB(astext_type=sa.Text()),
                                     server_default=sa.text("'{}'::jsonb"), nullable=False))


def downgrade():
    op.drop_column('event', 'match_radii')
    op.drop_column('match', 'explanation')
