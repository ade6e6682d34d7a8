"""The real-world corpus: every statement file in tests/fixtures/statements/real/ (sources and licences in its
SOURCES.md), parsed one by one.

Each file is either read, with the number of statements, entries, the first opening and last closing balance
and the warnings expected, or refused with the reason expected. The figures were checked against the files
themselves (see SOURCES.md): the number of statements and entries must also match what a plain count of the
file's own markers gives (``:20:`` and ``:61:`` lines, ``Stmt`` and ``Ntry`` elements).
"""

from __future__ import annotations

import re
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from glaneur.statements import StatementFileError, parse_statement_file

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "statements" / "real"

# file: (statements, entries, first opening balance, last closing balance, warning codes) or the refusal reason
# fmt: off
EXPECTED: dict[str, tuple[int, int, str, str, tuple[str, ...]] | str] = {
    "camt-to-coda__LT625883379695428516_2024-03-07.xml": (2, 3, '21081222.58', '4801.55', ('balance_sign_missing',)),
    "camt-to-coda__LT625883379695428516_2024-03-08.xml": (2, 4, '21903960.39', '4801.55', ('balance_sign_missing',)),
    "genkgo-camt__camt053.v2.all-balance-types.xml": (1, 1, '1.01', '4.04', ('balance_mismatch', 'continuity_gap')),
    "genkgo-camt__camt053.v2.five.decimals.xml": (1, 1, '18.150', '27.050', ('balance_mismatch',)),
    "genkgo-camt__camt053.v2.minimal.ultimate.xml": (1, 1, '18.15', '-27.00', ('balance_mismatch', 'currency_mismatch')),
    "genkgo-camt__camt053.v2.minimal.xml": (1, 1, '18.15', '-27.00', ('balance_mismatch', 'currency_mismatch')),
    "genkgo-camt__camt053.v2.multi.statement.xml": (2, 2, '18.15', '20.00', ()),
    "genkgo-camt__camt053.v2.with-account-name.xml": 'invalid_statement',
    "genkgo-camt__camt053.v2.with-party-ids.xml": (1, 1, '18.15', '-27.00', ('balance_mismatch', 'currency_mismatch')),
    "genkgo-camt__camt053.v2.wrong.xml": 'invalid_statement',
    "genkgo-camt__camt053.v3.xml": (1, 1, '18.15', '-27.00', ('balance_mismatch', 'currency_mismatch')),
    "genkgo-camt__camt053.v4.xml": 'invalid_statement',
    "genkgo-camt__camt053.v8.xml": 'invalid_statement',
    "genkgo-camt__camt53.only-Dt-with-DtTm.xml": 'invalid_statement',
    "jejik-mt940__K4262927_20200905-080000-952.txt": 'truncated',
    "jejik-mt940__bug-core-5401.txt": (1, 1, '0.00', '0.00', ('balance_mismatch',)),
    "jejik-mt940__commerzbank.txt": (1, 1, '0.00', '0.00', ('balance_mismatch',)),
    "jejik-mt940__deutschebank.txt": (1, 1, '0.00', '0.00', ('balance_mismatch',)),
    "jejik-mt940__ing-dos.txt": (1, 7, '0.00', '3.47', ('balance_mismatch', 'field_too_long')),
    "jejik-mt940__lbbw.txt": (1, 2, '0.00', '0.00', ()),
    "jejik-mt940__oldenburgischelandesbank.txt": (1, 1, '0', '0', ('balance_mismatch', 'field_too_long')),
    "jejik-mt940__sparkasse.txt": (2, 2, '194.57', '154.57', ()),
    "jejik-mt940__sparkasse2.txt": (1, 1, '931052.29', '931304.50', ('balance_mismatch',)),
    "jejik-mt940__sparkasse3.txt": (1, 1, '931052.29', '931304.50', ('balance_mismatch',)),
    "jejik-mt940__volksbankenraiffeisenbanken.txt": (8, 12, '3085.00', '3830.00', ()),
    "mt940-rs__abnamro_mt940.sta": (2, 4, '1111.10', '6666.83', ('balance_mismatch', 'continuity_gap')),
    "mt940-rs__bugs_issue-51.sta": (1, 3, '13564.13', '13523.09', ('balance_mismatch',)),
    "mt940-rs__danskebank_MT940_DK_Example.sta": (15, 89, '2478926.70', '3851379.47', ()),
    "mt940-rs__danskebank_MT940_FI_Example.sta": (1, 6, '54484.04', '53126.94', ()),
    "mt940-rs__danskebank_MT940_NO_Example.sta": (13, 24, '94372951.20', '96755600.22', ()),
    "mt940-rs__danskebank_MT940_SE_Example.sta": (12, 103, '2460347.64', '12988743.24', ()),
    "mt940-rs__sparkasse_buxtehude.sta": (1, 3, '13564.13', '13523.09', ('balance_mismatch',)),
    "oca-bank-statement-import__10.0_test-ing-old.940": (1, 8, '662.23', '564.35', ('wrapped_line',)),
    "oca-bank-statement-import__10.0_test-ing.940": (1, 8, '662.23', '564.35', ('wrapped_line',)),
    "oca-bank-statement-import__10.0_test-rabo.swi": (4, 2, '4433.52', '4798.91', ()),
    "oca-bank-statement-import__10.0_test-sns.940": 'truncated',
    "oca-bank-statement-import__13.0_test-camt053-bookgdt-dttm": (1, 1, '15568.27', '15121.12', ('balance_mismatch',)),
    "oca-bank-statement-import__16.0_test-camt053": (1, 3, '15568.27', '15121.12', ('balance_mismatch',)),
    "oca-bank-statement-import__16.0_test-camt053-no-ntry": (1, 0, '1520.76', '1520.76', ()),
    "oca-bank-statement-import__16.0_test-camt053-txdtls": (1, 1, '75960.15', '79443.15', ()),
    "wolph-mt940__ASNB_0708271685_09022020_164516.940.txt": (31, 8, '444.29', '501.23', ('field_too_long',)),
    "wolph-mt940__betterplace_sepa_mt9401.sta": (26, 97, '-1234718.36', '50.05', ()),
    "wolph-mt940__betterplace_with_binary_character.sta": (2, 4, '380115.77', '131193.19', ()),
    "wolph-mt940__cmxl_mt940.sta": (3, 16, '84349.74', '50040.00', ('field_too_long',)),
    "wolph-mt940__jejik_abnamro.sta": (2, 10, '3236.28', '1849.75', ('balance_mismatch', 'continuity_gap')),
    "wolph-mt940__jejik_generic.sta": (2, 2, '100.00', '80.00', ()),
    "wolph-mt940__jejik_ing.sta": (1, 7, '0.00', '3.47', ('balance_mismatch', 'field_too_long')),
    "wolph-mt940__jejik_knab.sta": (2, 3, '0', '798.98', ('balance_mismatch', 'continuity_gap')),
    "wolph-mt940__jejik_postfinance.sta": (2, 4, '0', '159.6', ('balance_mismatch',)),
    "wolph-mt940__jejik_rabobank-iban.sta": (2, 4, '1000.00', '930.00', ()),
    "wolph-mt940__jejik_rabobank.sta": (4, 5, '473.17', '4101.82', ('balance_mismatch', 'continuity_gap', 'field_too_long')),
    "wolph-mt940__jejik_sns.sta": (2, 2, '1234.56', '1209.56', ()),
    "wolph-mt940__jejik_triodos.sta": (1, 2, '4975.09', '4370.79', ('balance_mismatch',)),
    "wolph-mt940__mBank_mt940.sta": (1, 3, '0.40', '0.43', ('control_characters',)),
    "wolph-mt940__sberbank_171011_01234945.sta": (1, 3, '627311.30', '617874.30', ()),
    "wolph-mt940__self-provided_gv_codes.sta": 'truncated',
    "wolph-mt940__self-provided_raiffeisen-cmi.sta": (1, 7, '25170637.10', '25281687.60', ('balance_mismatch',)),
    "wolph-mt940__self-provided_raphaelm.sta": 'invalid_statement',
    "wolph-mt940__self-provided_sparkassen.sta": 'unsupported_format',
    "zilverline-mt940__14aug2014.swi": (1, 2, '768.18', '996.53', ('balance_mismatch',)),
    "zilverline-mt940__abn_abnamro.txt": (2, 10, '3236.28', '1849.75', ('balance_mismatch', 'continuity_gap')),
    "zilverline-mt940__abn_moneyou.txt": (1, 2, '43119.71', '43131.47', ()),
    "zilverline-mt940__deutsche_bank.txt": (1, 2, '0.00', '5.87', ('balance_mismatch',)),
    "zilverline-mt940__import-16-06-2014.txt": (1, 2, '173379.30', '189597.70', ('balance_mismatch',)),
    "zilverline-mt940__ing.txt": (1, 6, '0.00', '3.47', ('balance_mismatch', 'field_too_long')),
    "zilverline-mt940__ing_mt940_iban.txt": (1, 21, '436.90', '246.45', ('field_too_long',)),
    "zilverline-mt940__ing_structured.txt": (1, 7, '500.00', '400.00', ('balance_mismatch',)),
    "zilverline-mt940__knab_knab.txt": (1, 2, '0', '1010', ()),
    "zilverline-mt940__rabobank.txt": (23, 11, '17431.67', '6675.99', ('control_characters', 'field_too_long')),
    "zilverline-mt940__rabobank_mt940_structured.txt": (2, 9, '1147.95', '18846.34', ('field_too_long',)),
    "zilverline-mt940__rabobank_with_debet_previous_balance.txt": (1, 0, '-12.00', '-12.00', ()),
    "zilverline-mt940__sns_sns.txt": (16, 4, '534.03', '45546.48', ('field_too_long',)),
    "zilverline-mt940__two_accounts.txt": (4, 3, '9265.12', '238.00', ('control_characters', 'field_too_long')),
    "zilverline-mt940__van_lanschot_van_lanschot.txt": (3, 4, '5053.33', '4849.34', ()),
}
# fmt: on


def files() -> list[str]:
    return sorted(p.name for p in REAL.iterdir() if p.is_file() and p.name != "SOURCES.md")


def test_every_file_of_the_corpus_has_its_expectation_and_its_source() -> None:
    sources = (REAL / "SOURCES.md").read_text()

    assert files() == sorted(EXPECTED)
    assert all(f"`{name}`" in sources for name in files())


def counted(data: bytes) -> tuple[int, int]:
    """Statements and entries by a plain count of the file's markers, independent of the parser."""
    text = data.decode("latin-1")
    if "<Document" in text:
        return len(re.findall(r"<(?:\w+:)?Stmt>", text)), len(re.findall(r"<(?:\w+:)?Ntry>", text))
    return len(re.findall(r"(?m)^[\x00-\x1f]?:20:", text)), len(re.findall(r"(?m)^:61:", text))


@pytest.mark.parametrize("name", files())
def test_each_real_file_is_read_or_refused_as_expected(name: str) -> None:
    data = (REAL / name).read_bytes()
    expected = EXPECTED[name]
    if isinstance(expected, str):
        with pytest.raises(StatementFileError) as refused:
            parse_statement_file(data)
        assert refused.value.reason == expected
        return
    statements = parse_statement_file(data)
    count, entries, opening, closing, codes = expected

    assert (len(statements), sum(s.entries for s in statements)) == (count, entries) == counted(data)
    assert statements[0].opening_balance == Decimal(opening)
    assert statements[-1].closing_balance == Decimal(closing)
    assert tuple(sorted({w.code for s in statements for w in s.warnings})) == codes
    for statement in statements:  # each alone: only the continuity with the file's previous statement is lost
        (again,) = parse_statement_file(statement.content)
        lost = [w for w in statement.warnings if w not in again.warnings]
        assert all(w.code.startswith("continuity_") for w in lost)
        assert again == replace(statement, warnings=tuple(w for w in statement.warnings if w not in lost))


def test_the_corpus_is_mostly_read() -> None:
    read = [name for name, expected in EXPECTED.items() if not isinstance(expected, str)]

    assert len(read) >= 0.85 * len(EXPECTED)
