"""Énergie Verte: the "single page" client area (see :mod:`sandbox.portals`).

Its second factor is at ``/connexion/verification``, bound to a pending-login cookie.
"""

import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets
from functools import partial
from html import escape
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from sandbox.data import (
    ENERGIE_VERTE,
    Account,
    Invoice,
    LoginResult,
    PendingLogin,
    PortalState,
    Scenario,
    SecondFactorResult,
    SessionTicket,
    add_months,
)
from sandbox.portals.controls import control_router, download_path, misbehaviour, odd_download
from sandbox.portals.rate_limit import rate_limiter
from sandbox.portals.responses import Redirect, answer_redirects, pace, pdf_response
from sandbox.portals import second_factor
from sandbox.portals.second_factor import SECOND_FACTOR_DROPPED, second_factor_message

EV_CSRF_COOKIE = "ev_csrf"
EV_SESSION_COOKIE = "ev_session"
EV_PENDING_COOKIE = "ev_verification"  # the login waiting for its second factor


class _Signer:
    """Stateless sessions: the cookie carries its ticket (login, serial, issue time), signed with a secret
    that lives as long as the app. Revocation is the state's watermark on serials: nothing is stored per session."""

    def __init__(self) -> None:
        self._secret = secrets.token_bytes(32)

    def mac(self, value: str) -> str:
        return hmac.new(self._secret, value.encode(), hashlib.sha256).hexdigest()

    def sign(self, ticket: SessionTicket) -> str:
        value = json.dumps([ticket.login, ticket.serial, ticket.issued.isoformat()])
        payload = base64.urlsafe_b64encode(value.encode()).decode()
        return f"{payload}.{self.mac(payload)}"

    def unsign(self, token: str) -> SessionTicket | None:
        payload, _, mac = token.partition(".")
        if not mac or not hmac.compare_digest(mac, self.mac(payload)):
            return None
        login, serial, issued = json.loads(base64.urlsafe_b64decode(payload.encode()))
        return SessionTicket(login, serial, dt.datetime.fromisoformat(issued))


def _ev_page(title: str, body: str, *, status: int = 200, script: str = "") -> HTMLResponse:
    return HTMLResponse(
        f"""<!doctype html>
<html lang="fr"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{escape(title)} | Énergie Verte</title>
<style>body{{font-family:system-ui,sans-serif;margin:0;color:#143}}nav{{background:#2a7;color:#fff;padding:.8em 1.5em}}
main{{padding:1.5em;max-width:46em}}.erreur{{color:#b00;font-weight:bold}}.info{{color:#264}}
label{{display:block;margin:.6em 0}}
#factures li{{margin:.3em 0}}</style></head>
<body><nav>🌱 Énergie Verte</nav>
<main>
{body}
</main>{script}</body></html>
""",
        status,
    )


def _ev_expired() -> HTMLResponse:
    """A form sent without its token, or with another session's."""
    return _ev_page("Erreur", '<p class="erreur">Votre session a expiré, rechargez la page.</p>', status=400)


def _ev_login_page(csrf: str, error: str = "", status: int = 200, *, css: str = "") -> HTMLResponse:
    message = f'<p class="{" ".join(("erreur", css)).strip()}">{escape(error)}</p>' if error else ""
    return _ev_page(
        "Connexion",
        f"""<h1>Mon espace client</h1>
{message}
<form id="connexion" method="post" action="/connexion">
<input type="hidden" name="csrf" value="{escape(csrf)}">
<label>Adresse e-mail <input type="email" name="email" autocomplete="email" required></label>
<label>Mot de passe <input type="password" name="mot_de_passe" autocomplete="current-password" required></label>
<button type="submit">Me connecter</button>
</form>""",
        status=status,
    )


def _ev_verification_page(
    state: PortalState, pending: PendingLogin, result: SecondFactorResult | None, info: str
) -> HTMLResponse:
    """The page, with the portal's complaint after an answer (``result``) or ``info``."""
    kind = {SecondFactorResult.EXPIRED: " code-expire", SecondFactorResult.NOT_APPROVED: " attente"}.get(result, "")
    message = f'<p class="erreur{kind}">{escape(second_factor_message(result, pending))}</p>' if result else ""
    message += f'<p class="info">{escape(info)}</p>' if info else ""
    return _ev_page(
        "Vérification",
        f"""<h1>Vérifions qu'il s'agit bien de vous</h1>
{message}
{second_factor.second_factor_form(state, pending, form_id="verification", action="/connexion/verification",
                                  token_field="jeton", label="Code reçu", submit="Vérifier")}""",
    )


_EV_SHELL_SCRIPT = """<script>
(() => {
  const depuis = document.getElementById('depuis');
  const liste = document.getElementById('factures');
  const etat = document.getElementById('etat');
  const euros = (montant, devise) => new Intl.NumberFormat('fr-FR', {style: 'currency', currency: devise}).format(montant);
  async function charger() {
    etat.textContent = 'Chargement…';
    const reponse = await fetch('/api/factures?depuis=' + encodeURIComponent(depuis.value), {credentials: 'same-origin'});
    if (!reponse.ok) { etat.textContent = 'Service momentanément indisponible.'; return; }
    const { factures } = await reponse.json();
    liste.replaceChildren(...factures.map((facture) => {
      const item = document.createElement('li');
      const lien = document.createElement('a');
      lien.href = facture.pdf;
      lien.textContent = 'Facture ' + facture.numero;
      item.append(lien, ' du ' + facture.date.split('-').reverse().join('/') + ' : ' + euros(facture.montant_ttc, facture.devise));
      return item;
    }));
    etat.textContent = factures.length ? '' : 'Aucune facture sur la période.';
  }
  depuis.addEventListener('change', charger);
  charger();
})();
</script>"""


def _ev_shell(account: Account, default_since: dt.date) -> HTMLResponse:
    if account.scenario is Scenario.CHANGED_LAYOUT:  # the redesigned client area, in English, API v2
        body = f"""<div id="app" data-customer="{escape(account.customer.name)}">
<h1>Welcome back</h1><a class="sign-out" href="/deconnexion">Sign out</a>
<section class="invoices-v2"><h2>Your bills</h2><div class="bill-list" data-src="/api/factures"></div></section>
</div>"""
        return _ev_page("Dashboard", body)
    body = f"""<h1>Bonjour {escape(account.customer.name)}</h1>
<p><a href="/deconnexion">Me déconnecter</a></p>
<section id="espace-client">
<h2>Mes factures</h2>
<label>Depuis le <input type="date" id="depuis" value="{default_since.isoformat()}"></label>
<p id="etat"></p>
<ul id="factures"></ul>
</section>"""
    return _ev_page("Espace client", body, script=_EV_SHELL_SCRIPT)


def _ev_invoices_json(
    account: Account, invoices: list[Invoice], links: dict[str, str] | None = None,
    amounts: dict[str, str] | None = None,
) -> JSONResponse:
    """``links`` replaces some invoices' download links, ``amounts`` some amounts (a string where a number goes)."""
    links, amounts = links or {}, amounts or {}
    if account.scenario is Scenario.CHANGED_LAYOUT:
        bills = [
            {
                "id": i.number,
                "issuedOn": i.issued.isoformat(),
                "total": {"amount": str(i.total_ttc), "currency": "EUR"},
                "links": {"pdf": f"/api/factures/{i.number}/pdf"},
            }
            for i in invoices
        ]
        return JSONResponse({"apiVersion": 2, "data": {"bills": bills}})
    factures = [
        {
            "numero": i.number,
            "date": i.issued.isoformat(),
            "montant_ttc": amounts.get(i.number, float(i.total_ttc)),  # a JSON number, as the real API sends it
            # (or the text a test asked for, where the number goes)
            "devise": "EUR",
            "pdf": links.get(i.number) or download_path("/api/factures", i.number),
        }
        for i in invoices
    ]
    return JSONResponse({"factures": factures})


def energie_verte_app() -> FastAPI:
    """A fresh Énergie Verte portal with its own state."""
    state = PortalState(ENERGIE_VERTE)
    signer = _Signer()
    app = FastAPI(title="Énergie Verte (sandbox)", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.portal = state
    app.middleware("http")(rate_limiter(state))

    answer_redirects(app)

    def session_login(request: Request) -> str | None:
        ticket = signer.unsign(request.cookies.get(EV_SESSION_COOKIE, ""))
        return ticket.login if ticket is not None and state.session_valid(ticket) else None

    def signed_in(login: str) -> Response:
        return second_factor.signed_in_response(
            state, "/espace-client", session_cookie=EV_SESSION_COOKIE, session=signer.sign(state.open_session(login)),
            pending_cookie=EV_PENDING_COOKIE,
        )

    def form_token(request: Request) -> str:
        """CSRF token of the forms shown after login: derived from the session cookie, nothing stored."""
        return signer.mac("form:" + request.cookies.get(EV_SESSION_COOKIE, ""))

    async def logged_in(request: Request) -> Account:
        login = session_login(request)
        if login is None:
            raise Redirect("/connexion")
        return state.accounts[login]

    async def client(account: Annotated[Account, Depends(logged_in)]) -> Account:
        """A logged-in customer with nothing pending (else sent to the password or terms page)."""
        step = state.pending_step(account.login)
        if step is not None:
            raise Redirect("/securite/mot-de-passe" if step == "password" else "/conditions-generales")
        return account

    async def api_client(request: Request) -> Account:
        login = session_login(request)
        if login is None:
            raise HTTPException(401, "Authentification requise.")
        if state.pending_step(login) is not None:
            raise HTTPException(403, "Action requise dans l'espace client avant d'accéder aux factures.")
        return state.accounts[login]

    pages = APIRouter()

    @pages.get("/")
    async def home() -> Response:
        return RedirectResponse("/espace-client", 303)

    @pages.get("/connexion")
    async def login_form(request: Request, motif: str = "") -> Response:
        csrf = request.cookies.get(EV_CSRF_COOKIE) or secrets.token_urlsafe(24)
        if motif == SECOND_FACTOR_DROPPED:
            dropped = second_factor_message(SecondFactorResult.DROPPED, None)
            response = _ev_login_page(csrf, dropped, css="verification-annulee")
        else:
            response = _ev_login_page(csrf)
        response.set_cookie(EV_CSRF_COOKIE, csrf, httponly=True, samesite="strict")
        return response

    @pages.post("/connexion")
    async def login_submit(
        request: Request,
        email: Annotated[str, Form()] = "",
        mot_de_passe: Annotated[str, Form()] = "",
        csrf: Annotated[str, Form()] = "",
    ) -> Response:
        cookie = request.cookies.get(EV_CSRF_COOKIE, "")
        if not cookie or not hmac.compare_digest(cookie, csrf):
            return _ev_login_page(secrets.token_urlsafe(24), "Votre session a expiré, rechargez la page.", 400)
        email = email.strip().lower()
        await pace(state, email)
        result = state.authenticate(email, mot_de_passe)
        if result is LoginResult.LOCKED:
            return _ev_login_page(
                cookie,
                "Votre compte est bloqué suite à plusieurs tentatives infructueuses. Contactez le 09 70 00 00 00.",
            )
        if result is LoginResult.WRONG:
            return _ev_login_page(cookie, "Adresse e-mail ou mot de passe incorrect.")
        return second_factor.after_password(
            state, email, signed_in, second_factor_url="/connexion/verification", pending_cookie=EV_PENDING_COOKIE
        )

    second_factor.second_factor_routes(
        pages, state, url="/connexion/verification", login_url="/connexion",
        dropped_url=f"/connexion?motif={SECOND_FACTOR_DROPPED}", pending_cookie=EV_PENDING_COOKIE, token_field="jeton",
        page=partial(_ev_verification_page, state), expired=_ev_expired, signed_in=signed_in,
    )

    @pages.get("/deconnexion")
    async def logout() -> Response:
        response = RedirectResponse("/connexion", 303)
        response.delete_cookie(EV_SESSION_COOKIE)
        return response

    @pages.get("/espace-client")
    async def client_area(account: Annotated[Account, Depends(client)]) -> Response:
        await pace(state, account.login)
        if state.list_request_fails(account.login):  # the client area sits behind a flaky load balancer
            body = "<h1>Service en maintenance</h1><p>Notre espace client revient dans quelques minutes.</p>"
            response = _ev_page("Maintenance", body, status=503)
            response.headers["Retry-After"] = "5"
            return response
        newest = max((i.issued for i in state.invoices(account.login)), default=dt.date(2026, 10, 1))
        return _ev_shell(account, add_months(newest.replace(day=1), -11))

    @pages.get("/conditions-generales")
    async def terms(request: Request, account: Annotated[Account, Depends(logged_in)]) -> Response:
        if not state.terms_pending(account.login):
            return RedirectResponse("/espace-client", 303)
        body = f"""<h1>Nouvelles conditions générales</h1>
<p>Nos conditions générales de vente changent au 1er novembre 2026. Merci de les lire et de les accepter pour accéder à vos factures.</p>
<form id="acceptation" method="post" action="/conditions-generales">
<input type="hidden" name="jeton" value="{form_token(request)}">
<button type="submit">Accepter</button>
</form>"""
        return _ev_page("Conditions générales", body)

    @pages.post("/conditions-generales")
    async def accept_terms(
        request: Request, account: Annotated[Account, Depends(logged_in)], jeton: Annotated[str, Form()] = ""
    ) -> Response:
        if not hmac.compare_digest(form_token(request), jeton):
            return _ev_expired()
        state.accept_terms(account.login)
        return RedirectResponse("/espace-client", 303)

    def password_page(request: Request, error: str = "") -> HTMLResponse:
        message = f'<p class="erreur">{escape(error)}</p>' if error else ""
        body = f"""<h1>Votre mot de passe a expiré, choisissez-en un nouveau</h1>
{message}
<form id="nouveau-mot-de-passe" method="post" action="/securite/mot-de-passe">
<input type="hidden" name="jeton" value="{form_token(request)}">
<label>Nouveau mot de passe <input type="password" name="nouveau" autocomplete="new-password" required></label>
<label>Confirmez-le <input type="password" name="confirmation" autocomplete="new-password" required></label>
<button type="submit">Valider</button>
</form>"""
        return _ev_page("Mot de passe expiré", body)

    @pages.get("/securite/mot-de-passe")
    async def expired_password(request: Request, account: Annotated[Account, Depends(logged_in)]) -> Response:
        if not state.password_expired(account.login):
            return RedirectResponse("/espace-client", 303)
        return password_page(request)

    @pages.post("/securite/mot-de-passe")
    async def change_password(
        request: Request,
        account: Annotated[Account, Depends(logged_in)],
        nouveau: Annotated[str, Form()] = "",
        confirmation: Annotated[str, Form()] = "",
        jeton: Annotated[str, Form()] = "",
    ) -> Response:
        if not hmac.compare_digest(form_token(request), jeton):
            return _ev_expired()
        problem = state.change_password(account.login, nouveau, confirmation)
        if problem:
            return password_page(request, problem)
        return RedirectResponse("/espace-client", 303)

    api = APIRouter(prefix="/api")

    @api.get("/factures")
    async def invoices(account: Annotated[Account, Depends(api_client)], depuis: dt.date | None = None) -> Response:
        await pace(state, account.login)
        odd = misbehaviour(state).invoices
        links = {number: quirk.link for number, quirk in odd.items() if quirk.link}
        amounts = {number: quirk.shown_amount for number, quirk in odd.items() if quirk.shown_amount}
        return _ev_invoices_json(account, state.invoices(account.login, since=depuis), links, amounts)

    @api.get("/factures/{number:number}/pdf")
    async def invoice_download(number: str, account: Annotated[Account, Depends(api_client)]) -> Response:
        found = state.find_invoice(number)
        if found is None or found[0] != account.login:  # someone else's invoice is as good as missing
            raise HTTPException(404, "Facture introuvable.")
        await pace(state, account.login)
        return odd_download(state, number) or pdf_response(state, account.login, found[1])

    app.include_router(pages)
    app.include_router(api)
    app.include_router(control_router(state))
    return app
