"""connector requests: the other users who asked for the same portal are told too; a rejection keeps its reason

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 16:00:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('connectorrequest', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(), nullable=False, server_default=''))
    with op.batch_alter_table('connectorrequest', schema=None) as batch_op:
        batch_op.alter_column('reason', server_default=None)
    op.create_table(
        'connectorrequestfollower',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('request_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('notified_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['request_id'], ['connectorrequest.id'], ),
        sa.ForeignKeyConstraint(['user_id'], ['user.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('request_id', 'user_id'),
    )
    with op.batch_alter_table('connectorrequestfollower', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_connectorrequestfollower_request_id'), ['request_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('connectorrequestfollower', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_connectorrequestfollower_request_id'))
    op.drop_table('connectorrequestfollower')
    with op.batch_alter_table('connectorrequest', schema=None) as batch_op:
        batch_op.drop_column('reason')
