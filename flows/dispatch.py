"""The daily dispatch: one collection flow run per active channel, at the channel's time slot.

Each channel's run is created on the ``collect-channel`` deployment, so workers pick them up
(several workers scale out) and data ops see one row per channel per day in the Prefect UI.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from prefect import flow, get_run_logger, runtime
from prefect.deployments import run_deployment
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
    scheduled = []
    slots = {slug: slot for slug, slot, *_ in channels}
    covered = _already_collected(deployment, day, slots, settings.timezone)
    for slug, slot, provider, kind, organization in channels:
        if slug in covered:
            continue
        run = run_deployment(
            deployment,
            parameters={"channel": slug},
            scheduled_time=slot_time(day, slot, settings.timezone),
            idempotency_key=f"collect-{slug}-{day.isoformat()}",
            tags=run_tags(organization, provider, ChannelKind(kind).value),
            timeout=0,
        )
        scheduled.append(str(run.id))
    for slug, slot in bank_channels:  # one collect-bank-movements run per bank channel and day
        run = run_deployment(
            bank_deployment,
            parameters={"channel": slug, "day": day.isoformat()},
            scheduled_time=slot_time(day, slot, settings.timezone),
            idempotency_key=f"bank-{slug}-{day.isoformat()}",
            timeout=0,
        )
        scheduled.append(str(run.id))
    collections = len(scheduled)
    for firm in firm_slugs:
        run = run_deployment(
            route_deployment,
            parameters={"firm": firm, "day": day.isoformat()},
            scheduled_time=slot_time(day, settings.statements_time_slot, settings.timezone),
            idempotency_key=f"statements-{firm}-{day.isoformat()}",
            tags=run_tags(firm, "statements", "statements"),
            timeout=0,
        )
        scheduled.append(str(run.id))
    get_run_logger().info(
        "Scheduled %d channel collection(s) and %d firm routing(s) for %s; %d invitation(s) expired",
        collections, len(firm_slugs), day, expired,
    )
    return scheduled
