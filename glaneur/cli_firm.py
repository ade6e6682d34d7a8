"""``glaneur partner|firm|iban|statements``: the accounting firms' side, in a terminal.

The same rules as :mod:`glaneur.cli` (thin commands, one red line for bad input, secrets from a hidden
prompt or stdin, changes made ``--as`` a known user); the plumbing is :mod:`glaneur.cli`'s.
"""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path

import typer

from glaneur import cli as base
from glaneur import firm as firms
from glaneur import routing
from glaneur.errors import GlaneurError, UsageError
from glaneur.models import StatementRoute

partner_app = typer.Typer(no_args_is_help=True, help="Partner connectors (production tools) statements can go to.")
firm_app = typer.Typer(no_args_is_help=True, help="An accounting firm's connectors and statement sources.")
iban_app = typer.Typer(no_args_is_help=True, help="A firm's client IBANs: connector and mandate.")
statements_app = typer.Typer(no_args_is_help=True, help="Bank statements: intake, routing, global file.")


def register(app: typer.Typer) -> None:
    app.add_typer(partner_app, name="partner")
    app.add_typer(firm_app, name="firm")
    app.add_typer(iban_app, name="iban")
    app.add_typer(statements_app, name="statements")


def _firm_actor(session, org: str):
    """The acting user, once ``org`` is known to be a firm (the firm's error comes first)."""
    return base._actor(session, firms.require_firm(session, org))


def _secret(from_stdin: bool, prompt: str) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return typer.prompt(prompt, hide_input=True)


# -- partner connectors (platform) ------------------------------------------------------------------


@partner_app.command("add")
def partner_add(
    slug: str,
    name: str,
    url: str | None = typer.Option(None, "--url", help="Where the partner takes statements over HTTP (signed)."),
    secret_stdin: bool = typer.Option(False, "--secret-stdin", help="Read the signing secret from stdin."),
    support: str = typer.Option("", "--support", help="Whom firms contact when nothing arrives in the tool."),
) -> None:
    """Add a partner connector to the catalogue (the platform team's act). With --url, asks for its secret."""
    secret = _secret(secret_stdin, "Signing secret") if url else None
    with base._session() as session:
        partner = firms.create_partner(session, slug, name, delivery_url=url, secret=secret, support_contact=support)
        how = f"HTTP to {partner.delivery_url} and" if partner.delivery_url else "only"
        base._say(f"Added partner connector {partner.slug} ({partner.name}): delivered {how} under partners/{slug}/.")


@partner_app.command("update")
def partner_update(
    slug: str,
    url: str | None = typer.Option(None, "--url", help="New delivery address."),
    secret_stdin: bool = typer.Option(False, "--secret-stdin", help="Read a new signing secret from stdin."),
    new_secret: bool = typer.Option(False, "--new-secret", help="Ask for a new signing secret (hidden prompt)."),
) -> None:
    """Change a partner's delivery address or signing secret."""
    secret = _secret(secret_stdin, "Signing secret") if (secret_stdin or new_secret) else None
    with base._session() as session:
        partner = firms.update_partner(session, slug, delivery_url=url, secret=secret)
        base._say(f"Updated partner connector {partner.slug}.")


@partner_app.command("list")
def partner_list() -> None:
    """The catalogue of partner connectors."""
    with base._session() as session:
        partners = firms.list_partners(session)
    if not partners:
        base._say("No partner connector yet: add one with 'glaneur partner add'.", style="yellow")
        return
    table = base._table("Partner connectors", "Slug", "Name", "Delivery", "Support")
    for partner in partners:
        table.add_row(base._cell(partner.slug), base._cell(partner.name),
                      base._cell(partner.delivery_url or "storage only"), base._cell(partner.support_contact or "-"))
    base._out().print(table)


# -- a firm's connectors and sources ("Cabinet(s)" page) -------------------------------------------------


@firm_app.command("connectors")
def firm_connectors(org: str) -> None:
    """The connectors associated with the firm."""
    with base._session() as session:
        found = firms.firm_connectors(session, org)
    if not found:
        base._say(f"Firm {org} has no connector yet: a supervisor or administrator adds one with "
                  "'glaneur firm connector-add'.", style="yellow")
        return
    table = base._table(f"Connectors of {org}", "Slug", "Name")
    for partner in found:
        table.add_row(base._cell(partner.slug), base._cell(partner.name))
    base._out().print(table)


@firm_app.command("connector-add")
def firm_connector_add(org: str, partner: str) -> None:
    """Associate a connector with the firm (supervisor or administrator)."""
    with base._session() as session:
        firms.associate_connector(session, org, partner, actor=_firm_actor(session, org))
        base._say(f"Connector {partner} associated with {org}: its IBANs can now be attached to it.")


@firm_app.command("connector-remove")
def firm_connector_remove(org: str, partner: str) -> None:
    """Remove a connector from the firm (supervisor or administrator; refused while IBANs are attached to it)."""
    with base._session() as session:
        firms.remove_connector(session, org, partner, actor=_firm_actor(session, org))
        base._say(f"Connector {partner} removed from {org}.")


@firm_app.command("source-add")
def firm_source_add(
    org: str,
    slug: str,
    url: str | None = typer.Option(None, "--url", help="The statement API's address (asks for the firm's token)."),
    token_stdin: bool = typer.Option(False, "--token-stdin", help="Read the API token from stdin."),
    inbox: str | None = typer.Option(None, "--inbox", help="An inbox name: files dropped under ORG/inbox/NAME/."),
) -> None:
    """Add where the firm's statement files come from (supervisor or administrator)."""
    token = _secret(token_stdin, "API token") if url else None
    with base._session() as session:
        source = firms.add_statement_source(
            session, org, slug, url=url, token=token, inbox_prefix=inbox, actor=_firm_actor(session, org)
        )
        where = source.url if source.url else f"storage prefix {source.inbox_prefix}"
        base._say(f"Statement source {source.slug} added to {org}: {where}.")


@firm_app.command("source-token")
def firm_source_token(
    org: str,
    slug: str,
    token_stdin: bool = typer.Option(False, "--token-stdin", help="Read the API token from stdin."),
) -> None:
    """Enter a statement API's token again, e.g. when it can no longer be read (supervisor or administrator)."""
    token = _secret(token_stdin, "API token")
    with base._session() as session:
        firms.replace_source_token(session, org, slug, token, actor=_firm_actor(session, org))
        base._say(f"Token of statement source {slug} of {org} replaced: the next routing reads it.")


@firm_app.command("sources")
def firm_sources(org: str) -> None:
    """The firm's statement sources, with their last poll and error."""
    with base._session() as session:
        found = firms.statement_sources(session, org)
    table = base._table(f"Statement sources of {org}", "Slug", "Kind", "Where", "Last polled (UTC)", "Last error")
    for source in found:
        table.add_row(base._cell(source.slug), base._cell(source.kind.value),
                      base._cell(source.url or source.inbox_prefix), base._cell(base._when(source.last_polled_at)),
                      base._cell(source.last_error or "-"))
    base._out().print(table)


# -- client IBANs ("IBAN" page) ------------------------------------------------------------------------------


@iban_app.command("add")
def iban_add(
    org: str,
    iban: str,
    client: str = typer.Option(..., "--client", help="The client's name."),
    bic: str | None = typer.Option(None, "--bic", help="The bank's BIC (found from the IBAN when known)."),
    mandate_reference: str = typer.Option("", "--mandate-ref", help="The mandate's reference."),
) -> None:
    """Register a client's IBAN (any firm profile). Its mandate starts pending."""
    with base._session() as session:
        row = firms.add_iban(session, org, iban, client, bic=bic, mandate_reference=mandate_reference,
                             actor=_firm_actor(session, org))
        base._say(f"IBAN {row.iban} of {row.client_name} added to {org}; mandate {row.mandate_status.value}.")


@iban_app.command("attach")
def iban_attach(org: str, iban: str, connector: str = typer.Argument(..., help="A connector slug, or 'none'.")) -> None:
    """Attach an IBAN to one of the firm's connectors, or to 'none' (Aucun connecteur). Any firm profile."""
    with base._session() as session:
        row = firms.attach_iban(session, org, iban, connector, actor=_firm_actor(session, org))
        if row.partner_id is None:
            base._say(f"IBAN {row.iban} has no connector: its statements go into {org}'s global statements file.")
        elif row.active:
            base._say(f"IBAN {row.iban} attached to {connector}: its statements go to that partner, "
                      "no longer into the global statements file.")
        else:
            base._say(f"IBAN {row.iban} attached to {connector}, but its mandate is {row.mandate_status.value}: "
                      "its statements go into the global file until the mandate is approved.", style="yellow")


@iban_app.command("mandate")
def iban_mandate(
    org: str,
    iban: str,
    status: str = typer.Argument(..., help="pending, approved or revoked."),
    reference: str | None = typer.Option(None, "--reference", help="The mandate's reference."),
) -> None:
    """Record an IBAN's mandate status (supervisor or administrator). Only an approved mandate makes it active."""
    with base._session() as session:
        row = firms.set_mandate(session, org, iban, status, reference=reference, actor=_firm_actor(session, org))
        base._say(f"Mandate of {row.iban}: {row.mandate_status.value}; IBAN {'active' if row.active else 'inactive'}.")


@iban_app.command("list")
def iban_list(org: str) -> None:
    """The firm's client IBANs with their connector and mandate."""
    with base._session() as session:
        rows = firms.list_ibans(session, org)
    if not rows:
        base._say(f"Firm {org} has no client IBAN yet: add one with 'glaneur iban add'.", style="yellow")
        return
    table = base._table(f"Client IBANs of {org}", "IBAN", "Client", "Connector", "Mandate", "Active")
    for row, partner in rows:
        table.add_row(base._cell(row.iban), base._cell(row.client_name),
                      base._cell(partner.slug if partner else "none"), base._cell(row.mandate_status.value),
                      base._cell("yes" if row.active else "no"))
    base._out().print(table)


# -- statements -------------------------------------------------------------------------------------------------


@statements_app.command("parse")
def statements_parse(path: Path = typer.Argument(..., help="A CAMT.053 or MT940 file.")) -> None:
    """Print, as JSON, one object per statement of a file (IBAN, currency, balances, entries, period)."""
    from glaneur.statements import StatementFileError, parse_statement_file

    try:
        data = path.read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror or error}.") from None
    try:
        parsed = parse_statement_file(data, max_bytes=base.get_settings().max_statement_file_bytes)
    except StatementFileError as error:
        raise UsageError(f"{path}: {error}") from None
    typer.echo(json.dumps([statement.as_json() for statement in parsed], indent=2, ensure_ascii=False))


@statements_app.command("import")
def statements_import(
    org: str,
    paths: list[Path] = typer.Argument(..., help="Statement files to drop into the firm's inbox."),
    source: str | None = typer.Option(None, "--source", help="The inbox source (default: the firm's only inbox)."),
) -> None:
    """Drop files into one of the firm's inboxes; the next routing takes them in (any firm profile)."""
    from glaneur.models import StatementSourceKind
    from glaneur.storage import get_storage, safe_part

    with base._session() as session:
        org_row = firms.require_firm(session, org)
        firms.require_profile(base._actor(session, org_row), org_row)
        inboxes = [s for s in firms.statement_sources(session, org_row) if s.kind == StatementSourceKind.INBOX]
    chosen = [s for s in inboxes if source is None or s.slug == source]
    if len(chosen) != 1:
        names = ", ".join(s.slug for s in inboxes) or "none yet (add one with 'glaneur firm source-add ORG SLUG --inbox')"
        raise UsageError(f"choose the inbox with --source; inboxes of {org}: {names}.")
    storage = get_storage(base.get_settings())
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as error:
            raise UsageError(f"cannot read {path}: {error.strerror or error}.") from None
        result = storage.put(f"{chosen[0].inbox_prefix}{safe_part(path.name)}", data, metadata={"firm": org},
                             content_type="application/octet-stream")
        base._say(f"{path.name}: {'dropped into' if result.created else 'already in'} {chosen[0].inbox_prefix}")


@statements_app.command("route")
def statements_route(
    org: str,
    day: str | None = typer.Option(None, "--day", help="The day whose global file receives statements (default today)."),
) -> None:
    """Take in and route the firm's statements now, in this process, as its own flow run."""
    with base._session() as session:
        firms.require_firm(session, org)
    from flows.route_statements import run_firm

    with base._out().status(f"Routing the statements of {org}…"):
        try:
            summary = run_firm(org, date.fromisoformat(day) if day else None)
        except ValueError:
            raise UsageError(f"invalid day '{day}': expected YYYY-MM-DD.") from None
        except GlaneurError as error:
            base._error(f"the routing of {org} failed: {error.user_message}")
            raise typer.Exit(base.FAILED_EXIT) from None
    table = base._table(f"Statement sources of {org}", "Source", "Files", "Duplicates", "New statements", "Rejected",
                        "Error")
    for pull in summary["sources"]:
        rejected = "\n".join(f"{name}: {message}" for name, message in pull["rejected"])
        table.add_row(base._cell(pull["source"]), base._cell(pull["files"]), base._cell(pull["duplicates"]),
                      base._cell(pull["new_statements"]), base._cell(rejected or "-"), base._cell(pull["error"] or "-"))
    base._out().print(table)
    failed = summary["not_delivered"] or summary["rejected_files"] or any(p["error"] for p in summary["sources"])
    base._say(summary["message"], style="red" if failed else "green")
    if failed:
        raise typer.Exit(base.FAILED_EXIT)


@statements_app.command("list")
def statements_list(
    org: str,
    iban: str | None = typer.Option(None, "--iban", help="Only this IBAN's statements."),
    route: StatementRoute | None = typer.Option(None, "--route", help="Only statements routed this way."),
    limit: int = typer.Option(100, "--limit", min=1),
) -> None:
    """The statements history: what arrived and where each one went."""
    with base._session() as session:
        compact = firms.normalize_iban(iban) if iban else None
        entries = routing.statement_history(session, org, iban=compact, route=route, limit=limit)
        rejected = routing.rejected_files(session, org)
    if not entries:
        base._say(f"No statement for {org} yet.", style="yellow")
    else:
        table = base._table(f"Statements of {org}", "Received (UTC)", "IBAN", "Client", "Period", "Closing",
                            "Entries", "Went to")
        for entry in entries:
            s = entry.statement
            table.add_row(base._cell(base._when(s.received_at)), base._cell(s.iban or s.account),
                          base._cell(entry.client or "-"), base._cell(f"{s.period_start} → {s.period_end}"),
                          base._cell(f"{s.closing_balance} {s.currency}"), base._cell(s.entries),
                          base._cell(entry.destination))
        base._out().print(table)
    if rejected and iban is None and route is None:
        table = base._table(f"Rejected files of {org} (kept as received)", "Received (UTC)", "File", "Reason",
                            "Stored at")
        for item in rejected:
            table.add_row(base._cell(base._when(item.received_at)), base._cell(item.source_name),
                          base._cell(item.error_message), base._cell(item.storage_key))
        base._out().print(table)


@statements_app.command("download")
def statements_download(
    org: str,
    day: str | None = typer.Option(None, "--day", help="The global file's day (default today), YYYY-MM-DD."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Where to write the zip."),
) -> None:
    """Download the firm's global statements file of a day (Relevés > Télécharger): a zip with a manifest."""
    from glaneur.admin import parse_date
    from glaneur.storage import get_storage

    when = parse_date(day) if day else date.today()
    with base._session() as session:
        data, count = routing.global_file(session, get_storage(base.get_settings()), org, when)
    target = output or Path(f"{org}-statements-{when.isoformat()}.zip")
    try:
        target.write_bytes(data)
    except OSError as error:
        raise UsageError(f"cannot write {target}: {error.strerror or error}.") from None
    base._say(f"Wrote {target}: {count} statement(s) of {org}'s global file of {when.isoformat()}.")
