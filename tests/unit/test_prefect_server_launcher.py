"""infra/prefect_server.py: a run input deleted from SQLite leaves no byte of it in the database's files.

Prefect's server runs on SQLAlchemy's aiosqlite driver with a write-ahead log; so does this test, on a real file.
Without the hooks the deleted value is still in the files (the test would catch a hook that does nothing).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import create_async_engine

from infra import prefect_server

SECRET = "Mot-de-passe-tape-dans-le-formulaire-7Kq"


def _wal(dbapi_connection, connection_record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode = WAL")  # as Prefect's server does on each connection
    cursor.close()


def _files(database: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in database.parent.glob(database.name + "*")}


def _engine(url: str, *, hooked: bool = True):
    """An async engine as Prefect's server has (SQLite in WAL mode, or asyncpg), with the launcher's hooks or not."""
    engine = create_async_engine(url.replace("postgresql+psycopg://", "postgresql+asyncpg://"))
    if url.startswith("sqlite"):
        event.listen(engine.sync_engine, "connect", _wal)
    if hooked:
        prefect_server.install(engine.sync_engine)
    return engine


async def _insert_then_delete(database: Path, *, hooked: bool) -> dict[str, bytes]:
    engine = _engine(f"sqlite+aiosqlite:///{database}", hooked=hooked)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(
                "CREATE TABLE flow_run_input (id INTEGER PRIMARY KEY, key TEXT UNIQUE, value TEXT)"))
            await connection.execute(text("CREATE TABLE log (id INTEGER PRIMARY KEY, message TEXT)"))
        async with engine.begin() as connection:
            await connection.execute(text("INSERT INTO flow_run_input (key, value) VALUES ('form-description', 'x')"))
            await connection.execute(text("INSERT INTO flow_run_input (key, value) VALUES (:key, :value)"),
                                     {"key": "form-response", "value": f'{{"password": "{SECRET}"}}'})
        async with engine.begin() as connection:  # other writes in between, as on a busy server
            for number in range(200):
                await connection.execute(text("INSERT INTO log (message) VALUES (:m)"), {"m": f"line {number}" * 20})
        async with engine.begin() as connection:
            await connection.execute(text("DELETE FROM flow_run_input WHERE key = 'form-response'"))
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT count(*) FROM flow_run_input"))).scalar() == 1
            return _files(database)  # read while a connection is open: closing the last one checkpoints
    finally:
        await engine.dispose()


@pytest.mark.parametrize("hooked", [False, True], ids=["bare", "glaneur-launcher"])
def test_a_deleted_run_input_leaves_no_bytes_only_with_the_launcher(tmp_path, hooked):
    files = asyncio.run(_insert_then_delete(tmp_path / "prefect.db", hooked=hooked))
    holding = sorted(name for name, data in files.items() if SECRET.encode() in data)
    if hooked:
        assert holding == []
        assert files.get("prefect.db-wal", b"") == b"", "the write-ahead log was not truncated"
    else:
        assert holding, "without the hooks SQLite keeps the deleted row: this test would not see a broken hook"


def test_a_checkpoint_held_back_by_a_reader_is_done_at_the_next_check_in(tmp_path, monkeypatch, caplog):
    import sqlite3

    monkeypatch.setattr(prefect_server, "CHECKPOINT_WAIT_MS", 100)
    prefect_server._pending.clear()
    database = tmp_path / "prefect.db"

    async def scenario() -> tuple[dict[str, bytes], dict[str, bytes]]:
        engine = _engine(f"sqlite+aiosqlite:///{database}")
        try:
            async with engine.begin() as connection:
                await connection.execute(text("CREATE TABLE flow_run_input (id INTEGER PRIMARY KEY, value TEXT)"))
                await connection.execute(text("INSERT INTO flow_run_input (value) VALUES (:value)"), {"value": SECRET})
            reader = sqlite3.connect(database)
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM flow_run_input").fetchall()  # a snapshot older than the delete
            async with engine.begin() as connection:
                await connection.execute(text("DELETE FROM flow_run_input"))
            held_back = _files(database)
            reader.rollback()
            reader.close()
            async with engine.begin() as connection:  # any later use of the pool finishes the job
                await connection.execute(text("SELECT 1"))
            async with engine.connect():
                return held_back, _files(database)
        finally:
            await engine.dispose()

    held_back, later = asyncio.run(scenario())
    assert SECRET.encode() in held_back.get("prefect.db-wal", b""), "the reader did not hold the checkpoint back"
    assert "could not finish" in caplog.text
    assert not any(SECRET.encode() in data for data in later.values())
    assert not prefect_server._pending.is_set()


def test_the_launcher_refuses_several_workers():
    with pytest.raises(SystemExit, match="one worker"):
        prefect_server.main(["start", "--workers", "2"])


def test_on_postgresql_only_vacuum_full_takes_a_deleted_input_out_of_the_table_file(pg_cluster, pg_url):
    """What the README says PostgreSQL needs (Prefect's database in production): pinned on a real server."""
    import psycopg

    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("CREATE TABLE flow_run_input (id serial PRIMARY KEY, key text UNIQUE, value text)")
        connection.execute("INSERT INTO flow_run_input (key, value) SELECT 'k' || g, repeat('x', 100) "
                           "FROM generate_series(1, 50) g")
        connection.execute("INSERT INTO flow_run_input (key, value) VALUES ('form-response', %s)", (SECRET,))

        def in_table_file() -> bool:
            connection.execute("CHECKPOINT")  # the table's pages written to its file
            relative = connection.execute("SELECT pg_relation_filepath('flow_run_input')").fetchone()[0]
            return SECRET.encode() in (pg_cluster.data / relative).read_bytes()

        assert in_table_file()
        connection.execute("DELETE FROM flow_run_input WHERE key = 'form-response'")
        assert in_table_file(), "a DELETE overwrote the row: the README's PostgreSQL advice is out of date"
        connection.execute("VACUUM flow_run_input")
        assert in_table_file(), "a plain VACUUM overwrote the row: the README's PostgreSQL advice is out of date"
        connection.execute("VACUUM FULL flow_run_input")
        assert not in_table_file()
        assert connection.execute("SELECT count(*) FROM flow_run_input").fetchone()[0] == 50


# -- PostgreSQL: the server vacuums flow_run_input itself after a delete ------------------------------------------


def table_files_hold(cluster, dsn: str, secret: str) -> bool:
    """Whether the secret's bytes are in any file of flow_run_input (every fork and segment, its TOAST table)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("CHECKPOINT")  # the table's pages written to its files
        paths = [row[0] for row in connection.execute(
            "SELECT pg_relation_filepath(oid) FROM pg_class WHERE oid = 'flow_run_input'::regclass "
            "OR oid = (SELECT reltoastrelid FROM pg_class WHERE oid = 'flow_run_input'::regclass)")]
    files = [path for relative in paths for path in (cluster.data / relative).parent.glob(
        (cluster.data / relative).name + "*")]
    assert files, "no file found for flow_run_input"
    return any(secret.encode() in path.read_bytes() for path in files)


async def _pg_insert_then_delete(url: str, *, hooked: bool, wait: float) -> None:
    engine = _engine(url, hooked=hooked)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(
                "CREATE TABLE flow_run_input (id serial PRIMARY KEY, key text UNIQUE, value text)"))
            await connection.execute(text("INSERT INTO flow_run_input (key, value) SELECT 'k' || g, repeat('x', 100) "
                                          "FROM generate_series(1, 50) g"))
            await connection.execute(text("INSERT INTO flow_run_input (key, value) VALUES ('form-response', :v)"),
                                     {"v": f'{{"password": "{SECRET}"}}'})
        async with engine.begin() as connection:
            await connection.execute(text("DELETE FROM flow_run_input WHERE key = 'form-response'"))
        await asyncio.sleep(wait)  # the server's event loop goes on meanwhile: the debounced VACUUM runs in it
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT count(*) FROM flow_run_input"))).scalar() == 50
    finally:
        await engine.dispose()


@pytest.mark.parametrize("hooked", [False, True], ids=["bare", "glaneur-launcher"])
def test_on_postgresql_a_deleted_run_input_leaves_the_table_files_only_with_the_launcher(pg_cluster, pg_url, hooked):
    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    wait = prefect_server.VACUUM_QUIET_SECONDS + 2
    asyncio.run(_pg_insert_then_delete(pg_url, hooked=hooked, wait=wait))
    if hooked:
        assert not table_files_hold(pg_cluster, dsn, SECRET)
    else:
        assert table_files_hold(pg_cluster, dsn, SECRET), "PostgreSQL overwrote the row by itself: nothing to test"


def test_on_postgresql_a_vacuum_kept_from_its_lock_gives_up_quickly_and_is_done_later(
    pg_cluster, pg_url, monkeypatch, caplog
):
    """A transaction holding flow_run_input (a long read) keeps VACUUM FULL from its lock: it waits
    VACUUM_LOCK_WAIT_MS only (readers queue behind it meanwhile), then tries again once the table is free."""
    import psycopg

    monkeypatch.setattr(prefect_server, "VACUUM_LOCK_WAIT_MS", 200)
    monkeypatch.setattr(prefect_server, "VACUUM_RETRY_SECONDS", 1.0)
    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    holder = psycopg.connect(dsn)
    released: list[float] = []

    async def scenario() -> bool:
        engine = _engine(pg_url)
        try:
            async with engine.begin() as connection:
                await connection.execute(text("CREATE TABLE flow_run_input (id serial PRIMARY KEY, value text)"))
                await connection.execute(text("INSERT INTO flow_run_input (value) VALUES (:v)"), {"v": SECRET})
            holder.execute("SELECT count(*) FROM flow_run_input").fetchall()  # its transaction stays open
            async with engine.begin() as connection:
                await connection.execute(text("DELETE FROM flow_run_input"))
            await asyncio.sleep(prefect_server.VACUUM_QUIET_SECONDS + 1.5)  # tried, refused its lock
            held_back = table_files_hold(pg_cluster, dsn, SECRET)
            holder.rollback()
            released.append(asyncio.get_running_loop().time())
            for _ in range(40):  # the retry comes within VACUUM_RETRY_SECONDS * 2
                await asyncio.sleep(0.25)
                if not table_files_hold(pg_cluster, dsn, SECRET):
                    return held_back
            raise AssertionError("flow_run_input was not vacuumed once its lock was free")
        finally:
            await engine.dispose()

    try:
        held_back = asyncio.run(scenario())
    finally:
        holder.close()
    assert held_back, "the holder did not keep the VACUUM from its lock"
    assert "VACUUM FULL flow_run_input failed (LockNotAvailableError" in caplog.text


def test_the_stacks_on_postgresql_start_prefect_through_the_launcher():
    import inspect

    import yaml

    from infra import local_stack

    root = Path(__file__).resolve().parents[2]
    prefect = yaml.safe_load((root / "infra" / "docker-compose.yml").read_text())["services"]["prefect"]
    assert prefect["command"].startswith("python -m infra.prefect_server start ")
    assert "./prefect_server.py:/opt/glaneur/infra/prefect_server.py:ro" in prefect["volumes"]
    assert prefect["working_dir"] == "/opt/glaneur"
    assert '"-m", "infra.prefect_server", "start"' in inspect.getsource(local_stack.local_stack)
