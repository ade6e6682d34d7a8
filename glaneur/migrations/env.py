from alembic import context
from sqlalchemy import engine_from_config, pool
from sqlmodel import SQLModel

import glaneur.models  # noqa: F401  (registers the tables)

config = context.config
target_metadata = SQLModel.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        engine = engine_from_config({"sqlalchemy.url": config.get_main_option("sqlalchemy.url")}, poolclass=pool.NullPool)
        with engine.connect() as connection:
            _migrate(connection)
            connection.commit()
    else:
        _migrate(connection)


def _migrate(connection) -> None:  # noqa: ANN001
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


run()
