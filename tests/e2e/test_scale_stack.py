"""Issue 20 on real components: deploy from a fresh checkout on a new Prefect server, and Prefect's
distributed setup (server on PostgreSQL, work pool, two process workers) collecting a day of channels."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def fresh_checkout(target: Path) -> Path:
    """The project's files as a clone has them (tracked and new, ignored ones left out: no .venv, no var/)."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def prefect_env(api_url: str, home: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "GLANEUR_"))}
    return {**base, "PREFECT_API_URL": api_url, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}


def test_make_deploy_works_on_a_new_server_from_a_fresh_checkout_and_twice(tmp_path):
    from infra.local_stack import _free_port
    from sandbox.prefect_server import LocalPrefect

    server = LocalPrefect(home=tmp_path / "prefect", port=_free_port())
    assert server.start() is True  # a new, empty server of its own
    try:
        project = fresh_checkout(tmp_path / "clone")
        env = {**prefect_env(server.api_url, tmp_path / "prefect"), "PYTHONPATH": str(project)}
        for attempt in ("first", "again"):
            done = subprocess.run([sys.executable, "-m", "infra.deploy"], cwd=project, env=env, capture_output=True,
                                  text=True, timeout=400)
            assert done.returncode == 0, (attempt, done.stdout[-3000:], done.stderr[-3000:])
            assert ("created" if attempt == "first" else "already there") in done.stdout
        api = server.api_url
        pool = httpx.get(f"{api}/work_pools/glaneur", timeout=30).json()
        assert pool["type"] == "process"
        deployments = {d["name"]: d for d in httpx.post(f"{api}/deployments/filter", json={}, timeout=30).json()}
        assert {"collect-channel", "route-statements", "request-credentials", "dispatch-daily"} <= set(deployments)
        assert all(d["work_pool_name"] == "glaneur" for d in deployments.values())
        pull = deployments["collect-channel"]["pull_steps"][0]["prefect.deployments.steps.set_working_directory"]
        assert pull["directory"] == str(project)  # the workers find this checkout's code
        assert deployments["collect-channel"]["global_concurrency_limit"] is None  # capacity: the workers' --limit
        assert deployments["route-statements"]["global_concurrency_limit"]["limit"] == 2
        assert deployments["collect-channel"]["job_variables"]["env"]["GLANEUR_RETRIES"] == "3"
        schedules = deployments["dispatch-daily"]["schedules"]
        assert [(s["schedule"]["cron"], s["schedule"]["timezone"]) for s in schedules] == [("5 0 * * *", "Europe/Paris")]
        limits = {c["name"]: c for c in httpx.post(f"{api}/v2/concurrency_limits/filter", json={}, timeout=30).json()}
        assert limits["provider:papeterie-dupont"]["limit"] >= 1
        assert limits["provider-rate:papeterie-dupont"]["slot_decay_per_second"] > 0
    finally:
        server.stop()


def wait_for_runs(api_url: str, deployment: str, expected: int, timeout: float, ids: list[str] | None = None) -> list[dict]:
    """The deployment's runs (those of ``ids`` only, when given: a cron also schedules future runs), once final."""
    deadline = time.monotonic() + timeout
    while True:
        found = httpx.get(f"{api_url}/deployments/name/{deployment}", timeout=30).json()
        runs = httpx.post(f"{api_url}/flow_runs/filter", timeout=30, json={
            "deployments": {"id": {"any_": [found["id"]]}}, "limit": 200}).json()
        runs = [r for r in runs if ids is None or r["id"] in ids]
        final = [r for r in runs if r["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")]
        if len(runs) >= expected and len(final) == len(runs):
            return runs
        if time.monotonic() > deadline:
            states = sorted((r["name"], r["state_name"]) for r in runs)
            raise AssertionError(f"{len(final)}/{expected} runs done after {timeout:.0f} s: {states}")
        time.sleep(2)


def run_deployment_now(stack, name: str, parameters: dict | None = None) -> str:
    found = httpx.get(f"{stack.api_url}/deployments/name/{name}", timeout=30).json()
    run = httpx.post(f"{stack.api_url}/deployments/{found['id']}/create_flow_run", timeout=30,
                     json={"parameters": parameters or {}}).json()
    return run["id"]


def test_two_workers_on_postgresql_share_the_days_channels_each_collected_once(tmp_path, sandbox, monkeypatch):
    from glaneur.settings import reset_settings
    from infra.local_stack import local_stack, runs_by_worker, wait_for_workers
    from sandbox.fleet import create_fleet, top_up_invoices

    channels, invoices = 6, 5
    top_up_invoices(sandbox.urls, invoices)
    extra = {"GLANEUR_PORTAL_URLS": json.dumps(sandbox.urls), "GLANEUR_RETRY_BASE_SECONDS": "0.2"}
    with local_stack(tmp_path / "stack", workers=2, extra_env=extra, worker_limit=2) as stack:
        for key, value in stack.env.items():
            if key.startswith("GLANEUR_"):
                monkeypatch.setenv(key, value)
        reset_settings()
        slugs = create_fleet(channels, time_slot="00:00")  # every slot already passed today: runs start at once
        wait_for_workers(stack)

        dispatch = run_deployment_now(stack, "dispatch-daily/dispatch-daily")
        wait_for_runs(stack.api_url, "dispatch-daily/dispatch-daily", 1, timeout=300, ids=[dispatch])
        runs = wait_for_runs(stack.api_url, "collect-channel/collect-channel", channels, timeout=900)
        assert httpx.get(f"{stack.api_url}/flow_runs/{dispatch}", timeout=30).json()["state_type"] == "COMPLETED"

        # Each channel collected once, every run completed.
        assert sorted(r["parameters"]["channel"] for r in runs) == sorted(slugs)
        assert {r["state_type"] for r in runs} == {"COMPLETED"}, [(r["name"], r["state_message"]) for r in runs]

        # Split across both workers, each run inside its worker's own process (no interpreter per run).
        deadline, placed = time.monotonic() + 60, {}
        while len(placed) < channels and time.monotonic() < deadline:
            placed = runs_by_worker(stack.api_url, [r["id"] for r in runs])
            time.sleep(1)
        assert len(placed) == channels, placed
        assert {worker for worker, _ in placed.values()} == set(stack.worker_names), placed
        worker_pids = {name: str(process.pid) for name, process in zip(stack.worker_names, stack.workers, strict=True)}
        assert all(pid == worker_pids[worker] for worker, pid in placed.values()), (placed, worker_pids)

        # A second dispatch the same day adds no collection.
        second = run_deployment_now(stack, "dispatch-daily/dispatch-daily")
        assert second != dispatch
        done = wait_for_runs(stack.api_url, "dispatch-daily/dispatch-daily", 1, timeout=300, ids=[second])
        assert done[0]["state_type"] == "COMPLETED"
        again = wait_for_runs(stack.api_url, "collect-channel/collect-channel", channels, timeout=60)
        assert len(again) == channels

        # Nothing filed twice: one document per invoice per channel, in the database and in storage.
        from sqlmodel import func, select

        from glaneur.db import session_scope
        from glaneur.models import CollectionRun, Document

        with session_scope() as session:
            documents = session.exec(select(func.count()).select_from(Document)).one()
            collection_runs = session.exec(select(func.count()).select_from(CollectionRun)).one()
        assert documents == channels * invoices
        assert collection_runs == channels
        stored = list((Path(stack.env["GLANEUR_HOME"]) / "documents").rglob("*.pdf"))  # each beside its .meta.json
        assert len(stored) == channels * invoices
    reset_settings()
