"""Provider politeness: never more than N sessions at once at one supplier, and no faster than a rate.

Two Prefect global concurrency limits per provider, created idempotently by ``make deploy`` and
``python -m infra.local_stack`` (:func:`ensure_provider_limits`):

* ``provider:<slug>``: how many collections may talk to the supplier at the same time (a slot is
  held for the whole portal session, and given back at the end);
* ``provider-rate:<slug>``: how many sessions may *start* per minute (a rate limit: a limit with
  ``slot_decay_per_second``; a slot taken is never given back, it decays).

Defaults (:data:`DEFAULT`) apply to every provider of the catalogue; a scheduler overrides one
provider with ``GLANEUR_PROVIDER_LIMITS='{"papeterie-dupont": {"concurrency": 4, "per_minute": 30}}'``.

The collection flow holds the slot with :func:`provider_slot` around its browser session::

    with provider_slot(plan.provider):
        ...  # log in, list, download

``strict=True``: a limit missing on the server is an error (Prefect would otherwise only warn and
limit nothing), so a platform deployed without ``make deploy`` fails loudly, not impolitely.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def provider_slot(provider: str, timeout_seconds: float | None = 3600.0) -> Iterator[None]:
    """Wait for the provider's rate, then hold one of its concurrent slots for the ``with`` block."""
    from prefect.concurrency.sync import concurrency, rate_limit

    rate_limit(rate_limit_name(provider), occupy=1, timeout_seconds=timeout_seconds, strict=True)
    with concurrency(concurrency_limit_name(provider), occupy=1, timeout_seconds=timeout_seconds, strict=True):
        yield
