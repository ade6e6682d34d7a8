"""A day's bank movements of one account as files an accounting tool imports: CSV, OFX 2 and CAMT.053.

Pure functions (movements in, bytes out); the same movements always give the same bytes, so that
filing a day twice is one object in storage (:mod:`glaneur.storage` never overwrites).
Keys follow the storage layout: ``{org}/{binder}/{channel}/{yyyy}/{mm}/{day}_powens_{account}-movements.csv``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from datetime import date
from xml.sax.saxutils import escape

from glaneur.models import BankAccount, BankMovement
from glaneur.storage import document_key

FORMATS = ("csv", "ofx", "xml")  # the CAMT.053 file is the .xml
CONTENT_TYPES = {"csv": "text/csv", "ofx": "application/x-ofx", "xml": "application/xml"}
CAMT_NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"
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
        for ext in FORMATS
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


_IBAN = re.compile(r"[A-Z]{2}[0-9]{2}[a-zA-Z0-9]{1,30}")  # the schema's IBAN2007Identifier


def _text(value: str, limit: int) -> str:
    """At most ``limit`` characters (the schema's MaxNText), cut before escaping so no entity is cut in half."""
    return escape(value[:limit])


MAX_ACCOUNT_ID = 34  # Acct/Id/Othr/Id is Max34Text
MAX_ACCOUNT_NAME = 70  # Acct/Nm is Max70Text
MAX_STATEMENT_INFORMATION = 500  # Stmt/AddtlStmtInf is Max500Text
POWENS_ACCOUNT_SCHEME = "POWENS-ACCOUNT-ID"  # Othr/SchmeNm/Prtry (Max35Text): the identifier is POWENS' account id


def _camt_account(account: BankAccount) -> tuple[str, str, str]:
    """``Acct/Id``'s content, then ``Acct/Nm`` and ``Stmt/AddtlStmtInf`` (empty, or carrying a replaced number).

    An IBAN the schema accepts is ``IBAN``. Anything else (a number, an IBAN the schema refuses) is
    ``Othr/Id``, Max34Text, as it is when it fits. A longer number is never cut, since two accounts sharing
    their first 34 characters would become one account in the books: ``Othr/Id`` is then ``POWENS-{id}``, the
    account's POWENS id (stable across days, unique within the POWENS domain), ``SchmeNm/Prtry`` and ``Issr``
    saying so, and the full number is kept where the schema allows its length: ``Acct/Nm`` (70 characters)
    when it fits, and ``AddtlStmtInf`` (500), or its length and SHA-256 there when even that is too short.
    """
    iban = (account.iban or "").replace(" ", "").upper()
    if _IBAN.fullmatch(iban):
        return f"<IBAN>{iban}</IBAN>", "", ""
    number = account.iban or account.number or str(account.powens_id)
    if len(number) <= MAX_ACCOUNT_ID:
        return f"<Othr><Id>{escape(number)}</Id></Othr>", "", ""
    identifier = f"POWENS-{account.powens_id}"
    scheme = f"<SchmeNm><Prtry>{POWENS_ACCOUNT_SCHEME}</Prtry></SchmeNm><Issr>POWENS</Issr>"
    name = f"<Nm>{escape(number)}</Nm>" if len(number) <= MAX_ACCOUNT_NAME else ""
    said = f"Numéro de compte : {number}"
    if len(said) > MAX_STATEMENT_INFORMATION:
        digest = hashlib.sha256(number.encode()).hexdigest()
        said = f"Numéro de compte de {len(number)} caractères, SHA-256 {digest} (complet dans le fichier OFX du jour)"
    return (f"<Othr><Id>{escape(identifier)}</Id>{scheme}</Othr>", name,
            f"<AddtlStmtInf>{escape(said)}</AddtlStmtInf>")


def _camt_amount(value: str) -> tuple[str, str]:
    """ISO 20022 amounts are unsigned with a credit/debit mark."""
    negative = value.startswith("-")
    return (value[1:] if negative else value), ("DBIT" if negative else "CRDT")


def to_camt053(account: BankAccount, movements: list[BankMovement], day: date, *, created: str) -> bytes:
    """camt.053.001.02 ("Bank to customer statement"): one ``Ntry`` per movement, in the schema's element order.

    Booked movements are ``BOOK``, movements not booked yet ``PDNG`` (importers leave them out of the
    balance); deleted ones are left out. ``CLBD`` is the account's balance as POWENS gave it at the
    sync; ``OPBD`` is derived, the balance before this file's booked entries (the file holds the day's
    new and updated movements, not a bank's full statement). ``NtryRef`` and ``AcctSvcrRef`` carry the
    Powens id and version, so a re-import recognises an entry. The account is its IBAN, else its number,
    never cut (:func:`_camt_account`). ``created`` (ISO date-time) is given by
    the caller, so the same movements always give the same bytes.
    """
    from decimal import Decimal

    kept = [m for m in movements if not m.deleted]
    closing = Decimal(account.balance or "0")
    booked = sum((Decimal(m.amount) for m in kept if not m.coming), Decimal(0))
    currency = escape(account.currency)
    identification, name, statement_information = _camt_account(account)
    start = min((m.booking_date for m in kept), default=day)

    def balance(code: str, amount: Decimal) -> str:
        value, mark = _camt_amount(f"{amount:.2f}")
        return (f"<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp><Amt Ccy=\"{currency}\">{value}</Amt>"
                f"<CdtDbtInd>{mark}</CdtDbtInd><Dt><Dt>{day.isoformat()}</Dt></Dt></Bal>")

    entries = []
    for m in kept:
        value, mark = _camt_amount(m.amount)
        reference = f"{m.powens_id}-{m.version}"
        value_date = f"<ValDt><Dt>{m.value_date.isoformat()}</Dt></ValDt>" if m.value_date else ""
        # The schema's texts have a minimum length of 1: an empty wording is left out, not written empty.
        details = (f"<NtryDtls><TxDtls><RmtInf><Ustrd>{_text(m.wording, 140)}</Ustrd></RmtInf></TxDtls></NtryDtls>"
                   if m.wording else "")
        information = f"<AddtlNtryInf>{_text(m.original_wording, 500)}</AddtlNtryInf>" if m.original_wording else ""
        entries.append(
            f"<Ntry><NtryRef>{reference}</NtryRef><Amt Ccy=\"{escape(m.currency)}\">{value}</Amt>"
            f"<CdtDbtInd>{mark}</CdtDbtInd><Sts>{'PDNG' if m.coming else 'BOOK'}</Sts>"
            f"<BookgDt><Dt>{m.booking_date.isoformat()}</Dt></BookgDt>{value_date}"
            f"<AcctSvcrRef>{reference}</AcctSvcrRef>"
            f"<BkTxCd><Prtry><Cd>{_text(m.kind or 'unknown', 35)}</Cd><Issr>POWENS</Issr></Prtry></BkTxCd>"
            f"{details}{information}</Ntry>"
        )
    statement_id = escape(f"POWENS-{account.powens_id}-{day:%Y%m%d}")[:35]
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Document xmlns="{CAMT_NAMESPACE}">'
        f"<BkToCstmrStmt><GrpHdr><MsgId>{statement_id}</MsgId><CreDtTm>{escape(created)}</CreDtTm></GrpHdr>"
        f"<Stmt><Id>{statement_id}</Id><CreDtTm>{escape(created)}</CreDtTm>"
        f"<FrToDt><FrDtTm>{start.isoformat()}T00:00:00</FrDtTm><ToDtTm>{day.isoformat()}T23:59:59</ToDtTm></FrToDt>"
        f"<Acct><Id>{identification}</Id><Ccy>{currency}</Ccy>{name}</Acct>"
        f"{balance('OPBD', closing - booked)}{balance('CLBD', closing)}{''.join(entries)}{statement_information}"
        "</Stmt></BkToCstmrStmt></Document>\n"
    )
    return body.encode("utf-8")
