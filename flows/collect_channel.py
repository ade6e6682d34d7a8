"""Collect one channel's new invoices: the "connecteur marchand" of the help pages.

For each account of the channel (up to two): log in, list the invoices, download only those not
already filed, file them, record the history. Each channel's collection is its own flow run,
named after the channel and the day, so data ops see one row per channel per day.
"""

from __future__ import annotations

import time
from datetime import date, timedelta

from prefect import flow, get_run_logger, runtime
from prefect.states import State

from connectors.base import SecondFactorKind
from connectors.catalog import connector_class, get_provider, portal_url
from glaneur import collection
from glaneur.db import migrate, session_scope
from glaneur.errors import (
    AwaitingSecondFactor,
    GlaneurError,
    InvalidDocument,
    NotCompatible,
    PortalChanged,
    SecondFactorRefused,
    WrongSecondFactor,
)
from glaneur.settings import get_settings
from glaneur.statuses import Status, describe
from glaneur.storage import StorageConflict
from tasks.browser import launch_browser, portal_session
from tasks.collect import transient_steps
from tasks.history import publish_history
from tasks.human import ask_approver, flow_run_link, totp_code
from tasks.lifecycle import (
    close_runs_of_ended_flow_run,
    close_stale_runs,
    final_state,
    run_day,
    run_tags,
    summary_of,
    tag_this_flow_run,
)
from tasks.politeness import provider_slot


def _flow_run_id() -> str | None:
    return str(runtime.flow_run.id) if runtime.flow_run.id else None


def _run_name() -> str:
    """The channel and the day the run is for (its scheduled start in GLANEUR_TIMEZONE, not the worker's clock)."""
    return f"{runtime.flow_run.parameters['channel']}-{run_day().isoformat()}"


@flow(
    name="collect-channel",
    flow_run_name=_run_name,
    log_prints=False,
    on_failure=[close_runs_of_ended_flow_run],
    on_crashed=[close_runs_of_ended_flow_run],
    on_cancellation=[close_runs_of_ended_flow_run],
)
def collect_channel(channel: str) -> State:
    """Collect the channel whose slug is given. Ends Completed when every account collected, else Failed,
    the state named after the status ("Wrong credentials", "Portal changed")."""
    settings = get_settings()
    logger = get_run_logger()
    migrate()
    today = run_day(settings.timezone)
    with session_scope() as session:
        plan = collection.load_plan(session, channel, settings, today)
    provider = get_provider(plan.provider)
    tag_this_flow_run(run_tags(plan.organization, plan.provider, provider.kind))
    close_stale_runs(plan.channel_id)  # an earlier run of this channel killed outright left its row running

    results = []
    if not provider.compatible:
        results.append(_record_without_browser(plan, NotCompatible(f"{provider.name} is not compatible.")))
    elif not plan.accounts:
        results.append(_record_without_browser(plan, None))
    else:
        steps = transient_steps(settings)
        with launch_browser(settings) as browser:
            for account in plan.accounts:
                results.append(_collect_account(plan, account, browser, steps, settings, today))
    for result in results:
        logger.info("%s: %s, %d new, %d already had", result["login"], result["status"], result["new"], result["already_had"])

    summary = _summarize(plan, results)
    publish_history(plan)
    return final_state(Status(summary["status"]), summary["message"], summary)


def _collect_account(plan, account, browser, steps, settings, today) -> dict:
    with session_scope() as session:
        run_id = collection.start_run(session, plan, account.id, _flow_run_id())
    new = already = 0
    newest: date | None = None
    evidence: list[str] = []
    invalid: list[GlaneurError] = []
    try:
        with session_scope() as session:
            credentials = collection.read_credentials(session, account.id)
            remembered = collection.remembered_session(session, account.id)
        with provider_slot(plan.provider), portal_session(browser, settings, storage_state=remembered) as portal:
            connector = connector_class(plan.provider)(portal.page, portal_url(plan.provider, plan.portal_url))
            try:
                _log_in(plan, account, connector, portal, credentials, remembered, steps, settings)
                portal.start_trace()
                documents = steps["list_documents"](connector, account.since)
                for document in documents:
                    with session_scope() as session:
                        filed = collection.is_filed(session, plan.channel_id, document.reference)
                    if not filed:
                        try:
                            fetched = steps["download_document"](connector, document)
                            outcome = steps["file_document"](plan, account.id, run_id, fetched)
                        except (InvalidDocument, StorageConflict) as error:  # this document only: file the others
                            invalid.append(error)
                            continue
                    newest = max(newest or document.document_date, document.document_date)
                    new, already = (new + 1, already) if not filed and outcome.new else (new, already + 1)
            except PortalChanged:
                evidence = steps["keep_evidence"](plan, run_id, portal.evidence())
                raise
        if invalid:
            with session_scope() as session:  # what was filed counts: the next run starts after it
                collection.advance_cursor(session, account.id, newest)
            raise collection.documents_not_filed(invalid)
    except GlaneurError as error:
        status, message = error.status, error.user_message
    except Exception as error:  # a bug: recorded, logged in full for support, never shown to users raw
        get_run_logger().exception("Collection of %s failed unexpectedly", account.login)
        status, message = Status.INTERNAL_ERROR, f"{describe(Status.INTERNAL_ERROR).message} ({type(error).__name__})"
    else:
        status, message = Status.OK, describe(Status.OK).message
    with session_scope() as session:
        if status == Status.OK:
            collection.record_success(session, account.id, newest, full_pass=account.since is None, today=today)
        else:
            collection.record_account_status(session, account.id, status)
        collection.finish_run(
            session, run_id, status=status, message=message, new=new, already_had=already, evidence_keys=evidence
        )
    return {"login": account.login, "status": status, "message": message, "new": new, "already_had": already}


def _log_in(plan, account, connector, portal, credentials, remembered, steps, settings) -> None:
    """Reuse a remembered session, else log in and answer the second factor (TOTP by itself, else a person)."""
    if remembered is not None:
        if steps["resume_session"](connector):
            return
        with session_scope() as session:  # expired or rejected by the portal: a normal login
            collection.forget_session(session, account.id)
    challenge = steps["authenticate"](connector, credentials)
    if challenge is None:
        return
    attempt, refused = 0, ""
    while challenge is not None:
        attempt += 1
        if attempt > settings.second_factor_attempts:
            # The run is over: its own status (not "awaiting"), so the owner is told and nobody types a code.
            raise SecondFactorRefused(
                f"The portal refused {settings.second_factor_attempts} second-factor answers ({refused})."
            )
        if challenge.kind == SecondFactorKind.TOTP and credentials.totp_seed:
            answer = totp_code(credentials.totp_seed)
        else:
            answer = ask_approver(plan, account, challenge, attempt=attempt, settings=settings, previous_error=refused)
        try:
            challenge = steps["answer_second_factor"](connector, challenge, answer)
        except WrongSecondFactor as error:
            refused = error.detail
            if challenge.kind == SecondFactorKind.TOTP and credentials.totp_seed:
                time.sleep(30 - time.time() % 30 + 1)  # the code was at the edge of its window: use the next one
        except AwaitingSecondFactor as error:  # the portal dropped the login after too many wrong codes
            raise SecondFactorRefused(error.detail) from error
    with session_scope() as session:
        collection.remember_session(
            session, account.id, portal.context.storage_state(), timedelta(hours=settings.session_ttl_hours)
        )


def _record_without_browser(plan, error: GlaneurError | None) -> dict:
    status = error.status if error else Status.AWAITING_CREDENTIALS
    message = error.user_message if error else describe(Status.AWAITING_CREDENTIALS).message
    with session_scope() as session:
        run_id = collection.start_run(session, plan, None, _flow_run_id())
        collection.finish_run(session, run_id, status=status, message=message, new=0, already_had=0)
    return {"login": "-", "status": status, "message": message, "new": 0, "already_had": 0}


def _summarize(plan, results: list[dict]) -> dict:
    failing = [r for r in results if r["status"] != Status.OK]
    status = failing[0]["status"] if failing else Status.OK
    if failing:
        message = " ".join(f"{r['login']}: {r['message']}" for r in failing) if len(results) > 1 else failing[0]["message"]
    else:
        message = describe(Status.OK).message
    from glaneur.notify import notify_channel_status

    with session_scope() as session:
        collection.update_channel_status(session, plan.channel_id, status, message)
        # One mail per change of state that needs a person, not one a day.
        notify_channel_status(session, plan.channel_id, link=flow_run_link(_flow_run_id()))
    return {
        "channel": plan.channel,
        "status": status.value,
        "message": message,
        "new": sum(r["new"] for r in results),
        "already_had": sum(r["already_had"] for r in results),
        "accounts": [{**r, "status": r["status"].value} for r in results],
    }


def run_channel(channel: str) -> dict:
    """Run the collection now, in this process, as its own flow run; return the summary.

    The flow ends Failed when an account could not be collected (data ops see it in the UI),
    so the summary is read from the final state rather than from the call's return value.
    """
    state = collect_channel(channel=channel, return_state=True)
    result = summary_of(state)
    if isinstance(result, BaseException):
        raise result
    return result
