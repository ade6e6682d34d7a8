"""The callback service (``glaneur serve``) end to end: Powens' signed webhooks start the collection on its
deployment (a forged one changes nothing), and the holder's reconnect link (sent when the bank asks a second
factor) takes them, in real Chromium, through the POWENS reconnect webview and back to the service.
"""

from __future__ import annotations

import socket
import time

import httpx
import pytest
from sqlmodel import select

from glaneur import admin, bank
from glaneur.db import session_scope
from glaneur.models import Notification
from glaneur.statuses import Status
from tests.e2e.conftest import prefect_call

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

SECRET = "client-secret-for-callbacks"
HOOK_SECRET = "webhook-secret-from-the-console"
ANNE = "anne@acme.example"


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return sock.getsockname()[1]


@pytest.fixture
def wired(glaneur_home, monkeypatch):
    from connectors.powens import PowensClient
    from web.callbacks import create_callback_app
    from glaneur.settings import reset_settings
    from sandbox.powens import PowensWorld, start_powens
    from sandbox.server import serve_app

    port = _free_port()
    callback = f"http://127.0.0.1:{port}"
    world = PowensWorld("cb-client", SECRET, webhook_url=f"{callback}/powens/webhooks", webhook_secret=HOOK_SECRET)
    with start_powens(world) as powens:
        url = powens.urls["powens"]
        for name, value in {"GLANEUR_POWENS_API_URL": url, "GLANEUR_POWENS_WEBVIEW_URL": url,
                            "GLANEUR_POWENS_CLIENT_ID": "cb-client", "GLANEUR_POWENS_CLIENT_SECRET": SECRET,
                            "GLANEUR_POWENS_REDIRECT_URI": f"{callback}/powens/callback",
                            "GLANEUR_POWENS_PUBLIC_URL": callback, "GLANEUR_POWENS_WEBHOOK_SECRET": HOOK_SECRET}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("GLANEUR_SMTP_HOST", raising=False)
        reset_settings()
        client = PowensClient(url, client_id="cb-client", client_secret=SECRET)
        token, user = client.init_user()
        remote = world.create_connection(user, 40, "ok")
        with session_scope() as session:
            admin.create_organization(session, "acme", "ACME")
            anne = admin.create_user(session, "acme", ANNE, "Anne", ["configure_accounting"])
            admin.create_binder(session, "acme", "banque", "Banque", actor=anne)
            found = bank.add_bank(session, "acme", "Connecteur de test", actor=anne)
            org = admin.get_organization(session, "acme")
            consent = bank.record_consent(session, org, found, holder_email=ANNE, given=True, actor=anne,
                                          text=bank.consent_text(org, found))
            new = bank.check_new_connection(session, "acme", "Connecteur de test", binder="banque", recipient=ANNE,
                                            actor=anne)
            channel, _ = bank.create_connection(session, new, consent=consent, powens_user_id=user, token=token,
                                                powens_connection_id=remote.id, powens_connector_id=40,
                                                settings=bank.powens_settings())
            slug = channel.slug
        with serve_app(create_callback_app(), "callback", "/healthz", port=port):
            yield world, client, remote, slug, callback


def _runs(deployment_id):
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    async def read(client):
        return await client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))

    return prefect_call(read)


def test_signed_webhook_starts_the_collection_forged_one_does_not(wired, deployments):
    world, client, remote, slug, callback = wired
    deployment = deployments("collect-bank-movements")
    client.sync(remote.id)  # Powens synchronises, then posts CONNECTION_SYNCED, signed
    deadline = time.monotonic() + 30
    while not world.webhooks_sent and time.monotonic() < deadline:
        time.sleep(0.2)
    assert world.webhooks_sent == [("CONNECTION_SYNCED", 200)]
    (run,) = _runs(deployment)
    assert run.parameters == {"channel": slug}

    body = b'{"connection": {"id": %d}}' % remote.id
    forged = httpx.post(f"{callback}/powens/webhooks", content=body,
                        headers={"BI-Signature": "AAAA", "BI-Signature-Date": "2026-12-02T00:00:00+00:00",
                                 "BI-Event": "CONNECTION_DELETED"})
    assert forged.status_code == 401
    assert len(_runs(deployment)) == 1
    with session_scope() as session:
        _, connection = bank.get_connection(session, slug)
        assert connection.deleted_at is None

    from datetime import UTC, datetime

    from glaneur.signing import webhook_signature

    date = datetime.now(UTC).isoformat()
    signed = httpx.post(f"{callback}/powens/webhooks", content=body, headers={
        "BI-Signature": webhook_signature(HOOK_SECRET, "POST", "/powens/webhooks", date, body),
        "BI-Signature-Date": date, "BI-Event": "CONNECTION_DELETED"})
    assert signed.status_code == 200, signed.text
    with session_scope() as session:
        found, connection = bank.get_connection(session, slug)
        assert connection.deleted_at is not None and found.status == Status.AWAITING_CREDENTIALS


def test_second_factor_reconnect_link_through_the_webview(wired, deployments):
    from playwright.sync_api import sync_playwright

    from flows.collect_bank_movements import run_bank_channel
    from glaneur.settings import get_settings
    from tasks.browser import CHROMIUM_ARGS

    world, client, remote, slug, callback = wired
    deployment = deployments("collect-bank-movements")
    remote.state = "SCARequired"
    assert run_bank_channel(slug)["status"] == Status.AWAITING_SECOND_FACTOR.value
    with session_scope() as session:
        (notice,) = session.exec(select(Notification).where(Notification.kind == "bank_reconnect")).all()
        link = notice.link
    assert link.startswith(f"{callback}/bank/reconnect/{slug}?") and "code=" not in link  # no Powens code in the DB

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=get_settings().chromium_executable(), args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(link.replace("sig=", "sig=0"))
        assert page.locator("#message").inner_text().startswith("Ce lien a expiré")
        page.goto(link)  # the holder opens the link: the POWENS reconnect page
        page.get_by_role("button", name="Annuler").click()  # the holder abandons
        page.wait_for_url(f"{callback}/powens/callback*")
        assert "Connexion non terminée" in page.content() and remote.state == "SCARequired"
        page.goto(link)
        page.fill("#login", "ok")
        page.fill("#password", "1234")
        page.click("#submit")
        page.fill("#code", "123456")
        page.click("#submit")
        page.wait_for_url(f"{callback}/powens/callback*")
        assert "Connexion terminée" in page.content()
        browser.close()
    assert remote.state is None
    assert len(_runs(deployment)) == 1  # the collection restarts at once, on its deployment
    with session_scope() as session:
        _, connection = bank.get_connection(session, slug)
        assert connection.state is None
    assert run_bank_channel(slug)["status"] == "ok"
