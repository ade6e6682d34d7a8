"""Papeterie Dupont parsing, offline, on pages saved from the sandbox (tests/fixtures/pages/save_pages.py)."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from connectors.base import SecondFactorKind
from connectors.papeterie_dupont import (
    PapeterieDupont,
    login_refusal,
    next_page_url,
    parse_amount,
    parse_invoice_rows,
    parse_second_factor,
    second_factor_refusal,
)
from glaneur.errors import AccountLocked, AwaitingSecondFactor, PortalChanged, WrongCredentials, WrongSecondFactor

PAGES = Path(__file__).resolve().parents[1] / "fixtures" / "pages" / "papeterie-dupont"


def page(name: str) -> str:
    return (PAGES / name).read_text(encoding="utf-8")


def test_first_page_lists_ten_invoices_newest_first() -> None:
    documents = parse_invoice_rows(page("factures_page1.html"))

    assert len(documents) == 10
    first = documents[0]
    assert (first.reference, first.document_date, first.amount, first.currency) == (
        "PD-1001-0023",
        date(2026, 10, 5),
        Decimal("1082.58"),
        "EUR",
    )
    assert first.download_url == "/factures/PD-1001-0023/pdf"
    assert [d.reference for d in documents] == [f"PD-1001-{n:04d}" for n in range(23, 13, -1)]
    assert [d.document_date for d in documents] == sorted((d.document_date for d in documents), reverse=True)
    assert all(isinstance(d.amount, Decimal) and d.amount > 0 for d in documents)
    assert next_page_url(page("factures_page1.html")) == "/factures?page=2"


def test_last_page_has_the_oldest_invoices_and_no_next_link() -> None:
    documents = parse_invoice_rows(page("factures_page3.html"))

    assert [d.reference for d in documents] == ["PD-1001-0003", "PD-1001-0002", "PD-1001-0001"]
    assert documents[-1].document_date == date(2024, 12, 5)
    assert next_page_url(page("factures_page3.html")) is None


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        ("1 234,56 €", "1234.56"),
        ("1\u00a0234,56\u00a0€", "1234.56"),
        ("1\u202f234,56 €", "1234.56"),
        ("  66,06 €\n", "66.06"),
        ("12 345 678,90 €", "12345678.90"),
        ("1234,56 €", "1234.56"),
        ("-12,00 €", "-12.00"),
        ("0,00 €", "0.00"),
    ],
)
def test_french_amounts(text: str, amount: str) -> None:
    assert parse_amount(text) == Decimal(amount)


@pytest.mark.parametrize("text", ["EUR 1,082.58", "12.50 €", "12,5 €", "1 234,56", "", "gratuit"])
def test_amounts_in_another_format_mean_the_portal_changed(text: str) -> None:
    with pytest.raises(PortalChanged, match="expected a French amount"):
        parse_amount(text)


def test_the_redesigned_list_raises_portal_changed_naming_the_table() -> None:
    html = page("factures_nouveau_site.html")
    assert "invoice-card" in html  # the saved page really is the new layout

    with pytest.raises(PortalChanged, match=r"no table#factures"):
        parse_invoice_rows(html)


def test_renamed_columns_raise_portal_changed_naming_the_expected_ones() -> None:
    html = page("factures_page1.html").replace("<th>Montant TTC</th>", "<th>Total</th>")

    with pytest.raises(PortalChanged, match=r"expected \['Numéro', 'Date', 'Montant TTC'\]"):
        parse_invoice_rows(html)


def test_a_row_without_its_pdf_link_raises_portal_changed() -> None:
    html = page("factures_page1.html").replace('class="pdf"', 'class="download"', 1)

    with pytest.raises(PortalChanged, match="a.pdf link"):
        parse_invoice_rows(html)


def test_a_date_in_another_format_raises_portal_changed() -> None:
    html = page("factures_page1.html").replace("<td>05/10/2026</td>", "<td>2026-10-05</td>", 1)

    with pytest.raises(PortalChanged, match="dd/mm/yyyy"):
        parse_invoice_rows(html)


def test_an_empty_list_is_no_invoice_not_an_error() -> None:
    soup = BeautifulSoup(page("factures_page1.html"), "html.parser")
    for row in soup.select("table#factures tbody tr"):
        row.decompose()

    assert parse_invoice_rows(str(soup)) == []


def test_login_refusals() -> None:
    wrong = login_refusal(page("login_erreur.html"))
    locked = login_refusal(page("login_bloque.html"))
    unknown = login_refusal(page("cgv.html"))

    assert isinstance(wrong, WrongCredentials) and "refused" in str(wrong)
    assert isinstance(locked, AccountLocked) and "Compte bloqué" in str(locked)
    assert isinstance(unknown, PortalChanged) and ".alert-error" in str(unknown)


@pytest.mark.parametrize(
    ("name", "path", "expected"),
    [
        ("login_erreur.html", "/login", {"login"}),
        ("factures_page1.html", "/factures", {"home", "invoices"}),
        ("factures_nouveau_site.html", "/factures", {"home"}),  # logged in, but not the list we know
        ("cgv.html", "/cgv", {"terms"}),
        ("mot_de_passe_expire.html", "/mot-de-passe-expire", {"new_password"}),
        ("double_authentification_totp.html", "/double-authentification", {"second_factor"}),
        ("double_authentification_erreur.html", "/double-authentification", {"second_factor"}),
        ("double_authentification_expire.html", "/double-authentification", {"second_factor", "code_expired"}),
        ("login_double_authentification_annulee.html", "/login", {"login"}),
    ],
)
def test_the_pages_table_recognises_the_saved_pages(name: str, path: str, expected: set[str]) -> None:
    """As expect_page does: the address matches the spec's pattern and the page has its marker."""
    soup = BeautifulSoup(page(name), "html.parser")
    found = {
        key
        for key, spec in PapeterieDupont.pages.items()
        if re.fullmatch(spec.url, path) and soup.select_one(spec.marker) is not None
    }
    assert found == expected


# -- second factor -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind", "words"),
    [
        ("double_authentification_totp.html", SecondFactorKind.TOTP, "application d'authentification"),
        ("double_authentification_code.html", SecondFactorKind.CODE, "par SMS au 06 •• •• •• 11"),
        ("double_authentification_appli.html", SecondFactorKind.APP, "Validez la connexion dans l'application"),
        ("double_authentification_erreur.html", SecondFactorKind.TOTP, "application d'authentification"),
    ],
)
def test_the_second_factor_page_says_what_it_asks(name: str, kind: SecondFactorKind, words: str) -> None:
    challenge = parse_second_factor(page(name))

    assert challenge.kind is kind
    assert words in challenge.prompt and "<" not in challenge.prompt


def test_a_page_without_the_second_factor_form_is_portal_changed() -> None:
    with pytest.raises(PortalChanged, match="second-factor|verification"):
        parse_second_factor(page("factures_page1.html"))


def test_second_factor_refusals() -> None:
    wrong = second_factor_refusal(page("double_authentification_erreur.html"))
    waiting = second_factor_refusal(page("double_authentification_attente.html"))
    dropped = second_factor_refusal(page("login_double_authentification_annulee.html"))
    unknown = second_factor_refusal(page("factures_page1.html"))

    assert type(wrong) is WrongSecondFactor and "Code incorrect. Il vous reste 4 essais." in str(wrong)
    assert type(waiting) is WrongSecondFactor and "not approved yet" in str(waiting)
    assert type(dropped) is AwaitingSecondFactor and "too many wrong codes" in str(dropped)
    assert isinstance(unknown, PortalChanged)
