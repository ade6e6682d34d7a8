"""Which format a statement file is in, from its bytes alone (never its name or declared type).

Checks run from the cheapest: size, emptiness, the first characters (XML or MT940 tags), and for
XML the namespace of its root element, which names the ISO 20022 message and its version.
"""

from __future__ import annotations

import codecs
from typing import Literal

from glaneur.statements.camt import read_document
from glaneur.statements.model import ASK_FOR_ACCEPTED_FORMATS, MAX_STATEMENT_FILE_BYTES, StatementFileError
from glaneur.statements.mt940 import check_message_type, decode, looks_like_mt940

#: Kinds of files people send instead of a statement, named in the refusal.
_MAGIC = (
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive, perhaps a spreadsheet"),
    (b"\xd0\xcf\x11\xe0", "an old Office document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
)


def check_size(data: bytes, max_bytes: int = MAX_STATEMENT_FILE_BYTES) -> None:
    """Refuse an empty or oversized file before anything reads it."""
    if len(data) > max_bytes:
        raise StatementFileError(
            "too_large",
            f"the file weighs {_size(len(data))}, over the {_size(max_bytes)} limit for a statement file; "
            "ask the bank for smaller files (one per day or per account)",
        )
    if not data.removeprefix(codecs.BOM_UTF8).strip() or data in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        raise StatementFileError("empty", "the file is empty; ask the bank for the statement file again")


def _size(count: int) -> str:
    if count >= 1_048_576:
        return f"{count / 1_048_576:.1f} MB".replace(".0 MB", " MB")
    return f"{count / 1024:.0f} KB" if count >= 10_240 else f"{count} bytes"


def sniff(data: bytes) -> Literal["xml", "mt940"]:
    """``"xml"`` or ``"mt940"`` from the first characters, or refuse the file naming what it looks like."""
    head = data.removeprefix(codecs.BOM_UTF8).lstrip()
    if head.startswith(b"<"):
        return "xml"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or data[:2] in (b"<\x00", b"\x00<"):
        text = data.decode("utf-16" if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else
                           ("utf-16-le" if data[:1] == b"<" else "utf-16-be"), errors="replace")
        if text.lstrip("\ufeff \t\r\n").startswith("<"):
            return "xml"
    text, _ = decode(data)
    if looks_like_mt940(text):
        check_message_type(text)
        return "mt940"
    looks = next((name for magic, name in _MAGIC if head.startswith(magic)), None)
    raise StatementFileError(
        "unsupported_format",
        f"the file is not a bank statement{f' (it is {looks})' if looks else ''}; {ASK_FOR_ACCEPTED_FORMATS}",
    )


def detect_format(data: bytes, *, max_bytes: int = MAX_STATEMENT_FILE_BYTES) -> str:
    """``"camt053"`` or ``"mt940"``; an XML file is parsed (safely) to check its message and version."""
    check_size(data, max_bytes)
    if sniff(data) == "xml":
        read_document(data)
        return "camt053"
    return "mt940"
