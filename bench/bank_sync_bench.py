"""Benchmark: a bank channel's first sync of about 10,000 movements over Powens pagination. Prints figures.

    .venv/bin/python bench/bank_sync_bench.py [--movements 10000] [--page 1000]

Against the Powens sandbox over HTTP (``limit`` and ``_links.next``), into SQLite and local storage,
with the same step functions the flow runs (without Prefect's task bookkeeping): the time of the
first sync (fetch + record), of filing the daily files, of a re-run that finds nothing new, the
number of pages, and the peak memory (Python allocations, and the process's maximum RSS).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--movements", type=int, default=10_000)
    parser.add_argument("--page", type=int, default=1000)
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="glaneur-bank-bench-")
    os.environ["GLANEUR_HOME"] = home
    os.environ["PREFECT_LOGGING_LEVEL"] = "ERROR"
    os.environ.setdefault("GLANEUR_NAVIGATION_TIMEOUT_SECONDS", "120")  # the sandbox computes 10,000 movements on a shared machine

    import connectors.catalog  # noqa: F401  installs the provider catalogue the domain looks providers up in
    from glaneur import admin, bank
    from glaneur.db import migrate, session_scope
    from glaneur.invoices import collection
    from glaneur.settings import reset_settings
    from sandbox.powens import PowensWorld, start_powens
    from sandbox.powens.state import HISTORY_DAYS

    reset_settings()
    migrate()
    world = PowensWorld("bench", "bench-secret")
    with start_powens(world) as handle:
        url = handle.urls["powens"]
        os.environ.update({"GLANEUR_POWENS_API_URL": url, "GLANEUR_POWENS_CLIENT_ID": "bench",
                           "GLANEUR_POWENS_CLIENT_SECRET": "bench-secret"})
        from connectors.powens import PowensClient

        client = PowensClient(url, client_id="bench", client_secret="bench-secret")
        token, user = client.init_user()
        per_day = -(-args.movements // (HISTORY_DAYS + 1))
        remote = world.create_connection(user, 40, f"bench-{per_day * (HISTORY_DAYS + 1)}")
        with session_scope() as session:
            admin.create_organization(session, "bench", "Bench")
            anne = admin.create_user(session, "bench", "anne@bench.example", "Anne", ["configure_accounting"])
            admin.create_binder(session, "bench", "banque", "Banque", actor=anne)
            found = bank.add_bank(session, "bench", "Connecteur de test", actor=anne)
            org = admin.get_organization(session, "bench")
            consent = bank.record_consent(session, org, found, holder_email=anne.email, given=True, actor=anne,
                                          text=bank.consent_text(org, found))
            new = bank.check_new_connection(session, "bench", "Connecteur de test", binder="banque",
                                            recipient=anne.email, actor=anne)
            channel, _ = bank.create_connection(session, new, consent=consent, powens_user_id=user, token=token,
                                                powens_connection_id=remote.id, powens_connector_id=40,
                                                settings=bank.powens_settings())
            channel_id, slug = channel.id, channel.slug
            plan = collection.CollectionPlan(channel_id, slug, channel.label, channel.provider, "bench", "banque")
            run_id = collection.start_run(session, plan, None, None)

        from datetime import date

        from tasks import bank as steps

        tracemalloc.start()
        started = time.perf_counter()
        steps.list_accounts.fn(channel_id)
        fetched = steps.fetch_movements.fn(channel_id, run_id, page_size=args.page)
        synced = time.perf_counter()
        keys = steps.file_movements.fn(channel_id, "bench", "banque", slug, run_id, date.today())
        filed = time.perf_counter()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        again = steps.fetch_movements.fn(channel_id, run_id, page_size=args.page)
        rerun = time.perf_counter() - filed

    total = fetched.new
    print(f"movements: {total} over {fetched.pages} page(s) of at most {args.page}")
    print(f"first sync (HTTP pages + record in SQLite): {synced - started:.2f} s ({total / (synced - started):.0f} movements/s)")
    print(f"filing the day's CSV and OFX ({len(keys)} files): {filed - synced:.2f} s")
    print(f"re-run from the cursor: {rerun:.2f} s, {again.new} new, {again.updated} updated")
    print(f"peak Python allocations during sync and filing: {peak / 1e6:.1f} MB")
    print(f"max RSS of the process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
