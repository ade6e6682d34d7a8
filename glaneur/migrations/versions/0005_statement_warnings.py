"""statements: warnings, money key (same statement across formats), review hold (route HELD)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 00:30:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

OLD_ROUTES = ('PENDING', 'PARTNER', 'GLOBAL', 'ASIDE')
NEW_ROUTES = (*OLD_ROUTES, 'HELD')


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == 'postgresql':
        op.execute("ALTER TYPE statementroute ADD VALUE IF NOT EXISTS 'HELD'")
    with op.batch_alter_table('statement') as batch_op:
        if bind.dialect.name != 'postgresql':
            batch_op.alter_column('route', type_=sa.Enum(*NEW_ROUTES, name='statementroute'),
                                  existing_type=sa.Enum(*OLD_ROUTES, name='statementroute'), existing_nullable=False)
        batch_op.add_column(sa.Column('money_key', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column('warnings', sqlmodel.sql.sqltypes.AutoString(), nullable=False,
                                      server_default='[]'))
        batch_op.add_column(sa.Column('reviewed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_statement_money_key'), ['money_key'], unique=False)
    with op.batch_alter_table('statement') as batch_op:
        batch_op.alter_column('warnings', server_default=None)
    with op.batch_alter_table('organization') as batch_op:
        batch_op.add_column(sa.Column('hold_statements_with_warnings', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    with op.batch_alter_table('organization') as batch_op:
        batch_op.alter_column('hold_statements_with_warnings', server_default=None)


def downgrade() -> None:
    # Held statements go back to "not routed yet": the older code routes them on its next run.
    op.execute("UPDATE statement SET route = 'PENDING' WHERE route = 'HELD'")
    with op.batch_alter_table('organization') as batch_op:
        batch_op.drop_column('hold_statements_with_warnings')
    with op.batch_alter_table('statement') as batch_op:
        batch_op.drop_index(batch_op.f('ix_statement_money_key'))
        batch_op.drop_column('reviewed_at')
        batch_op.drop_column('warnings')
        batch_op.drop_column('money_key')
    bind = op.get_bind()
    if bind.dialect.name == 'postgresql':
        op.execute("ALTER TABLE statement ALTER COLUMN route TYPE VARCHAR USING route::text")
        op.execute("DROP TYPE statementroute")
        sa.Enum(*OLD_ROUTES, name='statementroute').create(bind)
        op.execute("ALTER TABLE statement ALTER COLUMN route TYPE statementroute USING route::statementroute")
        return
    with op.batch_alter_table('statement') as batch_op:
        batch_op.alter_column('route', type_=sa.Enum(*OLD_ROUTES, name='statementroute'),
                              existing_type=sa.Enum(*NEW_ROUTES, name='statementroute'), existing_nullable=False)
