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
        request = admin.request_connector(
            session, org, supplier=supplier, url=url, message=message, actor=common.actor(session, org)
        )
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
        if org is not None:
            common.read_org(session, org)
        entries = admin.list_connector_requests(session, org=org, state=state, organizations=common.readable(session))
    if not entries:
        common.say("No connector request matches.", style="yellow")
        return
    table = common.table(
        "Connector requests", "#", "Date (UTC)", "Organisation", "Requester", "Supplier", "Portal", "State", "Message"
    )
    for entry in entries:
        request = entry.request
        state_text = request.state.value + (f"\n{request.provider}" if request.provider else "")
        if request.notified_at:
            state_text += f"\nnotified {common.when(request.notified_at)}"
        table.add_row(
            *map(
                common.cell,
                (
                    request.id,
                    common.when(request.created_at),
                    entry.organization,
                    entry.requester,
                    request.supplier_name,
                    request.portal_url,
                    state_text,
                    request.message,
                ),
            )
        )
    common.out().print(table)


def _say_shipped(shipped) -> None:
    delivery = shipped.delivery
    how = f"mailed ({delivery.where})" if delivery.delivered else f"in the bell only, the mail failed: {delivery.error}"
    common.say(
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
    from glaneur import admin

    with common.session() as session:
        shipped = admin.ship_connector_request(session, request_id, provider)
    _say_shipped(shipped)


@request_app.command("sync")
def request_sync() -> None:
    """Ship the open requests whose portal a catalogue provider now serves; notify each requester once."""
    from glaneur import admin

    with common.session() as session:
        shipped = admin.sync_connector_requests(session)
    if not shipped:
        common.say("No open request has a collector yet.", style="yellow")
    for item in shipped:
        _say_shipped(item)
