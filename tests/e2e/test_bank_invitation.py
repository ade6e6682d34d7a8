"""Option 2 end to end (``glaneur bank invite``): a deployment, a real ``process`` worker, a real Prefect server,
``glaneur serve``, the Powens sandbox and its webview driven by real Chromium.

The request run suspends (its process exits); the holder gets a mail and a bell entry with a signed link,
reads and accepts the consent text, leaves the POWENS page once (nothing connected, the link still works),
then chooses the bank, types the credentials and the bank's SMS code; the webview's redirect reaches
``glaneur serve``, which records the connection and resumes the run; the worker starts it again from the
top and the first collection says when the first movements are expected (the sandbox's delay stands for
the bank's 48-72 hours). Resend sends the same link; past its expiry the link and the run are dead.
"""

from __future__ import annotations

import email
import socket
import time

import pytest
from sqlmodel import select
from typer.testing import CliRunner

import tests.e2e.test_invitation as invitation_e2e
from cli.main import app
from glaneur.db import session_scope
from glaneur.models import (
    BankConnection,
    BankConsent,
    BankConsentState,
    Channel,
    Invitation,
    InvitationState,
    Notification,
)
from glaneur.statuses import Status
from tests.e2e.conftest import run_inputs

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

SECRET = "client-secret-for-invitations"
ANNE = "anne@acme.example"
HOLDER = "holder@acme.example"
BANK = "Connecteur de test"
SLUG = "acme-connecteur-de-test"
DEPLOYMENT_ENTRY = "flows/request_bank_connection.py:request_bank_connection"


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return sock.getsockname()[1]


def glaneur(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})


@pytest.fixture
def invited(glaneur_home, monkeypatch):
    """The sandbox (first movements 2 minutes after a connection), glaneur serve, an organisation with its bank."""
    from web.callbacks import create_callback_app
    from glaneur.settings import reset_settings
    from sandbox.powens import PowensWorld, start_powens
    from sandbox.server import serve_app

    port = _free_port()
    callback = f"http://127.0.0.1:{port}"
    world = PowensWorld("inv-client", SECRET, first_movements_delay=120)
    with start_powens(world) as powens:
        url = powens.urls["powens"]
        for name, value in {"GLANEUR_POWENS_API_URL": url, "GLANEUR_POWENS_WEBVIEW_URL": url,
                            "GLANEUR_POWENS_CLIENT_ID": "inv-client", "GLANEUR_POWENS_CLIENT_SECRET": SECRET,
                            "GLANEUR_POWENS_REDIRECT_URI": f"{callback}/powens/callback",
                            "GLANEUR_POWENS_PUBLIC_URL": callback}.items():
            monkeypatch.setenv(name, value)
        for name in ("GLANEUR_SMTP_HOST", "GLANEUR_ACTING_USER"):
            monkeypatch.delenv(name, raising=False)
        reset_settings()
        for args in (("org", "create", "acme", "ACME SARL"),
                     ("user", "create", "acme", ANNE, "Anne", "--right", "configure_accounting"),
                     ("--as", ANNE, "user", "create", "acme", HOLDER, "Holder"),
                     ("--as", ANNE, "binder", "create", "acme", "banque", "Banque"),
                     ("--as", ANNE, "bank", "add", "acme", BANK)):
            result = glaneur(*args)
            assert result.exit_code == 0, result.output
        invitation_e2e._deploy(DEPLOYMENT_ENTRY, "request-bank-connection")
        with serve_app(create_callback_app(), "callback", "/healthz", port=port):
            yield world, callback


def _invite():
    result = glaneur("--as", ANNE, "bank", "invite", "acme", BANK, "--holder", HOLDER, "--binder", "banque",
                     "--recipient", ANNE)
    assert result.exit_code == 0, (result.output, result.exception)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:  # the worker starts the run, which opens the invitation
        with session_scope() as session:
            found = session.exec(select(Invitation)).first()
            if found is not None:
                return found.flow_run_id
        time.sleep(1)
    raise AssertionError("the request run never opened its invitation")


def _mails(home, to: str) -> list[email.message.Message]:
    found = [email.message_from_bytes(p.read_bytes()) for p in sorted((home / "outbox").glob("*.eml"))]
    return [m for m in found if m["To"] == to]


def test_the_holder_consents_and_connects_and_the_suspended_run_resumes(invited, glaneur_home):
    from playwright.sync_api import sync_playwright

    from glaneur.settings import get_settings
    from tasks.browser import CHROMIUM_ARGS

    world, callback = invited
    with invitation_e2e.worker(glaneur_home):
        run_id = _invite()
        suspended = invitation_e2e._wait(run_id, lambda state: state.is_paused())
        assert suspended.state.name == "Suspended"
        with session_scope() as session:
            channel = session.exec(select(Channel).where(Channel.slug == SLUG)).one()
            assert channel.status == Status.AWAITING_CREDENTIALS
            bell = session.exec(select(Notification).where(Notification.kind == "bank_invitation")).one()
        [mail] = _mails(glaneur_home, HOLDER)
        link = bell.link
        assert link.startswith(f"{callback}/bank/invitation/") and link in mail.get_payload(decode=True).decode()

        resent = glaneur("--as", ANNE, "bank", "resend-invitation", SLUG)  # the same link, again
        assert resent.exit_code == 0 and "2 sent" in resent.output, resent.output
        assert link in _mails(glaneur_home, HOLDER)[-1].get_payload(decode=True).decode()

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=get_settings().chromium_executable(),
                                                 args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(link.replace("sig=", "sig=0"))
            assert "n'est pas valide" in page.content()
            page.goto(link)
            assert "RGPD" in page.locator("#consent").inner_text()
            page.click("#accept")  # the consent, then the POWENS page
            page.get_by_role("button", name="Annuler").click()  # the holder leaves: nothing connected
            page.wait_for_url(f"{callback}/powens/callback*")
            assert "Connexion non terminée" in page.content() and not world.connections
            assert invitation_e2e._flow_run(run_id).state.is_paused()

            page.goto(link)  # the same link, again
            page.click("#accept")
            page.locator(f"button.bank[data-name='{BANK}']").click()
            page.click("#accept")  # POWENS' own consent screen
            page.fill("#login", "ok")
            page.fill("#password", "1234")
            page.click("#submit")
            page.fill("#code", "123456")
            page.click("#submit", no_wait_after=True)  # the service records the connection, resumes the run
            page.wait_for_url(f"{callback}/powens/callback*", timeout=120_000)
            page.locator("h1").wait_for(timeout=120_000)
            assert "Connexion terminée" in page.content(), page.content()
            page.goto(link)
            assert "déjà reçu sa réponse" in page.content()  # an answered request is not answered twice
            browser.close()

        finished = invitation_e2e._wait(run_id, lambda state: state.is_final())
    assert finished.state.is_completed(), finished.state.message
    assert "48 to 72 hours" in finished.state.message  # before the first movements: when they are expected
    [remote] = world.connections.values()
    with session_scope() as session:
        connection = session.exec(select(BankConnection)).one()
        assert connection.powens_connection_id == remote.id and connection.token_ref is not None
        consents = session.exec(select(BankConsent)).all()
        assert [c.state for c in consents] == [BankConsentState.GIVEN, BankConsentState.GIVEN]
        assert all(c.holder_email == HOLDER and "RGPD" in c.text for c in consents)
        assert connection.consent_id == consents[-1].id
        assert session.exec(select(Invitation)).one().state == InvitationState.ANSWERED
        channel = session.exec(select(Channel).where(Channel.slug == SLUG)).one()
        assert channel.status == Status.NEW and "expected between" in channel.status_message
    assert run_inputs(run_id) == {}
    token = next(t for t, user in world.tokens.items() if user == remote.id_user)
    assert token.encode() not in b"".join(p.read_bytes() for p in glaneur_home.glob("glaneur.db*"))


def test_an_unanswered_request_expires_its_link_dies_and_the_owner_is_told(invited, glaneur_home):
    world, callback = invited
    with invitation_e2e.worker(glaneur_home, GLANEUR_INVITATION_TTL_HOURS="0.003"):  # about 11 s
        run_id = _invite()
        failed = invitation_e2e._wait(run_id, lambda state: state.is_final(), timeout=120)
        assert failed.state.is_failed()

        def expired(_state) -> bool:
            with session_scope() as session:
                return session.exec(select(Invitation)).one().state == InvitationState.EXPIRED

        invitation_e2e._wait(run_id, expired, timeout=120)
    [told] = [m for m in _mails(glaneur_home, ANNE) if "expired" in m["Subject"]]
    assert "glaneur bank invite" in told.get_payload(decode=True).decode()
    with session_scope() as session:
        link = session.exec(select(Notification).where(Notification.kind == "bank_invitation")).one().link
    import httpx

    assert httpx.get(link).status_code == 410  # the holder's link is dead
    again = glaneur("--as", ANNE, "bank", "resend-invitation", SLUG)
    assert again.exit_code != 0 and "glaneur bank invite" in again.output
    assert not world.connections
