"""Every ```sh block of README.md runs as written, in order, as a new user would paste them.

The blocks run with bash (``set -euo pipefail``) from the project's root, in a fresh ``GLANEUR_HOME``,
against the sandbox servers and this session's Prefect server. The sandbox runs on free ports, not on
the documented 8701-8705 (other tests share the machine): the documented addresses in the blocks are
the one thing rewritten, to the servers' real ones. Blocks marked ``<!-- readme-test: skip: why -->``
(see tests/readme_blocks.py) are not run. A failing command fails the test with its block and output.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.readme_blocks import README, readme_blocks

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

ROOT = README.parent


def _environment(home: Path, urls: dict[str, str]) -> dict[str, str]:
    import json

    from prefect.settings import PREFECT_API_URL

    env = {name: value for name, value in os.environ.items() if not name.startswith(("GLANEUR_", "PREFECT_"))}
    env.update(
        GLANEUR_HOME=str(home),
        PREFECT_API_URL=PREFECT_API_URL.value(),  # what the demo's server marker gives the CLI
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_LOGGING_LEVEL="WARNING",
        GLANEUR_RETRY_BASE_SECONDS="0.2",
        GLANEUR_PORTAL_URLS=json.dumps({slug: url for slug, url in urls.items() if slug in _portals()}),
    )
    return env


def _portals() -> set[str]:
    from sandbox.server import DEFAULT_PORTS

    return set(DEFAULT_PORTS)


def _readdressed(code: str, urls: dict[str, str]) -> str:
    from sandbox.server import DEFAULT_PORTS, STATEMENT_DEFAULT_PORTS

    for slug, port in {**DEFAULT_PORTS, **STATEMENT_DEFAULT_PORTS}.items():
        code = code.replace(f"http://127.0.0.1:{port}", urls[slug])
    return code


async def _server_objects(client) -> dict[str, set]:
    """What the session's Prefect server holds that a README block can create: limits, deployments, pools."""
    return {
        "limits": {limit.name for limit in await client.read_global_concurrency_limits(limit=200)},
        "deployments": {deployment.id for deployment in await client.read_deployments()},
        "pools": {pool.name for pool in await client.read_work_pools()},
    }


@pytest.fixture
def server_left_as_found(prefect_server):
    """The README's ``make deploy`` writes provider limits, deployments and a work pool on the session's server.
    Left there, the provider limits (6 sessions a minute, 2 at once) and the slots that runs killed in later
    tests hold until their lease expires throttle every later test collecting from the same sandbox supplier:
    remove what the blocks created, runs of the new deployments included."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    from tests.e2e.conftest import prefect_call

    before = prefect_call(_server_objects)
    yield

    async def remove(client):
        after = await _server_objects(client)
        created = list(after["deployments"] - before["deployments"])
        if created:
            for run in await client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=created))):
                await client.delete_flow_run(run.id)
        for deployment_id in created:
            await client.delete_deployment(deployment_id)
        for name in (await _server_objects(client))["limits"] - before["limits"]:  # a deployment's own went with it
            await client.delete_global_concurrency_limit_by_name(name)
        for name in after["pools"] - before["pools"]:
            await client.delete_work_pool(name)
        return await _server_objects(client)

    assert prefect_call(remove) == before


@pytest.mark.timeout(2400)  # ~22 min at a load of 25 on 2 cores; far less idle
def test_every_readme_block_runs_as_written(tmp_path, sandbox, server_left_as_found):
    for url in sandbox.urls.values():
        httpx.post(f"{url}/_sandbox/reset").raise_for_status()
    env = _environment(tmp_path / "var", sandbox.urls)
    ran = []
    for block in readme_blocks():
        if block.skip:
            continue
        result = subprocess.run(
            ["bash", "-c", "set -euo pipefail\n" + _readdressed(block.code, sandbox.urls)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
        )
        if result.returncode != 0:
            pytest.fail(
                f"README.md block at line {block.line} failed (exit {result.returncode}):\n{block.code}\n"
                f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-4000:]}",
                pytrace=False,
            )
        ran.append(block.line)
    assert len(ran) >= 4, ran
