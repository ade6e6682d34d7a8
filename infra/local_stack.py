"""Prefect's distributed setup on one machine: a server on PostgreSQL, the work pool, N process workers.

    python -m infra.local_stack --workers 2        # or: make local-stack WORKERS=2

What it starts, in order (each a real component, nothing home-made):

1. a PostgreSQL cluster with the machine's server binaries (``initdb``, ``pg_ctl``), in a throwaway
   folder on a free loopback port, holding two databases: Prefect's and Glaneur's;
2. Prefect's server on that PostgreSQL (``PREFECT_API_DATABASE_CONNECTION_URL``), started through
   ``python -m infra.prefect_server start``: deleted run inputs (what was typed in a form) are vacuumed
   out of ``flow_run_input``'s files;
3. ``python -m infra.deploy``: the ``glaneur`` work pool, the provider limits, every deployment;
4. N workers on the ``glaneur`` pool, all on Glaneur's PostgreSQL database and one ``GLANEUR_HOME``
   (vault key, local storage): Glaneur's worker (``python -m infra.worker``: collections run on the
   worker's long-lived threads, one Chromium each) or, with ``--worker-kind process``, Prefect's
   plain process worker (an interpreter per flow run), for comparison.

The server gives a run refused by a deployment's concurrency limit (ENQUEUE) back after
``--slot-wait`` seconds (``PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS``, 30 by default).

It prints the environment to use from another shell (also written to ``<home>/stack.env``) and runs
until Ctrl-C, which stops everything it started (the cluster folder is removed). On several machines
the same pieces run apart: see the README, "From one machine to many".
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from infra.deploy import PROJECT_DIR, WORK_POOL

DEFAULT_LIMIT = 4  # infra.worker's default, not imported here: Prefect loads only in the workers


@dataclass
class LocalStack:
    home: Path
    api_url: str
    glaneur_database_url: str
    prefect_database_url: str
    env: dict[str, str]  # what a client of this stack (CLI, test, bench) needs
    cluster: object = None  # tests.pg.PostgresCluster: more databases, its processes
    workers: list[subprocess.Popen] = field(default_factory=list)
    worker_names: list[str] = field(default_factory=list)
    server: subprocess.Popen | None = None


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _stop(process: subprocess.Popen, grace: float = 15.0) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def _spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            command, env=env, cwd=PROJECT_DIR, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stopped with its children (flow run processes)
        )


def _wait_healthy(api_url: str, server: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the Prefect server exited at start (code {server.returncode}); see {log}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise RuntimeError(f"the Prefect server did not answer within {timeout:.0f} s; see {log}")


@contextlib.contextmanager
def local_stack(
    home: Path,
    workers: int = 2,
    *,
    extra_env: dict[str, str] | None = None,
    query_seconds: float = 2.0,
    worker_limit: int | None = None,
    deploy: bool = True,
    timeout: float = 240.0,
    worker_kind: str = "glaneur",
    slot_wait_seconds: float = 5.0,
) -> Iterator[LocalStack]:
    """Start the whole stack; stops it (and removes the PostgreSQL cluster) on exit."""
    from tests.pg import PostgresCluster  # the throwaway cluster the tests use, shared code

    home = home.resolve()
    (home / "logs").mkdir(parents=True, exist_ok=True)
    with PostgresCluster.start() as cluster, contextlib.ExitStack() as stop:
        prefect_db = cluster.create_database("prefect").replace("postgresql+psycopg://", "postgresql+asyncpg://")
        glaneur_db = cluster.create_database("glaneur")
        port = _free_port()
        api_url = f"http://127.0.0.1:{port}/api"
        base = {
            k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "GLANEUR_"))
        }
        client_env = {
            "PREFECT_API_URL": api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_HOME": str(home / "prefect-home"),
            "GLANEUR_HOME": str(home / "glaneur"),
            "GLANEUR_DATABASE_URL": glaneur_db,
            "GLANEUR_PROJECT_DIR": str(PROJECT_DIR),
            **{k: v for k, v in os.environ.items() if k.startswith("GLANEUR_") and k not in (
                "GLANEUR_HOME", "GLANEUR_DATABASE_URL", "GLANEUR_PROJECT_DIR")},
            **(extra_env or {}),
        }
        server_log = home / "logs" / "server.log"
        server = _spawn(
            # Prefect's server through Glaneur's launcher: it vacuums flow_run_input after run inputs are deleted.
            [sys.executable, "-m", "infra.prefect_server", "start", "--host", "127.0.0.1", "--port", str(port)],
            {**base, **client_env, "PREFECT_API_DATABASE_CONNECTION_URL": prefect_db, "PREFECT_UI_API_URL": api_url,
             "PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS": str(slot_wait_seconds)},
            server_log,
        )
        stop.callback(_stop, server)
        _wait_healthy(api_url, server, server_log, timeout)
        stack = LocalStack(home, api_url, glaneur_db, prefect_db, client_env, cluster=cluster, server=server)
        if deploy:
            done = subprocess.run(
                [sys.executable, "-m", "infra.deploy"], cwd=PROJECT_DIR, env={**base, **client_env},
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False,
            )
            (home / "logs" / "deploy.log").write_text(done.stdout)
            if done.returncode != 0:
                raise RuntimeError(f"python -m infra.deploy failed ({done.returncode}):\n{done.stdout[-3000:]}")
        worker_env = {**base, **client_env, "PREFECT_WORKER_QUERY_SECONDS": str(query_seconds)}
        for index in range(1, workers + 1):
            name = f"glaneur-worker-{index}"
            if worker_kind == "glaneur":
                command = [sys.executable, "-m", "infra.worker", "--pool", WORK_POOL, "--name", name,
                           "--limit", str(worker_limit or DEFAULT_LIMIT)]
            elif worker_kind == "process":
                command = [sys.executable, "-m", "prefect", "worker", "start", "--pool", WORK_POOL, "--type", "process",
                           "--name", name]
                if worker_limit:
                    command += ["--limit", str(worker_limit)]
            else:
                raise ValueError(f"worker_kind must be 'glaneur' or 'process', not {worker_kind!r}")
            process = _spawn(command, worker_env, home / "logs" / f"{name}.log")
            stop.callback(_stop, process)
            stack.workers.append(process)
            stack.worker_names.append(name)
        (home / "stack.env").write_text("".join(f"export {k}='{v}'\n" for k, v in client_env.items()))
        yield stack


def wait_for_workers(stack: LocalStack, timeout: float = 180.0) -> None:
    """Until every worker of the stack shows ONLINE in the work pool."""
    deadline = time.monotonic() + timeout
    online: set[str] = set()
    while time.monotonic() < deadline:
        for process, name in zip(stack.workers, stack.worker_names, strict=True):
            if process.poll() is not None:
                raise RuntimeError(f"worker {name} exited (code {process.returncode}); see {stack.home}/logs/{name}.log")
        answer = httpx.post(f"{stack.api_url}/work_pools/{WORK_POOL}/workers/filter", json={}, timeout=10)
        if answer.status_code == 200:
            online = {w["name"] for w in answer.json() if w.get("status") == "ONLINE"}
            if set(stack.worker_names) <= online:
                return
        time.sleep(1)
    raise RuntimeError(f"workers not online after {timeout:.0f} s: {sorted(set(stack.worker_names) - online)}")


def runs_by_worker(api_url: str, flow_run_ids: list[str]) -> dict[str, tuple[str, str]]:
    """``{flow run id: (worker name, process id)}`` from the workers' own events
    (``prefect.worker.executed-flow-run``: the worker as resource, the flow run and its process as related)."""
    body = {"filter": {"event": {"name": ["prefect.worker.executed-flow-run"]},
                       "occurred": {"since": "2000-01-01T00:00:00Z"}}, "limit": 50}  # the server's page size at most
    wanted, found = set(flow_run_ids), {}
    answer = httpx.post(f"{api_url}/events/filter", json=body, timeout=30)
    answer.raise_for_status()
    page = answer.json()
    while True:
        for event in page.get("events", []):
            worker = event["resource"].get("prefect.worker.name") or event["resource"].get("prefect.resource.name")
            for related in event.get("related", []):
                run_id = related["prefect.resource.id"].removeprefix("prefect.flow-run.")
                if related.get("prefect.resource.role") == "flow-run" and run_id in wanted:
                    found[run_id] = (worker, related.get("prefect.infrastructure.identifier", "?"))
        if not page.get("next_page"):
            return found
        answer = httpx.get(page["next_page"], timeout=30)
        answer.raise_for_status()
        page = answer.json()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--home", type=Path, default=PROJECT_DIR / "var" / "local-stack")
    parser.add_argument("--query-seconds", type=float, default=2.0, help="PREFECT_WORKER_QUERY_SECONDS of the workers")
    parser.add_argument("--limit", type=int, default=None,
                        help=f"flow runs at once per worker (default: {DEFAULT_LIMIT} for Glaneur's worker, "
                             "no limit for the process worker)")
    parser.add_argument("--worker-kind", choices=("glaneur", "process"), default="glaneur",
                        help="glaneur: collections in the worker's threads (infra/worker.py); process: Prefect's "
                             "process worker, an interpreter per flow run")
    parser.add_argument("--slot-wait", type=float, default=5.0,
                        help="seconds before a run refused by a deployment concurrency limit is offered again")
    args = parser.parse_args(argv)
    with local_stack(args.home, args.workers, query_seconds=args.query_seconds, worker_limit=args.limit,
                     worker_kind=args.worker_kind, slot_wait_seconds=args.slot_wait) as stack:
        wait_for_workers(stack)
        print(f"Prefect UI and API: {stack.api_url.removesuffix('/api')} (server on PostgreSQL)")
        print(f"Workers online: {', '.join(stack.worker_names)}; logs in {args.home / 'logs'}")
        print(f"From another shell: source {args.home / 'stack.env'}")
        print("Ctrl-C stops the workers, the server and the PostgreSQL cluster.")
        with contextlib.suppress(KeyboardInterrupt):
            while all(process.poll() is None for process in [stack.server, *stack.workers]):
                time.sleep(1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
