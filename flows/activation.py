"""A collector's first collection, started as soon as it has credentials.

("Vos factures sont récupérées en arrière-plan et apparaîtront dans votre interface dans l'heure
qui suit l'activation.") Waiting for tomorrow's dispatch would break that promise, so activating
a collector (credentials entered by hand, or an invitation answered) starts its first
collection at once, as its own flow run:

* when the Prefect server has the ``collect-channel`` deployment, a flow run is created on it
  and a worker picks it up, exactly like the daily runs (same name, same history);
* otherwise (the embedded default: no server configured, or nothing deployed, so no worker
  would ever pick a run up) the collection runs right away in this process, as a flow run of
  its own, and the message says so.
"""

from __future__ import annotations

from tasks.deployments import COLLECT_DEPLOYMENT, lookup_deployment
from glaneur.errors import GlaneurError
from glaneur.settings import get_settings


def start_first_collection(slug: str, *, what: str = "First collection") -> str:
    """Start ``slug``'s first collection now; returns one line saying which path was taken and how it went.

    ``what`` names the run in that line ("First collection", or "Collection with the new credentials").
    """
    lookup = lookup_deployment(COLLECT_DEPLOYMENT)
    reason = _why_in_process(lookup)
    if lookup.deployment is not None:
        try:
            return _on_deployment(slug, lookup, what)
        except Exception as error:  # noqa: BLE001  the server answered a moment ago: run here rather than not at all
            reason = f"creating the flow run on {lookup.where} failed ({type(error).__name__}: {error})"
    return _in_process(slug, reason, what)


def _on_deployment(slug: str, lookup, what: str) -> str:
    from prefect.deployments import run_deployment

    flow_run = run_deployment(
        COLLECT_DEPLOYMENT,
        parameters={"channel": slug},
        timeout=0,  # do not wait: the worker runs it in the background
        as_subflow=False,  # its own flow run, even when an invitation flow activates the collector
        tags=["first-collection"],
    )
    line = (
        f"{what} of {slug} started as flow run {flow_run.name} ({flow_run.id}) on deployment "
        f"{COLLECT_DEPLOYMENT} of {lookup.where}; a worker picks it up, its invoices appear within the hour."
    )
    from tasks.human import flow_run_link

    link = flow_run_link(str(flow_run.id))
    if link:
        line += f" Follow it at {link}."
    if lookup.workers_online == 0:
        pool = lookup.deployment.get("work_pool_name")
        line += f" Warning: no worker is online in work pool '{pool}' yet; the run waits for one."
    return line


def _in_process(slug: str, reason: str, what: str) -> str:
    prefix = f"{what} of {slug} ran in this process ({reason}, so no worker would pick a run up)"
    try:
        from flows.collect_channel import run_channel

        summary = run_channel(slug)
    except Exception as error:  # noqa: BLE001  the credentials are saved: report, the daily run tries again
        detail = error.user_message if isinstance(error, GlaneurError) else f"{type(error).__name__}: {error}"
        return f"{prefix} and failed: {detail} The daily collection tries again at the channel's time slot."
    return (
        f"{prefix}: {summary.get('status')}, {summary.get('new', 0)} new, "
        f"{summary.get('already_had', 0)} already had. {summary.get('message', '')}"
    ).strip()


def _why_in_process(lookup) -> str:
    if lookup.api_url is None:
        return "no Prefect server is configured"
    if not lookup.reachable:
        return f"{lookup.where} did not answer"
    return f"{lookup.where} has no {COLLECT_DEPLOYMENT} deployment"
