"""The connector kit's pieces, offline: parsers, the table and JSON listings, refusals, pages not declared."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from connectors.energie_verte import EnergieVerte
from connectors.kit import (
    Connector,
    DetailTotal,
    HtmlTable,
    JsonList,
    LoginForm,
    NextLink,
    Page,
    PageNumbers,
    Provider,
    amounts,
    dates,
    parse_amount,
    parse_date,
)
from connectors.papeterie_dupont import PapeterieDupont
from glaneur.errors import AccountLocked, PortalChanged, WrongCredentials

PAGES = Path(__file__).resolve().parents[1] / "fixtures" / "pages"


def page(path: str) -> str:
    return (PAGES / path).read_text(encoding="utf-8")


# -- parsers --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        ("1 234,56 €", "1234.56"),
        ("1\u00a0234,56\u00a0€", "1234.56"),
        ("1\u202f234,56 €", "1234.56"),
        ("  66,06 €\n", "66.06"),
        ("12 345 678,90 €", "12345678.90"),
        ("1234,56 €", "1234.56"),
        ("1.234,56", "1234.56"),
        ("1.234,56 EUR", "1234.56"),
        ("-12,00 €", "-12.00"),
        ("− 12,00 €", "-12.00"),
        ("0,00 €", "0.00"),
        ("12,5 €", "12.5"),
        ("€ 42", "42"),
    ],
)
def test_french_amounts(text: str, amount: str) -> None:
    assert parse_amount(text) == Decimal(amount)


@pytest.mark.parametrize(
    ("text", "amount"),
    [("$\u00a01,250.00", "1250.00"), ("1,234.56 USD", "1234.56"), ("0.00", "0.00"), ("1 234.5 CHF", "1234.5")],
)
def test_amounts_with_a_decimal_point(text: str, amount: str) -> None:
    assert amounts(".")(text) == Decimal(amount)


@pytest.mark.parametrize("text", ["EUR 1,082.58", "12.50 €", "1,234", "12,345 €", "", "gratuit", "12,345,6"])
def test_an_amount_in_another_format_is_refused_naming_the_expected_one(text: str) -> None:
    with pytest.raises(ValueError, match="expected an amount like '1 234,56 €'"):
        parse_amount(text)


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("2026-01-12", date(2026, 1, 12)),
        ("2026-01-12T09:30:00Z", date(2026, 1, 12)),
        ("12/01/2026", date(2026, 1, 12)),
        ("2/1/2026", date(2026, 1, 2)),
        ("12.01.2026", date(2026, 1, 12)),
        ("12-01-26", date(2026, 1, 12)),
        ("12 janv. 2026", date(2026, 1, 12)),
        ("1er janvier 2026", date(2026, 1, 1)),
        ("5 févr. 2026", date(2026, 2, 5)),
        ("14 juillet 2026", date(2026, 7, 14)),
        ("3 juin 2026", date(2026, 6, 3)),
        ("15 AOÛT 2026", date(2026, 8, 15)),
        ("  3 déc.  2025 ", date(2025, 12, 3)),
        ("12 Jan 2026", date(2026, 1, 12)),
        ("Jan 12, 2026", date(2026, 1, 12)),
        ("September 3, 2026", date(2026, 9, 3)),
    ],
)
def test_dates_in_the_common_formats(text: str, day: date) -> None:
    assert parse_date(text) == day


def test_numeric_dates_month_first_when_the_portal_writes_them_so() -> None:
    assert dates("mdy")("01/15/2026") == date(2026, 1, 15)
    assert parse_date("01/12/2026") == date(2026, 12, 1)


@pytest.mark.parametrize(
    "text", ["", "32/01/2026", "01/13/2026", "12 jui 2026", "12 marteau 2026", "demain", "2026/01/12"]
)
def test_an_unreadable_date_is_refused_naming_the_expected_formats(text: str) -> None:
    with pytest.raises(ValueError, match="expected dd/mm/yyyy, yyyy-mm-dd"):
        parse_date(text)


# -- the HTML table listing -----------------------------------------------------------------------------------


LIST = "papeterie-dupont/factures_page1.html"


def test_rows_read_the_same_without_the_tbody_chromium_adds() -> None:
    html = page(LIST)
    without = html.replace("<tbody>", "").replace("</tbody>", "")
    assert "<tbody>" not in without

    assert PapeterieDupont.parse_listing(without) == PapeterieDupont.parse_listing(html)
    assert len(PapeterieDupont.parse_listing(without)) == 10


def test_columns_are_found_by_their_header_wherever_they_are() -> None:
    soup = BeautifulSoup(page(LIST), "html.parser")
    for row in soup.select("table#factures tr"):
        cells = row.find_all(["th", "td"], recursive=False)
        cells[0].insert_before(cells[2].extract())  # Montant TTC first

    assert PapeterieDupont.parse_listing(str(soup)) == PapeterieDupont.parse_listing(page(LIST))


def test_a_renamed_column_is_portal_changed_naming_the_expected_ones() -> None:
    html = page(LIST).replace("<th>Montant TTC</th>", "<th>Total</th>")

    expected = r"expected \['Numéro', 'Date', 'Montant TTC'\] \(missing \['Montant TTC'\]\)"
    with pytest.raises(PortalChanged, match=expected):
        PapeterieDupont.parse_listing(html)


def test_a_row_without_its_download_link_is_portal_changed() -> None:
    html = page(LIST).replace('class="pdf"', 'class="download"', 1)

    with pytest.raises(PortalChanged, match="a.pdf link: 'PD-1001-0023"):
        PapeterieDupont.parse_listing(html)


def test_an_unreadable_cell_is_portal_changed_naming_row_column_and_format() -> None:
    html = page(LIST).replace("<td>05/10/2026</td>", "<td>le 5 octobre</td>", 1)

    with pytest.raises(PortalChanged, match=r"invoice row 1, column 'Date': unexpected date 'le 5 octobre'"):
        PapeterieDupont.parse_listing(html)


def test_an_empty_list_is_no_invoice_not_an_error() -> None:
    soup = BeautifulSoup(page(LIST), "html.parser")
    for row in soup.select("table#factures tbody tr"):
        row.decompose()

    assert PapeterieDupont.parse_listing(str(soup)) == []


def test_pagination_by_next_link_or_by_page_numbers() -> None:
    soup = BeautifulSoup(page(LIST), "html.parser")
    last = BeautifulSoup(page("papeterie-dupont/factures_page3.html"), "html.parser")
    here = "http://portal.test/factures?page=1"

    assert NextLink("a.next").next(soup, here, 1) == "http://portal.test/factures?page=2"
    assert NextLink("a.next").next(last, here, 3) is None
    assert PageNumbers("/factures?page={n}").next(soup, here, 1) == "http://portal.test/factures?page=2"
    assert PageNumbers("/factures?page={n}").next(last, "http://portal.test/factures?page=3", 3) is None


# -- item 5: a list showing the amount due, not the total -------------------------------------------------------

AMOUNT_DUE = HtmlTable(
    "/my/invoices",
    "table.o_portal_my_doc_table",
    columns={
        "Invoice #": "reference",
        "Invoice Date": ("document_date", dates("mdy")),
        "Amount Due": ("amount_due", amounts(".")),
    },
    link="a.o_download_btn",
)


def test_an_amount_due_column_is_never_recorded_as_the_amount() -> None:
    """Paid invoices show 0.00 there: the amount stays empty rather than wrong."""
    documents = AMOUNT_DUE.parse(page("kit/amount_due_list.html"), "Odoo")

    assert [(d.reference, d.document_date, d.amount) for d in documents] == [
        ("INV/2026/00014", date(2026, 2, 3), None),
        ("INV/2026/00012", date(2026, 1, 15), None),
    ]
    assert documents[1].download_url == "/my/invoices/12?access_token=cd34&report_type=pdf&download=true"
    assert {d.currency for d in documents} == {"USD"}  # the amounts show "$": not filed as euros


def currency_table(amount: str, currency_column: str = "", **listing: object) -> list:
    extra = f"<th>Devise</th>" if currency_column else ""
    cell = f"<td>{currency_column}</td>" if currency_column else ""
    html = (f"<table id=f><tr><th>N°</th><th>Date</th><th>Total</th>{extra}</tr>"
            f"<tr><td>F-1</td><td>2026-01-15</td><td>{amount}</td>{cell}<td><a href=/f1.pdf>PDF</a></td></tr></table>")
    columns: dict = {"N°": "reference", "Date": "document_date", "Total": ("amount", amounts("."))}
    if currency_column:
        columns["Devise"] = "currency"
    return HtmlTable("/factures", "table#f", columns=columns, link="a", **listing).parse(html, "Portail")


def test_the_currency_is_the_one_the_amounts_show_or_the_listings_when_they_show_none() -> None:
    assert [(d.amount, d.currency) for d in currency_table("$1,234.56")] == [(Decimal("1234.56"), "USD")]
    assert [(d.amount, d.currency) for d in currency_table("1,234.56 CHF")] == [(Decimal("1234.56"), "CHF")]
    assert [d.currency for d in currency_table("1,234.56")] == ["EUR"]  # a listing's default
    assert [d.currency for d in currency_table("1,234.56", currency="GBP")] == ["GBP"]
    assert [d.currency for d in currency_table("$1,234.56", currency_column="USD")] == ["USD"]


def test_an_amount_shown_in_another_currency_than_its_rows_is_never_filed() -> None:
    with pytest.raises(PortalChanged, match=r"column 'Total', shows '\$12.00', in USD, but the invoice's currency is EUR"):
        currency_table("$12.00", currency_column="EUR")
    detail = DetailTotal("a", Page("/f/0", "div"), total="tr.o_total td.text-end", parser=amounts("."))
    assert detail.parse(page("kit/amount_due_invoice.html"), "Odoo", "USD") == Decimal("1200.00")
    with pytest.raises(PortalChanged, match="the invoice page's total shows .* in USD, but the invoice's currency is EUR"):
        detail.parse(page("kit/amount_due_invoice.html"), "Odoo", "EUR")


def test_the_total_is_read_on_the_invoice_page_when_declared() -> None:
    detail = DetailTotal("td:first-child a", Page("/my/invoices/0", "div.o_portal_html_view", r"/my/invoices/\d+"),
                         total="tr.o_total td.text-end .oe_currency_value", parser=amounts("."))

    assert detail.parse(page("kit/amount_due_invoice.html"), "Odoo") == Decimal("1200.00")
    with pytest.raises(PortalChanged, match="no tr.o_total"):
        detail.parse(page("kit/amount_due_list.html"), "Odoo")


# -- the JSON listing -----------------------------------------------------------------------------------------


def invoice(**changes: object) -> dict[str, object]:
    item: dict[str, object] = {"numero": "EV1", "date": "2026-01-01", "montant_ttc": 10.5, "devise": "EUR",
                               "pdf": "/api/factures/EV1/pdf"}
    item.update(changes)
    return {key: value for key, value in item.items() if value is not ...}


def api(*items: object) -> str:
    return json.dumps({"factures": list(items)})


def test_json_amounts_are_exact_and_the_currency_is_kept_or_defaults() -> None:
    documents = EnergieVerte.parse_listing(
        api(invoice(numero="A", montant_ttc=0.1), invoice(numero="B", devise="CHF", montant_ttc="1234.56"),
            invoice(numero="C", devise=...), invoice(numero="D", montant_ttc=12))
    )

    assert [(d.reference, d.amount, d.currency) for d in documents] == [
        ("A", Decimal("0.1"), "EUR"), ("B", Decimal("1234.56"), "CHF"), ("C", Decimal("10.5"), "EUR"),
        ("D", Decimal("12"), "EUR"),
    ]


@pytest.mark.parametrize(
    "item",
    [invoice(pdf=...), invoice(date="le 1er"), invoice(montant_ttc="dix euros"), invoice(montant_ttc=None),
     invoice(montant_ttc=True), invoice(numero=""), "EV1"],
)
def test_an_invoice_without_the_known_fields_is_portal_changed(item: object) -> None:
    with pytest.raises(PortalChanged, match="an invoice without numero and date and montant_ttc and pdf"):
        EnergieVerte.parse_listing(api(item))


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("<html><body>Maintenance</body></html>", "did not answer JSON"),
        ("[]", "without a 'factures' list \\(found list\\)"),
        ('{"factures": {"numero": "EV1"}}', "without a 'factures' list \\(found \\['factures'\\]\\)"),
    ],
)
def test_an_answer_that_is_not_the_known_json_is_portal_changed(text: str, words: str) -> None:
    with pytest.raises(PortalChanged, match=words):
        EnergieVerte.parse_listing(text)


def test_a_nested_list_and_a_list_answer() -> None:
    nested = JsonList("/", "main", "/api", {"reference": "id", "document_date": "on", "download_url": "url"},
                      items="data.invoices")
    bare = JsonList("/", "main", "/api", {"reference": "id", "document_date": "on", "download_url": "url"})
    item = {"id": 7, "on": "03/02/2026", "url": "/x.pdf"}

    assert nested.parse(json.dumps({"data": {"invoices": [item]}}), "P")[0].document_date == date(2026, 2, 3)
    assert bare.parse(json.dumps([item]), "P")[0].reference == "7"


# -- a portal without second factor, terms or password-expiry page declares nothing of them ---------------------


class Minimal(Connector):
    provider = Provider(slug="minimal", name="Minimal")
    login_form = LoginForm("/login", "form#login", login="user", password="pass",
                           refusals={".locked": AccountLocked, ".error": WrongCredentials})
    home = Page("/account", "a.logout")
    listing = HtmlTable("/account/invoices", "table", columns={"No": "reference", "Date": "document_date"}, link="a")


def test_a_portal_without_optional_pages_declares_none_of_them() -> None:
    assert set(Minimal.pages) == {"login", "home", "invoices"}
    assert Minimal.pages["login"].marker == "form#login input[name='pass']"
    assert Minimal.pages["invoices"].url == "/account/invoices"


def test_refusals_are_data_tried_in_order_with_the_portal_words() -> None:
    form = '<form id="login"><input name="pass"></form>'
    locked = Minimal.login_refusal(f'<p class="error locked">Trop d\'essais</p>{form}')
    wrong = Minimal.login_refusal(f'<p class="error">Mauvais mot de passe</p>{form}')
    unknown = Minimal.login_refusal(form)

    assert type(locked) is AccountLocked and str(locked) == "Minimal locked the account: Trop d'essais"
    assert type(wrong) is WrongCredentials and str(wrong) == "Minimal refused the login: Mauvais mot de passe"
    assert type(unknown) is PortalChanged and ".locked or .error" in str(unknown)


def test_a_second_factor_on_a_portal_that_declares_none_is_portal_changed() -> None:
    with pytest.raises(PortalChanged, match="does not declare"):
        Minimal.parse_second_factor(page("papeterie-dupont/double_authentification_totp.html"))


def test_a_listing_without_amount_leaves_it_empty() -> None:
    html = "<table><tr><th>No</th><th>Date</th></tr>"
    html += "<tr><td>F1</td><td><a href='/f1.pdf'>12/01/2026</a></td></tr></table>"

    (document,) = Minimal.parse_listing(html)

    assert (document.reference, document.amount, document.download_url) == ("F1", None, "/f1.pdf")


def test_a_listing_missing_a_required_field_is_refused_when_declared() -> None:
    with pytest.raises(TypeError, match="no column gives document_date"):
        HtmlTable("/", "table", columns={"No": "reference", "Total": "amount"}, link="a")
    with pytest.raises(TypeError, match="unknown field 'montant'"):
        HtmlTable("/", "table", columns={"No": "reference", "Date": "document_date", "Total": "montant"}, link="a")
    with pytest.raises(TypeError, match="no key gives download_url"):
        JsonList("/", "main", "/api", {"reference": "id", "document_date": "on"})


# -- columns by position, a download address built from the row, an empty list, an optional detail page ---------


def test_columns_by_position_and_a_download_address_built_from_the_row() -> None:
    listing = HtmlTable("/", "table", columns={0: "reference", 2: "document_date", "Total": "amount"},
                        download="/factures/{reference}/pdf?du={document_date}")
    html = "<table><tr><th></th><th>Client</th><th><img alt=''></th><th>Total</th></tr>"
    html += "<tr><td>FA/001</td><td>ACME</td><td>12/01/2026</td><td>10,00 €</td></tr></table>"

    (document,) = listing.parse(html, "P")

    assert (document.reference, document.document_date, document.amount) == ("FA/001", date(2026, 1, 12), Decimal(10))
    assert document.download_url == "/factures/FA%2F001/pdf?du=2026-01-12"
    with pytest.raises(PortalChanged, match="without its 4 cells"):
        listing.parse(html.replace("<td>ACME</td>", ""), "P")


def test_a_row_link_wins_over_the_built_address_and_one_of_them_is_required() -> None:
    listing = HtmlTable("/", "table", columns={0: "reference", 1: "document_date"}, link="a", download="/f/{reference}")
    html = "<table><tr><td>F1</td><td>12/01/2026</td></tr><tr><td><a href='/x.pdf'>F2</a></td><td>13/01/2026</td></tr>"

    assert [d.download_url for d in listing.parse(html + "</table>", "P")] == ["/f/F1", "/x.pdf"]
    with pytest.raises(TypeError, match="link= or download="):
        HtmlTable("/", "table", columns={0: "reference", 1: "document_date"})
    with pytest.raises(TypeError, match="names 'id'"):
        HtmlTable("/", "table", columns={0: "reference", 1: "document_date"}, download="/f/{id}")


def test_a_json_list_without_download_key_builds_the_address() -> None:
    listing = JsonList("/", "main", "/api", {"reference": "id", "document_date": "on"}, download="/api/{reference}.pdf")

    assert listing.parse(json.dumps([{"id": 7, "on": "2026-02-03"}]), "P")[0].download_url == "/api/7.pdf"


class WithEmptyList(Minimal):
    listing = HtmlTable("/account/invoices", "table", columns={"No": "reference", "Date": "document_date"}, link="a",
                        empty="p.no-invoice")


def test_the_page_shown_in_place_of_an_empty_list_is_declared() -> None:
    assert WithEmptyList.recognise('<p class="no-invoice">Aucune facture</p>', "/account/invoices") == {"no_invoices"}
    assert "no_invoices" not in Minimal.pages


def test_an_optional_detail_total_keeps_rows_without_a_page() -> None:
    detail = Page("/i/0", "main", r"/i/\d+")
    html = "<table><tr><th>No</th><th>Date</th></tr><tr><td><a class='d' href='/i/1'>F1</a></td><td>12/01/2026</td>"
    html += "</tr><tr><td>F2</td><td>13/01/2026</td></tr></table>"
    columns = {"No": "reference", "Date": "document_date"}
    strict = HtmlTable("/", "table", columns, download="/{reference}", total_on_detail=DetailTotal("a.d", detail, "h2"))
    lenient = HtmlTable("/", "table", columns, download="/{reference}",
                        total_on_detail=DetailTotal("a.d", detail, "h2", optional=True))

    with pytest.raises(PortalChanged, match="F2 has no a.d link"):
        strict._detail_links(strict._rows(html, "P"), "http://p.test/", "P")
    assert lenient._detail_links(lenient._rows(html, "P"), "http://p.test/", "P") == {"F1": "http://p.test/i/1"}


def test_the_kit_exports_page_spec() -> None:
    from connectors.base import PageSpec as FromBase
    from connectors.kit import PageSpec

    assert PageSpec is FromBase


def test_a_json_item_read_through_nested_keys_and_its_download_address_from_its_own_keys() -> None:
    listing = JsonList("/", "main", "/api", {"reference": "number", "document_date": "issueDate",
                                             "amount": "total.amount", "currency": "total.currency",
                                             "label": "plan.name?"},
                       items="data", download="/api/v1/invoices/{id}/pdf")
    item = {"id": 9000, "number": "AT-1", "issueDate": "2026-11-05", "total": {"amount": "89.90", "currency": "CHF"}}
    [document] = listing.parse(json.dumps({"data": [item]}), "Alpnet")
    assert (document.reference, document.amount, document.currency, document.label, document.download_url) == (
        "AT-1", Decimal("89.90"), "CHF", "", "/api/v1/invoices/9000/pdf")
    with pytest.raises(PortalChanged, match="an invoice without number and issueDate and total.amount"):
        listing.parse(json.dumps({"data": [item | {"total": "89.90"}]}), "Alpnet")  # the nested object flattened
    with pytest.raises(PortalChanged, match="names a key an invoice lacks"):
        listing.parse(json.dumps({"data": [{k: v for k, v in item.items() if k != "id"}]}), "Alpnet")


def test_a_json_amount_written_with_its_currency_is_recorded_in_it() -> None:
    listing = JsonList("/", "main", "/api", {"reference": "id", "document_date": "on", "amount": "total",
                                             "currency": "currency?"},
                       parsers={"amount": amounts(".")}, download="/api/{reference}.pdf")
    item = {"id": "A-1", "on": "2026-11-05", "total": "CHF 1'089.90"}
    assert [(d.amount, d.currency) for d in listing.parse(json.dumps([item]), "P")] == [(Decimal("1089.90"), "CHF")]
    with pytest.raises(PortalChanged, match="invoice amount shows .* in CHF, but the invoice's currency is EUR"):
        listing.parse(json.dumps([item | {"currency": "EUR"}]), "P")
