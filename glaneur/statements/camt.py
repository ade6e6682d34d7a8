"""CAMT.053 ("relevé de compte" in ISO 20022 XML), versions camt.053.001.02 to camt.053.001.08.

What we read has the same shape in every one of these versions: ``Document/BkToCstmrStmt`` holds
one ``GrpHdr`` then one ``Stmt`` per account and day, each with ``Id``, ``Acct/Id/IBAN`` (or
``Acct/Id/Othr/Id``), ``FrToDt``, ``Bal`` (typed by ``Tp/CdOrPrtry/Cd``: OPBD or PRCD opening,
CLBD closing) and ``Ntry``.

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
    ParsedStatement,
    StatementFileError,
    iban_of,
    quoted,
    signed,
)

if TYPE_CHECKING:
    from xml.parsers.expat import XMLParserType  # the type of defusedxml's parser, for annotations only

_ISO_NAMESPACE = re.compile(
    r"urn:iso:std:iso:20022:tech:xsd:(?P<message>[a-z]{4}\.\d{3})\.(?P<variant>\d{3})\.(?P<version>\d{2})"
)
_SUPPORTED_VERSIONS = {f"{n:02d}" for n in range(2, 9)}
_AMOUNT = re.compile(r"\d+(\.\d+)?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ASK_AGAIN = "ask the bank for the file again"

_Invalid = Callable[[str], StatementFileError]


@dataclass(frozen=True)
class CamtDocument:
    """A parsed camt.053 file: its tree, version and where each ``Stmt`` sits in the bytes."""

    data: bytes
    root: Element
    namespace: str
    version: str  # "camt.053.001.02" … "camt.053.001.08"
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
            "in a version from camt.053.001.02 to camt.053.001.08",
        )
    spans = [(start, _end_of_element(data, start, end)) for start, end in recorder.spans]
    return CamtDocument(data=data, root=root, namespace=namespace, version=message, statement_spans=spans)


def parse_camt(data: bytes) -> list[ParsedStatement]:
    """One :class:`ParsedStatement` per ``Stmt`` of a camt.053 file."""
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

    balances: dict[str, Element] = {}
    for balance in stmt.findall("c:Bal", ns):
        code = balance.findtext("c:Tp/c:CdOrPrtry/c:Cd", "", ns).strip()
        balances.setdefault(code, balance)
    opening_element = balances.get("OPBD", balances.get("PRCD"))
    closing_element = balances.get("CLBD")
    if opening_element is None:
        raise invalid("has no opening balance (Bal of type OPBD or PRCD)")
    if closing_element is None:
        raise invalid("has no closing balance (Bal of type CLBD)")
    opening, opening_currency, opening_date = _balance(opening_element, ns, invalid)
    closing, closing_currency, closing_date = _balance(closing_element, ns, invalid)

    account_currency = stmt.findtext("c:Acct/c:Ccy", "", ns).strip()
    currency = account_currency or opening_currency
    for found in (opening_currency, closing_currency):
        if found != currency:
            raise invalid(f"has a balance in {quoted(found)} on an account in {quoted(currency)}")

    period_start = _date(stmt.findtext("c:FrToDt/c:FrDtTm", "", ns), invalid) or opening_date
    period_end = _date(stmt.findtext("c:FrToDt/c:ToDtTm", "", ns), invalid) or closing_date

    return ParsedStatement(
        format=document.version,
        account=account,
        iban=iban_of(account),
        currency=currency,
        statement_id=statement_id,
        period_start=period_start,
        period_end=period_end,
        opening_balance=opening,
        closing_balance=closing,
        entries=len(stmt.findall("c:Ntry", ns)),
        content=content,
    )


def _balance(balance: Element, ns: dict[str, str], invalid: _Invalid) -> tuple[Decimal, str, date | None]:
    """Signed amount, currency and date of one ``Bal``."""
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
    if indicator not in ("CRDT", "DBIT"):
        raise invalid(f"has a balance ({code}) whose CdtDbtInd is {quoted(indicator)} instead of CRDT or DBIT")
    written = balance.findtext("c:Dt/c:Dt", "", ns) or balance.findtext("c:Dt/c:DtTm", "", ns)
    return signed(Decimal(text), indicator == "DBIT"), currency, _date(written, invalid)


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
