"""``glaneur history|documents|audit``: what was collected, what was filed, who changed what."""

from __future__ import annotations

import typer

from cli import common


def history(
    channel: str | None = typer.Option(None, "--channel", help="Only this channel."),
    status: str | None = typer.Option(None, "--status", help="Only runs ending with this status (e.g. wrong_credentials)."),
    since: str | None = typer.Option(None, "--since", help="Only runs started on or after this day, YYYY-MM-DD."),
    limit: int = typer.Option(50, "--limit", min=1, help="At most this many runs, newest first."),
) -> None:
    """Collection history, newest first ("Collecte > Historique")."""
    from glaneur import admin

    with common.session() as session:
        if channel is not None:
            common.read_channel(session, channel)
        entries = admin.history(session, channel=channel, status=status, since=since, limit=limit,
                                organizations=common.readable(session))
    if not entries:
        common.say("No collection matches.", style="yellow")
        return
    table = common.table("History", "Date (UTC)", "Channel", "Account", "New", "Already had", "Status")
    for entry in entries:
        table.add_row(
            *map(common.cell, (common.when(entry.run.started_at), entry.channel.slug, entry.login or "-")),
            *map(common.cell, (entry.run.new_documents, entry.run.already_had)),
            common.status_and_message(entry.run.status, entry.message),
        )
    common.out().print(table)


def documents(
    channel: str | None = typer.Option(None, "--channel", help="Only this channel's documents."),
    limit: int = typer.Option(100, "--limit", min=1, help="At most this many documents, newest first."),
) -> None:
    """Filed documents, newest first."""
    from glaneur import admin

    with common.session() as session:
        if channel is not None:
            common.read_channel(session, channel)
        found = admin.list_documents(session, channel=channel, limit=limit, organizations=common.readable(session))
        slugs = admin.channel_slugs(session, {document.channel_id for document in found})
    if not found:
        common.say("No documents filed yet.", style="yellow")
        return
    table = common.table("Documents", "Date", "Channel", "Reference", "Amount", "Size", "Storage key")
    for document in found:
        amount = f"{document.amount} {document.currency}" if document.amount is not None else "-"
        table.add_row(
            *map(
                common.cell,
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
    common.out().print(table)


def audit(
    org: str | None = typer.Option(None, "--org", help="Only this organisation's log."),
    limit: int = typer.Option(50, "--limit", min=1, help="At most this many lines, newest first."),
) -> None:
    """Who created, changed the credentials of, or deleted what, and when (never a secret)."""
    from glaneur import admin

    with common.session() as session:
        if org is not None:
            common.read_org(session, org)
        entries = admin.audit_log(session, org=org, limit=limit, organizations=common.readable(session))
    if not entries:
        common.say("The audit log is empty.", style="yellow")
        return
    table = common.table("Audit log", "Date (UTC)", "Organisation", "Who", "Action", "Target", "Detail")
    for entry in entries:
        table.add_row(
            *map(
                common.cell,
                (
                    common.when(entry.log.at),
                    entry.organization,
                    entry.actor or "platform (console)",
                    entry.log.action,
                    entry.log.target,
                    entry.log.detail,
                ),
            )
        )
    common.out().print(table)
