"""Issue 19 item 4: after a scenario that uses every kind of secret Glaneur handles, none of them is anywhere Glaneur
or Prefect writes, in clear, URL-encoded, hex or base64 (tests/secret_scan.py): zero hits, no exception.

The secrets: portal passwords, a TOTP seed and its codes, a code typed by the approver in the run's form, the
answers of an invitation typed by the account holder in the run's form (a refused one, with a wrong password and a
malformed seed, then the accepted one, with a seed), remembered portal sessions, a partner's signing secret, a
statement API token, and POWENS: the client secret, a bank password refused by the bank, the temporary codes and
the permanent user token.

Searched: every cell of every table of the Prefect server's database and of Glaneur's (the vault's ciphertext
included), every file under GLANEUR_HOME (mails, stored objects and their metadata sidecars, Playwright traces and
each of their members, logs, the database files as bytes) and under the Prefect server's home (its SQLite database,
write-ahead log and shared memory as bytes: deleted rows included), the log records and output of the test process
and of the worker and its flow runs, and the texts of the runs' outcomes.

The Prefect server is this test's own, started the way Glaneur ships it (infra/prefect_server.py): its SQLite
overwrites deleted run inputs and truncates its write-ahead log after deleting them. Started with a bare
``prefect server start`` the typed code and the invitation answers stay as deleted rows in those files.
"""

from __future__ import annotations

import json
import logging
import time

import httpx
import pyotp
import pytest
from sqlmodel import select

from glaneur import admin
from glaneur.db import session_scope
from glaneur.models import Account
from glaneur.statements import firm
from glaneur.vault import Vault
from sandbox.powens import PowensWorld
from sandbox.prefect_server import LocalPrefect
from tests import factories
from tests.e2e import test_bank_powens as bank_e2e
from tests.e2e import test_invitation as invitation_e2e
from tests.e2e.test_bank_powens import powens  # noqa: F401  a fixture: the Powens sandbox, org "acme" and Anne
from tests.e2e.test_collect_channel import info_logs  # noqa: F401  a fixture: run logs at INFO, as on a worker
from tests.e2e.test_prefect_auth import _free_port
from tests.e2e.test_second_factor_flow import Background, paused_run, resume_from_another_process, sent_code
from tests.secret_scan import Scanner, forms

pytestmark = [pytest.mark.slow]
PROVIDER = "papeterie-dupont"
# TOTP by itself, a typed code; a changed portal (it keeps a Playwright trace), its credentials from an invitation.
CHANNELS = {"org-secrets": ("double-totp", "double-code"), "org-trace": ("nouveau-site",)}
INVITED = "org-trace"
LOGINS = [login for logins in CHANNELS.values() for login in logins]
PARTNER_SECRET = "Partenaire-Signature-7q!Zx/9+Kw"
SOURCE_TOKEN = "Jeton-API-Releves-Vb3&Np=5Tt%Rr"
INVITE_WRONG_PASSWORD = "Invitation-Faux-Mdp-4k&Qz=8"
INVITE_BAD_SEED = "JBSWY3DPEHPK3PXP0189"  # 0, 1, 8 and 9 are not base32: refused, asked again
INVITE_SEED = "KRUGS4ZANFZSAYJAONSWGCTFORZWKZLE"
BANK_WRONG_PASSWORD = "Banque-Mauvais-Mdp-6t!Hw"


@pytest.fixture
def glaneur_prefect(tmp_path):
    """This test's own Prefect server, started the Glaneur way (infra/prefect_server.py, as the demo does).

    Its own, not the session's: the scan reads the whole database, which then holds only this test's runs,
    and the launcher is what is tested. Prefect's event worker keeps the server it first reached: drained here
    so that this test's events (task runs included) reach this server, and again after for the next tests.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    server = LocalPrefect(home=tmp_path / "prefect", port=_free_port(), ui=False)
    server.start()
    try:
        _drain_prefect_workers()
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            yield server
            _drain_prefect_workers()
    finally:
        server.stop()


def _drain_prefect_workers() -> None:
    """Send what Prefect's log and event workers hold, and stop them: the next ones reach the current server."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=30)
    EventsWorker.drain_all(timeout=30)


@pytest.fixture
def powens_codes(monkeypatch) -> list[str]:
    """Every temporary code the Powens sandbox issues (each is single-use: the sandbox forgets it once taken)."""
    issued: list[str] = []
    new_code = PowensWorld.new_code

    def recorded(world, user):
        issued.append(new_code(world, user))
        return issued[-1]

    monkeypatch.setattr(PowensWorld, "new_code", recorded)
    return issued
PREFECT_TABLES = {"flow_run_input", "log", "artifact", "flow_run", "task_run", "events", "variable", "block_document"}


def sandbox_accounts(portals) -> dict[str, dict]:
    accounts = httpx.get(f"{portals.urls[PROVIDER]}/_sandbox/accounts").json()
    rows = accounts["accounts"] if isinstance(accounts, dict) else accounts
    return {row["login"]: row for row in rows if row["login"] in LOGINS}


def totp_codes(seed: str, start: float, end: float) -> set[str]:
    """Every code the seed gave while the run could use it (and the windows either side)."""
    totp = pyotp.TOTP(seed)
    return {totp.at(moment) for moment in range(int(start) - 60, int(end) + 61, 15)}


def cookie_values(storage_state: str) -> list[str]:
    return [cookie["value"] for cookie in json.loads(storage_state).get("cookies", []) if len(cookie["value"]) >= 8]


def test_no_secret_of_any_kind_is_left_anywhere(  # powens, info_logs: fixtures imported above
        glaneur_prefect, glaneur_home, portals, powens, powens_codes, info_logs, caplog, capfd, tmp_path):  # noqa: F811
    from prefect.flow_runs import resume_flow_run

    caplog.set_level(logging.DEBUG)
    accounts = sandbox_accounts(portals)
    assert set(accounts) == set(LOGINS) and accounts["double-totp"].get("totp_seed")
    with session_scope() as session:
        owner = factories.organization(session, holders=["holder@org.example"])
        for slug, logins in CHANNELS.items():  # at most two accounts per channel
            credentials = [(login, accounts[login]["password"], accounts[login].get("totp_seed")) for login in logins]
            factories.channel(session, owner, slug, PROVIDER, label=slug, accounts=credentials if slug != INVITED else ())
        admin.create_organization(session, "cab", "Cabinet", "firm")
        boss = admin.create_user(session, "cab", "boss@cab.fr", "Boss", firm_role="administrator")
        firm.create_partner(session, "outil", "Outil", delivery_url="https://outil.example/api", secret=PARTNER_SECRET)
        firm.add_statement_source(session, "cab", "banque", url="https://banque.example/api", token=SOURCE_TOKEN,
                                  actor=boss)

    started = time.time()
    worker_output = tmp_path / "worker.log"
    # Everything that waits on a process or a browser overlaps: the approver's collection, the invitation's
    # worker runs and the POWENS connection run side by side.
    collection = Background("org-secrets")
    invitation_e2e._deploy("flows/request_credentials.py:request_credentials", "request-credentials")
    with invitation_e2e.worker(glaneur_home, output=worker_output):
        invitation = invitation_e2e._invite(INVITED)
        # The account holder's first answer is refused (the seed is not base32): the run asks again.
        resume_flow_run(invitation.id, run_input={"login": "nouveau-site", "password": INVITE_WRONG_PASSWORD,
                                                  "totp_seed": INVITE_BAD_SEED})
        run = paused_run("org-secrets")
        code = sent_code(portals, "double-code")
        resume_from_another_process(run.id, {"code": code})
        asked_again = lambda state: state.is_paused() and invitation_e2e._pauses(invitation.id) >= 2  # noqa: E731
        invitation_e2e._wait(invitation.id, asked_again)
        resume_flow_run(invitation.id, run_input={"login": "nouveau-site", "totp_seed": INVITE_SEED,
                                                  "password": accounts["nouveau-site"]["password"]})

        # POWENS, option 1: a password the bank refuses, then the right one and the SMS code; a day's movements.
        bank_e2e.ok("--as", bank_e2e.ANNE, "bank", "add", "acme", bank_e2e.BANK)
        refused = bank_e2e.connect("ok", f"{BANK_WRONG_PASSWORD}\n")
        assert refused.exit_code == 1 and "wrong_credentials" in refused.output, refused.output
        connected = bank_e2e.connect("ok", "1234\n123456\n")
        assert connected.exit_code == 0, (connected.output, connected.exception)
        movements = bank_e2e.run_bank(powens)
        assert movements["status"] == "ok" and movements["new"] > 0, movements

        summary = collection.join()
        invited = invitation_e2e._wait(invitation.id, lambda state: state.is_final())
    ended = time.time()
    assert invited.state.is_completed(), invited.state.message
    assert "First collection" in invited.state.message, invited.state.message

    with session_scope() as session:
        statuses = {account.login: account.status for account in session.exec(select(Account)).all()}
    outcomes = {account["login"]: account["status"] for account in summary["accounts"]}
    assert outcomes == {"double-totp": "ok", "double-code": "ok"}, summary
    assert statuses == {"double-totp": "ok", "double-code": "ok", "nouveau-site": "portal_changed"}, statuses

    secrets = {f"password of {login}": accounts[login]["password"] for login in LOGINS}
    secrets["TOTP seed"] = accounts["double-totp"]["totp_seed"]
    secrets["typed code"] = code
    for number, totp in enumerate(sorted(totp_codes(accounts["double-totp"]["totp_seed"], started, ended))):
        secrets[f"TOTP code {number}"] = totp
    secrets["partner secret"] = PARTNER_SECRET
    secrets["statement API token"] = SOURCE_TOKEN
    secrets["invitation: refused password"] = INVITE_WRONG_PASSWORD
    secrets["invitation: refused seed"] = INVITE_BAD_SEED
    secrets["invitation: TOTP seed"] = INVITE_SEED
    secrets["POWENS client secret"] = bank_e2e.SECRET
    secrets["POWENS: password refused by the bank"] = BANK_WRONG_PASSWORD
    assert powens_codes and powens.tokens, "no POWENS code or token was issued"
    for number, powens_code in enumerate(powens_codes):
        secrets[f"POWENS temporary code {number}"] = powens_code
    for number, token in enumerate(powens.tokens):
        secrets[f"POWENS user token {number}"] = token
    with session_scope() as session:
        vault = Vault(session)
        remembered = [account.session_ref for account in session.exec(select(Account)).all() if account.session_ref]
        assert len(remembered) == 3, "each account logged in: each should have a remembered session"
        for ref in remembered:
            for number, value in enumerate(cookie_values(vault.get(ref))):
                secrets[f"session cookie {ref}.{number}"] = value
        assert any(label.startswith("session cookie") for label in secrets)

    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()
    time.sleep(2)  # the server writes events in the background
    begun = time.monotonic()
    scanner = Scanner(secrets)
    prefect_database = glaneur_prefect.home / "prefect.db"
    prefect_tables = set(scanner.scan_sqlite("prefect", prefect_database))
    glaneur_tables = set(scanner.scan_sqlite("glaneur", glaneur_home / "glaneur.db"))
    scanner.scan_tree(glaneur_prefect.home)
    scanner.scan_tree(glaneur_home)
    scanner.scan_bytes("output of the worker and its flow runs", worker_output.read_bytes())
    captured = capfd.readouterr()
    scanner.scan_bytes("log records of the test process", caplog.text.encode())
    scanner.scan_bytes("output of the test process", (captured.out + captured.err).encode())
    outcomes_text = [summary, movements, invited.state.message, refused.output, connected.output]
    scanner.scan_bytes("outcome of the runs and commands", json.dumps(outcomes_text, default=str).encode())
    took = time.monotonic() - begun

    form_count = sum(len(forms(value)) for value in secrets.values())
    print(f"\nsecret scan: {len(secrets)} secrets, {form_count} secret-forms, {len(scanner.searched)} places "
          f"({scanner.bytes / 1e6:.1f} MB), {len(prefect_tables)} Prefect tables, "
          f"{len(glaneur_tables)} Glaneur tables, {len(scanner.hits)} hits, scan {took:.1f} s")
    # The scan looked where it should (so zero hits means something).
    assert PREFECT_TABLES <= prefect_tables and {"vaultentry", "account", "collectionrun"} <= glaneur_tables
    assert {"bankconnection", "bankmovement"} <= glaneur_tables
    assert any(place.endswith("trace.zip!trace.network") for place in scanner.searched), "no trace was searched"
    assert list((glaneur_home / "outbox").glob("*.eml")), "no mail was searched"
    assert list(glaneur_home.rglob("*.meta.json")), "no stored object's metadata was searched"
    assert any(place.endswith("prefect.db-wal") for place in scanner.searched), "no write-ahead log was searched"
    assert scanner.hits == [], "secrets found:\n" + scanner.report()
