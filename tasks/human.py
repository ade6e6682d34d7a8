"""Asking a person: the second factor, typed or approved by an approver in the Prefect UI.

The run pauses (``pause_flow_run``) with a typed form; the same browser session waits in this
process and continues once the approver submits. On a worker the browser waits a short while only
(``GLANEUR_SECOND_FACTOR_HOLD_SECONDS``); then, for a portal whose pending login can be opened
again from saved state, the run is suspended (``suspend_flow_run``: no process, no browser) and the
resumed run types the answer in a new browser. Prefect stores what was submitted in clear
(a flow run input), so it is read once and deleted at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from prefect import get_run_logger, runtime
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run, suspend_flow_run
from prefect.input import RunInput
from prefect.input.run_input import keyset_from_base_key
from pydantic import Field

from glaneur import totp as portal_totp
from glaneur.contract import SecondFactorKind
from glaneur.db import session_scope
from glaneur.errors import SecondFactorDeclined, SecondFactorTimeout
from glaneur.invoices import collection
from glaneur.models import Channel, utcnow
from glaneur.settings import Settings
from glaneur.statuses import Status, describe
from tasks.history import md_escape


class SecondFactorCode(RunInput):
    """The code the portal sent (SMS, e-mail) or shows in an authenticator app."""

    code: str = Field(min_length=4, max_length=12, pattern=r"^\s*[0-9A-Za-z]+\s*$", description="The code, as received")


class AppApproval(RunInput):
    """A single confirmation: the login was approved in the supplier's app; unticked declines it."""

    approved: bool = Field(
        default=False,
        description="I approved the login in the app. Leave unticked to decline it: Glaneur will not log in.",
    )


def totp_code(seed: str) -> str:
    return portal_totp.code(seed)


def flow_run_link(flow_run_id: str | None) -> str | None:
    """The run's page in the Prefect UI, for mails: GLANEUR_PREFECT_UI_URL, else Prefect's own UI URL.

    The one link builder of flows and CLI alike (the README promises the fallback).
    """
    from prefect.settings import PREFECT_UI_URL

    from glaneur.notify import configured_run_link, run_page

    link = configured_run_link(flow_run_id)
    base = PREFECT_UI_URL.value()
    if link is None and base and flow_run_id:
        link = run_page(base, flow_run_id)
    return link


def duration(seconds: float) -> str:
    """Plain words for a wait: "45 s", "1 min", "2 h 30 min" (never "0 min")."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def ask_approver(
    plan: collection.CollectionPlan,
    account: collection.AccountPlan,
    challenge,  # glaneur.contract.SecondFactorChallenge
    *,
    attempt: int,
    settings: Settings,
    previous_error: str = "",
    keep_pending: Callable[[str, datetime], None] | None = None,
) -> str | None:
    """Pause the run until the approver answers; return the code (None for an app approval).

    Run by a worker (from a deployment), the browser waits only ``GLANEUR_SECOND_FACTOR_HOLD_SECONDS``.
    Then, when ``keep_pending`` is given (the portal's pending login can be opened again from saved
    state), it is called with the suspend key and the deadline, and the run is **suspended**: its
    process exits (browser closed), and the resumed run opens the pending login again
    (:func:`answer_after_suspension`). Without ``keep_pending`` the short pause is all: nobody
    answering then is ``second_factor_timeout``. A run outside a deployment (``glaneur run``, the
    demo) cannot be suspended and pauses up to ``GLANEUR_SECOND_FACTOR_TIMEOUT_SECONDS``.
    """
    flow_run_id = str(runtime.flow_run.id)
    link = flow_run_link(flow_run_id)
    app = challenge.kind == SecondFactorKind.APP
    description = _form_description(plan, account, challenge, previous_error)
    _tell_approver(plan, account, link, challenge, attempt)
    model = AppApproval if app else SecondFactorCode
    key = f"second-factor-{account.id}-{attempt}"
    logger = get_run_logger()
    timeout = settings.second_factor_timeout_seconds
    on_worker = runtime.deployment.id is not None  # a worker runs it: it may suspend
    hold = min(settings.second_factor_hold_seconds, timeout) if on_worker else timeout
    deadline = utcnow() + timedelta(seconds=timeout)
    logger.info("Waiting for the approver (%s second factor, account %s), the browser open for %s",
                challenge.kind.value, account.login, duration(hold))
    try:
        with riding_out_server_restarts():
            answer = pause_flow_run(
                wait_for_input=model.with_initial_data(description=description),
                timeout=max(1, int(hold)),
                poll_interval=int(max(1, settings.pause_poll_seconds)),
                key=key,
            )
    except FlowPauseTimeout:
        # The server failed the paused run at the timeout; take it back to Running so the run
        # records its own outcome (second_factor_timeout) or suspends, and ends with its own state.
        _back_to_running(flow_run_id)
        left = (deadline - utcnow()).total_seconds()
        if keep_pending is None or not on_worker or left < 1:
            raise SecondFactorTimeout(
                f"Nobody answered the second factor of {account.login} within {duration(hold)}."
            ) from None
        suspended_key = f"{key}-suspended"
        keep_pending(suspended_key, deadline)
        logger.info(
            "Nobody answered within %s: the browser is closed and the run suspended (no process) until %s UTC; "
            "the approver can still answer with Resume", duration(hold), f"{deadline:%Y-%m-%d %H:%M}",
        )
        answer = suspend_flow_run(
            wait_for_input=model.with_initial_data(description=description), timeout=int(left), key=suspended_key
        )  # raises Pause (the process ends) the first time; a resumed run is started again from the top
        delete_inputs(f"suspended-{suspended_key}", flow_run_id)
    finally:
        delete_inputs(f"paused-{key}", flow_run_id)
    return _read_answer(answer, app, account.login)


WAIT_CLIENT_RETRIES = 8  # a lost server is retried after 2, 4, ... 256 s: about 8.5 min in all


@contextmanager
def riding_out_server_restarts() -> Iterator[None]:
    """While the run waits for a person, a Prefect server away for a few minutes (a restart, an upgrade)
    does not end it: the wait's polls retry a lost connection for about 8.5 min, not Prefect's default
    5 retries (about a minute). What the person submits meanwhile is in the server's database."""
    from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    retries = max(PREFECT_CLIENT_MAX_RETRIES.value(), WAIT_CLIENT_RETRIES)
    with temporary_settings({PREFECT_CLIENT_MAX_RETRIES: retries}):
        yield


def answer_after_suspension(account_login: str, kind: SecondFactorKind, key: str) -> str | None:
    """In the resumed run: the answer submitted to the suspended run (Prefect's copy deleted at once)."""
    flow_run_id = str(runtime.flow_run.id)
    app = kind == SecondFactorKind.APP
    try:
        answer = suspend_flow_run(wait_for_input=AppApproval if app else SecondFactorCode, key=key)
    finally:
        delete_inputs(f"suspended-{key}", flow_run_id)
    return _read_answer(answer, app, account_login)


def _read_answer(answer, app: bool, login: str) -> str | None:
    if app:
        if not answer.approved:
            get_run_logger().warning("The approver declined the login of account %s", login)
            raise SecondFactorDeclined(f"The approver declined the login of {login}.")
        return None
    return answer.code.strip()


def _form_description(plan, account, challenge, previous_error: str) -> str:
    what = (
        "Approve the login in the supplier's app, then tick the box and submit. **If nobody on your side "
        "started this login, leave the box unticked and submit: Glaneur declines it and does not log in.**"
        if challenge.kind == SecondFactorKind.APP else "Type the code the portal sent, then submit."
    )
    return "\n\n".join(
        part for part in (
            f"**Second factor needed** for channel **{md_escape(plan.label)}** "
            f"({md_escape(plan.channel)}), account **{md_escape(account.login)}**, portal "
            f"**{md_escape(plan.provider)}**.",
            f"The portal says: {md_escape(challenge.prompt)}" if challenge.prompt else "",
            f"The previous answer was refused: {md_escape(previous_error)}" if previous_error else "",
            what,
        ) if part
    )


def _back_to_running(flow_run_id: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.states import Running

    with get_client(sync_client=True) as client:
        client.set_flow_run_state(flow_run_id, Running(message="Second factor not answered in time"), force=True)


DELETE_ATTEMPTS = 4
log = logging.getLogger(__name__)


def delete_inputs(base_key: str, flow_run_id: str) -> None:
    """Remove what the approver submitted (and the form) from Prefect's flow run inputs."""
    for key in keyset_from_base_key(base_key).values():
        delete_input(key, flow_run_id)


def delete_run_inputs(flow_run_id: str, prefix: str = "") -> int:
    """Remove every flow run input of the run whose key starts with ``prefix``; how many were found."""
    from prefect.client.orchestration import get_client

    def keys() -> list[str]:
        with get_client(sync_client=True) as client:
            return [found.key for found in client.filter_flow_run_input(flow_run_id, prefix, 200, set())]

    found = _retried(keys, f"listing the inputs of flow run {flow_run_id}")
    for key in found:
        delete_input(key, flow_run_id)
    return len(found)


def delete_input(key: str, flow_run_id: str) -> None:
    """Delete one flow run input. Nothing stored is fine; any other failure is retried, logged, then raised:
    a password left in Prefect's database must never go unnoticed."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

    def delete() -> None:
        with get_client(sync_client=True) as client:
            try:
                client.delete_flow_run_input(flow_run_id, key)
            except ObjectNotFound:
                pass
            except PrefectHTTPStatusError as error:
                if error.response.status_code != 404:
                    raise

    _retried(delete, f"deleting flow run input {key!r} of flow run {flow_run_id}")


def _logger():
    """The run's logger inside a flow (the message reaches the Prefect UI), else this module's."""
    from prefect.exceptions import MissingContextError

    try:
        return get_run_logger()
    except MissingContextError:
        return log


def _retried(call, what: str):
    for attempt in range(1, DELETE_ATTEMPTS + 1):
        try:
            return call()
        except Exception as error:
            # The exception's text is Prefect's (URL, status), never the input's value.
            _logger().warning("%s failed (attempt %d of %d): %s: %s", what, attempt, DELETE_ATTEMPTS,
                        type(error).__name__, error)
            if attempt == DELETE_ATTEMPTS:
                raise RuntimeError(
                    f"{what} failed {DELETE_ATTEMPTS} times; delete it by hand (Prefect API DELETE "
                    f"/flow_runs/{{id}}/input/{{key}}) before anyone reads the database."
                ) from error
            time.sleep(0.5 * 2 ** (attempt - 1))


def _tell_approver(plan, account, link: str | None, challenge, attempt: int) -> None:
    from glaneur.notify import notify_user

    message = describe(Status.AWAITING_SECOND_FACTOR).message
    with session_scope() as session:
        collection.update_channel_status(session, plan.channel_id, Status.AWAITING_SECOND_FACTOR, message)
        collection.record_account_status(session, account.id, Status.AWAITING_SECOND_FACTOR)
        approver = collection.channel_owner(session, plan.channel_id)
        if approver is None or attempt > 1:
            return  # one mail per pause request, not one per retried code
        channel = session.get(Channel, plan.channel_id)
        channel.notified_status = Status.AWAITING_SECOND_FACTOR  # this mail is the one for this state
        session.add(channel)
        notify_user(
            session,
            approver,
            kind="second_factor",
            subject=f"[Glaneur] {plan.label}: second factor needed",
            body=(
                f"The portal {plan.provider} asks for a second factor ({challenge.kind.value}) to collect the "
                f"invoices of account {account.login} on channel {plan.label}.\n"
                f"Open the run in the Prefect UI, choose Resume, and answer the form."
            ),
            link=link,
        )
        session.commit()


def cancel_invitation_runs(flow_run_ids: tuple[str, ...] | list[str], reason: str) -> None:
    """Cancel suspended invitation runs (their channel was deleted) and delete whatever the holder submitted.

    A run the holder already answered but that did not start yet would otherwise keep the password
    in its inputs. Failures are retried and logged, then raised.
    """
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelled

    for flow_run_id in flow_run_ids:
        def cancel(flow_run_id=flow_run_id) -> None:
            with get_client(sync_client=True) as client:
                if not client.read_flow_run(flow_run_id).state.is_final():
                    client.set_flow_run_state(flow_run_id, Cancelled(message=reason), force=True)

        _retried(cancel, f"cancelling invitation run {flow_run_id}")
        delete_run_inputs(flow_run_id)
