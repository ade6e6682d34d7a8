"""Start Prefect's own server, with its SQLite database made to forget deleted run inputs.

    python -m infra.prefect_server start --host 127.0.0.1 --port 4200     (any ``prefect server start`` option)

What an approver or an account holder types in a run's form (a second-factor code, a password, a TOTP seed) is
stored by Prefect in clear in ``flow_run_input``; Glaneur reads it and deletes it at once (tasks/human.py). On
SQLite a DELETE does not remove the bytes: the row stays in the page's free space, in the freelist, and in every
frame of the write-ahead log that held the page, until they happen to be reused. This module adds three things to
every SQLite connection of the server process, then hands over to ``prefect server start`` unchanged:

- ``PRAGMA secure_delete = ON``: a deleted row, and a page freed by a delete, are overwritten with zeros;
- ``PRAGMA journal_size_limit``: the write-ahead log is cut back to that size each time it restarts;
- after a connection committed a DELETE of ``flow_run_input`` rows (or of flow runs, whose inputs go with them),
  ``PRAGMA wal_checkpoint(TRUNCATE)`` when it returns to the pool, before the API answers the DELETE: the zeroed
  pages replace the old ones in the database file and the log, with the inserted row's frames, is cut to 0 bytes.

A checkpoint that could not finish (a reader still on an old snapshot past the busy timeout) is logged and
retried at the next connection's return. Everything else about the server is Prefect's. With PostgreSQL none of
this applies (the hooks only touch SQLite connections); see the README, "Reliability and security", for what
PostgreSQL needs.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import sys
import threading

JOURNAL_SIZE_LIMIT = 4 * 1024 * 1024  # bytes kept of the write-ahead log when it restarts
CHECKPOINT_WAIT_MS = 5000  # how long the checkpoint after a delete waits for readers before leaving it for later
_DELETES_INPUTS = re.compile(r"^\s*DELETE\s+FROM\s+\"?(flow_run_input|flow_run)\"?(\s|$)", re.IGNORECASE)
_FLAG = "glaneur_wipe_inputs"

log = logging.getLogger("glaneur.prefect_server")
_pending = threading.Event()  # a wipe that could not be done where it was due: the next check-in does it
_installed = False


def _is_sqlite(dbapi_connection) -> bool:
    if isinstance(dbapi_connection, sqlite3.Connection):
        return True
    return type(dbapi_connection).__module__.startswith("sqlalchemy.dialects.sqlite")


def _on_connect(dbapi_connection, connection_record) -> None:
    if not _is_sqlite(dbapi_connection):
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA secure_delete = ON")
    cursor.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
    cursor.close()
    connection_record.info["glaneur_sqlite"] = True


def _after_execute(conn, cursor, statement, parameters, context, executemany) -> None:
    if _DELETES_INPUTS.match(statement) and conn.connection.info.get("glaneur_sqlite"):
        conn.connection.info[_FLAG] = True


def _on_checkin(dbapi_connection, connection_record) -> None:
    if dbapi_connection is None or not connection_record.info.get("glaneur_sqlite"):
        return
    if not (connection_record.info.pop(_FLAG, False) or _pending.is_set()):
        return
    from sqlalchemy.util.concurrency import in_greenlet

    if not isinstance(dbapi_connection, sqlite3.Connection) and not in_greenlet():
        _pending.set()  # an async connection given back outside the event loop's greenlet (garbage collected)
        return
    _pending.clear()
    try:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout")
        (waits,) = cursor.fetchone()
        # Readers still on an old snapshot hold the checkpoint back: wait for them a little, not Prefect's 60 s
        # (this connection is not back in the pool meanwhile), and retry at the next check-in if they stay.
        cursor.execute(f"PRAGMA busy_timeout = {CHECKPOINT_WAIT_MS}")
        try:
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            busy, *_ = cursor.fetchone()
        finally:
            cursor.execute(f"PRAGMA busy_timeout = {int(waits)}")
            cursor.close()
    except Exception as error:  # noqa: BLE001  the DELETE itself succeeded: never fail the request for this
        _pending.set()
        log.warning("Checkpoint after deleting run inputs failed (%s: %s); retried at the next one",
                    type(error).__name__, error)
        return
    if busy:
        _pending.set()
        log.warning("Checkpoint after deleting run inputs could not finish (readers busy); retried at the next one")


def install(engine=None) -> None:
    """Register the hooks on every SQLAlchemy engine and pool of this process (once), or on ``engine`` only."""
    global _installed
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.pool import Pool

    if engine is not None:
        event.listen(engine, "connect", _on_connect)
        event.listen(engine, "checkin", _on_checkin)
        event.listen(engine, "after_cursor_execute", _after_execute)
        return
    if _installed:
        return
    event.listen(Pool, "connect", _on_connect)
    event.listen(Pool, "checkin", _on_checkin)
    event.listen(Engine, "after_cursor_execute", _after_execute)
    _installed = True


def main(argv: list[str] | None = None) -> None:
    """``prefect server ...`` with the hooks installed; the server runs in this process (one worker)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--workers" in args or any(arg.startswith("--workers=") for arg in args):
        # Extra uvicorn workers are new interpreters without these hooks; Prefect allows them on PostgreSQL only.
        sys.exit("infra.prefect_server runs one worker; for several, use PostgreSQL and `prefect server start`.")
    install()
    from prefect.cli import app

    sys.argv = [sys.argv[0], "server", *args]  # Prefect's entry point reads its arguments there
    app()


if __name__ == "__main__":
    main()
