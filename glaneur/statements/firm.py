"""Accounting firms: partner connectors, client IBANs, mandates and statement sources.

The rules are those of the per-IBAN connectors FAQ (``seeds/per-iban-statement-connectors-faq.md``):

* a firm associates as many partner connectors as it wants ("Il n'y a pas de limite"); only a
  supervisor or an administrator of the firm associates or removes one, and removal is refused while
  any IBAN of the firm is attached to it (the refusal lists them);
* every firm profile may attach an IBAN to a connector, but only to one the firm has associated;
  "no connector" (``Aucun connecteur``) detaches it;
* an IBAN is active only while its mandate is approved; statements of an active IBAN with a
  connector go to that partner and leave the firm's global statements file.

Like :mod:`glaneur.admin`, every function takes a session, checks everything before the first write,
flushes and never commits, and writes the audit log. Secrets (partner HMAC secrets, statement API
tokens) go to the vault.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from schwifty import IBAN
from schwifty.exceptions import SchwiftyException
from sqlmodel import Session, col, select

from glaneur.admin.checks import check_name, check_slug, names_or_none, parse_choice
from glaneur.admin.lookups import get_organization
from glaneur.admin.rights import audit_log_entry, require_member
from glaneur.errors import UsageError
from glaneur.vocabulary import MIN_SECRET_CHARS
from glaneur.models import (
    ClientIban,
    FirmConnector,
    FirmRole,
    MandateStatus,
    Organization,
    OrganizationKind,
    PartnerConnector,
    StatementSource,
    StatementSourceKind,
    User,
    utcnow,
)
from glaneur.vault import Vault

PARTNER_SECRET_PURPOSE = "partner_secret"
SOURCE_TOKEN_PURPOSE = "statement_source_token"
NO_CONNECTOR = "none"  # "Aucun connecteur"
CONNECTOR_MANAGERS = (FirmRole.SUPERVISOR, FirmRole.ADMINISTRATOR)


# -- checks ---------------------------------------------------------------------------------------


def normalize_iban(text: str) -> str:
    """``"fr76 3000 4000 ..."`` -> ``"FR763000400..."``; an invalid IBAN is refused saying why."""
    cleaned = "".join(str(text).split()).upper()
    if not cleaned:
        raise UsageError("the IBAN is empty: give the client's IBAN, e.g. FR76 3000 6000 0112 3456 7890 189.")
    try:
        return IBAN(cleaned).compact
    except SchwiftyException as error:
        raise UsageError(f"invalid IBAN '{_masked(cleaned)}': {_iban_problem(error)}") from None


def _iban_problem(error: SchwiftyException) -> str:
    name = type(error).__name__
    if name == "InvalidChecksumDigits":
        return "its check digits do not match (a typo?); copy it again from the client's bank details."
    if name == "InvalidCountryCode":
        return "it does not start with a known country code (FR, BE, DE...)."
    if name == "InvalidLength":
        return "it has the wrong length for its country."
    if name == "InvalidStructure":
        return "its characters do not follow its country's IBAN layout."
    if name == "InvalidBankCode":
        return "its bank code is not a valid one for its country."
    return f"{error}."


def _masked(iban: str) -> str:
    """Enough of an IBAN to recognise it in a message, as banks print it (country, check, last 4)."""
    return iban if len(iban) <= 8 else f"{iban[:4]}…{iban[-4:]}"


def normalize_url(url: str, what: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"invalid {what} '{url}': expected an http(s) address such as https://tool.example/api.")
    return url.rstrip("/")


def _check_secret(secret: str | None, what: str) -> str:
    secret = (secret or "").strip()
    if len(secret) < MIN_SECRET_CHARS:
        raise UsageError(f"the {what} is missing or shorter than {MIN_SECRET_CHARS} characters: give the full value.")
    return secret


def require_firm(session: Session, org: Organization | str) -> Organization:
    org = get_organization(session, org)
    if org.kind != OrganizationKind.FIRM:
        raise UsageError(
            f"organisation '{org.slug}' is not an accounting firm: partner connectors, client IBANs and statements "
            "belong to firms (create one with `glaneur org create SLUG NAME --firm`)."
        )
    return org


def require_profile(actor: User | None, org: Organization, *roles: FirmRole) -> User:
    """The actor, when a user of the firm with one of ``roles`` (any profile when none given)."""
    actor = require_member(actor, org)
    if actor.firm_role is None:
        raise UsageError(
            f"user '{actor.email}' has no profile in firm '{org.slug}': ask an administrator of the firm "
            "to give them one (collaborator, supervisor or administrator)."
        )
    if roles and actor.firm_role not in roles:
        wanted = " or ".join(role.value for role in roles)
        raise UsageError(
            f"user '{actor.email}' is {actor.firm_role.value} in firm '{org.slug}': only a {wanted} may do this; "
            "ask one of them."
        )
    return actor


# -- partner connectors (the platform's catalogue) ---------------------------------------------------


def create_partner(
    session: Session,
    slug: str,
    name: str,
    *,
    delivery_url: str | None = None,
    secret: str | None = None,
    support_contact: str = "",
) -> PartnerConnector:
    """A partner production tool in the catalogue: the platform team's act, at the console."""
    slug = check_slug(slug, "partner connector")
    name = check_name(name, "partner connector")
    url = normalize_url(delivery_url, "delivery address") if delivery_url else None
    if url is not None:
        secret = _check_secret(secret, "partner's signing secret")
    if session.exec(select(PartnerConnector).where(PartnerConnector.slug == slug)).first() is not None:
        raise UsageError(f"partner connector '{slug}' already exists: choose another slug.")
    partner = PartnerConnector(
        slug=slug,
        name=name,
        delivery_url=url,
        secret_ref=Vault(session).put(PARTNER_SECRET_PURPOSE, secret) if url and secret else None,
        support_contact=support_contact.strip(),
        created_at=utcnow(),
    )
    session.add(partner)
    session.flush()
    return partner


def update_partner(
    session: Session, partner: PartnerConnector | str, *, delivery_url: str | None = None, secret: str | None = None
) -> PartnerConnector:
    """Change where a partner takes deliveries, or its signing secret (the platform team's act)."""
    partner = get_partner(session, partner)
    url = normalize_url(delivery_url, "delivery address") if delivery_url else partner.delivery_url
    if secret is not None:
        secret = _check_secret(secret, "partner's signing secret")
    if url and partner.secret_ref is None and secret is None:
        raise UsageError(f"partner connector '{partner.slug}' has no signing secret yet: give one with the address.")
    partner.delivery_url = url
    if secret is not None:
        partner.secret_ref = Vault(session).store(partner.secret_ref, PARTNER_SECRET_PURPOSE, secret)
    session.add(partner)
    session.flush()
    return partner


def get_partner(session: Session, partner: PartnerConnector | str) -> PartnerConnector:
    if isinstance(partner, PartnerConnector):
        return partner
    slug = partner.strip()
    found = session.exec(select(PartnerConnector).where(PartnerConnector.slug == slug)).first()
    if found is None:
        existing = session.exec(select(PartnerConnector.slug).order_by(PartnerConnector.slug)).all()
        raise UsageError(f"unknown partner connector '{slug}'; connectors: {names_or_none(existing)}.")
    return found


def list_partners(session: Session) -> list[PartnerConnector]:
    return list(session.exec(select(PartnerConnector).order_by(PartnerConnector.slug)).all())


# -- the firm's connectors ("Cabinet(s)" page) ---------------------------------------------------------


def firm_connectors(session: Session, org: Organization | str) -> list[PartnerConnector]:
    org = require_firm(session, org)
    return list(
        session.exec(
            select(PartnerConnector)
            .join(FirmConnector, col(FirmConnector.partner_id) == col(PartnerConnector.id))
            .where(FirmConnector.organization_id == org.id)
            .order_by(PartnerConnector.slug)
        ).all()
    )


def _association(session: Session, org: Organization, partner: PartnerConnector) -> FirmConnector | None:
    return session.exec(
        select(FirmConnector).where(FirmConnector.organization_id == org.id, FirmConnector.partner_id == partner.id)
    ).first()


def _connector_change(
    session: Session, org: Organization | str, partner: PartnerConnector | str, actor: User | None
) -> tuple[Organization, User, PartnerConnector]:
    """The firm, the actor (supervisor or administrator) and the partner of a change to the firm's connectors."""
    org = require_firm(session, org)
    return org, require_profile(actor, org, *CONNECTOR_MANAGERS), get_partner(session, partner)


def associate_connector(
    session: Session, org: Organization | str, partner: PartnerConnector | str, *, actor: User | None
) -> FirmConnector:
    """Associate a partner connector with the firm (supervisor or administrator only; no limit in number)."""
    org, actor, partner = _connector_change(session, org, partner, actor)
    if _association(session, org, partner) is not None:
        raise UsageError(f"connector '{partner.slug}' is already associated with firm '{org.slug}'.")
    link = FirmConnector(
        organization_id=org.id, partner_id=partner.id, associated_by_user_id=actor.id, associated_at=utcnow()
    )
    session.add(link)
    audit_log_entry(session, org, actor, "firm.connector_associate", partner.slug, partner.name)
    session.flush()
    return link


def set_hold_statements_with_warnings(
    session: Session, org: Organization | str, hold: bool, *, actor: User | None
) -> Organization:
    """The firm setting: statements read with warnings wait for review, or are routed (supervisor or administrator)."""
    org = require_firm(session, org)
    actor = require_profile(actor, org, *CONNECTOR_MANAGERS)
    org.hold_statements_with_warnings = hold
    session.add(org)
    audit_log_entry(session, org, actor, "firm.hold_statements_with_warnings", org.slug, "on" if hold else "off")
    session.flush()
    return org


def remove_connector(
    session: Session, org: Organization | str, partner: PartnerConnector | str, *, actor: User | None
) -> None:
    """Remove a connector from the firm: refused while any IBAN of the firm is attached to it."""
    org, actor, partner = _connector_change(session, org, partner, actor)
    link = _association(session, org, partner)
    if link is None:
        raise UsageError(f"connector '{partner.slug}' is not associated with firm '{org.slug}': nothing to remove.")
    attached = session.exec(
        select(ClientIban.iban)
        .where(ClientIban.organization_id == org.id, ClientIban.partner_id == partner.id)
        .order_by(ClientIban.iban)
    ).all()
    if attached:
        raise UsageError(
            f"connector '{partner.slug}' cannot be removed from firm '{org.slug}': {len(attached)} IBAN(s) are "
            f"attached to it ({', '.join(attached)}). Attach them to another connector or to 'none' first."
        )
    session.delete(link)
    audit_log_entry(session, org, actor, "firm.connector_remove", partner.slug, partner.name)
    session.flush()


# -- client IBANs ("IBAN" page) ------------------------------------------------------------------------


def get_client_iban(session: Session, org: Organization | str, iban: str) -> ClientIban:
    org = require_firm(session, org)
    compact = normalize_iban(iban)
    found = session.exec(
        select(ClientIban).where(ClientIban.organization_id == org.id, ClientIban.iban == compact)
    ).first()
    if found is None:
        raise UsageError(
            f"IBAN {compact} is not one of firm '{org.slug}''s client IBANs: add it with `glaneur iban add`."
        )
    return found


def add_iban(
    session: Session,
    org: Organization | str,
    iban: str,
    client_name: str,
    *,
    bic: str | None = None,
    mandate_reference: str = "",
    actor: User | None,
) -> ClientIban:
    """A client's IBAN, validated and normalised; its mandate starts pending."""
    org = require_firm(session, org)
    actor = require_profile(actor, org)
    compact = normalize_iban(iban)
    client_name = check_name(client_name, "client")
    if session.exec(
        select(ClientIban).where(ClientIban.organization_id == org.id, ClientIban.iban == compact)
    ).first():
        raise UsageError(f"IBAN {compact} is already registered in firm '{org.slug}'.")
    row = ClientIban(
        organization_id=org.id,
        iban=compact,
        client_name=client_name,
        bic=_bic(bic, compact),
        mandate_reference=mandate_reference.strip(),
        created_at=utcnow(),
    )
    session.add(row)
    audit_log_entry(session, org, actor, "iban.add", compact, client_name)
    session.flush()
    return row


def _bic(bic: str | None, iban: str) -> str | None:
    if bic:
        from schwifty import BIC

        try:
            return BIC(bic.strip().upper()).compact
        except SchwiftyException as error:
            raise UsageError(f"invalid BIC '{bic.strip()}': {error}.") from None
    try:
        found = IBAN(iban).bic  # schwifty's bank registry, when it knows the bank
    except SchwiftyException:
        return None
    return found.compact if found is not None else None


def attach_iban(
    session: Session, org: Organization | str, iban: str, partner: PartnerConnector | str | None, *, actor: User | None
) -> ClientIban:
    """Attach an IBAN to one connector associated with the firm, or to none ("Aucun connecteur")."""
    org = require_firm(session, org)
    actor = require_profile(actor, org)
    row = get_client_iban(session, org, iban)
    target: PartnerConnector | None = None
    if partner is not None and not (isinstance(partner, str) and partner.strip().lower() == NO_CONNECTOR):
        target = get_partner(session, partner)
        if _association(session, org, target) is None:
            associated = [p.slug for p in firm_connectors(session, org)]
            raise UsageError(
                f"connector '{target.slug}' is not associated with firm '{org.slug}' (associated: "
                f"{names_or_none(associated)}): a supervisor or administrator must add it on the firm first."
            )
    row.partner_id = target.id if target is not None else None
    session.add(row)
    audit_log_entry(session, org, actor, "iban.attach", row.iban, target.slug if target else NO_CONNECTOR)
    session.flush()
    return row


def set_mandate(
    session: Session,
    org: Organization | str,
    iban: str,
    status: MandateStatus | str,
    *,
    reference: str | None = None,
    actor: User | None,
) -> ClientIban:
    """Record the mandate's status as the bank reports it (supervisor or administrator)."""
    org = require_firm(session, org)
    actor = require_profile(actor, org, *CONNECTOR_MANAGERS)
    status = parse_choice(MandateStatus, status, "mandate status", "statuses")
    row = get_client_iban(session, org, iban)
    row.mandate_status = status
    if reference is not None:
        row.mandate_reference = reference.strip()
    row.mandate_changed_at = utcnow()
    session.add(row)
    audit_log_entry(session, org, actor, "iban.mandate", row.iban, status.value)
    session.flush()
    return row


def list_ibans(session: Session, org: Organization | str) -> list[tuple[ClientIban, PartnerConnector | None]]:
    org = require_firm(session, org)
    rows = session.exec(
        select(ClientIban, PartnerConnector)
        .join(PartnerConnector, col(ClientIban.partner_id) == col(PartnerConnector.id), isouter=True)
        .where(ClientIban.organization_id == org.id)
        .order_by(ClientIban.client_name, ClientIban.iban)
    ).all()
    return [(row, partner) for row, partner in rows]


# -- statement sources ---------------------------------------------------------------------------------


def add_statement_source(
    session: Session,
    org: Organization | str,
    slug: str,
    *,
    url: str | None = None,
    token: str | None = None,
    inbox_prefix: str | None = None,
    actor: User | None,
) -> StatementSource:
    """Where the firm's statement files come from: a statement API (URL and token) or an inbox prefix."""
    org = require_firm(session, org)
    actor = require_profile(actor, org, *CONNECTOR_MANAGERS)
    slug = check_slug(slug, "statement source")
    if (url is None) == (inbox_prefix is None):
        raise UsageError("give either the statement API's address (--url) or an inbox prefix (--inbox), not both.")
    if session.exec(
        select(StatementSource).where(StatementSource.organization_id == org.id, StatementSource.slug == slug)
    ).first():
        raise UsageError(f"statement source '{slug}' already exists in firm '{org.slug}'.")
    if url is not None:
        source = StatementSource(
            organization_id=org.id,
            slug=slug,
            kind=StatementSourceKind.API,
            url=normalize_url(url, "statement API address"),
            token_ref=Vault(session).put(SOURCE_TOKEN_PURPOSE, _check_secret(token, "statement API token")),
            created_at=utcnow(),
        )
    else:
        source = StatementSource(
            organization_id=org.id,
            slug=slug,
            kind=StatementSourceKind.INBOX,
            inbox_prefix=inbox_prefix_for(org, inbox_prefix or ""),
            created_at=utcnow(),
        )
    session.add(source)
    audit_log_entry(session, org, actor, "statement_source.add", slug, source.kind.value)
    session.flush()
    return source


def replace_source_token(
    session: Session, org: Organization | str, slug: str, token: str, *, actor: User | None
) -> StatementSource:
    """Enter a statement API's token again (a new one, or the same after its vault entry became unreadable)."""
    org = require_firm(session, org)
    actor = require_profile(actor, org, *CONNECTOR_MANAGERS)
    source = session.exec(
        select(StatementSource).where(StatementSource.organization_id == org.id, StatementSource.slug == slug)
    ).first()
    if source is None or source.kind != StatementSourceKind.API:
        raise UsageError(
            f"firm '{org.slug}' has no statement API source '{slug}' (see glaneur firm sources {org.slug})."
        )
    token = _check_secret(token, "statement API token")
    # Stored without reading the old token: it may be the unreadable one.
    source.token_ref = Vault(session).store(source.token_ref, SOURCE_TOKEN_PURPOSE, token)
    source.last_error = ""
    session.add(source)
    audit_log_entry(session, org, actor, "statement_source.token", slug, "replaced")
    session.flush()
    return source


def inbox_prefix_for(org: Organization, name: str) -> str:
    """Inboxes live under the firm's own prefix, so that one firm never reads another's files."""
    name = name.strip().strip("/")
    if name and name != "inbox":
        check_slug(name, "inbox")
    return f"{org.slug}/inbox/{name if name and name != 'inbox' else 'statements'}/"


def statement_sources(session: Session, org: Organization | str) -> Sequence[StatementSource]:
    org = require_firm(session, org)
    return session.exec(
        select(StatementSource).where(StatementSource.organization_id == org.id).order_by(StatementSource.slug)
    ).all()


def firms(session: Session) -> Sequence[Organization]:
    return session.exec(
        select(Organization).where(Organization.kind == OrganizationKind.FIRM).order_by(Organization.slug)
    ).all()
