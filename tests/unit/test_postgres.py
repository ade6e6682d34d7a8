"""The production database: migrations and the domain on a real PostgreSQL (a throwaway cluster, tests/pg.py)."""

from __future__ import annotations

from datetime import date

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlmodel import SQLModel

import glaneur.models  # noqa: F401  (registers every table on SQLModel.metadata)
from glaneur.settings import get_settings, reset_settings


@pytest.fixture
def on_postgres(pg_url, tmp_path, monkeypatch):
    """Glaneur pointed at a fresh PostgreSQL database, given as operators write it: postgresql://, no driver."""
    for name in ("GLANEUR_VAULT_KEY", "GLANEUR_VAULT_KEY_FILE", "GLANEUR_STORAGE_PATH", "GLANEUR_ACTING_USER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GLANEUR_HOME", str(tmp_path / "var"))
    monkeypatch.setenv("GLANEUR_DATABASE_URL", pg_url.replace("postgresql+psycopg://", "postgresql://"))
    reset_settings()
    yield pg_url
    reset_settings()


def test_a_postgresql_url_without_driver_uses_psycopg(on_postgres):
    assert get_settings().resolved_database_url == on_postgres
    from glaneur.db import get_engine

    assert get_engine().dialect.driver == "psycopg"


def test_migrations_upgrade_match_the_models_downgrade_and_upgrade_again(on_postgres):
    from glaneur.db import alembic_config, get_engine, migrate

    migrate()
    engine = get_engine()
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert differences == [], "models and migrations differ on PostgreSQL"

    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    # Downgrades must drop PostgreSQL's named enum types too, or the upgrade below fails on "already exists".
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    with engine.connect() as connection:
        head = ScriptDirectory.from_config(config).get_current_head()
        assert MigrationContext.configure(connection).get_current_revision() == head
        assert compare_metadata(MigrationContext.configure(connection), SQLModel.metadata) == []
    assert set(SQLModel.metadata.tables) <= set(inspect(engine).get_table_names())


def test_a_channel_with_its_account_round_trips(on_postgres):
    from glaneur.db import migrate, session_scope
    from glaneur.invoices import collection
    from tests import factories

    migrate()
    with session_scope() as session:
        owner = factories.organization(session, "acme", "Acme", owner="owner@acme.example")
        factories.channel(session, owner, "acme-papeterie", accounts=[("compta", "pg-Pa55-é")])

    with session_scope() as session:
        plan = collection.load_plan(session, "acme-papeterie", get_settings(), date(2026, 12, 1))
        assert (plan.organization, plan.binder, plan.provider) == ("acme", "factures", "papeterie-dupont")
        assert [account.login for account in plan.accounts] == ["compta"]
        credentials = collection.read_credentials(session, plan.accounts[0].id)
    assert (credentials.login, credentials.password) == ("compta", "pg-Pa55-é")


def test_one_run_of_a_channel_at_a_time_on_postgresql(on_postgres):
    from glaneur.db import migrate
    from tests.unit.test_channel_claim import a_channel, assert_one_run_at_a_time

    migrate()
    assert_one_run_at_a_time(a_channel())
