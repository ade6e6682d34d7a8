"""Benchmark of issue 20: a day of N channels on Prefect's distributed setup, against the sandbox portals.

    .venv/bin/python bench/scale.py --channels 20 --invoices 12 [--workers 2] [--limit 4] [--worker-kind glaneur]
    make bench-scale CHANNELS=20 INVOICES=12 WORKERS=2 WORKER_KIND=process

Everything real: the sandbox portals, PostgreSQL, a Prefect server on it, N workers (infra/local_stack.py:
Glaneur's worker, collections in its threads, or ``--worker-kind process``, Prefect's process worker, an
interpreter per run), ``dispatch-daily`` and ``collect-channel`` deployments, Chromium. The provider
politeness limits are opened wide (``--provider-concurrency``, ``--provider-per-minute``) so that the
figures measure Glaneur and Prefect, not the pace chosen for real suppliers. Prints a table and writes
``var/bench/scale.json`` (``--out``):

- ``first_day_seconds``: dispatch started -> every channel's first collection finished (files M each);
- ``dispatch_seconds``: dispatch started -> the dispatch run done (every run of the day created);
- ``unchanged_day_seconds``: every channel collected again (nothing new): runs created at once;
- ``floor_seconds``: the same PDFs fetched by a plain HTTP client (login + downloads, ``--workers`` threads);
- ``no_prefect_seconds``: the same first collections (same connectors, browser, filing) called without
  Prefect (no server, no worker, no task runs), ``--workers`` processes, on a fresh database;
- ``documents_filed``, ``duplicates`` (documents or stored files beyond one per invoice and channel, or
  a channel collected more than once on the first day), ``peak_rss_mib`` (whole stack: PostgreSQL,
  Prefect server, workers, flow run processes, Chromium), the load average before and after.

Asserts nothing: figures depend on the machine. Rerun on an idle machine for figures that mean something.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import multiprocessing
import os
import re
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

ROOT = Path(__file__).resolve().parent.parent


def _tree_rss_mib(roots: list[int]) -> float:
    """Resident memory of the processes ``roots`` and all their descendants."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
            status = Path(f"/proc/{entry}/status").read_text()
            found = re.search(r"VmRSS:\s+(\d+) kB", status)
            rss[int(entry)] = int(found[1]) if found else 0
        except (OSError, IndexError, ValueError):
            continue
    wanted, frontier = set(roots), list(roots)
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in wanted:
                wanted.add(child)
                frontier.append(child)
    return sum(rss.get(pid, 0) for pid in wanted) / 1024


class PeakRss(threading.Thread):
    def __init__(self, roots: list[int]):
        super().__init__(daemon=True)
        self.roots, self.peak, self.done = roots, 0.0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, _tree_rss_mib(self.roots))
            self.done.wait(0.5)


_TICKS = os.sysconf("SC_CLK_TCK")


def _process_table() -> dict[int, tuple[int, float, float]]:
    """pid -> (parent, CPU seconds of the process itself, CPU seconds of its reaped children)."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            table[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICKS,
                                 (int(fields[13]) + int(fields[14])) / _TICKS)
    return table


def _descendants(table: dict, root: int) -> set[int]:
    found, frontier = set(), [root]
    while frontier:
        pid = frontier.pop()
        for child, (parent, _, _) in table.items():
            if parent == pid and child not in found:
                found.add(child)
                frontier.append(child)
    return found


def _cpu_by_part(parts: dict[str, tuple[list[int], bool]]) -> dict[str, float]:
    """CPU seconds used so far by each part: ``name -> (root pids, with their descendants)``.

    A process counts its own time and that of its children already ended (a flow run process, a
    Chromium renderer), so nothing is counted twice; "workers' Chromium" is the workers' descendants.
    """
    table = _process_table()
    used = {}
    for name, (roots, descendants) in parts.items():
        pids = set(roots)
        for root in roots if descendants else ():
            pids |= _descendants(table, root)
        used[name] = sum(table[p][1] + table[p][2] for p in pids if p in table)
    return used


def _cpu_spent(before: dict[str, float], after: dict[str, float], channels: int) -> dict[str, dict[str, float]]:
    spent = {name: after[name] - before[name] for name in before}
    spent["total"] = sum(spent.values())
    return {name: {"cpu_seconds": round(value, 1), "per_channel": round(value / channels, 2)}
            for name, value in spent.items()}


def _runs(api: str, deployment: str) -> list[dict]:
    found = httpx.get(f"{api}/deployments/name/{deployment}", timeout=60).json()
    runs, offset = [], 0
    while True:
        page = httpx.post(f"{api}/flow_runs/filter", timeout=60, json={
            "deployments": {"id": {"any_": [found["id"]]}}, "limit": 200, "offset": offset}).json()
        runs += page
        if len(page) < 200:
            return runs
        offset += 200


FINAL_STATES = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


def _wait(api: str, deployment: str, expected: int, timeout: float, ids: set[str] | None = None) -> list[dict]:
    """The deployment's runs once final (only ``ids`` when given: its cron also schedules future runs).

    While waiting it asks the server only to count (two cheap queries a second): reading every run each
    second, 2,000 of them on the unchanged day of 1,000 channels, was a load of the bench's own on the
    server it measures."""
    found = httpx.get(f"{api}/deployments/name/{deployment}", timeout=60).json()
    scope: dict = {"deployments": {"id": {"any_": [found["id"]]}}}
    if ids is not None:
        scope["flow_runs"] = {"id": {"any_": sorted(ids)}}

    def count(*states: str) -> int:
        body = {**scope, "flow_runs": {**scope.get("flow_runs", {}), **(
            {"state": {"type": {"any_": list(states)}}} if states else {})}}
        return httpx.post(f"{api}/flow_runs/count", timeout=60, json=body).raise_for_status().json()

    deadline = time.monotonic() + timeout
    while True:
        final = count(*FINAL_STATES)
        if final >= expected and final == count():
            return [r for r in _runs(api, deployment) if ids is None or r["id"] in ids]
        if time.monotonic() > deadline:
            raise SystemExit(f"{final}/{expected} runs of {deployment} done after {timeout:.0f} s")
        time.sleep(1)


def _phases(api: str, runs: list[dict]) -> dict[str, float]:
    """Mean seconds between state changes of the runs: due -> Pending (worker picked it up),
    Pending -> Running (process start, imports, pull step, engine), Running -> final (the collection)."""
    from datetime import datetime

    sums: dict[str, list[float]] = {"due_to_pending": [], "pending_to_running": [], "running_to_final": []}
    for run in runs:
        states = httpx.get(f"{api}/flow_run_states/", params={"flow_run_id": run["id"]}, timeout=60).json()
        at = {}
        for state in sorted(states, key=lambda s: s["timestamp"]):
            at.setdefault(state["type"], datetime.fromisoformat(state["timestamp"]))
        final = next((at[t] for t in ("COMPLETED", "FAILED", "CRASHED") if t in at), None)
        due = max(datetime.fromisoformat(run["expected_start_time"]), at.get("SCHEDULED", at.get("PENDING")))
        if "PENDING" in at:
            sums["due_to_pending"].append((at["PENDING"] - due).total_seconds())
        if "PENDING" in at and "RUNNING" in at:
            sums["pending_to_running"].append((at["RUNNING"] - at["PENDING"]).total_seconds())
        if "RUNNING" in at and final:
            sums["running_to_final"].append((final - at["RUNNING"]).total_seconds())
    return {key: round(sum(values) / len(values), 1) for key, values in sums.items() if values}


def _save(out: Path, result: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**result, "load_average_now": [round(x, 2) for x in os.getloadavg()]}, indent=2) + "\n")


def _create_run(api: str, deployment: str, parameters: dict) -> str:
    found = httpx.get(f"{api}/deployments/name/{deployment}", timeout=60).json()
    answer = httpx.post(f"{api}/deployments/{found['id']}/create_flow_run", timeout=60, json={"parameters": parameters})
    answer.raise_for_status()
    return answer.json()["id"]


def _fetch_plainly(base_url: str, provider: str, login: str, password: str, numbers: list[str]) -> int:
    """Log in with a plain HTTP client and download the PDFs; returns bytes received."""
    with httpx.Client(base_url=base_url, follow_redirects=True, timeout=60) as client:
        if provider == "papeterie-dupont":
            page = client.get("/login").text
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]
            client.post("/login", data={"username": login, "password": password, "csrf_token": csrf})
            paths = [f"/factures/{n}/pdf" for n in numbers]
        else:
            page = client.get("/connexion").text
            csrf = re.search(r'name="csrf" value="([^"]+)"', page)[1]
            client.post("/connexion", data={"email": login, "mot_de_passe": password, "csrf": csrf})
            paths = [f"/api/factures/{n}/pdf" for n in numbers]
        received = 0
        for path in paths:
            answer = client.get(path)
            answer.raise_for_status()
            if not answer.content.startswith(b"%PDF"):
                raise RuntimeError(f"{provider} {path}: not a PDF ({answer.headers.get('content-type')})")
            received += len(answer.content)
        return received


def _collect_without_prefect(job: tuple[dict[str, str], str]) -> int:
    """One channel's collection with the flow's own code, its Prefect tasks called as plain functions."""
    env, slug = job
    os.environ.update(env)
    from datetime import date

    from flows import collect_channel as flow_module
    from glaneur.db import session_scope
    from glaneur.invoices import collection
    from glaneur.settings import get_settings, reset_settings
    from tasks import collect as steps_module
    from tasks.browser import launch_browser
    from tasks.collect import AccountSteps

    flow_module.provider_slot = lambda provider: contextlib.nullcontext()  # Prefect's limits: not without Prefect
    for module in (flow_module, steps_module):  # no run, no run logger
        module.get_run_logger = lambda: logging.getLogger("bench.no-prefect")
    reset_settings()
    settings = get_settings()
    with session_scope() as session:
        plan = collection.load_plan(session, slug, settings, date.today())
    tasks = AccountSteps.configured(settings)  # the same steps, each called as its plain function
    steps = AccountSteps(**{f.name: getattr(getattr(tasks, f.name), "fn", getattr(tasks, f.name))
                            for f in dataclasses.fields(AccountSteps)})
    new = 0
    with launch_browser(settings) as browser:
        for account in plan.accounts:
            new += flow_module._collect_account(plan, account, browser, steps, settings, date.today()).new
    return new


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--channels", type=int, default=20)
    parser.add_argument("--invoices", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, default=4, help="flow runs at once per worker")
    parser.add_argument("--worker-kind", choices=("glaneur", "process"), default="glaneur")
    parser.add_argument("--provider-concurrency", type=int, default=16, help="sessions at once per sandbox portal")
    parser.add_argument("--provider-per-minute", type=float, default=6000.0, help="sessions started per minute")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench" / "scale.json")
    parser.add_argument("--skip-no-prefect", action="store_true")
    args = parser.parse_args()
    # A bench stopped with kill (SIGTERM) stops its stack too: the server, the workers, PostgreSQL, the sandbox.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

    from glaneur.settings import reset_settings
    from infra.local_stack import local_stack, runs_by_worker, wait_for_workers
    from sandbox.fleet import create_fleet, fleet_account, top_up_invoices
    from sandbox.server import start_sandbox

    n, m = args.channels, args.invoices
    load_before = os.getloadavg()
    home = Path(tempfile.mkdtemp(prefix="glaneur-scale-"))
    result: dict[str, object] = {"channels": n, "invoices_per_channel": m, "workers": args.workers,
                                 "worker_kind": args.worker_kind, "runs_per_worker": args.limit,
                                 "cores": os.cpu_count(), "load_average_before": [round(x, 2) for x in load_before]}
    with start_sandbox() as portals:
        top_up_invoices(portals.urls, m)
        polite = {"concurrency": args.provider_concurrency, "per_minute": args.provider_per_minute}
        extra = {"GLANEUR_PORTAL_URLS": json.dumps(portals.urls),
                 "GLANEUR_PROVIDER_LIMITS": json.dumps({slug: polite for slug in portals.urls})}
        with local_stack(home / "stack", args.workers, extra_env=extra, worker_limit=args.limit,
                         worker_kind=args.worker_kind, timeout=900) as stack:  # a loaded machine deploys slowly
            for key, value in stack.env.items():
                if key.startswith("GLANEUR_"):
                    os.environ[key] = value
            reset_settings()
            slugs = create_fleet(n, time_slot="00:00")
            wait_for_workers(stack)
            pg_pid = int((stack.cluster.data / "postmaster.pid").read_text().split()[0])
            peak = PeakRss([os.getpid(), pg_pid, stack.server.pid, *(w.pid for w in stack.workers)])
            peak.start()
            api = stack.api_url
            worker_pids = [w.pid for w in stack.workers]
            table = _process_table()
            parts = {  # where the CPU goes; the sandbox portals are threads of this process
                "postgresql": ([pg_pid], True),
                "prefect_server": ([stack.server.pid], True),
                "workers_python": (worker_pids, False),
                "workers_children": ([c for w in worker_pids for c in _descendants(table, w)], True),
                "sandbox_and_bench": ([os.getpid()], False),
            }

            def children_now() -> None:  # Chromiums and flow run processes start after the workers
                table = _process_table()
                parts["workers_children"] = ([c for w in worker_pids for c in _descendants(table, w)], True)

            cpu = _cpu_by_part(parts)

            started = time.perf_counter()
            dispatch = _create_run(api, "dispatch-daily/dispatch-daily", {})
            # Bounds that grow with the channels: the dispatch of 1,000 channels outlasts 10 minutes on 2
            # busy cores (it creates the runs one by one while the first ones collect), a day an hour.
            _wait(api, "dispatch-daily/dispatch-daily", 1, max(600, 3 * n), ids={dispatch})
            result["dispatch_seconds"] = round(time.perf_counter() - started, 1)  # every run created
            first = _wait(api, "collect-channel/collect-channel", n, max(3600, 12 * n))
            result["first_day_seconds"] = round(time.perf_counter() - started, 1)
            placed, deadline = {}, time.monotonic() + 60  # the workers' events arrive a little after the runs end
            while len(placed) < len(first) and time.monotonic() < deadline:
                placed = runs_by_worker(api, [r["id"] for r in first])
                time.sleep(1)
            result["runs_by_worker"] = {w: sum(1 for v in placed.values() if v[0] == w) for w in stack.worker_names}
            result["first_day_states"] = sorted({r["state_type"] for r in first})
            per_run = [r["total_run_time"] for r in first if r.get("total_run_time")]
            result["mean_run_seconds"] = round(sum(per_run) / len(per_run), 1) if per_run else None
            children_now()
            cpu_now = _cpu_by_part(parts)
            result["first_day_cpu"] = _cpu_spent(cpu, cpu_now, n)
            result["first_day_phases_mean_seconds"] = _phases(api, first)
            _save(args.out, result)  # a long run stopped later still leaves its first day

            from flows.dispatch import CREATING_AT_ONCE  # imported before the day is measured

            cpu = _cpu_by_part(parts)  # before the runs are created: the workers start them while the rest are made
            started = time.perf_counter()
            # The runs made as the dispatch makes them, a few at a time (flows.dispatch.CREATING_AT_ONCE): made
            # one after another, a thousand short runs waited for their own creation.
            with ThreadPoolExecutor(CREATING_AT_ONCE) as pool:
                list(pool.map(lambda slug: _create_run(api, "collect-channel/collect-channel", {"channel": slug}), slugs))
            both = _wait(api, "collect-channel/collect-channel", 2 * n, max(3600, 12 * n))
            result["unchanged_day_seconds"] = round(time.perf_counter() - started, 1)
            children_now()
            result["unchanged_day_cpu"] = _cpu_spent(cpu, _cpu_by_part(parts), n)
            first_ids = {r["id"] for r in first}
            result["unchanged_day_phases_mean_seconds"] = _phases(api, [r for r in both if r["id"] not in first_ids])
            _save(args.out, result)
            peak.done.set()
            peak.join()
            result["peak_rss_mib"] = round(peak.peak)

            from sqlmodel import func, select

            from glaneur.db import session_scope
            from glaneur.models import Channel, Document

            with session_scope() as session:
                rows = session.exec(select(Channel.slug, Channel.provider, Document.provider_reference).join(
                    Document, Document.channel_id == Channel.id)).all()
                filed = session.exec(select(func.count()).select_from(Document)).one()
            stored = sum(1 for _ in (Path(stack.env["GLANEUR_HOME"]) / "documents").rglob("*.pdf"))
            per_channel_first_day = {}
            for run in first:
                per_channel_first_day[run["parameters"]["channel"]] = per_channel_first_day.get(
                    run["parameters"]["channel"], 0) + 1
            result["documents_filed"] = filed
            result["documents_stored"] = stored
            result["duplicates"] = (max(0, filed - len({(s, r) for s, _, r in rows})) + max(0, stored - filed)
                                    + sum(c - 1 for c in per_channel_first_day.values()))
            result["missing"] = max(0, n * m - filed)

            jobs = {}
            for slug, provider, reference in rows:
                jobs.setdefault((slug, provider), []).append(reference)
            started = time.perf_counter()
            with ThreadPoolExecutor(args.workers) as pool:
                received = sum(pool.map(lambda item: _fetch_plainly(
                    portals.urls[item[0][1]], item[0][1], fleet_account(item[0][1]).login,
                    fleet_account(item[0][1]).password, item[1]), jobs.items()))
            result["floor_seconds"] = round(time.perf_counter() - started, 2)
            result["floor_mib"] = round(received / 2**20, 2)

            if not args.skip_no_prefect:
                fresh = stack.cluster.create_database("noprefect")
                env = {"GLANEUR_DATABASE_URL": fresh, "GLANEUR_HOME": str(home / "noprefect"),
                       "GLANEUR_PORTAL_URLS": json.dumps(portals.urls)}
                os.environ.update(env)
                reset_settings()
                plain = create_fleet(n, time_slot="00:00")
                started, times = time.perf_counter(), os.times()
                with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                    filed_plain = sum(pool.map(_collect_without_prefect, [(env, slug) for slug in plain]))
                result["no_prefect_seconds"] = round(time.perf_counter() - started, 1)
                ended = os.times()  # the pool's processes, ended and reaped; the sandbox's threads are this process
                result["no_prefect_cpu_seconds"] = round(
                    ended.children_user + ended.children_system - times.children_user - times.children_system
                    + ended.user + ended.system - times.user - times.system, 1)
                result["no_prefect_documents_filed"] = filed_plain
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    _save(args.out, result)
    width = max(len(k) for k in result)
    print(f"{'figure':<{width}}  value")
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
