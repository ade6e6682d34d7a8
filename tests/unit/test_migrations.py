"""The Alembic migrations: they describe the models exactly, and go down and up again cleanly."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel

import glaneur.models  # noqa: F401  (registers every table on SQLModel.metadata)


def test_migrations_match_the_models(glaneur_home):
    from glaneur.db import get_engine

    with get_engine().connect() as connection:
        context = MigrationContext.configure(connection, opts={"render_as_batch": True})
        differences = compare_metadata(context, SQLModel.metadata)
    assert differences == [], "models changed without a migration: add one (see glaneur/migrations)"


def test_downgrade_to_base_and_upgrade_again(glaneur_home):
    from glaneur.db import alembic_config, get_engine

    config = alembic_config()
    for step, target in ((command.downgrade, "base"), (command.upgrade, "head")):
        with get_engine().begin() as connection:
            config.attributes["connection"] = connection
            step(config, target)
    with get_engine().connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == ScriptDirectory.from_config(
            config
        ).get_current_head()


def test_a_flow_run_on_a_schema_behind_the_code_says_run_glaneur_init(tmp_path, monkeypatch):
    """Flow runs never migrate (start-up and deploy time do); they check, cheaply, and say what to do."""
    import pytest

    from glaneur import db
    from glaneur.errors import ConfigurationError
    from glaneur.settings import reset_settings

    monkeypatch.setenv("GLANEUR_HOME", str(tmp_path / "var"))
    reset_settings()
    config = db.alembic_config()
    head = ScriptDirectory.from_config(config).get_current_head()
    previous = ScriptDirectory.from_config(config).get_revision(head).down_revision
    with db.get_engine().begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, previous)
    with pytest.raises(ConfigurationError, match=f"at schema {previous}.*needs {head}: run glaneur init"):
        db.require_current_schema()
    db.migrate()
    db.require_current_schema()  # current now: no error
    reset_settings()
