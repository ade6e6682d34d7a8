"""Bank statement files as banks write them: CAMT.053 (versions 001.02 and 001.08) and SWIFT MT940.

Pure functions from typed statements to bytes, deterministic (same input, same bytes), so that the
sandbox statement source serves stable files with stable sha256 and tests can compare them.

Amounts are :class:`~decimal.Decimal`; an entry's amount is signed (positive: credit, negative:
debit) and a statement's closing balance is its opening balance plus the sum of its entries,
exactly. The two CAMT versions differ where real files differ: ``BIC`` (001.02) against ``BICFI``
(001.08) for the account servicer, ``<Sts>BOOK</Sts>`` against ``<Sts><Cd>BOOK</Cd></Sts>``, and
related parties named directly (001.02) or under ``Pty`` (001.08). MT940 uses CRLF line ends,
``YYMMDD`` dates, a comma as decimal separator and the SWIFT character set (accents dropped).
"""

from __future__ import annotations

import datetime as dt
import textwrap
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

CamtVersion = Literal["001.02", "001.08"]
CENT = Decimal("0.01")


@dataclass(frozen=True)
class BankAccount:
    iban: str
    bic: str
    owner: str
    currency: str = "EUR"


@dataclass(frozen=True)
class Entry:
    """One booked movement. ``amount`` is signed: positive credits the account, negative debits it."""

    amount: Decimal
    booking_date: dt.date
    value_date: dt.date
    remittance: str  # what the payer wrote (camt Ustrd, MT940 :86:)
    counterparty: str
    reference: str  # the bank's own reference (camt AcctSvcrRef, MT940 after //); at most 16 characters
    family: str = "RCDT"  # ISO bank transaction family under domain PMNT: RCDT, ICDT, RDDT, IDDT, CCRD
    sub_family: str = "ESCT"  # ESCT, DMCT, ESDD, POSD, ...


@dataclass(frozen=True)
class Statement:
    """A day's statement of one account (``relevé``)."""

    account: BankAccount
    identifier: str  # camt Stmt/Id, MT940 :20: (at most 16 characters)
    number: int  # camt ElctrncSeqNb, MT940 :28C:
    day: dt.date  # the booking day covered (FrToDt), also the balances' date
    created_at: dt.datetime  # timezone-aware
    opening_balance: Decimal
    entries: tuple[Entry, ...]

    @property
    def closing_balance(self) -> Decimal:
        return self.opening_balance + sum((entry.amount for entry in self.entries), Decimal(0))


# -- CAMT.053 ------------------------------------------------------------------------------------

# Family codes of MT940 transaction types (field 61, "N" + 3 letters) for the same movements.
_SWIFT_CODES = {"RCDT": "NTRF", "ICDT": "NTRF", "RDDT": "NDDT", "IDDT": "NDDT", "CCRD": "NCHK"}


def camt053(
    statements: Sequence[Statement], *, version: CamtVersion, message_id: str, created_at: dt.datetime
) -> bytes:
    """A ``camt.053.<version>`` document (BkToCstmrStmt) holding ``statements``, UTF-8 with declaration."""
    if version not in ("001.02", "001.08"):
        raise ValueError(f"Unsupported camt.053 version {version!r}; known: 001.02, 001.08.")
    if not statements:
        raise ValueError("A camt.053 document holds at least one statement.")
    root = ET.Element("Document", {"xmlns": f"urn:iso:std:iso:20022:tech:xsd:camt.053.{version}"})
    report = ET.SubElement(root, "BkToCstmrStmt")
    header = ET.SubElement(report, "GrpHdr")
    _text(header, "MsgId", message_id)
    _text(header, "CreDtTm", _datetime(created_at))
    for statement in statements:
        _camt_statement(report, statement, version)
    ET.indent(root, space="  ")
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode").encode() + b"\n"


def _camt_statement(parent: ET.Element, statement: Statement, version: CamtVersion) -> None:
    account = statement.account
    element = ET.SubElement(parent, "Stmt")
    _text(element, "Id", statement.identifier)
    _text(element, "ElctrncSeqNb", str(statement.number))
    _text(element, "CreDtTm", _datetime(statement.created_at))
    period = ET.SubElement(element, "FrToDt")
    tz = statement.created_at.tzinfo
    _text(period, "FrDtTm", _datetime(dt.datetime.combine(statement.day, dt.time(0, 0), tz)))
    _text(period, "ToDtTm", _datetime(dt.datetime.combine(statement.day, dt.time(23, 59, 59), tz)))
    acct = ET.SubElement(element, "Acct")
    _text(ET.SubElement(acct, "Id"), "IBAN", account.iban)
    _text(acct, "Ccy", account.currency)
    _text(ET.SubElement(acct, "Ownr"), "Nm", account.owner)
    institution = ET.SubElement(ET.SubElement(acct, "Svcr"), "FinInstnId")
    _text(institution, "BICFI" if version == "001.08" else "BIC", account.bic)
    _camt_balance(element, "OPBD", statement.opening_balance, account.currency, statement.day)
    _camt_balance(element, "CLBD", statement.closing_balance, account.currency, statement.day)
    for entry in statement.entries:
        _camt_entry(element, entry, account.currency, version)


def _camt_balance(parent: ET.Element, code: str, amount: Decimal, currency: str, day: dt.date) -> None:
    balance = ET.SubElement(parent, "Bal")
    _text(ET.SubElement(ET.SubElement(balance, "Tp"), "CdOrPrtry"), "Cd", code)
    _text(balance, "Amt", _dotted(abs(amount)), Ccy=currency)
    _text(balance, "CdtDbtInd", "DBIT" if amount < 0 else "CRDT")
    _text(ET.SubElement(balance, "Dt"), "Dt", day.isoformat())


def _camt_entry(parent: ET.Element, entry: Entry, currency: str, version: CamtVersion) -> None:
    credit = entry.amount >= 0
    element = ET.SubElement(parent, "Ntry")
    _text(element, "Amt", _dotted(abs(entry.amount)), Ccy=currency)
    _text(element, "CdtDbtInd", "CRDT" if credit else "DBIT")
    if version == "001.08":
        _text(ET.SubElement(element, "Sts"), "Cd", "BOOK")
    else:
        _text(element, "Sts", "BOOK")
    _text(ET.SubElement(element, "BookgDt"), "Dt", entry.booking_date.isoformat())
    _text(ET.SubElement(element, "ValDt"), "Dt", entry.value_date.isoformat())
    _text(element, "AcctSvcrRef", entry.reference)
    domain = ET.SubElement(ET.SubElement(element, "BkTxCd"), "Domn")
    _text(domain, "Cd", "PMNT")
    family = ET.SubElement(domain, "Fmly")
    _text(family, "Cd", entry.family)
    _text(family, "SubFmlyCd", entry.sub_family)
    details = ET.SubElement(ET.SubElement(element, "NtryDtls"), "TxDtls")
    _text(ET.SubElement(details, "Refs"), "AcctSvcrRef", entry.reference)
    party = ET.SubElement(ET.SubElement(details, "RltdPties"), "Dbtr" if credit else "Cdtr")
    if version == "001.08":  # Party40Choice: the party sits under Pty
        party = ET.SubElement(party, "Pty")
    _text(party, "Nm", entry.counterparty)
    _text(ET.SubElement(details, "RmtInf"), "Ustrd", entry.remittance[:140])


def _text(parent: ET.Element, tag: str, text: str, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attributes)
    element.text = text
    return element


def _datetime(moment: dt.datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("Statement times must be timezone-aware.")
    return moment.isoformat(timespec="seconds")


def _dotted(amount: Decimal) -> str:
    return f"{amount.quantize(CENT):f}"


# -- MT940 ---------------------------------------------------------------------------------------


def mt940(statements: Sequence[Statement]) -> bytes:
    """An MT940 file (statements one after the other, each closed by a ``-`` line), CRLF, ASCII."""
    if not statements:
        raise ValueError("An MT940 file holds at least one statement.")
    lines: list[str] = []
    for statement in statements:
        lines.extend(_mt940_statement(statement))
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def _mt940_statement(statement: Statement) -> list[str]:
    currency = statement.account.currency
    if len(statement.identifier) > 16:
        raise ValueError(f"MT940 :20: is at most 16 characters, not {statement.identifier!r}.")
    lines = [
        f":20:{statement.identifier}",
        f":25:{statement.account.iban}",
        f":28C:{statement.number % 100000:05d}/1",
        f":60F:{_mt940_balance(statement.opening_balance, statement.day, currency)}",
    ]
    for entry in statement.entries:
        mark = "C" if entry.amount >= 0 else "D"
        code = _SWIFT_CODES.get(entry.family, "NMSC")
        lines.append(
            f":61:{entry.value_date:%y%m%d}{entry.booking_date:%m%d}{mark}{_comma(abs(entry.amount))}"
            f"{code}NONREF//{_swift(entry.reference)[:16]}"
        )
        lines.extend(_mt940_details(entry))
    closing = _mt940_balance(statement.closing_balance, statement.day, currency)
    lines += [f":62F:{closing}", f":64:{closing}", "-"]
    return lines


def _mt940_balance(amount: Decimal, day: dt.date, currency: str) -> str:
    return f"{'D' if amount < 0 else 'C'}{day:%y%m%d}{currency}{_comma(abs(amount))}"


def _mt940_details(entry: Entry) -> list[str]:
    """Field 86: at most 6 lines of 65 characters; the counterparty, then what the payer wrote."""
    text = _swift(f"{entry.counterparty} / {entry.remittance}")
    # Wrapped at 64 so that a continuation line starting with '-' (read as the end of the statement) can take a space.
    chunks = textwrap.wrap(text, 64)[:6] or [""]
    return [f":86:{chunks[0]}", *(f" {chunk}" if chunk.startswith("-") else chunk for chunk in chunks[1:])]


def _comma(amount: Decimal) -> str:
    return _dotted(amount).replace(".", ",")


_SWIFT_ALLOWED = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/-?:().,'+ ")


def _swift(text: str) -> str:
    """The SWIFT X character set: accents dropped, anything else becomes a space; no line may start with ':' or '-'."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    cleaned = "".join(char if char in _SWIFT_ALLOWED else " " for char in plain)
    return " ".join(cleaned.replace(":", " ").split())
