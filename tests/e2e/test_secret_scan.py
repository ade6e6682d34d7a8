"""Issue 19 item 4: after a scenario that uses portal passwords, a TOTP seed and its codes, a typed code answered
through the run's input form, remembered portal sessions, a partner's signing secret and a statement API token,
none of them is anywhere Glaneur or Prefect writes, in clear, URL-encoded, hex or base64 (tests/secret_scan.py).

Searched: every cell of every table of the Prefect server's database and of Glaneur's (the vault's ciphertext
included), every file under GLANEUR_HOME (mails, stored objects and their metadata sidecars, Playwright traces and
each of their members, logs, the database files as bytes) and beside the Prefect database, the log records and
output of the run, and the texts of the run's outcome (its errors' messages).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import httpx
import pyotp
import pytest
from sqlmodel import select

from flows.collect_channel import run_channel
from glaneur import admin
from glaneur.db import session_scope
from glaneur.models import Account, Right
from glaneur.statements import firm
from glaneur.vault import Vault
from tests.e2e.test_collect_channel import info_logs  # noqa: F401  a fixture: run logs at INFO, as on a worker
from tests.e2e.test_second_factor_flow import Background, paused_run, resume_from_another_process, sent_code
from tests.secret_scan import Scanner, forms

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]
PROVIDER = "papeterie-dupont"
# TOTP by itself, a typed code; a changed portal (it keeps a Playwright trace).
CHANNELS = {"org-secrets": ("double-totp", "double-code"), "org-trace": ("nouveau-site",)}
LOGINS = [login for logins in CHANNELS.values() for login in logins]
PARTNER_SECRET = "Partenaire-Signature-7q!Zx/9+Kw"
SOURCE_TOKEN = "Jeton-API-Releves-Vb3&Np=5Tt%Rr"
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


def test_no_secret_of_any_kind_is_left_anywhere(glaneur_home, portals, info_logs, caplog, capfd):  # noqa: F811
    caplog.set_level(logging.DEBUG)
    accounts = sandbox_accounts(portals)
    assert set(accounts) == set(LOGINS) and accounts["double-totp"].get("totp_seed")
    with session_scope() as session:
        admin.create_organization(session, "org", "Org")
        owner = admin.create_user(session, "org", "owner@org.example", "Owner", [Right.CONFIGURE_COLLECTION])
        admin.create_binder(session, "org", "factures", "Factures", actor=owner)
        for slug, logins in CHANNELS.items():  # at most two accounts per channel
            admin.add_channel(session, "org", label=slug, provider=PROVIDER, binder="factures",
                              recipient="owner@org.example", slug=slug, actor=owner)
            for login in logins:
                admin.add_account(session, slug, login=login, password=accounts[login]["password"],
                                  totp_seed=accounts[login].get("totp_seed"), actor=owner)
        admin.create_organization(session, "cab", "Cabinet", "firm")
        boss = admin.create_user(session, "cab", "boss@cab.fr", "Boss", firm_role="administrator")
        firm.create_partner(session, "outil", "Outil", delivery_url="https://outil.example/api", secret=PARTNER_SECRET)
        firm.add_statement_source(session, "cab", "banque", url="https://banque.example/api", token=SOURCE_TOKEN,
                                  actor=boss)

    started = time.time()
    collection = Background("org-secrets")
    run = paused_run("org-secrets")
    code = sent_code(portals, "double-code")
    resume_from_another_process(run.id, {"code": code})
    summary = collection.join()
    changed = run_channel("org-trace")
    ended = time.time()
    outcomes = {account["login"]: account["status"] for account in summary["accounts"] + changed["accounts"]}
    assert outcomes == {"double-totp": "ok", "double-code": "ok", "nouveau-site": "portal_changed"}, (summary, changed)

    secrets = {f"password of {login}": accounts[login]["password"] for login in LOGINS}
    secrets["TOTP seed"] = accounts["double-totp"]["totp_seed"]
    secrets["typed code"] = code
    for number, totp in enumerate(sorted(totp_codes(accounts["double-totp"]["totp_seed"], started, ended))):
        secrets[f"TOTP code {number}"] = totp
    secrets["partner secret"] = PARTNER_SECRET
    secrets["statement API token"] = SOURCE_TOKEN
    with session_scope() as session:
        vault = Vault(session)
        remembered = [account.session_ref for account in session.exec(select(Account)).all() if account.session_ref]
        assert len(remembered) == 3, "each account logged in: each should have a remembered session"
        for ref in remembered:
            for number, value in enumerate(cookie_values(vault.get(ref))):
                secrets[f"session cookie {ref}.{number}"] = value
        assert any(label.startswith("session cookie") for label in secrets)

    from prefect.logging.handlers import APILogHandler
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

    APILogHandler().flush()
    time.sleep(2)  # the server writes events in the background
    begun = time.monotonic()
    scanner = Scanner(secrets)
    prefect_database = Path(PREFECT_SERVER_DATABASE_CONNECTION_URL.value().split(":///", 1)[1])
    prefect_tables = set(scanner.scan_sqlite("prefect", prefect_database))
    glaneur_tables = set(scanner.scan_sqlite("glaneur", glaneur_home / "glaneur.db"))
    scanner.scan_tree(prefect_database.parent)
    scanner.scan_tree(glaneur_home)
    captured = capfd.readouterr()
    scanner.scan_bytes("log records of the test process", caplog.text.encode())
    scanner.scan_bytes("output of the test process", (captured.out + captured.err).encode())
    scanner.scan_bytes("outcome of the runs", json.dumps([summary, changed], default=str).encode())
    took = time.monotonic() - begun

    form_count = sum(len(forms(value)) for value in secrets.values())
    print(f"\nsecret scan: {len(secrets)} secrets, {form_count} secret-forms, {len(scanner.searched)} places "
          f"({scanner.bytes / 1e6:.1f} MB), {len(prefect_tables)} Prefect tables, "
          f"{len(glaneur_tables)} Glaneur tables, {len(scanner.hits)} hits, scan {took:.1f} s")
    # The scan looked where it should (so zero hits means something).
    assert PREFECT_TABLES <= prefect_tables and {"vaultentry", "account", "collectionrun"} <= glaneur_tables
    assert any(place.endswith("trace.zip!trace.network") for place in scanner.searched), "no trace was searched"
    assert list((glaneur_home / "outbox").glob("*.eml")), "no mail was searched"
    assert list(glaneur_home.rglob("*.meta.json")), "no stored object's metadata was searched"
    # Known, and reported in issue 19: the run's input form answer is deleted from Prefect's flow_run_input once
    # read (no live cell holds it, checked above), but SQLite keeps the deleted row's bytes in the database's WAL
    # or free pages until they are reused. Only that residue, of that single-use code, is let through here.
    residue = [hit for hit in scanner.hits
               if hit.place.startswith(f"{prefect_database}") and hit.secret_label == "typed code"
               and b'-response{"code":"<typed code>"}' in hit.context]
    print(f"secret scan: residue of the deleted run input in Prefect's database files: {len(residue)} hit(s)")
    assert [hit for hit in scanner.hits if hit not in residue] == [], "secrets found:\n" + scanner.report()
