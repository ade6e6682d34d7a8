"""bank side: the bank referential, consent, Powens connections, accounts, movements

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 00:00:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

consent_state = sa.Enum('GIVEN', 'REFUSED', 'REVOKED', name='bankconsentstate')


def upgrade() -> None:
    op.create_table('bank',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('name_key', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('created_by_user_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['created_by_user_id'], ['user.id'], ),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('organization_id', 'name_key', name='uq_bank_name')
    )
    with op.batch_alter_table('bank', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bank_organization_id'), ['organization_id'], unique=False)

    op.create_table('bankconsent',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.Column('bank_id', sa.Integer(), nullable=False),
    sa.Column('holder_email', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('holder_user_id', sa.Integer(), nullable=True),
    sa.Column('recorded_by_user_id', sa.Integer(), nullable=True),
    sa.Column('text', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('text_sha256', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('state', consent_state, nullable=False),
    sa.Column('given_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('revoked_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('revoked_by_user_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['bank_id'], ['bank.id'], ),
    sa.ForeignKeyConstraint(['holder_user_id'], ['user.id'], ),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], ),
    sa.ForeignKeyConstraint(['recorded_by_user_id'], ['user.id'], ),
    sa.ForeignKeyConstraint(['revoked_by_user_id'], ['user.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('bankconsent', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bankconsent_bank_id'), ['bank_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_bankconsent_organization_id'), ['organization_id'], unique=False)

    op.create_table('bankconnection',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.Column('bank_id', sa.Integer(), nullable=False),
    sa.Column('channel_id', sa.Integer(), nullable=False),
    sa.Column('consent_id', sa.Integer(), nullable=True),
    sa.Column('powens_user_id', sa.Integer(), nullable=True),
    sa.Column('token_ref', sa.Integer(), nullable=True),
    sa.Column('powens_connection_id', sa.Integer(), nullable=True),
    sa.Column('powens_connector_id', sa.Integer(), nullable=True),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('error_message', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('connected_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('first_movements_expected_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('last_sync_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('cursor', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('deleted_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['bank_id'], ['bank.id'], ),
    sa.ForeignKeyConstraint(['channel_id'], ['channel.id'], ),
    sa.ForeignKeyConstraint(['consent_id'], ['bankconsent.id'], ),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], ),
    sa.ForeignKeyConstraint(['token_ref'], ['vaultentry.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('channel_id')
    )
    with op.batch_alter_table('bankconnection', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bankconnection_bank_id'), ['bank_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_bankconnection_organization_id'), ['organization_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_bankconnection_powens_connection_id'), ['powens_connection_id'], unique=False)

    op.create_table('bankaccount',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('connection_id', sa.Integer(), nullable=False),
    sa.Column('powens_id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('number', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('iban', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('balance', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['connection_id'], ['bankconnection.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('connection_id', 'powens_id', name='uq_bankaccount_powens')
    )
    with op.batch_alter_table('bankaccount', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bankaccount_connection_id'), ['connection_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_bankaccount_iban'), ['iban'], unique=False)

    op.create_table('bankmovement',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('bank_account_id', sa.Integer(), nullable=False),
    sa.Column('powens_id', sa.Integer(), nullable=False),
    sa.Column('booking_date', sa.Date(), nullable=False),
    sa.Column('value_date', sa.Date(), nullable=True),
    sa.Column('real_date', sa.Date(), nullable=True),
    sa.Column('amount', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('wording', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('original_wording', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('coming', sa.Boolean(), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('powens_last_update', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('first_seen_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('filed_version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['bank_account_id'], ['bankaccount.id'], ),
    sa.ForeignKeyConstraint(['run_id'], ['collectionrun.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('bank_account_id', 'powens_id', name='uq_bankmovement_powens')
    )
    with op.batch_alter_table('bankmovement', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bankmovement_bank_account_id'), ['bank_account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_bankmovement_booking_date'), ['booking_date'], unique=False)


def downgrade() -> None:
    for table, indexes in (
        ('bankmovement', ('ix_bankmovement_booking_date', 'ix_bankmovement_bank_account_id')),
        ('bankaccount', ('ix_bankaccount_iban', 'ix_bankaccount_connection_id')),
        ('bankconnection', ('ix_bankconnection_powens_connection_id', 'ix_bankconnection_organization_id',
                            'ix_bankconnection_bank_id')),
        ('bankconsent', ('ix_bankconsent_organization_id', 'ix_bankconsent_bank_id')),
        ('bank', ('ix_bank_organization_id',)),
    ):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for index in indexes:
                batch_op.drop_index(batch_op.f(index))
        op.drop_table(table)
    consent_state.drop(op.get_bind(), checkfirst=True)
