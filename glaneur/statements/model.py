"""What a bank statement file yields once read, and the one error it raises when it cannot be read.

A file may hold several statements ("relevés de compte": several accounts, or several days of
one account); each becomes one :class:`ParsedStatement` whose ``content`` is that statement alone,
as a file of the same format, so that it can be filed and delivered on its own and deduplicated
by its sha256.

What a bank writes loosely but unambiguously (a field over its nominal length, a blank statement
number, a balance without its credit/debit mark, balances that do not add up…) is read, and noted
as a :class:`StatementWarning` on the statement; its ``code`` comes from a closed list.

:class:`StatementFileError` carries a ``reason`` from a closed list (callers branch on it, never
on the wording) and a one-sentence message saying what is wrong and what to do. Messages quote
at most a few dozen characters of the file: statements are confidential, and messages end up in
logs and e-mails.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from typing import Literal, get_args

from schwifty import IBAN

#: Larger files are refused before any parsing: a day of statements is a few hundred kilobytes.
MAX_STATEMENT_FILE_BYTES = 20 * 1024 * 1024

StatementFileReason = Literal[
    "empty",
    "too_large",
    "hostile_xml",
    "malformed_xml",
    "unsupported_format",
    "unsupported_version",
    "truncated",
    "invalid_statement",
]

#: How a refusal of the format ends: what to ask the bank for instead.
ASK_FOR_ACCEPTED_FORMATS = (
    "ask the bank for statement files in CAMT.053 (ISO 20022 XML, versions camt.053.001.02 to "
    "camt.053.001.13) or MT940 (SWIFT) format"
)

WarningCode = Literal[
    "balance_mismatch",  # opening balance + entries != closing balance
    "currency_mismatch",  # balances in another currency than the account's
    "no_opening_balance",  # a closing balance only
    "balance_sign_missing",  # a balance without credit/debit mark; its sign follows from the entries
    "field_too_long",  # an MT940 field over its nominal length
    "no_statement_number",  # a blank MT940 :28C:
    "wrapped_line",  # a field or a block end split across lines
    "control_characters",  # stray control characters (SUB, NUL…) between or inside messages
    "no_end_marker",  # a message without its end ("-}" or "-")
    "continuity_gap",  # opens at another balance than the previous statement of the account closed at
    "continuity_overlap",  # its period starts before the previous statement of the account ended
]

#: What a firm should do about each warning, said once for every place that shows them.
WARNING_TITLES: dict[str, str] = {
    "balance_mismatch": "balances do not add up",
    "currency_mismatch": "currency differs from the account's",
    "no_opening_balance": "no opening balance",
    "balance_sign_missing": "balance without credit/debit mark",
    "field_too_long": "field over its length",
    "no_statement_number": "blank statement number",
    "wrapped_line": "line split in two",
    "control_characters": "control characters",
    "no_end_marker": "no end marker",
    "continuity_gap": "gap with the previous statement",
    "continuity_overlap": "overlap with the previous statement",
}

_QUOTE_LIMIT = 40


class StatementFileError(ValueError):
    """A statement file that cannot be read; ``reason`` says why, the message says what to do."""

    def __init__(self, reason: StatementFileReason, message: str) -> None:
        if reason not in get_args(StatementFileReason):
            raise ValueError(f"unknown statement file error reason {reason!r}")
        self.reason: StatementFileReason = reason
        super().__init__(message)


@dataclass(frozen=True)
class StatementWarning:
    """Something a statement says loosely or inconsistently, read anyway; shown wherever the statement is."""

    code: WarningCode
    message: str

    def __post_init__(self) -> None:
        if self.code not in get_args(WarningCode):
            raise ValueError(f"unknown statement warning code {self.code!r}")

    def as_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class Movement:
    """One entry as the fingerprint needs it: value date, signed amount, the bank's reference."""

    day: date | None
    amount: Decimal
    reference: str


@dataclass(frozen=True)
class ParsedStatement:
    """One statement of a file: the account, its period and balances, and the statement's own file.

    Balances are signed (a debit balance is negative) and exactly as written in the file. The opening
    balance is None when the statement has none (then a ``no_opening_balance`` warning says so).
    """

    format: str
    account: str
    iban: str | None
    currency: str
    statement_id: str
    period_start: date | None
    period_end: date | None
    opening_balance: Decimal | None
    closing_balance: Decimal
    entries: int
    content: bytes = field(repr=False)
    movements: tuple[Movement, ...] = field(default=(), repr=False)
    warnings: tuple[StatementWarning, ...] = ()

    @property
    def sha256(self) -> str:
        """Fingerprint of ``content``: the same statement received twice is filed once."""
        return hashlib.sha256(self.content).hexdigest()

    def as_json(self) -> dict[str, object]:
        """The statement's description for history and artifacts; amounts as exact strings."""
        return {
            "iban": self.iban,
            "account": self.account,
            "currency": self.currency,
            "opening_balance": None if self.opening_balance is None else str(self.opening_balance),
            "closing_balance": str(self.closing_balance),
            "entries": self.entries,
            "period": self.period,
            "period_start": self.period_start.isoformat() if self.period_start else None,
            "period_end": self.period_end.isoformat() if self.period_end else None,
            "statement_id": self.statement_id,
            "format": self.format,
            "sha256": self.sha256,
            "warnings": [warning.as_json() for warning in self.warnings],
        }

    @property
    def period(self) -> dict[str, str | None]:
        return {
            "start": self.period_start.isoformat() if self.period_start else None,
            "end": self.period_end.isoformat() if self.period_end else None,
        }

    def with_warnings(self, *more: StatementWarning) -> ParsedStatement:
        """This statement with ``more`` warnings, each code once."""
        known = {warning.code for warning in self.warnings}
        added = tuple(warning for warning in more if warning.code not in known)
        return replace(self, warnings=self.warnings + added) if added else self


def iban_of(*candidates: str) -> str | None:
    """The compact upper-case IBAN among ``candidates``, or None when none is a valid IBAN.

    Validation is schwifty's (length, structure, check digits, national checksum), so a mistyped
    account number never passes for an IBAN.
    """
    for candidate in candidates:
        compact = "".join(candidate.split()).upper()
        if not compact:
            continue
        try:
            return IBAN(compact).compact
        except ValueError:
            continue
    return None


def signed(amount: Decimal, debit: bool) -> Decimal:
    """``amount`` negated for a debit; a zero balance stays unsigned whatever its mark."""
    if not amount:
        return abs(amount)
    return -amount if debit else amount


def quoted(text: str, limit: int = _QUOTE_LIMIT) -> str:
    """``text`` as a message may quote it: one line, at most ``limit`` characters, in quotes."""
    line = " ".join(text.split())
    if len(line) > limit:
        line = line[: limit - 1] + "…"
    return f"'{line}'"
