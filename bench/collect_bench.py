"""Benchmark: a full collection against the sandbox, and filing alone. Prints figures; asserts nothing.

    .venv/bin/python bench/collect_bench.py [--filings 500] [--unchanged 10]

Figures: wall time of a first collection (28 invoices, two accounts, real Chromium), of a second
one that files nothing, invoices per second, peak memory of this process and of Chromium, and
filing throughput (sha256 + storage + database) without a browser.

Then a run's fixed cost: ``--unchanged`` more runs of the same channel with nothing new, one after
the other, as a worker thread runs them (one Chromium kept for all, ``tasks.browser.keep_browser``).
Per run: wall time, the task runs it recorded, and CPU seconds of the Prefect server (the test
harness's server process), of Chromium (Playwright's driver and the browser) and of this process (the
flow, Prefect's engine, the sandbox portal's threads). Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--filings", type=int, default=500)
    parser.add_argument("--unchanged", type=int, default=10, help="runs with nothing new, for a run's fixed cost")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="glaneur-bench-"))
    os.environ.update({"GLANEUR_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                       "PREFECT_LOGGING_LEVEL": "WARNING", "GLANEUR_RETRY_BASE_SECONDS": "0.2"})

    from prefect.testing.utilities import prefect_test_harness

    from infra.deploy import ensure_limits

    import connectors.catalog  # noqa: F401  installs the provider catalogue the domain looks providers up in
    from glaneur import admin
    from glaneur.db import migrate, session_scope
    from glaneur.models import Right
    from glaneur.settings import reset_settings
    from sandbox.data import SUPPLIERS, accounts_of
    from sandbox.server import start_sandbox

    with prefect_test_harness(server_startup_timeout=120), start_sandbox() as portals:
        os.environ["GLANEUR_PORTAL_URLS"] = json.dumps(portals.urls)
        # The provider limits exist, as after `make deploy`, opened wide: the runs measure Glaneur, not the waits.
        os.environ["GLANEUR_PROVIDER_LIMITS"] = json.dumps({"papeterie-dupont": {"concurrency": 4, "per_minute": 6000}})
        reset_settings()
        migrate()
        asyncio.run(ensure_limits())
        accounts = accounts_of(SUPPLIERS["papeterie-dupont"])
        with session_scope() as session:
            admin.create_organization(session, "bench", "Bench")
            actor = admin.create_user(session, "bench", "b@bench.example", "B", [Right.CONFIGURE_COLLECTION])
            admin.create_binder(session, "bench", "factures", "Factures", actor=actor)
            admin.add_channel(session, "bench", label="P", provider="papeterie-dupont", binder="factures",
                              recipient="b@bench.example", slug="bench-p", actor=actor)
            for login in ("acme", "acme-bis"):
                admin.add_account(session, "bench-p", login=login, password=accounts[login].password, actor=actor)
        from flows.collect_channel import run_channel

        started = time.perf_counter()
        first = run_channel("bench-p")
        first_seconds = time.perf_counter() - started
        started = time.perf_counter()
        second = run_channel("bench-p")
        second_seconds = time.perf_counter() - started
        fixed = bench_unchanged_runs("bench-p", args.unchanged) if args.unchanged else None

    print(f"first collection:  {first['new']} invoices in {first_seconds:.2f} s "
          f"({first['new'] / first_seconds:.1f} invoices/s, browser start and two logins included)")
    print(f"second collection: {second['new']} new, {second['already_had']} already had, in {second_seconds:.2f} s")
    print(f"peak RSS: this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB, "
          f"largest child (Chromium, Prefect server) {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f} MiB")
    if fixed:
        print(f"a run with nothing new (2 accounts, remembered sessions, Chromium kept), mean of {args.unchanged}: "
              f"{fixed['seconds']:.2f} s, {fixed['task_runs']:.1f} task runs; CPU seconds: Prefect server "
              f"{fixed['prefect_server']:.2f}, Chromium {fixed['chromium']:.2f}, this process {fixed['this_process']:.2f}")
    bench_filing(args.filings)


def _cpu_of_children() -> dict[str, float]:
    """CPU seconds of this process and of its children's trees, by part (Chromium under Playwright's driver)."""
    from chromium_cost import tree_cpu  # bench/ is this script's folder

    me = os.getpid()
    children: list[int] = []
    for thread in os.listdir(f"/proc/{me}/task"):
        try:
            children += [int(pid) for pid in Path(f"/proc/{me}/task/{thread}/children").read_text().split()]
        except OSError:  # a thread that ended meanwhile
            continue
    parts = {"prefect_server": 0.0, "chromium": 0.0}
    for child in children:
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        parts["prefect_server" if "uvicorn" in command or "prefect" in command else "chromium"] += tree_cpu(child, True)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    parts["this_process"] = usage.ru_utime + usage.ru_stime
    return parts


def bench_unchanged_runs(channel: str, runs: int) -> dict[str, float]:
    """Mean wall time, task runs and CPU seconds by part of ``runs`` runs of ``channel`` with nothing new."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.collect_channel import collect_channel
    from glaneur.db import session_scope
    from glaneur.models import CollectionRun
    from sqlmodel import select
    from tasks.browser import keep_browser

    with keep_browser():  # as a worker thread: its state is not read with .result() under Playwright's loop
        collect_channel(channel=channel, return_state=True)  # Chromium launched once, before the measure
        with session_scope() as session:
            last_row = max(session.exec(select(CollectionRun.id)).all())
        time.sleep(2)  # the server's event processing of the runs above
        before, started = _cpu_of_children(), time.perf_counter()
        for _ in range(runs):
            collect_channel(channel=channel, return_state=True)
        seconds = time.perf_counter() - started
        time.sleep(2)  # what the server still records of the last run's events
        after = _cpu_of_children()
    with session_scope() as session:
        rows = session.exec(select(CollectionRun).where(CollectionRun.id > last_row)).all()
    if len(rows) != 2 * runs or any(row.status != "ok" or row.new_documents for row in rows):
        raise SystemExit(f"the unchanged runs did not all end ok with nothing new: {[(r.status, r.new_documents) for r in rows]}")
    ids = {UUID(row.flow_run_id) for row in rows}

    async def task_runs() -> int:
        async with get_client() as client:
            found = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=list(ids))))
            return len(found)

    measured = {part: (after[part] - before[part]) / runs for part in after}
    return {"seconds": seconds / runs, "task_runs": asyncio.run(task_runs()) / len(ids), **measured}


def bench_filing(count: int) -> None:
    """sha256, idempotent storage write and database row per document, no browser."""
    from glaneur.contract import FetchedDocument, RemoteDocument
    from glaneur.db import session_scope
    from glaneur.invoices import collection
    from glaneur.settings import get_settings
    from glaneur.storage import get_storage
    from sandbox.data import SUPPLIERS, accounts_of, initial_invoices
    from sandbox.pdfs import invoice_pdf

    settings = get_settings()
    supplier = SUPPLIERS["papeterie-dupont"]
    account = next(iter(accounts_of(supplier).values()))
    with session_scope() as session:
        plan = collection.load_plan(session, "bench-p", settings, date.today())
        run_id = collection.start_run(session, plan, None, None)
    base = invoice_pdf(supplier, initial_invoices(supplier, account)[0])
    storage = get_storage(settings)
    started = time.perf_counter()
    with session_scope() as session:
        for n in range(count):
            content = base + f"\n% bench {n}\n".encode()
            fetched = FetchedDocument(RemoteDocument(f"BENCH-{n}", date(2026, 1, 1), "", Decimal("1")), content)
            collection.file_document(session, storage, plan, account_id=plan.accounts[0].id, run_id=run_id,
                                     fetched=fetched, settings=settings)
    seconds = time.perf_counter() - started
    print(f"filing alone: {count} documents of {len(base)} bytes in {seconds:.2f} s ({count / seconds:.0f} documents/s)")


if __name__ == "__main__":
    main()
