"""Benchmark: a full collection against the sandbox, and filing alone. Prints figures; asserts nothing.

    .venv/bin/python bench/collect_bench.py [--filings 500]

Figures: wall time of a first collection (28 invoices, two accounts, real Chromium), of a second
one that files nothing, invoices per second, peak memory of this process and of Chromium, and
filing throughput (sha256 + storage + database) without a browser.
"""

from __future__ import annotations

import argparse
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
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="glaneur-bench-"))
    os.environ.update({"GLANEUR_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                       "PREFECT_LOGGING_LEVEL": "WARNING", "GLANEUR_RETRY_BASE_SECONDS": "0.2"})

    from prefect.testing.utilities import prefect_test_harness

    import connectors.catalog  # noqa: F401  installs the provider catalogue the domain looks providers up in
    from glaneur import admin
    from glaneur.db import migrate, session_scope
    from glaneur.models import Right
    from glaneur.settings import reset_settings
    from sandbox.data import SUPPLIERS, accounts_of
    from sandbox.server import start_sandbox

    with prefect_test_harness(server_startup_timeout=120), start_sandbox() as portals:
        os.environ["GLANEUR_PORTAL_URLS"] = json.dumps(portals.urls)
        reset_settings()
        migrate()
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

    print(f"first collection:  {first['new']} invoices in {first_seconds:.2f} s "
          f"({first['new'] / first_seconds:.1f} invoices/s, browser start and two logins included)")
    print(f"second collection: {second['new']} new, {second['already_had']} already had, in {second_seconds:.2f} s")
    print(f"peak RSS: this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB, "
          f"largest child (Chromium, Prefect server) {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f} MiB")
    bench_filing(args.filings)


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
