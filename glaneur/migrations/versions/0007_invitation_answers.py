"""invitation: answers refused so far and why (the holder is asked again with the reason)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 00:20:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('invitation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('refused_answers', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(
            sa.Column('refusal', sqlmodel.sql.sqltypes.AutoString(), nullable=False, server_default='')
        )
        batch_op.add_column(sa.Column('owner_told_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('invitation', schema=None) as batch_op:
        batch_op.drop_column('owner_told_at')
        batch_op.drop_column('refusal')
        batch_op.drop_column('refused_answers')
