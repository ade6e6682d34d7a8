"""Start Prefect's own server, with its database (SQLite or PostgreSQL) made to forget deleted run inputs.

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
retried at the next connection's return.

On PostgreSQL a deleted row stays in the table's file until the table is rewritten (a plain or automatic
``VACUUM`` only marks the space reusable). After a connection committed such a DELETE and returned to the pool,
the server runs ``VACUUM FULL flow_run_input`` itself, on its own connections (no other credentials needed):

- debounced: one VACUUM after the deletes stop for ``VACUUM_QUIET_SECONDS`` (a form is three rows deleted by
  three requests), never later than ``VACUUM_MAX_DELAY_SECONDS`` after the first;
- short: the table holds only the forms still waiting, so the rewrite takes milliseconds; it needs an ACCESS
  EXCLUSIVE lock, so it waits at most ``VACUUM_LOCK_WAIT_MS`` for it (requests reading run inputs queue behind it
  meanwhile), and gives up past ``VACUUM_STATEMENT_TIMEOUT_MS``; then it tries again later (backing off), and
  after ``VACUUM_ATTEMPTS`` failures it logs an error and waits for the next delete.

What this leaves (the write-ahead log, backups, the filesystem's freed blocks) is in the README, "Reliability and
security". Everything else about the server is Prefect's.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import sys
import threading
import weakref
from dataclasses import dataclass

JOURNAL_SIZE_LIMIT = 4 * 1024 * 1024  # bytes kept of the write-ahead log when it restarts
CHECKPOINT_WAIT_MS = 5000  # how long the checkpoint after a delete waits for readers before leaving it for later
_DELETES_INPUTS = re.compile(r"^\s*DELETE\s+FROM\s+\"?(flow_run_input|flow_run)\"?(\s|$)", re.IGNORECASE)
_FLAG = "glaneur_wipe_inputs"
VACUUM_QUIET_SECONDS = 0.5  # PostgreSQL: one VACUUM FULL once the deletes stop for this long...
VACUUM_MAX_DELAY_SECONDS = 5.0  # ...and never later than this after the first delete
VACUUM_LOCK_WAIT_MS = 1000  # lock_timeout: readers of run inputs queue behind a VACUUM waiting for its lock
VACUUM_STATEMENT_TIMEOUT_MS = 10_000  # a rewrite longer than this (a table far from tiny) is given up
VACUUM_ATTEMPTS = 6  # then an error in the log; the next delete tries again
VACUUM_RETRY_SECONDS = 2.0  # first wait before trying again, doubled at each failure

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
    if not _DELETES_INPUTS.match(statement):
        return
    info = conn.connection.info
    if info.get("glaneur_sqlite"):
        info[_FLAG] = True
    elif conn.dialect.name == "postgresql" and conn.dialect.driver == "asyncpg":  # Prefect's server on PostgreSQL
        info[_FLAG] = weakref.ref(conn.engine)


def _on_checkin(dbapi_connection, connection_record) -> None:
    if dbapi_connection is None:
        return
    if not connection_record.info.get("glaneur_sqlite"):
        flag = connection_record.info.pop(_FLAG, None)
        engine = flag() if isinstance(flag, weakref.ref) else None
        if engine is not None:
            _vacuum_soon(engine)  # the DELETE's transaction has ended: committed, or rolled back (then harmless)
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


# -- PostgreSQL: VACUUM FULL flow_run_input after deletes, debounced -------------------------------------------


@dataclass
class _Vacuum:
    """The pending VACUUM of one event loop (Prefect's server keeps one engine per loop)."""

    engine: object  # sqlalchemy.engine.Engine (the sync side of the server's AsyncEngine)
    asked: float = 0.0  # loop time of the last delete that asked for it
    task: asyncio.Task | None = None


_vacuums: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # event loop -> _Vacuum


def _vacuum_soon(engine) -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # given back outside the server's loop (garbage collected): the next delete asks again
        log.warning("A connection that deleted run inputs was given back outside the event loop; "
                    "flow_run_input is vacuumed at the next delete")
        return
    vacuum = _vacuums.get(loop)
    if vacuum is None:
        vacuum = _vacuums[loop] = _Vacuum(engine)
    vacuum.engine, vacuum.asked = engine, loop.time()
    if vacuum.task is None or vacuum.task.done():
        vacuum.task = loop.create_task(_vacuum_when_quiet(vacuum), name="glaneur-vacuum-flow-run-input")


async def _vacuum_when_quiet(vacuum: _Vacuum) -> None:
    loop = asyncio.get_running_loop()
    failures = 0
    while True:
        first = loop.time()
        while (wait := min(vacuum.asked + VACUUM_QUIET_SECONDS, first + VACUUM_MAX_DELAY_SECONDS) - loop.time()) > 0:
            await asyncio.sleep(wait)
        started = loop.time()
        try:
            await vacuum_full(vacuum.engine)
        except Exception as error:  # noqa: BLE001  the deletes succeeded: never fail anything for this
            failures += 1
            if failures >= VACUUM_ATTEMPTS:
                log.error("VACUUM FULL flow_run_input failed %d times (%s: %s): deleted run inputs stay in the "
                          "table's file until the next delete's VACUUM succeeds", failures, type(error).__name__, error)
                return
            retry = VACUUM_RETRY_SECONDS * 2 ** (failures - 1)
            log.warning("VACUUM FULL flow_run_input failed (%s: %s); tried again in %.0f s",
                        type(error).__name__, error, retry)
            await asyncio.sleep(retry)
            continue
        failures = 0
        if vacuum.asked < started:  # no delete came back to the pool meanwhile: done
            return


async def vacuum_full(engine) -> None:
    """``VACUUM FULL flow_run_input`` on a connection of the server's own pool, its lock wait and length bounded."""
    from sqlalchemy.ext.asyncio import AsyncEngine

    async with AsyncEngine(engine).connect() as connection:
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection  # asyncpg: no transaction is open on it (VACUUM refuses to run in one)
        try:
            await driver.execute(f"SET lock_timeout = {int(VACUUM_LOCK_WAIT_MS)}")
            await driver.execute(f"SET statement_timeout = {int(VACUUM_STATEMENT_TIMEOUT_MS)}")
            await driver.execute("VACUUM FULL flow_run_input")
        finally:
            try:
                await driver.execute("RESET lock_timeout; RESET statement_timeout")
            except Exception:  # noqa: BLE001  never give the pool a connection with these timeouts
                await connection.invalidate()
                raise


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
        # Extra uvicorn workers are new interpreters without these hooks (Prefect allows them on PostgreSQL only).
        sys.exit("infra.prefect_server runs one worker: extra ones would start without its hooks, and deleted run "
                 "inputs would stay in the database's files. Run several servers behind a load balancer instead.")
    install()
    from prefect.cli import app

    sys.argv = [sys.argv[0], "server", *args]  # Prefect's entry point reads its arguments there
    app()


if __name__ == "__main__":
    main()
