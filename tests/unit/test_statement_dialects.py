"""What banks send beyond the letter of MT940 and CAMT.053, family by family (issue 18).

Each family is shown on a real file of the corpus (tests/fixtures/statements/real/, see its SOURCES.md)
where one exists, and on a small variation of our own fixtures otherwise. A file whose meaning is clear
is read with a named warning; a garbled, truncated or ambiguous one is refused with its reason.
"""

from __future__ import annotations

import codecs
from decimal import Decimal
from pathlib import Path

import pytest

from glaneur.statements import StatementFileError, parse_statement_file
from glaneur.statements.model import StatementWarning

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "statements"
REAL = FIXTURES / "real"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def real(name: str) -> bytes:
    return (REAL / name).read_bytes()


def codes(statement) -> set[str]:
    return {warning.code for warning in statement.warnings}


PLAIN = fixture("mt940_plain_lf_two_accounts.sta").decode("latin-1")
CAMT = fixture("camt053_v02_single.xml").decode()


def plain(old: str, new: str, count: int = 1) -> bytes:
    assert old in PLAIN
    return PLAIN.replace(old, new, count).encode("latin-1")


def camt(changes: dict[str, str]) -> bytes:
    text = CAMT
    for old, new in changes.items():
        assert old in text, old
        text = text.replace(old, new)
    return text.encode()


# -- the wrong answer: a control character before a :20: ---------------------------------------------------


def test_a_sub_character_before_a_20_no_longer_merges_two_accounts() -> None:
    """zilverline/mt940's two_accounts.txt: a 0x1A before the fourth :20: once merged it into the third."""
    statements = parse_statement_file(real("zilverline-mt940__two_accounts.txt"))

    assert [(s.account, str(s.opening_balance), str(s.closing_balance), s.entries) for s in statements] == [
        ("1567.50.961EUR", "9265.12", "2666.37", 2),
        ("9914.30.727EUR", "352.84", "352.84", 0),
        ("3462.483.153 EUR", "5000.00", "5000.00", 0),
        ("1325.76.155EUR", "-12.00", "238.00", 1),
    ]
    assert "control_characters" in codes(statements[3])


@pytest.mark.parametrize("control", ["\x1a", "\x00", "\x1a\x1a", "\x0c"])
def test_control_characters_between_messages_keep_each_account_its_own_balances(control: str) -> None:
    data = plain("-\nPOLDNL2A\n940\nPOLDNL2A\n:20:", f"-\n{control}:20:")
    eur, usd = parse_statement_file(data)

    assert (eur.iban, eur.closing_balance) == ("NL82ABNA0581236470", Decimal("10214.75"))
    assert (usd.iban, usd.closing_balance) == ("NL54ABNA0581236489", Decimal("1950.01"))
    assert "control_characters" in codes(usd)
    assert eur.content + usd.content == data


def test_without_end_marker_a_control_character_still_starts_the_next_statement() -> None:
    data = plain("-\nPOLDNL2A\n940\nPOLDNL2A\n:20:", "\x1a:20:")
    eur, usd = parse_statement_file(data)

    assert (eur.currency, usd.currency) == ("EUR", "USD")
    assert usd.opening_balance == Decimal("2000.00")


def test_a_message_holding_two_closing_balances_is_refused_rather_than_guessed() -> None:
    data = plain("-\nPOLDNL2A\n940\nPOLDNL2A\n:20:POLDERBANK NV\n", "", 1)
    with pytest.raises(StatementFileError, match="2 accounts|2 references|2 opening|2 closing") as refused:
        parse_statement_file(data)

    assert refused.value.reason == "invalid_statement"


def test_a_20_hidden_inside_a_line_is_not_taken_for_a_statement_start() -> None:
    data = plain("\n:20:POLDERBANK NV\n:25:NL54", "\nX:20:POLDERBANK NV\n:25:NL54")
    with pytest.raises(StatementFileError) as refused:
        parse_statement_file(data)

    assert refused.value.reason == "invalid_statement"


# -- MT940 dialects ------------------------------------------------------------------------------------------


def test_a_dutch_61_with_an_iban_reference_and_a_name_line_is_read_with_a_warning() -> None:
    """ASN Bank (WoLpH/mt940's ASNB sample): ``:61:…D65,00NOVBNL47INGB9999999999`` then a name line."""
    statements = parse_statement_file(real("wolph-mt940__ASNB_0708271685_09022020_164516.940.txt"))

    first = statements[0]
    assert (first.account, first.opening_balance, first.closing_balance, first.entries) == (
        "NL81ASNB9999999999", Decimal("444.29"), Decimal("379.29"), 1,
    )
    assert first.movements[0].amount == Decimal("-65.00")
    assert "field_too_long" in codes(first)


def test_a_blank_statement_number_is_read_with_a_warning() -> None:
    eur, _ = parse_statement_file(plain(":28:24075/1", ":28C: /1"))

    assert codes(eur) == {"no_statement_number", "field_too_long"}
    assert eur.closing_balance == Decimal("10214.75")


def test_a_last_statement_without_end_marker_that_does_not_add_up_is_read_with_a_warning() -> None:
    """An anonymised Deutsche Bank sample (zilverline/mt940): no ``-`` at the end, balances changed."""
    (statement,) = parse_statement_file(real("zilverline-mt940__deutsche_bank.txt"))

    assert "balance_mismatch" in codes(statement)
    assert statement.closing_balance == Decimal("5.87")


def test_a_hard_wrapped_ing_file_is_read_joined() -> None:
    """OCA's test-ing.940: ``:28C:0000`` / ``0``, entries cut mid-reference, a lone ``-`` in a narrative."""
    for name in ("oca-bank-statement-import__10.0_test-ing.940", "oca-bank-statement-import__10.0_test-ing-old.940"):
        (statement,) = parse_statement_file(real(name))

        assert (statement.account, statement.opening_balance, statement.closing_balance, statement.entries) == (
            "NL77INGB0574908765EUR", Decimal("662.23"), Decimal("564.35"), 8,
        )
        assert statement.statement_id.endswith("/00000")
        assert codes(statement) == {"wrapped_line"}


@pytest.mark.parametrize(
    "end", ["\r\n-\r\n}{5:{CHK:3A1F5C9B2E07}}", ":65:X\r\n-}{5:", "\r\n-}"],
    ids=["split end", "end glued", "plain end"],
)
def test_a_block_end_split_across_lines_is_read(end: str) -> None:
    data = fixture("mt940_swift_blocks_crlf.sta").decode("latin-1")
    first = data.split("{1:", 2)
    message = "{1:" + first[1]
    assert "\r\n-}{5:{CHK:3A1F5C9B2E07}}" in message
    if end.startswith(":65:"):
        changed = message.replace("\r\n-}{5:{CHK:3A1F5C9B2E07}}", "-}{5:{CHK:3A1F5C9B2E07}}")
    else:
        changed = message.replace("\r\n-}{5:{CHK:3A1F5C9B2E07}}", end)
    (statement,) = parse_statement_file(changed.encode("latin-1"))

    assert statement.closing_balance == Decimal("2008.72")
    assert ("wrapped_line" in codes(statement)) == (end != "\r\n-}")


def test_a_block_without_its_end_is_read_with_a_warning_when_it_is_whole() -> None:
    data = fixture("mt940_swift_blocks_crlf.sta").split(b"\r\n-}{5:{CHK:7C04")[0]
    first, second = parse_statement_file(data)

    assert second.closing_balance == Decimal("-491.28")
    assert codes(second) == {"no_end_marker"} and codes(first) == set()


def test_a_tag_split_from_its_colon_is_joined() -> None:
    eur, _ = parse_statement_file(plain(":86:/TRTP/SEPA OVERBOEKING", ":\n86:/TRTP/SEPA OVERBOEKING"))

    assert "wrapped_line" in codes(eur)
    assert eur.entries == 2


def test_a_balance_wrapped_across_lines_is_joined() -> None:
    eur, _ = parse_statement_file(plain(":62F:C240315EUR10214,75\n", ":62F:C240315EUR102\n14,75\n"))

    assert eur.closing_balance == Decimal("10214.75")
    assert "wrapped_line" in codes(eur)


def test_an_mt940_balance_without_mark_takes_the_sign_its_entries_give() -> None:
    eur, _ = parse_statement_file(plain(":62F:C240315EUR10214,75", ":62F:240315EUR10214,75"))
    debit, _ = parse_statement_file(
        plain(":60F:C240315EUR8450,00", ":60F:240315EUR11979,50").replace(b":62F:C240315EUR10214,75",
                                                                            b":62F:D240315EUR10214,75")
    )

    assert (eur.closing_balance, codes(eur)) == (Decimal("10214.75"), {"balance_sign_missing", "field_too_long"})
    assert debit.opening_balance == Decimal("-11979.50")
    assert "balance_sign_missing" in codes(debit)


@pytest.mark.parametrize("codec", ["cp852", "latin-1", "utf-8", "utf-8-sig"])
def test_mt940_in_the_encodings_banks_use_is_read_and_kept_as_received(codec: str) -> None:
    text = PLAIN.replace("SOFTWARE FICTIEF INC", "PŘÍKLAD ŁÓDŹ" if codec != "latin-1" else "EXEMPLE FRANÇAIS")
    data = text.encode(codec)
    eur, usd = parse_statement_file(data)

    assert (eur.closing_balance, usd.closing_balance) == (Decimal("10214.75"), Decimal("1950.01"))
    assert (eur.content + usd.content) in (data, data.removeprefix(codecs.BOM_UTF8))
    assert parse_statement_file(usd.content) == [usd]


def test_an_mt940_cut_inside_its_closing_balance_amount_is_still_refused() -> None:
    pages = fixture("mt940_intermediate_multiline86.sta")
    for cut in (3, 6):  # "468", "46896,"; "46896,1" is the same amount as "46896,10" and adds up
        with pytest.raises(StatementFileError) as refused:
            parse_statement_file(pages[: pages.index(b"46896,10\n:64:") + cut])
        assert refused.value.reason == "truncated"


def test_an_mt940_without_closing_balance_at_all_is_refused_as_cut_short() -> None:
    with pytest.raises(StatementFileError) as refused:
        parse_statement_file(real("jejik-mt940__K4262927_20200905-080000-952.txt"))

    assert refused.value.reason == "truncated"


# -- CAMT.053 dialects ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [f"{n:02d}" for n in range(2, 14)])
def test_every_camt053_version_from_02_to_13_is_read(version: str) -> None:
    (statement,) = parse_statement_file(camt({"camt.053.001.02": f"camt.053.001.{version}"}))

    assert statement.format == f"camt.053.001.{version}"
    assert (statement.opening_balance, statement.closing_balance) == (Decimal("12345.67"), Decimal("15805.77"))
    assert statement.warnings == ()


def test_a_camt_balance_without_credit_debit_mark_is_read_from_its_entries() -> None:
    """A Lithuanian bank's camt.053.001.08 (Subite-eu/camt-to-coda): no CdtDbtInd on any balance."""
    first, second = parse_statement_file(real("camt-to-coda__LT625883379695428516_2024-03-07.xml"))

    assert (first.opening_balance, first.closing_balance) == (Decimal("21081222.58"), Decimal("21903960.39"))
    assert first.opening_balance + sum(m.amount for m in first.movements) == first.closing_balance
    assert codes(first) == codes(second) == {"balance_sign_missing"}


def test_a_camt_statement_with_a_closing_balance_and_no_opening_balance_is_read_with_a_warning() -> None:
    data = camt({"<Cd>OPBD</Cd>": "<Cd>OPAV</Cd>"})
    (statement,) = parse_statement_file(data)

    assert statement.opening_balance is None
    assert statement.closing_balance == Decimal("15805.77")
    assert codes(statement) == {"no_opening_balance"}
    assert statement.as_json()["opening_balance"] is None


def test_a_camt_balance_in_another_currency_than_the_account_is_read_with_a_warning() -> None:
    """genkgo/camt's synthetic camt053.v2.minimal.xml: an EUR account, a closing balance in SEK."""
    (statement,) = parse_statement_file(real("genkgo-camt__camt053.v2.minimal.xml"))

    assert statement.currency == "EUR"
    assert "currency_mismatch" in codes(statement)
    assert "SEK" in next(w.message for w in statement.warnings if w.code == "currency_mismatch")


def test_camt_balances_that_do_not_add_up_are_read_with_a_warning() -> None:
    (statement,) = parse_statement_file(camt({">15805.77<": ">15805.78<"}))

    assert codes(statement) == {"balance_mismatch"}
    assert "15805.77" in statement.warnings[0].message


def test_a_utf16_camt_is_read_and_a_single_statement_delivered_as_received() -> None:
    text = CAMT.replace('encoding="UTF-8"', 'encoding="UTF-16"')
    for data in (text.encode("utf-16"), text.encode("utf-16-le")):
        (statement,) = parse_statement_file(data)

        assert (statement.iban, statement.closing_balance) == ("FR7630004019250001234567876", Decimal("15805.77"))
        assert statement.content == data


def test_a_utf16_camt_of_two_accounts_is_split() -> None:
    text = fixture("camt053_v04_two_accounts.xml").decode()
    eur, usd = parse_statement_file(text.encode("utf-16"))

    assert (eur.currency, usd.currency) == ("EUR", "USD")
    assert parse_statement_file(usd.content) == [usd]


def test_hostile_and_garbled_files_are_still_refused() -> None:
    for name, reason in (("xxe.xml", "hostile_xml"), ("billion_laughs.xml", "hostile_xml"),
                         ("malformed.xml", "malformed_xml"), ("mt940_truncated.sta", "truncated")):
        with pytest.raises(StatementFileError) as refused:
            parse_statement_file(fixture(name))
        assert refused.value.reason == reason
    hostile16 = fixture("xxe.xml").decode().replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16")
    with pytest.raises(StatementFileError) as refused:
        parse_statement_file(hostile16)
    assert refused.value.reason == "hostile_xml"


def test_warning_codes_come_from_a_closed_list() -> None:
    with pytest.raises(ValueError, match="unknown statement warning code"):
        StatementWarning("looks_odd", "whatever")  # type: ignore[arg-type]


def test_a_camt_statement_with_two_different_closing_balances_is_refused() -> None:
    at = CAMT.index("<Cd>CLBD</Cd>")
    closing = CAMT[CAMT.rindex("<Bal>", 0, at) : CAMT.index("</Bal>", at) + 6]
    assert "<Cd>CLBD</Cd>" in closing and "OPBD" not in closing
    other = closing.replace(">15805.77<", ">15805.78<")
    with pytest.raises(StatementFileError, match="CLBD balances that differ") as refused:
        parse_statement_file(CAMT.replace(closing, closing + other).encode())

    assert refused.value.reason == "invalid_statement"
    (same,) = parse_statement_file(CAMT.replace(closing, closing + closing).encode())  # repeated, not ambiguous
    assert same.closing_balance == Decimal("15805.77")
