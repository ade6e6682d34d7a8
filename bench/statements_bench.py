"""Benchmark: statement parsing and intake. Prints figures; asserts nothing.

    .venv/bin/python bench/statements_bench.py [--accounts 200] [--entries 50]

Figures: parsing throughput of one large CAMT.053 file and of one large MT940 file (statements
and entries per second, MB/s), peak memory while parsing, and intake throughput (parse, split,
store each statement, record it in the database) on local storage and SQLite. Then the real-world
corpus (tests/fixtures/statements/real/, see its SOURCES.md): files read and refused, statements,
warnings by code, refusals by reason, and the time to parse it all in one process.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def build(accounts: int, entries: int):
    from schwifty import IBAN

    from sandbox.statement_files import BankAccount, Entry, Statement

    day = date(2026, 11, 20)
    created = datetime(2026, 11, 21, 5, tzinfo=UTC)
    statements = []
    for number in range(accounts):
        iban = IBAN.generate("FR", bank_code="30004", account_code=f"{number:011d}").compact
        account = BankAccount(iban=iban, bic="BNPAFRPPXXX", owner=f"Client {number}")
        moves = tuple(
            Entry(Decimal(f"{(i % 17) - 8}.{i % 100:02d}"), day, day - timedelta(days=i % 3), f"Facture {i}",
                  f"Tiers {i}", f"R{number}-{i}")
            for i in range(entries)
        )
        statements.append(Statement(account=account, identifier=f"S{number}", number=number + 1, day=day,
                                    created_at=created, opening_balance=Decimal("1000.00"), entries=moves))
    return statements, created


def measure_parse(name: str, data: bytes) -> None:
    from glaneur.statements import parse_statement_file

    tracemalloc.start()
    started = time.perf_counter()
    parsed = parse_statement_file(data, max_bytes=len(data) + 1)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    entries = sum(p.entries for p in parsed)
    print(f"{name:<8} {len(data) / 1e6:7.2f} MB  {len(parsed):5d} statements  {entries:7d} entries  "
          f"{elapsed:6.2f} s  {len(parsed) / elapsed:8.0f} statements/s  {entries / elapsed:9.0f} entries/s  "
          f"{len(data) / 1e6 / elapsed:6.2f} MB/s  peak {peak / 2**20:6.1f} MiB (file {len(data) / 2**20:.1f} MiB)")


def measure_intake(data: bytes) -> None:
    home = Path(tempfile.mkdtemp(prefix="glaneur-bench-"))
    os.environ["GLANEUR_HOME"] = str(home)
    from sqlmodel import Session

    from glaneur import admin

    from glaneur.statements import routing
    from glaneur.db import get_engine, migrate
    from glaneur.settings import reset_settings
    from glaneur.storage import LocalStorage

    reset_settings()
    migrate()
    with Session(get_engine(), expire_on_commit=False) as session:
        org = admin.create_organization(session, "bench", "Bench", "firm")
        storage = LocalStorage(home / "documents")
        started = time.perf_counter()
        result = routing.record_file(session, storage, org, "big.xml", data, max_bytes=len(data) + 1)
        session.commit()
        recorded = time.perf_counter() - started
        started = time.perf_counter()
        decisions = routing.route_pending(session, org, date(2026, 11, 21))
        session.commit()
        routed = time.perf_counter() - started
    count = len(result.new_statements)
    print(f"intake   {count} statements recorded and stored in {recorded:.2f} s ({count / recorded:.0f}/s); "
          f"{len(decisions)} routed in {routed:.2f} s ({len(decisions) / routed:.0f}/s)")


def measure_corpus() -> None:
    from collections import Counter

    from glaneur.statements import StatementFileError, parse_statement_file

    root = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "statements" / "real"
    files = sorted(p for p in root.iterdir() if p.is_file() and p.name != "SOURCES.md")
    contents = [p.read_bytes() for p in files]
    read = statements = 0
    warnings: Counter[str] = Counter()
    warned: Counter[str] = Counter()
    refusals: Counter[str] = Counter()
    started = time.perf_counter()
    for data in contents:
        try:
            parsed = parse_statement_file(data)
        except StatementFileError as error:
            refusals[error.reason] += 1
            continue
        read += 1
        statements += len(parsed)
        for statement in parsed:
            warnings.update(w.code for w in statement.warnings)
        warned.update({w.code for s in parsed for w in s.warnings})
    elapsed = time.perf_counter() - started
    print(f"corpus   {len(files)} real files ({sum(map(len, contents)) / 1024:.0f} KB): {read} read "
          f"({read / len(files):.0%}), {sum(refusals.values())} refused; {statements} statements; "
          f"parsed in {elapsed * 1000:.0f} ms")
    print("         warnings by code (statements / files): "
          + (", ".join(f"{code} {count}/{warned[code]}" for code, count in sorted(warnings.items())) or "none"))
    print("         refusals by reason: " + (", ".join(f"{r} {n}" for r, n in sorted(refusals.items())) or "none"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--entries", type=int, default=50)
    parser.add_argument("--corpus-only", action="store_true", help="Only the real-world corpus figures.")
    args = parser.parse_args()
    if args.corpus_only:
        measure_corpus()
        return
    from sandbox.statement_files import camt053, mt940

    statements, created = build(args.accounts, args.entries)
    camt = camt053(statements, version="001.08", message_id="BENCH", created_at=created)
    sta = mt940(statements)
    print(f"{args.accounts} accounts x {args.entries} entries")
    measure_parse("camt.053", camt)
    measure_parse("mt940", sta)
    measure_intake(camt)
    measure_corpus()
    print(f"process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
