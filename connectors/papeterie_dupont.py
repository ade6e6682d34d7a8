"""Papeterie Dupont: a server-rendered portal; login form with a CSRF token, invoices in a table of ten rows a page.

Login only checks that the portal let us in (its logout link); the invoice table is checked by
the listing, so that a redesigned list fails there, with a trace of the logged-in pages. Some
accounts have a second factor on ``/double-authentification`` (TOTP, SMS code, app approval).
"""

from connectors.kit import Connector, HtmlTable, LoginForm, NextLink, Page, Provider, SecondFactorForm, SecondFactorKind
from glaneur.errors import AccountLocked, AwaitingSecondFactor, WrongCredentials, WrongSecondFactor

provider = Provider(
    slug="papeterie-dupont",
    name="Papeterie Dupont",
    default_url="http://127.0.0.1:8701",
    login_fields=("login", "password"),
    second_factor_kinds=(SecondFactorKind.TOTP, SecondFactorKind.CODE, SecondFactorKind.APP),
    description="Office supplies: monthly PDF invoices in the client area (espace client).",
)


class PapeterieDupont(Connector):
    provider = provider
    login_form = LoginForm(
        "/login",
        "form#login",
        login="username",
        password="password",
        marker="form#login input[name=csrf_token]",
        refusals={".alert-locked": AccountLocked, ".alert-error": WrongCredentials},
    )
    second_factor = SecondFactorForm(
        "/double-authentification",
        "form#double-authentification",
        prompt="p.consigne",
        resend="form#renvoi",
        expired=".code-expire",
        refusals={
            ".alert-double": AwaitingSecondFactor,  # back on the login page: the pending login was dropped
            ".alert-attente": WrongSecondFactor,
            ".alert-error": WrongSecondFactor,
        },
    )
    home = Page("/factures", "a[href='/logout']")
    terms = Page("/cgv", "form#cgv", name="new terms (CGV)")
    password_expired = Page("/mot-de-passe-expire", "form#nouveau-mot-de-passe")
    listing = HtmlTable(
        "/factures?page=1",
        "table#factures",
        columns={"Numéro": "reference", "Date": "document_date", "Montant TTC": "amount"},
        link="a.pdf",
        pages=NextLink("a.next"),
    )
