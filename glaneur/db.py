"""Database engine and sessions. Schema changes go through Alembic migrations (glaneur/migrations)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlmodel import Session, create_engine

from glaneur.errors import ConfigurationError, DatabaseUnavailable
from glaneur.settings import get_settings

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# SQLite: how long a write waits for another process's lock (a long write, a backup, a tool at the console)
# before the run ends DatabaseUnavailable, saying so. Glaneur's own writes are short; a worker's threads wait
# for one another well within it.
SQLITE_LOCK_WAIT_SECONDS = 30.0


def _engine(url: str) -> Engine:
    """The engine of a URL; a URL that cannot work is a :class:`ConfigurationError` naming GLANEUR_DATABASE_URL."""
    try:
        return _cached_engine(url, SQLITE_LOCK_WAIT_SECONDS)
    except NoSuchModuleError:  # a subclass of ArgumentError: first
        raise ConfigurationError(
            f"GLANEUR_DATABASE_URL names a database kind SQLAlchemy does not know ({_driver(url)}): "
            "use postgresql://... (production) or sqlite:///... ."
        ) from None
    except (ArgumentError, ValueError):  # SQLAlchemy's messages quote the URL, password included: never shown
        raise ConfigurationError(
            "GLANEUR_DATABASE_URL is not a database URL: expected a SQLAlchemy URL such as "
            "postgresql://user:password@host:5432/glaneur or sqlite:////absolute/path/glaneur.db "
            "(a password with special characters must be percent-encoded)."
        ) from None
    except ImportError as error:
        raise ConfigurationError(
            f"GLANEUR_DATABASE_URL needs the Python driver {error.name or _driver(url)!s}, which is not installed. "
            "For PostgreSQL write postgresql://... (Glaneur installs psycopg and uses it), or install that driver."
        ) from None


def _driver(url: str) -> str:
    return url.split("://", 1)[0] if "://" in url else "no scheme"


@lru_cache
def _cached_engine(url: str, lock_wait: float) -> Engine:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        # timeout: SQLite's busy timeout, how long a statement waits for another connection's lock
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": lock_wait})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # noqa: ANN001
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA secure_delete=ON")  # purged secrets do not linger in free pages
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def get_engine() -> Engine:
    return _engine(get_settings().resolved_database_url)


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # The option goes through ConfigParser interpolation: a percent-encoded password needs its % doubled.
    config.set_main_option("sqlalchemy.url", (url or get_settings().resolved_database_url).replace("%", "%%"))
    return config


_current: set[str] = set()  # database URLs whose schema is known current in this process
_migrating = threading.Lock()  # Alembic's command API keeps module globals: one upgrade at a time per process


def migrate() -> None:
    """Bring the database schema to the latest migration (idempotent; safe from several threads)."""
    config = alembic_config()
    engine = get_engine()
    try:
        with _migrating, engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        _current.add(get_settings().resolved_database_url)
    except OperationalError as error:
        if error.statement is not None:  # a statement failed: not a connection problem
            raise
        reason = str(error.orig).strip().splitlines()[0] if error.orig else type(error).__name__
        raise ConfigurationError(
            f"Cannot connect to the database {engine.url.render_as_string(hide_password=True)} "
            f"(GLANEUR_DATABASE_URL): {reason}"
        ) from None


def require_current_schema() -> None:
    """Refuse to run on a database whose schema is behind the code (cheap: one query, once per process).

    Migrations run at start-up or deploy time (``glaneur init``, ``make deploy``, the demo), never at the
    top of every flow run: a flow run on an old schema fails at once and says what to do.
    """
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    url = get_settings().resolved_database_url
    if url in _current:
        return
    engine = get_engine()
    try:
        with engine.connect() as connection:
            found = set(MigrationContext.configure(connection).get_current_heads())
    except OperationalError as error:
        reason = str(error.orig).strip().splitlines()[0] if error.orig else type(error).__name__
        raise ConfigurationError(
            f"Cannot connect to the database {engine.url.render_as_string(hide_password=True)} "
            f"(GLANEUR_DATABASE_URL): {reason}"
        ) from None
    expected = set(ScriptDirectory.from_config(alembic_config(url)).get_heads())
    if found != expected:
        where = engine.url.render_as_string(hide_password=True)
        raise ConfigurationError(
            f"The database {where} is at schema {', '.join(sorted(found)) or 'none (empty)'}, the code needs "
            f"{', '.join(sorted(expected))}: run glaneur init (or make deploy) to migrate it, then run again."
        )
    _current.add(url)


def database_unavailable(error: OperationalError) -> DatabaseUnavailable:
    """What a run says when its database goes away or stays locked: where (password hidden), why, and that
    nothing is lost."""
    reason = str(error.orig).strip().splitlines()[0] if error.orig else type(error).__name__
    engine = get_engine()
    where = engine.url.render_as_string(hide_password=True)
    if engine.dialect.name == "sqlite" and reason in ("database is locked", "database table is locked"):
        return DatabaseUnavailable(
            f"Glaneur's database {where} (GLANEUR_DATABASE_URL) stayed locked by another process for more than "
            f"{SQLITE_LOCK_WAIT_SECONDS:g} s (another program writing to it, a backup, a console left in a "
            "transaction). Invoices filed before are kept; once the lock is released, the next run records and "
            "files the rest, each once."
        )
    return DatabaseUnavailable(
        f"Glaneur's database {where} (GLANEUR_DATABASE_URL) could not be reached: {reason}. Invoices filed "
        "before are kept; once the database is back, the next run records and files the rest, each once."
    )


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session that commits on success and rolls back on error.

    The database going away (stopped, unreachable, locked past the timeout) is a :class:`DatabaseUnavailable`
    with a plain message, never SQLAlchemy's text (which quotes statements and their parameters).
    """
    with Session(get_engine(), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except OperationalError as error:
            with suppress(Exception):  # the connection may be gone: nothing to roll back on it
                session.rollback()
            raise database_unavailable(error) from None
        except BaseException:
            session.rollback()
            raise
