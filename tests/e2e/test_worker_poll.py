"""Glaneur's worker asks the Prefect server only for the due runs it can start (a real Prefect server)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import pytest

pytestmark = pytest.mark.slow
NOW = datetime.now(timezone.utc)


@contextlib.asynccontextmanager
async def pool_with_due_runs(client, minutes_late: list[int]) -> AsyncIterator[tuple[str, list]]:
    """A process work pool of its own and a deployment with one due run a delay; all deleted afterwards."""
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.states import Scheduled

    pool = f"poll-{uuid.uuid4().hex[:8]}"
    await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    flow_id = await client.create_flow_from_name(pool)
    deployment = await client.create_deployment(flow_id=flow_id, name=pool, work_pool_name=pool)
    due = [await client.create_flow_run_from_deployment(
               deployment, state=Scheduled(scheduled_time=NOW - timedelta(minutes=minutes)))
           for minutes in minutes_late]
    try:
        yield pool, due
    finally:
        for run in due:
            await client.delete_flow_run(run.id)
        await client.delete_deployment(deployment)
        await client.delete_work_pool(pool)


def test_the_worker_asks_only_for_as_many_due_runs_as_it_has_free_slots(prefect_server):
    from prefect.client.orchestration import get_client

    from infra.worker import GlaneurWorker

    async def scenario() -> None:
        async with get_client() as client, pool_with_due_runs(client, [3, 9, 1, 7, 5, 2]) as (pool, due):
            earliest = [run.id for run in sorted(due, key=lambda run: run.next_scheduled_start_time)]
            async with GlaneurWorker(work_pool_name=pool, limit=3) as worker:
                # Prefect's own query hands a worker every due run of the pool, whatever its limit.
                everything = await worker.client.get_scheduled_flow_runs_for_work_pool(
                    pool, scheduled_before=NOW + timedelta(seconds=5))
                assert len(everything) == 6

                offered = await worker._get_scheduled_flow_runs()
                assert [entry.flow_run.id for entry in offered] == earliest[:3]

                for busy in range(2):  # two runs in progress: one free slot, the run due first
                    worker.limiter.acquire_on_behalf_of_nowait(uuid.uuid4())
                    offered = await worker._get_scheduled_flow_runs()
                    assert [entry.flow_run.id for entry in offered] == earliest[:2 - busy]
                worker.limiter.acquire_on_behalf_of_nowait(uuid.uuid4())
                assert await worker._get_scheduled_flow_runs() == []  # no slot: asks, receives nothing

                # The runs are untouched: all six still wait, for this worker or another.
                left = await client.get_scheduled_flow_runs_for_work_pool(
                    pool, scheduled_before=NOW + timedelta(seconds=5))
                assert sorted(entry.flow_run.id for entry in left) == sorted(run.id for run in due)
                assert {entry.flow_run.state_type.value for entry in left} == {"SCHEDULED"}

    asyncio.run(scenario())


def test_a_worker_without_a_limit_keeps_prefects_query(prefect_server):
    from prefect.client.orchestration import get_client

    from infra.worker import GlaneurWorker

    async def scenario() -> None:
        async with get_client() as client, pool_with_due_runs(client, [0] * 5) as (pool, _):
            async with GlaneurWorker(work_pool_name=pool, limit=None) as worker:
                assert len(await worker._get_scheduled_flow_runs()) == 5

    asyncio.run(scenario())


def test_a_poll_of_a_pool_deleted_meanwhile_starts_nothing_and_does_not_fail(prefect_server):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    from infra.worker import GlaneurWorker

    async def scenario() -> None:
        async with get_client() as client, pool_with_due_runs(client, [1, 2]) as (pool, _):
            async with GlaneurWorker(work_pool_name=pool, limit=2) as worker:
                assert len(await worker._get_scheduled_flow_runs()) == 2
                await client.delete_work_pool(pool)  # deleted in the UI between two polls
                assert await worker._get_scheduled_flow_runs() == []  # as Prefect's worker: recreated at its heartbeat
                await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))  # for the helper's cleanup

    asyncio.run(scenario())
