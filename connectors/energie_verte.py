"""Énergie Verte: the client area is an HTML shell whose script loads the invoices from a JSON API.

The connector checks it reached the client area, then asks the same API through the logged-in
context instead of scraping what the script rendered: the JSON is the portal's own data.
Second factor on ``/connexion/verification`` (TOTP, e-mailed code, app approval).
"""

from connectors.kit import Connector, JsonList, LoginForm, Page, Provider, SecondFactorForm, SecondFactorKind
from glaneur.errors import AccountLocked, AwaitingSecondFactor, WrongCredentials, WrongSecondFactor

provider = Provider(
    slug="energie-verte",
    name="Énergie Verte",
    default_url="http://127.0.0.1:8702",
    login_fields=("email", "password"),
    second_factor_kinds=(SecondFactorKind.TOTP, SecondFactorKind.CODE, SecondFactorKind.APP),
    description="Electricity supplier: monthly PDF invoices; the client area logs in with an e-mail address.",
)


class EnergieVerte(Connector):
    provider = provider
    login_form = LoginForm(
        "/connexion",
        "form#connexion",
        login="email",
        password="mot_de_passe",
        marker="form#connexion input[name=csrf]",
        refusals={'p.erreur:-soup-contains("bloqué")': AccountLocked, "p.erreur": WrongCredentials},
    )
    second_factor = SecondFactorForm(
        "/connexion/verification",
        "form#verification",
        prompt="p.consigne",
        resend="form#renvoi",
        expired="p.erreur.code-expire",
        name="the verification form",
        refusals={
            "p.erreur.verification-annulee": AwaitingSecondFactor,  # back on the login page: the login was dropped
            "p.erreur": WrongSecondFactor,
        },
    )
    home = Page("/espace-client", "a[href='/deconnexion']")
    terms = Page("/conditions-generales", "form#acceptation")
    password_expired = Page("/securite/mot-de-passe", "form#nouveau-mot-de-passe")
    listing = JsonList(
        "/espace-client",
        "section#espace-client ul#factures",
        url="/api/factures",
        items="factures",
        since_param="depuis",
        fields={
            "reference": "numero",
            "document_date": "date",
            "amount": "montant_ttc",
            "currency": "devise?",
            "download_url": "pdf",
        },
    )
