"""The sandbox accounting firm: partners, connectors, client IBANs and mandates covering every route.

Used by the demo and by the end-to-end tests, against the sandbox statement source and partners:

============================  ==================  ===========  =====================================
client                        connector           mandate      where its statements go
============================  ==================  ===========  =====================================
Boulangerie Martin            compta-express      approved     Compta Express (HTTP, signed)
Garage Lefèvre                compta-express      pending      global file (IBAN not active)
Brasserie Van den Bossche     none                approved     global file (no connector)
Atelier Peeters               tenue-plus          approved     Tenue Plus
Schreinerei Müller GmbH       compta-express      revoked      global file (IBAN not active)
Weber Logistik GmbH           (not a client)      -            kept aside, reported
============================  ==================  ===========  =====================================
"""

from __future__ import annotations

from sqlmodel import Session, select

from glaneur import admin

from glaneur.statements import firm
from glaneur.models import Organization, Right
from sandbox.partner import SANDBOX_PARTNER_NAMES, SANDBOX_PARTNER_SECRETS
from sandbox.server import STATEMENT_SOURCE
from sandbox.statements_source import FIRM, SANDBOX_CLIENT_IBANS, SANDBOX_SOURCE_TOKENS

ADMIN = "direction@cabinet-demo.example"
COLLABORATOR = "collaborateur@cabinet-demo.example"
SETUP = {  # client name -> (connector or None, mandate)
    "Boulangerie Martin": ("compta-express", "approved"),
    "Garage Lefèvre": ("compta-express", "pending"),
    "Brasserie Van den Bossche": (None, "approved"),
    "Atelier Peeters": ("tenue-plus", "approved"),
    "Schreinerei Müller GmbH": ("compta-express", "revoked"),
}


def iban_of(client: str) -> str:
    return next(iban for iban, name in SANDBOX_CLIENT_IBANS.items() if name == client)


def create_sandbox_firm(session: Session, urls: dict[str, str]) -> bool:
    """Create the firm once (False when it exists), its partners pointing at the sandbox ``urls``."""
    if session.exec(select(Organization).where(Organization.slug == FIRM)).first() is not None:
        return False
    for slug, secret in SANDBOX_PARTNER_SECRETS.items():
        if slug not in {p.slug for p in firm.list_partners(session)}:
            firm.create_partner(
                session, slug, SANDBOX_PARTNER_NAMES[slug], delivery_url=f"{urls[f'partner-{slug}']}/api/statements",
                secret=secret, support_contact=f"support@{slug}.example",
            )
    admin.create_organization(session, FIRM, "Cabinet Démo Expertise", "firm")
    boss = admin.create_user(session, FIRM, ADMIN, "Denise Direction", [Right.CONFIGURE_ACCOUNTING],
                             firm_role="administrator")
    collaborator = admin.create_user(session, FIRM, COLLABORATOR, "Camille Collaboratrice",
                                     firm_role="collaborator", actor=boss)
    for slug in SANDBOX_PARTNER_SECRETS:
        firm.associate_connector(session, FIRM, slug, actor=boss)
    firm.add_statement_source(session, FIRM, "banque", url=urls[STATEMENT_SOURCE], token=SANDBOX_SOURCE_TOKENS[FIRM],
                              actor=boss)
    firm.add_statement_source(session, FIRM, "depot", inbox_prefix="depot", actor=boss)
    for client, (connector, mandate) in SETUP.items():
        iban = iban_of(client)
        firm.add_iban(session, FIRM, iban, client, actor=collaborator)
        if connector:
            firm.attach_iban(session, FIRM, iban, connector, actor=collaborator)
        firm.set_mandate(session, FIRM, iban, mandate, actor=boss)
    return True
