"""Glaneur's SQLite database locked by another process (issue 19): a short lock is waited for, a lock held
past ``glaneur.db.SQLITE_LOCK_WAIT_SECONDS`` is a :class:`DatabaseUnavailable` that says so, nothing written.

The lock is taken by another process (``BEGIN EXCLUSIVE`` on the same file), as a backup, a script or a
console left in a transaction would hold it.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import select

from glaneur import admin, db
from glaneur.errors import DatabaseUnavailable
from glaneur.models import Organization

LOCKER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN EXCLUSIVE")
connection.execute("CREATE TABLE IF NOT EXISTS _lock_holder (x)")  # a write of its own, as a real writer has
print("locked", flush=True)
sys.stdin.readline()  # held until told
connection.execute("ROLLBACK")
print("released", flush=True)
"""


@contextlib.contextmanager
def locked_by_another_process(database: Path) -> Iterator[subprocess.Popen]:
    """Another process holds a write lock on the database until the block ends (or ``release(locker)``)."""
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(database)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert locker.stdout.readline().strip() == "locked"
        yield locker
    finally:
        release(locker)


def release(locker: subprocess.Popen) -> None:
    if locker.poll() is None:
        locker.stdin.write("\n")
        locker.stdin.flush()
        assert locker.stdout.readline().strip() == "released"
        locker.wait(30)


def database_file(home: Path) -> Path:
    return home / "glaneur.db"


def organizations() -> list[str]:
    with db.session_scope() as session:
        return list(session.exec(select(Organization.slug)).all())


def test_the_engine_waits_for_a_lock_as_long_as_configured(glaneur_home, monkeypatch):
    with db.get_engine().connect() as connection:
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == db.SQLITE_LOCK_WAIT_SECONDS * 1000
    monkeypatch.setattr(db, "SQLITE_LOCK_WAIT_SECONDS", 2.5)
    with db.get_engine().connect() as connection:  # a new engine for the new wait, not the cached one
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 2500


def test_a_short_lock_is_waited_for_and_the_write_goes_through(glaneur_home):
    with locked_by_another_process(database_file(glaneur_home)) as locker:
        threading.Timer(1.5, release, args=(locker,)).start()
        started = time.monotonic()
        with db.session_scope() as session:
            admin.create_organization(session, "org", "Org")
        waited = time.monotonic() - started
    assert waited >= 1.0, f"the write did not wait for the lock ({waited:.2f} s)"
    assert organizations() == ["org"]


def test_a_lock_held_past_the_wait_is_a_plain_error_and_nothing_is_written(glaneur_home, monkeypatch):
    monkeypatch.setattr(db, "SQLITE_LOCK_WAIT_SECONDS", 0.5)
    with locked_by_another_process(database_file(glaneur_home)):
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable) as raised, db.session_scope() as session:
            admin.create_organization(session, "org", "Org")
        waited = time.monotonic() - started
    assert 0.4 <= waited < 5, waited
    message = raised.value.user_message
    assert message.startswith(f"Glaneur's database sqlite:///{database_file(glaneur_home)} (GLANEUR_DATABASE_URL) "
                              "stayed locked by another process for more than 0.5 s"), message
    assert "the next run records and files the rest" in message
    assert "INSERT" not in message and "[SQL" not in message  # never SQLAlchemy's statement
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    assert organizations() == []  # rolled back: nothing half-written
