"""`make demo`: Glaneur's main job on embedded defaults.

Starts a local Prefect server (SQLite under ./var/prefect) and the sandbox supplier portals,
creates a demo organisation whose channels cover a success, two accounts on one channel, a
wrong password, a changed portal and a supplier's own Odoo portal (the ``odoo`` platform, its
address on the channel; port 8708), runs each channel's collection as its own Prefect flow
run, and prints a summary. Then an accounting firm's bank statements are taken from the sandbox
statement source and routed per IBAN (to two sandbox partners, the global file, or kept aside),
as one more flow run. The bank side comes last: the demo's accountant adds a bank of the Powens
sandbox (port 8706) to the referential, records the holder's consent and connects it through the
POWENS webview driven in Chromium (``glaneur bank connect``'s path), then one
``collect-bank-movements`` run files each account's movements (CSV, OFX, CAMT.053). Run again, it
files nothing new and says so.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass

import typer
from rich.console import Console
from rich.table import Table

from glaneur.settings import get_settings, reset_settings

console = Console(width=None if sys.stdout.isatty() else 160)


@dataclass(frozen=True)
class DemoChannel:
    slug: str
    label: str
    provider: str
    accounts: tuple[tuple[str, str | None], ...]  # (login, password or None for the sandbox's own)
    shows: str
    odoo: str | None = None  # an Odoo supplier of sandbox.odoo: the channel's portal is its own Odoo


ODOO_DEMO_PORT = 8708  # Infogérance Martin's Odoo portal (the address is kept in the demo channel)
DEMO_ACCOUNTANT = "compta@demo.example"
DEMO_BANK = "Banque Exemple"  # a bank of the Powens sandbox's list (sandbox/powens/state.py)
DEMO_BANK_CHANNEL = "demo-banque-exemple"
DEMO_BANK_BINDER = "mouvements-bancaires"
POWENS_DEMO_SECRET = "glaneur-sandbox-secret"  # the sandbox's client secret, as `python -m sandbox` prints it


DEMO_CHANNELS = (
    DemoChannel("demo-papeterie", "Papeterie Dupont", "papeterie-dupont", (("acme", None), ("acme-bis", None)),
                "success, two accounts on one channel"),
    DemoChannel("demo-energie", "Énergie Verte", "energie-verte", (("acme@client.test", None),), "success, list loaded as JSON"),
    DemoChannel("demo-papeterie-totp", "Papeterie Dupont (double authentification)", "papeterie-dupont",
                (("double-totp", None),), "second factor answered by the TOTP seed in the vault"),
    DemoChannel("demo-papeterie-mdp", "Papeterie Dupont (ancien mot de passe)", "papeterie-dupont",
                (("acme", "ancien-mot-de-passe"),), "wrong password: not retried"),
    DemoChannel("demo-papeterie-refonte", "Papeterie Dupont (nouveau site)", "papeterie-dupont",
                (("nouveau-site", None),), "changed portal: screenshot and trace kept"),
    DemoChannel("demo-odoo-martin", "Infogérance Martin (Odoo)", "odoo", (("acme@client.test", None),),
                "a supplier's own Odoo portal (platform provider, address on the channel)", odoo="infogerance-martin"),
)


def sandbox_account(provider: str, login: str):
    from sandbox.data import SUPPLIERS, accounts_of

    return accounts_of(SUPPLIERS[provider])[login]


def sandbox_password(demo: DemoChannel, login: str) -> tuple[str, str | None]:
    """The sandbox's password (and TOTP seed) of a demo account."""
    if demo.odoo is not None:
        from sandbox.odoo.data import ODOO_SUPPLIERS, odoo_accounts

        return odoo_accounts(ODOO_SUPPLIERS[demo.odoo])[login].password, None
    known = sandbox_account(demo.provider, login)
    return known.password, known.totp_seed


def create_demo_organization() -> bool:
    """Create the demo organisation once; False when it exists already (a demo channel added since is created)."""
    from sqlmodel import select

    import connectors.catalog  # noqa: F401  installs the provider catalogue the domain looks providers up in
    from glaneur import admin
    from glaneur.db import session_scope
    from glaneur.models import Channel, Organization, Right, User

    with session_scope() as session:
        created = session.exec(select(Organization).where(Organization.slug == "demo")).first() is None
        if created:
            admin.create_organization(session, "demo", "Boulangerie Démo")
            admin.create_user(session, "demo", DEMO_ACCOUNTANT, "Claire Compta",
                              [Right.CONFIGURE_COLLECTION, Right.CONFIGURE_ACCOUNTING])
        claire = session.exec(select(User).where(User.email == DEMO_ACCOUNTANT)).one()
        if created:
            admin.create_binder(session, "demo", "factures-fournisseurs", "Factures fournisseurs", actor=claire)
        for demo in DEMO_CHANNELS:
            if session.exec(select(Channel).where(Channel.slug == demo.slug)).first() is not None:
                continue
            portal = f"http://127.0.0.1:{ODOO_DEMO_PORT}" if demo.odoo else None
            admin.add_channel(
                session, "demo", label=demo.label, provider=demo.provider, binder="factures-fournisseurs",
                recipient=DEMO_ACCOUNTANT, slug=demo.slug, actor=claire, portal_url=portal,
            )
            for login, password in demo.accounts:
                known, seed = sandbox_password(demo, login)
                admin.add_account(
                    session, demo.slug, login=login, password=password or known, totp_seed=seed, actor=claire,
                )
    return created


def run(port: int = typer.Option(int(os.environ.get("GLANEUR_DEMO_PREFECT_PORT", 4200)), help="Prefect server port."),
        stop: bool = typer.Option(False, "--stop", help="Stop the demo's Prefect server and exit.")) -> None:
    from sandbox.prefect_server import LocalPrefect

    settings = get_settings()
    prefect = LocalPrefect(home=settings.home / "prefect", port=port)
    if stop:
        console.print("Prefect server stopped." if prefect.stop() else "No demo Prefect server was running.")
        return
    os.environ.update(prefect.environment())
    with console.status("Starting the local Prefect server (first start takes a minute)..."):
        started = prefect.start()
    console.print(f"Prefect server {'started' if started else 'already running'}: [bold]{prefect.ui_url}[/bold]")

    from sandbox.odoo import create_odoo_app
    from sandbox.server import STATEMENT_DEFAULT_PORTS, serve_app, start_sandbox

    odoo = serve_app(create_odoo_app("infogerance-martin"), "infogerance-martin", "/_sandbox/accounts", port=ODOO_DEMO_PORT)
    powens_world = demo_powens_world(settings.home)
    with odoo, start_powens_sandbox(powens_world), \
            start_sandbox(ports={"papeterie-dupont": 8701, "energie-verte": 8702, **STATEMENT_DEFAULT_PORTS}) as portals:
        os.environ["GLANEUR_PORTAL_URLS"] = json.dumps(portals.urls)
        reset_settings()
        settings = get_settings()
        from glaneur.db import migrate

        migrate()
        from infra.deploy import ensure_limits

        asyncio.run(ensure_limits())  # each provider's politeness limits, as `make deploy` creates them
        created = create_demo_organization()
        console.print("Demo organisation created." if created else "Demo organisation already there: collecting again.")
        results = []
        from flows.collect_channel import run_channel

        for demo in DEMO_CHANNELS:
            with console.status(f"Collecting {demo.label} ({demo.shows})..."):
                results.append((demo, run_channel(demo.slug)))
        statements = _route_demo_statements(portals.urls)
        movements = collect_demo_bank()
        powens_world.save(settings.home / POWENS_STATE_FILE)
    _print_summary(results, settings, prefect.ui_url)
    _print_statements(*statements)
    print_bank(*movements)


# --- the bank side: "Paramétrage POWENS", option 1 -------------------------------------------------------

# Under GLANEUR_HOME, apart from Glaneur's own stores: the Powens sandbox's users, tokens and connections between
# runs (Powens' side of the world, which keeps them; Glaneur keeps its token in its vault only).
POWENS_STATE_FILE = "sandbox/powens.json"


def demo_powens_world(home):
    """The Powens sandbox's world, with what the previous demo runs connected (Powens keeps it; so does the demo)."""
    from sandbox.powens import SANDBOX_CLIENT_ID, PowensWorld

    world = PowensWorld(SANDBOX_CLIENT_ID, POWENS_DEMO_SECRET)
    world.restore(home / POWENS_STATE_FILE)
    return world


def start_powens_sandbox(world, port: int | None = None):
    """Serve the Powens sandbox (port 8706 unless given) and point Glaneur's POWENS settings at it."""
    from sandbox.powens import DEFAULT_PORT, SANDBOX_CLIENT_ID, start_powens

    handle = start_powens(world, port=DEFAULT_PORT if port is None else port)
    url = handle.urls["powens"]
    os.environ.update(GLANEUR_POWENS_API_URL=url, GLANEUR_POWENS_WEBVIEW_URL=url,
                      GLANEUR_POWENS_CLIENT_ID=SANDBOX_CLIENT_ID, GLANEUR_POWENS_CLIENT_SECRET=POWENS_DEMO_SECRET)
    return handle


def connect_demo_bank() -> str | None:
    """Add the demo bank to the referential and connect it as ``glaneur bank connect`` does (the holder consents,
    the webview is driven in Chromium with the Powens sandbox's test credentials and SMS code). Returns the new
    channel's status message; None when the demo's bank channel exists already. Raises on anything else."""
    from sqlmodel import select

    from cli.bank import connect_with_credentials
    from glaneur import admin, bank
    from glaneur.db import session_scope
    from glaneur.errors import UsageError
    from glaneur.models import Binder, Channel, User
    from sandbox.powens.state import PASSWORD, SMS_CODE

    with session_scope() as session:
        if session.exec(select(Channel).where(Channel.slug == DEMO_BANK_CHANNEL)).first() is not None:
            return None
        org = admin.get_organization(session, "demo")
        claire = session.exec(select(User).where(User.organization_id == org.id, User.email == DEMO_ACCOUNTANT)).one()
        if not claire.has_right(bank.RIGHT):
            raise UsageError("this demo organisation was created before the bank channel (its accountant lacks "
                             "'Autoriser l'accès au paramétrage de la comptabilité'): run make clean, then make demo.")
        if not any(b.name == DEMO_BANK for b in bank.list_banks(session, org)):
            bank.add_bank(session, org, DEMO_BANK, actor=claire)
        binder = session.exec(select(Binder).where(Binder.organization_id == org.id,
                                                   Binder.slug == DEMO_BANK_BINDER)).first()
        if binder is None:
            admin.create_binder(session, org, DEMO_BANK_BINDER, "Mouvements bancaires", actor=claire)
    done = connect_with_credentials(
        "demo", DEMO_BANK, actor_email=DEMO_ACCOUNTANT, holder=DEMO_ACCOUNTANT, binder=DEMO_BANK_BINDER,
        recipient=DEMO_ACCOUNTANT, login="ok", password=lambda: PASSWORD, holder_consents=lambda text: True,
        ask_code=lambda prompt: SMS_CODE, label=f"{DEMO_BANK} (POWENS)", slug=DEMO_BANK_CHANNEL)
    if done is None:  # holder_consents answered yes: never here
        raise RuntimeError("the demo's holder consent was not recorded")
    return done.message


def collect_demo_bank() -> tuple[str | None, dict, list[tuple[str, str, int]]]:
    """Connect (first run only), then one ``collect-bank-movements`` flow run; the accounts and their movements."""
    from flows.collect_bank_movements import run_bank_channel
    from glaneur import bank
    from glaneur.db import session_scope

    with console.status(f"Connecting {DEMO_BANK} through the POWENS webview (consent, credentials, SMS code)..."):
        connected = connect_demo_bank()
    with console.status(f"Collecting the movements of {DEMO_BANK} through POWENS..."):
        summary = run_bank_channel(DEMO_BANK_CHANNEL)
    with session_scope() as session:
        _, connection = bank.get_connection(session, DEMO_BANK_CHANNEL)
        accounts = [(a.name, a.iban or a.number or "-", len(bank.movements(session, a)))
                    for a in bank.connection_accounts(session, connection)]
    return connected, summary, accounts


def print_bank(connected: str | None, summary: dict, accounts: list[tuple[str, str, int]]) -> None:
    console.print(f"Bank channel {DEMO_BANK_CHANNEL}: "
                  + ("connected now through the POWENS webview (consent recorded)." if connected
                     else "connected by an earlier run: collecting again."))
    table = Table(title=f"Bank movements of {DEMO_BANK} through POWENS: one flow run per bank channel")
    for column in ("account", "IBAN", "movements stored"):
        table.add_column(column, overflow="fold")
    for name, iban, count in accounts:
        table.add_row(name, iban, str(count))
    console.print(table)
    colour = "green" if summary["status"] in ("ok", "new") else "yellow"
    console.print(f"[{colour}]{summary['status']}[/{colour}]: {summary['message']} "
                  f"({summary['new']} new or updated, {summary['already_had']} already had, "
                  f"{len(summary['files'])} file(s) filed today: CSV, OFX and CAMT.053 per account)")
    console.print(f"Details: [bold].venv/bin/glaneur bank show {DEMO_BANK_CHANNEL}[/bold]")


def _route_demo_statements(urls: dict[str, str]):
    """The accounting firm's side: statements of the sandbox bank routed per IBAN, as one flow run."""
    from datetime import date

    from flows.route_statements import run_firm
    from glaneur.statements import routing
    from glaneur.db import session_scope
    from sandbox.firm_setup import create_sandbox_firm
    from sandbox.statements_source import FIRM

    with session_scope() as session:
        created = create_sandbox_firm(session, urls)
    console.print("Demo accounting firm created." if created else "Demo accounting firm already there: routing again.")
    with console.status("Routing the firm's bank statements per IBAN..."):
        summary = run_firm(FIRM, date.today())
    with session_scope() as session:
        entries = routing.statement_history(session, FIRM, limit=50)
    return summary, entries


def _print_statements(summary: dict, entries) -> None:
    table = Table(title=f"Statements of {summary['firm']}: where each one went")
    for column in ("IBAN", "client", "period", "closing", "went to"):
        table.add_column(column, overflow="fold")
    for entry in entries:
        s = entry.statement
        table.add_row(s.iban or s.account, entry.client or "-", f"{s.period_start} → {s.period_end}",
                      f"{s.closing_balance} {s.currency}", entry.destination)
    console.print(table)
    console.print(summary["message"])
    console.print(f"Global statements file: [bold].venv/bin/glaneur statements download {summary['firm']} "
                  f"--day {summary['day']}[/bold] · diagnosis: [bold].venv/bin/glaneur doctor --iban IBAN[/bold]")


def _print_summary(results, settings, ui_url: str) -> None:
    table = Table(title="Glaneur demo: one Prefect flow run per channel")
    for column in ("channel", "shows", "status", "new", "already had", "message"):
        table.add_column(column, overflow="fold")
    for demo, summary in results:
        colour = "green" if summary["status"] == "ok" else "yellow"
        table.add_row(demo.slug, demo.shows, f"[{colour}]{summary['status']}[/{colour}]", str(summary["new"]),
                      str(summary["already_had"]), summary["message"])
    console.print(table)
    new = sum(summary["new"] for _, summary in results)
    had = sum(summary["already_had"] for _, summary in results)
    if new:
        console.print(f"Filed {new} new invoice(s) under [bold]{settings.resolved_storage_path}[/bold].")
    else:
        console.print(f"Nothing new: the {had} recent invoice(s) the portals list were all filed already.")
    console.print(f"Prefect UI: [bold]{ui_url}[/bold] (runs, logs, and each channel's history artifact).")
    console.print("History: [bold].venv/bin/glaneur history[/bold] · stop the server: [bold]make demo-stop[/bold]")


def main() -> None:
    try:
        typer.run(run)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
