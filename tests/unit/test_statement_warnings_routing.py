"""Intake and routing of statements read with warnings (issue 18) and the fingerprint of a statement (issue 14,
item 7), on the database and local storage (no Prefect, no network)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlmodel import Session, select


from glaneur.statements import firm, routing
from glaneur.errors import UsageError
from glaneur.statements.doctor import diagnose_iban
from glaneur.models import Statement, StatementRoute
from glaneur.storage import LocalStorage
from sandbox.statement_files import BankAccount, Entry, camt053, mt940
from sandbox.statement_files import Statement as Written
from tests import factories

ACTIVE = "FR7630004000000001234567845"
DAY = date(2026, 11, 20)
CREATED = datetime(2026, 11, 21, 5, 0, tzinfo=UTC)
ACCOUNT = BankAccount(iban=ACTIVE, bic="BNPAFRPPXXX", owner="Client")


def written(amounts: tuple[str, ...], references: tuple[str, ...] | None = None, *, day: date = DAY,
            opening: str = "100.00", identifier: str = "STMT-1") -> Written:
    references = references or tuple(f"R{i}" for i in range(len(amounts)))
    entries = tuple(Entry(Decimal(a), day, day, "Vente", "Client A", r) for a, r in zip(amounts, references, strict=True))
    return Written(account=ACCOUNT, identifier=identifier, number=1, day=day, created_at=CREATED,
                   opening_balance=Decimal(opening), entries=entries)


def camt(statement: Written, message_id: str = "MSG-1") -> bytes:
    return camt053([statement], version="001.08", message_id=message_id, created_at=CREATED)


@pytest.fixture
def world(glaneur_home, tmp_path):
    from glaneur.db import get_engine

    with Session(get_engine(), expire_on_commit=False) as session:
        factories.firm_with_partner(session, [(ACTIVE, "Active client", "approved")])
        session.commit()
        yield session, LocalStorage(tmp_path / "docs"), firm.require_firm(session, "cab")


def record(world, name: str, data: bytes) -> routing.IntakeResult:
    session, storage, org = world
    return routing.record_file(session, storage, org, name, data, max_bytes=10**6)


# -- issue 14, item 7: a statement's fingerprint holds its entries ---------------------------------------------


def test_two_statements_of_one_iban_and_day_with_the_same_totals_are_both_recorded(world):
    first = written(("12.50", "-3.20"))
    second = written(("10.00", "-0.70"), identifier="STMT-2")  # same opening, closing and entry count
    assert (first.opening_balance, first.closing_balance, len(first.entries)) == (
        second.opening_balance, second.closing_balance, len(second.entries))

    assert len(record(world, "a.xml", camt(first)).new_statements) == 1
    assert len(record(world, "b.xml", camt(second, "MSG-2")).new_statements) == 1


def test_same_amounts_with_other_references_are_another_statement_in_the_same_format(world):
    assert len(record(world, "a.xml", camt(written(("12.50", "-3.20"), ("A1", "A2")))).new_statements) == 1
    other = record(world, "b.xml", camt(written(("12.50", "-3.20"), ("B1", "B2")), "MSG-2"))

    assert len(other.new_statements) == 1


def test_the_same_statement_again_in_another_envelope_or_the_other_format_is_recorded_once(world):
    statement = written(("12.50", "-3.20"))
    assert len(record(world, "a.xml", camt(statement)).new_statements) == 1

    again = record(world, "a-bis.xml", camt(statement, "MSG-OTHER-ENVELOPE"))
    other_format = record(world, "a.sta", mt940([statement]))
    in_mt940_then_camt = record(world, "c.sta", mt940([written(("7.00",), day=DAY + timedelta(days=1),
                                                               opening="109.30")]))
    camt_of_it = record(world, "c.xml", camt(written(("7.00",), day=DAY + timedelta(days=1), opening="109.30"),
                                            "MSG-3"))

    assert (again.already_had, other_format.already_had) == (1, 1)
    assert len(in_mt940_then_camt.new_statements) == 1 and camt_of_it.already_had == 1


def test_a_statement_recorded_before_entries_counted_is_not_recorded_again(world):
    session, _, org = world
    statement = written(("12.50", "-3.20"))
    record(world, "a.xml", camt(statement))
    row = session.exec(select(Statement)).one()
    parsed = replace(routing.parse_statement_file(camt(statement))[0])
    row.fingerprint, row.money_key = routing.legacy_fingerprint(parsed), None  # as 0004 recorded it
    session.add(row)
    session.flush()

    assert record(world, "a.sta", mt940([statement])).already_had == 1


# -- continuity and warnings at intake ---------------------------------------------------------------------------


def warnings_of(session: Session, result: routing.IntakeResult) -> list[list[str]]:
    return [[w["code"] for w in json.loads(session.get(Statement, i).warnings)] for i in result.new_statements]


def test_a_gap_or_an_overlap_with_the_previous_statement_of_the_iban_is_a_warning(world):
    session = world[0]
    record(world, "d1.xml", camt(written(("12.50", "-3.20"))))  # closes at 109.30
    follows = record(world, "d2.xml", camt(written(("1.00",), day=DAY + timedelta(days=1), opening="109.30",
                                                   identifier="S2"), "M2"))
    gap = record(world, "d4.xml", camt(written(("1.00",), day=DAY + timedelta(days=3), opening="500.00",
                                               identifier="S4"), "M4"))

    assert warnings_of(session, follows) == [[]]
    assert warnings_of(session, gap) == [["continuity_gap"]]
    assert "109.30" not in json.loads(session.get(Statement, gap.new_statements[0]).warnings)[0]["message"]
    assert "110.30" in json.loads(session.get(Statement, gap.new_statements[0]).warnings)[0]["message"]


def test_warnings_read_in_the_file_are_recorded_and_the_statement_still_routed(world):
    session, _, org = world
    data = camt(written(("12.50", "-3.20"))).replace(b">109.30<", b">109.31<")
    result = record(world, "odd.xml", data)
    (decision,) = routing.route_pending(session, org, DAY)

    assert warnings_of(session, result) == [["balance_mismatch"]]
    assert decision.route == StatementRoute.PARTNER


def test_a_firm_that_holds_statements_with_warnings_routes_them_after_review(world):
    session, _, org = world
    org.hold_statements_with_warnings = True
    session.add(org)
    clean = record(world, "clean.xml", camt(written(("1.00",), identifier="S0"), "M0"))
    odd = record(world, "odd.xml", camt(written(("12.50", "-3.20")), "M1").replace(b">109.30<", b">109.31<"))
    decisions = {d.statement_id: d for d in routing.route_pending(session, org, DAY)}
    held = session.get(Statement, odd.new_statements[0])

    assert decisions[clean.new_statements[0]].route == StatementRoute.PARTNER
    assert decisions[held.id].route == StatementRoute.HELD and "balance_mismatch" in decisions[held.id].reason
    assert routing.deliveries_due(session, org) == [session.get(Statement, clean.new_statements[0])]
    assert routing.route_pending(session, org, DAY)[-1].route == StatementRoute.HELD  # still held next run
    with pytest.raises(UsageError, match="not held"):
        routing.release(session, org, clean.new_statements[0])

    routing.release(session, org, held.id)
    decisions = {d.statement_id: d.route for d in routing.route_pending(session, org, DAY)}

    assert decisions[held.id] == StatementRoute.PARTNER


def test_warnings_show_in_the_history_and_in_doctor(world):
    session, _, org = world
    record(world, "odd.xml", camt(written(("12.50", "-3.20"))).replace(b">109.30<", b">109.31<"))
    routing.route_pending(session, org, DAY)
    (entry,) = routing.statement_history(session, org)
    checks = diagnose_iban(session, ACTIVE, "cab")
    statement_check = next(c for c in checks if c.name.startswith("Statement "))

    assert [w["code"] for w in routing.warnings_of(entry.statement)] == ["balance_mismatch"]
    assert "balance_mismatch" in statement_check.detail and statement_check.verdict.value == "warn"
