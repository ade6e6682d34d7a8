"""``glaneur bank``: the bank side ("Paramétrage POWENS"), in a terminal.

The same rules as the other command groups (thin commands, one red line for bad input, secrets from a
hidden prompt or stdin, changes made ``--as`` a user holding "Autoriser l'accès au paramétrage de
la comptabilité"); the plumbing is :mod:`cli.common`'s.

    glaneur bank add ORG "Banque Exemple"                       # the referential comes first
    glaneur bank connect ORG "Banque Exemple" --holder EMAIL --binder B --recipient EMAIL --login LOGIN
    glaneur bank invite ORG "Banque Exemple" --holder EMAIL --binder B --recipient EMAIL   # option 2
    glaneur bank run CHANNEL | show CHANNEL | revoke CHANNEL | resend-invitation CHANNEL
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import typer

from cli import common

if TYPE_CHECKING:
    from glaneur import bank
from glaneur.errors import GlaneurError, UsageError

bank_app = common.group("Banks (référentiel comptable) and their POWENS connections.")


def serve(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8707, "--port"),
) -> None:
    """Run the callback service POWENS talks to (webview return, webhooks, reconnect links). See web/callbacks.py."""
    from web.callbacks import serve as run

    run(host=host, port=port)


@bank_app.command("add")
def bank_add(org: str, name: str) -> None:
    """Add a bank to the organisation's referential (before any connection)."""
    from glaneur import bank

    with common.session() as session:
        found = bank.add_bank(session, org, name, actor=common.actor(session, org))
        common.say(f"Bank '{found.name}' added to the referential of {org}.")
    settings = bank.powens_settings()
    if not (settings.api_url and settings.client_id and settings.client_secret):
        common.say("Connect it with 'glaneur bank connect' (POWENS is not configured here: its list of banks "
                   "was not checked).", style="default")
        return
    from connectors.powens import powens_connectors

    try:
        problem = bank.connector_problem(found, bank.find_connector(found, powens_connectors(timeout=10)))
    except GlaneurError as error:
        common.say(f"POWENS could not be asked whether it can connect this bank ({error.user_message}): "
                   "'glaneur bank connect' checks it again.", style="yellow")
        return
    if problem:  # the referential keeps it (its accounting use does not need POWENS): said, not refused
        what, advice = problem
        common.say(f"{what} It stays in the referential, but 'glaneur bank connect' and 'bank invite' refuse it. "
                   f"{advice}", style="yellow")
    else:
        common.say("POWENS can connect it: 'glaneur bank connect' or 'glaneur bank invite'.", style="default")


def _connectable(found: bank.Bank) -> object:
    """The POWENS connector of the referential's ``found`` bank, when it accepts a new connection; else bad input
    (not listed, restricted, POWENS away), said before anything is recorded."""
    from glaneur import bank

    try:
        from connectors.powens import powens_connectors

        return bank.match_connector(found, powens_connectors())
    except GlaneurError as error:
        raise UsageError(str(error)) from None


@bank_app.command("list")
def bank_list(org: str) -> None:
    """The banks of the organisation's referential."""
    from glaneur import bank

    with common.session() as session:
        common.read_org(session, org)
        table = common.table(f"Banks of {org}", "bank", "added")
        for found in bank.list_banks(session, org):
            table.add_row(common.cell(found.name), common.when(found.created_at))
    common.out().print(table)


@bank_app.command("connect")
def bank_connect(
    org: str,
    bank_name: str = typer.Argument(..., metavar="BANK"),
    holder: str = typer.Option(..., "--holder", help="E-mail of the account holder whose consent is recorded."),
    binder: str = typer.Option(..., "--binder", help="Binder where the daily movement files land."),
    recipient: str = typer.Option(..., "--recipient", help="Recipient user of the movements."),
    login: str = typer.Option(..., "--login", help="The bank login (not secret); the password is asked."),
    label: str | None = typer.Option(None, "--label"),
    slug: str | None = typer.Option(None, "--slug"),
    holder_consents: bool | None = typer.Option(
        None, "--holder-consents/--holder-refuses",
        help="The holder's answer to the consent text (shown first); without it, asked interactively."),
    password_stdin: bool = typer.Option(False, "--password-stdin",
                                        help="Password on stdin's first line, the bank's codes on the next lines."),
    no_collect: bool = typer.Option(False, "--no-collect", help="Do not run the first collection now."),
) -> None:
    """Option 1: connect the bank with its credentials, through the POWENS webview driven for you."""

    def consents(text: str) -> bool:
        common.out().print(text, markup=False, highlight=False, soft_wrap=True)
        if holder_consents is None:
            return typer.confirm(f"Does the account holder {holder} give this consent?", default=False)
        return holder_consents

    ask_code = _ask_code_in_terminal(password_stdin)
    try:
        done = connect_with_credentials(
            org, bank_name, actor_email=common.acting_email(), holder=holder, binder=binder, recipient=recipient,
            login=login, password=lambda: _read_line(password_stdin, "Bank password"), holder_consents=consents,
            ask_code=ask_code, label=label, slug=slug)
    except WebviewFailed as failed:
        common.error_line(f"{failed.error.status.value}: {failed.error.user_message} "
                          "Nothing was stored but the consent record.")
        raise typer.Exit(common.FAILED_EXIT) from None
    if done is None:
        common.error_line(f"The holder {holder} refused the consent (recorded): nothing was connected.")
        raise typer.Exit(common.FAILED_EXIT)
    common.say(f"Connected: channel {done.channel} (POWENS connection {done.connection_id}). {done.message}")
    if not no_collect:
        from flows.collect_bank_movements import run_bank_channel

        summary = run_bank_channel(done.channel)
        common.say(f"First collection: {summary['status']}: {summary['message']}", style="default")


@dataclass(frozen=True)
class Connected:
    channel: str  # the new bank channel's slug
    connection_id: int  # POWENS' connection id
    message: str  # the channel's status message (when the first movements are expected)


class WebviewFailed(Exception):
    """The POWENS page did not connect (wrong password, code, bank down...): only the consent record was stored."""

    def __init__(self, error: GlaneurError) -> None:
        super().__init__(error.user_message)
        self.error = error


def connect_with_credentials(
    org: str, bank_name: str, *, actor_email: str, holder: str, binder: str, recipient: str, login: str,
    password: Callable[[], str], holder_consents: Callable[[str], bool], ask_code: Callable[[str], str],
    label: str | None = None, slug: str | None = None,
) -> Connected | None:
    """Option 1 from start to end, for ``bank connect`` and the demo: the checks (right, referential, POWENS list),
    the holder's answer to the consent text (recorded either way; None when refused), then the webview driven in
    Chromium with the credentials, and the channel with its connection. ``password`` is asked only once the holder
    consented; ``ask_code`` answers the bank's second factor. Bad input raises :class:`UsageError`; a webview that
    did not connect raises :class:`WebviewFailed`.
    """
    from glaneur import admin, bank

    settings = bank.powens_settings()
    api_url, client_id, client_secret = settings.require()
    from connectors.powens import PowensClient

    with common.session() as session:
        new = bank.check_new_connection(session, org, bank_name, binder=binder, recipient=recipient,
                                        actor=admin.get_actor(session, org, actor_email), label=label, slug=slug)
        text = bank.consent_text(new.org, new.bank)
    connector = _connectable(new.bank)
    with PowensClient(api_url, client_id=client_id, client_secret=client_secret) as client:
        given = holder_consents(text)
        with common.session() as session:
            consent = bank.record_consent(session, org, new.bank, holder_email=holder, given=given,
                                          actor=admin.get_actor(session, org, actor_email), text=text)
        if not given:
            return None
        secret = password()
        if not secret:
            raise UsageError("bank password is empty.")
        try:
            token, powens_user = client.init_user()
            code = client.temporary_code()
            outcome = _drive_webview(client, settings, code, new.bank.name, login, secret, ask_code)
        except GlaneurError as error:
            _delete_new_user(client)
            raise WebviewFailed(error) from None
        finally:
            del secret
    with common.session() as session:
        session.add(consent)
        channel, _ = bank.create_connection(
            session, new, consent=consent, powens_user_id=powens_user, token=token,
            powens_connection_id=outcome.connection_id, powens_connector_id=connector.id, settings=settings)
        return Connected(channel.slug, outcome.connection_id, channel.status_message)


@bank_app.command("invite")
def bank_invite(
    org: str,
    bank_name: str = typer.Argument(..., metavar="BANK"),
    holder: str = typer.Option(..., "--holder", metavar="EMAIL",
                               help="The account holder, a user of the organisation: they consent and connect."),
    binder: str = typer.Option(..., "--binder", help="Binder where the daily movement files land."),
    recipient: str = typer.Option(..., "--recipient", help="Recipient user of the movements."),
    label: str | None = typer.Option(None, "--label"),
    slug: str | None = typer.Option(None, "--slug"),
) -> None:
    """Option 2: send the connection request to the account holder (mail, bell, the link to the POWENS page).

    The bank channel is created now; its request is a Prefect run that waits, suspended (no process
    held), until the holder connects; it needs the deployments, a worker and 'glaneur serve'.
    """
    from flows.request_bank_connection import DEPLOYMENT
    from glaneur import admin, bank

    bank.powens_settings().require()
    with common.session() as session:
        new = bank.check_new_connection(session, org, bank_name, binder=binder, recipient=recipient,
                                        actor=common.actor(session, org), label=label, slug=slug)
        person = admin.get_person(session, holder, new.org)
    connector = _connectable(new.bank)
    lookup = common.require_deployment(DEPLOYMENT, nothing="nothing was created or sent.",
                                       what="Bank connection requests", then=" and 'glaneur serve'")
    with common.session() as session:
        new = bank.check_new_connection(session, org, bank_name, binder=binder, recipient=recipient,
                                        actor=common.actor(session, org), label=label, slug=slug)
        channel, _ = bank.create_invited_channel(session, new, holder=admin.get_person(session, holder, new.org),
                                                 powens_connector_id=connector.id)
        created = channel.slug
    from prefect.deployments import run_deployment

    run = run_deployment(DEPLOYMENT, parameters={"channel": created, "invitee": person.email}, timeout=0)
    common.say(f"Channel {created} created; request run {run.name}: {person.email} receives a mail and a "
               "notification with the link to the consent and the POWENS page.")
    if lookup.workers_online == 0:
        common.say("No worker is online in its work pool: the mail goes out once one starts.", style="yellow")


def _acting_on(session, channel: str) -> tuple[bank.Channel, bank.BankConnection, bank.Organization]:
    """The bank channel, its connection and its organisation, once the acting user (--as) is known to hold the
    accounting right."""
    from glaneur import bank

    found, connection = bank.get_connection(session, channel)
    org = bank.admin.organization_of(session, found)
    bank.admin.require_right(common.actor(session, org), org, bank.RIGHT)
    return found, connection, org


@bank_app.command("resend-invitation")
def bank_resend_invitation(channel: str) -> None:
    """Send the holder's pending connection request again (same link, same expiry)."""
    from cli.channels import _check_invitation_run_waits
    from flows.request_bank_connection import send
    from glaneur import bank
    from glaneur.invoices import invitations

    with common.session() as session:
        found, _, _ = _acting_on(session, channel)
        waiting = [i for i in invitations.pending_for(session, found.id) if i.state in invitations.WAITING]
        if not waiting:
            raise UsageError(f"bank channel '{found.slug}' has no pending request: send one with 'glaneur bank invite'.")
        invitation = waiting[0]
        if not invitations.is_open(invitation):
            invitations.expire(session, invitation)
            session.commit()
            raise UsageError("the request has expired: send a new one with 'glaneur bank invite'.")
        _check_invitation_run_waits(invitation.flow_run_id)
        delivered = send(session, invitation)
        session.commit()
        email, count, error = invitation.email, invitation.sent_count, invitation.delivery_error
    if not delivered:
        common.error_line(f"the request could not be delivered to {email}: {error}")
        raise typer.Exit(common.FAILED_EXIT)
    common.say(f"Request sent again to {email} ({count} sent).")


def _read_line(from_stdin: bool, prompt: str) -> str:
    if from_stdin:
        value = sys.stdin.readline().rstrip("\r\n")
    else:
        value = typer.prompt(prompt, hide_input=True)
    if not value:
        raise UsageError(f"{prompt.lower()} is empty.")
    return value


def _delete_new_user(client) -> None:
    """The Powens user a failed connection created is deleted again, with any connection it got (one in
    ``wrongpass`` keeps the bank login at Powens): "nothing stored but the consent record" holds there too."""
    try:
        client.delete_user()
    except GlaneurError as error:  # no user was created, or Powens is down: said, not raised
        common.error_line(f"The POWENS user of this failed connection could not be deleted ({error}).")


def _drive_webview(client, settings: bank.PowensSettings, code: str, bank_name: str, login: str, password: str,
                   ask_code: Callable[[str], str], connection_id: int | None = None):
    from connectors.powens import webview_url
    from connectors.powens_webview import drive
    from glaneur.settings import get_settings
    from tasks.browser import launch_browser

    flow = "connect" if connection_id is None else "reconnect"
    url = webview_url(settings.webview_url, flow, domain=client.domain, client_id=client.client_id,
                      redirect_uri=settings.redirect_uri, code=code, connection_id=connection_id)
    with launch_browser(get_settings()) as browser:
        context = browser.new_context()
        try:
            return drive(context.new_page(), url, redirect_uri=settings.redirect_uri, bank_name=bank_name, login=login,
                         password=password, ask_code=ask_code, decoupled_timeout=settings.webview_timeout_seconds)
        finally:
            context.close()


def _ask_code_in_terminal(from_stdin: bool) -> Callable[[str], str]:
    def ask_code(prompt: str) -> str:
        common.say(f"The bank asks: {prompt}", style="yellow")
        return _read_line(from_stdin, "Code")

    return ask_code


@bank_app.command("reconnect")
def bank_reconnect(
    channel: str,
    login: str = typer.Option(..., "--login", help="The bank login; the password is asked."),
    password_stdin: bool = typer.Option(False, "--password-stdin",
                                        help="Password on stdin's first line, the bank's codes on the next lines."),
    no_collect: bool = typer.Option(False, "--no-collect", help="Do not collect now."),
) -> None:
    """Answer the bank's second factor (SCARequired, decoupled...) or a new password: the POWENS reconnect page."""
    from connectors.powens import PowensClient
    from glaneur import bank

    settings = bank.powens_settings()
    api_url, client_id, _ = settings.require()
    with common.session() as session:
        _, connection, org = _acting_on(session, channel)
        token = bank.read_token(session, connection)
        powens_id, bank_name = connection.powens_connection_id, session.get(bank.Bank, connection.bank_id).name
    password = _read_line(password_stdin, "Bank password")
    try:
        with PowensClient(api_url, client_id=client_id, token=token) as client:
            code = client.temporary_code()
            _drive_webview(client, settings, code, bank_name, login, password, _ask_code_in_terminal(password_stdin),
                           connection_id=powens_id)
    except GlaneurError as error:
        common.error_line(f"{error.status.value}: {error.user_message}")
        raise typer.Exit(common.FAILED_EXIT) from None
    finally:
        del password
    with common.session() as session:
        found, _ = bank.get_connection(session, channel)
        bank.admin.audit_log_entry(session, bank.admin.organization_of(session, found), common.actor(session, org),
                                   "bank.reconnect", channel)
    common.say(f"Reconnected: {channel}.")
    if not no_collect:
        from flows.collect_bank_movements import run_bank_channel

        summary = run_bank_channel(channel)
        common.say(f"Collection: {summary['status']}: {summary['message']}", style="default")


@bank_app.command("run")
def bank_run(channel: str) -> None:
    """Collect the bank channel's movements now (else daily); acts as a user holding the accounting right (--as)."""
    from glaneur import bank

    with common.session() as session:
        _acting_on(session, channel)
    from flows.collect_bank_movements import run_bank_channel

    summary = run_bank_channel(channel)
    common.out().print(common.status_and_message(summary["status"], summary["message"]))
    if summary["status"] not in ("ok", "new"):
        raise typer.Exit(common.FAILED_EXIT)


@bank_app.command("show")
def bank_show(channel: str) -> None:
    """The connection, the holder's consent, the accounts: what support checks first."""
    from glaneur import bank

    with common.session() as session:
        found, connection = bank.get_connection(session, common.read_channel(session, channel), deleted_ok=True)
        consent = bank.consent_of(session, connection)
        out = common.out()
        out.print(common.status_and_message(found.status, found.status_message))
        out.print(f"POWENS connection: {connection.powens_connection_id or '-'}, state: {connection.state or 'synced'}"
                  f"{' (' + connection.error_message + ')' if connection.error_message else ''}", markup=False)
        if consent is None:
            out.print("Consent: none recorded", markup=False)
        else:
            revoked = f", revoked {common.when(consent.revoked_at)}" if consent.revoked_at else ""
            out.print(f"Consent: {consent.state} by {consent.holder} on {common.when(consent.given_at)} "
                      f"(recorded by {consent.recorded_by}, text sha256 {consent.text_sha256[:12]}{revoked})",
                      markup=False)
        common.print_rows(
            "Accounts",
            ("account", "iban", "balance", "movements"),
            [
                (account.name, account.iban or "-", account.balance or "-", len(bank.movements(session, account)))
                for account in bank.connection_accounts(session, connection)
            ],
        )


@bank_app.command("revoke")
def bank_revoke(channel: str, yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation.")) -> None:
    """The holder withdraws consent: the connection is deleted at POWENS and the token purged.

    Act (--as) as the holder who gave the consent, or as a user holding configure_accounting.
    """
    from connectors.powens import PowensApiError, PowensClient
    from glaneur import bank

    common.confirm_or_stop(yes, f"Delete the POWENS connection of {channel} and purge its access?", "Nothing revoked.")
    api_url, client_id, _ = bank.powens_settings().require()
    with common.session() as session:
        found, connection = bank.get_connection(session, channel)
        org = bank.admin.organization_of(session, found)
        bank.check_revoker(session, found, common.actor(session, org))  # refused before anything is deleted
        token = bank.read_token(session, connection) if connection.token_ref else None
        powens_id = connection.powens_connection_id
    if token and powens_id:
        try:
            with PowensClient(api_url, client_id=client_id, token=token) as client:
                client.delete_connection(powens_id)
        except (PowensApiError, GlaneurError) as error:
            if getattr(error, "http_status", None) not in (401, 403):  # a revoked token: nothing left there
                raise UsageError(f"POWENS did not delete the connection ({error}); nothing was changed: try again.")
    with common.session() as session:
        found, _ = bank.get_connection(session, channel)
        bank.revoke_consent(session, channel, actor=common.actor(session, bank.admin.organization_of(session, found)))
    common.say(f"Consent revoked: the POWENS connection of {channel} was deleted and its access purged. "
              "Movements already filed are kept (accounting records).")
