"""The approver's real path: headless Chromium opens the Prefect UI served by a local server, finds the
paused run, opens Resume, types the code and submits; the run completes and the invoices are filed.
The same for an invitation answered by the account holder in the UI.
"""

from __future__ import annotations

import email
import socket
from contextlib import contextmanager

import httpx
import pytest
from sqlmodel import select

from glaneur.db import session_scope
from glaneur.models import Account, Document
from sandbox.prefect_server import LocalPrefect
from tasks.browser import CHROMIUM_ARGS

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory):
    """A `prefect server start` with its UI, as data ops and approvers use it."""
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings

    server = LocalPrefect(home=tmp_path_factory.mktemp("prefect-ui"), port=_free_port())
    server.start()
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url, PREFECT_UI_URL: server.ui_url}):
            yield server
    finally:
        server.stop()


@contextmanager
def browser_page():
    """Opened only when needed: Playwright's sync API runs an event loop in this thread."""
    from playwright.sync_api import sync_playwright

    from glaneur.settings import get_settings

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=get_settings().chromium_executable(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(30_000)
        yield page
        browser.close()


def resume_in_ui(page, ui_url: str, flow_run_id, fill) -> None:
    page.goto(f"{ui_url}/runs/flow-run/{flow_run_id}")
    page.get_by_role("button", name="Resume").first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Resume Flow Run").wait_for()
    fill(dialog)
    dialog.get_by_role("button", name="Submit").click()


def test_an_approver_types_the_code_in_the_prefect_ui(ui_server, glaneur_home, portals):
    from tests.e2e.test_second_factor_flow import Background, make_channel, paused_run, sent_code

    slug = make_channel(portals, "double-code")
    collection = Background(slug)
    run = paused_run(slug)
    code = sent_code(portals, "double-code")

    with browser_page() as page:
        resume_in_ui(page, ui_server.ui_url, run.id, lambda dialog: dialog.get_by_role("textbox").first.fill(code))
        summary = collection.join()
    assert summary["status"] == "ok", summary
    with session_scope() as session:
        assert len(session.exec(select(Document)).all()) == summary["new"] > 0


def test_an_account_holder_answers_an_invitation_in_the_prefect_ui(ui_server, glaneur_home, portals):
    from prefect.deployments import run_deployment

    from glaneur import admin
    from glaneur.models import Right
    from tests.e2e.test_invitation import _deploy, _wait, worker

    with session_scope() as session:
        admin.create_organization(session, "org", "Org")
        owner = admin.create_user(session, "org", "owner@org.example", "Owner", [Right.CONFIGURE_COLLECTION])
        admin.create_user(session, "org", "holder@org.example", "Holder", actor=owner)
        admin.create_binder(session, "org", "factures", "Factures", actor=owner)
        admin.add_channel(session, "org", label="Papeterie", provider="papeterie-dupont", binder="factures",
                          recipient="owner@org.example", slug="org-ui", actor=owner)
    _deploy("flows/request_credentials.py:request_credentials", "request-credentials")
    with worker(glaneur_home):
        run = run_deployment("request-credentials/request-credentials",
                             parameters={"channel": "org-ui", "invitee": "holder@org.example"}, timeout=0)
        _wait(run.id, lambda state: state.is_paused())

        seen = {}

        def fill(dialog):  # the form's fields in the RunInput's order: login, password, optional TOTP seed
            dialog.get_by_text("Papeterie Dupont").first.wait_for()
            dialog.locator("textarea").first.wait_for()  # the login box: the form is drawn once its schema loads
            page_settle = dialog.page.wait_for_timeout
            page_settle(500)
            seen["text"] = dialog.inner_text()
            # The password and the TOTP seed are masked: <input type=password>, nothing readable on screen.
            secrets = dialog.locator("input[type=password]")
            seen["masked"] = secrets.count()
            fields = dialog.locator("input:not([type=checkbox]):not([type=hidden]):not([type=password]), textarea")
            fields.nth(0).fill("acme")
            secrets.nth(0).fill("papier-acme")

        # The holder follows the link of the invitation mail.
        mail = email.message_from_bytes(next((glaneur_home / "outbox").glob("*.eml")).read_bytes())
        link = next(word for word in mail.get_payload(decode=True).decode().split() if f"/runs/flow-run/{run.id}" in word)
        with browser_page() as page:
            page.goto(link)
            page.get_by_role("button", name="Open menu").first.click()
            page.get_by_role("menuitem", name="Resume").click()
            dialog = page.get_by_role("dialog")
            dialog.get_by_text("Resume Flow Run").wait_for()
            fill(dialog)
            dialog.get_by_role("button", name="Resume").click()
            page.wait_for_timeout(1000)
        finished = _wait(run.id, lambda state: state.is_final())
    assert seen["masked"] == 2, seen  # password and TOTP seed
    assert portals.urls["papeterie-dupont"] in seen["text"]  # the supplier's portal address, named
    assert "None" not in seen["text"]  # the optional seed is a plain optional field, no "None" switch
    assert finished.state.is_completed(), finished.state.message
    with session_scope() as session:
        assert session.exec(select(Account)).one().login == "acme"
        assert len(session.exec(select(Document)).all()) == 23
    assert httpx.get(f"{ui_server.api_url}/health").status_code == 200
