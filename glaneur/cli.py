"""The ``glaneur`` command: administration, collection runs and the history, in a terminal.

Commands are thin: parse, call :mod:`glaneur.admin`, render with Rich. Bad input surfaces as a
:class:`~glaneur.errors.UsageError`, caught in one place (:class:`_Root`) and printed as one red
``Error: ...`` line on stderr, exit code 2, no traceback.

Secrets are never command-line options (they would land in shell history and ``ps``): they come
from a hidden prompt, or from stdin with ``--password-stdin`` (password on the first line, TOTP
seed on the second).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
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
from glaneur.models import MAX_ACCOUNTS_PER_CHANNEL, Right
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
    help="Glaneur: collects supplier invoices from customer portals every day.",
)
org_app = typer.Typer(no_args_is_help=True, help="Organisations (companies, accounting firms).")
user_app = typer.Typer(no_args_is_help=True, help="Users of an organisation.")
binder_app = typer.Typer(no_args_is_help=True, help="Binders (classeurs), where documents land.")
channel_app = typer.Typer(no_args_is_help=True, help="Collection channels (collecteurs) and their accounts.")
vault_app = typer.Typer(no_args_is_help=True, help="The vault holding passwords and TOTP seeds.")
app.add_typer(org_app, name="org")
app.add_typer(user_app, name="user")
app.add_typer(binder_app, name="binder")
app.add_typer(channel_app, name="channel")
app.add_typer(vault_app, name="vault")


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
def org_create(slug: str, name: str) -> None:
    """Create an organisation."""
    with _session() as session:
        org = admin.create_organization(session, slug, name)
        _say(f"Created organisation {org.slug} ({org.name}).")


RIGHTS = typer.Option(
    [], "--right", help="Grant a right (repeat for several); configure_collection lets the user set up collectors."
)


@user_app.command("create")
def user_create(
    org: str,
    email: str,
    name: str,
    rights: list[Right] = RIGHTS,
) -> None:
    """Create a user of an organisation."""
    with _session() as session:
        user = admin.create_user(session, org, email, name, rights)
        granted = user.rights.replace(",", ", ") or "no rights"
        _say(f"Created user {user.email} ({user.name}) in {org}: {granted}.")


@binder_app.command("create")
def binder_create(org: str, slug: str, name: str) -> None:
    """Create a binder (classeur de dépôt) in an organisation."""
    with _session() as session:
        binder = admin.create_binder(session, org, slug, name)
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
) -> None:
    """Create a collection channel (connecteur marchand), optionally with its first account."""
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
        admin.check_new_channel(session, org, **fields)
    password, seed = _read_secrets(password_stdin, with_totp) if login is not None else (None, None)
    with _session() as session:
        channel = admin.add_channel(session, org, **fields)
        if login is not None:
            admin.add_account(session, channel, login=login, password=password, totp_seed=seed)
    accounts = "one account" if login is not None else "no account yet: add one with 'glaneur channel account-add'"
    _say(f"Created channel {channel.slug} ({channel.label}, {channel.provider}), {accounts}; daily at {channel.time_slot}.")


@channel_app.command("account-add")
def channel_account_add(
    channel: str,
    login: str = typer.Option(..., "--login", help="Identifier or e-mail on the supplier's portal."),
    password_stdin: bool = PASSWORD_STDIN,
    with_totp: bool = WITH_TOTP,
) -> None:
    """Add an account (credential set) to a channel: at most two per channel (jusqu'à deux comptes)."""
    with _session() as session:
        admin.check_account_slot(session, channel, login)
    password, seed = _read_secrets(password_stdin, with_totp)
    with _session() as session:
        account = admin.add_account(session, channel, login=login, password=password, totp_seed=seed)
        _say(f"Added account {account.login} to {channel} (account {account.position} of {MAX_ACCOUNTS_PER_CHANNEL}).")


@channel_app.command("update-credentials")
def channel_update_credentials(
    channel: str,
    login: str = typer.Option(..., "--login", help="The account whose credentials changed."),
    password_stdin: bool = PASSWORD_STDIN,
    with_totp: bool = WITH_TOTP,
) -> None:
    """Overwrite an account's password (and TOTP seed) after a change or expiry ("Modifier")."""
    with _session() as session:
        admin.get_account(session, channel, login)
    password, seed = _read_secrets(password_stdin, with_totp)
    with _session() as session:
        admin.update_credentials(session, channel, login, password=password, totp_seed=seed)
    _say(f"Updated the credentials of {login} on {channel}; collection resumes at the next run.")


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


def main() -> None:  # pragma: no cover - console script convenience
    app()
