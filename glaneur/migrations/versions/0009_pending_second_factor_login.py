"""account: a login waiting for its second factor while its flow run is suspended (a vault reference)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 03:40:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pending_login_ref', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_account_pending_login_ref_vaultentry', 'vaultentry', ['pending_login_ref'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.drop_constraint('fk_account_pending_login_ref_vaultentry', type_='foreignkey')
        batch_op.drop_column('pending_login_ref')
