"""Route a firm's bank statements: the per-IBAN connectors of ``seeds/per-iban-statement-connectors-faq.md``.

Every day, for one accounting firm: take the new statement files from its sources (a statement
API, an inbox in storage), record each statement once, then send each one where it belongs: to
the partner connector of its IBAN when the IBAN is active and attached, else into the firm's
global statements file of the day; a statement of an unknown IBAN is kept aside and reported.
A partner that is down gets its statements on a later run: nothing is lost, and the partner's
acknowledgement makes each delivery count once.

One flow run per firm per day, named after the firm and the day.
"""

from __future__ import annotations

from datetime import date

from prefect import flow, get_run_logger, runtime
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists
from prefect.states import Completed, Failed, State

from glaneur.statements import routing
from glaneur.db import require_current_schema, session_scope
from glaneur.errors import GlaneurError
from glaneur.statements.firm import require_firm, statement_sources
from glaneur.models import StatementRoute
from glaneur.settings import get_settings
from tasks.collect import with_retries
from tasks.lifecycle import RunFailed, ended, run_day, run_in_process
from tasks.statements import (
    DeliveryReport,
    PullReport,
    as_dict,
    deliver_statement,
    publish_history,
    pull_source,
    record_delivery_failure,
    record_source_error,
    route,
)


def _run_name() -> str:
    """The firm and the day: given, else the day of the run's scheduled start in GLANEUR_TIMEZONE."""
    parameters = runtime.flow_run.parameters
    return f"statements-{parameters['firm']}-{parameters.get('day') or run_day()}"


@flow(name="route-statements", flow_run_name=_run_name)
def route_statements(firm: str, day: date | None = None) -> State:
    """Take in, route and deliver the firm's statements. Ends Failed when a file or a delivery needs a person."""
    settings = get_settings()
    logger = get_run_logger()
    require_current_schema()  # migrations run at start-up and deploy time, not per flow run
    day = day or run_day(settings.timezone)
    with firm_lock(firm):
        return _route(firm, day, settings, logger)


def firm_lock(firm: str):
    """One routing of a firm at a time, whatever the workers: two at once would take in the same files.

    A Prefect global concurrency limit of 1 per firm, created on first use; ``strict`` because a
    missing limit would otherwise only log a warning and limit nothing.
    """
    name = f"route-statements-{firm}"
    with get_client(sync_client=True) as client:
        try:
            client.upsert_global_concurrency_limit_by_name(name, 1)
        except ObjectAlreadyExists:  # another run created it between the read and the create
            pass
    return concurrency(name, occupy=1, strict=True)


def _route(firm: str, day: date, settings, logger) -> State:
    with session_scope() as session:
        org = require_firm(session, firm)
        sources = [(source.id, source.slug) for source in statement_sources(session, org)]

    pulls: list[PullReport] = []
    pull = with_retries(pull_source, settings)
    for source_id, slug in sources:
        try:
            pulls.append(pull(firm, source_id))
        except GlaneurError as error:  # this source alone (token unreadable, API down...): the others are read
            record_source_error(source_id, error.user_message)
            pulls.append(PullReport(source=slug, error=error.user_message, status=error.status.value))
            logger.warning("Source %s (%s): %s", slug, error.status.value, error.user_message)

    routes = route(firm, day)

    deliveries: list[DeliveryReport] = []
    send = with_retries(deliver_statement, settings)
    with session_scope() as session:
        due = [(s.id, s.partner_id) for s in routing.deliveries_due(session, firm)]
    for statement_id, _ in due:
        try:
            deliveries.append(send(firm, statement_id))
        except Exception as error:  # noqa: BLE001 - one statement's failure never stops the others; recorded
            report = record_delivery_failure(firm, statement_id, error)
            deliveries.append(report)
            logger.warning("Statement #%d not delivered (%s): %s", statement_id, report.status, report.error)

    publish_history(firm, day, pulls, deliveries)
    with session_scope() as session:
        aside = routing.count_routed(session, firm, StatementRoute.ASIDE)
    summary = {
        "firm": firm,
        "day": day.isoformat(),
        "sources": [as_dict(p) for p in pulls],
        "routes": routes,
        "delivered": sum(1 for d in deliveries if d.delivered),
        "not_delivered": sum(1 for d in deliveries if not d.delivered),
        "aside": aside,
        "rejected_files": sum(len(p.rejected) for p in pulls),
    }
    summary["acknowledged_not_copied"] = sum(1 for d in deliveries if not d.delivered and d.acknowledged)
    summary["unread_files"] = sum(len(p.unread) for p in pulls)
    problems = []
    waiting = summary["not_delivered"] - summary["acknowledged_not_copied"]
    if waiting:
        problems.append(f"{waiting} statement(s) not acknowledged by their partner yet (retried next run)")
    if summary["acknowledged_not_copied"]:
        problems.append(f"{summary['acknowledged_not_copied']} statement(s) acknowledged by their partner but not "
                        "copied under its storage prefix yet (written next run)")
    unreadable = sorted({d.partner for d in deliveries if d.status == "secret_unreadable"})
    if unreadable:
        problems.append(f"signing secret unreadable for partner(s) {', '.join(unreadable)}: enter it again "
                        "(glaneur partner update SLUG --new-secret)")
    if summary["rejected_files"]:
        problems.append(f"{summary['rejected_files']} file(s) rejected (kept, see the history)")
    if summary["unread_files"]:
        problems.append(f"{summary['unread_files']} inbox file(s) not taken in yet (tried again next run)")
    failed_sources = [p.source for p in pulls if p.error]
    if failed_sources:
        problems.append(f"source(s) not read: {', '.join(failed_sources)}")
    if aside:
        problems.append(f"{aside} statement(s) of unknown IBANs kept aside")
    new = sum(p.new_statements for p in pulls)
    routed = ", ".join(f"{count} {way}" for way, count in sorted(routes.items())) if routes else "none"
    message = f"{new} new statement(s); {summary['delivered']} delivered to partners; routed: {routed}"
    summary["message"] = message + ("; " + "; ".join(problems) if problems else "")
    logger.info(summary["message"])
    if summary["not_delivered"] or summary["rejected_files"] or summary["unread_files"] or failed_sources:
        # An exception, not the dict itself: a Failed state's data must resolve to one (worker TypeError otherwise).
        return ended(Failed(message=summary["message"], name="Needs attention",
                            data=RunFailed(summary["message"], summary)))
    return ended(Completed(message=summary["message"], name="Routed", data=summary))


def run_firm(firm: str, day: date | None = None) -> dict:
    """Route the firm's statements now, in this process, as its own flow run; return the summary."""
    return run_in_process(route_statements, firm=firm, day=day)
