"""Glaneur's worker: Prefect's process worker, with collections run inside it instead of one interpreter each.

    python -m infra.worker --pool glaneur --limit 4 [--name NAME]      # or: make worker

It is ``prefect worker start --pool glaneur --type process`` (same work pool, same deployments, same
polling, heartbeats, worker limit, events and UI) with two differences. First, a ``collect-channel`` run is
executed by Prefect's own flow engine (``prefect.flow_engine.run_flow``, what ``python -m
prefect.engine`` calls in a child process) on one of the worker's ``--limit`` long-lived threads, so a
run costs no interpreter start, no imports and no Chromium launch:

- each thread keeps one Chromium for every collection it runs (``tasks.browser.keep_browser``); each
  account gets a fresh browser context, always closed;
- the flow module is imported once per worker, on the first run;
- each channel is still its own flow run, named after the channel and the day, in the UI.

The other difference is in the polling: at each poll it asks the server for as many due runs as it has
free slots, not for every due run of the pool (``_get_scheduled_flow_runs``); and when a run ends while the
last poll left due runs behind, it polls at once for the freed slot instead of leaving it idle until the
next regular poll (``_release_limit_slot``); likewise when a run it was given was taken first by another
worker polling at the same moment (a few times in a row at most, then the regular poll paces it).

Every other deployment (invitations that suspend, statements, bank movements, dispatch) runs as with
the process worker, in its own process: a suspended invitation must let its process go.

What a run in a thread cannot have (see the README, "Running many channels"):

- its own environment: it runs with the worker's (a deployment's ``job_variables.env`` fills in only
  variables the worker does not set, once, and a different value later is logged and ignored);
- a hard kill: cancelling a running collection from the UI is not enforced by the worker (the run
  ends on its own); a worker killed outright takes its running collections with it (Prefect marks them
  Crashed when their heartbeats stop, Glaneur's sweep closes their history rows).

Several workers scale out exactly as process workers do (one per machine or more, same pool).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import importlib
import logging
import os
import queue
import sys
import threading
import warnings
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
from prefect.client.schemas.responses import WorkerFlowRunResponse
from prefect.workers.process import ProcessJobConfiguration, ProcessWorker, ProcessWorkerResult
from pydantic import TypeAdapter

from infra.deploy import WORK_POOL

IN_PROCESS_ENTRYPOINTS = frozenset({"flows/collect_channel.py:collect_channel"})
DEFAULT_LIMIT = 4
REFUSED_POLLS_IN_A_ROW = 3  # immediate polls after runs taken by other workers, until one of its own starts
_DUE_RUNS = TypeAdapter(list[WorkerFlowRunResponse])

_flows: dict[str, Any] = {}
_flows_lock = threading.Lock()
_env_lock = threading.Lock()
logger = logging.getLogger("glaneur.worker")


def load_entrypoint(entrypoint: str) -> Any:
    """The flow object of ``path/to/module.py:name``, imported once as the package module it is."""
    with _flows_lock:
        if entrypoint not in _flows:
            path, name = entrypoint.rsplit(":", 1)
            module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
            _flows[entrypoint] = getattr(module, name)
        return _flows[entrypoint]


def execute_flow_run(flow_run_id, entrypoint: str) -> int:
    """Run one flow run to its final state with Prefect's engine, in this thread; 0 unless the engine broke."""
    from prefect.flow_engine import flow_run_logger, load_flow_run, run_flow

    flow_run = load_flow_run(flow_run_id=flow_run_id)
    run_logger = flow_run_logger(flow_run=flow_run)
    try:
        flow = load_entrypoint(entrypoint)
    except Exception:
        run_logger.error("Unexpected exception encountered when trying to load flow", exc_info=True)
        raise
    run_flow(flow, flow_run=flow_run, error_logger=run_logger, return_type="state")
    return 0


class Lane(threading.Thread):
    """One of the worker's collection threads: runs flow runs one after another with one kept Chromium."""

    def __init__(self, jobs: queue.SimpleQueue, index: int):
        super().__init__(name=f"glaneur-lane-{index}", daemon=True)
        self.jobs = jobs

    def run(self) -> None:
        from tasks.browser import keep_browser

        try:
            with keep_browser():
                self.serve()
        except Exception as error:  # Playwright could not start: every run given to this lane fails, none hangs
            logger.exception("%s cannot start Playwright", self.name)
            self.serve(broken=error)

    def serve(self, broken: Exception | None = None) -> None:
        while (job := self.jobs.get()) is not None:
            flow_run_id, entrypoint, future = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                if broken is not None:
                    raise RuntimeError(f"{self.name} has no browser: {broken}") from broken
                future.set_result(execute_flow_run(flow_run_id, entrypoint))
            except BaseException as error:  # noqa: BLE001  handed to the worker, which marks the run Crashed
                future.set_exception(error)


with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Prefect warns that a second class registers the "process" type

    class GlaneurWorker(ProcessWorker):
        """A process worker whose collection runs go to its lanes (threads) instead of child processes."""

        type = "process"  # the same work pool type: its job template and the deployments stay valid

        def __init__(self, *args: Any, limit: int | None = DEFAULT_LIMIT, **kwargs: Any):
            super().__init__(*args, limit=limit, **kwargs)
            self._jobs: queue.SimpleQueue = queue.SimpleQueue()
            self._lanes = [Lane(self._jobs, index) for index in range(1, (limit or DEFAULT_LIMIT) + 1)]
            self._entrypoints: dict[Any, str | None] = {}
            self._env_applied: dict[str, str] = {}
            self._backlog = False  # the last poll that had free slots filled them all: more runs may be due
            self._polling_now = False  # a poll for freed slots is on its way
            self._started: set = set()  # runs handed to a lane or a process, whose slot is not yet freed
            self._refused_in_a_row = 0  # runs given to this worker but not started since the last one started

        async def _entrypoint(self, flow_run) -> str | None:
            if flow_run.deployment_id is None:
                return None
            if flow_run.deployment_id not in self._entrypoints:
                deployment = await self.client.read_deployment(flow_run.deployment_id)
                self._entrypoints[flow_run.deployment_id] = deployment.entrypoint
            return self._entrypoints[flow_run.deployment_id]

        async def _get_scheduled_flow_runs(self) -> list[WorkerFlowRunResponse]:
            """The due runs this worker can start now: as many as it has free slots, earliest first.

            Prefect's worker asks for every due run of the pool at each poll (the server's default limit,
            200) and starts those its ``--limit`` allows; on a night of a thousand channels each poll
            serialised 200 runs for two or three starts (PrefectHQ/prefect#19403). The same request with
            ``limit`` set to the free slots: with none free, it still polls (the pool and its queues stay
            "ready" in the UI) and receives nothing.
            """
            body: dict[str, Any] = {
                "scheduled_before": str(datetime.now(timezone.utc) + timedelta(seconds=int(self._prefetch_seconds))),
                "work_queue_names": list(self._work_queues),
            }
            free = None if self._limiter is None else int(self._limiter.available_tokens)
            if free is not None:
                body["limit"] = free
            try:
                response = await self.client.request(
                    "POST", "/work_pools/{name}/get_scheduled_flow_runs",
                    path_params={"name": self._work_pool_name}, json=body,
                )
            except httpx.HTTPStatusError as error:
                if error.response.status_code == 404:  # the pool is created again at the next heartbeat
                    return []
                raise
            due = _DUE_RUNS.validate_python(response.json())
            if free:  # a poll with no free slot learns nothing about what is due
                self._backlog = len(due) >= free
            return due

        def _release_limit_slot(self, flow_run_id) -> None:
            """Free the run's slot and, when the last poll left due runs behind, poll at once for it.

            Prefect's worker leaves a freed slot idle until its next poll (``PREFECT_WORKER_QUERY_SECONDS``):
            on a night where runs queue up, every run ended cost its slot half an interval on average. One
            poll is on its way at a time; runs that end meanwhile are served by it or by the next one.

            A run the worker was given but did not start frees its slot too: most often another worker
            polling at the same moment was given the same earliest runs and moved it to Pending first (about
            one submission in ten with two workers and a full pool). That run is gone from the due ones, so
            an immediate poll gets the next; after ``REFUSED_POLLS_IN_A_ROW`` such polls without a start of
            its own, the regular poll paces the tries (a run the server keeps refusing cannot make a storm).
            """
            super()._release_limit_slot(flow_run_id)
            if flow_run_id in self._started:
                self._started.discard(flow_run_id)
            elif self._refused_in_a_row < REFUSED_POLLS_IN_A_ROW:
                self._refused_in_a_row += 1
            else:
                return
            if not (self._backlog and self.is_setup) or self._polling_now or self._runs_task_group is None:
                return  # nothing known to be waiting, the worker is stopping, or a poll is already coming
            self._polling_now = True
            self._runs_task_group.start_soon(self._poll_for_freed_slots)

        async def _poll_for_freed_slots(self) -> None:
            self._polling_now = False
            try:
                await self.get_and_submit_flow_runs()
            except Exception:  # noqa: BLE001  the regular poll takes over; a failed poll must not stop the worker
                logger.warning("Polling at once for a freed slot failed; the next regular poll takes over", exc_info=True)

        def _apply_env(self, env: dict[str, str | None]) -> None:
            """The deployment's own variables (not Prefect's per-run ones) where the worker sets none."""
            with _env_lock:
                for key, value in env.items():
                    if value is None or key.startswith("PREFECT"):
                        continue
                    current = os.environ.get(key)
                    if current is None:
                        os.environ[key] = self._env_applied[key] = value
                    elif current != value and key not in self._env_applied:
                        self._env_applied[key] = current
                        logger.warning("%s=%r from the deployment is ignored: this worker runs collections with %r",
                                       key, value, current)

        async def run(self, flow_run, configuration: ProcessJobConfiguration, task_status=None) -> ProcessWorkerResult:
            self._started.add(flow_run.id)
            self._refused_in_a_row = 0
            entrypoint = await self._entrypoint(flow_run)
            if entrypoint not in IN_PROCESS_ENTRYPOINTS:
                return await super().run(flow_run, configuration, task_status)
            self._apply_env(configuration.env)
            for lane in self._lanes:
                if not lane.is_alive() and lane.ident is None:
                    lane.start()
            future: concurrent.futures.Future = concurrent.futures.Future()
            self._jobs.put((flow_run.id, entrypoint, future))
            if task_status is not None:
                task_status.started(os.getpid())  # the flow run's "infrastructure": this worker's process
            try:
                code = await asyncio.wrap_future(future)
            except Exception:
                self.get_flow_run_logger(flow_run).exception("The flow engine failed in the worker")
                code = 1
            return ProcessWorkerResult(status_code=code, identifier=str(os.getpid()))

        async def __aexit__(self, *exc_info: Any) -> None:
            try:
                await super().__aexit__(*exc_info)  # waits for the runs in progress
            finally:
                started = [lane for lane in self._lanes if lane.ident is not None]
                for _ in started:
                    self._jobs.put(None)
                for lane in started:  # each closes its Chromium
                    await asyncio.to_thread(lane.join, 30)

    from prefect.utilities.dispatch import get_registry_for_type

    get_registry_for_type(ProcessWorker)["process"] = ProcessWorker  # `--type process` elsewhere stays Prefect's


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", default=WORK_POOL)
    parser.add_argument("--name", default=None)
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT,
                        help=f"flow runs at once in this worker, each collection on its own thread and Chromium "
                             f"(default {DEFAULT_LIMIT})")
    args = parser.parse_args(argv)
    if args.limit < 1:
        parser.error("--limit must be at least 1")

    async def serve() -> None:
        worker = GlaneurWorker(work_pool_name=args.pool, name=args.name, limit=args.limit)
        await worker.start()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
