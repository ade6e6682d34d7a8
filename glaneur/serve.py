"""``glaneur serve``: the small callback service POWENS talks to (FastAPI, run by uvicorn).

* ``GET /bank/reconnect/{channel}?exp=&sig=``: the link sent to the account holder when the bank
  asks a second factor or a new password. Signed and expiring, it carries no Powens code: the code
  (single-use, short-lived) is minted only when the holder opens it, then the holder is sent to the
  POWENS reconnect webview.
* ``GET /powens/callback``: where the webview sends the holder back (``connection_id``, ``state``,
  or ``error`` and ``error_description``). ``state`` is signed here, so a forged callback changes
  nothing. A success starts the channel's collection; a refusal or an abandon is recorded as such.
* ``GET /evidence/{key}?exp=&sig=``: a changed portal's screenshot or trace on local storage, for the
  links of the Prefect artifacts (``tasks.evidence``): signed with a key derived from the vault key,
  expiring (``GLANEUR_EVIDENCE_LINK_TTL_SECONDS``), evidence keys only.
* ``POST /powens/webhooks``: Powens' webhooks, checked before anything is read: ``BI-Signature`` is
  the base64 HMAC-SHA256, under the webhook secret, of ``METHOD.PATH.BI-Signature-Date.BODY``
  (Powens' webhook authentication, as we read it: confirm against the console's settings before
  production), and the date must be recent. ``CONNECTION_SYNCED`` starts the channel's collection on
  the ``collect-bank-movements`` deployment (idempotent per sync); ``CONNECTION_DELETED`` records that
  the connection is gone.

Production: run it behind HTTPS (``glaneur serve --host 0.0.0.0 --port 8707`` behind a reverse proxy),
set ``GLANEUR_POWENS_REDIRECT_URI`` to its ``/powens/callback``, ``GLANEUR_POWENS_PUBLIC_URL`` to its
base URL and ``GLANEUR_POWENS_WEBHOOK_SECRET`` to the secret set in Powens' console for webhooks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlmodel import select

from glaneur import bank
from glaneur.db import session_scope
from glaneur.models import BankConnection, Channel, utcnow
from glaneur.statuses import Status

LINK_TTL_SECONDS = 7 * 24 * 3600
WEBHOOK_MAX_AGE_SECONDS = 300
BANK_DEPLOYMENT = "collect-bank-movements/collect-bank-movements"


def _key(settings: bank.PowensSettings) -> bytes:
    """The key signing links and ``state``: derived from the client secret, never sent anywhere."""
    _, _, secret = settings.require()
    return hmac.new(secret.encode(), b"glaneur links", hashlib.sha256).digest()


def sign(settings: bank.PowensSettings, text: str) -> str:
    return hmac.new(_key(settings), text.encode(), hashlib.sha256).hexdigest()


def reconnect_link(settings: bank.PowensSettings, channel: str, *, now: float | None = None) -> str:
    expires = int((now or time.time()) + LINK_TTL_SECONDS)
    return f"{settings.public_url.rstrip('/')}/bank/reconnect/{channel}?" + urlencode(
        {"exp": expires, "sig": sign(settings, f"reconnect:{channel}:{expires}")})


def webhook_signature(secret: str, method: str, path: str, date: str, body: bytes) -> str:
    message = f"{method.upper()}.{path}.{date}.".encode() + body
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def _page(title: str, text: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
                        f"<h1>{html.escape(title)}</h1><p id=message>{html.escape(text)}</p>", status_code=status)


def start_collection(channel: str, key: str) -> str | None:
    """A ``collect-bank-movements`` run on its deployment (workers take it); idempotent per ``key``."""
    from prefect.deployments import run_deployment

    run = run_deployment(BANK_DEPLOYMENT, parameters={"channel": channel}, idempotency_key=key, timeout=0)
    return str(run.id)


def create_callback_app(settings: bank.PowensSettings | None = None,
                        start: Callable[[str, str], str | None] = start_collection) -> FastAPI:
    settings = settings or bank.powens_settings()
    app = FastAPI(title="Glaneur callbacks", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    async def healthz():
        return {"ok": True}

    @app.get("/evidence/{key:path}")
    def evidence(key: str, exp: int = 0, sig: str = ""):
        """A portal-changed run's screenshot or trace on local storage, through a signed, expiring link."""
        from glaneur.settings import get_settings
        from glaneur.storage import ObjectNotFound, get_storage
        from tasks.evidence import check_local_link

        glaneur_settings = get_settings()
        if not check_local_link(glaneur_settings, key, exp, sig):
            return _page("Lien invalide", "Ce lien a expiré ou n'est pas valide : rouvrez-le depuis l'interface Prefect.", 403)
        try:
            content = get_storage(glaneur_settings).get(key)
        except ObjectNotFound:
            return _page("Introuvable", "Cette pièce n'existe plus dans le stockage.", 404)
        name = key.rsplit("/", 1)[-1]
        if name.endswith(".png"):
            return Response(content, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})
        return Response(content, media_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @app.get("/bank/reconnect/{channel}")
    def reconnect(channel: str, exp: int = 0, sig: str = ""):
        if exp < time.time() or not hmac.compare_digest(sig, sign(settings, f"reconnect:{channel}:{exp}")):
            return _page("Lien invalide", "Ce lien a expiré ou n'est pas valide : demandez-en un nouveau.", 403)
        from connectors.powens import PowensClient, webview_url

        api_url, client_id, _ = settings.require()
        with session_scope() as session:
            _, connection = bank.get_connection(session, channel)
            token = bank.read_token(session, connection)
            powens_id = connection.powens_connection_id
        with PowensClient(api_url, client_id=client_id, token=token) as client:
            code = client.temporary_code()
            domain = client.domain
        state = f"{channel}.{int(time.time()) + 3600}"
        url = webview_url(settings.webview_url, "reconnect", domain=domain, client_id=client_id,
                          redirect_uri=settings.redirect_uri, code=code, connection_id=powens_id,
                          state=f"{state}.{sign(settings, 'state:' + state)}")
        return RedirectResponse(url, status_code=303)

    @app.get("/powens/callback")
    def callback(state: str = "", connection_id: int | None = None, error: str | None = None,
                 error_description: str = ""):
        channel, _, rest = state.partition(".")
        expires, _, signature = rest.partition(".")
        if not (expires.isdigit() and int(expires) > time.time()
                and hmac.compare_digest(signature, sign(settings, f"state:{channel}.{expires}"))):
            return _page("Lien invalide", "Ce retour de POWENS n'est pas reconnu : rien n'a été modifié.", 403)
        with session_scope() as session:
            found, connection = bank.get_connection(session, channel)
            if error or connection_id is None:
                found.status_message = (f"The account holder left the POWENS page without finishing ({error}: "
                                        f"{error_description}). Send the reconnect link again.")
                session.add(found)
                return _page("Connexion non terminée", "Rien n'a été modifié. Vous pouvez recommencer avec le même lien.")
            if connection.powens_connection_id != connection_id:
                return _page("Connexion inconnue", "Cette connexion n'est pas celle attendue : rien n'a été modifié.", 409)
            bank.record_state(session, connection, None, None)
            bank.admin.audit_log_entry(session, bank.admin.organization_of(session, found), None,
                                       "bank.reconnect", found.slug, "by the holder, through the reconnect link")
        start(channel, f"bank-callback-{channel}-{connection_id}-{int(time.time())}")
        return _page("Connexion terminée", "Merci : la banque est reconnectée, la récupération reprend.")

    @app.post("/powens/webhooks")
    async def webhooks(request: Request):
        body = await request.body()
        secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
        date = request.headers.get("bi-signature-date", "")
        given = request.headers.get("bi-signature", "")
        if not secret:
            return JSONResponse({"error": "webhooks are not configured (GLANEUR_POWENS_WEBHOOK_SECRET)"}, 503)
        expected = webhook_signature(secret, request.method, request.url.path, date, body)
        if not given or not hmac.compare_digest(given, expected) or not _recent(date):
            return JSONResponse({"error": "bad signature"}, 401)
        # Database and Prefect calls are blocking: off the event loop (run_deployment is sync there).
        return await run_in_threadpool(_handle_webhook, body, request.headers.get("bi-event"), date, start)

    return app


def _handle_webhook(body: bytes, event: str | None, date: str, start: Callable[[str, str], str | None]):
    try:
        payload = json.loads(body)
        event = event or payload.get("event") or payload.get("type")
        connection_id = int((payload.get("connection") or payload).get("id"))
    except (ValueError, TypeError, AttributeError):
        return JSONResponse({"error": "not a Powens webhook"}, 400)
    with session_scope() as session:
        found = session.exec(select(BankConnection).where(BankConnection.powens_connection_id == connection_id)).first()
        if found is None:
            return JSONResponse({"ignored": "unknown connection"}, 202)
        channel = session.get(Channel, found.channel_id)
        slug = channel.slug
        if event == "CONNECTION_DELETED":
            found.state, found.deleted_at = "deleted", utcnow()
            channel.status = Status.AWAITING_CREDENTIALS
            channel.status_message = ("The connection was deleted at POWENS (by the holder, or in the manage "
                                      "page): connect the bank again to resume.")
            session.add_all([found, channel])
            return {"recorded": "deleted"}
    if event == "CONNECTION_SYNCED":
        run = start(slug, f"bank-webhook-{slug}-{connection_id}-{date}")
        return {"started": run}
    return JSONResponse({"ignored": event}, 202)



def _recent(date: str) -> bool:
    try:
        moment = datetime.fromisoformat(date.replace("Z", "+00:00"))
    except ValueError:
        return False
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return abs((datetime.now(UTC) - moment).total_seconds()) <= WEBHOOK_MAX_AGE_SECONDS


def serve(host: str = "127.0.0.1", port: int = 8707) -> None:  # pragma: no cover - the command's body
    import uvicorn

    uvicorn.run(create_callback_app(), host=host, port=port, log_level="info", access_log=False)
