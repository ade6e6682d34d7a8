"""Rights ("détail des droits") and the audit log: who may change what, and who did."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from glaneur.errors import UsageError
from glaneur.models import AuditLog, ChannelKind, FirmRole, Organization, Right, User
from glaneur.admin.checks import names_or_none, normalize_email, now
from glaneur.admin.lookups import get_organization, of_organizations


# The labels users read in "détail des droits": a refusal names the missing right by its label.
RIGHT_LABELS: dict[Right, str] = {
    Right.CONFIGURE_COLLECTION: "Autoriser l'accès au paramétrage de la collecte",
    Right.CONFIGURE_ACCOUNTING: "Autoriser l'accès au paramétrage de la comptabilité",
}
# Users and binders serve the supplier side and the bank side alike: either right administers them.
ADMINISTRATION_RIGHTS = (Right.CONFIGURE_COLLECTION, Right.CONFIGURE_ACCOUNTING)


FIRM_ROLE_RANK = {FirmRole.COLLABORATOR: 1, FirmRole.SUPERVISOR: 2, FirmRole.ADMINISTRATOR: 3}


def right_label(right: Right) -> str:
    """``'Autoriser l'accès au paramétrage de la collecte' (configure_collection)``."""
    return f"'{RIGHT_LABELS[right]}' ({right.value})"


def right_for_kind(kind: ChannelKind | str) -> Right:
    """Bank channels need the accounting right (the POWENS page); supplier channels the collection right."""
    return Right.CONFIGURE_ACCOUNTING if ChannelKind(kind) == ChannelKind.BANK else Right.CONFIGURE_COLLECTION


def bootstrapping(session: Session, org: Organization | str) -> bool:
    """Whether ``org`` has no user yet: its first user and its binders are then created without an actor."""
    org = get_organization(session, org)
    return session.exec(select(User.id).where(User.organization_id == org.id)).first() is None


def require_member(actor: User | None, org: Organization) -> User:
    """The actor, when a user of ``org``; else a refusal saying who may make the change."""
    if actor is None:
        raise UsageError(f"this change must be made by a known user of organisation '{org.slug}' (the acting user).")
    if actor.organization_id != org.id:
        raise UsageError(
            f"user '{actor.email}' belongs to another organisation, not '{org.slug}': "
            f"only users of '{org.slug}' may change its settings."
        )
    return actor


def require_right(actor: User | None, org: Organization, *rights: Right) -> User:
    """The actor, when a user of ``org`` holding one of ``rights``; else a refusal naming the missing right."""
    actor = require_member(actor, org)
    if not any(actor.has_right(right) for right in rights):
        missing = " or ".join(right_label(right) for right in rights)
        raise UsageError(
            f"user '{actor.email}' lacks the right {missing} in organisation '{org.slug}': "
            "ask an administrator of the organisation to grant it."
        )
    return actor


def readable_organizations(session: Session, email: str) -> set[int]:
    """The organisations a user reads: those it is a user of (a firm's collaborator may be a user of several).

    Reads are scoped by them: a user never sees another organisation's channels, documents, statements
    or notifications. Without an acting user (the platform team, at the console) reads are not scoped.
    """
    address = normalize_email(email)
    found = set(session.exec(select(User.organization_id).where(User.email == address)).all())
    if not found:
        raise UsageError(f"unknown user '{address}': no organisation has a user with this address.")
    return found


def require_reader(
    session: Session, readable: set[int] | None, org: Organization | str, email: str | None
) -> Organization:
    """``org``, when ``readable`` (the acting user's organisations; None: not scoped) holds it; else a refusal
    that names neither ``org``'s data nor, when ``org`` is unknown, the other organisations."""
    if readable is None:
        return get_organization(session, org)
    slug = org.slug if isinstance(org, Organization) else org.strip()
    found = org if isinstance(org, Organization) else session.exec(
        select(Organization).where(Organization.slug == slug)).first()
    if found is None or found.id not in readable:
        own = session.exec(select(Organization.slug).where(col(Organization.id).in_(readable))
                           .order_by(Organization.slug)).all()
        raise UsageError(  # the same words whether or not another organisation has this slug
            f"unknown organisation '{slug}' for user '{email}', who reads only its own organisation's data: "
            f"{names_or_none(own)}."
        )
    return found


def audit_log_entry(session: Session, org: Organization, actor: User | None, action: str, target: str, detail: str = "") -> None:
    """One line of the audit log: who did what to what, and when. Callers never pass a secret."""
    session.add(
        AuditLog(
            organization_id=org.id,
            actor_user_id=actor.id if actor is not None else None,  # None: the platform team, at the console
            action=action,
            target=target,
            detail=detail,
            at=now(),
        )
    )


@dataclass(frozen=True)
class AuditEntry:
    """One line of the audit log, with the names a reader needs."""

    log: AuditLog
    organization: str
    actor: str | None  # the actor's e-mail; None for the platform team, at the console


def audit_log(
    session: Session, *, org: Organization | str | None = None, limit: int = 50, organizations: set[int] | None = None
) -> list[AuditEntry]:
    """Who created, changed the credentials of, or deleted what, and when; newest first (only ``organizations``'
    lines when given)."""
    if limit < 1:
        raise UsageError(f"invalid limit {limit}: expected a positive number.")
    query = (
        select(AuditLog, Organization.slug, User.email)
        .join(Organization, AuditLog.organization_id == Organization.id)
        .outerjoin(User, AuditLog.actor_user_id == User.id)
    )
    query = of_organizations(session, query, AuditLog.organization_id, org, organizations)
    query = query.order_by(col(AuditLog.at).desc(), col(AuditLog.id).desc()).limit(limit)
    return [AuditEntry(log, slug, email) for log, slug, email in session.exec(query).all()]
