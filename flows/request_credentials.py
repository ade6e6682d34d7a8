"""Invite the account holder to enter the credentials ("envoyez la demande à un utilisateur").

The run mails the invitee a link to itself in the Prefect UI, then suspends (the worker process
exits, so days of waiting hold nothing). When the invitee submits the form, the worker starts the
run again **from the top**: the invitation row in the database says what was done already. The
secrets go straight to the vault, Prefect's copy of the input is deleted, and the first collection
starts at once (it checks the credentials by logging in).
"""

from __future__ import annotations

from datetime import timedelta

from prefect import flow, get_run_logger, runtime
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import suspend_flow_run
from prefect.input import RunInput
from prefect.states import Completed, Failed, State
from pydantic import Field, SecretStr

from glaneur import admin, collection
from glaneur import invitations as invites
from glaneur.db import migrate, session_scope
from glaneur.models import Channel, InvitationState, User
from glaneur.settings import get_settings
from tasks.history import md_escape
from tasks.human import delete_inputs, flow_run_link


class AccountCredentials(RunInput):
    """What the account holder types: their login at the supplier, password, optional TOTP seed."""

    login: str = Field(min_length=1, max_length=200, description="Login (identifiant or e-mail) on the supplier's portal")
    password: SecretStr = Field(min_length=1, description="Password on the supplier's portal")
    totp_seed: SecretStr | None = Field(
        default=None, description="Optional: the authenticator (TOTP) secret, so codes are typed automatically"
    )


def _run_name() -> str:
    return f"invitation-{runtime.flow_run.parameters['channel']}"


@flow(name="request-credentials", flow_run_name=_run_name)
def request_credentials(channel: str, invitee: str) -> State:
    settings = get_settings()
    logger = get_run_logger()
    migrate()
    flow_run_id = str(runtime.flow_run.id)
    with session_scope() as session:
        invitation = invites.open_invitation(
            session, channel, invitee, flow_run_id=flow_run_id, ttl=timedelta(hours=settings.invitation_ttl_hours)
        )
        label = session.get(Channel, invitation.channel_id).label
        if invitation.sent_count == 0:  # first execution only: a resumed run starts again from the top
            _send(session, invitation, label)
        invitation_id, timeout = invitation.id, invites.seconds_left(invitation)
    key = f"invitation-{invitation_id}"
    description = (
        f"**Credentials requested** for the collector **{md_escape(label)}** ({md_escape(channel)}).\n\n"
        "Enter the login and password of the supplier's customer area. They are encrypted in Glaneur's "
        "vault at once and removed from this form's record."
    )
    try:
        answer = suspend_flow_run(
            wait_for_input=AccountCredentials.with_initial_data(description=description), timeout=timeout, key=key
        )
    except FlowPauseTimeout:
        with session_scope() as session:
            invites.mark(session, session.get(invites.Invitation, invitation_id), InvitationState.EXPIRED)
        return Failed(message=f"The invitation to {invitee} expired without an answer; resend it.")
    try:
        with session_scope() as session:
            invitation = session.get(invites.Invitation, invitation_id)
            # The invitation is the authorisation: the owner who sent it delegated this one entry.
            _store(session, channel, answer, collection.channel_owner(session, invitation.channel_id))
            invites.mark(session, invitation, InvitationState.ANSWERED)
    finally:
        delete_inputs(f"suspended-{key}", flow_run_id)
    logger.info("Credentials received for %s; first collection starts now", channel)
    from flows.collect_channel import collect_channel

    first = collect_channel(channel=channel, return_state=True).result(raise_on_failure=False)
    if isinstance(first, dict) and first.get("status") == "ok":
        return Completed(message=f"Credentials stored; first collection filed {first['new']} document(s).", data=first)
    message = first.get("message") if isinstance(first, dict) else str(first)
    return Failed(message=f"Credentials stored, but the first collection failed: {message}", data=first)


def _send(session, invitation, label: str) -> None:
    from glaneur.notify import notify_user

    delivery = notify_user(
        session,
        invitation.invitee_user_id,
        kind="invitation",
        subject=f"[Glaneur] Credentials requested for {label}",
        body=(
            f"You are asked to enter the credentials of the supplier account collected by '{label}'.\n"
            f"Open the link, choose Resume, and fill in the form. The request expires on "
            f"{invitation.expires_at:%Y-%m-%d %H:%M} UTC."
        ),
        link=flow_run_link(invitation.flow_run_id),
    )
    invites.record_sent(session, invitation, delivered=delivery.delivered, error=delivery.error)


def _store(session, channel: str, answer: AccountCredentials, actor: User) -> None:
    """Into the vault: a new account, or new credentials for the same login."""
    password = answer.password.get_secret_value()
    seed = answer.totp_seed.get_secret_value() if answer.totp_seed else None
    found = admin.get_channel(session, channel)
    logins = {account.login for account in admin.channel_accounts(session, found)}
    if answer.login in logins:
        admin.update_credentials(session, found, answer.login, password=password, totp_seed=seed, actor=actor)
    else:
        admin.add_account(session, found, login=answer.login, password=password, totp_seed=seed, actor=actor)
