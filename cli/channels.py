"""``glaneur channel ...``, ``channels``, ``providers`` and ``run``: supplier channels (collecteurs)."""

from __future__ import annotations

import typer
from rich.text import Text

from cli import common
from glaneur.errors import GlaneurError, UsageError
from glaneur.statuses import COLLECTED, Status
from glaneur.vocabulary import MAX_ACCOUNTS_PER_CHANNEL

channel_app = common.group("Collection channels (collecteurs) and their accounts.")

PASSWORD_STDIN = typer.Option(False, "--password-stdin", help="Read the password from stdin's first line.")
WITH_TOTP = typer.Option(
    False, "--with-totp", help="Also store a TOTP seed (hidden prompt, or stdin's second line), so second factors answer themselves."
)
NO_COLLECT = typer.Option(
    False, "--no-collect", help="Do not start the first collection now; it runs at the daily time slot."
)
INVITATION_DEPLOYMENT = "request-credentials/request-credentials"


def _first_collection(slug: str, no_collect: bool, what: str = "First collection") -> None:
    """Start the first collection at once ("dans l'heure qui suit l'activation"), unless told not to."""
    if no_collect:
        common.say(
            f"{what} not started (--no-collect): it runs at the daily time slot, or now with 'glaneur run {slug}'.",
            style="yellow",
        )
        return
    from flows.activation import start_first_collection  # Prefect loads only when a collection starts

    with common.out().status(f"Starting: {what.lower()} of {slug}…"):
        line = start_first_collection(slug, what=what)
    common.say(line, style="default")


def _channel_actor(session, channel: str):
    """The acting user, as a user of the channel's organisation."""
    from glaneur import admin

    found = admin.get_channel(session, channel, deleted_ok=True)
    return common.actor(session, admin.organization_of(session, found))


@channel_app.command("add")
def channel_add(
    org: str,
    label: str = typer.Option(..., "--label", help="Libellé shown in the channel list."),
    provider: str = typer.Option(..., "--provider", help="Provider slug (see 'glaneur providers')."),
    binder: str = typer.Option(..., "--binder", help="Binder slug of the organisation (classeur de dépôt)."),
    recipient: str = typer.Option(..., "--recipient", help="E-mail of the recipient user (utilisateur destinataire)."),
    slug: str | None = typer.Option(None, "--slug", help="Channel slug; default: ORG-LABEL, slugified."),
    time_slot: str | None = typer.Option(
        None, "--time-slot", help="Daily collection time, HH:MM; default: the night slot least used by this provider."
    ),
    login: str | None = typer.Option(None, "--login", help="Add a first account with this login (password asked)."),
    password_stdin: bool = PASSWORD_STDIN,
    with_totp: bool = WITH_TOTP,
    no_collect: bool = NO_COLLECT,
    portal_url: str | None = typer.Option(
        None, "--portal-url", help="The supplier's portal address, for a platform provider (e.g. odoo): https://..."
    ),
    biller: str | None = typer.Option(
        None, "--biller", help="With --provider powens: the supplier, as POWENS's list names it (providers --powens)."
    ),
) -> None:
    """Create a collection channel (connecteur marchand), optionally with its first account.

    A platform provider (software many suppliers run at their own address, e.g. odoo) needs the
    supplier's portal address: --portal-url https://portal.supplier.example. The provider 'powens'
    collects any supplier of POWENS's list: --biller NAME ('glaneur providers --powens' lists them).

    Act (--as) as a user of the organisation with configure_collection (bank providers:
    configure_accounting); they become the channel's owner, told when it needs a person. The recipient
    user and the binder must exist. With --login, the first collection starts at once.
    """
    from glaneur import admin

    if login is None and (password_stdin or with_totp):
        raise UsageError("--password-stdin and --with-totp need --login.")
    fields = {
        "label": label,
        "provider": provider,
        "binder": binder,
        "recipient": recipient,
        "slug": slug,
        "time_slot": time_slot,
        "portal_url": portal_url,
        "biller": biller,
    }
    if time_slot is None:
        from glaneur.slots import slot_for_new_channel

        with common.session() as session:
            fields["time_slot"] = slot_for_new_channel(session, provider)
    with common.session() as session:  # every check before anyone types a secret
        admin.check_new_channel(session, org, actor=common.actor(session, org), **fields)
    password, seed = common.read_secrets(password_stdin, with_totp) if login is not None else (None, None)
    with common.session() as session:
        actor = common.actor(session, org)
        channel = admin.add_channel(session, org, actor=actor, **fields)
        if login is not None:
            admin.add_account(session, channel, login=login, password=password, totp_seed=seed, actor=actor)
    accounts = "one account" if login is not None else "no account yet: add one with 'glaneur channel account-add'"
    common.say(
        f"Created channel {channel.slug} ({channel.label}, {channel.provider}), {accounts}; daily at {channel.time_slot}."
    )
    if login is not None:
        _first_collection(channel.slug, no_collect)


@channel_app.command("set-slot")
def channel_set_slot(
    channel: str, time_slot: str = typer.Argument(..., metavar="HH:MM", help="New daily collection time.")
) -> None:
    """Move a channel's daily collection to another time slot (organisation's time zone)."""
    from glaneur.slots import set_slot

    with common.session() as session:
        old, new = set_slot(session, channel, time_slot, actor=_channel_actor(session, channel))
    common.say(f"Channel {channel} now collects daily at {new} (was {old}); from the next dispatch on.")


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
    from glaneur import admin

    with common.session() as session:
        admin.check_account_slot(session, channel, login, actor=_channel_actor(session, channel))
    password, seed = common.read_secrets(password_stdin, with_totp)
    with common.session() as session:
        actor = _channel_actor(session, channel)
        account = admin.add_account(session, channel, login=login, password=password, totp_seed=seed, actor=actor)
    common.say(f"Added account {account.login} to {channel} (account {account.position} of {MAX_ACCOUNTS_PER_CHANNEL}).")
    _first_collection(channel, no_collect)


def _release_remembered(channel: str, logins: list[str] | None, unchanged: str) -> None:
    """What the accounts' remembered sessions hold at a remote side (a POWENS connection with the supplier's
    login) is deleted there before Glaneur forgets them; when the remote side fails, nothing is changed."""
    from connectors.catalog import release_remembered

    try:
        with common.session() as session:
            unreadable = release_remembered(session, channel, logins)
    except GlaneurError as error:
        raise UsageError(f"POWENS did not delete the connection it keeps ({error.user_message}); {unchanged}: "
                         "try again.") from None
    for login in unreadable:
        common.error_line(f"the remembered POWENS connection of {login} cannot be read (vault key): delete it in "
                          "the POWENS console.")


@channel_app.command("update-credentials")
def channel_update_credentials(
    channel: str,
    login: str = typer.Option(..., "--login", help="The account whose credentials changed."),
    new_login: str | None = typer.Option(
        None, "--new-login", help="The account's new identifier, when the supplier changed it too."
    ),
    password_stdin: bool = PASSWORD_STDIN,
    with_totp: bool = WITH_TOTP,
    no_collect: bool = NO_COLLECT,
) -> None:
    """Overwrite an account's password (and TOTP seed, and login with --new-login) after a change or
    expiry ("Modifier").

    Needs the right to configure the channel (--as). The status goes back to new and a collection
    starts at once with the new credentials.
    """
    from glaneur import admin

    with common.session() as session:
        admin.check_credentials_update(
            session, channel, login, actor=_channel_actor(session, channel), new_login=new_login
        )
    password, seed = common.read_secrets(password_stdin, with_totp)
    _release_remembered(channel, [login], "the credentials were not updated")  # the session is dropped below
    with common.session() as session:
        actor = _channel_actor(session, channel)
        account = admin.update_credentials(
            session, channel, login, password=password, totp_seed=seed, new_login=new_login, actor=actor
        )
    common.say(f"Updated the credentials of {account.login} on {channel}; the next collection uses them.")
    _first_collection(channel, no_collect, what="Collection with the new credentials")


@channel_app.command("account-remove")
def channel_account_remove(
    channel: str,
    login: str = typer.Option(..., "--login", help="The account to remove from the collector."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
) -> None:
    """Remove an account from a collector: its credentials are purged from the vault and its place is free
    for another account; what it collected and its history stay.

    Needs the right to configure the channel (--as).
    """
    from glaneur import admin

    with common.session() as session:
        account = admin.check_account_removal(session, channel, login, actor=_channel_actor(session, channel))
        login = account.login
    common.confirm_or_stop(
        yes, f"Remove account {login} from {channel}? Its credentials are purged; its documents and history stay.",
        "Nothing removed.",
    )
    _release_remembered(channel, [login], "nothing was removed")
    with common.session() as session:
        _, purged = admin.remove_account(session, channel, login, actor=_channel_actor(session, channel))
        left = [a.login for a in admin.channel_accounts(session, admin.get_channel(session, channel))]
    common.say(
        f"Removed account {login} from {channel}: {purged} secret(s) purged from the vault; its documents and "
        f"history kept. Accounts left: {', '.join(left) or 'none (add one with channel account-add)'}."
    )


@channel_app.command("delete")
def channel_delete(
    channel: str,
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
) -> None:
    """Delete a collector for good (définitivement désactivé): its credentials are purged from the vault.

    Needs the right to configure the channel (--as). Its documents and history are kept.
    """
    from glaneur import admin

    with common.session() as session:
        found = admin.check_deletion(session, channel, actor=_channel_actor(session, channel))
    common.confirm_or_stop(
        yes, f"Delete {found.slug} ({found.label}) for good? It stops collecting and its credentials are purged.",
        "Nothing deleted.",
    )
    _release_remembered(channel, None, "nothing was deleted")
    with common.session() as session:
        deletion = admin.delete_channel(session, channel, actor=_channel_actor(session, channel))
    common.say(
        f"Deleted channel {deletion.channel.slug} for good: {deletion.purged_secrets} secret(s) of "
        f"{deletion.accounts} account(s) purged from the vault; {deletion.documents_kept} document(s) and "
        f"{deletion.runs_kept} run(s) of history kept."
    )
    if deletion.invitation_runs:
        from tasks.human import cancel_invitation_runs

        try:
            cancel_invitation_runs(deletion.invitation_runs, f"The channel {deletion.channel.slug} was deleted.")
        except Exception as error:  # noqa: BLE001  the channel is deleted; the waiting runs must be ended by hand
            common.error_line(
                f"the invitation run(s) {', '.join(deletion.invitation_runs)} could not be cancelled ({error}): "
                f"cancel them in the Prefect UI. An answer sent meanwhile is refused and deleted."
            )
            raise typer.Exit(common.FAILED_EXIT) from None
        common.say(f"{len(deletion.invitation_runs)} waiting invitation run(s) cancelled.")


@channel_app.command("invite")
def channel_invite(
    channel: str,
    invitee: str = typer.Option(..., "--invitee", metavar="EMAIL", help="The account holder, a user of the organisation."),
) -> None:
    """Ask the account holder to enter the credentials (envoyez la demande à un utilisateur).

    The invitation is a Prefect run that waits, suspended, for the holder's answer; it needs the
    deployments and a worker (make deploy; prefect worker start --pool glaneur).
    """
    from glaneur import admin

    with common.session() as session:
        found = admin.get_channel(session, channel)
        org = admin.organization_of(session, found)
        actor = admin.require_right(common.actor(session, org), org, admin.right_for_kind(found.kind))
        admin.get_person(session, invitee, org)
    lookup = common.require_deployment(INVITATION_DEPLOYMENT, nothing="nothing was sent.", what="Invitations", then="")
    from prefect.deployments import run_deployment

    run = run_deployment(
        INVITATION_DEPLOYMENT, parameters={"channel": found.slug, "invitee": invitee.strip().lower()}, timeout=0
    )
    with common.session() as session:
        admin.audit_log_entry(
            session,
            admin.get_organization(session, org.slug),
            admin.get_user(session, org.slug, actor.email),
            "invitation.send",
            found.slug,
            f"to {invitee}",
        )
    common.say(f"Invitation run {run.name} created: {invitee} receives a mail and a notification with the link.")
    if lookup.workers_online == 0:
        common.say("No worker is online in its work pool: the mail goes out once one starts.", style="yellow")


@channel_app.command("resend-invitation")
def channel_resend_invitation(channel: str) -> None:
    """Send the pending invitation's mail and notification again (same link, same expiry)."""
    from connectors.catalog import get_provider, portal_url
    from glaneur import admin
    from glaneur.invoices import invitations
    from glaneur.models import Invitation
    from glaneur.notify import notify_user
    from glaneur.settings import get_settings
    from glaneur.signing import credentials_link

    with common.session() as session:
        found = admin.get_channel(session, channel)
        org = admin.organization_of(session, found)
        admin.require_right(common.actor(session, org), org, admin.right_for_kind(found.kind))
        waiting = [i for i in invitations.pending_for(session, found.id) if i.state in invitations.WAITING]
        if not waiting:
            raise UsageError(f"channel '{found.slug}' has no pending invitation: send one with 'glaneur channel invite'.")
        invitation: Invitation = waiting[0]
        if not invitations.is_open(invitation):
            invitations.expire(session, invitation)
            session.commit()
            raise UsageError("the invitation has expired: send a new one with 'glaneur channel invite'.")
        _check_invitation_run_waits(invitation.flow_run_id)
        subject, body = invitations.invitation_mail(invitation, found, get_provider(found.provider).name,
                                                    portal_url(found.provider, found.portal_url), reminder=True)
        link = credentials_link(get_settings(), invitation.id, invitation.expires_at)
        delivery = notify_user(session, invitation.invitee_user_id, kind="invitation", subject=subject, body=body,
                               link=link)
        invitations.record_sent(session, invitation, delivered=delivery.delivered, error=delivery.error)
        session.commit()
    if delivery.delivered:
        common.say(f"Invitation sent again to {invitation.email} ({invitation.sent_count} sent).")
    else:
        common.error_line(f"the invitation could not be delivered to {invitation.email}: {delivery.error}")
        raise typer.Exit(common.FAILED_EXIT)


def _check_invitation_run_waits(flow_run_id: str | None) -> None:
    """A reminder is only worth sending while the invitation's Prefect run still waits for the form."""
    from prefect.client.orchestration import get_client

    if not flow_run_id:
        raise UsageError("the invitation has no Prefect run: send a new one with 'glaneur channel invite'.")
    try:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(flow_run_id).state
    except Exception as error:  # noqa: BLE001
        raise UsageError(f"cannot check the invitation's run in Prefect ({error}): is the Prefect API reachable?") from None
    if state is None or not state.is_paused():
        name = state.name if state else "unknown"
        raise UsageError(
            f"the invitation's run no longer waits for an answer (state {name}): send a new one with "
            f"'glaneur channel invite'."
        )


def channels(org: str | None = typer.Option(None, "--org", help="Only this organisation's channels.")) -> None:
    """The channels, their status and what to do about it ("Collecteurs")."""
    from glaneur import admin

    with common.session() as session:
        summaries = admin.channel_summaries(session, org, organizations=common.readable_within(session, org=org))
    common.print_rows(
        "Channels",
        ("Channel", "Provider", "Accounts", "Status", "Last run"),
        [_channel_row(item) for item in summaries],
        empty="No channels yet: create one with 'glaneur channel add'.",
    )


def _channel_row(item) -> tuple[object, ...]:
    name = Text(common.clean(item.channel.slug), style="bold")
    name.append(f"\n{common.clean(item.channel.label)}", style="default")
    accounts = "\n".join(f"{a.login} ({a.status.value})" for a in item.accounts) or "none"
    last = f"{common.when(item.last_run.started_at)}\n{item.last_run.status.value}" if item.last_run else "never"
    status = common.status_and_message(item.channel.status, item.message)
    return name, _provider_cell(item.channel), accounts, status, last


def _notes(entry) -> str:
    """Why a provider cannot be collected (and what to do instead), or that it is a platform."""
    if not entry.compatible:
        return entry.description
    if entry.chooses_biller:
        return "any supplier of POWENS's list: give it with --biller (providers --powens lists them)"
    return "platform: each supplier runs its own; give its address with --portal-url" if entry.platform else ""


def _provider_cell(channel) -> str:
    """The provider, and under it a platform's portal address or the supplier chosen in POWENS's list."""
    below = channel.portal_url or channel.biller
    return f"{channel.provider}\n{below}" if below else channel.provider


def providers(
    search: str | None = typer.Argument(None, help="Part of a provider's name or slug."),
    powens: bool = typer.Option(False, "--powens", help="POWENS's list of suppliers instead (for --provider powens)."),
) -> None:
    """The catalogue of providers a channel can collect from (with --powens: the suppliers of POWENS's list)."""
    from connectors import catalog

    if powens:
        from connectors.powens_billers import billers

        try:
            names = billers(timeout=10)
        except GlaneurError as error:
            raise UsageError(f"POWENS's list of suppliers could not be read ({error.user_message}).") from None
        from glaneur.bank import name_key

        found = [name for name in names if not search or name_key(search) in name_key(name)]
        common.print_rows("Suppliers in POWENS's list (channel add --provider powens --biller NAME)", ("Name",),
                          [(name,) for name in found], empty=f"No supplier of POWENS's list matches '{search}'.")
        return
    entries = catalog.search(search) if search else list(catalog.PROVIDERS.values())
    if not entries:
        common.say(
            f"No provider matches '{search}'. Ask for a new collector ('Demander l'ajout d'un collecteur').",
            style="yellow",
        )
        return
    from tasks.politeness import politeness_of

    common.print_rows(
        "Providers",
        ("Slug", "Name", "Login fields", "Second factor", "Compatible", "At once", "Per minute", "Notes"),
        [_provider_row(entry, politeness_of(entry.slug)) for entry in entries],
    )


def _provider_row(entry, polite) -> tuple[object, ...]:
    factors = ", ".join(str(kind) for kind in entry.second_factor_kinds) or "-"
    compatible = Text("yes", style="green") if entry.compatible else Text("no", style="red")
    return (entry.slug, entry.name, ", ".join(entry.login_fields), factors, compatible, polite.concurrency,
            f"{polite.per_minute:g}", _notes(entry))


def run(channel: str) -> None:
    """Collect one channel now, in this process, and print each account's outcome.

    Acts as a user of the channel's organisation holding the right its kind needs (--as), as changing it would.
    """
    from glaneur import admin

    with common.session() as session:
        found = admin.get_channel(session, channel)
        org = admin.organization_of(session, found)
        admin.require_right(common.actor(session, org), org, admin.right_for_kind(found.kind))
    from flows.collect_channel import run_channel  # Prefect loads only for this command

    with common.out().status(f"Collecting {found.slug} ({found.provider})…"):
        try:
            summary = run_channel(found.slug)
        except UsageError:
            raise
        except Exception as error:  # noqa: BLE001  the flow crashed: say so plainly, the run's log has the rest
            summary = error
    if not isinstance(summary, dict):
        detail = summary.user_message if isinstance(summary, GlaneurError) else f"{type(summary).__name__}: {summary}"
        common.error_line(f"the collection of {found.slug} failed: {detail}")
        raise typer.Exit(common.FAILED_EXIT)
    _print_summary(summary)
    if summary.get("status") not in COLLECTED:  # more_to_collect: a long list, read on by the next runs
        raise typer.Exit(common.FAILED_EXIT)


def _print_summary(summary: dict) -> None:
    common.print_rows(
        f"Collection of {summary.get('channel')}",
        ("Account", "New", "Already had", "Status"),
        [
            (account.get("login"), account.get("new", 0), account.get("already_had", 0),
             common.status_and_message(account.get("status", Status.INTERNAL_ERROR), account.get("message", "")))
            for account in summary.get("accounts", [])
        ],
    )
    line = Text(common.clean(f"{summary.get('channel')}: "))
    line.append_text(common.status_text(summary.get("status", Status.INTERNAL_ERROR)))
    line.append(
        common.clean(
            f", {summary.get('new', 0)} new, {summary.get('already_had', 0)} already had. {summary.get('message', '')}"
        )
    )
    common.out().print(line, soft_wrap=True)
