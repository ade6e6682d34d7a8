"""``glaneur connector-request``: asking for a collector the catalogue lacks (Demander l'ajout d'un collecteur)."""

from __future__ import annotations

import typer

from cli import common

request_app = common.group("Requests for new collectors (Demander l'ajout d'un collecteur).")


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
    from glaneur import admin

    with common.session() as session:
        asked = admin.request_connector(
            session, org, supplier=supplier, url=url, message=message, actor=common.actor(session, org)
        )
    request = asked.request
    if asked.joined:
        common.say(
            f"{asked.first_asker} already asked for this collector: request #{request.id} "
            f"({request.supplier_name}, {request.portal_url}), open. You will be notified too when it is available."
        )
        return
    common.say(
        f"Request #{request.id} sent: a collector for {request.supplier_name} ({request.portal_url}). "
        "Our team adds it as soon as possible; you will be notified when it is available."
    )


@request_app.command("list")
def request_list(
    org: str | None = typer.Option(None, "--org", help="Only this organisation's requests."),
    state: str | None = typer.Option(None, "--state", help="Only requests in this state: open, shipped, rejected."),
) -> None:
    """Requests for new collectors and their state, newest first."""
    from glaneur import admin

    with common.session() as session:
        readable = common.readable_within(session, org=org)
        entries = admin.list_connector_requests(session, org=org, state=state, organizations=readable)
    common.print_rows(
        "Connector requests",
        ("#", "Date (UTC)", "Organisation", "Asked by", "Supplier", "Portal", "State", "Message"),
        [
            (entry.request.id, common.when(entry.request.created_at), entry.organization,
             "\n".join((entry.requester, *entry.followers)),
             entry.request.supplier_name, entry.request.portal_url, _state_text(entry.request), entry.request.message)
            for entry in entries
        ],
        empty="No connector request matches.",
    )


def _state_text(request) -> str:
    text = request.state.value + (f"\n{request.provider}" if request.provider else "")
    if request.reason:
        text += f"\n{request.reason}"
    if request.notified_at:
        text += f"\nnotified {common.when(request.notified_at)}"
    return text


def _say_told(told) -> None:
    delivery = told.delivery
    how = f"mailed ({delivery.where})" if delivery.delivered else f"in the bell only, the mail failed: {delivery.error}"
    what = f"shipped with provider {told.request.provider}" if told.request.provider else "rejected"
    common.say(
        f"Request #{told.request.id} ({told.request.supplier_name}) {what}; {told.requester.email} notified, {how}.",
        style="green" if delivery.delivered else "yellow",
    )


@request_app.command("ship")
def request_ship(
    request_id: int = typer.Argument(..., metavar="ID", help="The request's number."),
    provider: str = typer.Option(..., "--provider", help="Slug of the catalogue provider that now collects it."),
) -> None:
    """Mark a request shipped with a provider and notify everyone who asked (platform team)."""
    from glaneur import admin

    with common.session() as session:
        told = admin.ship_connector_request(session, request_id, provider)
    for item in told:
        _say_told(item)


@request_app.command("reject")
def request_reject(
    request_id: int = typer.Argument(..., metavar="ID", help="The request's number."),
    reason: str = typer.Option(..., "--reason", help="Why the collector cannot be built; sent to everyone who asked."),
) -> None:
    """Close a request whose collector cannot be built, and tell everyone who asked why (platform team)."""
    from glaneur import admin

    with common.session() as session:
        told = admin.reject_connector_request(session, request_id, reason)
    for item in told:
        _say_told(item)


@request_app.command("sync")
def request_sync() -> None:
    """Ship the open requests whose portal a catalogue provider now serves; notify each user who asked once."""
    from glaneur import admin

    with common.session() as session:
        told = admin.sync_connector_requests(session)
    if not told:
        common.say("No open request has a collector yet.", style="yellow")
    for item in told:
        _say_told(item)
