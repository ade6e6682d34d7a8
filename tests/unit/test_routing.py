"""Routing rules and intake of glaneur.statements.routing, on the database and local storage (no Prefect, no network)."""

from __future__ import annotations

import zipfile
from datetime import UTC, date, datetime
from decimal import Decimal
from io import BytesIO

import pytest
from sqlmodel import Session, select


from glaneur.statements import firm, routing
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
from tests import factories

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
        factories.firm_with_partner(session, [(ACTIVE, "Active client", "approved"), (PENDING, "Pending client", None)])
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


def test_a_statement_acknowledged_but_not_copied_stays_due_and_is_not_re_routed(world):
    """Issue 14 item 5: a storage failure after the receipt must not leave the statement pending for good."""
    session, storage, org = world
    data = camt053([written(ACTIVE)], version="001.08", message_id="MSG-2", created_at=CREATED)
    (statement_id,) = routing.record_file(session, storage, org, "one.xml", data, max_bytes=10**6).new_statements
    routing.route_pending(session, org, DAY)
    routing.mark_acknowledged(session, statement_id, "tool-1")
    routing.mark_copy_failed(session, statement_id, "Tool acknowledged it (receipt tool-1), but its copy failed.")

    assert [s.id for s in routing.deliveries_due(session, org)] == [statement_id]
    (entry,) = routing.statement_history(session, org, iban=ACTIVE)
    assert "acknowledged, receipt tool-1" in entry.destination and "next run writes it" in entry.destination
    routing.route_pending(session, org, date(2026, 11, 21))  # acknowledged: the partner's for good
    assert session.get(Statement, statement_id).route == StatementRoute.PARTNER
    routing.mark_delivered(session, statement_id, "partners/tool/x.xml")
    assert routing.deliveries_due(session, org) == []
    assert session.get(Statement, statement_id).last_delivery_error == ""


def test_an_unreadable_partner_secret_or_source_token_is_a_typed_error_saying_what_to_do(world):
    """Issue 14 item 6: the vault's failure for one entry becomes that partner's or source's own status."""
    from glaneur.models import PartnerConnector, User, VaultEntry
    from glaneur.statuses import Status

    session, _, org = world
    firm.update_partner(session, "tool", delivery_url="https://tool.example/api", secret="partner-secret-0123456789")
    source = firm.add_statement_source(session, "cab", "bank", url="https://bank.example", token="token-0123456789",
                                       actor=session.exec(select(User)).first())
    partner = session.exec(select(PartnerConnector)).one()
    assert routing.partner_secret(session, partner) == "partner-secret-0123456789"
    for ref in (partner.secret_ref, source.token_ref):
        entry = session.get(VaultEntry, ref)
        entry.ciphertext = entry.ciphertext[:-8] + b"AAAAAAAA"
        session.add(entry)
    session.flush()

    with pytest.raises(routing.UnreadableSecret) as partner_error:
        routing.partner_secret(session, partner)
    with pytest.raises(routing.UnreadableSecret) as source_error:
        routing.source_token(session, source, org)
    assert partner_error.value.status == Status.SECRET_UNREADABLE and not partner_error.value.retried
    assert "glaneur partner update tool --new-secret" in partner_error.value.user_message
    assert "glaneur firm source-token cab bank" in source_error.value.user_message
    for error in (partner_error.value, source_error.value):
        assert "partner-secret" not in error.user_message and "token-0123" not in error.user_message
