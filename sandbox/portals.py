"""Two supplier portals that behave like real ones, built differently on purpose.

* **Papeterie Dupont** is an old-style server-rendered site: a CSRF token bound to a pre-session
  cookie, server-side sessions, an HTML table paginated ten rows at a time.
* **Énergie Verte** is a newer "single page" client area: a double-submit CSRF cookie, signed
  stateless session cookies, FastAPI dependencies for authentication, and an HTML shell whose
  inline script loads the invoices from a JSON API.

Both play the scenarios of :mod:`sandbox.data` (expired password, new terms, intermittent 503,
slow pages, changed layout, an invoice that is not a PDF, locked accounts, and the three second
factors: TOTP, a code sent by SMS or e-mail, approval in the app) and share the control
endpoints under ``/_sandbox`` that tests and the demo use. Nothing here imports Glaneur: the
sandbox stands for the outside world and runs alone (``python -m sandbox``).

Second factor, on both portals: the right password of a ``double-*`` account leads to a
second-factor page (Papeterie Dupont ``/double-authentification``, Énergie Verte
``/connexion/verification``) bound to a pending-login cookie. A wrong code shows the page again
with an error and the attempts left; the fifth drops the pending login and sends back to the
login page. Sessions are persistent cookies valid ``state.session_lifetime`` (7 days by default).

Control endpoints (``/_sandbox``): ``POST /reset`` (also clears the outbox, approvals, pending
logins and sessions), ``GET /accounts`` (passwords, TOTP seeds), ``POST /accounts/{login}/invoices``,
``POST /rate-limit``, ``GET /outbox/{login}`` (the latest codes sent, the newest last),
``POST /approve/{login}`` (the phone approves), ``GET /sessions``, ``POST /sessions/expire``
(``{"login": ...}`` optional), ``POST /sessions/lifetime`` (``{"seconds": ...}``), ``GET /clock``,
``POST /clock`` (``{"seconds": ...}``: the portal's time moves forward until reset).

No ``from __future__ import annotations`` here: FastAPI reads the route signatures at runtime,
and the dependencies they name are local to each app factory.
"""

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from html import escape
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from sandbox.data import (
    CODE_VALIDITY,
    ENERGIE_VERTE,
    MAX_FAILED_LOGINS,
    PAGE_SIZE,
    PAPETERIE_DUPONT,
    Account,
    Invoice,
    LoginResult,
    PendingLogin,
    PortalState,
    Scenario,
    SecondFactor,
    SecondFactorResult,
    SessionTicket,
    add_months,
    french_amount,
    masked_phone,
)
from sandbox.pdfs import invoice_pdf

SLOW_SECONDS = 1.5  # delay of every page of the slow account
RETRY_AFTER_SECONDS = 30

# -- shared by both portals --------------------------------------------------------------------


class NewInvoice(BaseModel):
    date: dt.date | None = None
    amount: Decimal | None = Field(default=None, gt=0, le=1_000_000)
    number: str | None = Field(default=None, min_length=1, max_length=200)  # the portal's own numbering
    # What real portals get wrong (see OddInvoice):
    size: int | None = Field(default=None, ge=16, le=4 * 1024**3)
    announce_size: bool = True
    link: str | None = None
    redirect: str | None = None


class RateLimit(BaseModel):
    enabled: bool = True
    retry_after: int = Field(default=RETRY_AFTER_SECONDS, ge=0)
    requests: int | None = Field(default=None, ge=1)  # refuse only this many requests, then serve again


@dataclass
class OddInvoice:
    """An invoice the portal serves badly, as some do."""

    size: int | None = None  # a PDF this many bytes long, streamed (never built in memory)
    announce_size: bool = True  # with a Content-Length; False: chunked, the size shows only while reading
    link: str | None = None  # the list links there instead of to the portal's own download
    redirect: str | None = None  # the portal's download answers a redirect there


class ListQuirks(BaseModel):
    """How an account's invoice list misbehaves (Papeterie Dupont's paginated list)."""

    loop: bool = False  # the last page's "next" link goes back to page 1
    slow_redirect: float = Field(default=0, ge=0, le=120)  # list pages: a "loading" page whose script moves to a page this slow
    late_render: float = Field(default=0, ge=0, le=120)  # list pages: the table shows this long after the page loaded


@dataclass
class Misbehaviour:
    """What tests asked a portal to get wrong, until the next reset; and the requests it served."""

    invoices: dict[str, OddInvoice] = field(default_factory=dict)  # by invoice number
    lists: dict[str, ListQuirks] = field(default_factory=dict)  # by login
    rate_limit_left: int | None = None  # refusals left (None: every request while rate limited)
    retry_after: int = RETRY_AFTER_SECONDS
    served: list[dict[str, object]] = field(default_factory=list)  # {"at", "path", "status"}: what tests time


_MISBEHAVIOUR: "weakref.WeakKeyDictionary[PortalState, Misbehaviour]" = weakref.WeakKeyDictionary()


def misbehaviour(state: PortalState) -> Misbehaviour:
    return _MISBEHAVIOUR.setdefault(state, Misbehaviour())


def download_path(prefix: str, number: str) -> str:
    """The portal's own download address of an invoice; numbers like ``FA/001`` are escaped whole."""
    return f"{prefix}/{quote(number, safe='')}/pdf"


def odd_download(state: PortalState, number: str) -> Response | None:
    """The bad answer of an odd invoice's download, or None to serve it normally."""
    odd = misbehaviour(state).invoices.get(number)
    if odd is None:
        return None
    if odd.redirect:
        return RedirectResponse(odd.redirect, 302)
    if odd.size:
        size = odd.size

        def chunks() -> Iterator[bytes]:
            head = b"%PDF-1.4\n% padding\n"
            yield head
            left, block = size - len(head), b"0" * (256 * 1024)
            while left > 0:
                yield block[: min(left, len(block))]
                left -= len(block)

        headers = {"Content-Length": str(size)} if odd.announce_size else {}
        return StreamingResponse(chunks(), media_type="application/pdf", headers=headers)
    return None


class ExpireSessions(BaseModel):
    login: str | None = None  # None: every account's sessions


class SessionLifetime(BaseModel):
    seconds: float = Field(gt=0)


class ClockAdvance(BaseModel):
    seconds: float = Field(ge=0, le=366 * 86400)


def control_router(state: PortalState) -> APIRouter:
    """``/_sandbox``: what tests and the demo use to reset the portal, add invoices and misbehave on demand."""
    router = APIRouter(prefix="/_sandbox", tags=["sandbox control"])

    @router.post("/reset")
    async def reset() -> dict[str, str]:
        state.reset()
        _MISBEHAVIOUR[state] = Misbehaviour()
        return {"reset": state.supplier.slug}

    @router.get("/accounts")
    async def accounts() -> dict[str, object]:
        return {"provider": state.supplier.slug, "name": state.supplier.name, "accounts": state.describe()}

    @router.post("/accounts/{login}/invoices", status_code=201)
    async def add_invoice(login: str, body: NewInvoice | None = None) -> dict[str, str]:
        if login not in state.accounts:
            raise HTTPException(404, f"Unknown account {login!r}; known: {', '.join(state.accounts)}.")
        body = body or NewInvoice()
        if body.number is not None and state.find_invoice(body.number) is not None:
            raise HTTPException(409, f"Invoice {body.number!r} exists already.")
        invoice = state.add_invoice(login, body.date, body.amount, body.number)
        if body.size or body.link or body.redirect:
            misbehaviour(state).invoices[invoice.number] = OddInvoice(
                body.size, body.announce_size, body.link, body.redirect
            )
        return {"number": invoice.number, "date": invoice.issued.isoformat(), "amount": str(invoice.total_ttc)}

    @router.post("/accounts/{login}/list")
    async def list_quirks(login: str, body: ListQuirks) -> dict[str, object]:
        misbehaviour(state).lists[known(login)] = body
        return body.model_dump()

    @router.post("/rate-limit")
    async def rate_limit(body: RateLimit | None = None) -> dict[str, bool]:
        body = body or RateLimit()
        state.rate_limited = body.enabled
        misbehaviour(state).rate_limit_left = body.requests
        misbehaviour(state).retry_after = body.retry_after
        return {"rate_limited": state.rate_limited}

    @router.get("/served")
    async def served() -> list[dict[str, object]]:
        """The portal requests served since the last reset, with their time (``at``, epoch seconds) and status."""
        return misbehaviour(state).served

    def known(login: str) -> str:
        if login not in state.accounts:
            raise HTTPException(404, f"Unknown account {login!r}; known: {', '.join(state.accounts)}.")
        return login

    @router.get("/outbox/{login}")
    async def outbox(login: str) -> list[dict[str, str]]:
        """The latest codes sent by SMS or e-mail to this account (the only place they go), the newest last."""
        return [message.as_json() for message in state.outbox_of(known(login))]

    @router.post("/approve/{login}")
    async def approve(login: str) -> dict[str, int]:
        """The account holder's phone approves the login waiting in the app."""
        approved = state.approve(known(login))
        if not approved:
            raise HTTPException(409, f"No login of {login!r} is waiting for an approval in the app.")
        return {"approved": approved}

    @router.get("/sessions")
    async def sessions() -> dict[str, float]:
        return {"lifetime_seconds": state.session_lifetime.total_seconds()}

    @router.post("/sessions/expire")
    async def expire_sessions(body: ExpireSessions | None = None) -> dict[str, str]:
        """Invalidate the sessions issued so far (one account's, or all): the next visit goes to the login page."""
        login = known(body.login) if body and body.login else None
        state.expire_sessions(login)
        return {"expired": login or "all"}

    @router.post("/sessions/lifetime")
    async def session_lifetime(body: SessionLifetime) -> dict[str, float]:
        """How long a session stays valid (reset puts back 7 days); applies to sessions already open too."""
        state.session_lifetime = dt.timedelta(seconds=body.seconds)
        return {"lifetime_seconds": body.seconds}

    @router.get("/clock")
    async def clock() -> dict[str, object]:
        return {"now": state.now().isoformat(), "offset_seconds": state.clock_offset.total_seconds()}

    @router.post("/clock")
    async def advance_clock(body: ClockAdvance) -> dict[str, object]:
        """Move the portal's time forward: codes and sessions expire, "the next day" without waiting.

        TOTP codes still follow the real time, as the authenticator app on the phone does.
        """
        state.clock_offset += dt.timedelta(seconds=body.seconds)
        return {"now": state.now().isoformat(), "offset_seconds": state.clock_offset.total_seconds()}

    return router


def second_factor_prompt(state: PortalState, pending: PendingLogin) -> str:
    """What the second-factor page asks, in the portal's words (no secret: the destination is masked)."""
    if pending.kind is SecondFactor.TOTP:
        return "Saisissez le code à 6 chiffres affiché par votre application d'authentification."
    if pending.kind is SecondFactor.CODE:
        minutes = int(CODE_VALIDITY.total_seconds() // 60)
        destination = state.code_destination(pending)
        return f"Un code à 6 chiffres vous a été envoyé {destination}. Il est valable {minutes} minutes."
    phone = masked_phone(state.accounts[pending.login].phone)
    return (
        f"Validez la connexion dans l'application {state.supplier.name} sur votre téléphone ({phone}), "
        "puis cliquez sur « J'ai validé »."
    )


def second_factor_message(result: SecondFactorResult, pending: PendingLogin | None) -> str:
    """The portal's message after an answer that did not complete the login."""
    if result is SecondFactorResult.WRONG and pending is not None:
        left = pending.attempts_left
        return f"Code incorrect. Il vous reste {left} essai{'s' if left > 1 else ''}."
    if result is SecondFactorResult.EXPIRED:
        return "Ce code a expiré. Demandez un nouveau code."
    if result is SecondFactorResult.NOT_APPROVED:
        return "La connexion n'a pas encore été validée dans l'application."
    return "Trop de codes erronés : la connexion a été annulée. Reconnectez-vous."


SECOND_FACTOR_DROPPED = "double-authentification"  # the login page's ?erreur= after a dropped pending login


def rate_limiter(
    state: PortalState,
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    """While the control flag is on, every portal request answers 429, as a throttling front end does."""

    async def middleware(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.url.path.startswith("/_sandbox"):
            return await call_next(request)
        odd = misbehaviour(state)
        at = time.time()
        if not state.rate_limited:
            response = await call_next(request)
            odd.served.append({"at": at, "path": request.url.path, "status": response.status_code})
            return response
        if odd.rate_limit_left is not None:
            odd.rate_limit_left -= 1
            state.rate_limited = odd.rate_limit_left > 0
        odd.served.append({"at": at, "path": request.url.path, "status": 429})
        headers = {"Retry-After": str(odd.retry_after)}
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": "Trop de requêtes, réessayez plus tard."}, 429, headers=headers)
        body = "<h1>Trop de requêtes</h1><p>Merci de patienter avant de réessayer.</p>"
        return HTMLResponse(f"<!doctype html><html lang='fr'><body>{body}</body></html>", 429, headers=headers)

    return middleware


async def pace(state: PortalState, login: str) -> None:
    """The slow account's pages take :data:`SLOW_SECONDS`, like an overloaded portal."""
    if state.accounts[login].scenario is Scenario.SLOW:
        await asyncio.sleep(SLOW_SECONDS)


def pdf_response(state: PortalState, login: str, invoice: Invoice) -> Response:
    if state.broken_download(login, invoice.number):  # what real portals do when their PDF service is down
        page = "<h1>Erreur</h1><p>Le document est temporairement indisponible. Réessayez plus tard.</p>"
        return HTMLResponse(f"<!doctype html><html lang='fr'><body>{page}</body></html>", 200)
    return Response(
        invoice_pdf(state.supplier, invoice),
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{invoice.number}.pdf"'},
    )


# -- Papeterie Dupont: server-rendered pages, pagination ----------------------------------------

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


def _pd_second_factor_page(state: PortalState, pending: PendingLogin, alert: str = "") -> HTMLResponse:
    if pending.kind is SecondFactor.APP:
        fields = '<button type="submit">J\'ai validé</button>'
    else:
        fields = (
            '<label>Code de vérification <input name="code" inputmode="numeric" autocomplete="one-time-code" '
            'maxlength="7" required></label>\n<button type="submit">Valider</button>'
        )
    resend = (
        f"""\n<form id="renvoi" method="post" action="/double-authentification/renvoi">
<input type="hidden" name="csrf_token" value="{escape(pending.csrf)}">
<button type="submit" class="lien">Renvoyer le code</button>
</form>"""
        if pending.kind is SecondFactor.CODE
        else ""
    )
    return _pd_page(
        "Vérification en deux étapes",
        f"""<h1>Vérification en deux étapes</h1>
{alert}
<p class="consigne">{escape(second_factor_prompt(state, pending))}</p>
<form id="double-authentification" method="post" action="/double-authentification">
<input type="hidden" name="csrf_token" value="{escape(pending.csrf)}">
{fields}
</form>{resend}""",
    )


def _pd_invoice_table(
    invoices: list[Invoice], page: int, more: bool, customer: str, *, links: dict[str, str] | None = None,
    next_page: int | None = None,
) -> HTMLResponse:
    """``links`` replaces some invoices' download links; ``next_page`` where "next" goes (default: page + 1)."""
    links = links or {}
    rows = "\n".join(
        f'<tr><td>{escape(i.number)}</td><td>{i.issued:%d/%m/%Y}</td><td class="montant">{french_amount(i.total_ttc)}</td>'
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
        response = detour(login) or RedirectResponse("/factures", 303)
        response.set_cookie(
            PD_SESSION_COOKIE,
            token,
            max_age=int(state.session_lifetime.total_seconds()),
            httponly=True,
            samesite="lax",
        )
        response.delete_cookie(PD_PENDING_COOKIE)
        return response

    def pending_of(request: Request) -> tuple[str, PendingLogin] | None:
        token = request.cookies.get(PD_PENDING_COOKIE, "")
        pending = state.pending_login(token)
        return (token, pending) if pending is not None else None

    def detour(login: str) -> RedirectResponse | None:
        """Where the portal sends a logged-in customer who has something to do first."""
        step = state.pending_step(login)
        if step is None:
            return None
        return RedirectResponse("/mot-de-passe-expire" if step == "password" else "/cgv", 303)

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
            return _pd_page("Session expirée", "<h1>Session expirée, rechargez la page</h1>", status=400)
        if username in state.accounts:
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
        pending = state.begin_second_factor(username)
        if pending is not None:
            response = RedirectResponse("/double-authentification", 303)
            response.set_cookie(PD_PENDING_COOKIE, pending, httponly=True, samesite="lax")
        else:
            response = signed_in(username)
        response.delete_cookie(PD_PRESESSION_COOKIE)
        return response

    @app.get("/double-authentification")
    async def second_factor_form(request: Request, renvoye: bool = False) -> Response:
        found = pending_of(request)
        if found is None:
            return RedirectResponse("/login", 303)
        _, pending = found
        alert = ""
        if renvoye:
            sent = f"Un nouveau code vous a été envoyé {state.code_destination(pending)}."
            alert = f'<div class="alert alert-info">{escape(sent)}</div>'
        return _pd_second_factor_page(state, pending, alert)

    @app.post("/double-authentification")
    async def second_factor_submit(
        request: Request, code: Annotated[str, Form()] = "", csrf_token: Annotated[str, Form()] = ""
    ) -> Response:
        found = pending_of(request)
        if found is None:
            return RedirectResponse("/login", 303)
        token, pending = found
        if not hmac.compare_digest(pending.csrf, csrf_token):
            return _pd_page("Session expirée", "<h1>Session expirée, rechargez la page</h1>", status=400)
        result = state.answer_second_factor(token, code)
        if result is SecondFactorResult.OK:
            return signed_in(pending.login)
        if result in (SecondFactorResult.DROPPED, SecondFactorResult.UNKNOWN):
            response = RedirectResponse(f"/login?erreur={SECOND_FACTOR_DROPPED}", 303)
            response.delete_cookie(PD_PENDING_COOKIE)
            return response
        kind = {SecondFactorResult.NOT_APPROVED: "alert-attente", SecondFactorResult.EXPIRED: "alert-error code-expire"}
        message = escape(second_factor_message(result, pending))
        alert = f'<div class="alert {kind.get(result, "alert-error")}">{message}</div>'
        return _pd_second_factor_page(state, pending, alert)

    @app.post("/double-authentification/renvoi")
    async def second_factor_resend(request: Request, csrf_token: Annotated[str, Form()] = "") -> Response:
        found = pending_of(request)
        if found is None:
            return RedirectResponse("/login", 303)
        token, pending = found
        if not hmac.compare_digest(pending.csrf, csrf_token) or pending.kind is not SecondFactor.CODE:
            return _pd_page("Session expirée", "<h1>Session expirée, rechargez la page</h1>", status=400)
        state.send_code(token)
        return RedirectResponse("/double-authentification?renvoye=1", 303)

    @app.get("/logout")
    async def logout(request: Request) -> Response:
        sessions.pop(request.cookies.get(PD_SESSION_COOKIE, ""), None)
        response = RedirectResponse("/login", 303)
        response.delete_cookie(PD_SESSION_COOKIE)
        return response

    @app.get("/factures")
    async def invoice_list(request: Request, page: Annotated[int, Query(ge=1)] = 1) -> Response:
        session = session_of(request)
        if session is None:
            return RedirectResponse("/login", 303)
        if redirect := detour(session.login):
            return redirect
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
        shown = invoices[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        more = len(invoices) > page * PAGE_SIZE
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
        )
        if listing and quirks.late_render:  # the page is loaded at once; its script shows the table later
            later = int(quirks.late_render * 1000)
            script = (f"<script>setTimeout(() => document.querySelector('main').append("
                      f"document.getElementById('plus-tard').content.cloneNode(true)), {later});</script>")
            body = response.body.decode().replace('<table id="factures">', '<template id="plus-tard"><table id="factures">')
            body = body.replace("</table>", "</table></template>" + script)
            return HTMLResponse(body)
        return response

    @app.get("/factures/{number:path}/pdf")
    async def invoice_download(request: Request, number: str) -> Response:
        session = session_of(request)
        if session is None:
            return RedirectResponse("/login", 303)
        if redirect := detour(session.login):
            return redirect
        found = state.find_invoice(number)
        if found is None:
            return _pd_page("Introuvable", "<h1>Facture introuvable</h1>", logged_in=True, status=404)
        owner, invoice = found
        if owner != session.login:
            return _pd_page("Accès refusé", "<h1>Accès refusé</h1>", logged_in=True, status=403)
        await pace(state, session.login)
        return odd_download(state, number) or pdf_response(state, owner, invoice)

    @app.get("/cgv")
    async def terms(request: Request) -> Response:
        session = session_of(request)
        if session is None:
            return RedirectResponse("/login", 303)
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
    async def accept_terms(request: Request, csrf_token: Annotated[str, Form()] = "") -> Response:
        session = session_of(request)
        if session is None:
            return RedirectResponse("/login", 303)
        if not hmac.compare_digest(session.csrf, csrf_token):
            return _pd_page("Session expirée", "<h1>Session expirée, rechargez la page</h1>", status=400)
        state.accept_terms(session.login)
        return detour(session.login) or RedirectResponse("/factures", 303)

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
    async def expired_password(request: Request) -> Response:
        session = session_of(request)
        if session is None:
            return RedirectResponse("/login", 303)
        if not state.password_expired(session.login):
            return RedirectResponse("/factures", 303)
        return password_page(session)

    @app.post("/mot-de-passe-expire")
    async def change_password(
        request: Request,
        nouveau: Annotated[str, Form()] = "",
        confirmation: Annotated[str, Form()] = "",
        csrf_token: Annotated[str, Form()] = "",
    ) -> Response:
        session = session_of(request)
        if session is None:
            return RedirectResponse("/login", 303)
        if not hmac.compare_digest(session.csrf, csrf_token):
            return _pd_page("Session expirée", "<h1>Session expirée, rechargez la page</h1>", status=400)
        problem = state.change_password(session.login, nouveau, confirmation)
        if problem:
            return password_page(session, f'<div class="alert alert-error">{escape(problem)}</div>')
        return detour(session.login) or RedirectResponse("/factures", 303)

    return app


# -- Énergie Verte: an HTML shell and a JSON API ------------------------------------------------

EV_CSRF_COOKIE = "ev_csrf"
EV_SESSION_COOKIE = "ev_session"
EV_PENDING_COOKIE = "ev_verification"  # the login waiting for its second factor


class _Redirect(Exception):
    """Raised by a dependency to send the browser elsewhere (login page, pending step)."""

    def __init__(self, location: str) -> None:
        self.location = location


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


def _ev_verification_page(state: PortalState, pending: PendingLogin, error: str = "", info: str = "") -> HTMLResponse:
    expired = " code-expire" if error == second_factor_message(SecondFactorResult.EXPIRED, None) else ""
    waiting = " attente" if error == second_factor_message(SecondFactorResult.NOT_APPROVED, None) else ""
    message = f'<p class="erreur{expired}{waiting}">{escape(error)}</p>' if error else ""
    message += f'<p class="info">{escape(info)}</p>' if info else ""
    if pending.kind is SecondFactor.APP:
        fields = '<button type="submit">J\'ai validé</button>'
    else:
        fields = (
            '<label>Code reçu <input name="code" inputmode="numeric" autocomplete="one-time-code" maxlength="7" '
            'required></label>\n<button type="submit">Vérifier</button>'
        )
    resend = (
        f"""\n<form id="renvoi" method="post" action="/connexion/verification/renvoi">
<input type="hidden" name="jeton" value="{escape(pending.csrf)}">
<button type="submit">Renvoyer le code</button>
</form>"""
        if pending.kind is SecondFactor.CODE
        else ""
    )
    return _ev_page(
        "Vérification",
        f"""<h1>Vérifions qu'il s'agit bien de vous</h1>
{message}
<p class="consigne">{escape(second_factor_prompt(state, pending))}</p>
<form id="verification" method="post" action="/connexion/verification">
<input type="hidden" name="jeton" value="{escape(pending.csrf)}">
{fields}
</form>{resend}""",
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


def _ev_invoices_json(account: Account, invoices: list[Invoice], links: dict[str, str] | None = None) -> JSONResponse:
    """``links`` replaces some invoices' download links."""
    links = links or {}
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
            "montant_ttc": float(i.total_ttc),  # a JSON number, as the real API sends it
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

    @app.exception_handler(_Redirect)
    async def redirect(_: Request, exc: _Redirect) -> Response:
        return RedirectResponse(exc.location, 303)

    def session_login(request: Request) -> str | None:
        ticket = signer.unsign(request.cookies.get(EV_SESSION_COOKIE, ""))
        return ticket.login if ticket is not None and state.session_valid(ticket) else None

    def signed_in(login: str) -> Response:
        response = RedirectResponse("/espace-client", 303)
        response.set_cookie(
            EV_SESSION_COOKIE,
            signer.sign(state.open_session(login)),
            max_age=int(state.session_lifetime.total_seconds()),
            httponly=True,
            samesite="lax",
        )
        response.delete_cookie(EV_PENDING_COOKIE)
        return response

    async def verifying(request: Request) -> tuple[str, PendingLogin]:
        """The login waiting for its second factor (else back to the login page)."""
        token = request.cookies.get(EV_PENDING_COOKIE, "")
        pending = state.pending_login(token)
        if pending is None:
            raise _Redirect("/connexion")
        return token, pending

    def form_token(request: Request) -> str:
        """CSRF token of the forms shown after login: derived from the session cookie, nothing stored."""
        return signer.mac("form:" + request.cookies.get(EV_SESSION_COOKIE, ""))

    async def logged_in(request: Request) -> Account:
        login = session_login(request)
        if login is None:
            raise _Redirect("/connexion")
        return state.accounts[login]

    async def client(account: Annotated[Account, Depends(logged_in)]) -> Account:
        """A logged-in customer with nothing pending (else sent to the password or terms page)."""
        step = state.pending_step(account.login)
        if step is not None:
            raise _Redirect("/securite/mot-de-passe" if step == "password" else "/conditions-generales")
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
        if email in state.accounts:
            await pace(state, email)
        result = state.authenticate(email, mot_de_passe)
        if result is LoginResult.LOCKED:
            return _ev_login_page(
                cookie,
                "Votre compte est bloqué suite à plusieurs tentatives infructueuses. Contactez le 09 70 00 00 00.",
            )
        if result is LoginResult.WRONG:
            return _ev_login_page(cookie, "Adresse e-mail ou mot de passe incorrect.")
        pending = state.begin_second_factor(email)
        if pending is None:
            return signed_in(email)
        response = RedirectResponse("/connexion/verification", 303)
        response.set_cookie(EV_PENDING_COOKIE, pending, httponly=True, samesite="lax")
        return response

    @pages.get("/connexion/verification")
    async def verification_form(
        found: Annotated[tuple[str, PendingLogin], Depends(verifying)], renvoye: bool = False
    ) -> Response:
        _, pending = found
        info = f"Un nouveau code vous a été envoyé {state.code_destination(pending)}." if renvoye else ""
        return _ev_verification_page(state, pending, info=info)

    @pages.post("/connexion/verification")
    async def verification_submit(
        found: Annotated[tuple[str, PendingLogin], Depends(verifying)],
        code: Annotated[str, Form()] = "",
        jeton: Annotated[str, Form()] = "",
    ) -> Response:
        token, pending = found
        if not hmac.compare_digest(pending.csrf, jeton):
            return _ev_page("Erreur", '<p class="erreur">Votre session a expiré, rechargez la page.</p>', status=400)
        result = state.answer_second_factor(token, code)
        if result is SecondFactorResult.OK:
            return signed_in(pending.login)
        if result in (SecondFactorResult.DROPPED, SecondFactorResult.UNKNOWN):
            response = RedirectResponse(f"/connexion?motif={SECOND_FACTOR_DROPPED}", 303)
            response.delete_cookie(EV_PENDING_COOKIE)
            return response
        return _ev_verification_page(state, pending, second_factor_message(result, pending))

    @pages.post("/connexion/verification/renvoi")
    async def verification_resend(
        found: Annotated[tuple[str, PendingLogin], Depends(verifying)], jeton: Annotated[str, Form()] = ""
    ) -> Response:
        token, pending = found
        if not hmac.compare_digest(pending.csrf, jeton) or pending.kind is not SecondFactor.CODE:
            return _ev_page("Erreur", '<p class="erreur">Votre session a expiré, rechargez la page.</p>', status=400)
        state.send_code(token)
        return RedirectResponse("/connexion/verification?renvoye=1", 303)

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
            return _ev_page("Erreur", '<p class="erreur">Votre session a expiré, rechargez la page.</p>', status=400)
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
            return _ev_page("Erreur", '<p class="erreur">Votre session a expiré, rechargez la page.</p>', status=400)
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
        return _ev_invoices_json(account, state.invoices(account.login, since=depuis), links)

    @api.get("/factures/{number:path}/pdf")
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


APPS: dict[str, Callable[[], FastAPI]] = {
    PAPETERIE_DUPONT.slug: papeterie_dupont_app,
    ENERGIE_VERTE.slug: energie_verte_app,
}
