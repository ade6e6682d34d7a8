"""Provider politeness on a real Prefect server: the limits made idempotently, one slot held at a time,
the rate limit biting, a missing limit let through with one warning (tasks/politeness.py)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from glaneur.errors import PortalUnavailable
from glaneur.statuses import Status
from tasks import politeness
from tasks.politeness import concurrency_limit_name, ensure_provider_limits, provider_slot, rate_limit_name

pytestmark = pytest.mark.slow


def server_limits(names: list[str]) -> dict[str, object]:
    from prefect.client.orchestration import get_client

    async def read():
        async with get_client() as client:
            return {name: await client.read_global_concurrency_limit_by_name(name) for name in names}

    return asyncio.run(read())


def ensure(providers: list[str]) -> list[str]:
    from prefect.client.orchestration import get_client

    async def go():
        async with get_client() as client:
            return await ensure_provider_limits(client, providers)

    return asyncio.run(go())


def test_limits_are_created_then_updated_in_place(prefect_server, monkeypatch):
    monkeypatch.setenv(politeness.ENVIRONMENT, '{"polite-a": {"concurrency": 3, "per_minute": 30}}')
    assert ensure(["polite-a"]) == ["provider:polite-a", "provider-rate:polite-a"]
    monkeypatch.setenv(politeness.ENVIRONMENT, '{"polite-a": {"concurrency": 1, "per_minute": 12}}')
    ensure(["polite-a"])  # again: no error, new values
    limits = server_limits([concurrency_limit_name("polite-a"), rate_limit_name("polite-a")])
    concurrency, rate = limits.values()
    assert (concurrency.limit, concurrency.slot_decay_per_second in (None, 0, 0.0)) == (1, True)
    assert (rate.limit, rate.slot_decay_per_second) == (1, pytest.approx(0.2))


def test_one_slot_means_one_session_at_a_time(prefect_server, monkeypatch):
    monkeypatch.setenv(politeness.ENVIRONMENT, '{"polite-b": {"concurrency": 1, "per_minute": 600}}')
    ensure(["polite-b"])
    events: list[tuple[str, str]] = []
    started = threading.Barrier(2)

    def collect(name: str) -> None:
        started.wait()
        with provider_slot("polite-b", timeout_seconds=120):
            events.append(("in", name))
            time.sleep(1.0)
            events.append(("out", name))

    threads = [threading.Thread(target=collect, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    assert len(events) == 4
    first, second = events[0][1], events[2][1]
    assert events == [("in", first), ("out", first), ("in", second), ("out", second)]  # never both inside
    assert server_limits([concurrency_limit_name("polite-b")])[concurrency_limit_name("polite-b")].active_slots == 0


def test_the_rate_limit_refuses_a_third_session_within_the_minute(prefect_server, monkeypatch):
    # Burst of 2, then one session every 100 s: the third waits far longer than its 2 s timeout.
    monkeypatch.setenv(politeness.ENVIRONMENT, '{"polite-c": {"concurrency": 2, "per_minute": 0.6}}')
    ensure(["polite-c"])
    for _ in range(2):
        with provider_slot("polite-c", timeout_seconds=60):
            pass
    with pytest.raises(PortalUnavailable) as busy:
        with provider_slot("polite-c", timeout_seconds=2):
            pass
    assert "polite-c" in busy.value.detail and busy.value.status == Status.PORTAL_UNAVAILABLE


def test_a_provider_without_limits_is_collected_with_one_warning_not_blocked(prefect_server):
    records: list[logging.LogRecord] = []
    catcher = logging.Handler(logging.WARNING)
    catcher.emit = records.append  # on the module's logger itself: Prefect's logging setup owns the root's handlers
    logging.getLogger("tasks.politeness").addHandler(catcher)
    entered = False
    try:
        with provider_slot("never-deployed", timeout_seconds=120):  # a missing limit answers at once
            entered = True
    finally:
        logging.getLogger("tasks.politeness").removeHandler(catcher)
    assert entered
    warnings = [r.getMessage() for r in records if "never-deployed" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "provider:never-deployed" in warnings[0] and "provider-rate:never-deployed" in warnings[0]
    assert "make deploy" in warnings[0]
