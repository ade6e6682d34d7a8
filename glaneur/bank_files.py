"""A day's bank movements of one account as files an accounting tool imports: CSV and OFX 2.

Pure functions (movements in, bytes out); the same movements always give the same bytes, so that
filing a day twice is one object in storage (:mod:`glaneur.storage` never overwrites).
Keys follow the storage layout: ``{org}/{binder}/{channel}/{yyyy}/{mm}/{day}_powens_{account}-movements.csv``.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from xml.sax.saxutils import escape

from glaneur.models import BankAccount, BankMovement
from glaneur.storage import document_key

CSV_COLUMNS = ("powens_id", "booking_date", "value_date", "amount", "currency", "wording", "original_wording",
               "type", "coming", "deleted", "version")


def account_reference(account: BankAccount, part: int = 1) -> str:
    base = f"{account.iban or account.number or account.powens_id}-movements"
    return base if part == 1 else f"{base}-part{part}"


def file_keys(*, organization: str, binder: str, channel: str, account: BankAccount, day: date, part: int = 1) -> dict[str, str]:
    reference = account_reference(account, part)
    return {
        ext: document_key(organization=organization, binder=binder, channel=channel, document_date=day,
                          provider="powens", reference=reference, extension=ext)
        for ext in ("csv", "ofx")
    }


def _cell(text: str) -> str:
    """A cell a spreadsheet will not run: formulas are quoted (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _number(text) else text


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def to_csv(movements: list[BankMovement]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for m in movements:
        writer.writerow([
            m.powens_id, m.booking_date.isoformat(), m.value_date.isoformat() if m.value_date else "", m.amount,
            m.currency, _cell(m.wording), _cell(m.original_wording), m.kind, "1" if m.coming else "0",
            "1" if m.deleted else "0", m.version,
        ])
    return out.getvalue().encode("utf-8")


def to_ofx(account: BankAccount, movements: list[BankMovement], day: date) -> bytes:
    """OFX 2.x (XML) bank statement: one STMTTRN per movement, FITID = Powens id and version."""
    lines = []
    for m in movements:
        if m.deleted:
            continue
        kind = "CREDIT" if not m.amount.startswith("-") else "DEBIT"
        lines.append(
            "<STMTTRN>"
            f"<TRNTYPE>{kind}</TRNTYPE><DTPOSTED>{m.booking_date:%Y%m%d}</DTPOSTED>"
            f"<TRNAMT>{m.amount}</TRNAMT><FITID>{m.powens_id}-{m.version}</FITID>"
            f"<NAME>{escape(m.wording[:32])}</NAME><MEMO>{escape(m.original_wording)}</MEMO>"
            "</STMTTRN>"
        )
    start = min((m.booking_date for m in movements), default=day)
    account_id = escape(account.iban or account.number or str(account.powens_id))
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<?OFX OFXHEADER="200" VERSION="220" SECURITY="NONE" '
        'OLDFILEUID="NONE" NEWFILEUID="NONE"?>\n'
        "<OFX><BANKMSGSRSV1><STMTTRNRS><TRNUID>0</TRNUID><STATUS><CODE>0</CODE><SEVERITY>INFO</SEVERITY></STATUS>"
        f"<STMTRS><CURDEF>{escape(account.currency)}</CURDEF><BANKACCTFROM><BANKID>POWENS</BANKID>"
        f"<ACCTID>{account_id}</ACCTID><ACCTTYPE>CHECKING</ACCTTYPE></BANKACCTFROM>"
        f"<BANKTRANLIST><DTSTART>{start:%Y%m%d}</DTSTART><DTEND>{day:%Y%m%d}</DTEND>{''.join(lines)}</BANKTRANLIST>"
        f"<LEDGERBAL><BALAMT>{escape(account.balance or '0.00')}</BALAMT><DTASOF>{day:%Y%m%d}</DTASOF></LEDGERBAL>"
        "</STMTRS></STMTTRNRS></BANKMSGSRSV1></OFX>\n"
    )
    return body.encode("utf-8")
