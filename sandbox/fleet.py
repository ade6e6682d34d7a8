"""Many channels on the sandbox portals, for the scale test and bench (issue 20).

:func:`create_fleet` creates one organisation, its user and binder, and ``channels`` channels spread
over the sandbox's suppliers, each with the supplier's ``acme-bis`` account (a normal account), their
time slots assigned by :func:`glaneur.slots.assign_slot` unless ``time_slot`` is given.
:func:`top_up_invoices` adds invoices on the portals until that account holds ``invoices``.
Every channel files the account's invoices once: channels never share a document.
"""

from __future__ import annotations

import httpx

from sandbox.data import SUPPLIERS, Scenario, accounts_of

STEM = "acme-bis"


def fleet_account(provider: str):
    supplier = SUPPLIERS[provider]
    return accounts_of(supplier)[supplier.login_format.format(stem=STEM)]


def top_up_invoices(portal_urls: dict[str, str], invoices: int) -> None:
    """Reset each portal, then add invoices to the fleet account until it holds ``invoices`` (at least its 5)."""
    for provider in SUPPLIERS:
        account = fleet_account(provider)
        assert account.scenario is Scenario.NORMAL
        url = portal_urls[provider]
        httpx.post(f"{url}/_sandbox/reset", timeout=30).raise_for_status()
        for _ in range(max(0, invoices - account.invoice_count)):
            httpx.post(f"{url}/_sandbox/accounts/{account.login}/invoices", timeout=30).raise_for_status()


def create_fleet(channels: int, *, org: str = "fleet", time_slot: str | None = None) -> list[str]:
    """Create the channels (in the configured Glaneur database); returns their slugs."""
    import connectors.catalog  # noqa: F401  installs the provider catalogue the domain looks providers up in
    from glaneur import admin
    from glaneur.db import migrate, session_scope
    from glaneur.models import Right
    from glaneur.slots import slot_for_new_channel

    migrate()
    providers = sorted(SUPPLIERS)
    slugs = []
    with session_scope() as session:
        admin.create_organization(session, org, "Fleet")
        actor = admin.create_user(session, org, f"ops@{org}.example", "Ops", [Right.CONFIGURE_COLLECTION])
        admin.create_binder(session, org, "factures", "Factures", actor=actor)
        for index in range(channels):
            provider = providers[index % len(providers)]
            slug = f"{org}-{index:04d}"
            slot = time_slot or slot_for_new_channel(session, provider)
            admin.add_channel(session, org, label=f"C{index}", provider=provider, binder="factures",
                              recipient=f"ops@{org}.example", slug=slug, time_slot=slot, actor=actor)
            account = fleet_account(provider)
            admin.add_account(session, slug, login=account.login, password=account.password, actor=actor)
            slugs.append(slug)
    return slugs
