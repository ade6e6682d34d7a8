"""Papeterie Dupont: a server-rendered portal; login form with a CSRF token, invoices in a table of ten rows a page.

Login only checks that the portal let us in (its address and logout link); the invoice table is
checked by the listing, so that a redesigned list fails there, with a trace of the logged-in pages.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal

from bs4 import BeautifulSoup

from connectors.base import Credentials, PageSpec, PortalConnector, Provider, RemoteDocument
from glaneur.errors import (
    AccountLocked,
    ActionNeeded,
    CredentialsExpired,
    GlaneurError,
    PortalChanged,
    WrongCredentials,
)

provider = Provider(
    slug="papeterie-dupont",
    name="Papeterie Dupont",
    default_url="http://127.0.0.1:8701",
    login_fields=("login", "password"),
    second_factor_kinds=(),
    description="Office supplies: monthly PDF invoices in the client area (espace client).",
)

_AMOUNT = re.compile(r"(-?)(\d{1,3}(?:[ \u00a0\u202f]?\d{3})*),(\d{2})\s*€")
_COLUMNS = ["Numéro", "Date", "Montant TTC"]


def parse_amount(text: str) -> Decimal:
    """``1 234,56 €`` (normal, non-breaking or narrow space between thousands) -> ``Decimal('1234.56')``."""
    match = _AMOUNT.fullmatch(text.strip())
    if match is None:
        raise PortalChanged(f"{provider.name}: unexpected amount {text!r}, expected a French amount like '1 234,56 €'.")
    sign, units, cents = match.groups()
    return Decimal(f"{sign}{re.sub(r'[^0-9]', '', units)}.{cents}")


def parse_date(text: str) -> date:
    try:
        return datetime.strptime(text.strip(), "%d/%m/%Y").date()
    except ValueError:
        raise PortalChanged(f"{provider.name}: unexpected date {text!r}, expected dd/mm/yyyy.") from None


def parse_invoice_rows(html: str) -> list[RemoteDocument]:
    """The invoices of one page of the list, in the portal's order (newest first)."""
    table = BeautifulSoup(html, "html.parser").select_one("table#factures")
    if table is None:
        raise PortalChanged(f"{provider.name}: the invoice list has no table#factures.")
    columns = [th.get_text(strip=True) for th in table.select("thead th")]
    if columns[: len(_COLUMNS)] != _COLUMNS:
        raise PortalChanged(f"{provider.name}: invoice table columns are {columns}, expected {_COLUMNS} first.")
    documents = []
    for row in table.select("tbody tr"):
        cells = row.find_all("td")
        link = row.select_one("a.pdf[href]")
        if len(cells) < len(_COLUMNS) or link is None:
            raise PortalChanged(
                f"{provider.name}: an invoice row without its cells and a.pdf link: {row.get_text(' ', strip=True)!r}."
            )
        reference = cells[0].get_text(strip=True)
        documents.append(
            RemoteDocument(
                reference=reference,
                document_date=parse_date(cells[1].get_text()),
                download_url=str(link["href"]),
                amount=parse_amount(cells[2].get_text()),
                label=f"Facture {reference}",
            )
        )
    return documents


def next_page_url(html: str) -> str | None:
    link = BeautifulSoup(html, "html.parser").select_one("a.next[href]")
    return str(link["href"]) if link else None


def login_refusal(html: str) -> GlaneurError:
    """Why the login page came back: a locked account, wrong credentials, or a message this connector does not know."""
    soup = BeautifulSoup(html, "html.parser")
    if locked := soup.select_one(".alert-locked"):
        return AccountLocked(f"{provider.name}: {locked.get_text(' ', strip=True)}")
    if soup.select_one(".alert-error"):
        return WrongCredentials(f"{provider.name} refused the login or password.")
    return PortalChanged(f"{provider.name}: the login page came back without .alert-error or .alert-locked.")


class PapeterieDupont(PortalConnector):
    provider = provider
    pages = {
        "login": PageSpec(r"/login", "form#login input[name=csrf_token]"),
        "home": PageSpec(r"/factures", "a[href='/logout']"),
        "invoices": PageSpec(r"/factures", "table#factures"),
        "terms": PageSpec(r"/cgv", "form#cgv"),
        "new_password": PageSpec(r"/mot-de-passe-expire", "form#nouveau-mot-de-passe"),
    }

    def login(self, credentials: Credentials) -> None:
        self.goto("/login")
        self.expect_page("login")
        self.page.fill("form#login input[name=username]", credentials.login)
        self.page.fill("form#login input[name=password]", credentials.password)
        with self.page.expect_navigation() as navigation:
            self.page.click("form#login button[type=submit]")
        self.check_response(navigation.value, what="the login form")
        landed = self.expect_page("home", "login", "terms", "new_password")
        if landed == "login":
            raise login_refusal(self.page.content())
        if landed == "terms":  # only the account holder may accept: never click "Accepter" for them
            raise ActionNeeded(f"{provider.name} asks the account holder to accept its new terms (CGV) on the portal.")
        if landed == "new_password":
            raise CredentialsExpired(f"{provider.name} says the password has expired and asks for a new one.")

    def list_documents(self, since: date | None) -> list[RemoteDocument]:
        documents: list[RemoteDocument] = []
        self.goto("/factures?page=1")
        while True:
            self.expect_page("invoices")
            html = self.page.content()
            rows = parse_invoice_rows(html)
            documents += [row for row in rows if since is None or row.document_date >= since]
            next_url = next_page_url(html)
            if next_url is None or (since is not None and any(row.document_date < since for row in rows)):
                return documents
            self.goto(next_url)
