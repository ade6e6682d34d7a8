"""statuses: running, second_factor_refused, second_factor_declined, secret_unreadable

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 23:55:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

NEW_VALUES = ('RUNNING', 'SECOND_FACTOR_REFUSED', 'SECOND_FACTOR_DECLINED', 'SECRET_UNREADABLE')
OLD_VALUES = (
    'OK', 'AWAITING_CREDENTIALS', 'AWAITING_SECOND_FACTOR', 'SECOND_FACTOR_TIMEOUT', 'WRONG_CREDENTIALS',
    'ACCOUNT_LOCKED', 'CREDENTIALS_EXPIRED', 'ACTION_NEEDED', 'PORTAL_CHANGED', 'PORTAL_UNAVAILABLE',
    'RATE_LIMITED', 'NOT_COMPATIBLE', 'STORAGE_ERROR', 'INTERNAL_ERROR', 'NEW',
)
# Every column typed with the ``status`` enum.
COLUMNS = (('channel', 'status'), ('account', 'status'), ('collectionrun', 'status'), ('channel', 'notified_status'))


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == 'postgresql':
        for value in NEW_VALUES:
            op.execute(f"ALTER TYPE status ADD VALUE IF NOT EXISTS '{value}'")
        return
    # SQLite stores the enum as VARCHAR sized on the longest name: widen it for the new names.
    for table, column in COLUMNS:
        with op.batch_alter_table(table) as batch_op:
            batch_op.alter_column(
                column,
                type_=sa.Enum(*OLD_VALUES, *NEW_VALUES, name='status'),
                existing_type=sa.Enum(*OLD_VALUES, name='status'),
            )


def downgrade() -> None:
    # Rows in a new status fall back to the nearest old one, so that the older code can read them.
    fallback = {'RUNNING': 'INTERNAL_ERROR', 'SECOND_FACTOR_REFUSED': 'AWAITING_SECOND_FACTOR',
                'SECOND_FACTOR_DECLINED': 'AWAITING_SECOND_FACTOR', 'SECRET_UNREADABLE': 'AWAITING_CREDENTIALS'}
    for table, column in COLUMNS:
        for new, old in fallback.items():
            op.execute(f"UPDATE {table} SET {column} = '{old}' WHERE {column} = '{new}'")
    bind = op.get_bind()
    if bind.dialect.name == 'postgresql':
        for table, column in COLUMNS:
            op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE VARCHAR USING {column}::text")
        op.execute("DROP TYPE status")
        sa.Enum(*OLD_VALUES, name='status').create(bind)
        for table, column in COLUMNS:
            op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE status USING {column}::status")
        return
    for table, column in COLUMNS:
        with op.batch_alter_table(table) as batch_op:
            batch_op.alter_column(
                column,
                type_=sa.Enum(*OLD_VALUES, name='status'),
                existing_type=sa.Enum(*OLD_VALUES, *NEW_VALUES, name='status'),
            )
