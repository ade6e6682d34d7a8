"""The Powens sandbox as a FastAPI app: the REST API 2.0 under ``/2.0``, the webview, control endpoints.

API (documented shapes): ``POST /2.0/auth/init``, ``GET /2.0/auth/token/code``, ``GET /2.0/connectors``,
``GET|PUT|DELETE /2.0/users/me/connections[/{id}]``, ``GET /2.0/users/me/connections/{id}/accounts``,
``PUT /2.0/users/me/accounts/{id}``, ``GET /2.0/users/me[/accounts/{id}]/transactions`` (``limit``,
``offset``, ``min_date``, ``max_date``, ``last_update``, ``_links.next``). Errors are
``{"code", "description"}``; over ``--rate-limit`` calls a minute, ``429`` with ``Retry-After``.

Billers: ``GET /2.0/users/me/subscriptions``, ``GET /2.0/users/me[/subscriptions/{id}]/documents`` (each
with a ``url`` to its PDF, ``GET /2.0/users/me/documents/{id}/file``).

Webview: ``GET /connect|/reconnect|/manage?client_id=&redirect_uri=&code=[&connection_id=][&state=]
[&connector_capabilities=bank,document]``: the first step lists the connectors having **any** of the
comma-separated capabilities (``bank`` when absent), as Powens' webview SDK uses the list (its example
asks ``['bank', 'bankwealth', 'document']``: banks, wealth institutions and billers together); a
``restricted`` connector (no new connection) is never offered, and choosing it anyway is refused;
it redirects to ``redirect_uri`` with ``connection_id`` (and ``state``), or with ``error`` and
``error_description`` when the user refuses the consent or cancels.

Control (``/_sandbox``, not Powens): ``GET|POST /clock``, ``POST /connections/{id}/state``,
``POST /connections/approve``, ``POST /users/{id}/revoke``, ``POST /faults``, ``GET /requests``.
"""

from __future__ import annotations

import html
from datetime import date, datetime
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from sandbox.powens.state import (
    DOCUMENTED_STATES,
    PASSWORD,
    SMS_CODE,
    PowensWorld,
    WebviewSession,
    biller_documents,
    biller_pdf,
)

MAX_LIMIT = 1000


def _error(status: int, code: str, description: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"code": code, "description": description}, status_code=status, headers=headers)


class _Refused(Exception):
    """A refusal raised by a dependency (bad token, someone else's connection, an expired webview session): its
    response is the answer."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def create_powens_app(world: PowensWorld) -> FastAPI:
    app = FastAPI(title="Powens sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    api = APIRouter(prefix="/2.0")

    @app.middleware("http")
    async def limits(request: Request, call_next):
        path = request.url.path
        if path.startswith("/2.0"):
            world.requests_seen.append(f"{request.method} {path}")
            wait = world.rate_limited()
            if wait is not None:
                return _error(429, "rateLimiting", "Too many requests: slow down.",
                              headers={"Retry-After": str(int(wait + 0.999))})
        return await call_next(request)

    @app.exception_handler(_Refused)
    async def refused(request: Request, refusal: _Refused) -> Response:
        return refusal.response

    def current_user(request: Request) -> int:
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else None
        user = world.user_of(token)
        if user is None:
            raise _Refused(_error(401, "invalidToken", "The token is invalid or was revoked."))
        return user

    def own_connection(connection_id: int, user: int = Depends(current_user)):
        connection = world.connections.get(connection_id)
        if connection is None or connection.id_user != user:
            raise _Refused(_error(404, "connectionNotFound", f"Connection {connection_id} not found."))
        return connection

    # -- authentication --

    @api.post("/auth/init")
    async def auth_init(request: Request):
        try:
            body = await request.json()
        except ValueError:
            body = dict(await request.form())
        if body.get("client_id") != world.client_id or body.get("client_secret") != world.client_secret:
            return _error(401, "invalidClient", "Unknown client_id or wrong client_secret.")
        token, user = world.new_user()
        return {"auth_token": token, "type": "permanent", "id_user": user}

    @api.delete("/users/me")
    async def delete_user(user: int = Depends(current_user)):
        """As documented: deletes the user, with its connections; answers the user."""
        world.delete_user(user)
        return {"id": user}

    @api.get("/auth/token/code")
    async def token_code(user: int = Depends(current_user)):
        return {"code": world.new_code(user), "type": "temporary", "access": "single", "expires_in": 1800}

    # -- connectors --

    @api.get("/connectors")
    async def connectors(expand: str = ""):
        """As documented: ``fields`` (and ``sources``, ``countries``) only when asked with ``expand``."""
        asked = set(expand.split(","))
        return {"connectors": [c.payload(fields="fields" in asked) for c in world.connectors],
                "total": len(world.connectors)}

    # -- connections --

    @api.get("/users/me/connections")
    async def connections(user: int = Depends(current_user)):
        found = [c.payload() for c in world.connections.values() if c.id_user == user]
        return {"connections": found, "total": len(found)}

    @api.get("/users/me/connections/{connection_id}")
    async def connection(found=Depends(own_connection)):
        return found.payload()

    @api.put("/users/me/connections/{connection_id}")
    @api.post("/users/me/connections/{connection_id}")
    async def sync(found=Depends(own_connection)):
        world.sync(found)
        return found.payload()

    @api.delete("/users/me/connections/{connection_id}")
    async def delete(found=Depends(own_connection)):
        world.delete_connection(found.id)
        return Response(status_code=204)

    # -- accounts --

    @api.get("/users/me/connections/{connection_id}/accounts")
    async def accounts(request: Request, connection_id: int, found=Depends(own_connection)):
        show_all = "all" in request.query_params
        items = [a.payload(world.balance(a)) for a in world.accounts.values()
                 if a.id_connection == connection_id and (show_all or not a.disabled)]
        return {"accounts": items, "total": len(items)}

    @api.put("/users/me/accounts/{account_id}")
    async def update_account(request: Request, account_id: int, user: int = Depends(current_user)):
        account = world.accounts.get(account_id)
        if account is None or account.id_user != user:
            return _error(404, "accountNotFound", f"Account {account_id} not found.")
        body = await request.json()
        if "disabled" in body:
            account.disabled = bool(body["disabled"])
        return account.payload(world.balance(account))

    # -- transactions --

    async def list_transactions(request: Request, account_id: int | None, user: int):
        query = request.query_params
        try:
            limit = int(query.get("limit", "1000"))
            offset = int(query.get("offset", "0"))
            min_date = date.fromisoformat(query["min_date"]) if query.get("min_date") else None
            max_date = date.fromisoformat(query["max_date"]) if query.get("max_date") else None
            last_update = datetime.fromisoformat(query["last_update"].replace(" ", "T")) if query.get("last_update") else None
        except ValueError:
            return _error(400, "invalidValue", "A query parameter is not valid.")
        if not 1 <= limit <= MAX_LIMIT or offset < 0:
            return _error(400, "invalidValue", f"limit must be between 1 and {MAX_LIMIT}.")
        items = world.transactions(user, account_id)
        if min_date:
            items = [t for t in items if t["date"] >= min_date.isoformat()]
        if max_date:
            items = [t for t in items if t["date"] <= max_date.isoformat()]
        if last_update:
            items = [t for t in items if datetime.fromisoformat(t["last_update"].replace(" ", "T")) > last_update]
        page = items[offset:offset + limit]
        body: dict = {"transactions": page, "first_date": items[-1]["date"] if items else None,
                      "last_date": items[0]["date"] if items else None,
                      "result_min_date": min_date.isoformat() if min_date else None,
                      "result_max_date": max_date.isoformat() if max_date else None, "_links": {}}
        if offset + limit < len(items):
            params = {k: v for k, v in query.items() if k != "offset"}
            params["offset"] = str(offset + limit)
            body["_links"]["next"] = {"href": f"{request.url.path}?{urlencode(params)}"}
        if world.truncate_next > 0:
            world.truncate_next -= 1
            raw = JSONResponse(body).body
            return Response(raw[: len(raw) // 2], media_type="application/json")
        return body

    @api.get("/users/me/transactions")
    async def transactions(request: Request, user: int = Depends(current_user)):
        return await list_transactions(request, None, user)

    @api.get("/users/me/accounts/{account_id}/transactions")
    async def account_transactions(request: Request, account_id: int, user: int = Depends(current_user)):
        return await list_transactions(request, account_id, user)

    # -- billers (the "Documents" product): subscriptions, documents, their files --

    def biller_items(user: int, connection_id: int | None = None):
        found = []
        for connection in list(world.connections.values()):
            connector = world.connector(connection.id_connector)
            if connection.id_user != user or connector is None or "document" not in connector.capabilities or connection.state is not None:
                continue
            if connection_id is not None and connection.id != connection_id:
                continue
            found.append(biller_documents(world, connection))
        return found

    def public(document: dict) -> dict:
        return {k: v for k, v in document.items() if not k.startswith("_")}

    @api.get("/users/me/subscriptions")
    async def subscriptions(user: int = Depends(current_user)):
        found = [subscription for subscription, _ in biller_items(user)]
        return {"subscriptions": found, "total": len(found)}

    @api.get("/users/me/subscriptions/{subscription_id}/documents")
    @api.get("/users/me/documents")
    async def documents(subscription_id: int | None = None, user: int = Depends(current_user)):
        found = [public(d) for subscription, docs in biller_items(user) for d in docs
                 if subscription_id is None or subscription["id"] == subscription_id]
        return {"documents": found, "total": len(found)}

    @api.get("/users/me/documents/{document_id}/file")
    async def document_file(document_id: int, user: int = Depends(current_user)):
        for _, docs in biller_items(user):
            for d in docs:
                if d["id"] == document_id:
                    content = biller_pdf(d["_biller"], d["number"], date.fromisoformat(d["date"]), d["_amount"],
                                         d["_subscriber"])
                    return Response(content, media_type="application/pdf")
        return _error(404, "documentNotFound", f"Document {document_id} not found.")

    app.include_router(api)
    _webview(app, world)
    _control(app, world)
    return app


# --- the webview --------------------------------------------------------------------------------

_STYLE = "body{font-family:sans-serif;max-width:32em;margin:2em auto}button{margin:.3em}.error{color:#b00}"


def _page(title: str, body: str, refresh: bool = False) -> HTMLResponse:
    meta = '<meta http-equiv="refresh" content="1">' if refresh else ""
    return HTMLResponse(
        f"<!doctype html><html lang=fr><head><meta charset=utf-8>{meta}<title>{html.escape(title)} – Powens</title>"
        f"<style>{_STYLE}</style></head><body><header>Powens · connexion bancaire sécurisée</header>"
        f"<h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def _choose_title(capabilities: tuple[str, ...]) -> str:
    banks = any(c in ("bank", "bankwealth", "transfer") for c in capabilities)
    billers = "document" in capabilities
    if banks and billers:
        return "Choisissez votre banque ou votre fournisseur"
    return "Choisissez votre fournisseur" if billers else "Choisissez votre banque"


def _redirect(session: WebviewSession, **params: str) -> RedirectResponse:
    if session.state:
        params["state"] = session.state
    separator = "&" if "?" in session.redirect_uri else "?"
    return RedirectResponse(f"{session.redirect_uri}{separator}{urlencode(params)}", status_code=303)


CONSENT_TEXT = (
    "En continuant, vous autorisez Powens, établissement de paiement agréé, à accéder aux informations de vos "
    "comptes (soldes et opérations) et à les transmettre à l'application qui vous a envoyé ici. Vous pouvez "
    "retirer ce consentement à tout moment."
)


def _cancel_button(session_id: str) -> str:
    return f'<form method=post action="/webview/{session_id}/cancel"><button name=cancel>Annuler</button></form>'


def _webview(app: FastAPI, world: PowensWorld) -> None:
    def start(flow: str, request: Request):
        query = request.query_params
        if query.get("client_id") != world.client_id:
            return _page("Erreur", '<p class=error id=error>client_id inconnu.</p>')
        redirect_uri = query.get("redirect_uri") or ""
        if not redirect_uri.startswith(("http://", "https://")):
            return _page("Erreur", '<p class=error id=error>redirect_uri manquant ou invalide.</p>')
        user = world.take_code(query.get("code") or "")
        if user is None:
            return _page("Erreur", '<p class=error id=error>Lien expiré ou déjà utilisé : demandez un nouveau lien.</p>')
        asked = tuple(c.strip() for c in (query.get("connector_capabilities") or "bank").split(",") if c.strip())
        session = WebviewSession(id=world.new_code(0), id_user=user, redirect_uri=redirect_uri,
                                 state=query.get("state"), flow=flow, capabilities=asked or ("bank",))
        world.webviews[session.id] = session
        if flow in ("reconnect", "manage") and query.get("connection_id"):
            connection = world.connections.get(int(query["connection_id"]))
            if connection is None or connection.id_user != user:
                return _page("Erreur", '<p class=error id=error>Connexion inconnue.</p>')
            session.connection_id, session.connector_id = connection.id, connection.id_connector
            session.step = "credentials"
            session.consented = True
        if flow == "manage" and session.connection_id is None:
            session.step = "manage"
        return RedirectResponse(f"/webview/{session.id}", status_code=303)

    @app.get("/connect")
    async def connect(request: Request):
        return start("connect", request)

    @app.get("/reconnect")
    async def reconnect(request: Request):
        return start("reconnect", request)

    @app.get("/manage")
    async def manage(request: Request):
        return start("manage", request)

    def webview_session(session_id: str) -> WebviewSession:
        session = world.webviews.get(session_id)
        if session is None:
            raise _Refused(_page("Erreur", '<p class=error id=error>Session expirée.</p>'))
        return session

    @app.get("/webview/{session_id}")
    async def show(session: WebviewSession = Depends(webview_session)):
        cancel = _cancel_button(session.id)
        if session.step == "bank":
            banks = "".join(
                f'<li><form method=post action="/webview/{session.id}/bank"><input type=hidden name=connector '
                f'value="{c.id}"><button class=bank data-name="{html.escape(c.name)}">{html.escape(c.name)}</button></form></li>'
                for c in world.connectors if c.offered(session.capabilities)
            )
            title = _choose_title(session.capabilities)
            return _page(title, f"<ul id=banks>{banks}</ul>{cancel}")
        if session.step == "consent":
            return _page("Votre consentement", f"<p id=consent-text>{html.escape(CONSENT_TEXT)}</p>"
                         f'<form method=post action="/webview/{session.id}/consent">'
                         '<button name=decision value=accept id=accept>J\'accepte</button>'
                         '<button name=decision value=refuse id=refuse>Je refuse</button></form>')
        if session.step == "credentials":
            connector = world.connector(session.connector_id)
            error = '<p class=error id=error>Identifiant ou mot de passe incorrect.</p>' if session.errors else ""
            return _page(f"Connexion à {connector.name}", f"{error}"
                         f'<form method=post action="/webview/{session.id}/credentials">'
                         '<label>Identifiant <input name=login id=login autocomplete=off></label><br>'
                         '<label>Mot de passe <input name=password id=password type=password></label><br>'
                         '<button id=submit>Se connecter</button></form>' + cancel)
        if session.step == "sms":
            error = '<p class=error id=error>Code incorrect.</p>' if session.errors else ""
            return _page("Authentification forte", f"{error}<p id=sca>Saisissez le code reçu par SMS.</p>"
                         f'<form method=post action="/webview/{session.id}/sms"><input name=code id=code>'
                         '<button id=submit>Valider</button></form>' + cancel)
        if session.step == "decoupled":
            if _approved(world, session):
                return _finish(world, session)
            return _page("Authentification forte", "<p id=decoupled>Validez la connexion dans l'application de votre "
                         "banque. Cette page se met à jour d'elle-même.</p>" + cancel, refresh=True)
        if session.step == "manage":
            rows = "".join(
                f'<li>Connexion {c.id} ({html.escape(world.connector(c.id_connector).name)})'
                f'<form method=post action="/webview/{session.id}/delete"><input type=hidden name=connection '
                f'value="{c.id}"><button class=delete>Supprimer</button></form></li>'
                for c in world.connections.values() if c.id_user == session.id_user
            )
            done = f'<form method=post action="/webview/{session.id}/done"><button id=done>Terminer</button></form>'
            return _page("Vos connexions", f"<ul id=connections>{rows}</ul>{done}")
        return _page("Erreur", "<p class=error id=error>Étape inconnue.</p>")

    @app.post("/webview/{session_id}/bank")
    async def bank(connector: int = Form(...), session: WebviewSession = Depends(webview_session)):
        chosen = world.connector(connector)
        if chosen is None or not chosen.offered(session.capabilities):  # a restricted one: no new connection
            said = ("Cet établissement n'accepte pas de nouvelle connexion pour cette application."
                    if chosen is not None and chosen.restricted else "Établissement inconnu.")
            return _page("Établissement indisponible", f"<p class=error id=error>{said}</p>"
                         + _cancel_button(session.id))
        session.connector_id = connector
        session.step = "consent"
        return RedirectResponse(f"/webview/{session.id}", status_code=303)

    @app.post("/webview/{session_id}/consent")
    async def consent(decision: str = Form(...), session: WebviewSession = Depends(webview_session)):
        if decision != "accept":
            world.webviews.pop(session.id, None)
            return _redirect(session, error="access_denied", error_description="The user refused the consent.")
        session.consented = True
        session.step = "credentials"
        return RedirectResponse(f"/webview/{session.id}", status_code=303)

    @app.post("/webview/{session_id}/credentials")
    async def credentials(
        login: str = Form(""), password: str = Form(""), session: WebviewSession = Depends(webview_session)
    ):
        if not session.consented:
            return _page("Erreur", "<p class=error id=error>Consentement manquant.</p>")
        if password != PASSWORD or not login:
            session.errors += 1
            return RedirectResponse(f"/webview/{session.id}", status_code=303)
        session.errors = 0
        session.login = login.strip()
        if session.login == "decoupled":
            session.step = "decoupled"
            session.decoupled_since = datetime.now().timestamp()
        elif session.login in DOCUMENTED_STATES or session.login.startswith("bench-"):
            return _finish(world, session)  # the connection is created in that state
        else:
            session.step = "sms"
        return RedirectResponse(f"/webview/{session.id}", status_code=303)

    @app.post("/webview/{session_id}/sms")
    async def sms(code: str = Form(""), session: WebviewSession = Depends(webview_session)):
        if code.strip() != SMS_CODE:
            session.errors += 1
            return RedirectResponse(f"/webview/{session.id}", status_code=303)
        return _finish(world, session)

    @app.post("/webview/{session_id}/cancel")
    async def cancel(session: WebviewSession = Depends(webview_session)):
        world.webviews.pop(session.id, None)
        return _redirect(session, error="cancelled", error_description="The user left the webview.")

    @app.post("/webview/{session_id}/delete")
    async def delete(connection: int = Form(...), session: WebviewSession = Depends(webview_session)):
        found = world.connections.get(connection)
        if found is not None and found.id_user == session.id_user:
            world.delete_connection(connection)
        return RedirectResponse(f"/webview/{session.id}", status_code=303)

    @app.post("/webview/{session_id}/done")
    async def done(session: WebviewSession = Depends(webview_session)):
        world.webviews.pop(session.id, None)
        return _redirect(session)


def _approved(world: PowensWorld, session: WebviewSession) -> bool:
    if session.approved:
        return True
    waited = datetime.now().timestamp() - (session.decoupled_since or 0)
    return world.decoupled_seconds is not None and waited >= world.decoupled_seconds


def _finish(world: PowensWorld, session: WebviewSession):
    world.webviews.pop(session.id, None)
    if session.connection_id is not None:  # reconnect: the same connection, its state cleared
        connection = world.connections[session.connection_id]
        world.reconnected(connection)
    else:
        connection = world.create_connection(session.id_user, session.connector_id, session.login or "ok")
    return _redirect(session, connection_id=str(connection.id))


def _control(app: FastAPI, world: PowensWorld) -> None:
    router = APIRouter(prefix="/_sandbox")

    @router.get("/clock")
    async def clock():
        return {"today": world.today.isoformat()}

    @router.post("/clock")
    async def set_clock(body: dict):
        world.today = date.fromisoformat(body["today"])
        return {"today": world.today.isoformat()}

    @router.post("/connections/{connection_id}/state")
    async def set_state(connection_id: int, body: dict):
        connection = world.connections.get(connection_id)
        if connection is None:
            return _error(404, "connectionNotFound", "no such connection")
        state = body.get("state")
        if state is not None and state not in DOCUMENTED_STATES:
            return _error(400, "invalidValue", f"unknown state {state}")
        connection.state = state
        return connection.payload()

    @router.post("/connections/approve")
    async def approve():
        """The holder approves, in the bank's app, every login waiting for a decoupled approval: in the webview,
        and connections whose synchronisation waits in state ``decoupled`` (cleared: the next sync succeeds)."""
        count = 0
        for session in world.webviews.values():
            if session.step == "decoupled":
                session.approved = True
                count += 1
        for connection in world.connections.values():
            if connection.state == "decoupled":
                connection.state = None
                count += 1
        return {"approved": count}

    @router.post("/users/{user}/revoke")
    async def revoke(user: int):
        world.revoke_user(user)
        return {"revoked": user}

    @router.post("/faults")
    async def faults(body: dict):
        world.truncate_next = int(body.get("truncate_transactions", 0))
        if "rate_limit" in body:
            world.rate_limit = body["rate_limit"] or None
            world.calls.clear()
        if "first_movements_delay" in body:
            world.first_movements_delay = float(body["first_movements_delay"])
        return {"truncate_transactions": world.truncate_next, "rate_limit": world.rate_limit}

    @router.get("/requests")
    async def requests():
        return {"requests": world.requests_seen}

    @router.get("/connections")
    async def all_connections():
        return {"connections": [c.payload() for c in world.connections.values()]}

    app.include_router(router)
