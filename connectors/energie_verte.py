"""Énergie Verte: the client area is an HTML shell whose script loads the invoices from a JSON API.

The connector checks it reached the client area, then asks the same API through the logged-in
context (``page.request``) instead of scraping what the script rendered: the JSON is the
portal's own data, and parsing it is a pure function. As for Papeterie Dupont, login only checks
that the portal let us in; the listing checks the invoice list.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal, InvalidOperation

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
    slug="energie-verte",
    name="Énergie Verte",
    default_url="http://127.0.0.1:8702",
    login_fields=("email", "password"),
    second_factor_kinds=(),
    description="Electricity supplier: monthly PDF invoices; the client area logs in with an e-mail address.",
)


def parse_invoices_json(text: str) -> list[RemoteDocument]:
    """The ``/api/factures`` answer as documents, newest first."""
    try:
        data = json.loads(text, parse_float=Decimal)
    except ValueError:
        raise PortalChanged(f"{provider.name}: the invoice API did not answer JSON: {text[:80]!r}.") from None
    invoices = data.get("factures") if isinstance(data, dict) else None
    if not isinstance(invoices, list):
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise PortalChanged(f"{provider.name}: the invoice API answered without a 'factures' list (found {found}).")
    documents = []
    for item in invoices:
        try:
            documents.append(
                RemoteDocument(
                    reference=str(item["numero"]),
                    document_date=date.fromisoformat(item["date"]),
                    download_url=str(item["pdf"]),
                    amount=Decimal(str(item["montant_ttc"])),
                    currency=str(item.get("devise", "EUR")),
                    label=f"Facture {item['numero']}",
                )
            )
        except (KeyError, TypeError, ValueError, InvalidOperation):
            raise PortalChanged(
                f"{provider.name}: an invoice without numero, date, montant_ttc and pdf: {str(item)[:200]}."
            ) from None
    return sorted(documents, key=lambda document: document.document_date, reverse=True)


def login_refusal(html: str) -> GlaneurError:
    """Why the login page came back; the portal says it in one ``p.erreur``, locked accounts included."""
    error = BeautifulSoup(html, "html.parser").select_one("p.erreur")
    if error is None:
        return PortalChanged(f"{provider.name}: the login page came back without a p.erreur message.")
    message = error.get_text(" ", strip=True)
    if "bloqué" in message.lower():
        return AccountLocked(f"{provider.name}: {message}")
    return WrongCredentials(f"{provider.name} refused the e-mail address or password.")


class EnergieVerte(PortalConnector):
    provider = provider
    pages = {
        "login": PageSpec(r"/connexion", "form#connexion input[name=csrf]"),
        "home": PageSpec(r"/espace-client", "a[href='/deconnexion']"),
        "invoices": PageSpec(r"/espace-client", "section#espace-client ul#factures"),
        "terms": PageSpec(r"/conditions-generales", "form#acceptation"),
        "new_password": PageSpec(r"/securite/mot-de-passe", "form#nouveau-mot-de-passe"),
    }

    def login(self, credentials: Credentials) -> None:
        self.goto("/connexion")
        self.expect_page("login")
        self.page.fill("form#connexion input[name=email]", credentials.login)
        self.page.fill("form#connexion input[name=mot_de_passe]", credentials.password)
        with self.page.expect_navigation() as navigation:
            self.page.click("form#connexion button[type=submit]")
        self.check_response(navigation.value, what="the login form")
        landed = self.expect_page("home", "login", "terms", "new_password")
        if landed == "login":
            raise login_refusal(self.page.content())
        if landed == "terms":  # only the account holder may accept: never click "Accepter" for them
            raise ActionNeeded(f"{provider.name} asks the account holder to accept its new terms on the portal.")
        if landed == "new_password":
            raise CredentialsExpired(f"{provider.name} says the password has expired and asks for a new one.")

    def list_documents(self, since: date | None) -> list[RemoteDocument]:
        self.goto("/espace-client")
        self.expect_page("invoices")
        query = f"?depuis={since.isoformat()}" if since else ""
        response = self.page.request.get(self.url(f"/api/factures{query}"))
        self.check_response(response, what="the invoice list API")
        return [doc for doc in parse_invoices_json(response.text()) if since is None or doc.document_date >= since]
