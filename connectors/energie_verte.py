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
    Credentials,
    PageSpec,
    PortalConnector,
    Provider,
    RemoteDocument,
    SecondFactorChallenge,
    SecondFactorKind,
)
from glaneur.errors import (
    AccountLocked,
    ActionNeeded,
    AwaitingSecondFactor,
    CredentialsExpired,
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


class EnergieVerte(PortalConnector):
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
    after_login = ("home", "second_factor", "login", "terms", "new_password")  # where a submitted login may land

    def login(self, credentials: Credentials) -> SecondFactorChallenge | None:
        self.goto("/connexion")
        self.expect_page("login")
        self.page.fill("form#connexion input[name=email]", credentials.login)
        self.page.fill("form#connexion input[name=mot_de_passe]", credentials.password)
        self.submit("form#connexion button[type=submit]", what="the login form")
        landed = self.expect_page(*self.after_login)
        if landed == "login":
            raise login_refusal(self.page.content())
        return self._arrived(landed)

    def answer_second_factor(
        self, challenge: SecondFactorChallenge, answer: str | None
    ) -> SecondFactorChallenge | None:
        self.expect_page("second_factor")
        if challenge.kind is not SecondFactorKind.APP:
            self.page.fill("form#verification input[name=code]", self.code_answer(challenge, answer))
        self.submit("form#verification button[type=submit]", what="the verification form")
        landed = self.expect_page("code_expired", *self.after_login)
        if landed == "code_expired":
            self.submit("form#renvoi button[type=submit]", what="the request for a new code")
            self.expect_page("second_factor")
            raise WrongSecondFactor(f"{provider.name}: the code had expired; the portal sent a new one.")
        if landed in ("second_factor", "login"):  # the same page with the portal's complaint, or dropped
            raise second_factor_refusal(self.page.content())
        return self._arrived(landed)

    def is_logged_in(self) -> bool:
        self.goto("/espace-client")
        landed = self.expect_page("home", "login", "terms", "new_password")
        return landed != "login" and self._arrived(landed) is None

    def _arrived(self, landed: str) -> SecondFactorChallenge | None:
        """Past the password: logged in (None), a second factor to answer, or a step for the account holder."""
        if landed == "second_factor":
            return parse_second_factor(self.page.content())
        if landed == "terms":  # only the account holder may accept: never click "Accepter" for them
            raise ActionNeeded(f"{provider.name} asks the account holder to accept its new terms on the portal.")
        if landed == "new_password":
            raise CredentialsExpired(f"{provider.name} says the password has expired and asks for a new one.")
        return None

    def list_documents(self, since: date | None) -> list[RemoteDocument]:
        self.goto("/espace-client")
        self.expect_page("invoices")
        query = f"?depuis={since.isoformat()}" if since else ""
        response = self.page.request.get(self.url(f"/api/factures{query}"))
        self.check_response(response, what="the invoice list API")
        return [doc for doc in parse_invoices_json(response.text()) if since is None or doc.document_date >= since]
