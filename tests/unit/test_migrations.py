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
