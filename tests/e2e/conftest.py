"""Helpers of the end-to-end tests that talk to the test Prefect server."""

from __future__ import annotations

import asyncio
import json

import pytest


def prefect_call(call):
    """Run ``await call(client)`` with a Prefect client of the test server."""
    from prefect.client.orchestration import get_client

    async def go():
        async with get_client() as client:
            return await call(client)

    return asyncio.run(go())


@pytest.fixture
def deployments():
    """Deployments created on the test server for one test, deleted afterwards with their runs."""
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.schedules import CronSchedule

    created = []

    def deploy(flow_name: str, cron: str | None = None):
        async def create(client):
            flow_id = await client.create_flow_from_name(flow_name)
            schedules = [DeploymentScheduleCreate(schedule=CronSchedule(cron=cron, timezone="Europe/Paris"), active=True)] if cron else []
            return await client.create_deployment(flow_id=flow_id, name=flow_name, schedules=schedules)

        deployment_id = prefect_call(create)
        created.append(deployment_id)
        return deployment_id

    yield deploy

    async def delete(client):
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

        for deployment_id in created:
            flow_runs = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
            )
            for flow_run in flow_runs:
                await client.delete_flow_run(flow_run.id)
            await client.delete_deployment(deployment_id)

    prefect_call(delete)


def run_inputs(flow_run_id, api_url: str | None = None) -> dict[str, str]:
    """Every flow run input Prefect holds for the run, key -> stored value, read two ways: through the API
    (every key, not a guessed list) and, when the server's database is a SQLite file, with SQL on it."""
    import sqlite3
    from contextlib import closing

    import httpx
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_DATABASE_CONNECTION_URL

    api_url = api_url or PREFECT_API_URL.value()
    response = httpx.post(f"{api_url}/flow_runs/{flow_run_id}/input/filter",
                          json={"prefix": "", "limit": 200, "exclude_keys": []}, timeout=30)
    response.raise_for_status()
    found = {row["key"]: row["value"] for row in response.json()}
    database = PREFECT_SERVER_DATABASE_CONNECTION_URL.value() or ""
    if database.startswith("sqlite") and api_url == PREFECT_API_URL.value():
        path = database.split(":///", 1)[1]
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as connection:
            rows = connection.execute(
                "SELECT key, value FROM flow_run_input WHERE replace(flow_run_id, '-', '') = ?",
                (str(flow_run_id).replace("-", ""),),
            ).fetchall()
        assert len(rows) == len(found), "the API and the server's database disagree on the run's inputs"
        found.update({key: value for key, value in rows})
    return found


def assert_no_secret_in_inputs(flow_run_id, secrets: list[str], api_url: str | None = None) -> None:
    stored = " ".join(f"{key}={value}" for key, value in run_inputs(flow_run_id, api_url).items())
    for secret in secrets:
        assert secret not in stored, "a secret stayed in Prefect's flow run inputs"


def assert_no_secret(home, flow_run_id, secrets: list[str]) -> None:
    """Not in Prefect's logs, artifacts, parameters or inputs; not in clear in Glaneur's database."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    async def read():
        async with get_client() as client:
            logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
            artifacts = await client.read_artifacts()
            run = await client.read_flow_run(flow_run_id)
            return logs, artifacts, run

    logs, artifacts, run = asyncio.run(read())
    prefect_text = " ".join(log.message for log in logs) + " ".join(str(a.data) for a in artifacts) + json.dumps(
        run.parameters, default=str) + str(run.state.message)
    database = b"".join(path.read_bytes() for path in home.glob("glaneur.db*"))
    assert_no_secret_in_inputs(flow_run_id, secrets)
    for secret in secrets:
        assert secret not in prefect_text
        assert secret.encode() not in database
