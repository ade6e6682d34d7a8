"""Collect one bank channel's movements through Powens: the "récupération automatique" of the POWENS page.

One run per bank channel per day (named after the channel and the day, like supplier channels):
synchronise the connection and read its state; a state that needs the holder (second factor,
password) ends the run with its status and tells the owner and the holder what to do; otherwise
record the accounts, read what changed since the last run (``last_update``) page by page, and
file each account's new or updated movements as the day's CSV and OFX. Before the first
movements (48 to 72 hours after the connection) the status says when they are expected.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from prefect import flow, get_run_logger, runtime
from prefect.states import State

from connectors.powens import RECONNECT_STATES
from glaneur import bank
from glaneur.db import require_current_schema, session_scope
from glaneur.errors import GlaneurError
from glaneur.invoices import collection
from glaneur.models import utcnow
from glaneur.statuses import Status, describe
from tasks import bank as steps
from tasks.collect import with_retries
from tasks.history import publish_history
from tasks.lifecycle import final_state, run_day, run_in_process


def _run_name() -> str:
    parameters = runtime.flow_run.parameters
    return f"{parameters['channel']}-{parameters.get('day') or run_day().isoformat()}"


def _flow_run_id() -> str | None:
    return str(runtime.flow_run.id) if runtime.flow_run.id else None


def load_plan(channel: str) -> collection.CollectionPlan:
    with session_scope() as session:
        found, _ = bank.get_connection(session, channel)
        return collection.channel_plan(session, found)


@flow(name="collect-bank-movements", flow_run_name=_run_name)
def collect_bank_movements(channel: str, day: date | None = None) -> State:
    """Collect the bank channel whose slug is given; ``day`` (default today) names the day's files.

    Ends Completed when the movements are in (or not due yet), Failed with the status's message otherwise.
    """
    from glaneur.settings import get_settings

    require_current_schema()  # migrations run at start-up and deploy time, not per flow run
    settings = get_settings()
    day = day or run_day(settings.timezone)  # the scheduled day in GLANEUR_TIMEZONE, not the worker's clock
    plan = load_plan(channel)
    with session_scope() as session:
        run_id = collection.start_run(session, plan, None, _flow_run_id())
    new = already = 0
    keys: list[str] = []
    remote = None
    try:
        remote = with_retries(steps.sync_connection, settings)(plan.channel_id)
        if remote.state == "decoupled":  # the bank waits for an approval in its app: ask, as supplier channels do
            remote = _approved_in_the_bank_app(plan, remote, settings)
        if remote.status != Status.OK:
            raise steps.status_error(remote, plan.channel)
        with_retries(steps.list_accounts, settings)(plan.channel_id)
        full_pass = bank.is_full_pass_day(plan.channel_id, day, bank.powens_settings())
        fetched = with_retries(steps.fetch_movements, settings)(plan.channel_id, run_id, full_pass=full_pass)
        new, already = fetched.new + fetched.updated, fetched.unchanged
        keys = with_retries(steps.file_movements, settings)(
            plan.channel_id, plan.organization, plan.binder, plan.channel, run_id, day)
        status, message = _outcome(plan, fetched, full_pass)
    except GlaneurError as error:
        status, message = error.status, error.user_message
    except Exception as error:  # a bug: logged in full for support, never shown raw
        get_run_logger().exception("Bank collection of %s failed unexpectedly", plan.channel)
        status, message = Status.INTERNAL_ERROR, f"{describe(Status.INTERNAL_ERROR).message} ({type(error).__name__})"
    from glaneur.notify import notify_channel_status
    from tasks.human import flow_run_link

    with session_scope() as session:
        collection.finish_run(session, run_id, status=status, message=message, new=new, already_had=already)
        changed = collection.update_channel_status(session, plan.channel_id, status, message)
        notify_channel_status(session, plan.channel_id, link=flow_run_link(_flow_run_id()))
        if changed and remote is not None and remote.state in RECONNECT_STATES:
            from glaneur.signing import reconnect_link

            channel_row, connection = bank.get_connection(session, plan.channel)
            bank.tell_holder_to_reconnect(session, channel_row, connection,
                                          reconnect_link(bank.powens_settings(), plan.channel))
    get_run_logger().info("%s: %s, %d new or updated, %d already had, %d file(s)", plan.channel, status, new, already,
                          len(keys))
    publish_history(plan)
    summary = {"channel": plan.channel, "status": status.value, "message": message, "new": new,
               "already_had": already, "files": keys}
    return final_state(status, message, summary, ok=frozenset({Status.OK, Status.NEW}))


def _approved_in_the_bank_app(plan: collection.CollectionPlan, remote, settings):
    """Pause for the approver (the second-factor pause of supplier channels, ``tasks.human.ask_approver``): they
    approve in the bank's app and submit; the connection is synchronised again. Declined or unanswered: the
    status says so (``second_factor_declined`` / ``second_factor_timeout``) and the holder keeps the reconnect link."""
    from glaneur.contract import SecondFactorChallenge, SecondFactorKind
    from tasks.human import ask_approver

    with session_scope() as session:
        _, connection = bank.get_connection(session, plan.channel)
        bank_name = session.get(bank.Bank, connection.bank_id).name
    challenge = SecondFactorChallenge(SecondFactorKind.APP, remote.error_message or "Validez dans l'application de votre banque.")
    # A bank channel has no supplier account: id 0 names none, the login is the bank's name.
    ask_approver(plan, collection.AccountPlan(id=0, login=bank_name, position=1, since=None), challenge, attempt=1,
                 settings=settings)
    return with_retries(steps.sync_connection, settings)(plan.channel_id)


def _outcome(plan: collection.CollectionPlan, fetched: steps.FetchOutcome, full_pass: bool = False) -> tuple[Status, str]:
    """Before the first movements (up to 72 hours after the connection), the status says when they are expected."""
    settings = bank.powens_settings()
    with session_scope() as session:
        _, connection = bank.get_connection(session, plan.channel)
        if not bank.has_movements(session, connection):
            connected = connection.connected_at
            latest = None if connected is None else _aware(connected) + timedelta(hours=settings.first_movements_hours[1])
            if latest is None or utcnow() < latest:
                return Status.NEW, bank.first_movements_message(connection, settings)
    checked = f" (periodic full pass: {fetched.unchanged} already had, checked again)" if full_pass else ""
    if fetched.new or fetched.updated:
        return Status.OK, f"{fetched.new} new and {fetched.updated} updated movement(s) filed.{checked}"
    return Status.OK, f"No new movement since the last run.{checked}"


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def run_bank_channel(channel: str, day: date | None = None) -> dict:
    """Run now, in this process, as its own flow run; the summary (the flow ends Failed on a problem)."""
    return run_in_process(collect_bank_movements, channel=channel, day=day)
