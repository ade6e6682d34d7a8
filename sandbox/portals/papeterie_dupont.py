"""Papeterie Dupont: the old-style server-rendered site (see :mod:`sandbox.portals`).

Its second factor is at ``/double-authentification``, bound to a pending-login cookie.
"""

import asyncio
import hmac
import secrets
from dataclasses import dataclass
from functools import partial
from html import escape
from typing import Annotated

from fastapi import Depends, FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from sandbox.data import (
    MAX_FAILED_LOGINS,
    PAPETERIE_DUPONT,
    Invoice,
    LoginResult,
    PendingLogin,
    PortalState,
    Scenario,
    SecondFactorResult,
    SessionTicket,
    french_amount,
)
from sandbox.portals.controls import ListQuirks, control_router, download_path, misbehaviour, odd_download
from sandbox.portals.rate_limit import rate_limiter
from sandbox.portals.responses import Redirect, answer_redirects, pace, pdf_response
from sandbox.portals import second_factor
from sandbox.portals.second_factor import SECOND_FACTOR_DROPPED, second_factor_message

PD_PRESESSION_COOKIE = "pd_presession"
PD_SESSION_COOKIE = "pd_session"
PD_PENDING_COOKIE = "pd_double_auth"  # the login waiting for its second factor


@dataclass
class _PdSession:
    login: str
    csrf: str  # for the forms shown after login (terms, new password)
    ticket: SessionTicket


def _pd_page(title: str, body: str, *, logged_in: bool = False, status: int = 200) -> HTMLResponse:
    logout = '<a class="deconnexion" href="/logout">Déconnexion</a>' if logged_in else ""
    return HTMLResponse(
        f"""<!doctype html>
<html lang="fr"><head><meta charset="utf-8"><title>{escape(title)} · Papeterie Dupont</title>
<style>body{{font-family:Georgia,serif;margin:0;background:#faf7f0}}header{{background:#234;color:#fff;padding:1em 2em}}
header a{{color:#fff}}main{{padding:2em;max-width:50em}}table{{border-collapse:collapse;width:100%}}
td,th{{border-bottom:1px solid #ccc;padding:.4em;text-align:left}}.alert{{padding:.8em;margin:1em 0;border:1px solid}}
.alert-error,.alert-locked{{background:#fdd;border-color:#c00}}.alert-info,.alert-attente{{background:#eef;border-color:#669}}
label{{display:block;margin:.6em 0}}button.lien{{background:none;border:0;text-decoration:underline}}</style></head>
<body><header><strong>Papeterie Dupont</strong> · Espace client {logout}</header>
<main>
{body}
</main></body></html>
""",
        status,
    )


def _pd_expired() -> HTMLResponse:
    """A form sent without its token, or with another session's."""
    return _pd_page("Session expirée", "<h1>Session expirée, rechargez la page</h1>", status=400)


def _pd_login_page(csrf: str, alert: str = "") -> HTMLResponse:
    return _pd_page(
        "Connexion",
        f"""<h1>Connexion à votre espace client</h1>
{alert}
<form id="login" method="post" action="/login">
<input type="hidden" name="csrf_token" value="{escape(csrf)}">
<label>Identifiant <input name="username" autocomplete="username" required></label>
<label>Mot de passe <input type="password" name="password" autocomplete="current-password" required></label>
<button type="submit">Se connecter</button>
</form>""",
    )


def _pd_second_factor_page(
    state: PortalState, pending: PendingLogin, result: SecondFactorResult | None, info: str
) -> HTMLResponse:
    """The page, with the portal's complaint after an answer (``result``) or ``info``."""
    alert = f'<div class="alert alert-info">{escape(info)}</div>' if info else ""
    if result is not None:
        kind = {SecondFactorResult.NOT_APPROVED: "alert-attente", SecondFactorResult.EXPIRED: "alert-error code-expire"}
        message = escape(second_factor_message(result, pending))
        alert = f'<div class="alert {kind.get(result, "alert-error")}">{message}</div>'
    return _pd_page(
        "Vérification en deux étapes",
        f"""<h1>Vérification en deux étapes</h1>
{alert}
{second_factor.second_factor_form(state, pending, form_id="double-authentification", action="/double-authentification",
                                  token_field="csrf_token", label="Code de vérification", submit="Valider",
                                  resend_button=' class="lien"')}""",
    )


def _pd_invoice_table(
    invoices: list[Invoice], page: int, more: bool, customer: str, *, links: dict[str, str] | None = None,
    next_page: int | None = None, amounts: dict[str, str] | None = None,
) -> HTMLResponse:
    """``links`` replaces some invoices' download links, ``amounts`` the amounts shown (escaped, as text);
    ``next_page`` where "next" goes (default: page + 1)."""
    links, amounts = links or {}, amounts or {}
    rows = "\n".join(
        f'<tr><td>{escape(i.number)}</td><td>{i.issued:%d/%m/%Y}</td>'
        f'<td class="montant">{escape(amounts[i.number]) if i.number in amounts else french_amount(i.total_ttc)}</td>'
        f'<td><a class="pdf" href="{escape(links.get(i.number) or download_path("/factures", i.number))}">Télécharger</a></td></tr>'
        for i in invoices
    )
    empty = '<p class="vide">Aucune facture.</p>' if not invoices else ""
    previous = f'<a class="prev" href="/factures?page={page - 1}">Page précédente</a>' if page > 1 else ""
    next_page = next_page or (page + 1 if more else None)
    following = f'<a class="next" href="/factures?page={next_page}">Page suivante</a>' if next_page else ""
    return _pd_page(
        "Mes factures",
        f"""<h1>Mes factures</h1>
<p class="client">{escape(customer)}</p>
<table id="factures">
<thead><tr><th>Numéro</th><th>Date</th><th>Montant TTC</th><th>PDF</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
{empty}
<nav class="pagination">{previous} <span>Page {page}</span> {following}</nav>""",
        logged_in=True,
    )


def _pd_invoice_cards(invoices: list[Invoice], page: int, more: bool) -> HTMLResponse:
    """The "new website" of the changed-layout scenario: cards and English labels."""
    cards = "\n".join(
        f'<div class="invoice-card"><h2>Invoice {escape(i.number)}</h2><p>Issued {i.issued.isoformat()}</p>'
        f'<p class="amount">EUR {i.total_ttc:,.2f}</p><a class="download" href="/factures/{escape(i.number)}/pdf">Download</a></div>'
        for i in invoices
    )
    more_link = f'<a class="load-more" href="/factures?page={page + 1}">Load more</a>' if more else ""
    return _pd_page(
        "My invoices", f'<h1>My invoices</h1>\n<div class="invoice-grid">\n{cards}\n</div>\n{more_link}', logged_in=True
    )


def papeterie_dupont_app() -> FastAPI:
    """A fresh Papeterie Dupont portal with its own state."""
    state = PortalState(PAPETERIE_DUPONT)
    presessions: dict[str, str] = {}  # pre-session cookie -> the login form's CSRF token
    sessions: dict[str, _PdSession] = {}
    app = FastAPI(title="Papeterie Dupont (sandbox)", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.portal = state
    app.middleware("http")(rate_limiter(state))
    app.include_router(control_router(state))
    answer_redirects(app)

    def session_of(request: Request) -> _PdSession | None:
        token = request.cookies.get(PD_SESSION_COOKIE, "")
        session = sessions.get(token)
        if session is not None and not state.session_valid(session.ticket):
            del sessions[token]  # expired or revoked: the browser goes back to the login page
            return None
        return session

    def signed_in(login: str) -> Response:
        """A new session for a customer who passed every step of the login."""
        token = secrets.token_urlsafe(24)
        sessions[token] = _PdSession(login, secrets.token_urlsafe(24), state.open_session(login))
        return second_factor.signed_in_response(
            state, detour(login) or "/factures", session_cookie=PD_SESSION_COOKIE, session=token,
            pending_cookie=PD_PENDING_COOKIE,
        )

    def detour(login: str) -> str | None:
        """Where the portal sends a logged-in customer who has something to do first."""
        step = state.pending_step(login)
        if step is None:
            return None
        return "/mot-de-passe-expire" if step == "password" else "/cgv"

    async def logged_in(request: Request) -> _PdSession:
        session = session_of(request)
        if session is None:
            raise Redirect("/login")
        return session

    async def client(session: Annotated[_PdSession, Depends(logged_in)]) -> _PdSession:
        """A logged-in customer with nothing pending (else sent to the password or terms page)."""
        if redirect := detour(session.login):
            raise Redirect(redirect)
        return session

    @app.get("/")
    async def home(request: Request) -> Response:
        return RedirectResponse("/factures" if session_of(request) else "/login", 303)

    @app.get("/login")
    async def login_form(request: Request, erreur: str = "") -> Response:
        presession = request.cookies.get(PD_PRESESSION_COOKIE, "")
        if presession not in presessions:
            presession = secrets.token_urlsafe(16)
            presessions[presession] = secrets.token_urlsafe(24)
        alert = ""
        if erreur == SECOND_FACTOR_DROPPED:
            message = second_factor_message(SecondFactorResult.DROPPED, None)
            alert = f'<div class="alert alert-error alert-double">{escape(message)}</div>'
        response = _pd_login_page(presessions[presession], alert)
        response.set_cookie(PD_PRESESSION_COOKIE, presession, httponly=True, samesite="lax")
        return response

    @app.post("/login")
    async def login_submit(
        request: Request,
        username: Annotated[str, Form()] = "",
        password: Annotated[str, Form()] = "",
        csrf_token: Annotated[str, Form()] = "",
    ) -> Response:
        presession = request.cookies.get(PD_PRESESSION_COOKIE, "")
        expected = presessions.get(presession)
        if expected is None or not hmac.compare_digest(expected, csrf_token):
            return _pd_expired()
        await pace(state, username)
        result = state.authenticate(username, password)
        if result is LoginResult.LOCKED:
            alert = (
                f'<div class="alert alert-locked">Compte bloqué après {MAX_FAILED_LOGINS} tentatives infructueuses. '
                "Contactez notre service client au 04 72 00 00 00.</div>"
            )
            return _pd_login_page(expected, alert)
        if result is LoginResult.WRONG:
            return _pd_login_page(
                expected, '<div class="alert alert-error">Identifiant ou mot de passe incorrect</div>'
            )
        del presessions[presession]
        response = second_factor.after_password(
            state, username, signed_in, second_factor_url="/double-authentification", pending_cookie=PD_PENDING_COOKIE
        )
        response.delete_cookie(PD_PRESESSION_COOKIE)
        return response

    second_factor.second_factor_routes(
        app, state, url="/double-authentification", login_url="/login",
        dropped_url=f"/login?erreur={SECOND_FACTOR_DROPPED}", pending_cookie=PD_PENDING_COOKIE, token_field="csrf_token",
        page=partial(_pd_second_factor_page, state), expired=_pd_expired, signed_in=signed_in,
    )

    @app.get("/logout")
    async def logout(request: Request) -> Response:
        sessions.pop(request.cookies.get(PD_SESSION_COOKIE, ""), None)
        response = RedirectResponse("/login", 303)
        response.delete_cookie(PD_SESSION_COOKIE)
        return response

    @app.get("/factures")
    async def invoice_list(
        request: Request, session: Annotated[_PdSession, Depends(client)], page: Annotated[int, Query(ge=1)] = 1
    ) -> Response:
        await pace(state, session.login)
        quirks = misbehaviour(state).lists.get(session.login, ListQuirks())
        listing = "page" in request.query_params  # the list itself, not the landing page after login
        if listing and quirks.slow_redirect and "suite" not in request.query_params:  # a "loading" page first
            script = f"addEventListener('load', () => setTimeout(() => location.replace('/factures?page={page}&suite=1'), 50));"
            return _pd_page("Chargement", f"<p class='chargement'>Chargement de vos factures…</p><script>{script}</script>")
        if listing and quirks.slow_redirect:
            await asyncio.sleep(quirks.slow_redirect)
        if state.list_request_fails(session.login):
            body = "<h1>Maintenance en cours</h1><p>Le site est momentanément indisponible. Réessayez dans quelques instants.</p>"
            response = _pd_page("Maintenance", body, status=503)
            response.headers["Retry-After"] = "5"
            return response
        invoices = state.invoices(session.login)
        size = quirks.page_size
        shown = invoices[(page - 1) * size : page * size]
        more = len(invoices) > page * size
        if state.accounts[session.login].scenario is Scenario.CHANGED_LAYOUT:
            return _pd_invoice_cards(shown, page, more)
        odd = misbehaviour(state).invoices
        response = _pd_invoice_table(
            shown,
            page,
            more,
            state.accounts[session.login].customer.name,
            links={i.number: odd[i.number].link for i in shown if i.number in odd and odd[i.number].link},
            next_page=1 if quirks.loop and not more else None,
            amounts={i.number: odd[i.number].shown_amount for i in shown if i.number in odd and odd[i.number].shown_amount},
        )
        if listing and quirks.late_render:  # the page is loaded at once; its script shows the table later
            later = int(quirks.late_render * 1000)
            script = (f"<script>setTimeout(() => document.querySelector('main').append("
                      f"document.getElementById('plus-tard').content.cloneNode(true)), {later});</script>")
            body = response.body.decode().replace('<table id="factures">', '<template id="plus-tard"><table id="factures">')
            body = body.replace("</table>", "</table></template>" + script)
            return HTMLResponse(body)
        return response

    @app.get("/factures/{number:number}/pdf")
    async def invoice_download(session: Annotated[_PdSession, Depends(client)], number: str) -> Response:
        found = state.find_invoice(number)
        if found is None:
            return _pd_page("Introuvable", "<h1>Facture introuvable</h1>", logged_in=True, status=404)
        owner, invoice = found
        if owner != session.login:
            return _pd_page("Accès refusé", "<h1>Accès refusé</h1>", logged_in=True, status=403)
        await pace(state, session.login)
        return odd_download(state, number) or pdf_response(state, owner, invoice)

    @app.get("/cgv")
    async def terms(session: Annotated[_PdSession, Depends(logged_in)]) -> Response:
        if not state.terms_pending(session.login):
            return RedirectResponse("/factures", 303)
        return _pd_page(
            "Conditions générales de vente",
            f"""<h1>Nos conditions générales de vente évoluent</h1>
<p>Pour continuer à utiliser votre espace client, veuillez prendre connaissance des nouvelles conditions
générales de vente applicables au 1er novembre 2026 et les accepter.</p>
<form id="cgv" method="post" action="/cgv">
<input type="hidden" name="csrf_token" value="{escape(session.csrf)}">
<button type="submit" name="decision" value="accepter">Accepter</button>
</form>""",
            logged_in=True,
        )

    @app.post("/cgv")
    async def accept_terms(
        session: Annotated[_PdSession, Depends(logged_in)], csrf_token: Annotated[str, Form()] = ""
    ) -> Response:
        if not hmac.compare_digest(session.csrf, csrf_token):
            return _pd_expired()
        state.accept_terms(session.login)
        return RedirectResponse(detour(session.login) or "/factures", 303)

    def password_page(session: _PdSession, alert: str = "") -> HTMLResponse:
        return _pd_page(
            "Mot de passe expiré",
            f"""<h1>Votre mot de passe a expiré, choisissez-en un nouveau</h1>
{alert}
<form id="nouveau-mot-de-passe" method="post" action="/mot-de-passe-expire">
<input type="hidden" name="csrf_token" value="{escape(session.csrf)}">
<label>Nouveau mot de passe <input type="password" name="nouveau" autocomplete="new-password" required></label>
<label>Confirmation <input type="password" name="confirmation" autocomplete="new-password" required></label>
<button type="submit">Enregistrer</button>
</form>""",
            logged_in=True,
        )

    @app.get("/mot-de-passe-expire")
    async def expired_password(session: Annotated[_PdSession, Depends(logged_in)]) -> Response:
        if not state.password_expired(session.login):
            return RedirectResponse("/factures", 303)
        return password_page(session)

    @app.post("/mot-de-passe-expire")
    async def change_password(
        session: Annotated[_PdSession, Depends(logged_in)],
        nouveau: Annotated[str, Form()] = "",
        confirmation: Annotated[str, Form()] = "",
        csrf_token: Annotated[str, Form()] = "",
    ) -> Response:
        if not hmac.compare_digest(session.csrf, csrf_token):
            return _pd_expired()
        problem = state.change_password(session.login, nouveau, confirmation)
        if problem:
            return password_page(session, f'<div class="alert alert-error">{escape(problem)}</div>')
        return RedirectResponse(detour(session.login) or "/factures", 303)

    return app
