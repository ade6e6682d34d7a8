"""Hostile statement files (issue 19 item 3): refused with a reason and a clear message, memory bounded.

Each file is built here, the way an attacker or a broken export would write it: external entities and
entity expansion (also in ``test_statement_parsing.py``, on saved files), a quadratic blowup (one big
entity used many times), elements nested hundreds of thousands deep, a file far over the size limit,
encodings that lie or do not exist, bytes that are no text at all. Python's memory is measured with
tracemalloc while each is read: the peak stays within a small multiple of the file's own size.
That a refused file is kept aside while the others are routed is shown end to end in
``tests/e2e/test_route_statements.py`` (``test_hostile_files_are_kept_aside_and_block_nothing``).
"""

from __future__ import annotations

import tracemalloc

import pytest

from glaneur.statements import MAX_STATEMENT_FILE_BYTES, StatementFileError, parse_statement_file

CAMT_HEAD = (b'<?xml version="1.0" encoding="UTF-8"?>'
             b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>')
CAMT_TAIL = b"</BkToCstmrStmt></Document>"
DEPTH = 200_000


def hostile_files() -> dict[str, tuple[bytes, str, str]]:
    """name: (content, reason, words the message must hold)."""
    return {
        "external entity": (
            b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">&x;</Document>',
            "hostile_xml", "external entities"),
        "parameter entity": (
            b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x.dtd"> %p;]><Document/>',
            "hostile_xml", "DTD"),
        "billion laughs": (
            b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "lol">'
            + b"".join(b'<!ENTITY %c "%s">' % (ord("b") + i, (b"&%c;" % (ord("a") + i)) * 10) for i in range(9))
            + b"]><Document>&j;</Document>",
            "hostile_xml", "entity expansion"),
        "quadratic blowup": (
            b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "' + b"x" * 100_000 + b'">]><Document>'
            + b"&a;" * 100_000 + b"</Document>",
            "hostile_xml", "DTD"),
        "deep nesting": (CAMT_HEAD + b"<a>" * DEPTH + b"</a>" * DEPTH + CAMT_TAIL, "hostile_xml", "nests elements"),
        "deep nesting without a namespace": (b"<x>" * DEPTH + b"</x>" * DEPTH, "hostile_xml", "nests elements"),
        "far over the size limit": (CAMT_HEAD + b"<Stmt><Id>" + b"9" * (MAX_STATEMENT_FILE_BYTES + 1) + b"</Id>",
                                    "too_large", "over the 20 MB limit"),
        "invalid UTF-8": (CAMT_HEAD + b"<Stmt><Id>\xc3\x28\xff</Id></Stmt>" + CAMT_TAIL, "malformed_xml",
                          "not well-formed"),
        "an encoding that does not exist": (CAMT_HEAD.replace(b"UTF-8", b"UTF-9") + CAMT_TAIL, "malformed_xml",
                                            "encoding that does not exist"),
        "UTF-16 byte order mark on bytes that are not UTF-16": (b"\xff\xfe<\x00?\x00x\x00\x00\xd8", "malformed_xml",
                                                                "not UTF-16"),
        "MT940 with NUL bytes and terminal escapes": (b"\x00\x00\x1b[2J\x1b]0;pwned\x07:20:\x00\r\n:25:\x00" * 50,
                                                      "unsupported_format", "not a bank statement"),
        "binary noise": (bytes(range(256)) * 400, "unsupported_format", "not a bank statement"),
        "empty": (b"", "empty", "empty"),
    }


@pytest.mark.parametrize("name", sorted(hostile_files()))
def test_a_hostile_file_is_refused_with_its_reason_in_bounded_memory(name: str) -> None:
    content, reason, words = hostile_files()[name]
    tracemalloc.start()
    try:
        with pytest.raises(StatementFileError) as refused:
            parse_statement_file(content)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert refused.value.reason == reason, str(refused.value)
    message = str(refused.value)
    assert words in message and ("ask the bank" in message or "ask for" in message), message
    assert "\x1b" not in message and "\x00" not in message and "root:" not in message
    assert len(message) < 400
    # The peak stays within a few times the file (parsers copy it once or twice) plus a fixed amount:
    # an expansion or a nesting attack would need hundreds of times the file.
    assert peak < 3 * len(content) + 8 * 1024 * 1024, f"{name}: peak {peak} bytes for a {len(content)}-byte file"


def test_deep_nesting_is_refused_at_the_limit_not_at_the_end_of_the_file() -> None:
    from glaneur.statements.camt import MAX_XML_DEPTH

    ok_depth = CAMT_HEAD + b"<a>" * (MAX_XML_DEPTH - 3) + b"</a>" * (MAX_XML_DEPTH - 3) + CAMT_TAIL
    with pytest.raises(StatementFileError) as shallow:
        parse_statement_file(ok_depth)
    assert shallow.value.reason == "invalid_statement"  # read to the end: just no statement in it
    too_deep = CAMT_HEAD + b"<a>" * (MAX_XML_DEPTH - 1)  # cut short: only the depth can refuse it so early
    with pytest.raises(StatementFileError) as deep:
        parse_statement_file(too_deep)
    assert deep.value.reason == "hostile_xml"
