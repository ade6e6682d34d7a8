"""channel: the supplier chosen in POWENS's list (engine POWENS, "Choisissez un fournisseur parmi la liste proposée")

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 13:50:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('channel', schema=None) as batch_op:
        batch_op.add_column(sa.Column('biller', sqlmodel.sql.sqltypes.AutoString(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('channel', schema=None) as batch_op:
        batch_op.drop_column('biller')
