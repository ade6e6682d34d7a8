"""One run of a channel at a time (collection.claim_channel), and Glaneur's database going away (db.session_scope):
on SQLite here, on PostgreSQL in test_postgres.py."""

from __future__ import annotations

import threading

import pytest
from sqlmodel import select

from glaneur.db import session_scope
from glaneur.errors import DatabaseUnavailable
from glaneur.invoices import collection
from glaneur.models import Channel
from glaneur.settings import reset_settings
from tests import factories


def a_channel() -> int:
    return factories.collection_channel(label="Test")


def claim(channel_id: int, flow_run_id: str, replacing: str | None = None) -> str | None:
    with session_scope() as session:
        return collection.claim_channel(session, channel_id, flow_run_id, replacing=replacing)


def claims_at_once(channel_id: int, count: int) -> dict[str, str | None]:
    """``count`` flow runs claim the channel at the same instant; flow run -> what each was told."""
    told: dict[str, str | None] = {}
    start = threading.Barrier(count)

    def one(flow_run_id: str) -> None:
        start.wait()
        told[flow_run_id] = claim(channel_id, flow_run_id)

    threads = [threading.Thread(target=one, args=(f"run-{n}",)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return told


def assert_one_run_at_a_time(channel_id: int) -> None:
    told = claims_at_once(channel_id, 6)
    winners = [run for run, holder in told.items() if holder is None]
    assert len(winners) == 1, told
    (winner,) = winners
    assert all(holder == winner for run, holder in told.items() if run != winner)  # each told who holds it
    assert claim(channel_id, winner) is None  # the same run again (resumed after a suspension): still its own
    assert claim(channel_id, "late") == winner
    assert claim(channel_id, "late", replacing="someone-else") == winner  # only the holder can be replaced
    assert claim(channel_id, "late", replacing=winner) is None  # the holder ended: taken over
    with session_scope() as session:
        collection.release_channel(session, winner)  # the old holder's hook: another's claim is left alone
        assert session.get(Channel, channel_id).collecting_flow_run_id == "late"
        collection.release_channel(session, "late")
        assert session.get(Channel, channel_id).collecting_flow_run_id is None
    assert claim(channel_id, "next") is None


def test_one_run_of_a_channel_at_a_time_on_sqlite(glaneur_home):
    assert_one_run_at_a_time(a_channel())


def test_an_unreachable_database_is_a_plain_error_without_the_password(tmp_path, monkeypatch):
    monkeypatch.setenv("GLANEUR_HOME", str(tmp_path / "var"))
    monkeypatch.setenv("GLANEUR_DATABASE_URL", "postgresql://glaneur:pw-never-shown@127.0.0.1:1/glaneur")
    reset_settings()
    try:
        with pytest.raises(DatabaseUnavailable) as raised, session_scope() as session:
            session.exec(select(Channel)).all()
    finally:
        reset_settings()
    message = raised.value.user_message
    assert message.startswith("Glaneur's database postgresql+psycopg://glaneur:***@127.0.0.1:1/glaneur ")
    assert "could not be reached" in message and "the next run records and files the rest" in message
    assert "pw-never-shown" not in message and "SELECT" not in message
    assert raised.value.__cause__ is None and raised.value.__suppress_context__  # SQLAlchemy's text not chained


def test_an_unreadable_sqlite_file_is_a_plain_error(tmp_path, monkeypatch):
    (tmp_path / "glaneur.db").mkdir()  # a folder where the database file should be: SQLite cannot open it
    monkeypatch.setenv("GLANEUR_HOME", str(tmp_path))
    reset_settings()
    try:
        with pytest.raises(DatabaseUnavailable, match="could not be reached: unable to open database file"):
            with session_scope() as session:
                session.exec(select(Channel)).all()
    finally:
        reset_settings()
