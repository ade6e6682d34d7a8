"""Asking a person: the second factor, typed or approved by an approver in the Prefect UI.

The run pauses (``pause_flow_run``) with a typed form; the same browser session waits in this
process and continues once the approver submits. Prefect stores what was submitted in clear
(a flow run input), so it is read once and deleted at once.
"""

from __future__ import annotations

import pyotp
from prefect import get_run_logger, runtime
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.input.run_input import keyset_from_base_key
from pydantic import Field

from connectors.base import SecondFactorKind
from glaneur import collection
from glaneur.db import session_scope
from glaneur.errors import SecondFactorTimeout
from glaneur.models import Channel
from glaneur.settings import Settings
from glaneur.statuses import Status, describe
from tasks.history import md_escape


class SecondFactorCode(RunInput):
    """The code the portal sent (SMS, e-mail) or shows in an authenticator app."""

    code: str = Field(min_length=4, max_length=12, pattern=r"^\s*[0-9A-Za-z]+\s*$", description="The code, as received")


class AppApproval(RunInput):
    """A single confirmation: the login was approved in the supplier's app."""

    approved: bool = Field(description="I approved the login in the app")


def totp_code(seed: str) -> str:
    return pyotp.TOTP(seed).now()


def flow_run_link(flow_run_id: str | None) -> str | None:
    """The run's page in the Prefect UI, for mails: GLANEUR_PREFECT_UI_URL, else Prefect's own UI URL."""
    from prefect.settings import PREFECT_UI_URL

    from glaneur.notify import flow_run_link as configured_link

    link = configured_link(flow_run_id)
    base = PREFECT_UI_URL.value()
    if link is None and base and flow_run_id:
        link = f"{base.rstrip('/')}/runs/flow-run/{flow_run_id}"
    return link


def ask_approver(
    plan: collection.CollectionPlan,
    account: collection.AccountPlan,
    challenge,  # connectors.base.SecondFactorChallenge
    *,
    attempt: int,
    settings: Settings,
    previous_error: str = "",
) -> str | None:
    """Pause the run until the approver answers; return the code (None for an app approval)."""
    flow_run_id = str(runtime.flow_run.id)
    link = flow_run_link(flow_run_id)
    app = challenge.kind == SecondFactorKind.APP
    what = "Approve the login in the supplier's app, then tick the box and submit." if app else (
        "Type the code the portal sent, then submit.")
    description = "\n\n".join(
        part for part in (
            f"**Second factor needed** for channel **{md_escape(plan.label)}** "
            f"({md_escape(plan.channel)}), account **{md_escape(account.login)}**, portal "
            f"**{md_escape(plan.provider)}**.",
            f"The portal says: {md_escape(challenge.prompt)}" if challenge.prompt else "",
            f"The previous answer was refused: {md_escape(previous_error)}" if previous_error else "",
            what,
        ) if part
    )
    _tell_approver(plan, account, link, challenge, attempt)
    model = AppApproval if app else SecondFactorCode
    key = f"second-factor-{account.id}-{attempt}"
    logger = get_run_logger()
    logger.info("Waiting for the approver (%s second factor, account %s)", challenge.kind.value, account.login)
    try:
        answer = pause_flow_run(
            wait_for_input=model.with_initial_data(description=description),
            timeout=int(settings.second_factor_timeout_seconds),
            poll_interval=int(max(1, settings.pause_poll_seconds)),
            key=key,
        )
    except FlowPauseTimeout:
        # The server failed the paused run at the timeout; take it back to Running so the run
        # records its own outcome (second_factor_timeout) and ends with its own state.
        _back_to_running(flow_run_id)
        raise SecondFactorTimeout(
            f"Nobody answered the second factor of {account.login} within "
            f"{settings.second_factor_timeout_seconds / 60:.0f} min."
        ) from None
    finally:
        delete_inputs(f"paused-{key}", flow_run_id)
    if app:
        return None
    return answer.code.strip()


def _back_to_running(flow_run_id: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.states import Running

    with get_client(sync_client=True) as client:
        client.set_flow_run_state(flow_run_id, Running(message="Second factor not answered in time"), force=True)


def delete_inputs(base_key: str, flow_run_id: str) -> None:
    """Remove what the approver submitted (and the form) from Prefect's flow run inputs."""
    from prefect.input.actions import delete_flow_run_input

    for key in keyset_from_base_key(base_key).values():
        try:
            delete_flow_run_input(key, flow_run_id=flow_run_id)
        except Exception:  # nothing stored under that key (the pause timed out before any answer)
            pass


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
