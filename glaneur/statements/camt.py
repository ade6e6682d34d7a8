"""CAMT.053 ("relevé de compte" in ISO 20022 XML), versions camt.053.001.02 to camt.053.001.13.

What we read has the same shape in every one of these versions: ``Document/BkToCstmrStmt`` holds
one ``GrpHdr`` then one ``Stmt`` per account and day, each with ``Id``, ``Acct/Id/IBAN`` (or
``Acct/Id/Othr/Id``), ``FrToDt``, ``Bal`` (typed by ``Tp/CdOrPrtry/Cd``: OPBD or PRCD opening,
CLBD closing) and ``Ntry`` (``Amt``, ``CdtDbtInd``, ``Sts``, ``ValDt``/``BookgDt``, ``AcctSvcrRef``).

Read with a warning, because their meaning is clear: a balance without ``CdtDbtInd`` (its sign is
the one the entries give, when only one does), a closing balance without opening balance,
balances in another currency than the account's, balances that do not add up with the booked
entries. UTF-16 files are read as the text they are.

Files come from outside, so they are parsed with defusedxml only and any DTD is refused: a
camt.053 never needs one, and refusing it stops external entities (XXE) and entity expansion
("billion laughs") before they do anything.

Why offsets are recorded while parsing: a statement's ``content`` is cut out of the bank's own
bytes (declaration, encoding, namespace prefixes and ``GrpHdr`` untouched; the other ``Stmt``
left out). Re-serialising with ElementTree would rename the default namespace ``ns0:`` and cannot
write unqualified attributes such as ``Ccy`` with a default namespace. A file holding a single
statement is therefore delivered byte for byte as received.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element, ParseError, TreeBuilder

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from glaneur.statements.model import (
    ASK_FOR_ACCEPTED_FORMATS,
    Movement,
    ParsedStatement,
    StatementFileError,
    StatementWarning,
    iban_of,
    quoted,
    signed,
)

if TYPE_CHECKING:
    from xml.parsers.expat import XMLParserType  # the type of defusedxml's parser, for annotations only

_ISO_NAMESPACE = re.compile(
    r"urn:iso:std:iso:20022:tech:xsd:(?P<message>[a-z]{4}\.\d{3})\.(?P<variant>\d{3})\.(?P<version>\d{2})"
)
_SUPPORTED_VERSIONS = {f"{n:02d}" for n in range(2, 14)}
_AMOUNT = re.compile(r"\d+(\.\d+)?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ASK_AGAIN = "ask the bank for the file again"
# A camt.053 is never nested deeper than about 15 elements; a file nested far deeper is an attack on the
# parser (each level costs a frame of Python objects), refused as soon as the limit is crossed.
MAX_XML_DEPTH = 64

_Invalid = Callable[[str], StatementFileError]


@dataclass(frozen=True)
class CamtDocument:
    """A parsed camt.053 file: its tree, version and where each ``Stmt`` sits in the bytes."""

    data: bytes
    root: Element
    namespace: str
    version: str  # "camt.053.001.02" … "camt.053.001.13"
    statement_spans: list[tuple[int, int]]


class _SpanRecorder:
    """ElementTree target that builds the tree and notes the byte span of each ``Stmt``."""

    def __init__(self) -> None:
        self._builder = TreeBuilder()
        self._depth = 0
        self._start = 0
        self.expat: XMLParserType | None = None  # set once the parser exists: it knows the current offset
        self.spans: list[tuple[int, int]] = []  # (offset of "<Stmt", offset of its end event)

    def start(self, tag: str, attrs: dict[str, str]) -> Element:
        self._depth += 1
        if self._depth > MAX_XML_DEPTH:
            raise StatementFileError(
                "hostile_xml",
                f"the XML file nests elements more than {MAX_XML_DEPTH} deep, which a camt.053 statement never "
                f"does and attacks on XML readers do, so it was not read; {_ASK_AGAIN}",
            )
        if self._depth == 3:
            self._start = self.expat.CurrentByteIndex
        return self._builder.start(tag, attrs)

    def end(self, tag: str) -> Element:
        if self._depth == 3 and tag.rpartition("}")[2] == "Stmt":
            self.spans.append((self._start, self.expat.CurrentByteIndex))
        self._depth -= 1
        return self._builder.end(tag)

    def data(self, text: str) -> None:
        self._builder.data(text)

    def close(self) -> Element:
        return self._builder.close()


def read_document(data: bytes) -> CamtDocument:
    """Parse ``data`` safely and check it is a camt.053 of a supported version, or raise."""
    data = _as_utf8(data)
    recorder = _SpanRecorder()
    parser = DefusedXMLParser(target=recorder, forbid_dtd=True)
    recorder.expat = parser.parser
    try:
        parser.feed(data)
        root = parser.close()
    except DefusedXmlException as error:
        raise StatementFileError(
            "hostile_xml",
            "the XML file declares a DTD or entities, which a camt.053 statement never does and attacks do "
            "(external entities, entity expansion), so it was not read; ask the bank for the file again, "
            "without a DOCTYPE",
        ) from error
    except LookupError as error:  # an encoding neither expat nor Python knows
        raise StatementFileError(
            "malformed_xml",
            f"the XML file declares an encoding that does not exist ({quoted(str(error), 30)}); {_ASK_AGAIN}",
        ) from error
    except ParseError as error:
        line, column = error.position
        raise StatementFileError(
            "malformed_xml",
            f"the file is not well-formed XML (line {line}, column {column}), perhaps cut short; {_ASK_AGAIN}",
        ) from error

    namespace, _, local = root.tag[1:].partition("}") if root.tag.startswith("{") else ("", "", root.tag)
    match = _ISO_NAMESPACE.fullmatch(namespace)
    if local != "Document" or match is None:
        raise StatementFileError(
            "unsupported_format",
            f"the XML file is not an ISO 20022 bank statement (its root element is {quoted(local)}); "
            f"{ASK_FOR_ACCEPTED_FORMATS}",
        )
    message = f"{match['message']}.{match['variant']}.{match['version']}"
    if not match["message"].startswith("camt."):
        raise StatementFileError(
            "unsupported_format",
            f"the XML file is an ISO 20022 {message} message, not a bank statement; {ASK_FOR_ACCEPTED_FORMATS}",
        )
    if match["message"] != "camt.053" or match["variant"] != "001" or match["version"] not in _SUPPORTED_VERSIONS:
        kind = "an unsupported version of camt.053" if match["message"] == "camt.053" else "not an end-of-day statement"
        raise StatementFileError(
            "unsupported_version",
            f"the XML file is a {message} message, {kind}; ask the bank for camt.053 statements "
            "in a version from camt.053.001.02 to camt.053.001.13",
        )
    spans = [(start, _end_of_element(data, start, end)) for start, end in recorder.spans]
    return CamtDocument(data=data, root=root, namespace=namespace, version=message, statement_spans=spans)


def _as_utf8(data: bytes) -> bytes:
    """A UTF-16 file as UTF-8 with its declaration saying so; any other file unchanged.

    The byte offsets of each ``Stmt`` are then those of the UTF-8 text, which the statements of a
    file of several are cut from (a file of one is still delivered as received).
    """
    if not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) and data[:2] not in (b"<\x00", b"\x00<"):
        return data
    try:
        text = data.decode("utf-16" if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else
                           ("utf-16-le" if data[:2] == b"<\x00" else "utf-16-be"))
    except UnicodeDecodeError as error:
        raise StatementFileError(
            "malformed_xml", f"the file starts as UTF-16 XML but is not UTF-16 text; {_ASK_AGAIN}"
        ) from error
    text = re.sub(r"""^(<\?xml[^>]*encoding=["'])[Uu][Tt][Ff]-?16(?:[LlBb][Ee])?(["'])""", r"\1UTF-8\2", text)
    return text.encode("utf-8")


def parse_camt(data: bytes) -> list[ParsedStatement]:
    """One :class:`ParsedStatement` per ``Stmt`` of a camt.053 file."""
    original = data
    document = read_document(data)
    ns = {"c": document.namespace}
    message = document.root.find("c:BkToCstmrStmt", ns)
    if message is None:
        raise StatementFileError(
            "invalid_statement",
            f"the {document.version} file has no BkToCstmrStmt element under Document; {_ASK_AGAIN}",
        )
    statements = message.findall("c:Stmt", ns)
    if not statements:
        raise StatementFileError(
            "invalid_statement", f"the {document.version} file holds no statement (no Stmt element); {_ASK_AGAIN}"
        )
    if len(statements) != len(document.statement_spans) or len(document.root) != 1:
        raise StatementFileError(
            "invalid_statement",
            f"the {document.version} file has elements other than BkToCstmrStmt under Document; {_ASK_AGAIN}",
        )
    if len(statements) == 1:  # delivered byte for byte as received, UTF-16 included
        return [_statement(statements[0], 1, document, original)]
    return [
        _statement(element, number, document, _content(document, number - 1))
        for number, element in enumerate(statements, start=1)
    ]


def _end_of_element(data: bytes, start: int, end_event: int) -> int:
    """Offset just after an element: expat reports its end tag's start, or just past ``<X/>``."""
    start_tag_end = data.index(b">", start) + 1
    if data[start_tag_end - 2 : start_tag_end] == b"/>":
        return start_tag_end
    return data.index(b">", end_event) + 1


def _content(document: CamtDocument, index: int) -> bytes:
    """The file with only its ``index``-th ``Stmt``: the bank's bytes around it, unchanged."""
    spans = document.statement_spans
    if len(spans) == 1:
        return document.data
    start, end = spans[index]
    return document.data[: spans[0][0]] + document.data[start:end] + document.data[spans[-1][1] :]


def _statement(stmt: Element, number: int, document: CamtDocument, content: bytes) -> ParsedStatement:
    ns = {"c": document.namespace}
    statement_id = stmt.findtext("c:Id", "", ns).strip()
    where = f"statement {number} of the {document.version} file" + (
        f" (Id {quoted(statement_id)})" if statement_id else ""
    )

    def invalid(problem: str) -> StatementFileError:
        return StatementFileError("invalid_statement", f"{where} {problem}; {_ASK_AGAIN}")

    if not statement_id:
        raise invalid("has no Id")
    account = (stmt.findtext("c:Acct/c:Id/c:IBAN", "", ns) or stmt.findtext("c:Acct/c:Id/c:Othr/c:Id", "", ns)).strip()
    if not account:
        raise invalid("names no account (neither Acct/Id/IBAN nor Acct/Id/Othr/Id)")

    warnings: dict[str, str] = {}
    balances: dict[str, Element] = {}
    for balance in stmt.findall("c:Bal", ns):
        code = balance.findtext("c:Tp/c:CdOrPrtry/c:Cd", "", ns).strip()
        balances.setdefault(code, balance)
    # Two openings or two closings that differ: which one the bank meant would be a guess.
    for codes in (("OPBD",), ("PRCD",), ("CLBD",)):
        written = {
            _balance_text(balance, ns) for balance in stmt.findall("c:Bal", ns)
            if balance.findtext("c:Tp/c:CdOrPrtry/c:Cd", "", ns).strip() in codes
        }
        if len(written) > 1:
            raise invalid(f"has {codes[0]} balances that differ, so which one holds is unclear")
    if "OPBD" in balances and "PRCD" in balances and (
        _balance_text(balances["OPBD"], ns) != _balance_text(balances["PRCD"], ns)
    ):
        warnings["continuity_gap"] = (
            "the opening balance (OPBD) differs from the previous statement's closing balance the bank states (PRCD)"
        )
    opening_element = balances.get("OPBD", balances.get("PRCD"))
    closing_element = balances.get("CLBD")
    if closing_element is None:
        raise invalid("has no closing balance (Bal of type CLBD)")
    closing_amount, closing_mark, closing_currency, closing_date = _balance(closing_element, ns, invalid)
    opening = None
    if opening_element is None:
        opening_currency, opening_date = closing_currency, None
        warnings["no_opening_balance"] = "the statement has a closing balance and no opening balance (OPBD or PRCD)"
    else:
        opening = _balance(opening_element, ns, invalid)
        opening_currency, opening_date = opening[2], opening[3]
    account_currency = stmt.findtext("c:Acct/c:Ccy", "", ns).strip()
    if opening_currency != closing_currency and not account_currency:
        raise invalid(f"opens in {quoted(opening_currency)} and closes in {quoted(closing_currency)}")
    currency = account_currency or closing_currency
    others = sorted({opening_currency, closing_currency} - {currency})
    if others:
        warnings["currency_mismatch"] = (
            f"a balance is written in {' and '.join(others)} on an account in {currency}; read as {currency}"
        )

    entries = stmt.findall("c:Ntry", ns)
    movements = tuple(_movement(entry, ns, invalid) for entry in entries)
    booked = sum(
        (m.amount for m, entry in zip(movements, entries, strict=True) if _booked(entry, ns)), Decimal(0)
    )
    closing_balance: Decimal
    opening_balance: Decimal | None
    if opening is None:
        closing_balance = signed(closing_amount, closing_mark == "DBIT")
        if not closing_mark and closing_amount:
            warnings["balance_sign_missing"] = "the closing balance has no credit/debit mark (CdtDbtInd): read as a credit"
        opening_balance = None
    else:
        opening_balance, closing_balance, how = _signs(
            opening[0], opening[1], closing_amount, closing_mark, booked, invalid
        )
        if how:
            warnings["balance_sign_missing"] = f"a balance has no credit/debit mark (CdtDbtInd): {how}"
        if opening_balance + booked != closing_balance:
            warnings["balance_mismatch"] = (
                f"the opening balance {opening_balance} and the booked entries ({booked:+}) make "
                f"{opening_balance + booked}, not the closing balance {closing_balance}"
            )

    period_start = _date(stmt.findtext("c:FrToDt/c:FrDtTm", "", ns), invalid) or opening_date or closing_date
    period_end = _date(stmt.findtext("c:FrToDt/c:ToDtTm", "", ns), invalid) or closing_date

    return ParsedStatement(
        format=document.version,
        account=account,
        iban=iban_of(account),
        currency=currency,
        statement_id=statement_id,
        period_start=period_start,
        period_end=period_end,
        opening_balance=opening_balance,
        closing_balance=closing_balance,
        entries=len(entries),
        content=content,
        movements=movements,
        warnings=tuple(StatementWarning(code, text) for code, text in warnings.items()),  # type: ignore[arg-type]
    )


def _balance_text(balance: Element, ns: dict[str, str]) -> tuple[str, str, str]:
    amount = balance.find("c:Amt", ns)
    text = (amount.text or "").strip() if amount is not None else ""
    return (str(Decimal(text)) if _AMOUNT.fullmatch(text) else text, amount.get("Ccy", "") if amount is not None
            else "", balance.findtext("c:CdtDbtInd", "", ns).strip())


def _signs(
    opening: Decimal, opening_mark: str, closing: Decimal, closing_mark: str, booked: Decimal, invalid: _Invalid
) -> tuple[Decimal, Decimal, str]:
    """Signed opening and closing balances, and how a balance without CdtDbtInd was read ("" when none lacks it).

    A balance without CdtDbtInd is a credit, unless only a debit makes the statement add up with its entries.
    """
    openings = [signed(opening, opening_mark == "DBIT")] if opening_mark else [opening, signed(opening, True)]
    closings = [signed(closing, closing_mark == "DBIT")] if closing_mark else [closing, signed(closing, True)]
    if len(openings) == len(closings) == 1:
        return openings[0], closings[0], ""
    credit = (openings[0], closings[0])
    adding_up = {(o, c) for o in openings for c in closings if o + booked == c}
    if credit[0] + booked == credit[1] or not adding_up:
        return credit[0], credit[1], "read as a credit"
    if len(adding_up) == 1:
        found = adding_up.pop()
        return found[0], found[1], "read as the debit its entries make it"
    raise invalid("has a balance without CdtDbtInd whose sign its entries do not settle")


def _booked(entry: Element, ns: dict[str, str]) -> bool:
    """Whether an entry counts in the balance: booked (``Sts`` BOOK, or ``Sts/Cd`` BOOK from .09 on)."""
    status = entry.findtext("c:Sts", "", ns).strip() or entry.findtext("c:Sts/c:Cd", "", ns).strip()
    return status in ("", "BOOK")


def _movement(entry: Element, ns: dict[str, str], invalid: _Invalid) -> Movement:
    """Value date (or booking date), signed amount and the bank's reference of one ``Ntry``."""
    amount = entry.find("c:Amt", ns)
    text = (amount.text or "").strip() if amount is not None else ""
    if not _AMOUNT.fullmatch(text):
        raise invalid(f"has an entry whose amount is not a number: {quoted(text)}")
    indicator = entry.findtext("c:CdtDbtInd", "", ns).strip()
    if indicator not in ("CRDT", "DBIT"):
        raise invalid(f"has an entry whose CdtDbtInd is {quoted(indicator)} instead of CRDT or DBIT")
    written = (
        entry.findtext("c:ValDt/c:Dt", "", ns) or entry.findtext("c:ValDt/c:DtTm", "", ns)
        or entry.findtext("c:BookgDt/c:Dt", "", ns) or entry.findtext("c:BookgDt/c:DtTm", "", ns)
    )
    reference = (entry.findtext("c:AcctSvcrRef", "", ns) or entry.findtext("c:NtryRef", "", ns)).strip()
    value = Decimal(text)
    return Movement(day=_date(written, invalid), amount=-value if indicator == "DBIT" else value, reference=reference)


def _balance(balance: Element, ns: dict[str, str], invalid: _Invalid) -> tuple[Decimal, str, str, date | None]:
    """Unsigned amount, credit/debit mark ("" when left out), currency and date of one ``Bal``."""
    code = balance.findtext("c:Tp/c:CdOrPrtry/c:Cd", "", ns).strip()
    amount = balance.find("c:Amt", ns)
    if amount is None:
        raise invalid(f"has a balance ({code}) without amount (Amt)")
    text = (amount.text or "").strip()
    if not _AMOUNT.fullmatch(text):
        raise invalid(f"has a balance ({code}) whose amount is not a number: {quoted(text)}")
    currency = amount.get("Ccy", "").strip()
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise invalid(f"has a balance ({code}) without currency (Amt/@Ccy)")
    indicator = balance.findtext("c:CdtDbtInd", "", ns).strip()
    if indicator not in ("CRDT", "DBIT", ""):
        raise invalid(f"has a balance ({code}) whose CdtDbtInd is {quoted(indicator)} instead of CRDT or DBIT")
    written = balance.findtext("c:Dt/c:Dt", "", ns) or balance.findtext("c:Dt/c:DtTm", "", ns)
    return Decimal(text), indicator, currency, _date(written, invalid)


def _date(text: str, invalid: _Invalid) -> date | None:
    """The date part of an ISO date or date-time (``2024-03-15``, ``2024-03-15T23:59:59+01:00``)."""
    text = text.strip()
    if not text:
        return None
    try:
        if not _DATE.match(text):
            raise ValueError(text)
        return date.fromisoformat(text[:10])
    except ValueError:
        raise invalid(f"has a date that is not an ISO date: {quoted(text)}") from None
