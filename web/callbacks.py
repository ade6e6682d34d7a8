"""``glaneur serve``: the small HTTP service POWENS and account holders talk to (FastAPI, run by uvicorn).

An HTTP service, outside the domain: it starts Prefect runs and calls POWENS; the links it checks
are signed by :mod:`glaneur.signing`.

* ``GET /bank/reconnect/{channel}?exp=&sig=``: the link sent to the account holder when the bank
  asks a second factor or a new password. Signed and expiring, it carries no Powens code: the code
  (single-use, short-lived) is minted only when the holder opens it, then the holder is sent to the
  POWENS reconnect webview.
* ``GET /powens/callback``: where the webview sends the holder back (``connection_id``, ``state``,
  or ``error`` and ``error_description``). ``state`` is signed here, so a forged callback changes
  nothing. A success starts the channel's collection; a refusal or an abandon is recorded as such.
* ``GET``/``POST /credentials/{invitation}?exp=&sig=``: the supplier account holder's form for an invitation
  (``channel invite``), signed with a key derived from the vault key: the answer is checked, then handed to
  the suspended ``request-credentials`` run (``resume_flow_run``), which stores it in the vault and deletes
  Prefect's copy. The holder never needs the Prefect UI.
* ``GET /evidence/{key}?exp=&sig=``: a changed portal's screenshot or trace on local storage, for the
  links of the Prefect artifacts (``tasks.evidence``): signed with a key derived from the vault key,
  expiring (``GLANEUR_EVIDENCE_LINK_TTL_SECONDS``), evidence keys only.
* ``POST /powens/webhooks`` (or ``/powens/webhooks/connection-synced``, one URL per event as registered
  in the console): Powens' webhooks, checked before anything is read: ``BI-Signature`` is the base64
  HMAC-SHA256, under the webhook secret (an ``hmac_signature`` webhook auth of the domain), of
  ``POST.{path}.{BI-Signature-Date}.{body}``, and the date must be recent. Sources: Powens' "Webhooks"
  guide (docs.powens.com/documentation/integration-guides/webhooks, "Authentication"), and the same
  check in an open-source production client (formancehq/payments,
  internal/connectors/plugins/public/powens/webhooks.go, ``verifyWebhook``). Payloads as documented:
  ``CONNECTION_SYNCED`` carries ``{"user": {...}, "connection": {"id", "state", ...}}``,
  ``CONNECTION_DELETED`` the connection itself (``{"id": ...}``). ``CONNECTION_SYNCED`` starts the channel's collection on
  the ``collect-bank-movements`` deployment (idempotent per sync); ``CONNECTION_DELETED`` records that
  the connection is gone.

Production: run it behind HTTPS (``glaneur serve --host 0.0.0.0 --port 8707`` behind a reverse proxy),
set ``GLANEUR_POWENS_REDIRECT_URI`` to its ``/powens/callback``, ``GLANEUR_POWENS_PUBLIC_URL`` to its
base URL and ``GLANEUR_POWENS_WEBHOOK_SECRET`` to the secret set in Powens' console for webhooks.
"""

from __future__ import annotations

import hmac
import html
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlmodel import select
from starlette.concurrency import run_in_threadpool

from glaneur import bank
from glaneur.db import session_scope
from glaneur.errors import GlaneurError
from glaneur.models import BankConnection, Channel, utcnow
from glaneur.signing import sign, webhook_signature
from glaneur.statuses import Status

WEBHOOK_MAX_AGE_SECONDS = 300
BANK_DEPLOYMENT = "collect-bank-movements/collect-bank-movements"


def _signed_state(settings: bank.PowensSettings, subject: str) -> str:
    """``state`` for the webview: what the callback is about, an expiry, a signature (a forged return changes nothing)."""
    state = f"{subject}.{int(time.time()) + 3600}"
    return f"{state}.{sign(settings, 'state:' + state)}"


def _page(title: str, text: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
                        f"<h1>{html.escape(title)}</h1><p id=message>{html.escape(text)}</p>", status_code=status)


def start_collection(channel: str, key: str) -> str | None:
    """A ``collect-bank-movements`` run on its deployment (workers take it); idempotent per ``key``."""
    from prefect.deployments import run_deployment

    run = run_deployment(BANK_DEPLOYMENT, parameters={"channel": channel}, idempotency_key=key, timeout=0)
    return str(run.id)


def resume_invitation_run(flow_run_id: str, connection_id: int) -> bool:
    """Resume the suspended ``request-bank-connection`` run; False (logged) when Prefect refuses or is away:
    the connection is recorded all the same, and the daily dispatch collects it."""
    import logging

    from prefect.flow_runs import resume_flow_run

    try:
        resume_flow_run(flow_run_id, run_input={"connection_id": connection_id})
    except Exception as error:  # noqa: BLE001 - reported, the holder's connection is kept
        logging.getLogger("glaneur.serve").warning("Could not resume the invitation run %s: %s", flow_run_id, error)
        return False
    return True


def create_callback_app(settings: bank.PowensSettings | None = None,
                        start: Callable[[str, str], str | None] = start_collection,
                        resume: Callable[[str, int], bool] = resume_invitation_run) -> FastAPI:
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
        url = webview_url(settings.webview_url, "reconnect", domain=domain, client_id=client_id,
                          redirect_uri=settings.redirect_uri, code=code, connection_id=powens_id,
                          state=_signed_state(settings, channel))
        return RedirectResponse(url, status_code=303)

    def open_invitation(invitation_id: int, exp: int, sig: str):
        """The invitation and its channel's connection while the link is valid and the invitation open, else a page."""
        from glaneur.invoices import invitations as invites
        from glaneur.models import Invitation

        if not hmac.compare_digest(sig, sign(settings, f"invitation:{invitation_id}:{exp}")):
            return None, _page("Lien invalide", "Ce lien n'est pas valide : demandez-en un nouveau.", 403)
        with session_scope() as session:
            invitation = session.get(Invitation, invitation_id)
            if invitation is None or not invites.is_open(invitation):
                answered = invitation is not None and invitation.state.value == "answered"
                return None, _page("Demande terminée" if answered else "Lien expiré",
                                   "Cette demande a déjà reçu sa réponse : la banque est connectée." if answered else
                                   "Cette demande a expiré ou a été annulée : demandez-en une nouvelle.", 410)
            channel = session.get(Channel, invitation.channel_id)
            if not channel.active:
                return None, _page("Lien expiré", "Cette demande a été annulée.", 410)
            return (invitation.id, invitation.email, channel.slug, invitation.flow_run_id), None

    @app.get("/bank/invitation/{invitation_id}")
    def invitation_page(invitation_id: int, exp: int = 0, sig: str = ""):
        """Option 2, step 1: the consent text (with the GDPR warning) the holder accepts before any connection."""
        found, page = open_invitation(invitation_id, exp, sig)
        if page:
            return page
        _, email, slug, _ = found
        with session_scope() as session:
            channel, connection = bank.get_connection(session, slug)
            text = bank.consent_text(session.get(bank.Organization, channel.organization_id),
                                     session.get(bank.Bank, connection.bank_id))
        paragraphs = "".join(f"<p>{html.escape(p)}</p>" for p in text.split("\n\n"))
        return HTMLResponse(
            f"<!doctype html><meta charset=utf-8><title>Votre consentement</title><h1>Votre consentement</h1>"
            f"<p>Demande adressée à {html.escape(email)}.</p><div id=consent>{paragraphs}</div>"
            f'<form method=post action="/bank/invitation/{invitation_id}/consent">'
            f'<input type=hidden name=exp value="{exp}"><input type=hidden name=sig value="{html.escape(sig)}">'
            "<button name=decision value=accept id=accept>J'accepte et je connecte ma banque</button> "
            "<button name=decision value=refuse id=refuse>Je refuse</button></form>")

    @app.post("/bank/invitation/{invitation_id}/consent")
    async def invitation_consent(invitation_id: int, request: Request):
        form = await request.form()
        exp = str(form.get("exp", ""))
        return await run_in_threadpool(_consent, invitation_id, str(form.get("decision", "")),
                                       int(exp) if exp.isdigit() else 0, str(form.get("sig", "")))

    def _consent(invitation_id: int, decision: str, exp: int, sig: str):
        """Option 2, step 2: the consent recorded, the holder's POWENS user made, then off to the webview."""
        found, page = open_invitation(invitation_id, exp, sig)
        if page:
            return page
        _, email, slug, _ = found
        given = decision == "accept"
        with session_scope() as session:
            _, connection = bank.get_connection(session, slug)
            bank.holder_consents(session, connection, email, given=given)
            has_token = connection.token_ref is not None
        if not given:
            return _page("Refus enregistré", "Votre refus est enregistré : rien n'a été connecté.")
        try:
            url = _webview_for_invitation(slug, invitation_id, has_token)
        except GlaneurError as error:  # Powens away or refusing: nothing half-done, the same link works later
            return _page("POWENS indisponible", f"La page POWENS ne peut pas s'ouvrir maintenant ({error.status.value}) :"
                         " réessayez plus tard avec le même lien.", 503)
        return RedirectResponse(url, status_code=303)

    def _webview_for_invitation(slug: str, invitation_id: int, has_token: bool) -> str:
        from connectors.powens import PowensClient, webview_url

        api_url, client_id, client_secret = settings.require()
        if not has_token:  # the first visit: the holder's Powens user, its permanent token to the vault
            with PowensClient(api_url, client_id=client_id, client_secret=client_secret) as client:
                token, powens_user = client.init_user()
            with session_scope() as session:
                _, connection = bank.get_connection(session, slug)
                bank.store_token(session, connection, powens_user_id=powens_user, token=token)
        with session_scope() as session:  # a later visit (the holder left the webview): the same Powens user
            _, connection = bank.get_connection(session, slug)
            token = bank.read_token(session, connection)
        with PowensClient(api_url, client_id=client_id, token=token) as client:
            code = client.temporary_code()
            url = webview_url(settings.webview_url, "connect", domain=client.domain, client_id=client_id,
                              redirect_uri=settings.redirect_uri, code=code,
                              state=_signed_state(settings, f"~inv{invitation_id}"))
        return url

    @app.get("/powens/callback")
    def callback(state: str = "", connection_id: int | None = None, error: str | None = None,
                 error_description: str = ""):
        channel, _, rest = state.partition(".")
        expires, _, signature = rest.partition(".")
        if not (expires.isdigit() and int(expires) > time.time()
                and hmac.compare_digest(signature, sign(settings, f"state:{channel}.{expires}"))):
            return _page("Lien invalide", "Ce retour de POWENS n'est pas reconnu : rien n'a été modifié.", 403)
        if channel.startswith("~inv"):
            return _invitation_returned(int(channel.removeprefix("~inv")), connection_id, error, error_description)
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

    def _invitation_returned(invitation_id: int, connection_id: int | None, error: str | None, description: str):
        """Option 2, step 3: the webview came back; the connection is recorded, then the waiting run resumed."""
        from glaneur.invoices import invitations as invites
        from glaneur.models import Invitation, InvitationState

        with session_scope() as session:
            invitation = session.get(Invitation, invitation_id)
            if invitation is None or not invites.is_open(invitation):
                return _page("Demande terminée", "Cette demande n'attend plus de réponse : rien n'a été modifié.", 410)
            channel = session.get(Channel, invitation.channel_id)
            _, connection = bank.get_connection(session, channel)
            if error or connection_id is None:
                channel.status_message = (f"{invitation.email} left the POWENS page without finishing ({error}: "
                                          f"{description}). The invitation link still works until it expires.")
                session.add(channel)
                return _page("Connexion non terminée",
                             "Rien n'a été connecté. Vous pouvez recommencer avec le lien de la demande.")
            if connection.consent_id is None or connection.token_ref is None:
                return _page("Consentement manquant", "Le consentement n'a pas été enregistré : rouvrez le lien.", 409)
            bank.connected(session, connection, connection_id, settings=settings)
            invites.mark(session, invitation, InvitationState.ANSWERED)
            bank.admin.audit_log_entry(session, bank.admin.organization_of(session, channel), None, "bank.connect",
                                       channel.slug, f"by the holder {invitation.email}, through the invitation")
            flow_run_id = invitation.flow_run_id
        resumed = resume(flow_run_id, connection_id) if flow_run_id else False
        return _page("Connexion terminée", "Merci : votre banque est connectée. Les premiers mouvements arrivent 48 à "
                     "72 heures après la connexion." + ("" if resumed else " (La collecte commencera à la prochaine "
                                                                        "récupération quotidienne.)"))

    @app.post("/powens/webhooks")
    @app.post("/powens/webhooks/{event_path}")
    async def webhooks(request: Request, event_path: str | None = None):
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
        event = request.headers.get("bi-event") or (event_path.replace("-", "_").upper() if event_path else None)
        return await run_in_threadpool(_handle_webhook, body, event, date, start)

    # -- a supplier account holder's credentials (channel invite), without the Prefect UI --

    def _credentials_invitation(invitation_id: int, exp: int, sig: str):
        """The invitation behind a valid credentials link while it waits for an answer, else the page saying why."""
        from glaneur.invoices import invitations as invites
        from glaneur.models import Invitation, InvitationState
        from glaneur.settings import get_settings
        from glaneur.signing import check_credentials_link

        if not check_credentials_link(get_settings(), invitation_id, exp, sig):
            return None, _page("Lien invalide", "Ce lien n'est pas valide : demandez-en un nouveau.", 403)
        with session_scope() as session:
            invitation = session.get(Invitation, invitation_id)
            channel = session.get(Channel, invitation.channel_id) if invitation else None
            if invitation is None or not invites.is_open(invitation) or not channel.active:
                if invitation is not None and invitation.state == InvitationState.ANSWERED:
                    return None, _page("Demande terminée", "Vos identifiants ont déjà été enregistrés : la collecte "
                                       "est active. Rien d'autre à faire.", 410)
                return None, _page("Lien expiré", "Cette demande a expiré ou a été annulée : demandez-en une "
                                   "nouvelle à la personne qui vous l'a envoyée.", 410)
            return CredentialsRequest(invitation.id, invitation.email, channel.slug, channel.label, channel.provider,
                                      channel.portal_url, invitation.refusal, invitation.flow_run_id or "",
                                      invites.form_key(invitation)), None

    @app.get("/credentials/{invitation_id}")
    def credentials_page(invitation_id: int, exp: int = 0, sig: str = ""):
        """The form the invitation's link opens: the login and password of the supplier's customer area."""
        found, page = _credentials_invitation(invitation_id, exp, sig)
        return page or _credentials_form(found, exp, sig, found.refusal)

    @app.post("/credentials/{invitation_id}")
    async def credentials_answer(invitation_id: int, request: Request):
        form = await request.form()
        exp = str(form.get("exp", ""))
        fields = {name: str(form.get(name, "")) for name in ("login", "password", "totp_seed")}
        return await run_in_threadpool(_answer_credentials, invitation_id, int(exp) if exp.isdigit() else 0,
                                       str(form.get("sig", "")), **fields)

    def _answer_credentials(invitation_id: int, exp: int, sig: str, *, login: str, password: str, totp_seed: str):
        """Checked here first (the form says why, nothing stored), then handed to the waiting run, which stores it
        in the vault and deletes Prefect's copy at once, as for an answer typed in the Prefect UI."""
        from prefect.exceptions import FlowPauseTimeout
        from prefect.flow_runs import NotPausedError, resume_flow_run

        from glaneur import admin
        from glaneur.errors import UsageError
        from tasks.human import delete_input

        found, page = _credentials_invitation(invitation_id, exp, sig)
        if page:
            return page
        try:
            if not password:
                raise UsageError("the password is empty: type the password of the supplier's customer area.")
            with session_scope() as session:
                admin.check_answer(session, found.channel, login, totp_seed)
        except UsageError as error:
            return _credentials_form(found, exp, sig, str(error), login=login, status=400)
        answer = {"login": login.strip(), "password": password, **({"totp_seed": totp_seed} if totp_seed.strip() else {})}
        try:
            resume_flow_run(found.flow_run_id, run_input=answer)
        except NotPausedError:  # refused before anything was sent
            return _page("Demande en cours", "Une réponse est déjà en cours de traitement : rouvrez ce lien dans une "
                         "minute pour voir où elle en est.", 409)
        except Exception as error:  # noqa: BLE001 - the holder tries again; what Prefect may have kept goes
            import logging

            logging.getLogger("glaneur.serve").warning("Could not hand the credentials to run %s: %s",
                                                       found.flow_run_id, type(error).__name__)
            if isinstance(error, (FlowPauseTimeout, RuntimeError)):  # the server refused to resume after storing
                delete_input(f"suspended-{found.form_key}-response", found.flow_run_id)
            return _page("Service indisponible", "Vos identifiants n'ont pas pu être transmis et n'ont été enregistrés "
                         "nulle part : réessayez dans quelques minutes avec le même lien.", 503)
        finally:
            del password, answer
        return _page("Identifiants transmis", "Merci : vos identifiants sont chiffrés dans le coffre de Glaneur et la "
                     "première collecte démarre. Si la réponse ne pouvait pas être enregistrée, ce même lien vous dira "
                     "pourquoi.")

    return app


@dataclass(frozen=True)
class CredentialsRequest:
    invitation_id: int
    email: str
    channel: str
    label: str
    provider: str
    portal_url: str | None
    refusal: str
    flow_run_id: str
    form_key: str


def _credentials_form(found: CredentialsRequest, exp: int, sig: str, error: str = "", *, login: str = "",
                      status: int = 200) -> HTMLResponse:
    from connectors.catalog import get_provider, portal_url

    provider = get_provider(found.provider)
    notice = (f'<p id=error role=alert>Votre réponse n\'a pas été enregistrée : {html.escape(error)}</p>'
              if error else "")
    return HTMLResponse(
        "<!doctype html><meta charset=utf-8><meta name=viewport content='width=device-width'>"
        "<title>Vos identifiants</title><h1>Vos identifiants</h1>"
        f"<p>Demande adressée à {html.escape(found.email)} pour le collecteur « {html.escape(found.label)} » : "
        f"votre espace client chez <b>{html.escape(provider.name)}</b> "
        f"(<code>{html.escape(portal_url(found.provider, found.portal_url))}</code>).</p>"
        "<p>Saisissez l'identifiant et le mot de passe de cet espace client. Ils sont chiffrés dans le coffre de "
        "Glaneur dès réception ; personne ne les voit.</p>" + notice +
        f'<form method=post action="/credentials/{found.invitation_id}" autocomplete=off>'
        f'<input type=hidden name=exp value="{exp}"><input type=hidden name=sig value="{html.escape(sig)}">'
        f'<p><label>Identifiant ou e-mail <input name=login id=login required maxlength=200 '
        f'value="{html.escape(login)}"></label></p>'
        "<p><label>Mot de passe <input type=password name=password id=password required></label></p>"
        "<p><label>Secret de l'application d'authentification (TOTP), facultatif "
        "<input type=password name=totp_seed id=totp_seed></label></p>"
        "<p><button id=submit>Valider</button></p></form>",
        status_code=status,
    )


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
    """``BI-Signature-Date`` within the allowed age; ISO 8601 or an HTTP date (its format is not documented)."""
    try:
        moment = datetime.fromisoformat(date.replace("Z", "+00:00"))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            moment = parsedate_to_datetime(date)
        except (TypeError, ValueError):
            return False
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return abs((datetime.now(UTC) - moment).total_seconds()) <= WEBHOOK_MAX_AGE_SECONDS


def serve(host: str = "127.0.0.1", port: int = 8707) -> None:  # pragma: no cover - the command's body
    import uvicorn

    uvicorn.run(create_callback_app(), host=host, port=port, log_level="info", access_log=False)
