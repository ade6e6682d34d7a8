"""Option 2 of the POWENS page: send the connection request to the account holder ("Envoyer la requête de
connexion à un utilisateur").

The holder gets a mail and a bell notification with a signed link to ``glaneur serve``: there they read
the consent text (with the GDPR warning) and accept it, then the POWENS webview lets them choose their
bank and type their credentials. The run meanwhile is **suspended** on its deployment (the worker
process exits, so days of waiting hold nothing). When the webview sends the holder back,
``glaneur serve`` records the connection in the database, then resumes this run with the connection id;
the worker starts it again from the top, the invitation row says it was answered, and the first
collection runs (its status says when the first movements are expected).

Expiry and resend are the supplier invitations' (:mod:`flows.request_credentials`): the same
invitation rows, the same expiry run scheduled on the same deployment (``expiry_of``), the same
``is_open`` rule; only the link differs (``glaneur serve``, not a form in Prefect's UI: the holder's
bank credentials are typed in the POWENS page and never pass through Glaneur or Prefect).
"""

from __future__ import annotations

from datetime import timedelta

from prefect import flow, get_run_logger, runtime
from prefect.flow_runs import suspend_flow_run
from prefect.input import RunInput
from prefect.states import Completed, Failed, State

from flows.request_credentials import _expire, _schedule_expiry
from glaneur import bank
from glaneur.db import require_current_schema, session_scope
from glaneur.invoices import invitations as invites
from glaneur.models import Bank, Channel, Invitation, InvitationState, Organization
from glaneur.settings import get_settings
from glaneur.statuses import Status, describe
from tasks.history import md_escape
from tasks.human import delete_run_inputs
from tasks.lifecycle import RunFailed, run_in_process

DEPLOYMENT = "request-bank-connection/request-bank-connection"


class BankConnected(RunInput):
    """What ``glaneur serve`` resumes the run with once the webview came back (not a secret)."""

    connection_id: int


def _run_name() -> str:
    parameters = runtime.flow_run.parameters
    prefix = "bank-invitation-expiry" if parameters.get("expiry_of") else "bank-invitation"
    return f"{prefix}-{parameters['channel']}"


@flow(name="request-bank-connection", flow_run_name=_run_name)
def request_bank_connection(channel: str, invitee: str, expiry_of: str | None = None) -> State:
    """Invite ``invitee`` (the account holder) to connect the bank of ``channel``; with ``expiry_of``, expire it."""
    require_current_schema()  # migrations run at start-up and deploy time, not per flow run
    if expiry_of:
        return _expire(expiry_of)
    flow_run_id = str(runtime.flow_run.id)
    logger = get_run_logger()
    with session_scope() as session:
        invitation = invites.for_run(session, flow_run_id)
        if invitation is None:  # first execution; raises for a deleted channel or an unknown invitee
            invitation = invites.open_invitation(
                session, channel, invitee, flow_run_id=flow_run_id,
                ttl=timedelta(hours=get_settings().invitation_ttl_hours))
        found = session.get(Channel, invitation.channel_id)
        if found.deleted_at is not None or not found.active:
            invites.mark(session, invitation, InvitationState.CANCELLED)
            return Failed(name="Cancelled", message=f"The channel '{channel}' was deleted: this invitation is void.")
        answered = invitation.state == InvitationState.ANSWERED
        if not answered and not invites.is_open(invitation):
            invites.expire(session, invitation)
            return Failed(name="Expired", message=f"The invitation to {invitation.email} expired on "
                          f"{invitation.expires_at:%Y-%m-%d %H:%M} UTC: send a new one with 'glaneur bank invite'.")
        first = invitation.sent_count == 0
        if first:
            send(session, invitation)
        invitation_id, timeout = invitation.id, invites.seconds_left(invitation)
        key = f"bank-invitation-{invitation_id}" + (
            f"-{invitation.refused_answers + 1}" if invitation.refused_answers else "")
        description = _description(session, found, invitation)
    if not answered:
        if first:
            _schedule_expiry(channel, invitee, flow_run_id, timeout)
        answer = suspend_flow_run(wait_for_input=BankConnected.with_initial_data(description=description),
                                  timeout=timeout, key=key)
        with session_scope() as session:  # only what glaneur serve recorded counts, not a hand-made resume
            invitation = session.get(Invitation, invitation_id)
            _, connection = bank.get_connection(session, channel)
            if invitation.state != InvitationState.ANSWERED or connection.powens_connection_id != answer.connection_id:
                invitation.refused_answers += 1
                session.add(invitation)
                logger.warning("Resumed without a connection recorded by glaneur serve; waiting again")
                delete_run_inputs(flow_run_id, "suspended-")
                return request_bank_connection.fn(channel, invitee)
    delete_run_inputs(flow_run_id, "suspended-")
    logger.info("The holder connected the bank of %s; first collection starts now", channel)
    from flows.collect_bank_movements import collect_bank_movements

    try:
        first_run = run_in_process(collect_bank_movements, channel=channel)
    except Exception as error:  # the first collection's own run has the details; never shown raw here
        first_run = {"status": Status.INTERNAL_ERROR.value,
                     "message": f"{describe(Status.INTERNAL_ERROR).message} ({type(error).__name__})"}
    if first_run.get("status") in ("ok", "new"):
        return Completed(message=f"Connected by the holder. {first_run['message']}", data=first_run)
    message = f"Connected by the holder, but the first collection failed: {first_run.get('message')}"
    return Failed(message=message, data=RunFailed(message, first_run))


def invitation_link(invitation: Invitation) -> str:
    from glaneur.signing import invitation_link as link

    return link(bank.powens_settings(), invitation.id, invitation.expires_at)


def send(session, invitation: Invitation) -> bool:
    """The holder's mail and bell entry, with the signed link (the same link on every resend)."""
    from glaneur.notify import notify_user

    channel = session.get(Channel, invitation.channel_id)
    org = session.get(Organization, channel.organization_id)
    _, connection = bank.get_connection(session, channel)
    found = session.get(Bank, connection.bank_id)
    delivery = notify_user(
        session, invitation.invitee_user_id, kind="bank_invitation",
        subject=f"[Glaneur] {org.name} vous demande de connecter votre banque ({found.name})",
        body=(f"{org.name} vous demande d'autoriser la récupération automatique des mouvements de vos comptes à "
              f"« {found.name} », par l'intermédiaire de POWENS.\n"
              "Ouvrez le lien : lisez le texte de consentement, acceptez-le, puis choisissez votre banque et saisissez "
              "vos identifiants sur la page POWENS (Glaneur ne les voit jamais).\n"
              f"La demande expire le {_aware(invitation.expires_at):%Y-%m-%d %H:%M} UTC."),
        link=invitation_link(invitation),
    )
    invites.record_sent(session, invitation, delivered=delivery.delivered, error=delivery.error)
    return delivery.delivered


def _description(session, channel: Channel, invitation: Invitation) -> str:
    return (f"**Waiting for {md_escape(invitation.email)}** to consent and connect the bank of "
            f"**{md_escape(channel.label)}** ({md_escape(channel.slug)}) through the POWENS page. "
            "This run resumes by itself when the holder finishes (glaneur serve); there is nothing to type here.")


def _aware(moment):
    from datetime import UTC

    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
