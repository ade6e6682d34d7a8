"""Papeterie Dupont: a server-rendered portal; login form with a CSRF token, invoices in a table of ten rows a page.

Login only checks that the portal let us in (its address and logout link); the invoice table is
checked by the listing, so that a redesigned list fails there, with a trace of the logged-in pages.

Some accounts have a second factor on ``/double-authentification``: a TOTP, a code sent by SMS
(with a "Renvoyer le code" form) or an approval in the app ("J'ai validé"). The page says which
by its form; the login leaves the browser there and returns the challenge.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal

from bs4 import BeautifulSoup

from connectors.base import (
    FormPortalConnector,
    PageSpec,
    Pagination,
    Provider,
    RemoteDocument,
    SecondFactorChallenge,
    SecondFactorKind,
)
from glaneur.errors import (
    AccountLocked,
    AwaitingSecondFactor,
    GlaneurError,
    PortalChanged,
    WrongCredentials,
    WrongSecondFactor,
)

provider = Provider(
    slug="papeterie-dupont",
    name="Papeterie Dupont",
    default_url="http://127.0.0.1:8701",
    login_fields=("login", "password"),
    second_factor_kinds=(SecondFactorKind.TOTP, SecondFactorKind.CODE, SecondFactorKind.APP),
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


def parse_second_factor(html: str) -> SecondFactorChallenge:
    """What the second-factor page asks: no code field is an app approval, a resend form a code it sent, else a TOTP."""
    soup = BeautifulSoup(html, "html.parser")
    form, prompt = soup.select_one("form#double-authentification"), soup.select_one("p.consigne")
    if form is None or prompt is None:
        raise PortalChanged(
            f"{provider.name}: the second-factor page has no form#double-authentification and p.consigne."
        )
    if form.select_one("input[name=code]") is None:
        kind = SecondFactorKind.APP
    elif soup.select_one("form#renvoi"):
        kind = SecondFactorKind.CODE
    else:
        kind = SecondFactorKind.TOTP
    return SecondFactorChallenge(kind, prompt.get_text(" ", strip=True))


def second_factor_refusal(html: str) -> GlaneurError:
    """Why the answer did not log in: refused or not approved yet (same page), or the login dropped (login page)."""
    soup = BeautifulSoup(html, "html.parser")
    if dropped := soup.select_one(".alert-double"):
        return AwaitingSecondFactor(
            f"{provider.name} cancelled the login after too many wrong codes ({dropped.get_text(' ', strip=True)}); "
            "the next run logs in again."
        )
    if waiting := soup.select_one(".alert-attente"):
        return WrongSecondFactor(f"{provider.name}: not approved yet in the app ({waiting.get_text(' ', strip=True)}).")
    error = soup.select_one(".alert-error")
    if error is not None and soup.select_one("form#double-authentification"):
        return WrongSecondFactor(f"{provider.name} refused the code: {error.get_text(' ', strip=True)}")
    return PortalChanged(f"{provider.name}: the second-factor answer came back without .alert-error or .alert-attente.")


class PapeterieDupont(FormPortalConnector):
    provider = provider
    pages = {
        "login": PageSpec(r"/login", "form#login input[name=csrf_token]"),
        "home": PageSpec(r"/factures", "a[href='/logout']"),
        "invoices": PageSpec(r"/factures", "table#factures"),
        "second_factor": PageSpec(r"/double-authentification", "form#double-authentification"),
        "code_expired": PageSpec(r"/double-authentification", ".code-expire"),
        "terms": PageSpec(r"/cgv", "form#cgv"),
        "new_password": PageSpec(r"/mot-de-passe-expire", "form#nouveau-mot-de-passe"),
    }
    login_path = "/login"
    login_form, login_field, password_field = "form#login", "username", "password"
    second_factor_form = "form#double-authentification"
    home_path = "/factures"
    terms_name = "new terms (CGV)"
    resumable_second_factor = True  # the pending login lives in its pd_double_auth cookie
    login_refusal = staticmethod(login_refusal)
    parse_second_factor = staticmethod(parse_second_factor)
    second_factor_refusal = staticmethod(second_factor_refusal)

    def list_documents(self, since: date | None) -> list[RemoteDocument]:
        documents: list[RemoteDocument] = []
        pagination = Pagination(self.provider.name, self.max_list_pages)
        self.goto("/factures?page=1")
        while True:
            self.expect_page("invoices")
            html = self.page.content()
            rows = parse_invoice_rows(html)
            pagination.visit(self.page.url, rows)
            documents += [row for row in rows if since is None or row.document_date >= since]
            next_url = next_page_url(html)
            if next_url is None or (since is not None and any(row.document_date < since for row in rows)):
                return documents
            self.goto(next_url)
