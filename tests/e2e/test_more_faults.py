"""More faults, end to end (issue 19): two runs of one channel at once, Glaneur's database going away mid-run
(PostgreSQL) or locked by another process (SQLite), and the Prefect server restarted while a run is paused for
a second factor in its process, or suspended on a worker.

Real Prefect server, real Chromium, the sandbox portals, real filing. After each fault: every invoice
filed exactly once, each object whole, and the history true (no "ok" for a run that did not finish).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlmodel import select

from glaneur.db import session_scope
from glaneur.models import Channel
from glaneur.settings import get_settings, reset_settings
from glaneur.storage import get_storage
from tests.e2e.test_collect_channel import filed_documents, flow_run_logs, make_channel, run, runs
from tests.e2e.test_collect_hostile_portals import control

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

PD = "papeterie-dupont"


def start_run(slug: str) -> tuple[threading.Thread, list]:
    """``run_channel(slug)`` in a thread of this process, as a worker's lane runs it; the list gets its result
    (a summary, or the exception the run raised)."""
    from flows.collect_channel import run_channel

    result: list = []

    def one() -> None:
        try:
            result.append(run_channel(slug))
        except BaseException as error:  # noqa: BLE001  the test looks at it
            result.append(error)

    thread = threading.Thread(target=contextvars.copy_context().run, args=(one,), daemon=True)
    thread.start()
    return thread, result


def finished(thread: threading.Thread, result: list):
    thread.join(300)
    assert not thread.is_alive(), "a collection did not finish"
    return result[0]


def claimed_by(slug: str) -> str | None:
    with session_scope() as session:
        return session.exec(select(Channel.collecting_flow_run_id).where(Channel.slug == slug)).one()


def assert_filed_once_and_whole(expected: int) -> None:
    documents = filed_documents()
    assert len(documents) == expected == len({d.provider_reference for d in documents})
    storage = get_storage(get_settings())
    assert storage.keys() == sorted(d.storage_key for d in documents)  # no object without its row, none extra
    for document in documents:
        content = storage.get(document.storage_key)
        assert hashlib.sha256(content).hexdigest() == document.sha256 and content.startswith(b"%PDF-")


# -- two runs of one channel at once ---------------------------------------------------------------------------


def test_two_runs_of_one_channel_at_once_file_each_invoice_once_and_one_says_already_running(
    glaneur_home, portals, monkeypatch
):
    """The second run starts once the first holds the channel, while the first is still listing (its list shows
    15 s after the page loaded): started together, the first could be done before the second begins."""
    monkeypatch.setenv("GLANEUR_NAVIGATION_TIMEOUT_SECONDS", "40")
    reset_settings()
    slug = make_channel(PD, ("acme-bis", None))
    control(portals, "/accounts/acme-bis/list", {"late_render": 15})
    started = datetime.now(UTC)

    first = start_run(slug)
    deadline = time.monotonic() + 120
    while claimed_by(slug) is None:
        assert time.monotonic() < deadline, "the first run never claimed its channel"
        time.sleep(0.2)
    second = start_run(slug)
    results = [finished(*first), finished(*second)]

    statuses = sorted(result["status"] for result in results)
    assert statuses == ["already_running", "ok"], results
    done = next(result for result in results if result["status"] == "ok")
    skipped = next(result for result in results if result["status"] == "already_running")
    assert done["new"] == 5 and done["already_had"] == 0  # one run filed everything, and says so
    assert skipped["new"] == 0 and skipped["accounts"] == []
    assert "Another run of test-channel is under way" in skipped["message"]
    assert_filed_once_and_whole(5)
    (row,) = runs()  # the history: the run that collected, once; nothing from the one that did nothing
    assert (row.status, row.new_documents, row.already_had) == ("ok", 5, 0)
    with session_scope() as session:
        channel = session.get(Channel, row.channel_id)
        assert channel.status == "ok" and channel.collecting_flow_run_id is None  # released at the end

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterExpectedStartTime, FlowRunFilterName

    with get_client(sync_client=True) as client:  # this test's runs (the session's server holds other tests')
        flow_runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            name=FlowRunFilterName(like_=slug), expected_start_time=FlowRunFilterExpectedStartTime(after_=started)))
    states = sorted((flow_run.state.type.value, flow_run.state.name) for flow_run in flow_runs)
    assert states == [("CANCELLED", "Already running"), ("COMPLETED", "Collected")]

    control(portals, "/accounts/acme-bis/list", {"late_render": 0})
    again = finished(*start_run(slug))  # the claim was given back: the next run collects
    assert (again["status"], again["new"]) == ("ok", 0)  # incremental: what it lists is already filed
    assert_filed_once_and_whole(5)


# -- Glaneur's database unreachable mid-run ---------------------------------------------------------------------


@contextlib.contextmanager
def database_that_goes_down(upstream_port: int, marker: bytes) -> Iterator[dict]:
    """A TCP proxy in front of PostgreSQL that goes down, as a stopped or unreachable database does.

    Once ``fail_at`` statements carrying ``marker`` have been sent by clients, the one that reaches that
    count is not forwarded: every connection is reset and new ones are refused (``down``) until the test
    clears ``down``. Counting statements (not seconds) makes the fault land at the same place every time.
    """
    control = {"fail_at": None, "seen": 0, "down": False, "refused": 0}
    lock = threading.Lock()
    open_sockets: set[socket.socket] = set()
    listener = socket.create_server(("127.0.0.1", 0))

    def drop_all() -> None:
        for sock in list(open_sockets):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        open_sockets.clear()

    def pump(source: socket.socket, target: socket.socket, from_client: bool) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                if from_client and marker in chunk:
                    with lock:
                        control["seen"] += chunk.count(marker)
                        if control["fail_at"] is not None and control["seen"] >= control["fail_at"]:
                            control["down"], control["fail_at"] = True, None
                            drop_all()
                            return
                target.sendall(chunk)
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def serve() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with lock:
                if control["down"]:
                    control["refused"] += 1
                    client.close()
                    continue
                server = socket.create_connection(("127.0.0.1", upstream_port))
                open_sockets.update((client, server))
            for args in ((client, server, True), (server, client, False)):
                threading.Thread(target=pump, args=args, daemon=True).start()

    threading.Thread(target=serve, name="db-going-down", daemon=True).start()
    control["port"] = listener.getsockname()[1]
    try:
        yield control
    finally:
        listener.close()
        with lock:
            drop_all()


DATABASE_PASSWORD = "db-password-never-shown-7Q2"


@pytest.fixture
def dying_database(pg_cluster, pg_url, glaneur_home, monkeypatch) -> Iterator[dict]:
    """Glaneur on PostgreSQL through the proxy, with a password in its URL (which must never be shown)."""
    from glaneur.db import migrate

    user_and_host, database = pg_url.split("://", 1)[1].rsplit("/", 1)
    user = user_and_host.split("@", 1)[0]
    with database_that_goes_down(pg_cluster.port, b"INSERT INTO document ") as proxy:
        monkeypatch.setenv(
            "GLANEUR_DATABASE_URL",
            f"postgresql+psycopg://{user}:{DATABASE_PASSWORD}@127.0.0.1:{proxy['port']}/{database}",
        )
        reset_settings()
        migrate()
        yield proxy
    reset_settings()


def test_the_database_going_away_mid_run_ends_the_run_clearly_and_the_next_run_files_the_rest_once(
    dying_database, portals
):
    from glaneur.errors import DatabaseUnavailable

    proxy = dying_database
    slug = make_channel(PD, ("acme-bis", None))
    proxy["fail_at"] = proxy["seen"] + 2  # the second invoice's row never reaches the database

    with pytest.raises(DatabaseUnavailable) as raised:
        run(slug)

    assert proxy["down"] and proxy["refused"] > 0  # the database really was gone, and the run tried again
    message = raised.value.user_message
    assert "database postgresql+psycopg://" in message and "could not be reached" in message, message
    assert "the next run records and files the rest" in message
    flow_run = last_flow_run(slug)
    assert flow_run.state.type.value == "FAILED"  # never "ok"
    assert "could not be reached" in flow_run.state.message
    shown = flow_run.state.message + message + " ".join(flow_run_logs(str(flow_run.id)))
    for form in (DATABASE_PASSWORD, quote(DATABASE_PASSWORD), DATABASE_PASSWORD.encode().hex()):
        assert form not in shown

    proxy["down"] = False  # the database is back
    second = run(slug)

    assert second["status"] == "ok", second
    # The first invoice's row was written before the fault; the second's object was stored but not its row:
    # the next run finds the object identical, records it, and files the three others.
    assert (second["new"], second["already_had"]) == (4, 1)
    assert_filed_once_and_whole(5)
    first_row, second_row = runs()
    assert (first_row.status, first_row.new_documents) == ("internal_error", 1)  # closed by the sweep, not ok
    assert "could not be reached" in first_row.message and DATABASE_PASSWORD not in first_row.message
    assert (second_row.status, second_row.new_documents) == ("ok", 4)


def last_flow_run(slug: str):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        (flow_run,) = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(like_=slug)),
                                            sort=FlowRunSort.START_TIME_DESC, limit=1)
    return flow_run


# -- the Prefect server restarted while a run is paused for a second factor -------------------------------------


@pytest.fixture
def own_prefect(tmp_path) -> Iterator:
    """A Prefect server this test owns (file-backed SQLite under tmp_path), to stop and start again."""
    from sandbox.prefect_server import LocalPrefect
    from tests.pg import free_port

    server = LocalPrefect(home=tmp_path / "prefect", port=free_port())
    server.start()
    yield server
    server.stop()


def stopped(server, timeout: float = 60) -> None:
    """Stop the server and wait until its port refuses connections (the restart can then bind it)."""
    assert server.stop()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((server.host, server.port), timeout=1).close()
        except OSError:
            return
        time.sleep(0.2)
    raise AssertionError("the Prefect server did not stop")


OUTAGE_SECONDS = 8


def test_a_run_paused_for_a_second_factor_resumes_after_the_prefect_server_restarts(glaneur_home, portals, own_prefect):
    import httpx
    from prefect.flow_runs import resume_flow_run
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from tests.e2e.test_second_factor_flow import make_channel as make_2fa_channel
    from tests.e2e.test_second_factor_flow import paused_run, sent_code

    slug = make_2fa_channel(portals, "double-code")
    code = ("import json, sys\nfrom flows.collect_channel import run_channel\n"
            "print('SUMMARY ' + json.dumps(run_channel(sys.argv[1])), flush=True)\n")
    log = glaneur_home.parent / "collecting.log"
    # Prefect's client alone would give up after one retry (2 s): the wait must ride out the restart itself.
    environment = {**os.environ, **own_prefect.environment(), "PREFECT_CLIENT_MAX_RETRIES": "1"}
    collecting = subprocess.Popen(  # a run as `glaneur run` makes it: paused in its process, the browser open
        [sys.executable, "-c", code, slug], env=environment,
        stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[2],
    )
    try:
        with temporary_settings({PREFECT_API_URL: own_prefect.api_url}):
            run = paused_run(slug, timeout=240)

            stopped(own_prefect)  # the server goes away while the run waits, and comes back on the same database
            gone_at = time.monotonic()
            time.sleep(OUTAGE_SECONDS)  # away far longer than one retry of the client, however fast it restarts
            own_prefect.start()
            away = time.monotonic() - gone_at
            assert away > 6, f"the server was away {away:.1f} s only: longer than the client's own 2 s is the point"

            resume_flow_run(run.id, run_input={"code": sent_code(portals, "double-code")})
        collecting.wait(timeout=240)
    finally:
        if collecting.poll() is None:
            collecting.kill()
            collecting.wait()
    output = log.read_text()
    assert collecting.returncode == 0, output[-4000:]
    summary = json.loads(output.rsplit("SUMMARY ", 1)[1])
    assert summary["status"] == "ok", summary
    assert summary["new"] > 0
    assert_filed_once_and_whole(summary["new"])
    (row,) = runs()
    assert (row.status, row.new_documents) == ("ok", summary["new"])
    state = httpx.get(f"{own_prefect.api_url}/flow_runs/{run.id}", timeout=30).json()["state"]
    assert (state["type"], state["name"]) == ("COMPLETED", "Collected")


@pytest.mark.timeout(1200)  # two flow-run processes started by the worker, and a server restart: slow when loaded
def test_a_run_suspended_on_a_worker_resumes_after_the_prefect_server_restarts(glaneur_home, portals, own_prefect):
    """Suspended (no process, no browser; the pending login in the vault), the worker alive, the server stopped
    and started again on the same database; then the approver types the code."""
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from tests.e2e.conftest import run_inputs
    from tests.e2e.test_invitation import _wait
    from tests.e2e.test_second_factor_flow import _deployed_collection, _processes_of, resume_from_another_process
    from tests.e2e.test_second_factor_flow import make_channel as make_2fa_channel
    from tests.e2e.test_second_factor_flow import sandbox_account, sent_code

    slug = make_2fa_channel(portals, "double-code")
    with temporary_settings({PREFECT_API_URL: own_prefect.api_url}), _deployed_collection(glaneur_home) as worker:
        run = run_deployment("collect-channel/collect-channel", parameters={"channel": slug}, timeout=0)
        suspended = _wait(run.id, lambda state: state.is_paused() and state.name == "Suspended" or state.is_final(),
                          timeout=300)
        worker_log = glaneur_home.parent / "worker.log"
        assert suspended.state.name == "Suspended", worker_log.read_text()[-4000:]
        deadline = time.monotonic() + 30
        while _processes_of(run.id) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _processes_of(run.id) == [], "a process still holds the suspended run"

        stopped(own_prefect)  # the server goes away while the run is suspended, and comes back on the same database
        time.sleep(OUTAGE_SECONDS)  # the worker's polls fail meanwhile
        own_prefect.start()
        assert worker.poll() is None, f"the worker died with the server:\n{worker_log.read_text()[-4000:]}"

        code = sent_code(portals, "double-code")
        resume_from_another_process(run.id, {"code": code})  # what the UI's Resume does
        finished = _wait(run.id, lambda state: state.is_final(), timeout=600)
        assert worker.poll() is None

    assert (finished.state.type.value, finished.state.name) == ("COMPLETED", "Collected"), finished.state.message
    assert_filed_once_and_whole(4)
    (row,) = runs()  # one row: the suspended run's, finished by the resumed process
    assert (row.status, row.new_documents, row.already_had) == ("ok", 4, 0)
    assert row.flow_run_id == str(run.id)
    assert run_inputs(run.id, own_prefect.api_url) == {}  # the code and the form: deleted
    # Nor left in the server's files (its launcher wipes them). The code as the form stored it, in quotes: six bare
    # digits also turn up by chance in the many timestamps' microseconds (seen once).
    password = sandbox_account(portals, "double-code")["password"]
    for database in own_prefect.home.glob("prefect.db*"):
        content = database.read_bytes()
        assert f'"{code}"'.encode() not in content and password.encode() not in content, database.name


# -- Glaneur's SQLite database locked by another process mid-run ------------------------------------------------


def test_the_sqlite_database_locked_past_the_wait_ends_the_run_clearly_and_the_next_run_files_the_rest_once(
    glaneur_home, portals, monkeypatch
):
    """Another process takes a write lock on glaneur.db just before the second invoice's row is written, and
    holds it past the run's wait (``glaneur.db.SQLITE_LOCK_WAIT_SECONDS``, shortened here)."""
    from sqlalchemy import event

    from glaneur import db
    from glaneur.errors import DatabaseUnavailable
    from tests.unit.test_sqlite_lock import locked_by_another_process

    monkeypatch.setattr(db, "SQLITE_LOCK_WAIT_SECONDS", 2.0)
    slug = make_channel(PD, ("acme-bis", None))
    lock = contextlib.ExitStack()
    rows: list[float] = []

    def before(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO DOCUMENT"):
            rows.append(time.monotonic())
            if len(rows) == 2:  # the second invoice is stored, its row not yet written: the lock comes now
                lock.enter_context(locked_by_another_process(glaneur_home / "glaneur.db"))

    engine = db.get_engine()
    event.listen(engine, "before_cursor_execute", before)
    try:
        with lock, pytest.raises(DatabaseUnavailable) as raised:
            run(slug)
        assert len(rows) == 2
        ended = time.monotonic()
    finally:
        event.remove(engine, "before_cursor_execute", before)
    assert ended - rows[1] >= db.SQLITE_LOCK_WAIT_SECONDS  # the run waited for the lock before giving up
    message = raised.value.user_message
    assert "stayed locked by another process for more than 2 s" in message, message
    assert "the next run records and files the rest" in message and "INSERT" not in message
    flow_run = last_flow_run(slug)
    assert flow_run.state.type.value == "FAILED"  # never "ok"
    assert "stayed locked by another process" in flow_run.state.message

    second = run(slug)  # the lock is gone

    assert second["status"] == "ok", second
    # The first invoice's row was written before the lock; the second's object was stored but not its row:
    # the next run finds the object identical, records it, and files the three others.
    assert (second["new"], second["already_had"]) == (4, 1)
    assert_filed_once_and_whole(5)
    first_row, second_row = runs()
    assert (first_row.status, first_row.new_documents) == ("internal_error", 1)  # closed by the sweep, not ok
    assert "stayed locked by another process" in first_row.message
    assert (second_row.status, second_row.new_documents) == ("ok", 4)
