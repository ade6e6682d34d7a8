"""MT940 ("relevé de compte SWIFT MT940"): one message per statement, several messages per file.

A message is a run of tags (``:20:`` reference, ``:25:`` account, ``:28C:`` statement number,
``:60F:``/``:60M:`` opening balance, ``:61:``/``:86:`` entries, ``:62F:``/``:62M:`` closing
balance), either wrapped in SWIFT blocks ``{1:…}{2:…}{4:`` … ``-}`` or plain, ended by a line
``-`` or simply followed by the next ``:20:``. Banks add header lines, use CRLF or LF, and write
latin-1 more often than UTF-8.

The ``mt-940`` library reads the fields (balances: mark, date, currency, amount; and every
``:61:`` line, so that a malformed entry is refused), with the options that sign a reversal of
credit (``RC``) and lower-case marks correctly. Written here by hand, and why:

- splitting the file into messages: the library reads one run of tags and merges every message
  of a multi-statement file into one;
- checking that the message is complete: the library silently returns a statement without
  closing balance, and reads ``C240315EUR12`` (a balance cut before its mandatory decimal comma)
  as 12, which is exactly what a file cut short looks like. The file's last message, when no
  ``-`` ends it, must also add up (opening balance + entries = closing balance), so that a cut
  after the comma is caught too;
- reading ``:25:``: the library cuts it to 35 characters, which loses the end of ``BIC/IBAN``.

The library logs a field it cannot read (with its value) at ERROR level on the ``mt940`` logger.
"""

from __future__ import annotations

import codecs
import logging
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from mt940.models import Balance, Transactions
from mt940.options import Options

from glaneur.statements.model import (
    ASK_FOR_ACCEPTED_FORMATS,
    ParsedStatement,
    StatementFileError,
    iban_of,
    quoted,
    signed,
)

# The library logs a field it cannot read with its whole value (account numbers, narratives) at ERROR
# level; our own errors say what is wrong without quoting more than a few characters of the file.
logging.getLogger("mt940").setLevel(logging.CRITICAL)

_TAG = re.compile(r"^:(?P<tag>\d{2}[A-Z]?|NS):", re.MULTILINE)
_BLOCK_1 = re.compile(r"\{1:")
_BLOCK_2_TYPE = re.compile(r"\{2:[IO](?P<type>\d{3})")
_BLOCK_4 = re.compile(r"\{4:\s*")
_BLOCK_4_END = re.compile(r"\r?\n-\}")
_PLAIN_START = re.compile(r"^:20:", re.MULTILINE)
_PLAIN_END = re.compile(r"^-[ \t]*(?:\r?\n|\r?\Z)", re.MULTILINE)
_CURRENCY = re.compile(r"[A-Z]{3}")
#: Mark, YYMMDD date, currency, amount with its mandatory decimal comma (SWIFT "15d"): a closing
#: balance cut short in its amount has no comma yet, which the library would take as a whole number.
_BALANCE = re.compile(r"[CD]\d{6}[A-Z]{3}\d{1,15},\d*", re.IGNORECASE)
_BALANCE_TAGS = frozenset({"60F", "60M", "62F", "62M", "64", "65"})
#: Sign a reversal of credit (RC) like the debit it is, and lower-case marks like upper-case ones.
_OPTIONS = Options(reversal_sign=True, case_insensitive_marks=True)
_TRAILING_CURRENCY = re.compile(r"(?P<account>.+?)\s*[A-Z]{3}")
_ASK_AGAIN = "ask the bank for the file again"


@dataclass(frozen=True)
class _Message:
    """One message of the file: what is delivered (``raw``) and the tags it is read from."""

    number: int
    raw: str
    tags: str
    ended: bool  # its end marker ("-}" or a "-" line) was seen
    wrapped: bool  # in SWIFT blocks
    last: bool


def decode(data: bytes) -> tuple[str, str]:
    """The file's text and the codec that gives its bytes back: UTF-8 when it decodes, else latin-1."""
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def looks_like_mt940(text: str) -> bool:
    """Whether the start of ``text`` holds a ``:20:`` tag line and another MT940 statement tag."""
    head = text[:8192]
    return bool(_PLAIN_START.search(head)) and bool(re.search(r"^:(25|28C?|60[FM]):", head, re.MULTILINE))


def check_message_type(text: str) -> None:
    """Refuse SWIFT messages of another type (MT942 interim report, MT950…) announced in block 2."""
    for match in _BLOCK_2_TYPE.finditer(text):
        if match["type"] != "940":
            raise StatementFileError(
                "unsupported_format",
                f"the file holds a SWIFT MT{match['type']} message, not an MT940 statement; {ASK_FOR_ACCEPTED_FORMATS}",
            )


def parse_mt940(data: bytes) -> list[ParsedStatement]:
    """One :class:`ParsedStatement` per message of an MT940 file."""
    text, codec = decode(data)
    check_message_type(text)
    messages, rest = _split(text)
    if not messages:
        raise StatementFileError(
            "invalid_statement", f"the MT940 file holds no statement (no line starting with :20:); {_ASK_AGAIN}"
        )
    statements = [_statement(message, codec) for message in messages]
    if re.search(r"^:", rest, re.MULTILINE):
        raise StatementFileError(
            "truncated",
            f"the file is an MT940 statement cut short: it ends with the first line of statement "
            f"{len(messages) + 1}, cut in the middle of its :20: tag; {_ASK_AGAIN}",
        )
    return statements


def _split(text: str) -> tuple[list[_Message], str]:
    """The file's messages, in SWIFT blocks when it starts with ``{1:``, plain otherwise; and what follows them."""
    wrapped = text.lstrip().startswith("{1:")
    starts = [m.start() for m in (_BLOCK_1 if wrapped else _PLAIN_START).finditer(text)]
    messages = []
    raw_start = 0  # plain messages keep the header lines some banks write before each ":20:"
    for index, start in enumerate(starts):
        last = index == len(starts) - 1
        segment = text[start : len(text) if last else starts[index + 1]]
        if wrapped:
            body = _BLOCK_4.search(segment)
            end = _BLOCK_4_END.search(segment, body.end()) if body else None
            tags = segment[body.end() : end.start() if end else len(segment)] if body else ""
            raw = segment
        else:
            end = _PLAIN_END.search(segment)
            tags = segment[: end.start()] if end else segment
            raw_end = start + (end.end() if end else len(segment))
            raw, raw_start = text[raw_start:raw_end], raw_end
        messages.append(
            _Message(number=index + 1, raw=raw, tags=tags, ended=end is not None, wrapped=wrapped, last=last)
        )
    return messages, "" if wrapped else text[raw_start:]


@dataclass(frozen=True)
class _Refusal:
    """The two ways a message is refused, both naming it."""

    where: str

    def invalid(self, problem: str) -> StatementFileError:
        return StatementFileError("invalid_statement", f"{self.where} of the MT940 file {problem}; {_ASK_AGAIN}")

    def cut_short(self, problem: str) -> StatementFileError:
        return StatementFileError(
            "truncated", f"the file is an MT940 statement cut short: {self.where} {problem}; {_ASK_AGAIN}"
        )


def _tags(tags: str) -> list[tuple[str, str]]:
    """Each tag of a message with its value (continuation lines included), in order."""
    matches = list(_TAG.finditer(tags))
    ends = [m.start() for m in matches[1:]] + [len(tags)] if matches else []
    return [(match["tag"], tags[match.end() : end].strip()) for match, end in zip(matches, ends, strict=True)]


def _first_line(value: str) -> str:
    return value.split("\n", 1)[0].strip()


def _statement(message: _Message, codec: str) -> ParsedStatement:
    tags = _tags(message.tags)
    fields: dict[str, str] = {}
    for tag, value in tags:
        fields.setdefault(tag, value)
    reference = _first_line(fields.get("20", ""))
    refuse = _Refusal(f"statement {message.number}" + (f" (:20: {quoted(reference)})" if reference else ""))
    number = _first_line(fields.get("28C", fields.get("28", "")))
    account = _first_line(fields.get("25", ""))
    _check_complete(message, tags, fields, refuse)
    for problem, missing in (
        ("has no transaction reference (:20:)", not reference),
        ("has no account identification (:25:)", not account),
        ("has no statement number (:28C:)", not number),
        ("has no opening balance (:60F:)", "60F" not in fields and "60M" not in fields),
    ):
        if missing:
            raise refuse.invalid(problem)

    transactions = _read(message, refuse)
    data = transactions.data
    opening, currency, opening_date = _balance(
        data.get("final_opening_balance") or data.get("intermediate_opening_balance"), "60F", refuse
    )
    closing, closing_currency, closing_date = _balance(
        data.get("final_closing_balance") or data.get("intermediate_closing_balance"), "62F", refuse
    )
    if closing_currency != currency:
        raise refuse.invalid(f"opens in {quoted(currency)} and closes in {quoted(closing_currency)}")
    moved = sum((getattr(t.data.get("amount"), "amount", Decimal(0)) for t in transactions), Decimal(0))
    if message.last and not message.ended and opening + moved != closing:
        raise refuse.cut_short("has a closing balance that its opening balance and entries do not add up to")

    return ParsedStatement(
        format="mt940",
        account=account,
        iban=iban_of(*_iban_candidates(account)),
        currency=currency,
        statement_id=f"{reference}/{number}",
        period_start=opening_date,
        period_end=closing_date,
        opening_balance=opening,
        closing_balance=closing,
        entries=sum(1 for tag, _ in tags if tag == "61"),
        content=message.raw.encode(codec),
    )


def _check_complete(message: _Message, tags: list[tuple[str, str]], fields: dict[str, str], refuse: _Refusal) -> None:
    """Refuse a message cut short: no closing balance, no end of block, or a last line cut in two.

    Only the file's last message, when nothing marks its end, can be cut inside a line.
    """
    if "62F" not in fields and "62M" not in fields:
        raise refuse.cut_short("has no closing balance (:62F:)")
    if message.wrapped and not message.ended:
        raise refuse.cut_short("does not end its block 4 with a line '-}'")
    may_be_cut = message.last and not message.ended
    last_line = message.tags.rstrip().rsplit("\n", 1)[-1].strip()
    if may_be_cut and last_line.startswith(":") and not _TAG.match(last_line):
        raise refuse.cut_short("ends in the middle of a tag")
    for index, (tag, value) in enumerate(tags):
        if tag in _BALANCE_TAGS and not _BALANCE.fullmatch(_first_line(value)):
            if may_be_cut and index == len(tags) - 1:
                raise refuse.cut_short(f"ends in the middle of its :{tag}: balance")
            raise refuse.invalid(f"has a :{tag}: balance that cannot be read: {quoted(_first_line(value))}")


def _read(message: _Message, refuse: _Refusal) -> Transactions:
    """The message's fields as the library reads them; a field it cannot match refuses the message."""
    transactions = Transactions(options=_OPTIONS)
    try:
        transactions.parse(message.tags)
    except RuntimeError as error:  # the library names the tag and the value it could not match
        tag = getattr(error.args[1], "id", "?") if len(error.args) > 2 else "?"
        value = str(error.args[2]) if len(error.args) > 2 else ""
        raise refuse.invalid(f"has a :{tag}: field that cannot be read: {quoted(value)}") from error
    except (ArithmeticError, ValueError) as error:  # decimal.InvalidOperation, impossible dates
        raise refuse.invalid("has an amount or a date that cannot be read (such as 31 February)") from error
    return transactions


def _balance(balance: Balance | None, tag: str, refuse: _Refusal) -> tuple[Decimal, str, date]:
    """Signed amount, currency and date of a balance read by the library."""
    amount = getattr(balance, "amount", None)
    if balance is None or balance.date is None or not hasattr(amount, "amount"):
        raise refuse.invalid(f"has a :{tag}: balance that cannot be read")
    currency = amount.currency or ""
    if not _CURRENCY.fullmatch(currency):
        raise refuse.invalid(f"has a :{tag}: balance whose currency is {quoted(currency)}")
    return signed(abs(amount.amount), amount.amount < 0), currency, date(*balance.date.timetuple()[:3])


def _iban_candidates(account: str) -> list[str]:
    """What in ``:25:`` may be an IBAN: all of it, or what follows ``BIC/``, with or without a currency."""
    candidates = []
    for part in dict.fromkeys((account, account.rpartition("/")[2])):
        candidates.append(part)
        if match := _TRAILING_CURRENCY.fullmatch(part):
            candidates.append(match["account"])
    return candidates
