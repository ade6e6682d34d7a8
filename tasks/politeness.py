"""Provider politeness: never more than N sessions at once at one supplier, and no faster than a rate.

Two Prefect global concurrency limits per provider, created idempotently by ``make deploy`` and
``python -m infra.local_stack`` (:func:`ensure_provider_limits`):

* ``provider:<slug>``: how many collections may talk to the supplier at the same time (a slot is
  held for the whole portal session, and given back at the end);
* ``provider-rate:<slug>``: how many sessions may *start* per minute (a rate limit: a limit with
  ``slot_decay_per_second``; a slot taken is never given back, it decays).

Defaults (:data:`DEFAULT`) apply to every provider of the catalogue; a scheduler overrides one
provider with ``GLANEUR_PROVIDER_LIMITS='{"papeterie-dupont": {"concurrency": 4, "per_minute": 30}}'``.

The collection flow holds the slot with :func:`provider_slot` around each account's portal session
(flows/collect_channel.py, ``_collect_account``)::

    with provider_slot(plan.provider), portal_session(browser, settings, ...) as portal:
        ...  # log in, list, download

A limit missing on the server (a platform deployed without ``make deploy``, a provider added since)
does not stop collections: they run unlimited for that provider, and the run logs one warning line
naming the command that creates the limits. Waiting longer than ``timeout_seconds`` for a slot ends
the account as ``portal_unavailable`` (retried at the next run), never blocks forever.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

ENVIRONMENT = "GLANEUR_PROVIDER_LIMITS"


@dataclass(frozen=True)
class Politeness:
    concurrency: int = 2  # portal sessions at the same time
    per_minute: float = 6.0  # portal sessions started per minute (burst: ``concurrency``)

    @property
    def slot_decay_per_second(self) -> float:
        return self.per_minute / 60.0


DEFAULT = Politeness()


def concurrency_limit_name(provider: str) -> str:
    return f"provider:{provider}"


def rate_limit_name(provider: str) -> str:
    return f"provider-rate:{provider}"


def configured() -> dict[str, Politeness]:
    """Overrides per provider slug, read from ``GLANEUR_PROVIDER_LIMITS`` (JSON)."""
    raw = os.environ.get(ENVIRONMENT, "").strip()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"{ENVIRONMENT} is not JSON: {error.msg} (at character {error.pos})") from None
    overrides = {}
    for slug, fields in data.items():
        unknown = set(fields) - {"concurrency", "per_minute"}
        if unknown:
            raise ValueError(f"{ENVIRONMENT}[{slug!r}]: unknown field(s) {', '.join(sorted(unknown))}")
        politeness = Politeness(**{**DEFAULT.__dict__, **fields})
        if politeness.concurrency < 1 or politeness.per_minute <= 0:
            raise ValueError(f"{ENVIRONMENT}[{slug!r}]: concurrency must be >= 1 and per_minute > 0")
        overrides[slug] = politeness
    return overrides


def politeness_of(provider: str) -> Politeness:
    return configured().get(provider, DEFAULT)


def provider_slugs() -> list[str]:
    from connectors import catalog

    return sorted(catalog.PROVIDERS)


async def ensure_provider_limits(client, providers: list[str] | None = None) -> list[str]:
    """Create or update both limits of every provider on the Prefect server; returns the names written."""
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
    from prefect.exceptions import ObjectNotFound

    written = []
    for slug in providers if providers is not None else provider_slugs():
        politeness = politeness_of(slug)
        wanted = {
            concurrency_limit_name(slug): {"limit": politeness.concurrency},
            rate_limit_name(slug): {"limit": politeness.concurrency,
                                    "slot_decay_per_second": politeness.slot_decay_per_second},
        }
        for name, fields in wanted.items():
            try:
                await client.read_global_concurrency_limit_by_name(name)
            except ObjectNotFound:
                await client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, **fields))
            else:
                await client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(**fields))
            written.append(name)
    return written


MISSING_LIMIT = "must be created before acquiring slots"  # Prefect 3.8's message for a missing strict limit


def _warn_missing(provider: str, names: list[str]) -> None:
    message = (f"Politeness limit(s) {', '.join(names)} missing on the Prefect server: {provider} is collected "
               "without a limit; create them with `make deploy` (python -m infra.deploy).")
    try:
        from prefect import get_run_logger

        get_run_logger().warning(message)
    except Exception:  # outside a flow run (a test, the CLI): the module's logger
        import logging

        logging.getLogger(__name__).warning(message)


@contextmanager
def provider_slot(provider: str, timeout_seconds: float | None = 3600.0) -> Iterator[None]:
    """Wait for the provider's rate, then hold one of its concurrent slots for the ``with`` block.

    A limit that does not exist is skipped with one warning line; a wait beyond ``timeout_seconds``
    raises :class:`glaneur.errors.PortalUnavailable` (the portal was too busy with our own sessions).
    """
    from prefect.concurrency.sync import concurrency, rate_limit
    from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError  # also what sync.concurrency raises

    from glaneur.errors import PortalUnavailable

    missing: list[str] = []
    busy = PortalUnavailable(f"No free session slot at {provider} within {timeout_seconds:g} s "
                             f"(politeness limit {concurrency_limit_name(provider)}).")
    with ExitStack() as held:
        for name, acquire in (
            (rate_limit_name(provider), lambda name: rate_limit(
                name, occupy=1, timeout_seconds=timeout_seconds, strict=True)),
            (concurrency_limit_name(provider), lambda name: held.enter_context(concurrency(
                name, occupy=1, timeout_seconds=timeout_seconds, strict=True, raise_on_lease_renewal_failure=False))),
        ):
            try:
                acquire(name)
            except ConcurrencySlotAcquisitionError as error:
                if MISSING_LIMIT not in str(error):
                    raise
                missing.append(name)
            except TimeoutError as error:
                raise busy from error
        if missing:
            _warn_missing(provider, missing)
        yield
