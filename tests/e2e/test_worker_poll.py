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
async def pool_with_due_runs(
    client, minutes_late: list[int], entrypoint: str | None = None
) -> AsyncIterator[tuple[str, list]]:
    """A process work pool of its own and a deployment with one due run a delay; all deleted afterwards."""
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.states import Scheduled

    pool = f"poll-{uuid.uuid4().hex[:8]}"
    await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    flow_id = await client.create_flow_from_name(pool)
    deployment = await client.create_deployment(flow_id=flow_id, name=pool, work_pool_name=pool, entrypoint=entrypoint)
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


async def final_states(client, runs: list, within: float) -> list[str]:
    """The runs' state types once all are final, or as they are after ``within`` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        states = [(await client.read_flow_run(run.id)).state for run in runs]
        if all(state.is_final() for state in states) or asyncio.get_running_loop().time() > deadline:
            return [state.type.value for state in states]
        await asyncio.sleep(0.5)


@contextlib.asynccontextmanager
async def serving(worker, hand=None) -> AsyncIterator[list[int]]:
    """``worker`` serving its pool with a regular poll every ten minutes; yields the count of runs offered at
    each of its polls. ``hand(offered, poll)`` may act on what a poll offers before the worker sees it."""
    from prefect.settings import PREFECT_WORKER_QUERY_SECONDS, temporary_settings

    polls: list[int] = []
    ask = worker._get_scheduled_flow_runs

    async def counted():
        offered = await ask()
        polls.append(len(offered))
        return offered if hand is None else await hand(offered, len(polls))

    worker._get_scheduled_flow_runs = counted
    with temporary_settings({PREFECT_WORKER_QUERY_SECONDS: 600}):
        task = asyncio.create_task(worker.start(printer=lambda *_: None))
        try:
            yield polls
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def until_polled(polls: list[int], times: int, within: float = 30) -> None:
    """Waits for the worker's ``times``-th poll (``within`` seconds at most), then a second for any poll too many."""
    deadline = asyncio.get_running_loop().time() + within
    while len(polls) < times and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.25)
    await asyncio.sleep(1)


def take_first(client, taken: list, polls_lost=None):
    """What another worker does to the runs offered at a poll (every poll, or those in ``polls_lost``):
    it moves each to Pending first."""
    from prefect.states import Pending
    from prefect.utilities.engine import propose_state

    async def taking(offered, poll: int):
        if polls_lost is None or poll in polls_lost:
            for entry in offered:
                await propose_state(client, Pending(), flow_run_id=entry.flow_run.id)
                taken.append(entry.flow_run.id)
        return offered

    return taking


def test_a_run_that_ends_while_runs_wait_hands_its_slot_to_the_next_at_once(prefect_server, monkeypatch):
    """One slot, three due runs, and a regular poll every ten minutes: each run's end polls at once for the
    next, so all three run within two minutes; the poll after the last finds nothing, and no other follows."""
    from prefect.client.orchestration import get_client

    from infra import worker as worker_module
    from tests.quick_flow import ENTRYPOINT

    monkeypatch.setattr(worker_module, "IN_PROCESS_ENTRYPOINTS", worker_module.IN_PROCESS_ENTRYPOINTS | {ENTRYPOINT})

    async def scenario() -> None:
        async with get_client() as client, pool_with_due_runs(client, [3, 2, 1], ENTRYPOINT) as (pool, due):
            async with serving(worker_module.GlaneurWorker(work_pool_name=pool, limit=1)) as polls:
                states = await final_states(client, due, within=120)
                await until_polled(polls, 4)  # the poll that follows the last run's end
            assert states == ["COMPLETED"] * 3
            assert polls == [1, 1, 1, 0]  # the regular first poll, then one as each run ended

    asyncio.run(scenario())


def test_a_run_another_worker_took_first_does_not_leave_its_slot_idle(prefect_server, monkeypatch):
    """Two workers polling at the same moment are given the same earliest run; the one that loses the race
    polls again at once for the next due run instead of waiting for its regular poll (ten minutes here)."""
    from prefect.client.orchestration import get_client

    from infra import worker as worker_module
    from tests.quick_flow import ENTRYPOINT

    monkeypatch.setattr(worker_module, "IN_PROCESS_ENTRYPOINTS", worker_module.IN_PROCESS_ENTRYPOINTS | {ENTRYPOINT})

    async def scenario() -> None:
        async with get_client() as client, pool_with_due_runs(client, [3, 2, 1], ENTRYPOINT) as (pool, due):
            taken: list = []
            worker = worker_module.GlaneurWorker(work_pool_name=pool, limit=1)
            async with serving(worker, take_first(client, taken, polls_lost={1})) as polls:  # the first run is lost
                states = await final_states(client, due[1:], within=120)
                await until_polled(polls, 4)
            assert taken == [due[0].id]
            assert (await client.read_flow_run(due[0].id)).state.type.value == "PENDING"  # the other worker's
            assert states == ["COMPLETED"] * 2
            assert polls == [1, 1, 1, 0]  # lost the first, polled at once for the second, then as each ended

    asyncio.run(scenario())


def test_runs_taken_by_others_again_and_again_leave_the_pace_to_the_regular_poll(prefect_server):
    """Every run offered lost to someone else: a few immediate polls, then none until the regular one."""
    from prefect.client.orchestration import get_client

    from infra import worker as worker_module

    async def scenario() -> None:
        async with get_client() as client, pool_with_due_runs(client, [6, 5, 4, 3, 2, 1]) as (pool, due):
            taken: list = []
            worker = worker_module.GlaneurWorker(work_pool_name=pool, limit=1)
            async with serving(worker, take_first(client, taken)) as polls:
                await until_polled(polls, len(due), within=10)  # more polls than allowed would show here
            assert polls == [1] * (1 + worker_module.REFUSED_POLLS_IN_A_ROW)  # the regular poll, then 3 at once
            assert taken == [run.id for run in due[:len(polls)]]
            left = [(await client.read_flow_run(run.id)).state.type.value for run in due[len(polls):]]
            assert left == ["SCHEDULED"] * (len(due) - len(polls))  # waiting for the next regular poll

    asyncio.run(scenario())
