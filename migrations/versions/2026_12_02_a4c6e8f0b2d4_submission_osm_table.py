"""Where an uploaded point is in OSM moves to a table of its own: written for thousands of points
at once by an upload, it must not wake the walkers' sync nor the review map's revisions

Revision ID: a4c6e8f0b2d4
Revises: f3d5b7c9e1a2
Create Date: 2026-12-02 03:00:00

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = 'a4c6e8f0b2d4'
down_revision = 'f3d5b7c9e1a2'
branch_labels = None
depends_on = None

COLUMNS = ('osm_type', 'osm_id', 'osm_version', 'osm_changeset', 'uploaded_version', 'uploaded_at')


def upgrade():
    op.create_table(
        'submission_osm',
        sa.Column('submission_id', sa.BigInteger(), sa.ForeignKey('submission.id', ondelete='CASCADE'),
                  primary_key=True),
        sa.Column('osm_type', sa.String(8), nullable=False),
        sa.Column('osm_id', sa.BigInteger(), nullable=False),
        sa.Column('osm_version', sa.Integer(), nullable=False),
        sa.Column('changeset', sa.BigInteger(), nullable=False),
        sa.Column('uploaded_version', sa.Integer(), nullable=False),
        sa.Column('uploaded_at', sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
    )
    op.execute("""
        INSERT INTO submission_osm (submission_id, osm_type, osm_id, osm_version, changeset,
                                    uploaded_version, uploaded_at)
        SELECT id, osm_type, osm_id, osm_version, osm_changeset, uploaded_version, uploaded_at
        FROM submission WHERE osm_id IS NOT NULL
    """)
    for name in COLUMNS:
        op.drop_column('submission', name)


def downgrade():
    for column in (sa.Column('osm_type', sa.String(8)), sa.Column('osm_id', sa.BigInteger()),
                   sa.Column('osm_version', sa.Integer()), sa.Column('osm_changeset', sa.BigInteger()),
                   sa.Column('uploaded_version', sa.Integer()),
                   sa.Column('uploaded_at', sa.DateTime(timezone=True))):
        op.add_column('submission', column)
    op.execute("""
        UPDATE submission s SET osm_type = u.osm_type, osm_id = u.osm_id, osm_version = u.osm_version,
               osm_changeset = u.changeset, uploaded_version = u.uploaded_version,
               uploaded_at = u.uploaded_at
        FROM submission_osm u WHERE u.submission_id = s.id
    """)
    op.drop_table('submission_osm')
