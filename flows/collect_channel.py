"""Collect one channel's new invoices: the "connecteur marchand" of the help pages.

For each account of the channel (up to two): log in, list the invoices, download and file only
those not already filed, record the history. Each channel's collection is its own flow run, named
after the channel and the day, so data ops see one row per channel per day; its log says what the
run does, one line per account at its start and end, one per invoice filed, and the summary.

A second factor answered by a person may suspend the run (no process, no browser) where the portal
allows it: the resumed run starts again from the top, skips the accounts it finished, and types the
answer into the pending login it kept (see :mod:`tasks.human`).
"""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta

from prefect import flow, get_run_logger, runtime
from prefect.states import State

from connectors.catalog import connector_class, get_provider, portal_url
from glaneur.contract import SecondFactorChallenge, SecondFactorKind
from glaneur.db import require_current_schema, session_scope
from glaneur.errors import (
    AwaitingSecondFactor,
    GlaneurError,
    NotCompatible,
    PortalChanged,
    SecondFactorRefused,
    WrongSecondFactor,
)
from glaneur.invoices import collection
from glaneur.invoices.collection import AccountOutcome, AccountPlan, AccountStart, CollectionPlan, PendingLogin
from glaneur.settings import Settings, get_settings
from glaneur.statuses import COLLECTED, Status, describe
from tasks.browser import PortalSession, launch_browser, portal_session
from tasks.collect import AccountSteps
from tasks.history import publish_history
from tasks.human import answer_after_suspension, ask_approver, flow_run_link, totp_code
from tasks.lifecycle import (
    already_running,
    cancelled_message,
    claim_channel,
    close_runs_of_ended_flow_run,
    close_stale_runs,
    final_state,
    release_channel,
    run_day,
    run_in_process,
    run_tags,
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
    require_current_schema()  # migrations run at start-up and deploy time (glaneur init, make deploy)
    today = run_day(settings.timezone)
    with session_scope() as session:
        plan = collection.load_plan(session, channel, settings, today)
        finished = collection.finished_outcomes(session, _flow_run_id())
    provider = get_provider(plan.provider)
    logger.info(
        "Collecting %s (%s, provider %s) for %s: %d account(s)%s", plan.channel, plan.label, plan.provider,
        today.isoformat(), len(plan.accounts), ", resumed after a second factor" if finished else "",
    )
    tag_this_flow_run(run_tags(plan.organization, plan.provider, provider.kind))
    close_stale_runs(plan.channel_id)  # an earlier run of this channel killed outright left its row running
    holder = claim_channel(plan.channel_id)  # one run of a channel at a time; released below or by the hooks
    if holder is not None:
        logger.warning("%s is being collected by %s: this run does nothing", plan.channel, holder)
        return already_running(plan.channel, holder)

    outcomes: dict[int | None, AccountOutcome] = {}  # by account id
    if not provider.compatible:
        outcomes[None] = _record_without_browser(plan, NotCompatible(f"{provider.name} is not compatible."))
    elif plan.accounts:
        steps = AccountSteps.configured(settings)
        with launch_browser(settings) as browser:
            for account in plan.accounts:
                outcome = finished.get(account.id) or _collect_account(plan, account, browser, steps, settings, today)
                if outcome is not None:  # None: removed from the collector since the run began
                    outcomes[account.id] = outcome
    if not outcomes:
        outcomes[None] = _record_without_browser(plan, None)

    summary = collection.summarize(plan.channel, list(outcomes.values()))
    logger.info("Summary: %s", summary.line())
    _record_channel_status(plan, summary, outcomes)
    release_channel()
    publish_history(plan)
    # Completed: the one-line summary heads the run's page; Failed: the status message people are sent.
    message = summary.line() if summary.status == Status.OK else summary.message
    return final_state(summary.status, message, summary.as_dict())


def _collect_account(
    plan: CollectionPlan, account: AccountPlan, browser, steps: AccountSteps, settings: Settings, today: date
) -> AccountOutcome | None:
    logger = get_run_logger()
    since = account.since.isoformat() if account.since else "the beginning (full pass)"
    with session_scope() as session:
        start = collection.begin_account(session, plan, account, _flow_run_id())
    if start is None:
        logger.info("%s: removed from the collector since this run began: not collected", account.login)
        return None
    logger.info("%s: start, invoices since %s", account.login, since)
    report = None
    listing = None  # where the list stands; set once the listing is read through and what it found filed
    evidence: list[str] = []
    try:
        if start.error is not None:
            raise start.error
        storage_state = start.pending.storage_state if start.pending else start.remembered
        with provider_slot(plan.provider), portal_session(browser, settings, storage_state=storage_state) as portal:
            connector = connector_class(plan.provider)(portal.page, portal_url(plan.provider, plan.portal_url))
            if plan.biller:  # a supplier chosen in POWENS's list: the channel names it
                connector.biller = plan.biller
            try:
                _log_in(plan, account, start, connector, portal, steps, settings)
                portal.start_trace()
                top = steps.list_documents(connector, account.since)
                rest = None
                if account.left_at is not None:  # a list longer than one run reads: go on where the last run left it
                    logger.info("%s: going on with the list from %r", account.login, account.left_at)
                    rest = steps.list_documents(connector, account.left_since, account.left_at)
                documents = collection.listed_together(top, rest)
                logger.info("%s: %d invoice(s) listed", account.login, len(documents))
                with session_scope() as session:
                    looping = collection.leads_back(session, plan.channel_id, rest)
                    report = collection.all_filed(session, plan.channel_id, documents)  # then nothing to download
                report = report or steps.download_and_file(connector, plan, account, start.run_id, documents)
                if looping:
                    raise PortalChanged(
                        f"{connector.provider.name}: the invoice list, read on from {account.left_at!r}, showed "
                        f"{rest.pages} page(s) of invoices all filed already and still goes on: its pages seem to "
                        "lead back to its beginning. Stopped instead of looping."
                    )
                listing = collection.listing_outcome(account, top, rest)
            except PortalChanged:
                evidence = steps.keep_evidence(plan, start.run_id, portal.evidence())
                raise
        if report.refused:
            raise collection.documents_not_filed(list(report.refused))
    except GlaneurError as error:
        status, message = error.status, error.user_message
    except Exception as error:  # a bug: recorded, logged in full for support, never shown to users raw
        status, message = Status.INTERNAL_ERROR, cancelled_message()
        if message is None:
            logger.exception("Collection of %s failed unexpectedly", account.login)
            message = f"{describe(Status.INTERNAL_ERROR).message} ({type(error).__name__})"
        else:
            logger.warning("%s: stopped by the run's cancellation (%s)", account.login, type(error).__name__)
    else:
        status, message = Status.OK, describe(Status.OK).message
        if listing is not None and listing.left_at is not None:  # not a failure; not a plain ok either
            status = Status.MORE_TO_COLLECT
            message = collection.more_to_collect(listing, report.new, settings.max_list_pages)
    with session_scope() as session:
        # A step that failed half-way returns no report: what it did file is in the database, and counts.
        new = report.new if report else collection.filed_by_run(session, start.run_id)
        outcome = AccountOutcome(account.login, status, message, new, report.already_had if report else 0)
        collection.end_account(session, account, start.run_id, outcome, newest=report.newest if report else None,
                               today=today, listing=listing, evidence_keys=evidence)
    (logger.info if status in COLLECTED else logger.warning)(
        "%s: end, %s, %d new, %d already had. %s", account.login, status.value, outcome.new, outcome.already_had, message
    )
    return outcome


def _log_in(
    plan: CollectionPlan,
    account: AccountPlan,
    start: AccountStart,
    connector,
    portal: PortalSession,
    steps: AccountSteps,
    settings: Settings,
) -> None:
    """Reuse a remembered session, else log in and answer the second factor (TOTP by itself, else a person).

    A run resumed after a suspension opens the pending login it kept and types the answer given meanwhile.
    """
    credentials = start.credentials
    attempt, refused = 0, ""
    if start.pending is not None:
        challenge, attempt, refused = _resume_pending(plan, account, start.pending, connector, steps)
    else:
        if start.remembered is not None:
            if steps.resume_session(connector):
                return
            with session_scope() as session:  # expired or rejected by the portal: a normal login
                collection.forget_session(session, account.id)
        challenge = steps.authenticate(connector, credentials)
    by_itself = credentials.totp_seed is not None
    while challenge is not None:
        attempt += 1
        if attempt > settings.second_factor_attempts:
            # The run is over: its own status (not "awaiting"), so the owner is told and nobody types a code.
            raise SecondFactorRefused(
                f"The portal refused {settings.second_factor_attempts} second-factor answers ({refused})."
            )
        if challenge.kind == SecondFactorKind.TOTP and by_itself:
            answer = totp_code(credentials.totp_seed)
        else:
            keep = _pending_keeper(plan, account, start.run_id, connector, portal, challenge, attempt, refused)
            answer = ask_approver(plan, account, challenge, attempt=attempt, settings=settings,
                                  previous_error=refused, keep_pending=keep)
        challenge, refused = _answer(steps, connector, challenge, answer, by_itself)
    ttl = timedelta(hours=settings.session_ttl_hours) if connector.session_expires else None
    with session_scope() as session:
        collection.remember_session(session, account.id, portal.context.storage_state(), ttl)


def _answer(steps: AccountSteps, connector, challenge: SecondFactorChallenge, answer: str | None, by_itself: bool):
    """The next challenge (None: logged in) and the portal's complaint when it refused the answer."""
    try:
        return steps.answer_second_factor(connector, challenge, answer), ""
    except WrongSecondFactor as error:
        if challenge.kind == SecondFactorKind.TOTP and by_itself:
            time.sleep(30 - time.time() % 30 + 1)  # the code was at the edge of its window: use the next one
        return challenge, error.detail
    except AwaitingSecondFactor as error:  # the portal dropped the login after too many wrong codes
        raise SecondFactorRefused(error.detail) from error


def _pending_keeper(plan, account, run_id, connector, portal: PortalSession, challenge, attempt: int, refused: str):
    """What keeps the pending login before the run suspends; None when the portal needs the same browser."""
    if not getattr(connector, "resumable_second_factor", False):
        return None

    def keep(key: str, deadline: datetime) -> None:
        pending = PendingLogin(
            flow_run_id=_flow_run_id(), run_id=run_id, url=portal.page.url, storage_state=portal.context.storage_state(),
            kind=challenge.kind.value, prompt=challenge.prompt, attempt=attempt, refused=refused, key=key,
            deadline=deadline,
        )
        with session_scope() as session:
            collection.keep_pending_login(session, account.id, pending)

    return keep


def _resume_pending(plan, account, pending: PendingLogin, connector, steps: AccountSteps):
    """The run resumed after a suspension: the answer given, typed into the pending login opened again."""
    kind = SecondFactorKind(pending.kind)
    challenge = SecondFactorChallenge(kind, pending.prompt)
    try:
        answer = answer_after_suspension(account.login, kind, pending.key)
    finally:
        with session_scope() as session:  # used once: the state of the pending login goes from the vault
            collection.forget_pending_login(session, account.id)
    get_run_logger().info("%s: the approver answered; opening the pending login again", account.login)
    if not steps.reopen_pending_login(connector, pending.url):
        raise SecondFactorRefused(
            f"{plan.provider} dropped the pending login of {account.login} while the run waited for its second factor."
        )
    challenge, refused = _answer(steps, connector, challenge, answer, by_itself=False)
    return challenge, pending.attempt, refused


def _record_without_browser(plan: CollectionPlan, error: GlaneurError | None) -> AccountOutcome:
    status = error.status if error else Status.AWAITING_CREDENTIALS
    message = error.user_message if error else describe(Status.AWAITING_CREDENTIALS).message
    with session_scope() as session:
        run_id = collection.start_run(session, plan, None, _flow_run_id())
        collection.finish_run(session, run_id, status=status, message=message, new=0, already_had=0)
    return AccountOutcome("-", status, message)


def _record_channel_status(
    plan: CollectionPlan, summary: collection.CollectionSummary, outcomes: dict[int | None, AccountOutcome]
) -> None:
    """The channel's status from the run's outcomes, but those of accounts removed meanwhile (a collector
    deleted during the run keeps the status it had)."""
    from glaneur.notify import notify_channel_status

    with session_scope() as session:
        summary = collection.status_now(session, plan, summary, outcomes)
        if summary is None:
            return
        collection.update_channel_status(session, plan.channel_id, summary.status, summary.message)
        # One mail per change of state that needs a person, not one a day.
        notify_channel_status(session, plan.channel_id, link=flow_run_link(_flow_run_id()))


def run_channel(channel: str) -> dict:
    """Run the collection now, in this process, as its own flow run; return the summary.

    The flow ends Failed when an account could not be collected (data ops see it in the UI),
    so the summary is read from the final state rather than from the call's return value.
    """
    return run_in_process(collect_channel, channel=channel)
