"""A run's life end to end: a real Prefect server, a real `process` worker, real Chromium, the sandbox portals.

A run is ``running`` until it says what happened; a run killed, crashed or cancelled is closed as
``internal_error`` (never ``ok``) and its flow run does not stay Running; a failed run ends
cleanly with a state named after its status and its summary readable; runs are tagged with
their organisation, provider and kind; the day of a run is the day it was scheduled for in
GLANEUR_TIMEZONE, even on a worker whose clock is UTC; and the artifacts escape what people typed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from glaneur import admin
from cli.main import app
from glaneur.db import session_scope
from glaneur.models import Account, Channel, CollectionRun, ConnectorRequest, Notification, OrganizationKind, User
from glaneur.settings import PROJECT_ROOT
from glaneur.statuses import Status, describe
from sandbox.data import SUPPLIERS, accounts_of
from tests import factories

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

POOL = "glaneur-lifecycle"
SLUG = "org-papeterie"
HOSTILE = "[x](javascript:alert(1))"


def make_channel(login: str, secret: str | None = None, *, label: str = "Papeterie", org_name: str = "Org") -> str:
    password = secret or accounts_of(SUPPLIERS["papeterie-dupont"])[login].password
    factories.collection_channel(SLUG, label=label, org_name=org_name, accounts=[(login, password)])
    return SLUG


def runs() -> list[CollectionRun]:
    with session_scope() as session:
        return list(session.exec(select(CollectionRun).order_by(CollectionRun.id)).all())


def history_output() -> str:
    result = CliRunner().invoke(app, ["history", "--channel", SLUG], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    return result.output


def deploy(entrypoint: str, name: str) -> str:
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=POOL, type="process"))
        except ObjectAlreadyExists:
            pass
    flow.from_source(source=str(PROJECT_ROOT), entrypoint=entrypoint).deploy(
        name=name, work_pool_name=POOL, build=False, push=False, print_next_steps=False
    )
    return f"{entrypoint.rsplit(':', 1)[1].replace('_', '-')}/{name}"


@contextmanager
def worker(home: Path, output: Path, **env: str):
    """A real process worker; its output (and its flow runs' processes') goes to ``output``."""
    from prefect.settings import PREFECT_API_URL

    environment = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PREFECT_WORKER_QUERY_SECONDS": "1",
                   "PREFECT_LOGGING_LEVEL": "INFO", "GLANEUR_HOME": str(home), **env}
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, "--type", "process"],
            env=environment, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def flow_run(flow_run_id):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id)


def wait_for(what, check, timeout: float = 180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"still waiting for {what} after {timeout} s")


def final(flow_run_id, timeout: float = 180):
    return wait_for(f"flow run {flow_run_id} to end", lambda: (r := flow_run(flow_run_id)).state.is_final() and r, timeout)


def flow_run_process(worker_pid: int, flow_run_id) -> int:
    """The pid of the process the worker started for this flow run (one of the worker's descendants)."""

    def children(pid: int) -> list[int]:
        found = []
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                found += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
        return found

    def lookup():
        stack, marker = children(worker_pid), f"PREFECT__FLOW_RUN_ID={flow_run_id}".encode()
        while stack:
            pid = stack.pop()
            try:
                if marker in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") and b"prefect.engine" in Path(
                    f"/proc/{pid}/cmdline"
                ).read_bytes():
                    return pid
            except OSError:
                continue
            stack += children(pid)
        return None

    return wait_for("the flow run's process", lookup, timeout=60)


def a_running_row():
    rows = runs()
    return rows and rows[-1].status == Status.RUNNING and rows[-1]


def slow_channel_deployment() -> str:
    """The slow account (every page 1.5 s), to be collected by a worker and stopped while its row is ``running``."""
    make_channel("lent")
    return deploy("flows/collect_channel.py:collect_channel", "collect-channel")


# -- item 9: killed, crashed, cancelled -------------------------------------------------------------------


def test_a_run_killed_mid_collection_ends_crashed_and_its_row_is_closed_as_internal_error(
    glaneur_home, portals, tmp_path
):
    from prefect.deployments import run_deployment

    from flows.collect_channel import run_channel

    deployment = slow_channel_deployment()
    with worker(glaneur_home, tmp_path / "worker.log") as process:
        run = run_deployment(deployment, parameters={"channel": SLUG}, timeout=0)
        row = wait_for("a running collection row", a_running_row)
        assert row.flow_run_id == str(run.id)
        assert "running" in history_output() and " ok " not in history_output()  # under way, not ok
        os.kill(flow_run_process(process.pid, run.id), signal.SIGKILL)
        ended = final(run.id, timeout=120)
    assert ended.state.is_crashed(), ended.state  # not left Running: the worker saw its process die
    # The killed process ran no hook; the row is either still running (then the channel's next run
    # sweeps it) or already closed by the crash hook the worker itself runs when it reports the crash.
    # Never ok, in either case.
    assert runs()[-1].status in (Status.RUNNING, Status.INTERNAL_ERROR)

    summary = run_channel(SLUG)
    assert summary["status"] == "ok"
    killed, again = runs()
    assert killed.status == Status.INTERNAL_ERROR and killed.finished_at is not None
    assert "stopped before it finished: its process crashed" in killed.message
    assert again.status == Status.OK
    output = " ".join(history_output().split())
    assert "internal_error" in output and "stopped before it finished" in output


def test_a_crashed_run_closes_its_row_at_once(glaneur_home, portals, tmp_path):
    """SIGTERM from outside (an OOM killer's warning, a node drain): Prefect ends it Crashed and the hook closes the row."""
    from prefect.deployments import run_deployment

    deployment = slow_channel_deployment()
    with worker(glaneur_home, tmp_path / "worker.log") as process:
        run = run_deployment(deployment, parameters={"channel": SLUG}, timeout=0)
        wait_for("a running collection row", a_running_row)
        os.kill(flow_run_process(process.pid, run.id), signal.SIGTERM)
        ended = final(run.id, timeout=120)
        assert ended.state.is_crashed(), ended.state
        closed = wait_for("the row closed", lambda: (r := runs()[-1]).status != Status.RUNNING and r, timeout=30)
    assert closed.status == Status.INTERNAL_ERROR and "its process crashed" in closed.message
    with session_scope() as session:
        channel = session.exec(select(Channel).where(Channel.slug == SLUG)).one()
        assert channel.status == Status.INTERNAL_ERROR  # `channels` and `doctor` say so too
    assert "internal_error" in history_output()


def test_a_cancelled_run_ends_cancelled_and_its_row_is_closed(glaneur_home, portals, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.states import Cancelling

    deployment = slow_channel_deployment()
    with worker(glaneur_home, tmp_path / "worker.log"):
        run = run_deployment(deployment, parameters={"channel": SLUG}, timeout=0)
        wait_for("a running collection row", a_running_row)
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(run.id, Cancelling(), force=True)
        ended = final(run.id, timeout=120)
        assert ended.state.is_cancelled(), ended.state
        closed = wait_for("the row closed", lambda: (r := runs()[-1]).status != Status.RUNNING and r, timeout=30)
    assert closed.status == Status.INTERNAL_ERROR and "it was cancelled" in closed.message
    assert "internal_error" in history_output()


def test_a_collection_failing_because_its_run_is_being_cancelled_is_recorded_as_cancelled():
    """The cancelled run's browser can close under a collection (TargetClosedError) before the run's
    cancellation hook closes its rows: that failure is then recorded as the cancellation, not as a bug."""
    from prefect import flow, runtime
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelling

    from tasks.lifecycle import cancelled_message

    said: dict[str, str | None] = {}

    @flow
    def being_cancelled() -> None:
        said["before"] = cancelled_message()
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(runtime.flow_run.id, Cancelling(), force=True)
        said["after"] = cancelled_message()

    being_cancelled(return_state=True)
    assert said["before"] is None
    assert said["after"] is not None and "it was cancelled" in said["after"]
    assert cancelled_message() is None  # outside a flow run


def test_a_final_state_whose_answer_was_lost_still_gives_the_summary(glaneur_home, portals, monkeypatch):
    """Seen in CI under SQLite lock contention: the server committed the final state, its answer was a
    503, the client sent the same request again and the server answered the duplicate transition with
    its stored copy, which holds no data. The in-process caller (CLI, demo) still gets the summary."""
    from prefect.client.orchestration.base import BaseClient

    real = BaseClient.request
    answers: list[dict] = []

    def answer_lost(self, method, path, params=None, path_params=None, **kwargs):
        response = real(self, method, path, params, path_params, **kwargs)
        if path == "/flow_runs/{id}/set_state" and kwargs["json"]["state"]["type"] in ("COMPLETED", "FAILED"):
            response = real(self, method, path, params, path_params, **kwargs)  # the retry: the very same request
            answers.append(response.json())
        return response

    monkeypatch.setattr(BaseClient, "request", answer_lost)
    make_channel("acme")
    from flows.collect_channel import run_channel

    summary = run_channel(SLUG)
    assert answers[-1]["status"] == "REJECT" and answers[-1]["state"]["name"] == "Collected"
    assert answers[-1]["state"]["data"] is None  # the server's copy indeed came back without the summary
    assert summary["status"] == "ok" and summary["new"] > 0, summary
    (row,) = runs()
    assert row.status == Status.OK and row.new_documents == summary["new"]

    with session_scope() as session:  # a failed run: its summary travels inside the Failed state's exception
        owner = session.exec(select(User).where(User.email == factories.OWNER)).one()
        factories.channel(session, owner, "org-papeterie-bis", label="Papeterie bis",
                          accounts=[("acme", "not-the-password")])
    failed = run_channel("org-papeterie-bis")
    assert answers[-1]["status"] == "REJECT" and answers[-1]["state"]["name"] == "Wrong credentials"
    assert failed["status"] == Status.WRONG_CREDENTIALS.value, failed


# -- item 11 and issue 15 item 7: a failed run ends cleanly, named and tagged ------------------------------


def test_a_failed_run_on_a_worker_ends_cleanly_named_after_its_status_and_tagged(glaneur_home, portals, tmp_path):
    from prefect.deployments import run_deployment

    make_channel("acme", "not-the-password")
    deployment = deploy("flows/collect_channel.py:collect_channel", "collect-channel")
    log = tmp_path / "worker.log"
    with worker(glaneur_home, log):
        run = run_deployment(deployment, parameters={"channel": SLUG}, timeout=0)
        ended = final(run.id)
        time.sleep(2)  # the worker logs the process's exit after the state is set
    output = log.read_text(errors="replace")
    assert "cannot be resolved into an exception" not in output and "TypeError" not in output, output[-3000:]
    assert ended.state.is_failed() and ended.state.type.value == "FAILED"
    assert ended.state.name == describe(Status.WRONG_CREDENTIALS).title == "Wrong credentials"
    (row,) = runs()
    assert row.status == Status.WRONG_CREDENTIALS
    assert ended.state.message == row.message  # the summary, readable in the UI
    assert ended.state.message.endswith(describe(Status.WRONG_CREDENTIALS).message)
    assert {"org:org", "provider:papeterie-dupont", "kind:supplier_portal"} <= set(ended.tags)


# -- item 10: the day is the scheduled one, in GLANEUR_TIMEZONE, on a UTC worker ----------------------------


def test_the_day_is_the_scheduled_day_in_the_timezone_even_on_a_utc_worker(glaneur_home, portals, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.deployments import run_deployment

    make_channel("acme")
    with session_scope() as session:
        admin.create_organization(session, "cabinet", "Cabinet", kind=OrganizationKind.FIRM)
        # A collector asked for before a release brought it: the dispatch tells the requester, once.
        owner = session.exec(select(User).where(User.email == "owner@org.example")).one()
        session.add(ConnectorRequest(organization_id=owner.organization_id, requester_user_id=owner.id,
                                     supplier_name="Papeterie Dupont", portal_url="http://127.0.0.1:8701/login"))
        owner_id = owner.id
    dispatch = deploy("flows/dispatch.py:dispatch_daily", "dispatch-daily")
    collect = deploy("flows/collect_channel.py:collect_channel", "collect-channel")
    route = deploy("flows/route_statements.py:route_statements", "route-statements")

    async def targets(client):  # where dispatch schedules: deployments no worker serves
        ids = []
        for flow_name in ("collect-channel", "route-statements"):
            flow_id = await client.create_flow_from_name(flow_name)
            ids.append(await client.create_deployment(flow_id=flow_id, name="day-check"))
        return ids

    from tests.e2e.conftest import prefect_call

    target_ids = prefect_call(targets)
    evening = datetime(2026, 3, 14, 23, 5, tzinfo=UTC)  # 00:05 on 15 March in Paris: the daily schedule
    late = datetime(2026, 3, 14, 23, 30, tzinfo=UTC)  # 00:30 in Paris
    with worker(glaneur_home, tmp_path / "worker.log", TZ="UTC"):
        dispatched = run_deployment(
            dispatch, scheduled_time=evening, timeout=0,
            parameters={"deployment": "collect-channel/day-check", "route_deployment": "route-statements/day-check"},
        )
        collected = run_deployment(collect, parameters={"channel": SLUG}, scheduled_time=late, timeout=0)
        routed = run_deployment(route, parameters={"firm": "cabinet"}, scheduled_time=late, timeout=0)
        dispatched, collected, routed = (final(run.id, timeout=240) for run in (dispatched, collected, routed))

    assert dispatched.state.is_completed(), dispatched.state
    assert dispatched.name == "dispatch-2026-03-15"  # not dispatch-None, not the 14th
    assert collected.name == f"{SLUG}-2026-03-15"
    assert routed.name == "statements-cabinet-2026-03-15"
    with session_scope() as session:
        assert session.exec(select(Account)).one().last_full_pass == date(2026, 3, 15)
        request = session.exec(select(ConnectorRequest)).one()
        assert (request.state, request.provider) == ("shipped", "papeterie-dupont") and request.notified_at
        told = session.exec(select(Notification).where(Notification.kind == "connector_shipped")).one()
        assert told.user_id == owner_id and "Papeterie Dupont" in told.subject

    async def scheduled(client):
        return await client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=target_ids)))

    children = prefect_call(scheduled)
    paris = ZoneInfo("Europe/Paris")
    collect_run = next(r for r in children if r.parameters.get("channel") == SLUG)
    assert collect_run.expected_start_time.astimezone(paris) == datetime(2026, 3, 15, 6, 0, tzinfo=paris)
    assert {"org:org", "provider:papeterie-dupont", "kind:supplier_portal"} <= set(collect_run.tags)
    route_run = next(r for r in children if r.parameters.get("firm") == "cabinet")
    assert route_run.parameters["day"] == "2026-03-15"


# -- item 17: what people typed is escaped in every artifact field ------------------------------------------


def read_artifacts(key: str):
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from tests.e2e.conftest import prefect_call

    return prefect_call(lambda client: client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))))


def test_markup_in_a_label_or_firm_name_is_escaped_in_every_artifact_field(glaneur_home, portals):
    from flows.collect_channel import run_channel
    from flows.route_statements import run_firm

    make_channel("acme", label=f"Papeterie {HOSTILE}")
    run_channel(SLUG)
    with session_scope() as session:
        admin.create_organization(session, "cabinet", f"Cabinet {HOSTILE}", kind=OrganizationKind.FIRM)
    run_firm("cabinet", date(2026, 3, 15))

    for key in (f"channel-{SLUG}", "statements-cabinet"):
        artifact = max(read_artifacts(key), key=lambda found: found.created)  # the newest version of the key
        for field in (artifact.description, artifact.data):
            assert "javascript" in field  # the value is shown...
            assert "](javascript" not in field and "[x]" not in field  # ...as text, never as a link


def test_a_run_killed_where_no_worker_watches_is_crashed_and_closed_by_the_sweep(glaneur_home, portals, monkeypatch):
    """`glaneur run` killed with SIGKILL: nobody ends its flow run, so the sweep does, once it is overdue."""
    from prefect.settings import PREFECT_API_URL

    from glaneur.settings import reset_settings
    from tasks.lifecycle import close_stale_runs

    make_channel("lent")
    environment = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "GLANEUR_HOME": str(glaneur_home)}
    process = subprocess.Popen([sys.executable, "-c", "from cli.main import app; app()", "--as", "owner@org.example",
                                "run", SLUG],
                               env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        row = wait_for("a running collection row", a_running_row)
    finally:
        process.kill()
        process.wait(20)
    time.sleep(1)
    assert flow_run(row.flow_run_id).state.is_running()  # nobody told Prefect

    assert close_stale_runs() == []  # within GLANEUR_RUN_LOST_AFTER_HOURS: maybe still under way
    assert runs()[-1].status == Status.RUNNING
    monkeypatch.setenv("GLANEUR_RUN_LOST_AFTER_HOURS", "0")
    reset_settings()
    assert close_stale_runs() == [row.id]
    assert flow_run(row.flow_run_id).state.is_crashed()
    closed = runs()[-1]
    assert closed.status == Status.INTERNAL_ERROR and "its process crashed (still Running after 0 hour" in closed.message
    assert "internal_error" in history_output()
