"""``glaneur statements``: intake, routing, the history and the global file of a firm's bank statements."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import typer

from cli import common
from glaneur.errors import GlaneurError, UsageError
from glaneur.vocabulary import StatementRoute

statements_app = common.group("Bank statements: intake, routing, global file.")


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
        parsed = parse_statement_file(data, max_bytes=common.settings().max_statement_file_bytes)
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
    from glaneur.statements import firm as firms
    from glaneur.models import StatementSourceKind
    from glaneur.storage import get_storage, safe_part

    with common.session() as session:
        org_row = firms.require_firm(session, org)
        firms.require_profile(common.actor(session, org_row), org_row)
        inboxes = [s for s in firms.statement_sources(session, org_row) if s.kind == StatementSourceKind.INBOX]
    chosen = [s for s in inboxes if source is None or s.slug == source]
    if len(chosen) != 1:
        names = ", ".join(s.slug for s in inboxes) or "none yet (add one with 'glaneur firm source-add ORG SLUG --inbox')"
        raise UsageError(f"choose the inbox with --source; inboxes of {org}: {names}.")
    storage = get_storage(common.settings())
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as error:
            raise UsageError(f"cannot read {path}: {error.strerror or error}.") from None
        result = storage.put(f"{chosen[0].inbox_prefix}{safe_part(path.name)}", data, metadata={"firm": org},
                             content_type="application/octet-stream")
        common.say(f"{path.name}: {'dropped into' if result.created else 'already in'} {chosen[0].inbox_prefix}")


@statements_app.command("route")
def statements_route(
    org: str,
    day: str | None = typer.Option(None, "--day", help="The day whose global file receives statements (default today)."),
) -> None:
    """Take in and route the firm's statements now, in this process, as its own flow run (any firm profile, --as)."""
    from glaneur.statements import firm as firms

    with common.session() as session:
        org_row = firms.require_firm(session, org)
        firms.require_profile(common.actor(session, org_row), org_row)
    from flows.route_statements import run_firm

    with common.out().status(f"Routing the statements of {org}…"):
        try:
            summary = run_firm(org, date.fromisoformat(day) if day else None)
        except ValueError:
            raise UsageError(f"invalid day '{day}': expected YYYY-MM-DD.") from None
        except GlaneurError as error:
            common.error_line(f"the routing of {org} failed: {error.user_message}")
            raise typer.Exit(common.FAILED_EXIT) from None
    common.print_rows(
        f"Statement sources of {org}",
        ("Source", "Files", "Duplicates", "New statements", "Rejected", "Error"),
        [
            (pull["source"], pull["files"], pull["duplicates"], pull["new_statements"],
             "\n".join(f"{name}: {message}" for name, message in pull["rejected"]) or "-", pull["error"] or "-")
            for pull in summary["sources"]
        ],
    )
    failed = summary["not_delivered"] or summary["rejected_files"] or any(p["error"] for p in summary["sources"])
    common.say(summary["message"], style="red" if failed else "green")
    if failed:
        raise typer.Exit(common.FAILED_EXIT)


@statements_app.command("list")
def statements_list(
    org: str,
    iban: str | None = typer.Option(None, "--iban", help="Only this IBAN's statements."),
    route: StatementRoute | None = typer.Option(None, "--route", help="Only statements routed this way."),
    limit: int = typer.Option(100, "--limit", min=1),
) -> None:
    """The statements history: what arrived and where each one went."""
    from glaneur.statements import firm as firms
    from glaneur.statements import routing

    with common.session() as session:
        common.read_org(session, org)
        compact = firms.normalize_iban(iban) if iban else None
        entries = routing.statement_history(session, org, iban=compact, route=route, limit=limit)
        rejected = routing.rejected_files(session, org)
    common.print_rows(
        f"Statements of {org}",
        ("#", "Received (UTC)", "IBAN", "Client", "Period", "Closing", "Entries", "Warnings", "Went to"),
        [_statement_row(entry, routing.warnings_of(entry.statement)) for entry in entries],
        empty=f"No statement for {org} yet.",
    )
    if rejected and iban is None and route is None:
        common.print_rows(
            f"Rejected files of {org} (kept as received)",
            ("Received (UTC)", "File", "Reason", "Stored at"),
            [(common.when(i.received_at), i.source_name, i.error_message, i.storage_key) for i in rejected],
        )


def _statement_row(entry, warnings: list[dict]) -> tuple[object, ...]:
    s = entry.statement
    return (s.id, common.when(s.received_at), s.iban or s.account, entry.client or "-", f"{s.period_start} → {s.period_end}",
            f"{s.closing_balance} {s.currency}", s.entries,
            "\n".join(f"{w['code']}: {w['message']}" for w in warnings) or "-", entry.destination)


@statements_app.command("release")
def statements_release(org: str, statement_id: int) -> None:
    """Route a statement held for review because of its warnings (any firm profile); the next routing sends it."""
    from glaneur.statements import firm as firms
    from glaneur.statements import routing

    with common.session() as session:
        org_row = firms.require_firm(session, org)
        firms.require_profile(common.actor(session, org_row), org_row)
        statement = routing.release(session, org_row, statement_id)
        common.say(
            f"Statement #{statement.id} ({statement.iban or statement.account}, {statement.period_end}) "
            "released: the next routing sends it on."
        )


@statements_app.command("download")
def statements_download(
    org: str,
    day: str | None = typer.Option(None, "--day", help="The global file's day (default today), YYYY-MM-DD."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Where to write the zip."),
) -> None:
    """Download the firm's global statements file of a day (Relevés > Télécharger): a zip with a manifest."""
    from glaneur.statements import routing

    from glaneur.admin import parse_date
    from glaneur.storage import get_storage

    when = parse_date(day) if day else date.today()
    with common.session() as session:
        common.read_org(session, org)
        data, count = routing.global_file(session, get_storage(common.settings()), org, when)
    target = output or Path(f"{org}-statements-{when.isoformat()}.zip")
    try:
        target.write_bytes(data)
    except OSError as error:
        raise UsageError(f"cannot write {target}: {error.strerror or error}.") from None
    common.say(f"Wrote {target}: {count} statement(s) of {org}'s global file of {when.isoformat()}.")
