"""Invite the account holder to enter the credentials ("envoyez la demande à un utilisateur").

The run mails the invitee a link to itself in the Prefect UI, then suspends (the worker process
exits, so days of waiting hold nothing). When the invitee submits the form, the worker starts the
run again **from the top**: the invitation row in the database says what was done already. The
secrets go straight to the vault, Prefect's copy of the input is deleted whatever happens next
(deleted channel, refused answer, vault error, crash), and the first collection starts at once
(it checks the credentials by logging in) the way the CLI starts it (:mod:`flows.activation`).

Expiry: Prefect fails a suspended run itself when its timeout passes, and no code of the run
runs then. So the first execution also schedules, on the same deployment, a run of this flow at
the expiry time (``expiry_of``): it marks the invitation expired and tells the channel's owner.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from prefect import flow, get_run_logger, runtime
from prefect.exceptions import Pause
from prefect.flow_runs import suspend_flow_run
from prefect.input import RunInput
from prefect.states import Completed, Failed, State
from pydantic import Field, SecretStr, WithJsonSchema

from connectors.catalog import get_provider, portal_url, release_remembered
from glaneur import admin
from glaneur.db import require_current_schema, session_scope
from glaneur.errors import GlaneurError, UsageError
from glaneur.invoices import collection
from glaneur.invoices import invitations as invites
from glaneur.models import Channel, Invitation, InvitationState, User
from glaneur.settings import get_settings
from tasks.history import md_escape
from tasks.human import delete_inputs, delete_run_inputs

EXPIRY_GRACE_SECONDS = 10  # the expiry run starts after Prefect has failed the suspended run (it checks every 5 s)
# Prefect's UI masks a string field whose schema says ``format: password`` (an <input type=password>).
MASKED = {"type": "string", "format": "password", "writeOnly": True}


def _no_default(schema: dict) -> None:
    schema.pop("default", None)  # an optional field, blank in the form (no "None" switch, no "null")


class AccountCredentials(RunInput):
    """What the account holder types: their login at the supplier, password, optional TOTP seed."""

    login: str = Field(min_length=1, max_length=200, description="Login (identifiant or e-mail) on the supplier's portal")
    password: SecretStr = Field(min_length=1, description="Password on the supplier's portal")
    totp_seed: Annotated[SecretStr | None, WithJsonSchema(MASKED)] = Field(
        default=None,
        title="Authenticator (TOTP) secret, optional",
        description="Optional: the authenticator (TOTP) secret the portal showed, so codes are typed automatically. "
        "Leave empty if you do not have it.",
        json_schema_extra=_no_default,
    )


def _run_name() -> str:
    parameters = runtime.flow_run.parameters
    prefix = "invitation-expiry" if parameters.get("expiry_of") else "invitation"
    return f"{prefix}-{parameters['channel']}"


def _forget_answers(flow, flow_run, state) -> None:
    """on_crashed: the process is going down; Prefect's copy of the answer must not outlive it."""
    delete_run_inputs(str(flow_run.id), "suspended-")


@flow(name="request-credentials", flow_run_name=_run_name, on_crashed=[_forget_answers])
def request_credentials(channel: str, invitee: str, expiry_of: str | None = None) -> State:
    """Invite ``invitee`` to enter the credentials of ``channel``; with ``expiry_of``, expire that invitation run."""
    require_current_schema()  # migrations run at start-up and deploy time, not per flow run
    if expiry_of:
        return _expire(expiry_of)
    flow_run_id = str(runtime.flow_run.id)
    suspended = False
    try:
        return _invite(channel, invitee, flow_run_id)
    except Pause:
        suspended = True  # the form waits: its description and schema must stay
        raise
    finally:
        if not suspended:  # answered, refused, failed or crashed: nothing the holder typed stays in Prefect
            delete_run_inputs(flow_run_id, "suspended-")


def _invite(channel: str, invitee: str, flow_run_id: str) -> State:
    settings = get_settings()
    logger = get_run_logger()
    with session_scope() as session:
        invitation = invites.for_run(session, flow_run_id)
        if invitation is None:  # first execution; raises for a deleted channel or an unknown invitee
            invitation = invites.open_invitation(
                session, channel, invitee, flow_run_id=flow_run_id, ttl=timedelta(hours=settings.invitation_ttl_hours)
            )
        found = session.get(Channel, invitation.channel_id)
        if found.deleted_at is not None or not found.active:
            invites.mark(session, invitation, InvitationState.CANCELLED)
            return Failed(name="Cancelled", message=f"The channel '{channel}' was deleted: this invitation is void.")
        if not invites.is_open(invitation):  # e.g. Retry in the UI on a run Prefect failed at expiry
            return _ended(session, invitation)
        first = invitation.sent_count == 0  # a resumed run starts again from the top
        if first:
            _send(session, invitation, found)
        invitation_id, timeout, refusal = invitation.id, invites.seconds_left(invitation), invitation.refusal
        key = invites.form_key(invitation)
        description = _form_description(found, refusal)
    if first:
        _schedule_expiry(channel, invitee, flow_run_id, timeout)
    answer = suspend_flow_run(
        wait_for_input=AccountCredentials.with_initial_data(description=description), timeout=timeout, key=key
    )
    delete_inputs(f"suspended-{key}", flow_run_id)  # read once: Prefect's copy goes at once
    try:
        with session_scope() as session:
            seed = admin.check_answer(session, channel, answer.login,
                                      answer.totp_seed.get_secret_value() if answer.totp_seed else "")
    except UsageError as error:  # the form cannot say it: ask again, saying why
        with session_scope() as session:
            invitation = session.get(Invitation, invitation_id)
            invitation.refused_answers += 1
            invitation.refusal = str(error)
            session.add(invitation)
        logger.warning("The answer to invitation %s was refused (%s); asking again", invitation_id, error)
        return _invite(channel, invitee, flow_run_id)
    with session_scope() as session:
        invitation = session.get(Invitation, invitation_id)
        # The invitation is the authorisation: the owner who sent it delegated this one entry.
        _store(session, channel, answer, seed, collection.channel_owner(session, invitation.channel_id))
        invitation.refusal = ""
        invites.mark(session, invitation, InvitationState.ANSWERED)
    logger.info("Credentials received for %s; first collection starts now", channel)
    # The one way a first collection starts (as from the CLI): on the collect-channel deployment when the
    # server has it, its own flow run that a worker picks up; else here, and the line says so.
    from flows.activation import start_first_collection

    line = start_first_collection(channel)
    logger.info("%s", line)
    return Completed(message=f"Credentials stored. {line}")


def _ended(session, invitation: Invitation) -> State:
    """The state of a run whose invitation is no longer open."""
    if invitation.state in invites.WAITING or invitation.state == InvitationState.EXPIRED:
        invites.expire(session, invitation)
        return Failed(
            name="Expired",
            message=f"The invitation to {invitation.email} expired on {invitation.expires_at:%Y-%m-%d %H:%M} UTC "
            f"without an answer; send a new one with 'glaneur channel invite'.",
        )
    return Failed(name=invitation.state.value.capitalize(),
                  message=f"This invitation is {invitation.state.value}: send a new one with 'glaneur channel invite'.")


def _form_description(channel: Channel, refusal: str) -> str:
    provider = get_provider(channel.provider)
    parts = [
        f"**Credentials requested** for the collector **{md_escape(channel.label)}** ({md_escape(channel.slug)}): "
        f"your customer area at **{md_escape(provider.name)}**, {_code(portal_url(channel.provider, channel.portal_url))}.",
        "Enter the login and password of that customer area. They are encrypted in Glaneur's vault at once and "
        "removed from this form's record.",
    ]
    if refusal:
        parts.insert(0, f"**Your previous answer was not saved:** {md_escape(refusal)} Please submit the form again.")
    return "\n\n".join(parts)


def _code(text: str) -> str:
    """A Markdown code span: shown as typed (an address with its dots), never a link or markup."""
    return "`" + " ".join(text.replace("`", "").split()) + "`"


def _send(session, invitation: Invitation, channel: Channel) -> None:
    from glaneur.notify import notify_user
    from glaneur.signing import credentials_link

    subject, body = invites.invitation_mail(invitation, channel, get_provider(channel.provider).name,
                                            portal_url(channel.provider, channel.portal_url))
    delivery = notify_user(session, invitation.invitee_user_id, kind="invitation", subject=subject, body=body,
                           link=credentials_link(get_settings(), invitation.id, invitation.expires_at))
    invites.record_sent(session, invitation, delivered=delivery.delivered, error=delivery.error)
    get_run_logger().info("Invitation mailed to %s (%s); data ops may also answer it on this run's page",
                          invitation.email, "delivered" if delivery.delivered else f"not delivered: {delivery.error}")


def _schedule_expiry(channel: str, invitee: str, flow_run_id: str, timeout: int) -> None:
    """A run of this deployment at the expiry time: the only code that runs when Prefect fails the suspended run."""
    from datetime import UTC, datetime

    from prefect.client.orchestration import get_client
    from prefect.states import Scheduled

    deployment_id = runtime.deployment.id
    if not deployment_id:  # started without a deployment: suspend_flow_run refuses anyway
        return
    when = datetime.now(UTC) + timedelta(seconds=timeout + EXPIRY_GRACE_SECONDS)
    with get_client(sync_client=True) as client:
        client.create_flow_run_from_deployment(
            deployment_id,
            parameters={"channel": channel, "invitee": invitee, "expiry_of": flow_run_id},
            state=Scheduled(scheduled_time=when),
            tags=["invitation-expiry"],
            idempotency_key=f"invitation-expiry-{flow_run_id}",
        )


def _expire(flow_run_id: str) -> State:
    """The expiry run: mark the invitation expired, tell the owner, and end the invitation run if still waiting."""
    from prefect.client.orchestration import get_client
    from prefect.states import Failed as FailedState

    with session_scope() as session:
        invitation = invites.for_run(session, flow_run_id)
        if invitation is None or invitation.state not in (*invites.WAITING, InvitationState.EXPIRED):
            return Completed(message="The invitation was answered or cancelled: nothing to expire.")
        if not invites.is_overdue(invitation):
            return Completed(message="The invitation has not expired yet.")
        told = invites.expire(session, invitation)
        email, expires_at = invitation.email, invitation.expires_at
    message = f"The invitation to {email} expired on {expires_at:%Y-%m-%d %H:%M} UTC without an answer."
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run_id)
        if run.state.name != "Expired":  # still suspended, or failed by Prefect with only "never resumed"
            client.set_flow_run_state(flow_run_id, FailedState(name="Expired", message=message), force=True)
    delete_run_inputs(flow_run_id, "suspended-")
    return Completed(message=message + (" The channel's owner was told." if told else ""))


def _release_remembered(session, channel: str, login: str) -> None:
    """The account's remembered POWENS connection, dropped with its old credentials, is deleted at Powens too; a
    failure there never loses the holder's answer: it is logged, for data ops to delete it in POWENS's console."""
    try:
        unreadable = release_remembered(session, channel, [login])
    except GlaneurError as error:
        get_run_logger().warning("POWENS did not delete the connection it keeps for %s (%s)", login, error.user_message)
        unreadable = [login]
    if unreadable:
        get_run_logger().warning("The remembered POWENS connection of %s was not deleted at POWENS: delete it in "
                                 "POWENS's console", login)


def _store(session, channel: str, answer: AccountCredentials, seed: str | None, actor: User) -> None:
    """Into the vault: a new account, or new credentials for the same login."""
    password = answer.password.get_secret_value()
    login = answer.login.strip()
    found = admin.get_channel(session, channel)
    known = admin.account_answered(session, found, login)
    if known is not None:  # "Compta@x.fr" for "compta@x.fr": the same account, its login as the holder typed it
        _release_remembered(session, channel, known)
        admin.update_credentials(session, found, known, password=password, totp_seed=seed, new_login=login, actor=actor)
    else:
        admin.add_account(session, found, login=login, password=password, totp_seed=seed, actor=actor)
