"""Prefect's server on PostgreSQL forgets what was typed in a run's form (issue 19).

A real Prefect server on the real PostgreSQL 15 (``pg_cluster``), a flow paused for a form with a secret
field, the form answered through the API (what the UI's Resume does), the input read and deleted by Glaneur's
own code (``tasks.human.delete_inputs``). Started with ``infra/prefect_server.py`` the secret's bytes leave the
table's files; started with Prefect's plain ``prefect server start`` they stay (so the test can fail).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.pg import free_port
from tests.unit.test_prefect_server_launcher import table_files_hold

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parents[2]
SECRET = "Code-tape-par-l-approbateur-pg-4Zr9"
PAUSING_FLOW = """
import sys
from prefect import flow, runtime
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import SecretStr

from tasks.human import delete_inputs


class Answer(RunInput):
    password: SecretStr


@flow(name="form-with-a-secret")
def asks() -> int:
    answer = pause_flow_run(wait_for_input=Answer, timeout=180, poll_interval=1, key="form")
    delete_inputs("paused-form", str(runtime.flow_run.id))  # as tasks.human does once the answer is read
    return len(answer.password.get_secret_value())


print("LENGTH", asks(), flush=True)
"""


@contextlib.contextmanager
def prefect_server(command: list[str], database_url: str, home: Path) -> Iterator[str]:
    """A Prefect server on PostgreSQL; its API URL. Stopped (its whole process group) on exit."""
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    environment.update({
        "PREFECT_HOME": str(home), "PREFECT_API_URL": api_url, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false", "PREFECT_API_DATABASE_CONNECTION_URL": database_url,
    })
    home.mkdir(parents=True, exist_ok=True)
    log = home / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen([*command, "start", "--host", "127.0.0.1", "--port", str(port)], env=environment,
                                  cwd=PROJECT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, f"the server exited at start:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"the server did not answer:\n{log.read_text()[-3000:]}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                    break
            time.sleep(0.5)
        yield api_url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, 15)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait(10)


def paused_flow_run(api_url: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = httpx.post(f"{api_url}/flow_runs/filter", json={}, timeout=30).json()
        if runs and runs[0]["state"]["type"] == "PAUSED":
            return runs[0]
        time.sleep(0.5)
    raise AssertionError("the flow never paused")


@pytest.mark.parametrize("launcher", ["prefect", "glaneur"], ids=["prefect-server-start", "infra.prefect_server"])
def test_a_secret_typed_in_a_form_leaves_postgresql_files_only_with_the_launcher(
    pg_cluster, pg_url, tmp_path, launcher
):
    command = [sys.executable, "-m", "infra.prefect_server"] if launcher == "glaneur" else [
        sys.executable, "-m", "prefect", "server"]
    database_url = pg_url.replace("postgresql+psycopg://", "postgresql+asyncpg://")
    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with prefect_server(command, database_url, tmp_path / "prefect") as api_url:
        environment = {**{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")},
                       "PREFECT_API_URL": api_url, "PREFECT_HOME": str(tmp_path / "client")}
        output = tmp_path / "flow.log"
        with output.open("wb") as out:
            flow = subprocess.Popen([sys.executable, "-c", PAUSING_FLOW], env=environment, cwd=PROJECT,
                                    stdout=out, stderr=subprocess.STDOUT)
        try:
            flow_run = paused_flow_run(api_url)
            answered = httpx.post(f"{api_url}/flow_runs/{flow_run['id']}/resume",
                                  json={"run_input": {"password": SECRET}}, timeout=30)
            assert answered.status_code == 201 and answered.json()["status"] == "ACCEPT", answered.text
            flow.wait(180)
        finally:
            if flow.poll() is None:
                flow.kill()
                flow.wait()
        assert flow.returncode == 0 and f"LENGTH {len(SECRET)}" in output.read_text(), output.read_text()[-3000:]
        inputs = httpx.post(f"{api_url}/flow_runs/{flow_run['id']}/input/filter",
                            json={"prefix": "", "limit": 200, "exclude_keys": []}, timeout=30).json()
        assert inputs == []  # deleted through the API

        if launcher == "glaneur":
            deadline = time.monotonic() + 30  # debounced: within seconds of the last delete
            while table_files_hold(pg_cluster, dsn, SECRET):
                assert time.monotonic() < deadline, "the secret stayed in flow_run_input's files"
                time.sleep(0.5)
        else:
            time.sleep(5)  # longer than the launcher takes: the bytes stay without it
            assert table_files_hold(pg_cluster, dsn, SECRET), "PostgreSQL dropped the row by itself: nothing shown"
