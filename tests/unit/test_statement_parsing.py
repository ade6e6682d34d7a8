"""Bank statement files (CAMT.053, MT940), offline, on fixtures written by hand from the public specifications.

Fixtures are in tests/fixtures/statements/; names (banks, companies, people) are made up. IBANs used,
all generated with schwifty (valid check digits, invented account numbers):

- FR7630004019250001234567876  camt053_v02_single.xml (also xxe.xml, camt054.xml, camt053_v01.xml)
- FR7630004028170009876543292  mt940_swift_blocks_crlf.sta (as ``:25:BFRHFRP1XXX/IBAN``)
- DE66370501981928374650       camt053_v04_two_accounts.xml (EUR), malformed.xml, mt940_truncated.sta
- DE65370501981928374668       camt053_v04_two_accounts.xml (USD)
- ES3020859252090330184736     camt053_v08_bom_dttm.xml
- NL82ABNA0581236470           mt940_plain_lf_two_accounts.sta (EUR)
- NL54ABNA0581236489           mt940_plain_lf_two_accounts.sta (USD, written ``IBAN`` + ``USD``)

Accounts without IBAN: ``0235-00456789-01`` (camt053_v06_othr_debit.xml, ``Acct/Id/Othr/Id``) and
``37050198/1928374650`` (mt940_intermediate_multiline86.sta, bank code/account number).
"""

from __future__ import annotations

import codecs
import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from glaneur.statements import (
    MAX_STATEMENT_FILE_BYTES,
    ParsedStatement,
    StatementFileError,
    detect_format,
    parse_statement_file,
)

STATEMENTS = Path(__file__).resolve().parents[1] / "fixtures" / "statements"
D = date


def fixture(name: str) -> bytes:
    return (STATEMENTS / name).read_bytes()


def summary(statement: ParsedStatement) -> tuple[object, ...]:
    return (
        statement.format,
        statement.account,
        statement.iban,
        statement.currency,
        statement.statement_id,
        statement.period_start,
        statement.period_end,
        statement.opening_balance,
        statement.closing_balance,
        statement.entries,
    )


def quotes_at_most_80_characters(message: str, data: bytes) -> bool:
    text = data.decode("latin-1")
    return not any(text[i : i + 81] in message for i in range(max(len(text) - 80, 0)))


# format, account, iban, currency, statement_id, period_start, period_end, opening, closing, entries
# fmt: off
EXPECTED: dict[str, list[tuple[object, ...]]] = {
    "camt053_v02_single.xml": [
        ("camt.053.001.02", "FR7630004019250001234567876", "FR7630004019250001234567876", "EUR",
         "20240315-0001234567876-074", D(2024, 3, 15), D(2024, 3, 15), Decimal("12345.67"), Decimal("15805.77"), 3),
    ],
    "camt053_v04_two_accounts.xml": [
        ("camt.053.001.04", "DE66370501981928374650", "DE66370501981928374650", "EUR",
         "MBRH2024031500012", D(2024, 3, 15), D(2024, 3, 15), Decimal("48210.35"), Decimal("46985.10"), 2),
        ("camt.053.001.04", "DE65370501981928374668", "DE65370501981928374668", "USD",
         "MBRH2024031500003", D(2024, 3, 15), D(2024, 3, 15), Decimal("10500.00"), Decimal("10500.00"), 0),
    ],
    "camt053_v06_othr_debit.xml": [
        ("camt.053.001.06", "0235-00456789-01", None, "CHF",
         "0235-00456789-01/2024-04-02", D(2024, 4, 2), D(2024, 4, 2), Decimal("-1520.40"), Decimal("1024.45"), 3),
    ],
    "camt053_v08_bom_dttm.xml": [
        ("camt.053.001.08", "ES3020859252090330184736", "ES3020859252090330184736", "EUR",
         "ES3020859252090330184736.20240531", D(2024, 5, 31), D(2024, 5, 31), Decimal("2500.00"),
         Decimal("1365.43"), 2),
    ],
    "mt940_plain_lf_two_accounts.sta": [
        ("mt940", "NL82ABNA0581236470", "NL82ABNA0581236470", "EUR",
         "POLDERBANK NV/24075/1", D(2024, 3, 15), D(2024, 3, 15), Decimal("8450.00"), Decimal("10214.75"), 2),
        ("mt940", "NL54ABNA0581236489USD", "NL54ABNA0581236489", "USD",
         "POLDERBANK NV/24075/1", D(2024, 3, 15), D(2024, 3, 15), Decimal("2000.00"), Decimal("1950.01"), 1),
    ],
    "mt940_swift_blocks_crlf.sta": [
        ("mt940", "BFRHFRP1XXX/FR7630004028170009876543292", "FR7630004028170009876543292", "EUR",
         "240314000073/00073/001", D(2024, 3, 13), D(2024, 3, 14), Decimal("3150.42"), Decimal("2008.72"), 2),
        ("mt940", "BFRHFRP1XXX/FR7630004028170009876543292", "FR7630004028170009876543292", "EUR",
         "240315000074/00074/001", D(2024, 3, 14), D(2024, 3, 15), Decimal("2008.72"), Decimal("-491.28"), 1),
    ],
    "mt940_intermediate_multiline86.sta": [
        ("mt940", "37050198/1928374650", None, "EUR",
         "STARTUMS/00012/001", D(2024, 3, 15), D(2024, 3, 15), Decimal("48210.35"), Decimal("46985.10"), 2),
        ("mt940", "37050198/1928374650", None, "EUR",
         "STARTUMS/00012/002", D(2024, 3, 15), D(2024, 3, 15), Decimal("46985.10"), Decimal("46896.10"), 1),
    ],
}
# fmt: on

BAD: dict[str, str] = {
    "empty.sta": "empty",
    "xxe.xml": "hostile_xml",
    "billion_laughs.xml": "hostile_xml",
    "malformed.xml": "malformed_xml",
    "camt054.xml": "unsupported_version",
    "camt053_v01.xml": "unsupported_version",
    "pain001.xml": "unsupported_format",
    "releve_mars_2024.pdf": "unsupported_format",
    "mt940_truncated.sta": "truncated",
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_statement_of_a_file_is_read(name: str) -> None:
    statements = parse_statement_file(fixture(name))

    assert [summary(s) for s in statements] == EXPECTED[name]
    assert all(isinstance(s.opening_balance, Decimal) and isinstance(s.closing_balance, Decimal) for s in statements)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_statement_content_is_a_file_holding_that_statement_alone(name: str) -> None:
    for statement in parse_statement_file(fixture(name)):
        again = parse_statement_file(statement.content)

        assert again == [statement]
        assert parse_statement_file(again[0].content)[0].sha256 == statement.sha256


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_format_is_detected_from_the_bytes(name: str) -> None:
    assert detect_format(fixture(name)) == ("mt940" if name.startswith("mt940") else "camt053")


@pytest.mark.parametrize("name", ["camt053_v02_single.xml", "camt053_v06_othr_debit.xml", "camt053_v08_bom_dttm.xml"])
def test_a_camt_file_with_one_statement_is_delivered_as_received(name: str) -> None:
    (statement,) = parse_statement_file(fixture(name))

    assert statement.content == fixture(name)


def test_the_bom_and_latin1_of_camt_files_are_kept() -> None:
    (spanish,) = parse_statement_file(fixture("camt053_v08_bom_dttm.xml"))
    (swiss,) = parse_statement_file(fixture("camt053_v06_othr_debit.xml"))

    assert spanish.content.startswith(codecs.BOM_UTF8)
    assert "Librería".encode() in spanish.content
    assert "Léman".encode("latin-1") in swiss.content


def test_a_camt_file_of_two_accounts_gives_two_documents_with_the_group_header_and_default_namespace() -> None:
    data = fixture("camt053_v04_two_accounts.xml")
    eur, usd = parse_statement_file(data)

    for statement, own_id, other_id in (
        (eur, b"MBRH2024031500012", b"MBRH2024031500003"),
        (usd, b"MBRH2024031500003", b"MBRH2024031500012"),
    ):
        assert statement.content.count(b"<Stmt>") == 1
        assert own_id in statement.content and other_id not in statement.content
        assert b"<MsgId>MBRH-C53-20240316-0412</MsgId>" in statement.content
        assert b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.04"' in statement.content
        assert b"ns0:" not in statement.content
        assert statement.content.rstrip().endswith(b"</BkToCstmrStmt>\n</Document>")
    assert eur.sha256 != usd.sha256


def test_a_camt_file_written_with_a_namespace_prefix_keeps_it_in_each_content() -> None:
    text = fixture("camt053_v04_two_accounts.xml").decode()
    prefixed = re.sub(r"<(/?)([A-Za-z]+)([ >/])", r"<\1ns2:\2\3", text).replace('xmlns="', 'xmlns:ns2="')
    eur, usd = parse_statement_file(prefixed.encode())

    assert [summary(eur), summary(usd)] == EXPECTED["camt053_v04_two_accounts.xml"]
    for statement in (eur, usd):
        assert statement.content.count(b"<ns2:Stmt>") == 1
        assert statement.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<ns2:Document xmlns:ns2=')
        assert parse_statement_file(statement.content) == [statement]


def test_mt940_contents_keep_their_blocks_line_endings_encoding_and_header_lines() -> None:
    first, second = parse_statement_file(fixture("mt940_swift_blocks_crlf.sta"))
    plain_eur, plain_usd = parse_statement_file(fixture("mt940_plain_lf_two_accounts.sta"))

    assert first.content.startswith(b"{1:F01BFRHFRP1AXXX0073000073}{2:O940")
    assert first.content.rstrip().endswith(b"-}{5:{CHK:3A1F5C9B2E07}}")
    assert b"\r\n" in first.content and b":20:240315000074" not in first.content
    assert "DÉPÔT".encode("latin-1") in first.content
    assert second.content.startswith(b"{1:F01BFRHFRP1AXXX0074000074}")
    assert first.content + second.content == fixture("mt940_swift_blocks_crlf.sta")
    assert plain_eur.content.startswith(b"POLDNL2A\n940\nPOLDNL2A\n:20:")
    assert plain_usd.content.startswith(b"POLDNL2A\n940\nPOLDNL2A\n:20:")
    assert plain_eur.content + plain_usd.content == fixture("mt940_plain_lf_two_accounts.sta")
    assert b"-0318 KLANT 4471" in plain_eur.content  # a narrative line starting with "-" ends nothing


def test_mt940_pages_split_only_by_a_new_20_tag_become_two_statements() -> None:
    data = fixture("mt940_intermediate_multiline86.sta")
    first, second = parse_statement_file(data)

    assert first.content + second.content == data
    assert b":62M:" in first.content and b":60M:" in second.content


def test_the_json_description_has_exact_amounts_and_iso_dates() -> None:
    (statement,) = parse_statement_file(fixture("camt053_v06_othr_debit.xml"))

    assert statement.as_json() == {
        "iban": None,
        "account": "0235-00456789-01",
        "currency": "CHF",
        "opening_balance": "-1520.40",
        "closing_balance": "1024.45",
        "entries": 3,
        "period": {"start": "2024-04-02", "end": "2024-04-02"},
        "period_start": "2024-04-02",
        "period_end": "2024-04-02",
        "statement_id": "0235-00456789-01/2024-04-02",
        "format": "camt.053.001.06",
        "sha256": statement.sha256,
        "warnings": [],
    }
    assert len(statement.sha256) == 64
    assert "content" not in repr(statement)


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_file_is_refused_with_its_reason_and_a_short_message(name: str) -> None:
    data = fixture(name)
    with pytest.raises(StatementFileError) as refused:
        parse_statement_file(data)

    assert refused.value.reason == BAD[name]
    assert isinstance(refused.value, ValueError)
    assert "ask the bank" in str(refused.value)
    assert quotes_at_most_80_characters(str(refused.value), data)


@pytest.mark.parametrize("name", sorted(set(BAD) - {"mt940_truncated.sta"}))
def test_format_detection_refuses_the_same_files(name: str) -> None:
    with pytest.raises(StatementFileError) as refused:
        detect_format(fixture(name))

    assert refused.value.reason == BAD[name]


def test_the_truncated_mt940_names_the_statement_cut_short() -> None:
    with pytest.raises(StatementFileError, match=r"statement 2 .*no closing balance \(:62F:\)"):
        parse_statement_file(fixture("mt940_truncated.sta"))
    assert detect_format(fixture("mt940_truncated.sta")) == "mt940"


def test_a_file_too_large_is_refused_before_being_parsed() -> None:
    with pytest.raises(StatementFileError) as refused:
        parse_statement_file(fixture("billion_laughs.xml"), max_bytes=1000)

    assert refused.value.reason == "too_large"
    assert MAX_STATEMENT_FILE_BYTES == 20 * 1024 * 1024
    with pytest.raises(StatementFileError) as too_large:
        parse_statement_file(b" " * (MAX_STATEMENT_FILE_BYTES + 1))
    assert too_large.value.reason == "too_large"
    assert len(
        parse_statement_file(fixture("camt053_v02_single.xml"), max_bytes=len(fixture("camt053_v02_single.xml")))
    )


def camt(changes: dict[str, str]) -> bytes:
    """The camt.053.001.02 fixture with each ``old`` text replaced by its ``new`` one."""
    text = fixture("camt053_v02_single.xml").decode()
    for old, new in changes.items():
        assert old in text
        text = text.replace(old, new)
    return text.encode()


def mt940(old: str, new: str, name: str = "mt940_plain_lf_two_accounts.sta") -> bytes:
    """An MT940 fixture with its first ``old`` text replaced by ``new``."""
    text = fixture(name).decode("latin-1")
    assert old in text
    return text.replace(old, new, 1).encode("latin-1")


PAGES = fixture("mt940_intermediate_multiline86.sta")
CUT = fixture("mt940_truncated.sta")

INVALID_FILES: dict[str, tuple[bytes, str]] = {
    "whitespace only": (codecs.BOM_UTF8 + b"\r\n  \n", "empty"),
    "csv export": ("Date;Libellé;Montant\n15/03/2024;VIR SEPA;1200,00\n".encode(), "unsupported_format"),
    "random bytes": (bytes(range(256)) * 4, "unsupported_format"),
    "zip archive": (b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 40, "unsupported_format"),
    "other xml": (
        b'<?xml version="1.0"?><Invoice xmlns="urn:oasis:names:ubl"><ID>F1</ID></Invoice>',
        "unsupported_format",
    ),
    "camt.053.001.14": (camt({"camt.053.001.02": "camt.053.001.14"}), "unsupported_version"),
    "camt.052": (camt({"camt.053.001.02": "camt.052.001.02"}), "unsupported_version"),
    "no closing balance": (camt({"<Cd>CLBD</Cd>": "<Cd>ITBD</Cd>"}), "invalid_statement"),
    "no statement id": (camt({"<Id>20240315-0001234567876-074</Id>": ""}), "invalid_statement"),
    "no account": (camt({"<IBAN>FR7630004019250001234567876</IBAN>": ""}), "invalid_statement"),
    "balances in two currencies on an account without currency": (
        camt({'<Amt Ccy="EUR">15805.77</Amt>': '<Amt Ccy="USD">15805.77</Amt>', "<Ccy>EUR</Ccy>": ""}),
        "invalid_statement",
    ),
    "amount with a comma": (camt({">12345.67<": ">12,345.67<"}), "invalid_statement"),
    "bad balance date": (
        camt({"<Dt>2024-03-15</Dt>\n        </Dt>": "<Dt>15/03/2024</Dt>\n        </Dt>"}),
        "invalid_statement",
    ),
    "bad credit/debit mark": (
        camt({"<CdtDbtInd>CRDT</CdtDbtInd>\n        <Dt>": "<CdtDbtInd>C</CdtDbtInd>\n<Dt>"}),
        "invalid_statement",
    ),
    "no Stmt at all": (
        (
            b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>'
            b"<GrpHdr><MsgId>X</MsgId></GrpHdr></BkToCstmrStmt></Document>"
        ),
        "invalid_statement",
    ),
    "mt940 without :25:": (mt940(":25:NL82ABNA0581236470\n", ""), "invalid_statement"),
    "mt940 without :28:": (mt940(":28:24075/1\n", ""), "invalid_statement"),
    "mt940 without :60F:": (mt940(":60F:C240315EUR8450,00\n", ""), "invalid_statement"),
    "mt940 closing in another currency": (
        mt940(":62F:C240315EUR10214,75", ":62F:C240315USD10214,75"),
        "invalid_statement",
    ),
    "mt940 unreadable entry": (mt940(":61:2403150315D125,50N426NONREF", ":61:15 MARS 125,50 EUR"), "invalid_statement"),
    "mt940 impossible date": (mt940(":60F:C240315EUR8450,00", ":60F:C240231EUR8450,00"), "invalid_statement"),
    "mt940 cut inside its closing balance": (
        PAGES.split(b":62F:")[0] + b":62F:C2403",
        "truncated",
    ),
    "mt940 cut before the comma of its closing balance": (PAGES[: PAGES.index(b"46896,10\n:64:") + 3], "truncated"),
    "mt940 cut after the comma of its closing balance": (PAGES[: PAGES.index(b"46896,10\n:64:") + 6], "truncated"),
    "mt940 cut in the middle of a tag": (PAGES[: PAGES.rindex(b":20:") + 2], "truncated"),
    "mt940 cut in the :20: of its next statement": (CUT[: CUT.index(b":20:MT940-0403") + 3], "truncated"),
    "camt declaring an unknown encoding": (
        camt({'encoding="UTF-8"': 'encoding="UTF-9"'}),
        "malformed_xml",
    ),
    "mt942 interim report": (
        (
            b"{1:F01BFRHFRP1AXXX0075000075}{2:O9421030240315BFRHFRP1AXXX00750000752403151030N}{4:\r\n"
            b":20:240315103001\r\n:25:BFRHFRP1XXX/FR7630004028170009876543292\r\n:28C:00075/001\r\n"
            b":34F:EUR0,\r\n:13D:2403151030+0100\r\n:90D:0EUR0,\r\n:90C:0EUR0,\r\n-}"
        ),
        "unsupported_format",
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID_FILES))
def test_an_unreadable_file_is_refused_naming_what_is_wrong(case: str) -> None:
    data, reason = INVALID_FILES[case]
    with pytest.raises(StatementFileError) as refused:
        parse_statement_file(data)

    assert refused.value.reason == reason
    assert str(refused.value).count(";") >= 1  # what is wrong; what to do
    assert quotes_at_most_80_characters(str(refused.value), data)


def test_long_values_are_quoted_shortly_in_messages() -> None:
    long_id = "STMT-" + "X" * 200
    data = camt({"20240315-0001234567876-074": long_id, "<Cd>CLBD</Cd>": "<Cd>ITBD</Cd>"})
    with pytest.raises(StatementFileError) as refused:
        parse_statement_file(data)

    assert refused.value.reason == "invalid_statement"
    assert "STMT-XXXX" in str(refused.value) and long_id not in str(refused.value)
    assert quotes_at_most_80_characters(str(refused.value), data)


def test_an_mt940_in_utf8_with_bom_and_a_lower_case_debit_mark_is_read() -> None:
    data = codecs.BOM_UTF8 + mt940(":60F:C240315EUR8450,00", ":60F:d240315EUR8450,00").replace(
        b"SOFTWARE FICTIEF", "LOGICIEL ÉPROUVÉ".encode()
    )
    eur, usd = parse_statement_file(data)

    assert eur.opening_balance == Decimal("-8450.00")
    assert "ÉPROUVÉ".encode() in usd.content
    assert parse_statement_file(usd.content) == [usd]


def test_a_zero_balance_is_never_negative() -> None:
    data = mt940(":60F:C240315USD2000,00", ":60F:D240315USD0,00")
    (_, usd) = parse_statement_file(data)

    assert str(usd.opening_balance) == "0.00"


def test_an_invalid_iban_is_kept_as_the_account_without_iban() -> None:
    data = mt940(":25:NL82ABNA0581236470", ":25:NL83ABNA0581236470")
    eur, _ = parse_statement_file(data)

    assert (eur.account, eur.iban) == ("NL83ABNA0581236470", None)


def test_the_error_reason_comes_from_a_closed_list() -> None:
    with pytest.raises(ValueError, match="unknown statement file error reason"):
        StatementFileError("unreadable", "whatever")  # type: ignore[arg-type]
