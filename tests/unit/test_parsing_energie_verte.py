"""Énergie Verte parsing, offline, on answers saved from the sandbox (tests/fixtures/pages/save_pages.py)."""

from __future__ import annotations

import json
import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from connectors.base import SecondFactorKind
from connectors.energie_verte import (
    EnergieVerte,
    login_refusal,
    parse_invoices_json,
    parse_second_factor,
    second_factor_refusal,
)
from glaneur.errors import AccountLocked, AwaitingSecondFactor, PortalChanged, WrongCredentials, WrongSecondFactor

PAGES = Path(__file__).resolve().parents[1] / "fixtures" / "pages" / "energie-verte"


def page(name: str) -> str:
    return (PAGES / name).read_text(encoding="utf-8")


def invoice(**changes: object) -> dict[str, object]:
    item: dict[str, object] = {
        "numero": "EV1",
        "date": "2026-01-01",
        "montant_ttc": 10.5,
        "devise": "EUR",
        "pdf": "/api/factures/EV1/pdf",
    }
    item.update(changes)
    return item


def test_the_invoice_api_answer_becomes_documents_newest_first() -> None:
    documents = parse_invoices_json(page("factures.json"))

    assert len(documents) == 23
    first = documents[0]
    assert (first.reference, first.document_date, first.amount, first.currency, first.download_url) == (
        "EV100100023",
        date(2026, 10, 1),
        Decimal("77.39"),
        "EUR",
        "/api/factures/EV100100023/pdf",
    )
    assert documents[-1].document_date == date(2024, 12, 1)
    assert [d.document_date for d in documents] == sorted((d.document_date for d in documents), reverse=True)
    assert len({d.reference for d in documents}) == 23


def test_the_since_answer_holds_only_recent_invoices() -> None:
    documents = parse_invoices_json(page("factures_depuis_2026-06-01.json"))

    assert [d.document_date for d in documents] == [date(2026, m, 1) for m in (10, 9, 8, 7, 6)]


def test_amounts_are_exact_decimals_and_order_does_not_depend_on_the_api() -> None:
    text = json.dumps(
        {
            "factures": [
                invoice(numero="A", date="2025-01-01", montant_ttc=0.1),
                invoice(numero="B", montant_ttc=1234.56),
            ]
        }
    )

    documents = parse_invoices_json(text)

    assert [(d.reference, d.amount) for d in documents] == [("B", Decimal("1234.56")), ("A", Decimal("0.1"))]


def test_another_currency_is_kept() -> None:
    (document,) = parse_invoices_json(json.dumps({"factures": [invoice(devise="CHF")]}))
    assert document.currency == "CHF"


def test_the_redesigned_api_raises_portal_changed_naming_the_list() -> None:
    with pytest.raises(PortalChanged, match=r"without a 'factures' list \(found \['apiVersion', 'data'\]\)"):
        parse_invoices_json(page("factures_nouveau_site.json"))


@pytest.mark.parametrize(
    "text",
    [
        "<html><body>Maintenance</body></html>",
        "[]",
        '{"factures": {"numero": "EV1"}}',
    ],
)
def test_an_answer_that_is_not_the_known_json_raises_portal_changed(text: str) -> None:
    with pytest.raises(PortalChanged):
        parse_invoices_json(text)


@pytest.mark.parametrize(
    "item",
    [
        {k: v for k, v in invoice().items() if k != "pdf"},
        invoice(date="01/10/2026"),
        invoice(montant_ttc="dix euros"),
        invoice(montant_ttc=None),
        "EV1",
    ],
)
def test_an_invoice_without_the_known_fields_raises_portal_changed(item: object) -> None:
    with pytest.raises(PortalChanged, match="numero, date, montant_ttc and pdf"):
        parse_invoices_json(json.dumps({"factures": [item]}))


def test_login_refusals() -> None:
    wrong = login_refusal(page("connexion_erreur.html"))
    locked = login_refusal(page("connexion_bloque.html"))
    unknown = login_refusal(page("espace_client.html"))

    assert isinstance(wrong, WrongCredentials) and "refused" in str(wrong)
    assert isinstance(locked, AccountLocked) and "bloqué" in str(locked)
    assert isinstance(unknown, PortalChanged) and "p.erreur" in str(unknown)


@pytest.mark.parametrize(
    ("name", "path", "expected"),
    [
        ("connexion_erreur.html", "/connexion", {"login"}),
        ("espace_client.html", "/espace-client", {"home", "invoices"}),
        ("espace_client_nouveau_site.html", "/espace-client", {"home"}),  # logged in, not the list we know
        ("conditions_generales.html", "/conditions-generales", {"terms"}),
        ("mot_de_passe_expire.html", "/securite/mot-de-passe", {"new_password"}),
        ("verification_totp.html", "/connexion/verification", {"second_factor"}),
        ("verification_erreur.html", "/connexion/verification", {"second_factor"}),
        ("verification_expire.html", "/connexion/verification", {"second_factor", "code_expired"}),
        ("connexion_verification_annulee.html", "/connexion", {"login"}),
    ],
)
def test_the_pages_table_recognises_the_saved_pages(name: str, path: str, expected: set[str]) -> None:
    """As expect_page does: the address matches the spec's pattern and the page has its marker."""
    soup = BeautifulSoup(page(name), "html.parser")
    found = {
        key
        for key, spec in EnergieVerte.pages.items()
        if re.fullmatch(spec.url, path) and soup.select_one(spec.marker) is not None
    }
    assert found == expected


# -- second factor -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind", "words"),
    [
        ("verification_totp.html", SecondFactorKind.TOTP, "application d'authentification"),
        ("verification_code.html", SecondFactorKind.CODE, "par e-mail à do•••••••••@client.test"),
        ("verification_appli.html", SecondFactorKind.APP, "Validez la connexion dans l'application"),
        ("verification_erreur.html", SecondFactorKind.TOTP, "application d'authentification"),
    ],
)
def test_the_second_factor_page_says_what_it_asks(name: str, kind: SecondFactorKind, words: str) -> None:
    challenge = parse_second_factor(page(name))

    assert challenge.kind is kind
    assert words in challenge.prompt and "<" not in challenge.prompt


def test_a_page_without_the_second_factor_form_is_portal_changed() -> None:
    with pytest.raises(PortalChanged, match="second-factor|verification"):
        parse_second_factor(page("espace_client.html"))


def test_second_factor_refusals() -> None:
    wrong = second_factor_refusal(page("verification_erreur.html"))
    waiting = second_factor_refusal(page("verification_attente.html"))
    dropped = second_factor_refusal(page("connexion_verification_annulee.html"))
    unknown = second_factor_refusal(page("espace_client.html"))

    assert type(wrong) is WrongSecondFactor and "Code incorrect. Il vous reste 4 essais." in str(wrong)
    assert type(waiting) is WrongSecondFactor and "not approved yet" in str(waiting)
    assert type(dropped) is AwaitingSecondFactor and "too many wrong codes" in str(dropped)
    assert isinstance(unknown, PortalChanged)
