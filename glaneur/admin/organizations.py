"""Organisations, their users and their binders ("classeurs de dépôt")."""

from __future__ import annotations

from collections.abc import Iterable

from sqlmodel import Session, select

from glaneur.errors import UsageError
from glaneur.models import Binder, FirmRole, Organization, OrganizationKind, Right, User
from glaneur.admin.checks import check_name, check_slug, normalize_email, now, parse_choice
from glaneur.admin.lookups import get_organization, get_user
from glaneur.admin.rights import (
    ADMINISTRATION_RIGHTS,
    FIRM_ROLE_RANK,
    audit_log_entry,
    bootstrapping,
    require_right,
    right_label,
)



def create_organization(
    session: Session, slug: str, name: str, kind: OrganizationKind | str = OrganizationKind.COMPANY
) -> Organization:
    """An organisation (a company, or an accounting firm): the platform team's act, so it needs no actor."""
    slug = check_slug(slug, "organisation")
    name = check_name(name, "organisation")
    try:
        kind = OrganizationKind(kind)
    except ValueError:
        raise UsageError(
            f"unknown organisation kind '{kind}'; kinds: {', '.join(k.value for k in OrganizationKind)}."
        ) from None
    if session.exec(select(Organization).where(Organization.slug == slug)).first() is not None:
        raise UsageError(f"organisation '{slug}' already exists: choose another slug.")
    org = Organization(slug=slug, name=name, kind=kind, created_at=now())
    session.add(org)
    session.flush()
    audit_log_entry(session, org, None, "organization.create", org.slug, f"{org.name} ({kind.value})")
    session.flush()
    return org


def create_user(
    session: Session,
    org: Organization | str,
    email: str,
    name: str,
    rights: Iterable[Right | str] = (),
    *,
    firm_role: FirmRole | str | None = None,
    actor: User | None = None,
) -> User:
    """A user of ``org``.

    The organisation's first user needs no actor (bootstrap). Afterwards ``actor`` must be a user
    of ``org`` holding a configure right, and may grant only the rights they hold themselves. In a
    firm, a user has a profile (collaborator, supervisor, administrator); nobody grants a profile
    above their own.
    """
    org = get_organization(session, org)
    role = parse_choice(FirmRole, firm_role, "firm profile", "profiles") if firm_role is not None else None
    if role is not None and org.kind != OrganizationKind.FIRM:
        raise UsageError(
            f"organisation '{org.slug}' is not an accounting firm: firm profiles ({role.value}) exist only in firms."
        )
    address = normalize_email(email)
    name = check_name(name, "user")
    granted: list[Right] = []
    for right in rights:
        try:
            value = Right(right)
        except ValueError:
            raise UsageError(f"unknown right '{right}'; rights: {', '.join(r.value for r in Right)}.") from None
        if value not in granted:
            granted.append(value)
    first = bootstrapping(session, org)
    if not first:
        actor = require_right(actor, org, *ADMINISTRATION_RIGHTS)
        beyond = [right for right in granted if not actor.has_right(right)]
        if beyond:
            raise UsageError(
                f"user '{actor.email}' cannot grant {' and '.join(right_label(r) for r in beyond)}: "
                "a user grants only the rights they hold themselves."
            )
        if role is not None and FIRM_ROLE_RANK[role] > FIRM_ROLE_RANK.get(actor.firm_role, 0):
            raise UsageError(
                f"user '{actor.email}' cannot make '{address}' {role.value}: "
                "nobody grants a firm profile above their own."
            )
    if session.exec(select(User).where(User.organization_id == org.id, User.email == address)).first():
        raise UsageError(f"user '{address}' already exists in organisation '{org.slug}'.")
    user = User(
        organization_id=org.id,
        email=address,
        name=name,
        rights=",".join(r.value for r in granted),
        firm_role=role,
        created_at=now(),
    )
    session.add(user)
    session.flush()
    detail = f"rights: {', '.join(r.value for r in granted) or 'none'}" + (f"; profile: {role.value}" if role else "")
    audit_log_entry(session, org, None if first else actor, "user.create", address, detail + (" (first user)" if first else ""))
    session.flush()
    return user


def update_user(
    session: Session,
    org: Organization | str,
    email: str,
    *,
    new_email: str | None = None,
    name: str | None = None,
    actor: User | None,
) -> User:
    """Correct a user's profile: the e-mail address their mails go to, or their name.

    A user corrects their own profile; another's needs a configure right. Rights and firm profiles are
    not changed here. Pending invitations keep the address they were sent to until sent again
    (``resend-invitation`` sends to the corrected one)."""
    org = get_organization(session, org)
    stored = email.strip().lower()  # as stored, even an address that no longer passes the checks
    user = session.exec(select(User).where(User.organization_id == org.id, User.email == stored)).first()
    user = user or get_user(session, org, email)
    if actor is None or actor.id != user.id:
        require_right(actor, org, *ADMINISTRATION_RIGHTS)
    if new_email is None and name is None:
        raise UsageError("nothing to change: give --email with the corrected address, or --name.")
    changes = []
    if new_email is not None:
        address = normalize_email(new_email)
        if address != user.email:
            if session.exec(select(User).where(User.organization_id == org.id, User.email == address)).first():
                raise UsageError(f"user '{address}' already exists in organisation '{org.slug}'.")
            changes.append(f"e-mail {user.email} -> {address}")
            user.email = address
    if name is not None:
        name = check_name(name, "user")
        if name != user.name:
            changes.append(f"name {user.name} -> {name}")
            user.name = name
    if changes:
        session.add(user)
        audit_log_entry(session, org, actor, "user.update", user.email, "; ".join(changes))
        session.flush()
    return user


def create_binder(
    session: Session, org: Organization | str, slug: str, name: str, *, actor: User | None = None
) -> Binder:
    """A binder ("classeur de dépôt") where channels file their documents.

    ``actor`` must be a user of ``org`` holding a configure right, unless ``org`` has no user yet.
    """
    org = get_organization(session, org)
    if not bootstrapping(session, org):
        actor = require_right(actor, org, *ADMINISTRATION_RIGHTS)
    else:
        actor = None
    slug = check_slug(slug, "binder")
    name = check_name(name, "binder")
    if session.exec(select(Binder).where(Binder.organization_id == org.id, Binder.slug == slug)).first():
        raise UsageError(f"binder '{slug}' already exists in organisation '{org.slug}': choose another slug.")
    binder = Binder(organization_id=org.id, slug=slug, name=name, created_at=now())
    session.add(binder)
    session.flush()
    audit_log_entry(session, org, actor, "binder.create", binder.slug, binder.name)
    session.flush()
    return binder
