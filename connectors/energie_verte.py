"""Énergie Verte: the client area is an HTML shell whose script loads the invoices from a JSON API.

The connector checks it reached the client area, then asks the same API through the logged-in
context (``page.request``) instead of scraping what the script rendered: the JSON is the
portal's own data, and parsing it is a pure function. As for Papeterie Dupont, login only checks
that the portal let us in; the listing checks the invoice list.

Second factor on ``/connexion/verification``: a TOTP, a code sent by e-mail (with a "Renvoyer le
code" form) or an approval in the app ("J'ai validé"); the login leaves the browser there.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal, InvalidOperation

from bs4 import BeautifulSoup

from connectors.base import (
    FormPortalConnector,
    PageSpec,
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
    slug="energie-verte",
    name="Énergie Verte",
    default_url="http://127.0.0.1:8702",
    login_fields=("email", "password"),
    second_factor_kinds=(SecondFactorKind.TOTP, SecondFactorKind.CODE, SecondFactorKind.APP),
    description="Electricity supplier: monthly PDF invoices; the client area logs in with an e-mail address.",
)


def parse_invoices_json(text: str) -> list[RemoteDocument]:
    """The ``/api/factures`` answer as documents, newest first."""
    try:
        data = json.loads(text, parse_float=Decimal)
    except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
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


def parse_second_factor(html: str) -> SecondFactorChallenge:
    """What the verification page asks: no code field is an app approval, a resend form a code it sent, else a TOTP."""
    soup = BeautifulSoup(html, "html.parser")
    form, prompt = soup.select_one("form#verification"), soup.select_one("p.consigne")
    if form is None or prompt is None:
        raise PortalChanged(f"{provider.name}: the verification page has no form#verification and p.consigne.")
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
    error = soup.select_one("p.erreur")
    message = error.get_text(" ", strip=True) if error else ""
    if error is not None and "verification-annulee" in error.get("class", []):
        return AwaitingSecondFactor(
            f"{provider.name} cancelled the login after too many wrong codes ({message}); the next run logs in again."
        )
    if error is None or soup.select_one("form#verification") is None:
        return PortalChanged(f"{provider.name}: the verification answer came back without a p.erreur message.")
    if "attente" in error.get("class", []):
        return WrongSecondFactor(f"{provider.name}: not approved yet in the app ({message}).")
    return WrongSecondFactor(f"{provider.name} refused the code: {message}")


class EnergieVerte(FormPortalConnector):
    provider = provider
    pages = {
        "login": PageSpec(r"/connexion", "form#connexion input[name=csrf]"),
        "home": PageSpec(r"/espace-client", "a[href='/deconnexion']"),
        "invoices": PageSpec(r"/espace-client", "section#espace-client ul#factures"),
        "second_factor": PageSpec(r"/connexion/verification", "form#verification"),
        "code_expired": PageSpec(r"/connexion/verification", "p.erreur.code-expire"),
        "terms": PageSpec(r"/conditions-generales", "form#acceptation"),
        "new_password": PageSpec(r"/securite/mot-de-passe", "form#nouveau-mot-de-passe"),
    }
    login_path = "/connexion"
    login_form, login_field, password_field = "form#connexion", "email", "mot_de_passe"
    second_factor_form, second_factor_form_name = "form#verification", "the verification form"
    home_path = "/espace-client"
    login_refusal = staticmethod(login_refusal)
    parse_second_factor = staticmethod(parse_second_factor)
    second_factor_refusal = staticmethod(second_factor_refusal)

    def list_documents(self, since: date | None) -> list[RemoteDocument]:
        self.goto("/espace-client")
        self.expect_page("invoices")
        query = f"?depuis={since.isoformat()}" if since else ""
        response = self.api_get(f"/api/factures{query}", what="the invoice list API")
        return [doc for doc in parse_invoices_json(response.text()) if since is None or doc.document_date >= since]
