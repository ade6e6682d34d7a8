"""The Odoo platform end to end: suppliers each with its own Odoo portal at its own address, one channel each.

Real Prefect server, real Chromium, three sandbox Odoo portals (18.0, 16.0 and master markup; master's and
18.0's login form shows only once the page's script has run), real filing: each channel is collected from
its own address, every invoice filed once, a re-run files nothing.
Odoo's login cool-down is waited out, then the password is checked: collected, or wrong credentials.
"""

from __future__ import annotations

import hashlib
import re
from decimal import Decimal

import httpx
import pytest
from sqlmodel import select

from glaneur.db import session_scope
from glaneur.models import Channel, Document
from glaneur.settings import get_settings
from glaneur.storage import get_storage
from sandbox.odoo import LOGIN_COOLDOWN_AFTER, create_odoo_app
from sandbox.odoo.data import ODOO_SUPPLIERS, odoo_accounts
from sandbox.pdfs import invoice_pdf
from sandbox.server import serve_app
from tests import factories

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

PORTALS = {  # channel -> (supplier, Odoo version, account)
    "infogerance-martin": ("infogerance-martin", "18.0", "acme@client.test"),
    "transports-girard": ("transports-girard", "16.0", "acme-bis@client.test"),
    "martin-online": ("infogerance-martin", "master", "acme-bis@client.test"),
}


@pytest.fixture(scope="module")
def odoo_portals():
    """Each channel's Odoo at its own address (a free port each): channel -> (its state, its URL)."""
    apps = {slug: create_odoo_app(supplier, version) for slug, (supplier, version, _) in PORTALS.items()}
    handles = {slug: serve_app(app, slug, "/_sandbox/accounts") for slug, app in apps.items()}
    try:
        yield {slug: (apps[slug].state.portal, handles[slug].urls[slug]) for slug in apps}
    finally:
        for handle in handles.values():
            handle.stop()


def test_suppliers_on_odoo_are_each_collected_once(glaneur_home, odoo_portals, monkeypatch):
    from flows.collect_channel import run_channel

    monkeypatch.delenv("GLANEUR_PORTAL_URLS", raising=False)  # each channel's own address, nothing else
    with session_scope() as session:
        owner = factories.organization(session)
        for slug, (supplier, _, login) in PORTALS.items():
            password = odoo_accounts(ODOO_SUPPLIERS[supplier])[login].password
            factories.channel(session, owner, slug, "odoo", label=slug, accounts=[(login, password)],
                              portal_url=odoo_portals[slug][1])  # fmt: skip

    summaries = {slug: run_channel(slug) for slug in PORTALS}

    storage = get_storage(get_settings())
    with session_scope() as session:
        channels = {c.id: c.slug for c in session.exec(select(Channel)).all()}
        documents = list(session.exec(select(Document)).all())
    for slug, (supplier, version, login) in PORTALS.items():
        state = odoo_portals[slug][0]
        invoices = {i.name: i for i in state.invoices[login]}
        filed = {d.provider_reference: d for d in documents if channels[d.channel_id] == slug}
        assert summaries[slug]["status"] == "ok" and summaries[slug]["new"] == len(invoices), summaries[slug]
        assert set(filed) == set(invoices)  # every invoice, once, in its supplier's channel
        for number, document in filed.items():
            expected = invoice_pdf(ODOO_SUPPLIERS[supplier].supplier, invoices[number].invoice)
            assert storage.get(document.storage_key) == expected
            assert document.sha256 == hashlib.sha256(expected).hexdigest()
            assert document.document_date == invoices[number].invoice.issued
            # 18.0 and master show the total on the invoice page; 16.0 shows only what is due: never a wrong amount.
            assert document.amount in (None, str(invoices[number].amount_total))
            if version != "16.0":
                assert Decimal(document.amount) == invoices[number].amount_total
    assert len(documents) == sum(len(odoo_portals[s][0].invoices[login]) for s, (_, _, login) in PORTALS.items())

    again = {slug: run_channel(slug) for slug in PORTALS}

    assert all(summary["status"] == "ok" and summary["new"] == 0 for summary in again.values()), again
    with session_scope() as session:
        assert len(session.exec(select(Document)).all()) == len(documents)


def _cool_down(url: str) -> None:
    """Failed logins from this machine's address (Glaneur's too), of another account, until Odoo's cool-down starts."""
    with httpx.Client(base_url=url) as client:
        for _ in range(LOGIN_COOLDOWN_AFTER):
            token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/web/login").text)[1]
            refused = client.post("/web/login", data={"login": "other@client.test", "password": "nope", "csrf_token": token})
            assert "Wrong login/password" in refused.text


def test_a_login_cool_down_is_waited_out_then_the_password_is_checked(glaneur_home, monkeypatch):
    """Odoo refuses every login from an address after repeated failures (any account's), without checking it: the
    run waits the cool-down out, then logs in with a right password; a wrong one then ends wrong_credentials (not
    locked, not retried), after one counted attempt: the cool-down is never prolonged by waiting in it."""
    from connectors.odoo import Odoo
    from flows.collect_channel import run_channel

    monkeypatch.delenv("GLANEUR_PORTAL_URLS", raising=False)
    monkeypatch.setattr(Odoo, "cooldown_seconds", 3.0)  # this portal's base.login_cooldown_duration, below
    slug, login = "transports-girard", "acme-bis@client.test"
    app = create_odoo_app(slug, "16.0", cooldown_seconds=2.5)
    state = app.state.portal
    password = odoo_accounts(ODOO_SUPPLIERS[slug])[login].password
    with serve_app(app, slug, "/_sandbox/accounts") as handle:
        url = handle.urls[slug]
        with session_scope() as session:
            owner = factories.organization(session)
            factories.channel(session, owner, "girard", "odoo", label="Girard", accounts=[(login, password)],
                              portal_url=url)  # fmt: skip
            factories.channel(session, owner, "girard-stale", "odoo", label="Girard stale",
                              accounts=[(login, "an-old-Pa55word")], portal_url=url)  # fmt: skip
        log_in = Odoo.login
        cooled: list[str] = []

        def after_failures_elsewhere(connector, credentials):  # the cool-down starts just before the run logs in
            if len(cooled) < len(runs):
                cooled.append(url)
                _cool_down(url)
            return log_in(connector, credentials)

        monkeypatch.setattr(Odoo, "login", after_failures_elsewhere)
        runs = ["girard"]
        collected = run_channel("girard")

        assert collected["status"] == "ok" and collected["new"] == len(state.invoices[login]), collected
        assert state.refused_in_cooldown == 1  # met the cool-down once, then waited it out
        assert state.failures == {}  # Odoo clears the address's count on a success

        runs.append("girard-stale")
        stale = run_channel("girard-stale")

        assert stale["status"] == "wrong_credentials", stale
        assert state.refused_in_cooldown == 2
        assert state.failures["127.0.0.1"][0] == LOGIN_COOLDOWN_AFTER + 1  # the one checked attempt, never retried
