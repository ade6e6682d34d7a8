"""MT940 ("relevé de compte SWIFT MT940"): one message per statement, several messages per file.

A message is a run of tags (``:20:`` reference, ``:25:`` account, ``:28C:`` statement number,
``:60F:``/``:60M:`` opening balance, ``:61:``/``:86:`` entries, ``:62F:``/``:62M:`` closing
balance), either wrapped in SWIFT blocks ``{1:…}{2:…}{4:`` … ``-}`` or plain, ended by a line
``-`` or simply followed by the next ``:20:``. Banks add header lines, use CRLF or LF, and write
latin-1, CP852 or UTF-8 (with or without BOM).

What banks write beyond the standard but without doubt about its meaning is read and noted as a
warning on the statement: fields over their nominal length (Dutch banks put an 18-22 character
IBAN in the ``:61:`` reference and a name line after it), a blank statement number, a field or a
block end hard-wrapped across lines, control characters (a DOS end-of-file SUB) between messages,
a missing end marker, balances that do not add up in an anonymised sample.

Read here by hand rather than by the ``mt-940`` library, which refuses those dialects and merges
every message of a file into one. The library stays as a second reading: when it can read a
message, its balances and entry count must agree with ours, or the file is refused.

Refused: a message without closing balance, one cut inside a line (only the file's last message,
when nothing marks its end, can be), an unreadable balance or entry, a message that holds two
opening or closing balances or two accounts (where one statement ends and the next begins would
be a guess: a stray character once made a statement of one account swallow the next one's).
"""

from __future__ import annotations

import codecs
import logging
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from mt940.models import Transactions
from mt940.options import Options

from glaneur.statements.model import (
    ASK_FOR_ACCEPTED_FORMATS,
    Movement,
    ParsedStatement,
    StatementFileError,
    StatementWarning,
    WarningCode,
    iban_of,
    quoted,
    signed,
)

# The library logs a field it cannot read with its whole value (account numbers, narratives) at ERROR
# level; our own errors say what is wrong without quoting more than a few characters of the file.
logging.getLogger("mt940").setLevel(logging.CRITICAL)

#: Control characters other than tab and line ends: a DOS end-of-file SUB, NULs, form feeds.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTROLS = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*"
_TAG = re.compile(r"^:(?P<tag>\d{2}[A-Z]?|NS):", re.MULTILINE)
#: A tag whose colon was wrapped onto a line of its own (":" then "86:…").
_SPLIT_TAG = re.compile(r"^:[ \t]*\r?\n(?=(?:\d{2}[A-Z]?|NS):)", re.MULTILINE)
_BLOCK_1 = re.compile(r"\{1:")
_BLOCK_2_TYPE = re.compile(r"\{2:[IO](?P<type>\d{3})")
_BLOCK_4 = re.compile(r"\{4:[ \t]*\r?\n?")
#: The end of block 4: "-}" on its own line, or hard-wrapped ("-" then "}"), or glued to the last field.
_BLOCK_4_END = re.compile(r"(?:\r?\n" + _CONTROLS + r"-[ \t]*(?:\r?\n)?\}|-\}(?=[ \t]*(?:\{|\r?\n|\Z)))")
_PLAIN_START = re.compile(r"^" + _CONTROLS + r":20:", re.MULTILINE)
_ANY_TAG = re.compile(r"^" + _CONTROLS + r":(?:\d{2}[A-Z]?|NS):", re.MULTILINE)
_PLAIN_END = re.compile(r"^" + _CONTROLS + r"-[ \t\x1a]*(?:\r?\n|\r?\Z)", re.MULTILINE)
#: Mark (optional: some banks leave it out), YYMMDD date, currency, amount with its decimal comma.
_BALANCE = re.compile(r"(?P<mark>[CD])?(?P<date>\d{6})(?P<currency>[A-Z]{3})(?P<amount>\d{1,15},\d*)", re.IGNORECASE)
_BALANCE_TAGS = frozenset({"60F", "60M", "62F", "62M"})
#: :61: up to its transaction type: value date, entry date (or blanks), mark, funds code, amount, type's letter.
_ENTRY = re.compile(
    r"(?P<date>\d{6})(?P<entry>\d{4}|\s{4})?(?P<mark>R?[CD])(?P<funds>[A-Z])?(?P<amount>\d{1,15}(?:,\d*)?)"
    r"(?P<rest>\s?[A-Z].*)?",
    re.IGNORECASE,
)
_STATEMENT_NUMBER = re.compile(r"(?P<number>\d*)(?:/(?P<sequence>\d*))?")
_TRAILING_CURRENCY = re.compile(r"(?P<account>.+?)\s*[A-Z]{3}")
#: Nominal lengths (SWIFT MT940): 20 is 16x, 28C is 5n[/5n], a :61: reference 16x, 86 is 6*65x.
_MAX = {"20": 16, "28C": 11, "86": 65}
_OPTIONS = Options(reversal_sign=True, case_insensitive_marks=True)
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
    wrapped_end: bool = False  # its "-}" was split across lines or glued to the last field


def decode(data: bytes) -> tuple[str, str]:
    """The file's text and the codec that gives its bytes back.

    UTF-16 with its BOM, UTF-8 (BOM dropped) when it decodes, else latin-1, which maps every byte
    to one character: a CP852 or Windows-1252 file keeps its bytes, and the tags, amounts and
    account numbers that are read are ASCII in all of them.
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            pass
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def looks_like_mt940(text: str) -> bool:
    """Whether the start of ``text`` holds a ``:20:`` tag line and another MT940 statement tag."""
    head = text[:8192]
    return bool(_PLAIN_START.search(head)) and bool(
        re.search(r"^" + _CONTROLS + r":(25|28C?|60[FM]):", head, re.MULTILINE)
    )


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
    _check_boundaries(text, messages)
    statements = [_statement(message, codec) for message in messages]
    if re.search(r"^" + _CONTROLS + r":", rest, re.MULTILINE):
        raise StatementFileError(
            "truncated",
            f"the file is an MT940 statement cut short: it ends with the first line of statement "
            f"{len(messages) + 1}, cut in the middle of its :20: tag; {_ASK_AGAIN}",
        )
    return statements


def _split(text: str) -> tuple[list[_Message], str]:
    """The file's messages, in SWIFT blocks when it starts with ``{1:``, plain otherwise; and what follows them."""
    wrapped = _CONTROL.sub("", text).lstrip().startswith("{1:")
    starts = [m.start() for m in (_BLOCK_1 if wrapped else _PLAIN_START).finditer(text)]
    messages = []
    raw_start = 0  # plain messages keep the header lines some banks write before each ":20:"
    for index, start in enumerate(starts):
        last = index == len(starts) - 1
        segment = text[start : len(text) if last else starts[index + 1]]
        if wrapped:
            if index == 0:
                segment, start = text[: len(segment) + start], 0  # control characters before "{1:" stay in it
            body = _BLOCK_4.search(segment)
            end = _BLOCK_4_END.search(segment, body.end()) if body else None
            tags = segment[body.end() : end.start() if end else len(segment)] if body else ""
            raw = segment
            wrapped_end = end is not None and not re.fullmatch(r"\r?\n" + _CONTROLS + r"-\}", end.group(0))
        else:
            # A "-" line ends the message when no tag follows it: a hard-wrapped narrative can hold one.
            end = next((m for m in _PLAIN_END.finditer(segment) if not _ANY_TAG.search(segment, m.end())), None)
            tags = segment[: end.start()] if end else segment
            raw_end = start + (end.end() if end else len(segment))
            raw, raw_start = text[raw_start:raw_end], raw_end
            wrapped_end = False
        messages.append(
            _Message(
                number=index + 1, raw=raw, tags=tags, ended=end is not None, wrapped=wrapped, last=last,
                wrapped_end=wrapped_end,
            )
        )
    return messages, "" if wrapped else text[raw_start:]


def _check_boundaries(text: str, messages: list[_Message]) -> None:
    """Every ``:20:`` that starts a line (after control characters or not) starts exactly one message."""
    references = len(re.findall(r"^" + _CONTROLS + r":20:", _CONTROL.sub("", text), re.MULTILINE))
    found = sum(len(re.findall(r"^:20:", _CONTROL.sub("", m.tags), re.MULTILINE)) for m in messages)
    if references != found:
        raise StatementFileError(
            "invalid_statement",
            f"the MT940 file has {references} statement references (:20:) but {found} of them start a statement "
            f"that can be read; where one statement ends and the next begins is unclear, so nothing was read; "
            f"{_ASK_AGAIN}",
        )


@dataclass
class _Refusal:
    """The two ways a message is refused, both naming it; and the warnings noted while reading it."""

    where: str
    warnings: dict[str, str] = field(default_factory=dict)

    def invalid(self, problem: str) -> StatementFileError:
        return StatementFileError("invalid_statement", f"{self.where} of the MT940 file {problem}; {_ASK_AGAIN}")

    def cut_short(self, problem: str) -> StatementFileError:
        return StatementFileError(
            "truncated", f"the file is an MT940 statement cut short: {self.where} {problem}; {_ASK_AGAIN}"
        )

    def warn(self, code: WarningCode, message: str) -> None:
        self.warnings.setdefault(code, message)


def _tags(tags: str) -> list[tuple[str, list[str]]]:
    """Each tag of a message with the lines of its value (continuation lines included), in order."""
    matches = list(_TAG.finditer(tags))
    ends = [m.start() for m in matches[1:]] + [len(tags)] if matches else []
    result = []
    for match, end in zip(matches, ends, strict=True):
        lines = [line.strip() for line in tags[match.end() : end].splitlines()]
        while lines and not lines[-1]:
            lines.pop()
        result.append((match["tag"], lines or [""]))
    return result


@dataclass(frozen=True)
class _Balance:
    mark: str  # "C", "D" or "" when the bank left it out
    day: date
    currency: str
    amount: Decimal  # unsigned

    def value(self, sign: int = 1) -> Decimal:
        if self.mark:
            return signed(self.amount, self.mark == "D")
        return signed(self.amount, sign < 0)


def _statement(message: _Message, codec: str) -> ParsedStatement:
    text = _CONTROL.sub("", message.tags)
    unwrapped = _SPLIT_TAG.sub(":", text)
    tags = _tags(unwrapped)
    fields: dict[str, list[list[str]]] = {}
    for tag, lines in tags:
        fields.setdefault(tag, []).append(lines)
    reference = "".join(fields["20"][0]) if "20" in fields else ""
    refuse = _Refusal(f"statement {message.number}" + (f" (:20: {quoted(reference)})" if reference else ""))
    if _CONTROL.search(message.raw):
        refuse.warn("control_characters", "the message holds control characters (such as SUB), which were ignored")
    if unwrapped != text or message.wrapped_end:
        refuse.warn("wrapped_line", "a tag or the end of the message is split across lines; read joined")
    if message.wrapped and not message.ended:
        refuse.warn("no_end_marker", "the message does not end its block 4 with '-}'")

    _check_complete(message, tags, fields, refuse)
    for tag in ("20", "25", "60", "62"):
        found = sum(len(fields.get(t, [])) for t in ((tag,) if tag in ("20", "25") else (f"{tag}F", f"{tag}M")))
        if found > 1:
            what = {"20": "references (:20:)", "25": "accounts (:25:)", "60": "opening balances", "62": "closing balances"}
            raise refuse.invalid(
                f"holds {found} {what[tag]}: where one statement ends and the next begins is unclear, so nothing "
                "was read"
            )
    account = " ".join("".join(fields["25"][0]).split()) if "25" in fields else ""
    number_lines = fields.get("28C", fields.get("28", [None]))[0]
    for problem, missing in (
        ("has no transaction reference (:20:)", not reference),
        ("has no account identification (:25:)", not account),
        ("has no statement number (:28C:)", number_lines is None),
        ("has no opening balance (:60F:)", "60F" not in fields and "60M" not in fields),
    ):
        if missing:
            raise refuse.invalid(problem)
    number = _statement_number("".join(number_lines), len(number_lines) > 1, refuse)
    # :25: is not checked: "BIC/IBAN" is often longer than its 35 characters, and is read whole.
    if len(reference) > _MAX["20"]:
        refuse.warn("field_too_long", f":20: is {len(reference)} characters long, over its {_MAX['20']}")

    opening = _balance_of(tags, ("60F", "60M"), message, refuse)
    closing = _balance_of(tags, ("62F", "62M"), message, refuse)
    if closing.currency != opening.currency:
        raise refuse.invalid(f"opens in {quoted(opening.currency)} and closes in {quoted(closing.currency)}")
    movements = tuple(_entry(lines, refuse) for tag, lines in tags if tag == "61")
    for tag, lines in tags:
        if tag == "86" and any(len(line) > _MAX["86"] for line in lines):
            refuse.warn("field_too_long", ":86: has lines over 65 characters")
    moved = sum((m.amount for m in movements), Decimal(0))
    opening_value, closing_value = _signs(opening, closing, moved, refuse)
    if opening_value + moved != closing_value:
        if message.last and not message.ended and _ends_in_closing_balance(message.tags, opening, closing):
            raise refuse.cut_short("has a closing balance that its opening balance and entries do not add up to")
        refuse.warn(
            "balance_mismatch",
            f"the opening balance {opening_value} and the entries ({moved:+}) make {opening_value + moved}, "
            f"not the closing balance {closing_value}",
        )
    if "wrapped_line" not in refuse.warnings:  # the library reads a wrapped field's first line only
        _second_reading(unwrapped, opening_value, closing_value, len(movements), refuse)

    return ParsedStatement(
        format="mt940",
        account=account,
        iban=iban_of(*_iban_candidates(account)),
        currency=opening.currency.upper(),
        statement_id=f"{reference}/{number}",
        period_start=opening.day,
        period_end=closing.day,
        opening_balance=opening_value,
        closing_balance=closing_value,
        entries=len(movements),
        content=message.raw.encode(codec),
        movements=movements,
        warnings=tuple(StatementWarning(code, text) for code, text in refuse.warnings.items()),  # type: ignore[arg-type]
    )


def _statement_number(value: str, wrapped: bool, refuse: _Refusal) -> str:
    """``:28C:`` as written; a blank number is read with a warning, something else than numbers refused."""
    value = "".join(value.split())
    match = _STATEMENT_NUMBER.fullmatch(value)
    if match is None:
        raise refuse.invalid(f"has a statement number (:28C:) that cannot be read: {quoted(value)}")
    if wrapped:
        refuse.warn("wrapped_line", ":28C: is split across lines; read joined")
    if not match["number"]:
        refuse.warn("no_statement_number", f"the statement number (:28C:) is blank: {quoted(value)}")
    if len(value) > _MAX["28C"]:
        refuse.warn("field_too_long", f":28C: is {len(value)} characters long, over its {_MAX['28C']}")
    return value


def _check_complete(message: _Message, tags: list[tuple[str, list[str]]], fields: dict, refuse: _Refusal) -> None:
    """Refuse a message cut short: no closing balance, or a last line cut in two.

    Only the file's last message, when nothing marks its end, can be cut inside a line.
    """
    if "62F" not in fields and "62M" not in fields:
        raise refuse.cut_short("has no closing balance (:62F:)")
    may_be_cut = message.last and not message.ended
    last_line = _CONTROL.sub("", message.tags).rstrip().rsplit("\n", 1)[-1].strip()
    if may_be_cut and last_line.startswith(":") and not _TAG.match(last_line):
        raise refuse.cut_short("ends in the middle of a tag")


def _ends_in_closing_balance(tags: str, opening: _Balance, closing: _Balance) -> bool:
    """Whether the message's text stops inside the amount of its closing balance.

    It does when nothing follows that line (no line end, no other tag) and the amount has fewer
    decimals than the opening balance's: ``46896,`` or ``46896,1`` where the bank writes ``8450,00``.
    """
    text = _CONTROL.sub("", tags)
    last_line = text.rsplit("\n", 1)[-1]
    if text.endswith(("\n", "\r")) or not last_line.startswith((":62F:", ":62M:")):
        return False
    return _decimals(closing.amount) < _decimals(opening.amount)


def _decimals(amount: Decimal) -> int:
    exponent = amount.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def _balance_of(tags: list[tuple[str, list[str]]], wanted: tuple[str, str], message: _Message, refuse: _Refusal) -> _Balance:
    """The balance of the first of ``wanted`` tags; its value may be wrapped over a few lines."""
    index, (tag, lines) = next((i, t) for i, t in enumerate(tags) if t[0] in wanted)
    for count in range(1, len(lines) + 1):
        value = "".join(lines[:count]).replace(" ", "")
        match = _BALANCE.match(value)
        if match and (count == len(lines) or match.end() == len(value)):
            if count > 1:
                refuse.warn("wrapped_line", f":{tag}: is split across lines; read joined")
            break
    else:
        match = None
    if match is None:
        first = lines[0]
        if message.last and not message.ended and index == len(tags) - 1:
            raise refuse.cut_short(f"ends in the middle of its :{tag}: balance")
        raise refuse.invalid(f"has a :{tag}: balance that cannot be read: {quoted(first)}")
    try:
        day = _date(match["date"])
    except ValueError:
        raise refuse.invalid(f"has a :{tag}: balance whose date cannot be read (such as 31 February)") from None
    return _Balance((match["mark"] or "").upper(), day, match["currency"].upper(), _amount(match["amount"]))


def _signs(opening: _Balance, closing: _Balance, moved: Decimal, refuse: _Refusal) -> tuple[Decimal, Decimal]:
    """Signed balances; a balance without mark is a credit, unless only a debit makes the statement add up."""
    if opening.mark and closing.mark:
        return opening.value(), closing.value()
    credit = (opening.value(), closing.value())
    readings = {
        (opening.value(a), closing.value(b))
        for a in ((1,) if opening.mark else (1, -1))
        for b in ((1,) if closing.mark else (1, -1))
    }
    adding_up = [r for r in readings if r[0] + moved == r[1]]
    if credit[0] + moved == credit[1] or not adding_up:
        chosen, how = credit, "read as a credit"
    elif len(adding_up) == 1:
        chosen, how = adding_up[0], "read as the debit its entries make it"
    else:
        raise refuse.invalid("has a balance without credit/debit mark (C or D) whose sign the entries do not settle")
    refuse.warn("balance_sign_missing", f"a balance has no credit/debit mark (C or D): {how}")
    return chosen


def _entry(lines: list[str], refuse: _Refusal) -> Movement:
    """One ``:61:`` line: value date, signed amount, reference; wrapped or over-long ones read with a warning."""
    match = None
    for count in range(1, min(len(lines), 4) + 1):
        value = "".join(lines[:count])
        match = _ENTRY.match(value)
        if match and match["rest"]:
            if count > 1:
                refuse.warn("wrapped_line", "a :61: entry is split across lines; read joined")
            break
        match = None
    if match is None:
        raise refuse.invalid(f"has a :61: field that cannot be read: {quoted(lines[0])}")
    try:
        day = _date(match["date"])
    except ValueError:
        raise refuse.invalid(f"has a :61: entry whose date cannot be read: {quoted(match['date'])}") from None
    mark = match["mark"].upper()
    rest = match["rest"].strip()
    customer_reference = rest[4:].split("//", 1)[0]
    if len(customer_reference) > 16:
        refuse.warn("field_too_long", f"a :61: reference is {len(customer_reference)} characters long, over its 16")
    amount = _amount(match["amount"])
    return Movement(day=day, amount=-amount if mark in ("D", "RC") else amount, reference=rest.strip())


def _amount(text: str) -> Decimal:
    whole, _, decimals = text.partition(",")
    return Decimal(f"{whole}.{decimals}" if decimals else whole)


def _date(yymmdd: str) -> date:
    year = int(yymmdd[:2])
    return date(2000 + year if year < 80 else 1900 + year, int(yymmdd[2:4]), int(yymmdd[4:6]))


def _second_reading(tags: str, opening: Decimal, closing: Decimal, entries: int, refuse: _Refusal) -> None:
    """The ``mt-940`` library's reading of the same message, when it can read it, must agree with ours."""
    transactions = Transactions(options=_OPTIONS)
    try:
        transactions.parse(tags)
    except Exception:  # noqa: BLE001 - a dialect it does not read: ours stands alone
        return
    data = transactions.data
    theirs = []
    for key in ("final_opening_balance", "intermediate_opening_balance"), ("final_closing_balance", "intermediate_closing_balance"):
        balance = data.get(key[0]) or data.get(key[1])
        amount = getattr(getattr(balance, "amount", None), "amount", None)
        if amount is None:
            return
        theirs.append(amount)
    if theirs[0] != opening or theirs[1] != closing or len(transactions) != entries:
        raise refuse.invalid(
            "reads two ways: the mt-940 library and Glaneur disagree on its balances or its number of entries, "
            "so nothing was read"
        )


def _iban_candidates(account: str) -> list[str]:
    """What in ``:25:`` may be an IBAN: all of it, or what follows ``BIC/``, with or without a currency."""
    candidates = []
    for part in dict.fromkeys((account, account.rpartition("/")[2])):
        candidates.append(part)
        if match := _TRAILING_CURRENCY.fullmatch(part):
            candidates.append(match["account"])
    return candidates
