"""The ``glaneur`` command: administration, collection runs and the history, in a terminal.

Commands are thin: parse, call :mod:`glaneur.admin`, render with Rich. Bad input surfaces as a
:class:`~glaneur.errors.UsageError`, caught in one place (:class:`_Root`) and printed as one red
``Error: ...`` line on stderr, exit code 2, no traceback.

Secrets are never command-line options (they would land in shell history and ``ps``): they come
from a hidden prompt, or from stdin with ``--password-stdin`` (password on the first line, TOTP
seed on the second).

Commands that change an organisation's data act as a known user: ``glaneur --as EMAIL ...``, else
the setting ``GLANEUR_ACTING_USER``. The acting user must belong to the organisation concerned and
hold the right the change needs (see :mod:`glaneur.admin`). Platform commands (``org create``,
``connector-request ship`` and ``sync``, ``vault``) and reading commands need no acting user.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy.engine import make_url
from sqlmodel import Session
from typer.core import TyperGroup

from glaneur import admin, db
from glaneur.errors import GlaneurError, UsageError
from glaneur.models import MAX_ACCOUNTS_PER_CHANNEL, FirmRole, Organization, Right, User
from glaneur.settings import get_settings
from glaneur.statuses import Status

USAGE_EXIT = 2  # bad input, as Click's own usage errors
FAILED_EXIT = 1  # a collection that did not end ok


class _Root(TyperGroup):
    """The one place where a person's mistake becomes a red line instead of a traceback."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as error:
            _error(str(error))
            raise typer.Exit(USAGE_EXIT) from None


app = typer.Typer(
    cls=_Root,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # a crash must never print the password held in a local variable
    help="Glaneur: collects supplier invoices from customer portals and routes bank statements per IBAN, every day.",
)
org_app = typer.Typer(no_args_is_help=True, help="Organisations (companies, accounting firms).")
user_app = typer.Typer(no_args_is_help=True, help="Users of an organisation.")
binder_app = typer.Typer(no_args_is_help=True, help="Binders (classeurs), where documents land.")
channel_app = typer.Typer(no_args_is_help=True, help="Collection channels (collecteurs) and their accounts.")
vault_app = typer.Typer(no_args_is_help=True, help="The vault holding passwords and TOTP seeds.")
request_app = typer.Typer(
    no_args_is_help=True, help="Requests for new collectors (Demander l'ajout d'un collecteur)."
)
notifications_app = typer.Typer(no_args_is_help=True, help="The acting user's notifications (the bell).")
app.add_typer(org_app, name="org")
app.add_typer(user_app, name="user")
app.add_typer(binder_app, name="binder")
app.add_typer(channel_app, name="channel")
app.add_typer(request_app, name="connector-request")
app.add_typer(notifications_app, name="notifications")
app.add_typer(vault_app, name="vault")


# The root command's --as, for the commands of this invocation (set on every invocation).
_acting_user: ContextVar[str | None] = ContextVar("acting_user", default=None)


@app.callback()
def root(
    acting_user: str | None = typer.Option(
        None,
        "--as",
        metavar="EMAIL",
        help="Act as this user (default: the setting GLANEUR_ACTING_USER). Changes are refused unless the user "
        "belongs to the organisation concerned and holds the right they need; the audit log records them.",
    ),
) -> None:
    """Glaneur: collects supplier invoices from customer portals and routes bank statements per IBAN, every day."""
    _acting_user.set(acting_user)


# -- plumbing ------------------------------------------------------------------------------------

_migrated: set[str] = set()


def _ensure_schema() -> None:
    """Migrate once per process and database: every command can run on a fresh machine."""
    url = get_settings().resolved_database_url
    if url not in _migrated:
        db.migrate()
        _migrated.add(url)


@contextmanager
def _session() -> Iterator[Session]:
    _ensure_schema()
    with db.session_scope() as session:
        yield session


def _out() -> Console:
    # Built per call: Rich reads the terminal width (COLUMNS) when a console is created.
    return Console(highlight=False)


def _error(message: str) -> None:
    Console(stderr=True, highlight=False).print(f"Error: {message}", style="red", markup=False, soft_wrap=True)


def _say(message: str, style: str = "green") -> None:
    _out().print(message, style=style, markup=False, soft_wrap=True)


STATUS_STYLES = {
    Status.OK: "green",
    Status.NEW: "cyan",
    Status.AWAITING_CREDENTIALS: "yellow",
    Status.AWAITING_SECOND_FACTOR: "yellow",
    Status.PORTAL_UNAVAILABLE: "yellow",
    Status.RATE_LIMITED: "yellow",
}


def _status(value: Status | str) -> Text:
    try:
        status = Status(value)
    except ValueError:  # a summary from a newer flow: show it as it came
        return Text(str(value), style="red")
    return Text(status.value, style=STATUS_STYLES.get(status, "red"))


def _cell(value: object) -> Text:
    """User data never goes through Rich markup: a label like '[bold]' stays a label."""
    return value if isinstance(value, Text) else Text("" if value is None else str(value))


def _table(title: str, *columns: str) -> Table:
    """Narrow terminals fold long words rather than cut them with '…': slugs and statuses are copied."""
    table = Table(title=title)
    for name in columns:
        table.add_column(name, overflow="fold")
    return table


def _status_and_message(status: Status | str, message: str) -> Text:
    """The status, and under it what to do: one cell, so that the advice gets the width it needs."""
    text = _status(status)
    if message:
        text.append("\n" + message, style="default")
    return text


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


def _acting_email() -> str:
    email = _acting_user.get() or get_settings().acting_user
    if not email or not email.strip():
        raise UsageError(
            "this command changes data, so it must act as a known user: put --as EMAIL before the command "
            "(glaneur --as you@example.com ...) or set GLANEUR_ACTING_USER."
        )
    return email


def _actor(session: Session, org: Organization | str) -> User:
    """The acting user, as a user of ``org`` (the same address may belong to several organisations)."""
    return admin.get_actor(session, org, _acting_email())


def _first_collection(slug: str, no_collect: bool) -> None:
    """Start the first collection at once ("dans l'heure qui suit l'activation"), unless told not to."""
    if no_collect:
        _say(
            f"First collection not started (--no-collect): it runs at the daily time slot, or now with 'glaneur run {slug}'.",
            style="yellow",
        )
        return
    # Prefect loads only when a collection starts.
    from flows.activation import start_first_collection

    with _out().status(f"Starting the first collection of {slug}…"):
        line = start_first_collection(slug)
    _say(line, style="default")


def _read_secrets(password_stdin: bool, with_totp: bool) -> tuple[str, str | None]:
    """The password (and TOTP seed) from a hidden prompt, or from stdin's first (and second) line."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        seed = None
        if with_totp:
            seed = sys.stdin.readline().rstrip("\r\n")
            if not seed:
                raise UsageError("--with-totp and --password-stdin: put the TOTP seed on the second line of stdin.")
        return password, seed
    password = typer.prompt("Password", hide_input=True)
    seed = typer.prompt("TOTP seed (base32)", hide_input=True) if with_totp else None
    return password, seed


# -- commands ---------------------------------------------------------------------------------------


@app.command()
def init() -> None:
    """Create or upgrade the database (idempotent)."""
    db.migrate()
    _migrated.add(get_settings().resolved_database_url)
    url = make_url(get_settings().resolved_database_url).render_as_string(hide_password=True)
    _say(f"Database ready: {url}")


@org_app.command("create")
def org_create(
    slug: str,
    name: str,
    firm: bool = typer.Option(False, "--firm", help="An accounting firm (cabinet): client IBANs and statements."),
) -> None:
    """Create an organisation (the platform team's act: no acting user needed)."""
    with _session() as session:
        org = admin.create_organization(session, slug, name, "firm" if firm else "company")
        _say(f"Created {'accounting firm' if firm else 'organisation'} {org.slug} ({org.name}).")


RIGHTS = typer.Option(
    [], "--right", help="Grant a right (repeat for several); configure_collection lets the user set up collectors."
)
NO_COLLECT = typer.Option(
    False, "--no-collect", help="Do not start the first collection now; it runs at the daily time slot."
)


@user_app.command("create")
def user_create(
    org: str,
    email: str,
    name: str,
    rights: list[Right] = RIGHTS,
    profile: FirmRole | None = typer.Option(
        None, "--profile", help="In an accounting firm: collaborator, supervisor or administrator."
    ),
) -> None:
    """Create a user of an organisation.

    The organisation's first user needs no acting user (bootstrap). Afterwards act (--as) as a user of
    the organisation holding configure_collection or configure_accounting; they grant only rights they hold,
    and no firm profile above their own.
    """
    with _session() as session:
        actor = None if admin.bootstrapping(session, org) else _actor(session, org)
        user = admin.create_user(session, org, email, name, rights, firm_role=profile, actor=actor)
        granted = user.rights.replace(",", ", ") or "no rights"
        role = f", profile {user.firm_role.value}" if user.firm_role else ""
        _say(f"Created user {user.email} ({user.name}) in {org}: {granted}{role}.")


@binder_app.command("create")
def binder_create(org: str, slug: str, name: str) -> None:
    """Create a binder (classeur de dépôt) in an organisation.

    Act (--as) as a user of the organisation holding configure_collection or configure_accounting
    (no acting user needed while the organisation has no user yet).
    """
    with _session() as session:
        actor = None if admin.bootstrapping(session, org) else _actor(session, org)
        binder = admin.create_binder(session, org, slug, name, actor=actor)
        _say(f"Created binder {binder.slug} ({binder.name}) in {org}.")


PASSWORD_STDIN = typer.Option(False, "--password-stdin", help="Read the password from stdin's first line.")
WITH_TOTP = typer.Option(
    False, "--with-totp", help="Also store a TOTP seed (hidden prompt, or stdin's second line), so second factors answer themselves."
)


@channel_app.command("add")
def channel_add(
    org: str,
    label: str = typer.Option(..., "--label", help="Libellé shown in the channel list."),
    provider: str = typer.Option(..., "--provider", help="Provider slug (see 'glaneur providers')."),
    binder: str = typer.Option(..., "--binder", help="Binder slug of the organisation (classeur de dépôt)."),
    recipient: str = typer.Option(..., "--recipient", help="E-mail of the recipient user (utilisateur destinataire)."),
    slug: str | None = typer.Option(None, "--slug", help="Channel slug; default: ORG-LABEL, slugified."),
    time_slot: str = typer.Option("06:00", "--time-slot", help="Daily collection time, HH:MM."),
    login: str | None = typer.Option(None, "--login", help="Add a first account with this login (password asked)."),
    password_stdin: bool = PASSWORD_STDIN,
    with_totp: bool = WITH_TOTP,
    no_collect: bool = NO_COLLECT,
) -> None:
    """Create a collection channel (connecteur marchand), optionally with its first account.

    Act (--as) as a user of the organisation with configure_collection (bank providers:
    configure_accounting); they become the channel's owner, told when it needs a person. The recipient
    user and the binder must exist. With --login, the first collection starts at once.
    """
    if login is None and (password_stdin or with_totp):
        raise UsageError("--password-stdin and --with-totp need --login.")
    fields = {
        "label": label,
        "provider": provider,
        "binder": binder,
        "recipient": recipient,
        "slug": slug,
        "time_slot": time_slot,
    }
    with _session() as session:  # every check before anyone types a secret
        admin.check_new_channel(session, org, actor=_actor(session, org), **fields)
    password, seed = _read_secrets(password_stdin, with_totp) if login is not None else (None, None)
    with _session() as session:
        actor = _actor(session, org)
        channel = admin.add_channel(session, org, actor=actor, **fields)
        if login is not None:
            admin.add_account(session, channel, login=login, password=password, totp_seed=seed, actor=actor)
    accounts = "one account" if login is not None else "no account yet: add one with 'glaneur channel account-add'"
    _say(f"Created channel {channel.slug} ({channel.label}, {channel.provider}), {accounts}; daily at {channel.time_slot}.")
    if login is not None:
        _first_collection(channel.slug, no_collect)


def _channel_actor(session: Session, channel: str) -> User:
    """The acting user, as a user of the channel's organisation."""
    found = admin.get_channel(session, channel, deleted_ok=True)
    return _actor(session, admin.organization_of(session, found))


@channel_app.command("account-add")
def channel_account_add(
    channel: str,
    login: str = typer.Option(..., "--login", help="Identifier or e-mail on the supplier's portal."),
    password_stdin: bool = PASSWORD_STDIN,
    with_totp: bool = WITH_TOTP,
    no_collect: bool = NO_COLLECT,
) -> None:
    """Add an account (credential set) to a channel: at most two per channel (jusqu'à deux comptes).

    Needs the right to configure the channel (--as). The first collection starts at once.
    """
    with _session() as session:
        admin.check_account_slot(session, channel, login, actor=_channel_actor(session, channel))
    password, seed = _read_secrets(password_stdin, with_totp)
    with _session() as session:
        actor = _channel_actor(session, channel)
        account = admin.add_account(session, channel, login=login, password=password, totp_seed=seed, actor=actor)
    _say(f"Added account {account.login} to {channel} (account {account.position} of {MAX_ACCOUNTS_PER_CHANNEL}).")
    _first_collection(channel, no_collect)


@channel_app.command("update-credentials")
def channel_update_credentials(
    channel: str,
    login: str = typer.Option(..., "--login", help="The account whose credentials changed."),
    password_stdin: bool = PASSWORD_STDIN,
    with_totp: bool = WITH_TOTP,
    no_collect: bool = NO_COLLECT,
) -> None:
    """Overwrite an account's password (and TOTP seed) after a change or expiry ("Modifier").

    Needs the right to configure the channel (--as). The status goes back to new and a collection
    starts at once with the new credentials.
    """
    with _session() as session:
        admin.check_credentials_update(session, channel, login, actor=_channel_actor(session, channel))
    password, seed = _read_secrets(password_stdin, with_totp)
    with _session() as session:
        actor = _channel_actor(session, channel)
        admin.update_credentials(session, channel, login, password=password, totp_seed=seed, actor=actor)
    _say(f"Updated the credentials of {login} on {channel}; collection resumes with them.")
    _first_collection(channel, no_collect)


@channel_app.command("delete")
def channel_delete(
    channel: str,
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
) -> None:
    """Delete a collector for good (définitivement désactivé): its credentials are purged from the vault.

    Needs the right to configure the channel (--as). Its documents and history are kept.
    """
    with _session() as session:
        found = admin.check_deletion(session, channel, actor=_channel_actor(session, channel))
    if not yes and not typer.confirm(
        f"Delete {found.slug} ({found.label}) for good? It stops collecting and its credentials are purged.",
        default=False,
    ):
        _say("Nothing deleted.", style="yellow")
        raise typer.Exit(FAILED_EXIT)
    with _session() as session:
        deletion = admin.delete_channel(session, channel, actor=_channel_actor(session, channel))
    _say(
        f"Deleted channel {deletion.channel.slug} for good: {deletion.purged_secrets} secret(s) of "
        f"{deletion.accounts} account(s) purged from the vault; {deletion.documents_kept} document(s) and "
        f"{deletion.runs_kept} run(s) of history kept."
    )
    if deletion.invitation_runs:
        from tasks.human import cancel_invitation_runs

        try:
            cancel_invitation_runs(deletion.invitation_runs, f"The channel {deletion.channel.slug} was deleted.")
        except Exception as error:  # the channel is deleted; the waiting runs must be ended by hand
            _error(
                f"the invitation run(s) {', '.join(deletion.invitation_runs)} could not be cancelled ({error}): "
                f"cancel them in the Prefect UI. An answer sent meanwhile is refused and deleted."
            )
            raise typer.Exit(1) from None
        _say(f"{len(deletion.invitation_runs)} waiting invitation run(s) cancelled.")


INVITATION_DEPLOYMENT = "request-credentials/request-credentials"


@channel_app.command("invite")
def channel_invite(
    channel: str,
    invitee: str = typer.Option(..., "--invitee", metavar="EMAIL", help="The account holder, a user of the organisation."),
) -> None:
    """Ask the account holder to enter the credentials (envoyez la demande à un utilisateur).

    The invitation is a Prefect run that waits, suspended, for the holder's answer; it needs the
    deployments and a worker (prefect deploy --all; prefect worker start --pool glaneur).
    """
    from glaneur.doctor import lookup_deployment

    with _session() as session:
        found = admin.get_channel(session, channel)
        org = admin.organization_of(session, found)
        actor = admin.require_right(_actor(session, org), org, admin.right_for_kind(found.kind))
        admin.get_person(session, invitee, org)
    lookup = lookup_deployment(INVITATION_DEPLOYMENT)
    if not lookup.deployment:
        raise UsageError(
            f"invitations wait for days without holding a process, so they run on the deployment "
            f"'{INVITATION_DEPLOYMENT}', which {lookup.where} does not have{': ' + lookup.error if lookup.error else ''}. "
            f"Deploy the flows (GLANEUR_PROJECT_DIR=$PWD prefect --no-prompt deploy --all) and start a worker."
        )
    from prefect.deployments import run_deployment

    run = run_deployment(
        INVITATION_DEPLOYMENT, parameters={"channel": found.slug, "invitee": invitee.strip().lower()}, timeout=0
    )
    with _session() as session:
        admin.audit_log_entry(session, admin.get_organization(session, org.slug), admin.get_user(session, org.slug, actor.email),
                              "invitation.send", found.slug, f"to {invitee}")
    _say(f"Invitation run {run.name} created: {invitee} receives a mail and a notification with the link.")
    if lookup.workers_online == 0:
        _say("No worker is online in its work pool: the mail goes out once one starts.", style="yellow")


@channel_app.command("resend-invitation")
def channel_resend_invitation(channel: str) -> None:
    """Send the pending invitation's mail and notification again (same link, same expiry)."""
    from glaneur import invitations
    from glaneur.models import Invitation, InvitationState
    from glaneur.notify import notify_user

    with _session() as session:
        found = admin.get_channel(session, channel)
        org = admin.organization_of(session, found)
        admin.require_right(_actor(session, org), org, admin.right_for_kind(found.kind))
        waiting = [i for i in invitations.pending_for(session, found.id) if i.state in invitations.WAITING]
        if not waiting:
            raise UsageError(f"channel '{found.slug}' has no pending invitation: send one with 'glaneur channel invite'.")
        invitation: Invitation = waiting[0]
        if not invitations.is_open(invitation):
            invitations.expire(session, invitation)
            session.commit()
            raise UsageError("the invitation has expired: send a new one with 'glaneur channel invite'.")
        _check_invitation_run_waits(invitation.flow_run_id)
        from tasks.human import flow_run_link

        link = flow_run_link(invitation.flow_run_id)
        if link is None:
            raise UsageError(
                "no link to the invitation's run can be built: set GLANEUR_PREFECT_UI_URL (or PREFECT_UI_URL) to "
                "the Prefect UI address the account holder can open."
            )
        delivery = notify_user(
            session, invitation.invitee_user_id, kind="invitation",
            subject=f"[Glaneur] Reminder: credentials requested for {found.label}",
            body=f"You are asked to enter the credentials of the supplier account collected by '{found.label}'. "
                 f"Open the link, choose Resume and fill in the form. The request expires on "
                 f"{invitation.expires_at:%Y-%m-%d %H:%M} UTC.",
            link=link,
        )
        invitations.record_sent(session, invitation, delivered=delivery.delivered, error=delivery.error)
        session.commit()
    if delivery.delivered:
        _say(f"Invitation sent again to {invitation.email} ({invitation.sent_count} sent).")
    else:
        _error(f"the invitation could not be delivered to {invitation.email}: {delivery.error}")
        raise typer.Exit(1)


def _check_invitation_run_waits(flow_run_id: str | None) -> None:
    """A reminder is only worth sending while the invitation's Prefect run still waits for the form."""
    from prefect.client.orchestration import get_client

    if not flow_run_id:
        raise UsageError("the invitation has no Prefect run: send a new one with 'glaneur channel invite'.")
    try:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(flow_run_id).state
    except Exception as error:
        raise UsageError(f"cannot check the invitation's run in Prefect ({error}): is the Prefect API reachable?") from None
    if state is None or not state.is_paused():
        name = state.name if state else "unknown"
        raise UsageError(
            f"the invitation's run no longer waits for an answer (state {name}): send a new one with "
            f"'glaneur channel invite'."
        )


@app.command()
def channels(org: str | None = typer.Option(None, "--org", help="Only this organisation's channels.")) -> None:
    """The channels, their status and what to do about it ("Collecteurs")."""
    with _session() as session:
        summaries = admin.channel_summaries(session, org)
    if not summaries:
        _say("No channels yet: create one with 'glaneur channel add'.", style="yellow")
        return
    table = _table("Channels", "Channel", "Provider", "Accounts", "Status", "Last run")
    for item in summaries:
        name = Text(item.channel.slug, style="bold")
        name.append(f"\n{item.channel.label}", style="default")
        accounts = "\n".join(f"{a.login} ({a.status.value})" for a in item.accounts) or "none"
        last = f"{_when(item.last_run.started_at)}\n{item.last_run.status.value}" if item.last_run else "never"
        table.add_row(
            name,
            *map(_cell, (item.channel.provider, accounts)),
            _status_and_message(item.channel.status, item.message),
            _cell(last),
        )
    _out().print(table)


@app.command()
def providers(search: str | None = typer.Argument(None, help="Part of a provider's name or slug.")) -> None:
    """The catalogue of providers a channel can collect from."""
    from connectors import catalog

    entries = catalog.search(search) if search else list(catalog.PROVIDERS.values())
    if not entries:
        _say(
            f"No provider matches '{search}'. Ask for a new collector ('Demander l'ajout d'un collecteur').",
            style="yellow",
        )
        return
    table = _table("Providers", "Slug", "Name", "Login fields", "Second factor", "Compatible", "Notes")
    for entry in entries:
        factors = ", ".join(str(kind) for kind in entry.second_factor_kinds) or "-"
        compatible = Text("yes", style="green") if entry.compatible else Text("no", style="red")
        table.add_row(
            *map(_cell, (entry.slug, entry.name, ", ".join(entry.login_fields), factors)),
            compatible,
            _cell("" if entry.compatible else entry.description),  # why not, and what to do instead
        )
    _out().print(table)


@app.command()
def run(channel: str) -> None:
    """Collect one channel now, in this process, and print each account's outcome."""
    with _session() as session:
        found = admin.get_channel(session, channel)
    from flows.collect_channel import run_channel  # Prefect loads only for this command

    with _out().status(f"Collecting {found.slug} ({found.provider})…"):
        try:
            summary = run_channel(found.slug)
        except UsageError:
            raise
        except Exception as error:  # noqa: BLE001  the flow crashed: say so plainly, the run's log has the rest
            summary = error
    if isinstance(summary, UsageError):
        raise summary
    if not isinstance(summary, dict):
        detail = summary.user_message if isinstance(summary, GlaneurError) else f"{type(summary).__name__}: {summary}"
        _error(f"the collection of {found.slug} failed: {detail}")
        raise typer.Exit(FAILED_EXIT)
    _print_summary(summary)
    if summary.get("status") != Status.OK.value:
        raise typer.Exit(FAILED_EXIT)


def _print_summary(summary: dict) -> None:
    table = _table(f"Collection of {summary.get('channel')}", "Account", "New", "Already had", "Status")
    for account in summary.get("accounts", []):
        table.add_row(
            _cell(account.get("login")),
            _cell(account.get("new", 0)),
            _cell(account.get("already_had", 0)),
            _status_and_message(account.get("status", Status.INTERNAL_ERROR), account.get("message", "")),
        )
    out = _out()
    out.print(table)
    line = Text(f"{summary.get('channel')}: ")
    line.append_text(_status(summary.get("status", Status.INTERNAL_ERROR)))
    line.append(f", {summary.get('new', 0)} new, {summary.get('already_had', 0)} already had. {summary.get('message', '')}")
    out.print(line, soft_wrap=True)


@app.command()
def history(
    channel: str | None = typer.Option(None, "--channel", help="Only this channel."),
    status: str | None = typer.Option(None, "--status", help="Only runs ending with this status (e.g. wrong_credentials)."),
    since: str | None = typer.Option(None, "--since", help="Only runs started on or after this day, YYYY-MM-DD."),
    limit: int = typer.Option(50, "--limit", min=1, help="At most this many runs, newest first."),
) -> None:
    """Collection history, newest first ("Collecte > Historique")."""
    with _session() as session:
        entries = admin.history(session, channel=channel, status=status, since=since, limit=limit)
    if not entries:
        _say("No collection matches.", style="yellow")
        return
    table = _table("History", "Date (UTC)", "Channel", "Account", "New", "Already had", "Status")
    for entry in entries:
        table.add_row(
            *map(_cell, (_when(entry.run.started_at), entry.channel.slug, entry.login or "-")),
            *map(_cell, (entry.run.new_documents, entry.run.already_had)),
            _status_and_message(entry.run.status, entry.message),
        )
    _out().print(table)


@app.command()
def documents(
    channel: str | None = typer.Option(None, "--channel", help="Only this channel's documents."),
    limit: int = typer.Option(100, "--limit", min=1, help="At most this many documents, newest first."),
) -> None:
    """Filed documents, newest first."""
    with _session() as session:
        found = admin.list_documents(session, channel=channel, limit=limit)
        slugs = admin.channel_slugs(session, {document.channel_id for document in found})
    if not found:
        _say("No documents filed yet.", style="yellow")
        return
    table = _table("Documents", "Date", "Channel", "Reference", "Amount", "Size", "Storage key")
    for document in found:
        amount = f"{document.amount} {document.currency}" if document.amount is not None else "-"
        table.add_row(
            *map(
                _cell,
                (
                    document.document_date.isoformat(),
                    slugs.get(document.channel_id, "?"),
                    document.provider_reference,
                    amount,
                    f"{document.size:,} B",
                    document.storage_key,
                ),
            )
        )
    _out().print(table)


@app.command()
def audit(
    org: str | None = typer.Option(None, "--org", help="Only this organisation's log."),
    limit: int = typer.Option(50, "--limit", min=1, help="At most this many lines, newest first."),
) -> None:
    """Who created, changed the credentials of, or deleted what, and when (never a secret)."""
    with _session() as session:
        entries = admin.audit_log(session, org=org, limit=limit)
    if not entries:
        _say("The audit log is empty.", style="yellow")
        return
    table = _table("Audit log", "Date (UTC)", "Organisation", "Who", "Action", "Target", "Detail")
    for entry in entries:
        table.add_row(
            *map(
                _cell,
                (
                    _when(entry.log.at),
                    entry.organization,
                    entry.actor or "platform (console)",
                    entry.log.action,
                    entry.log.target,
                    entry.log.detail,
                ),
            )
        )
    _out().print(table)


@request_app.command("add")
def request_add(
    org: str,
    supplier: str = typer.Option(..., "--supplier", help="The supplier's name."),
    url: str = typer.Option(..., "--url", help="Address of the supplier's client area (http or https)."),
    message: str = typer.Option("", "--message", help="Anything the team should know (invoice types, second factor...)."),
) -> None:
    """Ask for a collector for a supplier the catalogue lacks; you are notified when it is available.

    Any user of the organisation may ask (--as).
    """
    with _session() as session:
        request = admin.request_connector(
            session, org, supplier=supplier, url=url, message=message, actor=_actor(session, org)
        )
    _say(
        f"Request #{request.id} sent: a collector for {request.supplier_name} ({request.portal_url}). "
        "Our team adds it as soon as possible; you will be notified when it is available."
    )


@request_app.command("list")
def request_list(
    org: str | None = typer.Option(None, "--org", help="Only this organisation's requests."),
    state: str | None = typer.Option(None, "--state", help="Only requests in this state: open, shipped, rejected."),
) -> None:
    """Requests for new collectors and their state, newest first."""
    with _session() as session:
        entries = admin.list_connector_requests(session, org=org, state=state)
    if not entries:
        _say("No connector request matches.", style="yellow")
        return
    table = _table("Connector requests", "#", "Date (UTC)", "Organisation", "Requester", "Supplier", "Portal", "State", "Message")
    for entry in entries:
        request = entry.request
        state_text = request.state.value + (f"\n{request.provider}" if request.provider else "")
        if request.notified_at:
            state_text += f"\nnotified {_when(request.notified_at)}"
        table.add_row(
            *map(
                _cell,
                (
                    request.id,
                    _when(request.created_at),
                    entry.organization,
                    entry.requester,
                    request.supplier_name,
                    request.portal_url,
                    state_text,
                    request.message,
                ),
            )
        )
    _out().print(table)


def _say_shipped(shipped: admin.ShippedRequest) -> None:
    delivery = shipped.delivery
    how = f"mailed ({delivery.where})" if delivery.delivered else f"in the bell only, the mail failed: {delivery.error}"
    _say(
        f"Request #{shipped.request.id} ({shipped.request.supplier_name}) shipped with provider "
        f"{shipped.request.provider}; {shipped.requester.email} notified, {how}.",
        style="green" if delivery.delivered else "yellow",
    )


@request_app.command("ship")
def request_ship(
    request_id: int = typer.Argument(..., metavar="ID", help="The request's number."),
    provider: str = typer.Option(..., "--provider", help="Slug of the catalogue provider that now collects it."),
) -> None:
    """Mark a request shipped with a provider and notify the requester (platform team)."""
    with _session() as session:
        shipped = admin.ship_connector_request(session, request_id, provider)
    _say_shipped(shipped)


@request_app.command("sync")
def request_sync() -> None:
    """Ship the open requests whose portal a catalogue provider now serves; notify each requester once."""
    with _session() as session:
        shipped = admin.sync_connector_requests(session)
    if not shipped:
        _say("No open request has a collector yet.", style="yellow")
    for item in shipped:
        _say_shipped(item)


VERDICT_STYLES = {"ok": "green", "warn": "yellow", "fail": "red"}


@app.command()
def doctor(
    channel: str | None = typer.Argument(None, help="The channel to diagnose."),
    iban: str | None = typer.Option(None, "--iban", help="Diagnose a firm's client IBAN instead (statements)."),
    org: str | None = typer.Option(None, "--org", help="With --iban: the firm, when several have this IBAN."),
) -> None:
    """Diagnose a channel (provider, accounts, credentials, last runs, invitation, next run) or, with --iban, a
    client IBAN (connector on the firm, connector on the IBAN, mandate, last statements); each check with its fix.

    Exits 1 when a check fails. Credentials are decrypted to check the vault key, never shown.
    """
    from glaneur import doctor as diagnosis

    if (channel is None) == (iban is None):
        raise UsageError("give a channel to diagnose, or --iban IBAN for a firm's client IBAN (one of the two).")
    subject = channel or iban
    with _session() as session:
        with _out().status(f"Checking {subject}…"):
            if iban is not None:
                from glaneur.firm_doctor import diagnose_iban

                checks = diagnose_iban(session, iban, org)
            else:
                checks = diagnosis.diagnose(session, channel)
        session.rollback()  # reading only: the vault's first use may have written its canary
    table = _table(f"Diagnosis of {subject}", "Check", "Verdict", "What was found", "Fix")
    for check in checks:
        table.add_row(
            _cell(check.name),
            Text(check.verdict.value, style=VERDICT_STYLES[check.verdict.value]),
            _cell(check.detail),
            _cell(check.fix or "-"),
        )
    _out().print(table)
    failed = [check.name for check in checks if check.verdict == "fail"]
    if failed:
        _say(f"{len(failed)} check(s) failed: {', '.join(failed)}.", style="red")
        raise typer.Exit(FAILED_EXIT)
    _say("No check failed.")


def _me(session: Session, org: str | None) -> User:
    """The acting user, in ``org`` or in the only organisation their address belongs to."""
    return admin.get_person(session, _acting_email(), org)


@notifications_app.command("list")
def notifications_list(
    org: str | None = typer.Option(None, "--org", help="The organisation, when the address belongs to several."),
    unread: bool = typer.Option(False, "--unread", help="Only unread notifications."),
) -> None:
    """The acting user's notifications, newest first (--as)."""
    from glaneur.notify import list_notifications

    with _session() as session:
        user = _me(session, org)
        found = list_notifications(session, user, unread_only=unread)
    if not found:
        _say(f"No {'unread ' if unread else ''}notification for {user.email}.", style="yellow")
        return
    table = _table(f"Notifications of {user.email}", "#", "Date (UTC)", "Kind", "Subject", "Read")
    for item in found:
        subject = Text(item.subject, style="default" if item.read_at else "bold")
        if item.link:
            subject.append(f"\n{item.link}", style="default")
        table.add_row(_cell(item.id), _cell(_when(item.created_at)), _cell(item.kind), subject, _cell(_when(item.read_at)))
    _out().print(table)


NOTIFICATION_IDS = typer.Argument(None, metavar="ID", help="Notifications to mark read; default: all unread.")


@notifications_app.command("read")
def notifications_read(
    ids: list[int] = NOTIFICATION_IDS,
    org: str | None = typer.Option(None, "--org", help="The organisation, when the address belongs to several."),
) -> None:
    """Mark the acting user's notifications read (--as)."""
    from glaneur.notify import mark_read

    with _session() as session:
        user = _me(session, org)
        changed = mark_read(session, user, list(ids) if ids else None)
    _say(f"Marked {changed} notification(s) of {user.email} read.")


@vault_app.command("generate-key")
def vault_generate_key() -> None:
    """Print a new vault key, for GLANEUR_VAULT_KEY or a key file (store it before using it)."""
    from glaneur.vault import generate_key

    typer.echo(generate_key())


@vault_app.command("rotate-key")
def vault_rotate_key(
    new_key_stdin: bool = typer.Option(
        False, "--new-key-stdin", help="Read the new key from stdin (required when the key is configured)."
    ),
) -> None:
    """Re-encrypt every secret under a new vault key, in one transaction."""
    from glaneur.vault import rotate_key

    settings = get_settings()
    if not settings.uses_embedded_vault_key and not new_key_stdin:
        # The new key must be stored where every process reads it before the secrets depend on it.
        setting = "GLANEUR_VAULT_KEY" if settings.vault_key is not None else "GLANEUR_VAULT_KEY_FILE"
        raise UsageError(
            f"the vault key is configured ({setting}), so Glaneur cannot store the new one itself. "
            "Generate one with 'glaneur vault generate-key', set the setting to 'OLD,NEW' everywhere, "
            "run 'glaneur vault rotate-key --new-key-stdin' with NEW on stdin, then set the setting to NEW."
        )
    new_key = sys.stdin.readline().strip() if new_key_stdin else None
    if new_key_stdin and not new_key:
        raise UsageError("--new-key-stdin: put the new vault key on stdin's first line.")
    with _session() as session:
        rotate_key(session, new_key)
    if settings.uses_embedded_vault_key:
        key_file = settings.resolved_vault_key_file
        _say(f"Vault key rotated: the new key is in {key_file}, the old one kept in {key_file}.previous.")
    else:
        _say("Vault key rotated: every secret is now encrypted under the new key; set the setting to it alone.")


from glaneur.cli_firm import register as _register_firm_commands  # noqa: E402  (uses the helpers above)

_register_firm_commands(app)


def main() -> None:  # pragma: no cover - console script convenience
    app()
