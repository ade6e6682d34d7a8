"""The daily dispatch: one collection flow run per active channel, at the channel's time slot.

Each channel's run is created on the ``collect-channel`` deployment, so workers pick them up
(several workers scale out) and data ops see one row per channel per day in the Prefect UI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from prefect import flow, get_run_logger, runtime
from sqlmodel import select

from glaneur.db import require_current_schema, session_scope
from glaneur.invoices import invitations
from glaneur.models import Channel, ChannelKind, Organization
from glaneur.settings import get_settings
from glaneur.statements.firm import firms
from tasks.lifecycle import close_stale_runs, run_day, run_tags

COLLECT_DEPLOYMENT = "collect-channel/collect-channel"
ROUTE_DEPLOYMENT = "route-statements/route-statements"
BANK_DEPLOYMENT = "collect-bank-movements/collect-bank-movements"


def slot_time(day: date, slot: str, timezone: str) -> datetime:
    hour, minute = (int(part) for part in slot.split(":"))
    return datetime.combine(day, time(hour, minute), tzinfo=ZoneInfo(timezone))


def _run_name() -> str:
    """The day dispatched: given, else the day of the run's scheduled start in GLANEUR_TIMEZONE."""
    return f"dispatch-{runtime.flow_run.parameters.get('day') or run_day()}"


CATCH_UP_DAYS = 40  # how far back dispatch looks for collection runs that already cover a day


def covered_channels(
    runs: list[tuple[str, datetime]], day: date, slots: dict[str, str], timezone: str
) -> set[str]:
    """Channels already collected for ``day``: a run of theirs was created at or after their slot that day.

    ``runs`` are ``(channel, created)`` of collection runs. This is what makes a missed day caught up
    once: after an outage, the late dispatch of the first missed day creates one run per channel (it
    starts at once); the late dispatches of the following missed days find it (created after their
    slots) and add nothing; today's dispatch adds today's run only if the catch-up came before today's
    slot. A channel never runs twice for one day unless someone starts it by hand.
    """
    covered = set()
    for channel, created in runs:
        slot = slots.get(channel)
        if slot is not None and created >= slot_time(day, slot, timezone):
            covered.add(channel)
    return covered


def collection_runs_since(deployment: str, since: datetime) -> list[tuple[str, datetime]]:
    """``(channel, created)`` of the deployment's runs expected to start since ``since`` (cancelled ones left out)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterExpectedStartTime,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.exceptions import ObjectNotFound
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def read() -> list[tuple[str, datetime]]:
        async with get_client() as client:
            try:
                found = await client.read_deployment_by_name(deployment)
            except ObjectNotFound:
                return []
            runs, offset, page = [], 0, 200
            while True:
                batch = await client.read_flow_runs(
                    deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[found.id])),
                    flow_run_filter=FlowRunFilter(
                        expected_start_time=FlowRunFilterExpectedStartTime(after_=since),
                        state=FlowRunFilterState(type=FlowRunFilterStateType(not_any_=[StateType.CANCELLED])),
                    ),
                    limit=page,
                    offset=offset,
                )
                runs += [(run.parameters.get("channel"), run.created) for run in batch if run.created]
                if len(batch) < page:
                    return runs
                offset += page

    return run_coro_as_sync(read())


def _already_collected(deployment: str, day: date, slots: dict[str, str], timezone: str) -> set[str]:
    since = slot_time(day - timedelta(days=CATCH_UP_DAYS), "00:00", timezone)
    covered = covered_channels(collection_runs_since(deployment, since), day, slots, timezone)
    if covered:
        get_run_logger().info("%d channel(s) already collected for %s (catch-up or earlier run): skipped", len(covered), day)
    return covered


@dataclass(frozen=True)
class Due:
    """One run the dispatch creates: on ``deployment``, at ``at``, once per ``idempotency_key``."""

    deployment: str
    parameters: dict
    at: datetime
    idempotency_key: str
    tags: list[str] = field(default_factory=list)


CREATING_AT_ONCE = 8


def create_runs(due: list[Due]) -> list[str]:
    """Create the day's runs through one client, each deployment read once, a few at a time; their ids, in order.

    Not ``run_deployment`` in a loop: inside a flow it reads the deployment and adds a placeholder
    task run to the dispatch for every run it creates (three API calls a run), so a dispatch of
    1,000 channels on a busy server outlasted 50 minutes (``bench/scale.py``) and left a thousand
    Pending task runs in its graph. A run created twice for the same key is the same run (Prefect's
    idempotency key), so a retried dispatch creates nothing again.
    """
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.states import Scheduled
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def create() -> list[str]:
        async with get_client() as client:
            deployments = {name: await client.read_deployment_by_name(name) for name in {d.deployment for d in due}}
            gate = asyncio.Semaphore(CREATING_AT_ONCE)

            async def one(run: Due) -> str:
                async with gate:
                    created = await client.create_flow_run_from_deployment(
                        deployments[run.deployment].id, parameters=run.parameters,
                        state=Scheduled(scheduled_time=run.at), idempotency_key=run.idempotency_key, tags=run.tags,
                    )
                return str(created.id)

            return list(await asyncio.gather(*(one(run) for run in due)))

    return run_coro_as_sync(create()) if due else []


@flow(name="dispatch-daily", flow_run_name=_run_name)
def dispatch_daily(
    day: date | None = None, deployment: str = COLLECT_DEPLOYMENT, route_deployment: str = ROUTE_DEPLOYMENT,
    bank_deployment: str = BANK_DEPLOYMENT,
) -> list[str]:
    """Schedule the day's collection of every active supplier channel, and each firm's statements routing
    (once: idempotent per channel or firm, and day). The day is the one the run was scheduled for, in
    GLANEUR_TIMEZONE: the 00:05 Paris schedule is still yesterday on a worker's UTC clock."""
    settings = get_settings()
    day = day or run_day(settings.timezone)
    require_current_schema()  # migrations run at start-up and deploy time, not per flow run
    close_stale_runs()  # collection rows left running by a process killed outright
    with session_scope() as session:
        expired = invitations.expire_overdue(session)
        channels = session.exec(
            select(Channel.slug, Channel.time_slot, Channel.provider, Channel.kind, Organization.slug)
            .join(Organization, Channel.organization_id == Organization.id)
            .where(Channel.active == True, Channel.kind == ChannelKind.SUPPLIER_PORTAL)  # noqa: E712
        ).all()
        firm_slugs = [org.slug for org in firms(session)]
        bank_channels = session.exec(
            select(Channel.slug, Channel.time_slot).where(Channel.active == True, Channel.kind == ChannelKind.BANK)  # noqa: E712
        ).all()
    slots = {slug: slot for slug, slot, *_ in channels}
    covered = _already_collected(deployment, day, slots, settings.timezone)
    due = [
        Due(deployment, {"channel": slug}, slot_time(day, slot, settings.timezone), f"collect-{slug}-{day.isoformat()}",
            run_tags(organization, provider, ChannelKind(kind).value))
        for slug, slot, provider, kind, organization in channels
        if slug not in covered
    ]
    due += [  # one collect-bank-movements run per bank channel and day
        Due(bank_deployment, {"channel": slug, "day": day.isoformat()}, slot_time(day, slot, settings.timezone),
            f"bank-{slug}-{day.isoformat()}")
        for slug, slot in bank_channels
    ]
    collections = len(due)
    due += [
        Due(route_deployment, {"firm": firm, "day": day.isoformat()},
            slot_time(day, settings.statements_time_slot, settings.timezone), f"statements-{firm}-{day.isoformat()}",
            run_tags(firm, "statements", "statements"))
        for firm in firm_slugs
    ]
    scheduled = create_runs(due)
    get_run_logger().info(
        "Scheduled %d channel collection(s) and %d firm routing(s) for %s; %d invitation(s) expired",
        collections, len(firm_slugs), day, expired,
    )
    _tell_connector_requesters()
    return scheduled


def _tell_connector_requesters() -> None:
    """"Vous serez notifié dès qu'il sera disponible": each day, the open requests for a collector that a
    catalogue provider now serves are shipped and their requesters told (``connector-request sync``).
    After the day's runs are scheduled, and never failing the dispatch: a fault here is logged and met
    again the next day."""
    import connectors.catalog  # noqa: F401  installs the catalogue the requests are matched against
    from glaneur.admin import sync_connector_requests

    logger = get_run_logger()
    try:
        with session_scope() as session:
            told = sync_connector_requests(session)
    except Exception as error:  # noqa: BLE001 - the day's collections are scheduled already
        logger.warning("Connector requests not synced today (%s: %s); the next dispatch tries again",
                       type(error).__name__, error)
        return
    for item in told:
        logger.info("Connector request #%d (%s) %s; %s told", item.request.id, item.request.supplier_name,
                    f"available as {item.request.provider}" if item.request.provider else "rejected",
                    item.requester.email)
