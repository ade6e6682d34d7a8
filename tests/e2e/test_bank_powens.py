"""The bank side end to end: the CLI, the Powens sandbox over HTTP, its webview driven by real Chromium,
and ``collect-bank-movements`` runs recorded on a real Prefect server.

Option 1 (``bank connect``): the referential first, the holder's consent, the webview (bank, consent
screen, credentials, SMS code or app approval), then three days of movements, each day adding exactly
the new ones and updating (not duplicating) those the bank booked. Every documented connection state
leads to its status; a 429, a truncated answer and a revoked token end the run clearly and lose nothing.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from cli.main import app
from glaneur.models import (
    BankConnection,
    BankConsent,
    BankConsentState,
    BankMovement,
    Channel,
    CollectionRun,
    Notification,
    VaultEntry,
)
from glaneur.statuses import Status
from tests.e2e.conftest import assert_no_secret

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

runner = CliRunner()
ANNE = "anne@acme.example"
BOB = "bob@acme.example"  # no accounting right
BANK = "Connecteur de test"
SLUG = "acme-connecteur-de-test"
RESERVED = "Banque Réservée"  # the sandbox's restricted connector
SECRET = "sandbox-client-secret-0123456789"
DAY1 = date(2026, 11, 20)


def glaneur(*args: str, input: str | None = None):
    return runner.invoke(app, list(args), input=input, env={"COLUMNS": "250"})


def ok(*args: str, input: str | None = None):
    result = glaneur(*args, input=input)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def session() -> Session:
    from glaneur.db import get_engine

    return Session(get_engine(), expire_on_commit=False)


@pytest.fixture
def powens(glaneur_home, monkeypatch):
    from glaneur.settings import reset_settings
    from sandbox.powens import PowensWorld, start_powens

    world = PowensWorld("glaneur-test", SECRET, today=DAY1)
    with start_powens(world) as handle:
        url = handle.urls["powens"]
        for name, value in {
            "GLANEUR_POWENS_API_URL": url, "GLANEUR_POWENS_WEBVIEW_URL": url,
            "GLANEUR_POWENS_CLIENT_ID": "glaneur-test", "GLANEUR_POWENS_CLIENT_SECRET": SECRET,
            "GLANEUR_POWENS_REDIRECT_URI": "http://127.0.0.1:9/powens/callback",
            "GLANEUR_POWENS_WEBVIEW_TIMEOUT_SECONDS": "20",
        }.items():
            monkeypatch.setenv(name, value)
        for name in ("GLANEUR_ACTING_USER", "GLANEUR_SMTP_HOST"):
            monkeypatch.delenv(name, raising=False)
        reset_settings()
        ok("org", "create", "acme", "ACME SARL")
        ok("user", "create", "acme", ANNE, "Anne", "--right", "configure_accounting")
        ok("--as", ANNE, "user", "create", "acme", BOB, "Bob")
        ok("--as", ANNE, "binder", "create", "acme", "banque", "Banque")
        yield world


def connect(login: str, stdin: str, *extra: str, consent: str = "--holder-consents"):
    return glaneur("--as", ANNE, "bank", "connect", "acme", BANK, "--holder", ANNE, "--binder", "banque",
                   "--recipient", ANNE, "--login", login, consent, "--password-stdin", "--no-collect", *extra,
                   input=stdin)


def run_bank(world=None) -> dict:
    """One day's run; with the sandbox's clock as the day of its files."""
    from flows.collect_bank_movements import run_bank_channel

    return run_bank_channel(SLUG, world.today if world else None)


def movements() -> list[BankMovement]:
    with session() as s:
        return list(s.exec(select(BankMovement)).all())


def channel() -> Channel:
    with session() as s:
        return s.exec(select(Channel).where(Channel.slug == SLUG)).one()


def sandbox_movements(world) -> dict[int, dict]:
    user = next(iter(world.connections.values())).id_user
    return {t["id"]: t for t in world.transactions(user)}


def stored_files(home) -> list[str]:
    root = home / "documents"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and not p.name.endswith(".json"))


def test_option1_referential_consent_webview_and_three_days(powens, glaneur_home, monkeypatch):
    world = powens
    refused = connect("ok", "1234\n123456\n")
    assert refused.exit_code == 2 and "Add it first, before any connection" in " ".join(refused.output.split())
    bob = glaneur("--as", BOB, "bank", "add", "acme", BANK)
    assert bob.exit_code == 2 and "Autoriser l'accès au paramétrage de la comptabilité" in bob.output
    added = ok("--as", ANNE, "bank", "add", "acme", BANK)
    assert "POWENS can connect it" in added.output
    unknown = glaneur("--as", ANNE, "bank", "add", "acme", "Banque Inconnue")
    assert unknown.exit_code == 0  # the referential accepts any bank...
    assert "La banque n'apparaît pas dans la liste POWENS" in " ".join(unknown.output.split())  # ...and says so
    far = glaneur("--as", ANNE, "bank", "connect", "acme", "Banque Inconnue", "--holder", ANNE, "--binder", "banque",
                  "--recipient", ANNE, "--login", "ok", "--holder-consents", "--password-stdin", input="1234\n")
    assert far.exit_code == 2 and "La banque n'apparaît pas dans la liste POWENS" in far.output  # ...POWENS does not

    # Listed by POWENS but restricted (no new connection for this client): the referential keeps it and says so at
    # once; connect and invite refuse it with the page's advice, before any consent, POWENS user or channel.
    reserved = ok("--as", ANNE, "bank", "add", "acme", RESERVED)
    said = " ".join(reserved.output.split())
    assert f"'{RESERVED}' cannot be connected through this POWENS client: its POWENS connector is restricted" in said
    assert "contactez le support technique" in said and "'glaneur bank connect' and 'bank invite' refuse it" in said
    where = ("--holder", ANNE, "--binder", "banque", "--recipient", ANNE)
    for command in (("connect", "acme", RESERVED, *where, "--login", "ok", "--holder-consents", "--password-stdin"),
                    ("invite", "acme", RESERVED, *where)):
        refused = glaneur("--as", ANNE, "bank", *command, input="1234\n123456\n")
        said = " ".join(refused.output.split())
        assert refused.exit_code == 2 and "its POWENS connector is restricted" in said, (command, refused.output)
        assert "un accord avec POWENS est nécessaire" in said
    with session() as s:
        assert not s.exec(select(BankConsent)).all() and not s.exec(select(Channel)).all()
    assert not world.tokens and not world.connections

    # The holder refuses: recorded, nothing connected.
    no = connect("ok", "1234\n", consent="--holder-refuses")
    assert no.exit_code == 1 and "refused the consent" in no.output
    with session() as s:
        [consent] = s.exec(select(BankConsent)).all()
        assert consent.state == BankConsentState.REFUSED and "RGPD" in consent.text
        assert not s.exec(select(BankConnection)).all() and not s.exec(select(VaultEntry)).all()

    # A wrong password in the bank's page: nothing stored but the consent.
    wrong = connect("ok", "nope\n")
    assert wrong.exit_code == 1 and "wrong_credentials" in wrong.output
    with session() as s:
        assert not s.exec(select(BankConnection)).all() and not s.exec(select(Channel)).all()
    assert not world.connections and not world.users()  # the Powens user it created was deleted again

    # Option 1: consent, the webview driven in Chromium (bank, consent screen, credentials, SMS code).
    done = connect("ok", "1234\n000000\n123456\n")
    assert done.exit_code == 0, (done.output, done.exception)
    assert "Code incorrect" in done.output  # the wrong code was asked again
    [remote] = world.connections.values()
    with session() as s:
        connection = s.exec(select(BankConnection)).one()
        assert connection.powens_connection_id == remote.id and connection.token_ref
        assert s.get(BankConsent, connection.consent_id).state == BankConsentState.GIVEN
    assert channel().status == Status.NEW and "48 to 72 hours" in channel().status_message
    token = next(t for t, user in world.tokens.items() if user == remote.id_user)

    # Day 1: the history since 30 days before the connection; the savings account was enabled.
    first = run_bank(world)
    assert first["status"] == "ok", first
    expected = sandbox_movements(world)
    assert len(movements()) == len(expected) == first["new"] > 0
    assert all(not a.disabled for a in world.accounts.values())
    files_day1 = stored_files(glaneur_home)
    assert len(files_day1) == 6 and all(f.endswith((".csv", ".ofx", ".xml")) for f in files_day1)  # 2 x CSV, OFX, CAMT
    again = run_bank(world)
    assert again["new"] == 0 and len(movements()) == len(expected) and stored_files(glaneur_home) == files_day1

    for offset in (1, 2):
        world.today = DAY1 + timedelta(days=offset)
        before = {m.powens_id: m for m in movements()}
        today = sandbox_movements(world)
        added = set(today) - set(before)
        booked = {i for i in before if before[i].coming and not today[i]["coming"]}
        assert added and booked
        summary = run_bank(world)
        assert summary["status"] == "ok", summary
        after = {m.powens_id: m for m in movements()}
        assert set(after) == set(today) and len(movements()) == len(after)  # nothing duplicated
        assert summary["new"] == len(added) + len(booked)
        assert all(after[i].version == 2 and not after[i].coming for i in booked)
        day_files = [f for f in stored_files(glaneur_home) if f"{world.today:%Y-%m-%d}_powens" in f]
        assert len(day_files) == 6
        filed_ids = set()
        for name in day_files:
            if name.endswith(".csv"):
                rows = (glaneur_home / "documents" / name).read_text().splitlines()[1:]
                filed_ids |= {int(row.split(";")[0]) for row in rows}
        assert filed_ids == added | booked  # the day's files carry exactly what arrived or changed

    # The periodic full pass (every day here): the whole window read again, nothing added, everything checked.
    monkeypatch.setenv("GLANEUR_POWENS_FULL_PASS_DAYS", "1")
    full = run_bank(world)
    assert full["status"] == "ok" and full["new"] == 0 and full["already_had"] == len(movements()), full
    assert "periodic full pass" in full["message"]
    with session() as s:
        flow_run_ids = [r.flow_run_id for r in s.exec(select(CollectionRun)).all() if r.flow_run_id]
    assert len(flow_run_ids) == 5
    for flow_run_id in flow_run_ids:
        assert_no_secret(glaneur_home, flow_run_id, [token, SECRET])
    show = ok("bank", "show", SLUG)
    assert "Consent: given by anne@acme.example" in " ".join(show.output.split())
    doctor = ok("doctor", SLUG)
    assert "given by anne@acme.example" in " ".join(doctor.output.split()) and "No check failed" in doctor.output
    assert "POWENS bank" in doctor.output

    # POWENS restricts the bank after the connection: doctor warns (it keeps collecting, a new connection would be
    # refused) with the page's advice, over HTTP as the command asks it; collection goes on.
    from dataclasses import replace

    from connectors.powens import powens_connectors
    from glaneur import bank
    from glaneur.doctor import Verdict, diagnose

    world.connectors = tuple(replace(c, restricted=c.name == BANK) for c in world.connectors)
    with session() as s:
        [check] = [c for c in diagnose(s, SLUG, powens_connectors=powens_connectors) if c.name == "POWENS bank"]
    assert check.verdict == Verdict.WARN and f"POWENS connection {remote.id} keeps collecting" in check.detail
    assert check.fix == bank.RESTRICTED_IN_POWENS
    assert "No check failed" in ok("doctor", SLUG).output
    assert run_bank(world)["status"] == "ok"


EXPECTED = {
    "wrongpass": Status.WRONG_CREDENTIALS, "passwordExpired": Status.CREDENTIALS_EXPIRED,
    "actionNeeded": Status.ACTION_NEEDED, "additionalInformationNeeded": Status.ACTION_NEEDED,
    "SCARequired": Status.AWAITING_SECOND_FACTOR, "webauthRequired": Status.AWAITING_SECOND_FACTOR,
    "decoupled": Status.SECOND_FACTOR_TIMEOUT,  # the approver was asked (a pause) and nobody answered in time
    "validating": Status.RUNNING,
    "rateLimiting": Status.RATE_LIMITED, "websiteUnavailable": Status.PORTAL_UNAVAILABLE,
    "bug": Status.INTERNAL_ERROR, "notSupported": Status.NOT_COMPATIBLE,
}


def test_every_state_leads_to_its_status_and_failures_lose_nothing(powens, glaneur_home, monkeypatch):
    world = powens
    ok("--as", ANNE, "bank", "add", "acme", BANK)
    # A connection created in a state by the webview itself (the login chooses it, as in Powens' sandbox).
    assert connect("SCARequired", "1234\n").exit_code == 0
    [remote] = world.connections.values()
    assert remote.state == "SCARequired"
    monkeypatch.setenv("GLANEUR_SECOND_FACTOR_TIMEOUT_SECONDS", "2")
    from glaneur.settings import reset_settings

    reset_settings()
    for state, status in EXPECTED.items():
        remote.state = state
        summary = run_bank()
        assert summary["status"] == status.value, (state, summary)
        assert channel().status == status
        if state in ("SCARequired", "webauthRequired", "wrongpass", "passwordExpired"):
            assert "reconnect" in summary["message"]
    assert not movements()  # nothing recorded from a connection in error

    # Decoupled: the run pauses for the approver (as supplier channels do); they approve in the bank's app, submit,
    # and the same run synchronises again and collects.
    monkeypatch.setenv("GLANEUR_SECOND_FACTOR_TIMEOUT_SECONDS", "120")
    reset_settings()
    from tests.e2e.test_second_factor_flow import paused_run, resume_from_another_process

    remote.state = "decoupled"
    background = BankBackground()
    paused = paused_run(SLUG)
    with session() as s:
        asked = s.exec(select(Notification).where(Notification.kind == "second_factor")).all()
    assert len(asked) == 2  # the approver was asked each time (the timed-out pause above, and this one)
    remote.state = None  # approved in the bank's app
    resume_from_another_process(paused.id, {"approved": True})
    approved = background.join()
    assert approved["status"] == "ok" and len(movements()) == len(sandbox_movements(world)), approved

    # The next action for a second factor: the holder reconnects (the bank's SMS code in the reconnect page).
    remote.state = "SCARequired"
    assert run_bank()["status"] == Status.AWAITING_SECOND_FACTOR.value
    reconnected = glaneur("--as", ANNE, "bank", "reconnect", SLUG, "--login", "ok", "--password-stdin",
                          "--no-collect", input="1234\n123456\n")
    assert reconnected.exit_code == 0, (reconnected.output, reconnected.exception)
    assert remote.state is None and len(world.connections) == 1

    monkeypatch.setenv("GLANEUR_RETRIES", "0")
    reset_settings()
    world.today += timedelta(days=1)  # new movements, and those of yesterday booked
    before = len(movements())
    world.truncate_next = 1  # a truncated answer: portal_changed, nothing half-stored
    cut = run_bank()
    assert cut["status"] == Status.PORTAL_CHANGED.value and len(movements()) == before
    world.rate_limit, world.calls = 3, world.calls.__class__()  # 429 past 3 calls a minute
    limited = run_bank()
    assert limited["status"] == Status.RATE_LIMITED.value
    world.rate_limit = None
    whole = run_bank()
    assert whole["status"] == "ok" and len(movements()) == len(sandbox_movements(world))

    world.revoke_user(remote.id_user)
    revoked = run_bank()
    assert revoked["status"] == Status.AWAITING_CREDENTIALS.value and "connect the bank again" in revoked["message"]


class BankBackground:
    """A bank collection running in a thread of this process, as a worker would run it (it may pause)."""

    def __init__(self):
        import contextvars
        import threading

        self.result = self.error = None
        context = contextvars.copy_context()  # the Prefect test server's settings live in a context variable
        self.thread = threading.Thread(target=lambda: context.run(self._run), daemon=True)
        self.thread.start()

    def _run(self):
        try:
            self.result = run_bank()
        except BaseException as error:  # noqa: BLE001
            self.error = error

    def join(self, timeout=180) -> dict:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the collection did not finish"
        if self.error:
            raise self.error
        return self.result


def test_decoupled_approval_dispatch_then_revoking_consent_purges(powens, glaneur_home, deployments):
    world = powens
    world.decoupled_seconds = 1.5  # the holder approves in the bank's app
    ok("--as", ANNE, "bank", "add", "acme", BANK)
    done = connect("decoupled", "1234\n")
    assert done.exit_code == 0, (done.output, done.exception)
    [remote] = world.connections.values()
    assert remote.state is None
    assert run_bank()["status"] == "ok"
    # The daily dispatch: one collect-bank-movements run per bank channel and day (twice: still one).
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    from flows.dispatch import dispatch_daily
    from tests.e2e.conftest import prefect_call

    bank_deployment = deployments("collect-bank-movements")
    for _ in range(2):
        dispatch_daily(day=DAY1)

    async def read(client):
        return await client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[bank_deployment])))

    (scheduled,) = prefect_call(read)
    assert scheduled.parameters == {"channel": SLUG, "day": DAY1.isoformat()} and scheduled.state.is_scheduled()

    with session() as s:
        token_ref = s.exec(select(BankConnection)).one().token_ref
    ok("--as", ANNE, "bank", "revoke", SLUG, "--yes")
    assert not world.connections  # deleted on Powens' side
    with session() as s:
        connection = s.exec(select(BankConnection)).one()
        assert connection.token_ref is None and s.get(VaultEntry, token_ref) is None
        assert s.get(BankConsent, connection.consent_id).state == BankConsentState.REVOKED
    assert not channel().active
    shown = ok("bank", "show", SLUG)
    assert "revoked" in shown.output
    doctor = glaneur("doctor", SLUG)
    assert doctor.exit_code == 1 and "consent of anne@acme.example revoked" in " ".join(doctor.output.split())


def test_the_webview_offers_any_asked_capability_and_never_a_restricted_bank(powens):
    """The webview's ``connector_capabilities`` is a comma-separated list: its first step lists the connectors
    having **any** of them (Powens' webview SDK asks ``['bank', 'bankwealth', 'document']`` in one list), ``bank``
    when absent. A restricted connector is never offered; choosing it anyway is refused, and the driver of option
    1 says the bank is not in the list. Real Chromium on the sandbox's webview."""
    from connectors.powens import PowensClient, webview_url
    from connectors.powens_webview import drive
    from glaneur.bank import powens_settings
    from glaneur.errors import NotCompatible
    from glaneur.settings import get_settings
    from tasks.browser import launch_browser

    world = powens
    settings = powens_settings()
    api_url, client_id, client_secret = settings.require()
    client = PowensClient(api_url, client_id=client_id, client_secret=client_secret)
    client.init_user()

    def opening(capabilities: tuple[str, ...] | None = None) -> str:
        return webview_url(settings.webview_url, "connect", domain=client.domain, client_id=client_id,
                           redirect_uri=settings.redirect_uri, code=client.temporary_code(), capabilities=capabilities)

    banks = ["Connecteur de test", "Banque Exemple", "Banque Populaire du Test"]
    expected = {
        None: (banks, "Choisissez votre banque"),
        ("document",): (["Connecteur de test", "Énergie Verte"], "Choisissez votre fournisseur"),
        ("bank", "document"): ([*banks, "Énergie Verte"], "Choisissez votre banque ou votre fournisseur"),
        ("transfer",): (["Banque Exemple"], "Choisissez votre banque"),
        ("transfer", "document"): (["Connecteur de test", "Banque Exemple", "Énergie Verte"],
                                   "Choisissez votre banque ou votre fournisseur"),
        ("bankwealth",): ([], "Choisissez votre banque"),
    }
    with launch_browser(get_settings()) as browser:
        context = browser.new_context()
        try:
            page = context.new_page()
            for capabilities, (names, title) in expected.items():
                page.goto(opening(capabilities))
                shown = page.locator("button.bank").evaluate_all("buttons => buttons.map(b => b.dataset.name)")
                assert shown == names and page.locator("h1").inner_text() == title, capabilities
            page.goto(opening(("bank", "document")))  # the restricted bank chosen anyway, by a hand-made form
            refused = page.request.post(f"{page.url}/bank", form={"connector": "43"})
            assert "n'accepte pas de nouvelle connexion" in refused.text()
            with pytest.raises(NotCompatible, match="'Banque Réservée' does not appear in the POWENS list"):
                drive(page, opening(), redirect_uri=settings.redirect_uri, bank_name=RESERVED, login="ok",
                      password="1234", ask_code=lambda prompt: "123456")
        finally:
            context.close()
            client.close()
    assert not world.connections
