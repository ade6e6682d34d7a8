"""The Odoo platform end to end: two suppliers, each with its own Odoo portal at its own address, one channel each.

Real Prefect server, real Chromium, two sandbox Odoo portals (18.0 and 16.0 markup), real filing:
each channel is collected from its own address, every invoice filed once, a re-run files nothing.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal

import pytest
from sqlmodel import select

from glaneur import admin
from glaneur.db import session_scope
from glaneur.models import Channel, Document, Right
from glaneur.settings import get_settings
from glaneur.storage import get_storage
from sandbox.odoo import create_odoo_app
from sandbox.odoo.data import ODOO_SUPPLIERS, odoo_accounts
from sandbox.pdfs import invoice_pdf
from sandbox.server import serve_app

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

SUPPLIERS = {"infogerance-martin": ("18.0", "acme@client.test"), "transports-girard": ("16.0", "acme-bis@client.test")}


@pytest.fixture(scope="module")
def odoo_portals():
    """Each supplier's Odoo at its own address (a free port each): slug -> (its state, its URL)."""
    apps = {slug: create_odoo_app(slug, version) for slug, (version, _) in SUPPLIERS.items()}
    handles = {slug: serve_app(app, slug, "/_sandbox/accounts") for slug, app in apps.items()}
    try:
        yield {slug: (apps[slug].state.portal, handles[slug].urls[slug]) for slug in apps}
    finally:
        for handle in handles.values():
            handle.stop()


def test_two_suppliers_on_odoo_are_each_collected_once(glaneur_home, odoo_portals, monkeypatch):
    from flows.collect_channel import run_channel

    monkeypatch.delenv("GLANEUR_PORTAL_URLS", raising=False)  # each channel's own address, nothing else
    with session_scope() as session:
        admin.create_organization(session, "org", "Org")
        owner = admin.create_user(session, "org", "owner@org.example", "Owner", [Right.CONFIGURE_COLLECTION])
        admin.create_binder(session, "org", "factures", "Factures", actor=owner)
        for slug, (_, login) in SUPPLIERS.items():
            admin.add_channel(session, "org", label=slug, provider="odoo", binder="factures", recipient="owner@org.example",
                              slug=slug, actor=owner, portal_url=odoo_portals[slug][1])  # fmt: skip
            password = odoo_accounts(ODOO_SUPPLIERS[slug])[login].password
            admin.add_account(session, slug, login=login, password=password, actor=owner)

    summaries = {slug: run_channel(slug) for slug in SUPPLIERS}

    storage = get_storage(get_settings())
    with session_scope() as session:
        channels = {c.id: c.slug for c in session.exec(select(Channel)).all()}
        documents = list(session.exec(select(Document)).all())
    for slug, (_, login) in SUPPLIERS.items():
        state = odoo_portals[slug][0]
        invoices = {i.name: i for i in state.invoices[login]}
        filed = {d.provider_reference: d for d in documents if channels[d.channel_id] == slug}
        assert summaries[slug]["status"] == "ok" and summaries[slug]["new"] == len(invoices), summaries[slug]
        assert set(filed) == set(invoices)  # every invoice, once, in its supplier's channel
        for number, document in filed.items():
            expected = invoice_pdf(ODOO_SUPPLIERS[slug].supplier, invoices[number].invoice)
            assert storage.get(document.storage_key) == expected
            assert document.sha256 == hashlib.sha256(expected).hexdigest()
            assert document.document_date == invoices[number].invoice.issued
            # 18.0 shows the total on the invoice page; 16.0 shows only what is due: never a wrong amount.
            assert document.amount in (None, str(invoices[number].amount_total))
            if slug == "infogerance-martin":
                assert Decimal(document.amount) == invoices[number].amount_total
    assert len(documents) == sum(len(odoo_portals[s][0].invoices[login]) for s, (_, login) in SUPPLIERS.items())

    again = {slug: run_channel(slug) for slug in SUPPLIERS}

    assert all(summary["status"] == "ok" and summary["new"] == 0 for summary in again.values()), again
    with session_scope() as session:
        assert len(session.exec(select(Document)).all()) == len(documents)
