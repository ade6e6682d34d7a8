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
        entries = admin.history(session, channel=channel, status=status, since=since, limit=limit,
                                organizations=common.readable_within(session, channel=channel))
    common.print_rows(
        "History",
        ("Date (UTC)", "Channel", "Account", "New", "Already had", "Status"),
        [
            (common.when(entry.run.started_at), entry.channel.slug, entry.login or "-", entry.run.new_documents,
             entry.run.already_had, common.status_and_message(entry.run.status, entry.message))
            for entry in entries
        ],
        empty="No collection matches.",
    )


def documents(
    channel: str | None = typer.Option(None, "--channel", help="Only this channel's documents."),
    limit: int = typer.Option(100, "--limit", min=1, help="At most this many documents, newest first."),
) -> None:
    """Filed documents, newest first."""
    from glaneur import admin

    with common.session() as session:
        readable = common.readable_within(session, channel=channel)
        found = admin.list_documents(session, channel=channel, limit=limit, organizations=readable)
        slugs = admin.channel_slugs(session, {document.channel_id for document in found})
    common.print_rows(
        "Documents",
        ("Date", "Channel", "Reference", "Amount", "Size", "Storage key"),
        [
            (document.document_date.isoformat(), slugs.get(document.channel_id, "?"), document.provider_reference,
             f"{document.amount} {document.currency}" if document.amount is not None else "-",
             f"{document.size:,} B", document.storage_key)
            for document in found
        ],
        empty="No documents filed yet.",
    )


def audit(
    org: str | None = typer.Option(None, "--org", help="Only this organisation's log."),
    limit: int = typer.Option(50, "--limit", min=1, help="At most this many lines, newest first."),
) -> None:
    """Who created, changed the credentials of, or deleted what, and when (never a secret)."""
    from glaneur import admin

    with common.session() as session:
        entries = admin.audit_log(session, org=org, limit=limit, organizations=common.readable_within(session, org=org))
    common.print_rows(
        "Audit log",
        ("Date (UTC)", "Organisation", "Who", "Action", "Target", "Detail"),
        [
            (common.when(entry.log.at), entry.organization, entry.actor or "platform (console)", entry.log.action,
             entry.log.target, entry.log.detail)
            for entry in entries
        ],
        empty="The audit log is empty.",
    )
