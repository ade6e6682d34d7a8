"""Reading a statement file whatever its format: one :class:`ParsedStatement` per statement."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from glaneur.statements.camt import parse_camt
from glaneur.statements.detect import check_size, sniff
from glaneur.statements.model import MAX_STATEMENT_FILE_BYTES, ParsedStatement, StatementWarning
from glaneur.statements.mt940 import parse_mt940


def parse_statement_file(data: bytes, *, max_bytes: int = MAX_STATEMENT_FILE_BYTES) -> list[ParsedStatement]:
    """Every statement of a CAMT.053 or MT940 file, in file order; raises StatementFileError.

    The whole file is refused at the first statement that cannot be read: filing the readable
    part of a broken file would leave a silent gap in the account's history. Consecutive
    statements of one account in the file are checked for continuity (warnings).
    """
    check_size(data, max_bytes)
    statements = parse_camt(data) if sniff(data) == "xml" else parse_mt940(data)
    last: dict[tuple[str, str], ParsedStatement] = {}
    checked = []
    for statement in statements:
        key = (statement.iban or statement.account, statement.currency)
        previous = last.get(key)
        if previous is not None:
            statement = statement.with_warnings(
                *continuity_warnings(previous.closing_balance, previous.period_end, statement)
            )
        last[key] = statement
        checked.append(statement)
    return checked


def continuity_warnings(
    closing: Decimal, closed_on: date | None, statement: ParsedStatement
) -> list[StatementWarning]:
    """A statement that follows one closing at ``closing`` on ``closed_on``: opens where it closed, starts no earlier.

    The first day of a statement may be the day the previous one closed (MT940 dates its opening
    balance so); an earlier start is an overlap.
    """
    warnings = []
    if statement.opening_balance is not None and statement.opening_balance != closing:
        warnings.append(StatementWarning(
            "continuity_gap",
            f"opens at {statement.opening_balance} while the account's previous statement closed at {closing}"
            f"{f' on {closed_on}' if closed_on else ''}: a statement may be missing",
        ))
    if statement.period_start and closed_on and statement.period_start < closed_on:
        warnings.append(StatementWarning(
            "continuity_overlap",
            f"starts on {statement.period_start}, before the account's previous statement ended ({closed_on})",
        ))
    return warnings
