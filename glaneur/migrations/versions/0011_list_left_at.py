"""account: where a list longer than one run reads was left (the next run goes on from there)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 11:45:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('list_left_at', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column('list_left_since', sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.drop_column('list_left_since')
        batch_op.drop_column('list_left_at')
