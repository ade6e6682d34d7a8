"""Benchmark: from the approver's submit to the flow continuing (issue 4: at most 2 s).

    .venv/bin/python bench/resume_latency.py [--rounds 5] [--poll 1]

Each round starts a collection whose portal asks for a code, waits for the run to pause, resumes it
through the API (what the UI's Submit does) and measures until the `answer-second-factor` task
starts in the flow. The poll interval is GLANEUR_PAUSE_POLL_SECONDS.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--poll", type=float, default=1.0)
    args = parser.parse_args()
    os.environ.update({"GLANEUR_HOME": tempfile.mkdtemp(prefix="glaneur-bench-"), "PREFECT_LOGGING_LEVEL": "WARNING",
                       "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "GLANEUR_PAUSE_POLL_SECONDS": str(args.poll)})
    import httpx
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName, TaskRunFilter, TaskRunFilterName
    from prefect.flow_runs import resume_flow_run
    from prefect.testing.utilities import prefect_test_harness

    import connectors.catalog  # noqa: F401  installs the provider catalogue the domain looks providers up in
    from glaneur import admin
    from glaneur.db import migrate, session_scope
    from glaneur.models import Right
    from glaneur.settings import reset_settings
    from sandbox.server import start_sandbox

    latencies = []
    with prefect_test_harness(server_startup_timeout=120), start_sandbox() as portals:
        os.environ["GLANEUR_PORTAL_URLS"] = json.dumps(portals.urls)
        reset_settings()
        migrate()
        base = portals.urls["papeterie-dupont"]
        accounts = httpx.get(f"{base}/_sandbox/accounts").json()
        rows = accounts["accounts"] if isinstance(accounts, dict) else accounts
        password = next(row["password"] for row in rows if row["login"] == "double-code")
        with session_scope() as session:
            admin.create_organization(session, "bench", "Bench")
            owner = admin.create_user(session, "bench", "b@bench.example", "B", [Right.CONFIGURE_COLLECTION])
            admin.create_binder(session, "bench", "factures", "Factures", actor=owner)
            admin.add_channel(session, "bench", label="P", provider="papeterie-dupont", binder="factures",
                              recipient="b@bench.example", slug="bench-2fa", actor=owner)
            admin.add_account(session, "bench-2fa", login="double-code", password=password, actor=owner)
        from flows.collect_channel import run_channel

        async def paused():
            async with get_client() as client:
                runs = await client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(like_="bench-2fa")))
                return [run for run in runs if run.state.is_paused()]

        async def answer_started(flow_run_id):
            async with get_client() as client:
                runs = await client.read_task_runs(
                    flow_run_filter=FlowRunFilter(id={"any_": [flow_run_id]}),
                    task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_="answer-second-factor")))
                return min((run.start_time for run in runs if run.start_time), default=None)

        for _ in range(args.rounds):
            httpx.post(f"{base}/_sandbox/sessions/expire").raise_for_status()
            context = contextvars.copy_context()
            thread = threading.Thread(target=lambda: context.run(run_channel, "bench-2fa"), daemon=True)
            thread.start()
            while not (runs := asyncio.run(paused())):
                time.sleep(0.2)
            code = httpx.get(f"{base}/_sandbox/outbox/double-code").json()[-1]["code"]
            submitted = datetime.now(timezone.utc)
            resume_flow_run(runs[0].id, run_input={"code": code})
            thread.join(120)
            started = asyncio.run(answer_started(runs[0].id))
            latencies.append((started - submitted).total_seconds())

    print(f"resume latency over {len(latencies)} rounds (poll {args.poll} s): "
          f"min {min(latencies):.2f} s, median {statistics.median(latencies):.2f} s, max {max(latencies):.2f} s "
          f"(target: at most 2 s)")


if __name__ == "__main__":
    main()
