"""The organisation, users, binder, channels and accounts most tests start from, made once.

Everything goes through the real domain functions of :mod:`glaneur.admin` (rights checked, secrets
vaulted, slugs and passwords validated, audit lines written), never through raw inserts, so a test
stands on data the product could have made. The defaults are the usual cast: organisation ``org``,
its owner ``owner@org.example`` (allowed to configure collection), its binder ``factures``.

    with session_scope() as session:
        owner = factories.organization(session)
        factories.channel(session, owner, "org-papeterie", accounts=[("acme", password)])

or, in one unit of work of its own, :func:`collection_channel`. An accounting firm routing statements
to a partner connector: :func:`firm_with_partner`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlmodel import Session

from glaneur import admin
from glaneur.db import session_scope
from glaneur.models import Channel, Organization, Right, User
from glaneur.statements import firm

ORG = "org"
OWNER = "owner@org.example"
BINDER = "factures"
FIRM = "cab"
FIRM_ADMINISTRATOR = "boss@cab.fr"
PARTNER = "tool"

AccountSpec = tuple[str, str] | tuple[str, str, str | None]  # (login, password) or (login, password, TOTP seed)


def organization(
    session: Session,
    slug: str = ORG,
    name: str = "Org",
    *,
    owner: str = OWNER,
    owner_name: str = "Owner",
    holders: Iterable[str] = (),
    binder: str = BINDER,
) -> User:
    """An organisation, its owner (right to configure collection), other users (``holders``), a binder; the owner."""
    admin.create_organization(session, slug, name)
    user = admin.create_user(session, slug, owner, owner_name, [Right.CONFIGURE_COLLECTION])
    for email in holders:
        admin.create_user(session, slug, email, email.split("@")[0].capitalize(), actor=user)
    admin.create_binder(session, slug, binder, binder.capitalize(), actor=user)
    return user


def channel(
    session: Session,
    owner: User,
    slug: str,
    provider: str = "papeterie-dupont",
    *,
    label: str = "Papeterie",
    binder: str = BINDER,
    accounts: Iterable[AccountSpec] = (),
    **fields: Any,
) -> Channel:
    """A channel of the owner's organisation, delivered to the owner, with its accounts (at most two);
    ``fields`` are :func:`glaneur.admin.add_channel`'s others (``time_slot``, ``portal_url``...)."""
    org = session.get(Organization, owner.organization_id)
    found = admin.add_channel(session, org, label=label, provider=provider, binder=binder, recipient=owner.email,
                              slug=slug, actor=owner, **fields)  # fmt: skip
    for login, password, *seed in accounts:
        admin.add_account(session, found, login=login, password=password, totp_seed=seed[0] if seed else None,
                          actor=owner)  # fmt: skip
    return found


def collection_channel(
    slug: str = "test-channel",
    provider: str = "papeterie-dupont",
    *,
    accounts: Iterable[AccountSpec] = (),
    org_name: str = "Org",
    owner: str = OWNER,
    owner_name: str = "Owner",
    holders: Iterable[str] = (),
    **fields: Any,
) -> int:
    """The whole usual setup in a unit of work of its own: ``org``, its owner and binder, one channel and its
    accounts; the channel's id."""
    with session_scope() as session:
        user = organization(session, name=org_name, owner=owner, owner_name=owner_name, holders=holders)
        return channel(session, user, slug, provider, accounts=accounts, **fields).id


def firm_with_partner(
    session: Session,
    clients: Iterable[tuple[str, str, str | None]] = (),
    *,
    slug: str = FIRM,
    name: str = "Cabinet",
    administrator: str = FIRM_ADMINISTRATOR,
    partner: str = PARTNER,
) -> User:
    """An accounting firm, its administrator, a partner connector associated with it, and its clients' IBANs
    attached to that connector (``clients``: IBAN, client's name, mandate status or None); the administrator."""
    admin.create_organization(session, slug, name, "firm")
    boss = admin.create_user(session, slug, administrator, "Boss", firm_role="administrator")
    firm.create_partner(session, partner, partner.capitalize())
    firm.associate_connector(session, slug, partner, actor=boss)
    for iban, client, mandate in clients:
        firm.add_iban(session, slug, iban, client, actor=boss)
        firm.attach_iban(session, slug, iban, partner, actor=boss)
        if mandate is not None:
            firm.set_mandate(session, slug, iban, mandate, actor=boss)
    return boss
