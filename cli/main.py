"""The ``glaneur`` command: its root (``--as``) and its command groups, assembled in one place."""

from __future__ import annotations

import http.client
import os
from pathlib import Path

import typer

from cli import bank, channels, common, doctor, firm, history, notifications, requests, setup, statements, vault

app = typer.Typer(
    cls=common.Root,
    no_args_is_help=True,
    add_completion=False,
    # Plain help: Typer 0.29's Rich help prints a '<bool>' type after every flag.
    rich_markup_mode=None,
    pretty_exceptions_show_locals=False,  # a crash must never print the password held in a local variable
    help="Glaneur: collects supplier invoices from customer portals and routes bank statements per IBAN, every day.",
)


@app.callback()
def root(
    acting_user: str | None = typer.Option(
        None,
        "--as",
        metavar="EMAIL",
        help="Act as this user (default: the setting GLANEUR_ACTING_USER). Changes, and runs started by hand, are "
        "refused unless the user belongs to the organisation concerned and holds the right they need; the audit log "
        "records them. Reads then show only the user's organisations.",
    ),
) -> None:
    """Glaneur: collects supplier invoices from customer portals and routes bank statements per IBAN, every day."""
    common.acting_user.set(acting_user)
    _use_the_demo_prefect_server()


def _use_the_demo_prefect_server() -> None:
    """Runs started here show in the demo's Prefect UI when that server is up (``make demo`` leaves it running).

    Without a server Prefect would start a temporary one for each command (10-16 s) whose runs no UI
    shows. An explicit ``PREFECT_API_URL`` wins. Telemetry is off: there is no internet to send it to.
    """
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if os.environ.get("PREFECT_API_URL"):
        return
    marker = Path(common.settings().home) / "prefect" / "api-url"
    try:
        api_url = marker.read_text().strip()
    except OSError:
        return
    if _answers(api_url):
        os.environ["PREFECT_API_URL"] = api_url


def _answers(api_url: str) -> bool:
    host_port = api_url.removeprefix("http://").split("/", 1)[0]
    host, _, port = host_port.rpartition(":")
    connection = http.client.HTTPConnection(host.strip("[]"), int(port or 80), timeout=0.5)
    try:
        connection.request("GET", "/api/health")
        return connection.getresponse().status == 200
    except (OSError, ValueError):
        return False
    finally:
        connection.close()


app.command()(setup.init)
app.add_typer(setup.org_app, name="org")
app.add_typer(setup.user_app, name="user")
app.add_typer(setup.binder_app, name="binder")
app.add_typer(channels.channel_app, name="channel")
app.command()(channels.channels)
app.command()(channels.providers)
app.command()(channels.run)
app.command()(history.history)
app.command()(history.documents)
app.command()(history.audit)
app.command()(doctor.doctor)
app.add_typer(requests.request_app, name="connector-request")
app.add_typer(notifications.notifications_app, name="notifications")
app.add_typer(vault.vault_app, name="vault")
app.add_typer(firm.partner_app, name="partner")
app.add_typer(firm.firm_app, name="firm")
app.add_typer(firm.iban_app, name="iban")
app.add_typer(statements.statements_app, name="statements")
app.add_typer(bank.bank_app, name="bank")
app.command("serve")(bank.serve)


def main() -> None:  # pragma: no cover - console script convenience
    app()
