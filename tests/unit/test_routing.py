"""Routing rules and intake of glaneur.routing, on the database and local storage (no Prefect, no network)."""

from __future__ import annotations

import zipfile
from datetime import UTC, date, datetime
from decimal import Decimal
from io import BytesIO

import pytest
from sqlmodel import Session, select

from glaneur import admin, firm, routing
from glaneur.models import (
    ClientIban,
    MandateStatus,
    Statement,
    StatementFile,
    StatementFileState,
    StatementRoute,
)
from glaneur.storage import LocalStorage
from sandbox.statement_files import BankAccount, Entry, camt053, mt940
from sandbox.statement_files import Statement as Written

ACTIVE = "FR7630004000000001234567845"
PENDING = "FR7620041000000009876543285"
UNKNOWN = "DE89370400440532013000"
DAY = date(2026, 11, 20)
CREATED = datetime(2026, 11, 21, 5, 0, tzinfo=UTC)


def written(iban: str, number: int = 1) -> Written:
    account = BankAccount(iban=iban, bic="BNPAFRPPXXX", owner="Client")
    entries = [Entry(Decimal("12.50"), DAY, DAY, "Vente", "Client A", f"R{number}"),
               Entry(Decimal("-3.20"), DAY, DAY, "Frais", "Banque", f"F{number}")]
    return Written(account=account, identifier=f"STMT-{number}", number=number, day=DAY,
                   created_at=CREATED, opening_balance=Decimal("100.00"), entries=tuple(entries))


@pytest.fixture
def world(glaneur_home, tmp_path):
    from glaneur.db import get_engine

    with Session(get_engine(), expire_on_commit=False) as session:
        admin.create_organization(session, "cab", "Cabinet", "firm")
        boss = admin.create_user(session, "cab", "boss@cab.fr", "Boss", firm_role="administrator")
        firm.create_partner(session, "tool", "Tool")
        firm.associate_connector(session, "cab", "tool", actor=boss)
        firm.add_iban(session, "cab", ACTIVE, "Active client", actor=boss)
        firm.attach_iban(session, "cab", ACTIVE, "tool", actor=boss)
        firm.set_mandate(session, "cab", ACTIVE, "approved", actor=boss)
        firm.add_iban(session, "cab", PENDING, "Pending client", actor=boss)
        firm.attach_iban(session, "cab", PENDING, "tool", actor=boss)
        session.commit()
        yield session, LocalStorage(tmp_path / "docs"), firm.require_firm(session, "cab")


def test_decide_follows_the_faq():
    statement = Statement(id=1, organization_id=1, file_id=1, account="x", currency="EUR", statement_ref="s",
                          format="mt940", opening_balance="0", closing_balance="0", entries=0, sha256="",
                          fingerprint="", storage_key="k")
    active = ClientIban(id=1, organization_id=1, iban="x", client_name="c", partner_id=7,
                        mandate_status=MandateStatus.APPROVED)
    assert routing.decide(statement, None, {7}).route == StatementRoute.ASIDE
    assert routing.decide(statement, active, {7}) == routing.Decision(1, StatementRoute.PARTNER, 7, "active IBAN")
    assert routing.decide(statement, active, set()).route == StatementRoute.GLOBAL  # connector left the firm
    for status in (MandateStatus.PENDING, MandateStatus.REVOKED):
        inactive = active.model_copy(update={"mandate_status": status})
        assert routing.decide(statement, inactive, {7}).route == StatementRoute.GLOBAL
    detached = active.model_copy(update={"partner_id": None})
    assert routing.decide(statement, detached, {7}).route == StatementRoute.GLOBAL


def test_intake_records_each_statement_once_and_routes_it(world):
    session, storage, org = world
    data = camt053([written(ACTIVE), written(PENDING), written(UNKNOWN)], version="001.08", message_id="MSG-1", created_at=CREATED)
    result = routing.record_file(session, storage, org, "day.xml", data, max_bytes=10**6)
    assert len(result.new_statements) == 3 and not result.rejected
    again = routing.record_file(session, storage, org, "day-again.xml", data, max_bytes=10**6)
    assert again.duplicate and again.new_statements == []
    # The same statement in another format and file is still the same statement.
    resent = routing.record_file(session, storage, org, "active.sta", mt940([written(ACTIVE)]), max_bytes=10**6)
    assert resent.already_had == 1 and resent.new_statements == []
    decisions = {d.statement_id: d.route for d in routing.route_pending(session, org, DAY)}
    by_iban = {s.iban: s for s in session.exec(select(Statement)).all()}
    assert decisions[by_iban[ACTIVE].id] == StatementRoute.PARTNER
    assert decisions[by_iban[PENDING].id] == StatementRoute.GLOBAL
    assert decisions[by_iban[UNKNOWN].id] == StatementRoute.ASIDE
    assert [s.id for s in routing.deliveries_due(session, org)] == [by_iban[ACTIVE].id]
    # Routed for good: a second routing on another day does not move the global file's statements.
    routing.route_pending(session, org, date(2026, 11, 21))
    assert by_iban[PENDING].global_date == DAY


def test_rejected_files_are_kept_as_received(world):
    session, storage, org = world
    for name, data in (("empty.sta", b""), ("notes.txt", b"hello"), ("big.xml", b"<a/>" * 100)):
        result = routing.record_file(session, storage, org, name, data, max_bytes=200)
        assert result.rejected and result.rejected_message
    files = session.exec(select(StatementFile)).all()
    assert {f.error_reason for f in files} == {"empty", "unsupported_format", "too_large"}
    assert all(f.state == StatementFileState.REJECTED for f in files)
    assert storage.get(next(f.storage_key for f in files if f.source_name == "notes.txt")) == b"hello"


def test_global_file_is_a_deterministic_zip_with_a_manifest(world):
    session, storage, org = world
    routing.record_file(session, storage, org, "day.xml", camt053([written(PENDING)], version="001.02", message_id="MSG-2", created_at=CREATED),
                        max_bytes=10**6)
    routing.route_pending(session, org, DAY)
    first, count = routing.global_file(session, storage, org, DAY)
    second, _ = routing.global_file(session, storage, org, DAY)
    assert count == 1 and first == second
    with zipfile.ZipFile(BytesIO(first)) as bundle:
        names = bundle.namelist()
        manifest = bundle.read("manifest.csv").decode()
    assert names[-1] == "manifest.csv" and names[0].startswith(PENDING)
    assert PENDING in manifest and "Pending client" in manifest
    with pytest.raises(Exception, match="no statement in its global file of 2026-11-21"):
        routing.global_file(session, storage, org, date(2026, 11, 21))
