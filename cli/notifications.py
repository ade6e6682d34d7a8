"""``glaneur notifications``: the acting user's bell."""

from __future__ import annotations

import typer
from rich.text import Text

from cli import common

notifications_app = common.group("The acting user's notifications (the bell).")


def _me(session, org: str | None):
    """The acting user, in ``org`` or in the only organisation their address belongs to."""
    from glaneur import admin

    return admin.get_person(session, common.acting_email(), org)


@notifications_app.command("list")
def notifications_list(
    org: str | None = typer.Option(None, "--org", help="The organisation, when the address belongs to several."),
    unread: bool = typer.Option(False, "--unread", help="Only unread notifications."),
) -> None:
    """The acting user's notifications, newest first (--as)."""
    from glaneur.notify import list_notifications

    with common.session() as session:
        user = _me(session, org)
        found = list_notifications(session, user, unread_only=unread)
    common.print_rows(
        f"Notifications of {user.email}",
        ("#", "Date (UTC)", "Kind", "Subject", "Read"),
        [(item.id, common.when(item.created_at), item.kind, _subject(item), common.when(item.read_at)) for item in found],
        empty=f"No {'unread ' if unread else ''}notification for {user.email}.",
    )


def _subject(item) -> Text:
    """Unread in bold, with the link under it."""
    subject = Text(common.clean(item.subject), style="default" if item.read_at else "bold")
    if item.link:
        subject.append(f"\n{common.clean(item.link)}", style="default")
    return subject


NOTIFICATION_IDS = typer.Argument(None, metavar="ID", help="Notifications to mark read; default: all unread.")


@notifications_app.command("read")
def notifications_read(
    ids: list[int] = NOTIFICATION_IDS,
    org: str | None = typer.Option(None, "--org", help="The organisation, when the address belongs to several."),
) -> None:
    """Mark the acting user's notifications read (--as)."""
    from glaneur.notify import mark_read

    with common.session() as session:
        user = _me(session, org)
        changed = mark_read(session, user, list(ids) if ids else None)
    common.say(f"Marked {changed} notification(s) of {user.email} read.")
