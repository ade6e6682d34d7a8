"""The demo's bank channel (sandbox/demo.py), on this session's Prefect server, the Powens sandbox on a free port
and real Chromium: the referential, the holder's consent, the webview (``bank connect``'s path), one
``collect-bank-movements`` run filing each account's day files, and the summary showing them. A second
``make demo`` (a new Powens sandbox process, restored from what the first saved) files nothing new.
"""

from __future__ import annotations

from datetime import date

import pytest
from sqlmodel import Session, select

from glaneur.models import BankConsent, BankConsentState, BankMovement, Channel, CollectionRun
from tests.camt_schema import camt053_errors
from tests.e2e.conftest import assert_no_secret

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]


def stored_files(home) -> list[str]:
    root = home / "documents"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and not p.name.endswith(".json"))


def test_demo_connects_its_bank_files_the_movements_and_files_nothing_new_again(glaneur_home, monkeypatch, capsys):
    from glaneur.db import get_engine
    from sandbox import demo

    for name in ("API_URL", "WEBVIEW_URL", "CLIENT_ID", "CLIENT_SECRET"):  # the demo sets them: restored after
        monkeypatch.setenv(f"GLANEUR_POWENS_{name}", "-")
    for name in ("GLANEUR_ACTING_USER", "GLANEUR_SMTP_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GLANEUR_POWENS_FULL_PASS_DAYS", "0")  # the periodic full pass would fall on some days only
    demo.create_demo_organization()

    world = demo.demo_powens_world(glaneur_home)
    assert not world.connections
    with demo.start_powens_sandbox(world, port=0):
        connected, summary, accounts = demo.collect_demo_bank()
        world.save(glaneur_home / demo.POWENS_STATE_FILE)
    demo.print_bank(connected, summary, accounts)
    shown = " ".join(capsys.readouterr().out.split())

    [remote] = world.connections.values()
    expected = {t["id"] for t in world.transactions(remote.id_user)}
    assert connected and "48 to 72 hours" in connected
    assert summary["status"] == "ok" and summary["new"] == len(expected) > 0, summary
    with Session(get_engine()) as session:
        channel = session.exec(select(Channel).where(Channel.slug == demo.DEMO_BANK_CHANNEL)).one()
        assert channel.status == "ok"
        [consent] = session.exec(select(BankConsent)).all()
        assert consent.state == BankConsentState.GIVEN and consent.holder_email == demo.DEMO_ACCOUNTANT
        assert {m.powens_id for m in session.exec(select(BankMovement)).all()} == expected
    files = stored_files(glaneur_home)
    bank_files = [f for f in files if f.startswith(f"demo/{demo.DEMO_BANK_BINDER}/{demo.DEMO_BANK_CHANNEL}/")]
    assert len(bank_files) == len(summary["files"]) == 3 * len(accounts) == 6  # checking + savings: CSV, OFX, CAMT
    assert {f.rsplit(".", 1)[1] for f in bank_files} == {"csv", "ofx", "xml"}
    assert all(f"{date.today():%Y-%m-%d}_powens_" in f for f in bank_files)
    for name in bank_files:  # what an accounting tool imports: valid against ISO 20022's own schema
        if name.endswith(".xml"):
            assert camt053_errors((glaneur_home / "documents" / name).read_bytes()) == [], name
    assert sum(count for _, _, count in accounts) == len(expected)
    assert f"Bank channel {demo.DEMO_BANK_CHANNEL}: connected now through the POWENS webview" in shown
    for name, iban, count in accounts:
        assert f"{name} │ {iban} │ {count}" in shown
    assert f"{summary['new']} new or updated, 0 already had, 6 file(s) filed today" in shown
    token = next(t for t, user in world.tokens.items() if user == remote.id_user)
    with Session(get_engine()) as session:
        [run] = session.exec(select(CollectionRun).where(CollectionRun.channel_id == channel.id)).all()
    assert_no_secret(glaneur_home, run.flow_run_id, [token, demo.POWENS_DEMO_SECRET])  # Glaneur's side: vault only

    # make demo again: a new process, whose Powens sandbox restores the users and connections the first one saved.
    again = demo.demo_powens_world(glaneur_home)
    assert again.connections.keys() == world.connections.keys() and again.tokens == world.tokens
    with demo.start_powens_sandbox(again, port=0):
        connected, summary, accounts = demo.collect_demo_bank()
    demo.print_bank(connected, summary, accounts)
    shown = " ".join(capsys.readouterr().out.split())
    assert connected is None and "connected by an earlier run: collecting again" in shown
    assert summary["status"] == "ok" and summary["new"] == 0, summary
    assert "No new movement since the last run." in shown
    assert stored_files(glaneur_home) == files
