"""Engine POWENS for a supplier channel (issue 17 item 7), end to end: ``collect-channel`` unchanged, on a real
Prefect server, real Chromium for the POWENS webview, the Powens sandbox serving a biller's subscriptions,
documents and their PDF files.

The first run connects the biller through the webview; the biller's SMS code pauses the run for the
approver as any portal's code does; the PDFs are filed like the Playwright connectors' (same keys, same
dedup, same history). The next run reuses the remembered connection (no webview, no code) and files
nothing; a new month's document is the only one filed the month after. The remembered connection does
not expire, and when the biller asks for its code again the same connection is reconnected.
"""

from __future__ import annotations

import os
from datetime import date

import pytest
from sqlmodel import select

from glaneur import admin
from glaneur.db import session_scope
from glaneur.models import Account, Document, Right, VaultEntry
from tests.e2e.test_second_factor_flow import Background, paused_run, resume_from_another_process

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

SECRET = "client-secret-for-billers"
SLUG = "acme-energie-powens"


@pytest.fixture
def biller(glaneur_home, monkeypatch):
    from glaneur.settings import reset_settings
    from sandbox.powens import PowensWorld, start_powens

    world = PowensWorld("biller-client", SECRET, today=date(2026, 11, 20))
    with start_powens(world) as powens:
        url = powens.urls["powens"]
        for name, value in {"GLANEUR_POWENS_API_URL": url, "GLANEUR_POWENS_WEBVIEW_URL": url,
                            "GLANEUR_POWENS_CLIENT_ID": "biller-client", "GLANEUR_POWENS_CLIENT_SECRET": SECRET,
                            "GLANEUR_POWENS_REDIRECT_URI": "http://127.0.0.1:9/powens/callback"}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("GLANEUR_SMTP_HOST", raising=False)
        reset_settings()
        with session_scope() as session:
            admin.create_organization(session, "acme", "ACME")
            owner = admin.create_user(session, "acme", "owner@acme.example", "Owner", [Right.CONFIGURE_COLLECTION])
            admin.create_binder(session, "acme", "factures", "Factures", actor=owner)
            admin.add_channel(session, "acme", label="Énergie via POWENS", provider="energie-verte-powens",
                              binder="factures", recipient="owner@acme.example", slug=SLUG, actor=owner)
            admin.add_account(session, SLUG, login="ok", password="1234", actor=owner)
        yield world


def documents() -> list[Document]:
    with session_scope() as session:
        return list(session.exec(select(Document)).all())


def test_a_billers_pdfs_are_filed_once_through_powens(biller, glaneur_home):
    from sandbox.powens.state import biller_customer

    world = biller
    first = Background(SLUG)
    paused = paused_run(SLUG)  # the biller's SMS code, asked of the approver like a portal's
    resume_from_another_process(paused.id, {"code": "123456"})
    summary = first.join()
    assert summary["status"] == "ok", summary
    [connection] = world.connections.values()
    assert connection.id_connector == 60 and connection.state is None  # Énergie Verte, a biller
    filed = documents()
    assert summary["new"] == len(filed) == 4  # August to November, on the 5th
    assert {d.provider_reference for d in filed} == {f"EV-{biller_customer('ok')}-2026{m:02d}" for m in (8, 9, 10, 11)}
    pdfs = [p for p in (glaneur_home / "documents").rglob("*.pdf")]
    assert len(pdfs) == 4 and all(p.read_bytes().startswith(b"%PDF") for p in pdfs)
    assert all(str(p.relative_to(glaneur_home / "documents")).startswith(f"acme/factures/{SLUG}/") for p in pdfs)

    again = Background(SLUG).join()  # the remembered connection: no webview, no code, nothing new
    assert again["status"] == "ok" and again["new"] == 0 and again["already_had"] >= 1, again  # since the cursor
    assert len(world.connections) == 1 and len(documents()) == 4

    world.today = date(2026, 12, 6)  # December's invoice is out
    later = Background(SLUG).join()
    assert later["status"] == "ok" and later["new"] == 1, later
    assert len(documents()) == 5 and len(list((glaneur_home / "documents").rglob("*.pdf"))) == 5

    # Powens keeps the user and the connection until deleted: the remembered connection does not expire with
    # the portal-session lifetime (else every lifetime would make one more user and connection at Powens).
    with session_scope() as session:
        [account] = session.exec(select(Account)).all()
        assert session.get(VaultEntry, account.session_ref).expires_at is None
    # The biller asks for its code again (SCARequired): the same connection is reconnected through the webview.
    world.connections[connection.id].state = "SCARequired"
    reconnecting = Background(SLUG)
    resume_from_another_process(paused_run(SLUG).id, {"code": "123456"})
    reconnected = reconnecting.join()
    assert reconnected["status"] == "ok" and reconnected["new"] == 0, reconnected
    assert list(world.connections) == [connection.id] and world.connections[connection.id].state is None
    assert len(world.tokens) == 1  # no second Powens user either


def test_a_supplier_chosen_in_powens_list_is_collected(biller, glaneur_home):
    """"Cliquez sur POWENS ... Choisissez un fournisseur parmi la liste proposée, saisissez les identifiants": any
    supplier of POWENS's list, named at 'channel add' and checked against the list, collected like the others."""
    from flows.collect_channel import run_channel
    from tests.commands import glaneur, ok

    owner = "owner@acme.example"
    listed = " ".join(ok("providers", "--powens").stdout.split())
    assert "Énergie Verte" in listed and "Connecteur de test" in listed  # the connectors with documents
    assert "Banque Exemple" not in listed  # a bank only
    add = ("--as", owner, "channel", "add", "acme", "--label", "Fournisseur choisi", "--provider", "powens",
           "--binder", "factures", "--recipient", owner, "--slug", "acme-choisi")
    for extra, words in ((("--biller", "Fournil Martin"), "does not appear in the POWENS list"),
                         ((), "give the supplier with --biller")):
        refused = glaneur(*add, *extra)
        assert refused.exit_code == 2 and words in " ".join(refused.stderr.split()), refused.output
    assert "Le fournisseur n'apparaît pas dans la liste POWENS" in " ".join(glaneur(*add, "--biller", "X").stderr.split())
    wrong = glaneur("--as", owner, "channel", "add", "acme", "--label", "P", "--provider", "papeterie-dupont",
                    "--binder", "factures", "--recipient", owner, "--biller", "Énergie Verte")
    assert wrong.exit_code == 2 and "--biller is for the provider 'powens'" in " ".join(wrong.stderr.split())

    ok(*add, "--biller", " energie  VERTE ", "--login", "bench-chosen", "--password-stdin", "--no-collect",
       input="1234\n")
    with session_scope() as session:
        assert admin.get_channel(session, "acme-choisi").biller == "Énergie Verte"  # as the list names it
    assert "Énergie Verte" in ok("channels").stdout

    summary = run_channel("acme-choisi")
    assert summary["status"] == "ok" and summary["new"] == 4, summary
    [connection] = [c for c in biller.connections.values() if c.login == "bench-chosen"]
    assert connection.id_connector == 60  # the supplier chosen, Énergie Verte's connector at POWENS
    assert len([d for d in documents() if d.storage_key.startswith("acme/factures/acme-choisi/")]) == 4


def test_a_chosen_supplier_that_left_powens_list_ends_not_compatible_with_the_help_pages_answer(biller, glaneur_home):
    """The supplier was in POWENS's list when the channel was added; it is no longer offered when the run
    connects: the run says so with merchant-connector-setup.md's answer, files nothing, and creates nothing
    at Powens but the user it connects with."""
    from flows.collect_channel import run_channel
    from glaneur.models import Channel
    from glaneur.statuses import Status
    from tests.commands import ok

    owner = "owner@acme.example"
    ok("--as", owner, "channel", "add", "acme", "--label", "Fournisseur choisi", "--provider", "powens",
       "--binder", "factures", "--recipient", owner, "--slug", "acme-choisi", "--biller", "Énergie Verte",
       "--login", "bench-chosen", "--password-stdin", "--no-collect", input="1234\n")  # fmt: skip
    biller.connectors = tuple(c for c in biller.connectors if c.name != "Énergie Verte")
    users = biller.users()

    summary = run_channel("acme-choisi")

    assert summary["status"] == Status.NOT_COMPATIBLE, summary
    message = " ".join(summary["message"].split())
    assert "'Énergie Verte' does not appear in the POWENS list" in message
    assert "Le fournisseur n'apparaît pas dans la liste POWENS ? Vérifiez que l'établissement est compatible" in message
    assert "La banque" not in message
    assert [c for c in biller.connections.values() if c.login == "bench-chosen"] == []
    assert biller.users() == users  # the Powens user this login created was deleted again
    assert [d for d in documents() if d.storage_key.startswith("acme/factures/acme-choisi/")] == []
    with session_scope() as session:
        channel = session.exec(select(Channel).where(Channel.slug == "acme-choisi")).one()
        assert channel.status == Status.NOT_COMPATIBLE and "Le fournisseur" in channel.status_message


def test_a_refused_login_through_powens_leaves_no_user_or_connection_at_powens(biller, glaneur_home):
    """Powens keeps a connection in ``wrongpass`` and its user until they are deleted: a login the biller
    refused deletes the user it created (and so its connection); the run says wrong_credentials."""
    from flows.collect_channel import run_channel
    from glaneur.statuses import Status

    with session_scope() as session:
        owner = admin.get_user(session, "acme", "owner@acme.example")
        admin.update_credentials(session, SLUG, "ok", password="1234", actor=owner, new_login="wrongpass")
    users = biller.users()

    summary = run_channel(SLUG)

    assert summary["status"] == Status.WRONG_CREDENTIALS, summary
    assert biller.users() == users
    assert [c for c in biller.connections.values() if c.login == "wrongpass"] == []
    assert documents() == []


def test_a_collector_leaving_glaneur_deletes_its_connection_at_powens(biller, glaneur_home, monkeypatch):
    """The remembered POWENS connection holds the supplier's login at Powens. When Glaneur forgets it (new
    credentials, the collector deleted), the connection and its user are deleted at Powens first; when
    Powens cannot be reached, nothing is changed and the command says to try again."""
    from flows.collect_channel import run_channel
    from glaneur.models import Channel
    from glaneur.settings import reset_settings
    from tests.commands import glaneur, ok

    owner = "owner@acme.example"
    ok("--as", owner, "channel", "add", "acme", "--label", "Fournisseur choisi", "--provider", "powens",
       "--binder", "factures", "--recipient", owner, "--slug", "acme-choisi", "--biller", "Énergie Verte",
       "--login", "bench-chosen", "--password-stdin", "--no-collect", input="1234\n")  # fmt: skip
    assert run_channel("acme-choisi")["new"] == 4
    [first] = [c for c in biller.connections.values() if c.login == "bench-chosen"]

    ok("--as", owner, "channel", "update-credentials", "acme-choisi", "--login", "bench-chosen", "--password-stdin",
       "--no-collect", input="1234\n")  # fmt: skip
    assert first.id not in biller.connections and first.id_user not in biller.users()
    again = run_channel("acme-choisi")  # a new connection with the new credentials; nothing filed twice
    assert again["status"] == "ok" and again["new"] == 0, again
    [second] = [c for c in biller.connections.values() if c.login == "bench-chosen"]

    def secrets() -> int:
        with session_scope() as session:
            return len(session.exec(select(VaultEntry).where(VaultEntry.purpose != "canary")).all())

    kept = secrets()
    api_url = os.environ["GLANEUR_POWENS_API_URL"]
    monkeypatch.setenv("GLANEUR_POWENS_API_URL", "http://127.0.0.1:9")  # Powens unreachable
    reset_settings()
    down = glaneur("--as", owner, "channel", "delete", "acme-choisi", "--yes")
    said = " ".join(down.stderr.split())
    assert down.exit_code == 2 and "POWENS did not delete the connection it keeps" in said, down.output
    assert "nothing was deleted: try again" in said
    with session_scope() as session:
        assert session.exec(select(Channel).where(Channel.slug == "acme-choisi")).one().active
    assert secrets() == kept and second.id in biller.connections

    monkeypatch.setenv("GLANEUR_POWENS_API_URL", api_url)
    reset_settings()
    ok("--as", owner, "channel", "delete", "acme-choisi", "--yes")
    assert second.id not in biller.connections and second.id_user not in biller.users()
    assert len([d for d in documents() if d.storage_key.startswith("acme/factures/acme-choisi/")]) == 4  # kept
