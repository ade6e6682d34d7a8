"""A flow run's life as people see it: its day, its tags, the name of its final state, and runs that died.

* The day of a run is the day of its **scheduled** start in ``GLANEUR_TIMEZONE``, never the
  worker's clock: ``dispatch-daily`` runs at 00:05 Paris, which is still yesterday in UTC.
* Runs carry ``org:``, ``provider:`` and ``kind:`` tags, so the Prefect runs list filters by them.
* A failed run's state is named after its status (``describe(status).title``: "Wrong credentials",
  "Portal changed"), and carries an exception, never a dict: Prefect must resolve a Failed state's
  data into an exception, and a dict makes the worker log a ``TypeError`` traceback.
* A collection row is ``running`` until the run says what happened. When the process dies, the
  hooks (:func:`close_runs_of_ended_flow_run`) or, if the process was killed outright, the sweep
  (:func:`close_stale_runs`) close it as ``internal_error``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from datetime import date, datetime, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

from prefect import runtime
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
from prefect.logging import get_logger
from prefect.states import Cancelled, Completed, Crashed, Failed, State

from glaneur.db import session_scope
from glaneur.errors import ConfigurationError
from glaneur.invoices import collection
from glaneur.models import Channel, CollectionRun, utcnow
from glaneur.settings import get_settings
from glaneur.statuses import COLLECTED, Status, describe

STALE_WITHOUT_FLOW_RUN = timedelta(days=1)  # a row no flow run owns (run outside Prefect): closed after this


def day_of(moment: datetime, timezone: str) -> date:
    return moment.astimezone(ZoneInfo(timezone)).date()


def run_day(timezone: str | None = None) -> date:
    """The day this flow run is for: its scheduled start, in ``GLANEUR_TIMEZONE`` (now, outside a flow run)."""
    return day_of(runtime.flow_run.scheduled_start_time, timezone or get_settings().timezone)


def run_tags(organization: str, provider: str, kind: str) -> list[str]:
    """The tags of a run, to filter the Prefect runs list by organisation, provider and kind."""
    return [f"org:{organization}", f"provider:{provider}", f"kind:{kind}"]


def tag_this_flow_run(tags: list[str]) -> None:
    """Add the tags to the current flow run, whoever created it (dispatch, the CLI, the UI).

    A run that has them already (dispatch creates its runs with them) costs no call to the API: the
    engine read the run's tags when it started it.
    """
    flow_run_id = runtime.flow_run.id
    current = list(runtime.flow_run.tags)
    if not flow_run_id or set(tags) <= set(current):
        return
    with get_client(sync_client=True) as client:
        client.update_flow_run(UUID(str(flow_run_id)), tags=[*current, *(t for t in tags if t not in current)])


class RunFailed(Exception):
    """A run that ended with a status other than ok: its summary travels with the Failed state."""

    def __init__(self, message: str, summary: dict):
        super().__init__(message, summary)
        self.message = message
        self.summary = summary

    def __str__(self) -> str:
        return self.message


def final_state(status: Status, message: str, summary: dict, *, ok: frozenset[Status] = COLLECTED) -> State:
    """Completed or Failed, named after the status (the runs list then says what happened)."""
    title = describe(status).title
    if status in ok:  # more_to_collect too: what one run reads of a long list was collected
        return ended(Completed(message=message, name=title, data=summary))
    return ended(Failed(message=message, name=title, data=RunFailed(message, summary)))


def summary_of(state: State) -> dict | BaseException:
    """The summary a collect or routing run ended with; the exception when it ended otherwise."""
    result = state.result(raise_on_failure=False)
    if isinstance(result, RunFailed):
        return result.summary
    return result


# The final states flows returned, kept for the in-process caller that asked (see run_in_process).
_returned: ContextVar[list[State] | None] = ContextVar("glaneur_returned_states", default=None)


def ended(state: State) -> State:
    """The state a flow ends with; every flow whose summary is read in process returns through here."""
    kept = _returned.get()
    if kept is not None:
        kept.append(state)
    return state


def run_in_process(flow: Callable[..., State], **parameters) -> dict:
    """Run the flow now, in this process, as its own flow run; return its summary, or raise what it ended with.

    The summary is the data of the final state the flow returned. The state Prefect's engine hands back
    can lack it: when the server commits the final state but its answer is lost (a 503 while the server's
    SQLite is locked), the client proposes the state again, the server rejects the duplicate transition
    (``PreventDuplicateTransitions``) and answers with its stored copy, which holds no data since results
    are not persisted. The state the flow itself returned is kept here for that case.
    """
    kept: list[State] = []
    token = _returned.set(kept)
    try:
        state = flow(**parameters, return_state=True)
    finally:
        _returned.reset(token)
    if state.data is None and kept and kept[-1].type == state.type:
        state = kept[-1]
    result = summary_of(state)
    if isinstance(result, BaseException):
        raise result
    return result


# -- runs whose process died ----------------------------------------------------------------------------


_ENDINGS = {
    "CANCELLED": "it was cancelled",
    "CANCELLING": "it was cancelled",
    "CRASHED": "its process crashed",
    "FAILED": "it failed",
    "COMPLETED": "its flow run completed without recording the outcome",
}


def ended_message(ending: str, detail: str | None) -> str:
    """What the history says of a run that never finished: what happened, then what it means."""
    said = f" ({detail.strip().rstrip('.')})" if detail and detail.strip() else ""
    return (
        f"The collection stopped before it finished: {ending}{said}. Invoices filed before that are kept; "
        "the next run collects the rest. The run's log in the Prefect UI has the details."
    )


def ending_of(state: State) -> str:
    return _ENDINGS.get(state.type.value, f"its flow run ended {state.name}")


def cancelled_message() -> str | None:
    """What the history says of a collection that failed because this flow run is being cancelled, else None.

    A cancelled run's process is terminated with its browser: the collection may then fail on the closed
    browser (``TargetClosedError``) before the run's cancellation hook closes its rows, and that failure is
    the cancellation, not a bug of Glaneur's.
    """
    flow_run_id = runtime.flow_run.id
    if not flow_run_id:
        return None
    try:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(UUID(str(flow_run_id))).state
    except Exception:  # noqa: BLE001 - the server unreachable: the failure is recorded as it was
        return None
    if state is None or state.type.value not in ("CANCELLING", "CANCELLED"):
        return None
    return ended_message(ending_of(state), state.message)


def close_runs(closing: dict[int, str]) -> list[int]:
    """Close the given rows (id -> message) still ``running``, then republish their channels' history."""
    from tasks.history import publish_history

    closed: list[int] = []
    with session_scope() as session:
        for run_id, message in closing.items():
            closed += collection.close_open_runs(session, [run_id], message)
        channels = {session.get(CollectionRun, run_id).channel_id for run_id in closed}
        slugs = [session.get(Channel, channel_id).slug for channel_id in channels]
    settings = get_settings()
    for slug in slugs:
        try:
            with session_scope() as session:
                plan = collection.load_plan(session, slug, settings, run_day(settings.timezone))
        except ConfigurationError:  # deleted meanwhile: its history stays in the database
            continue
        publish_history(plan)
    return closed


def close_runs_of_ended_flow_run(flow, flow_run, state: State) -> None:
    """Flow hook (on_failure, on_crashed, on_cancellation): the rows this flow run left ``running``,
    and the channel it was collecting, free for the next run."""
    with session_scope() as session:
        collection.release_channel(session, str(flow_run.id))
        open_ids = [run.id for run in collection.open_runs(session, flow_run_id=str(flow_run.id))]
    if not open_ids:
        return
    message = ended_message(ending_of(state), state.message)
    closed = close_runs({run_id: message for run_id in open_ids})
    get_logger("glaneur.lifecycle").warning(
        "Flow run %s ended %s: closed %d collection row(s) left running", flow_run.id, state.name, len(closed)
    )


# -- one run of a channel at a time ---------------------------------------------------------------------------

ALREADY_RUNNING = "already_running"  # the summary status of a run that found its channel being collected


def claim_channel(channel_id: int) -> str | None:
    """Make this flow run the one collecting the channel; None when it is, else what holds it (for people).

    The claim is a column of the channel in Glaneur's database (:func:`glaneur.invoices.collection.claim_channel`),
    not a Prefect concurrency slot: a run suspended for a second factor has no process to renew a
    slot's lease and must keep its channel, and a run killed outright must not block the next one
    for a lease's duration. A holder whose flow run has ended (or is gone, or lost: still Running
    after ``GLANEUR_RUN_LOST_AFTER_HOURS``) is taken over.
    """
    own = str(runtime.flow_run.id) if runtime.flow_run.id else None
    if own is None:  # outside a flow run: nothing to say who holds it
        return None
    with session_scope() as session:
        holder = collection.claim_channel(session, channel_id, own)
    if holder is None:
        return None
    lost_after = timedelta(hours=get_settings().run_lost_after_hours)
    with get_client(sync_client=True) as client:
        try:
            found = client.read_flow_run(UUID(holder))
        except (ObjectNotFound, ValueError):
            found = None
    state = found.state if found is not None else None
    ended = (
        found is None or state is None or state.is_final()
        or (state.is_running() and utcnow() - _aware(found.start_time or utcnow()) > lost_after)
    )
    if not ended:
        return f"flow run {found.name} ({state.name})"
    with session_scope() as session:
        newer = collection.claim_channel(session, channel_id, own, replacing=holder)
    return None if newer is None else f"flow run {newer}"


def release_channel() -> None:
    """This flow run has finished collecting its channel."""
    if runtime.flow_run.id:
        with session_scope() as session:
            collection.release_channel(session, str(runtime.flow_run.id))


def already_running(channel: str, holder: str) -> State:
    """The final state of a run that found its channel being collected: Cancelled, as Prefect's own
    ``CANCEL_NEW`` collision strategy ends such a run, named so the runs list says why. Nothing recorded."""
    message = (f"Another run of {channel} is under way ({holder}): this run did nothing, so that no invoice "
               "is downloaded twice. That run files what is new; its history row says what it did.")
    summary = {"channel": channel, "status": ALREADY_RUNNING, "message": message, "new": 0, "already_had": 0,
               "accounts": []}
    return ended(Cancelled(message=message, name="Already running", data=RunFailed(message, summary)))


def close_stale_runs(channel_id: int | None = None) -> list[int]:
    """The sweep: rows still ``running`` whose Prefect flow run has ended (or is gone) are closed.

    A plain call at the start of every collection and of the dispatch, not a task run: it is a
    database query that finds nothing on almost every run.

    A process killed outright (SIGKILL, out of memory, a lost machine) runs no hook; the worker
    marks its flow run Crashed, and this closes the row the next time a run of the channel (or
    the daily dispatch) starts. A flow run still Running after ``GLANEUR_RUN_LOST_AFTER_HOURS``
    lost its process where no worker watched: it is marked Crashed first, so it does not stay Running.
    """
    own = str(runtime.flow_run.id) if runtime.flow_run.id else None
    lost_after = timedelta(hours=get_settings().run_lost_after_hours)
    with session_scope() as session:
        candidates = [
            (run.id, run.flow_run_id, run.started_at)
            for run in collection.open_runs(session, channel_id=channel_id)
            if run.flow_run_id != own or own is None
        ]
    closing: dict[int, str] = {}
    with get_client(sync_client=True) as client:
        for run_id, flow_run_id, started_at in candidates:
            if flow_run_id is None:
                if utcnow() - _aware(started_at) > STALE_WITHOUT_FLOW_RUN:
                    closing[run_id] = ended_message("no flow run recorded it", None)
                continue
            try:
                found = client.read_flow_run(UUID(flow_run_id))
            except ObjectNotFound:
                closing[run_id] = ended_message("its flow run was deleted", None)
                continue
            state = found.state
            if state is not None and state.is_final():
                closing[run_id] = ended_message(ending_of(state), state.message)
            elif state is not None and state.is_running() and utcnow() - _aware(found.start_time or utcnow()) > lost_after:
                # Nobody will end it: its process died where no worker watched (`glaneur run` killed, a lost host).
                hours = lost_after.total_seconds() / 3600
                lost = Crashed(message=f"still Running after {hours:g} hour(s): the process running it was lost")
                client.set_flow_run_state(found.id, lost, force=True)
                closing[run_id] = ended_message(ending_of(lost), lost.message)
    return close_runs(closing) if closing else []


def _aware(moment):
    from datetime import UTC

    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
