"""Administration of the domain: organisations, users, binders, channels and their accounts, history.

Every function takes a :class:`sqlmodel.Session` and returns model objects. Bad input raises
:class:`~glaneur.errors.UsageError` naming what to fix, and every check runs before the first
write, so a refused call changes nothing. Writes are flushed, never committed: the caller owns
the transaction (:func:`glaneur.db.session_scope` commits, or rolls back on any error).

Secrets (passwords, TOTP seeds) go to the vault; an account keeps only the vault entry's id.
No function here prints, prompts or touches Prefect.

Rights ("détail des droits"): every change to a channel or its accounts is made by an ``actor``,
a user of the channel's organisation holding the right its kind needs (supplier channels:
"Autoriser l'accès au paramétrage de la collecte"; bank channels: "... de la comptabilité").
Users and binders are created by a user of the organisation holding either right, except while
the organisation has no user at all (bootstrap: its first user, and binders, need no actor).
Organisations and shipped connectors are the platform team's, at the console (no actor).
Every change is written to the audit log (:class:`~glaneur.models.AuditLog`), never a secret.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sqlalchemy import func
from sqlmodel import Session, col, select

from connectors import catalog
from glaneur.contract import Provider
from glaneur import totp as portal_totp
from glaneur.errors import UsageError
from glaneur.models import (
    MAX_ACCOUNTS_PER_CHANNEL,
    Account,
    AuditLog,
    Binder,
    Channel,
    ChannelKind,
    CollectionRun,
    ConnectorRequest,
    ConnectorRequestState,
    Document,
    FirmRole,
    Invitation,
    InvitationState,
    Organization,
    OrganizationKind,
    Right,
    User,
    VaultEntry,
)
from glaneur.settings import Settings
from glaneur.statuses import Status, describe
from glaneur.vault import Vault

if TYPE_CHECKING:
    from glaneur.mail import Delivery

# Slugs end up in storage keys, Prefect flow run names and artifact keys (^[a-z0-9-]*$).
SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
SLUG_MAX = 63
# Pragmatic address check: one @, a dot-atom local part, a domain of DNS labels with a dot.
EMAIL_RE = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
TIME_SLOT_RE = re.compile(r"^(\d{1,2}):(\d{2})$")

_LIVE = (col(Channel.deleted_at).is_(None), col(Channel.active).is_(True))

PASSWORD_PURPOSE = "password"
TOTP_PURPOSE = "totp_seed"


# -- small validators ------------------------------------------------------------------------


def slugify(text: str) -> str:
    """``"Acme - Papeterie Dupont"`` -> ``"acme-papeterie-dupont"`` (accents dropped)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:SLUG_MAX].strip("-")


def check_slug(slug: str, what: str) -> str:
    slug = slug.strip()
    if not SLUG_RE.fullmatch(slug) or len(slug) > SLUG_MAX:
        suggestion = slugify(slug)
        hint = f" (for example '{suggestion}')" if suggestion else ""
        raise UsageError(
            f"invalid {what} slug '{slug}': use lowercase letters, digits and single dashes, "
            f"at most {SLUG_MAX} characters{hint}."
        )
    return slug


def check_name(name: str, what: str) -> str:
    name = name.strip()
    if not name:
        raise UsageError(f"the {what} name is empty: give a name.")
    return name


def normalize_email(email: str) -> str:
    """Trimmed and lowercased, so that one mailbox is one user; raises on a malformed address."""
    email = email.strip()
    if len(email) > 254 or not EMAIL_RE.fullmatch(email):
        raise UsageError(f"invalid e-mail address '{email}': expected something like name@example.com.")
    return email.lower()


def normalize_time_slot(time_slot: str) -> str:
    """``"6:00"`` -> ``"06:00"``; raises unless it is a time of day as HH:MM."""
    match = TIME_SLOT_RE.fullmatch(time_slot.strip())
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise UsageError(f"invalid time slot '{time_slot}': expected HH:MM between 00:00 and 23:59, e.g. 06:00.")
    return f"{int(match[1]):02d}:{match[2]}"


def normalize_totp_seed(seed: str) -> str:
    """A base32 TOTP seed, spaces removed and uppercased, that pyotp accepts. Messages never repeat it."""
    cleaned = re.sub(r"[\s-]+", "", seed).upper().rstrip("=")
    try:
        valid = bool(re.fullmatch(r"[A-Z2-7]+", cleaned)) and bool(base64.b32decode(_padded(cleaned)))
    except binascii.Error:
        valid = False
    if not valid:
        raise UsageError("the TOTP seed is not valid base32 (letters A-Z and digits 2-7): copy it again from the portal.")
    if len(base64.b32decode(_padded(cleaned))) * 8 < portal_totp.MIN_SEED_BITS:
        raise UsageError(
            f"the TOTP seed is too short ({len(cleaned)} characters; a portal's seed has at least "
            f"{portal_totp.MIN_SEED_CHARS}): copy the whole seed from the portal."
        )
    portal_totp.code(cleaned)  # the collection computes codes from it: it must be usable now, not at collection time
    return cleaned


def _padded(base32: str) -> str:
    return base32 + "=" * (-len(base32) % 8)


def _check_password(password: str | None) -> str:
    if password is None or not password.strip():
        raise UsageError("the password is empty: enter the password of the supplier account.")
    return password


def _check_login(login: str) -> str:
    login = login.strip()
    if not login:
        raise UsageError("the login is empty: enter the identifier or e-mail used on the supplier's portal.")
    return login


def parse_status(value: Status | str) -> Status:
    """A status from its value (``"wrong_credentials"``); raises listing the valid ones."""
    try:
        return Status(value.strip().lower() if isinstance(value, str) else value)
    except ValueError:
        raise UsageError(f"unknown status '{value}'; statuses: {', '.join(s.value for s in Status)}.") from None


def parse_date(value: date | str) -> date:
    """A date from ``YYYY-MM-DD``; raises with the expected format."""
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise UsageError(f"invalid date '{value}': expected YYYY-MM-DD, e.g. 2025-01-31.") from None


def names_or_none(items: Iterable[str]) -> str:
    listed = ", ".join(items)
    return listed or "none yet"


# -- lookups ----------------------------------------------------------------------------------


def get_organization(session: Session, org: Organization | str) -> Organization:
    if isinstance(org, Organization):
        return org
    found = session.exec(select(Organization).where(Organization.slug == org.strip())).first()
    if found is None:
        existing = session.exec(select(Organization.slug).order_by(Organization.slug)).all()
        raise UsageError(f"unknown organisation '{org}'; organisations: {names_or_none(existing)}.")
    return found


def get_user(session: Session, org: Organization | str, email: str) -> User:
    """A user of ``org`` by e-mail; says so when the address belongs to another organisation."""
    org = get_organization(session, org)
    address = normalize_email(email)
    found = session.exec(select(User).where(User.organization_id == org.id, User.email == address)).first()
    if found is not None:
        return found
    elsewhere = session.exec(select(User).where(User.email == address)).first()
    existing = session.exec(select(User.email).where(User.organization_id == org.id).order_by(User.email)).all()
    if elsewhere is not None:
        raise UsageError(
            f"user '{address}' belongs to another organisation, not '{org.slug}'; "
            f"users of '{org.slug}': {names_or_none(existing)}."
        )
    raise UsageError(f"unknown user '{address}' in organisation '{org.slug}'; users: {names_or_none(existing)}.")


def get_actor(session: Session, org: Organization | str, email: str) -> User:
    """The user acting on ``org`` (``--as``, ``GLANEUR_ACTING_USER``): a user of ``org``, else refused.

    The same address may belong to several organisations (a firm's collaborator): the acting user
    is always the one of the organisation whose data changes.
    """
    return get_user(session, org, email)


def get_person(session: Session, email: str, org: Organization | str | None = None) -> User:
    """A user by e-mail alone when the address belongs to one organisation; ``org`` chooses among several."""
    if org is not None:
        return get_user(session, org, email)
    address = normalize_email(email)
    found = session.exec(
        select(User, Organization.slug)
        .join(Organization, User.organization_id == Organization.id)
        .where(User.email == address)
        .order_by(Organization.slug)
    ).all()
    if not found:
        raise UsageError(f"unknown user '{address}': no organisation has a user with this address.")
    if len(found) > 1:
        raise UsageError(
            f"user '{address}' belongs to several organisations ({', '.join(slug for _, slug in found)}): "
            "say which one."
        )
    return found[0][0]


def get_binder(session: Session, org: Organization | str, binder: Binder | str) -> Binder:
    """A binder ("classeur") of ``org``; one of another organisation is refused, saying so."""
    org = get_organization(session, org)
    existing = session.exec(select(Binder.slug).where(Binder.organization_id == org.id).order_by(Binder.slug)).all()
    if isinstance(binder, Binder):
        if binder.organization_id != org.id:
            raise UsageError(
                f"binder '{binder.slug}' belongs to another organisation, not '{org.slug}'; "
                f"binders of '{org.slug}': {names_or_none(existing)}."
            )
        return binder
    slug = binder.strip()
    found = session.exec(select(Binder).where(Binder.organization_id == org.id, Binder.slug == slug)).first()
    if found is not None:
        return found
    if session.exec(select(Binder).where(Binder.slug == slug)).first() is not None:
        raise UsageError(
            f"binder '{slug}' belongs to another organisation, not '{org.slug}'; "
            f"binders of '{org.slug}': {names_or_none(existing)}."
        )
    raise UsageError(f"unknown binder '{slug}' in organisation '{org.slug}'; binders: {names_or_none(existing)}.")


def get_channel(session: Session, channel: Channel | str, *, deleted_ok: bool = False) -> Channel:
    """A channel ("collecteur") by slug; a deleted one is refused, saying so, unless ``deleted_ok``."""
    if isinstance(channel, Channel):
        found: Channel | None = channel
        slug = channel.slug
    else:
        slug = channel.strip()
        found = session.exec(select(Channel).where(Channel.slug == slug)).first()
    if found is None:
        existing = session.exec(select(Channel.slug).where(*_LIVE).order_by(Channel.slug)).all()
        raise UsageError(f"unknown channel '{slug}'; channels: {names_or_none(existing)}.")
    if is_deleted(found) and not deleted_ok:
        raise UsageError(
            f"channel '{found.slug}' was deleted{_on(found.deleted_at)} (définitivement désactivé): it no longer "
            "collects and its credentials were purged. Create a new channel to collect from this supplier again."
        )
    return found


def is_deleted(channel: Channel) -> bool:
    # Deleting a collector ("définitivement désactivé") clears `active`; the collection flow reads that flag.
    return channel.deleted_at is not None or not channel.active


def _on(moment: datetime | None) -> str:
    return f" on {moment:%Y-%m-%d}" if moment is not None else ""


def get_provider(slug: str) -> Provider:
    """A catalogue entry (unknown slugs raise the catalogue's UsageError)."""
    return catalog.get_provider(slug.strip())


def get_account(session: Session, channel: Channel | str, login: str) -> Account:
    channel = get_channel(session, channel)
    accounts = channel_accounts(session, channel)
    for account in accounts:
        if account.login == login.strip():
            return account
    raise UsageError(
        f"no account '{login}' on channel '{channel.slug}'; accounts: {names_or_none(a.login for a in accounts)}."
    )


def channel_accounts(session: Session, channel: Channel) -> list[Account]:
    return list(session.exec(select(Account).where(Account.channel_id == channel.id).order_by(Account.position)).all())


def organization_of(session: Session, channel: Channel) -> Organization:
    org = session.get(Organization, channel.organization_id)
    assert org is not None  # foreign key
    return org


# -- rights and the audit log -------------------------------------------------------------------------

# The labels users read in "détail des droits": a refusal names the missing right by its label.
RIGHT_LABELS: dict[Right, str] = {
    Right.CONFIGURE_COLLECTION: "Autoriser l'accès au paramétrage de la collecte",
    Right.CONFIGURE_ACCOUNTING: "Autoriser l'accès au paramétrage de la comptabilité",
}
# Users and binders serve the supplier side and the bank side alike: either right administers them.
ADMINISTRATION_RIGHTS = (Right.CONFIGURE_COLLECTION, Right.CONFIGURE_ACCOUNTING)


FIRM_ROLE_RANK = {FirmRole.COLLABORATOR: 1, FirmRole.SUPERVISOR: 2, FirmRole.ADMINISTRATOR: 3}


def parse_firm_role(value: FirmRole | str) -> FirmRole:
    try:
        return FirmRole(str(value).strip().lower())
    except ValueError:
        raise UsageError(
            f"unknown firm profile '{value}'; profiles: {', '.join(r.value for r in FirmRole)}."
        ) from None


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


def _require_actor(actor: User | None, org: Organization) -> User:
    if actor is None:
        raise UsageError(f"this change must be made by a known user of organisation '{org.slug}' (the acting user).")
    if actor.organization_id != org.id:
        raise UsageError(
            f"user '{actor.email}' belongs to another organisation, not '{org.slug}': "
            f"only users of '{org.slug}' may change its settings."
        )
    return actor


def _require_right(actor: User | None, org: Organization, *rights: Right) -> User:
    """The actor, when a user of ``org`` holding one of ``rights``; else a refusal naming the missing right."""
    actor = _require_actor(actor, org)
    if not any(actor.has_right(right) for right in rights):
        missing = " or ".join(right_label(right) for right in rights)
        raise UsageError(
            f"user '{actor.email}' lacks the right {missing} in organisation '{org.slug}': "
            "ask an administrator of the organisation to grant it."
        )
    return actor


def require_member(actor: User | None, org: Organization) -> User:
    """Public form of the membership check: the actor, when a user of ``org``."""
    return _require_actor(actor, org)


def require_right(actor: User | None, org: Organization, *rights: Right) -> User:
    """Public form of the rights check, for commands that change something outside this module."""
    return _require_right(actor, org, *rights)


def audit_log_entry(session: Session, org: Organization, actor: User | None, action: str, target: str, detail: str = "") -> None:
    """Public form of the audit log, for changes made outside this module. Never pass a secret."""
    _audit(session, org, actor, action, target, detail)


def _audit(session: Session, org: Organization, actor: User | None, action: str, target: str, detail: str = "") -> None:
    """One line of the audit log: who did what to what, and when. Callers never pass a secret."""
    session.add(
        AuditLog(
            organization_id=org.id,
            actor_user_id=actor.id if actor is not None else None,  # None: the platform team, at the console
            action=action,
            target=target,
            detail=detail,
            at=_now(),
        )
    )


# -- organisations, users, binders ---------------------------------------------------------------


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
    org = Organization(slug=slug, name=name, kind=kind, created_at=_now())
    session.add(org)
    session.flush()
    _audit(session, org, None, "organization.create", org.slug, f"{org.name} ({kind.value})")
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
    role = parse_firm_role(firm_role) if firm_role is not None else None
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
        actor = _require_right(actor, org, *ADMINISTRATION_RIGHTS)
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
        created_at=_now(),
    )
    session.add(user)
    session.flush()
    detail = f"rights: {', '.join(r.value for r in granted) or 'none'}" + (f"; profile: {role.value}" if role else "")
    _audit(session, org, None if first else actor, "user.create", address, detail + (" (first user)" if first else ""))
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
        actor = _require_right(actor, org, *ADMINISTRATION_RIGHTS)
    else:
        actor = None
    slug = check_slug(slug, "binder")
    name = check_name(name, "binder")
    if session.exec(select(Binder).where(Binder.organization_id == org.id, Binder.slug == slug)).first():
        raise UsageError(f"binder '{slug}' already exists in organisation '{org.slug}': choose another slug.")
    binder = Binder(organization_id=org.id, slug=slug, name=name, created_at=_now())
    session.add(binder)
    session.flush()
    _audit(session, org, actor, "binder.create", binder.slug, binder.name)
    session.flush()
    return binder


# -- channels and accounts ---------------------------------------------------------------------------


def check_new_channel(
    session: Session,
    org: Organization | str,
    *,
    label: str,
    provider: str,
    binder: Binder | str,
    recipient: User | str,
    slug: str | None = None,
    time_slot: str = "06:00",
    actor: User,
) -> Channel:
    """Every check of :func:`add_channel`, without writing: returns the channel, not yet added.

    The CLI calls it before asking for a password, so that a typo in the provider is reported
    before anyone types a secret.
    """
    org = get_organization(session, org)
    actor = _require_actor(actor, org)
    entry = get_provider(provider)
    if not entry.compatible:
        reason = f" {entry.description.strip()}" if entry.description.strip() else ""
        raise UsageError(
            f"provider '{entry.slug}' ({entry.name}) is not compatible with automatic collection.{reason} "
            "Check the catalogue for another collector of this supplier, or ask for a new collector "
            "('Demander l'ajout d'un collecteur')."
        )
    try:
        kind = ChannelKind(entry.kind)
    except ValueError:
        raise UsageError(f"provider '{entry.slug}' has an unknown kind '{entry.kind}'.") from None
    _require_right(actor, org, right_for_kind(kind))
    label = check_name(label, "channel")
    found_binder, found_recipient = _prerequisites(session, org, binder, recipient)
    if slug is None:
        slug = slugify(f"{org.slug}-{label}")  # never empty: the organisation's slug is valid
    slug = check_slug(slug, "channel")
    taken = session.exec(select(Channel).where(Channel.slug == slug)).first()
    if taken is not None:
        deleted = " by a deleted channel (slugs are never reused: its history keeps it)" if is_deleted(taken) else ""
        raise UsageError(f"channel slug '{slug}' is already taken{deleted}: give another slug.")
    return Channel(
        organization_id=org.id,
        slug=slug,
        label=label,
        kind=kind,
        provider=entry.slug,
        binder_id=found_binder.id,
        recipient_user_id=found_recipient.id,
        owner_user_id=actor.id,  # who set it up is told when it needs a person
        time_slot=normalize_time_slot(time_slot),
        status=Status.NEW,
        status_message=describe(Status.NEW).message,
        status_changed_at=_now(),
        created_at=_now(),
    )


def _prerequisites(
    session: Session, org: Organization, binder: Binder | str, recipient: User | str
) -> tuple[Binder, User]:
    """The destination binder and the recipient user ("critères obligatoires"); each missing one is named."""
    problems: list[str] = []
    found_binder = found_recipient = None
    try:
        found_binder = get_binder(session, org, binder)
    except UsageError as error:
        problems.append(str(error))
    try:
        if isinstance(recipient, User):
            if recipient.organization_id != org.id:
                raise UsageError(f"user '{recipient.email}' belongs to another organisation, not '{org.slug}'.")
            found_recipient = recipient
        else:
            found_recipient = get_user(session, org, recipient)
    except UsageError as error:
        problems.append(f"recipient: {error}")
    if problems:
        raise UsageError(
            " ".join(problems) + " A channel needs a recipient user and a destination binder of its "
            "organisation (critères obligatoires): create what is missing first."
        )
    assert found_binder is not None and found_recipient is not None
    return found_binder, found_recipient


def add_channel(
    session: Session,
    org: Organization | str,
    *,
    label: str,
    provider: str,
    binder: Binder | str,
    recipient: User | str,
    slug: str | None = None,
    time_slot: str = "06:00",
    actor: User,
) -> Channel:
    """Create a collection channel ("canal de collecte connecteur marchand", "collecteur").

    ``binder`` is a binder slug of ``org`` (classeur de dépôt), ``recipient`` the e-mail of a user
    of ``org`` (utilisateur destinataire). The slug defaults to ``{org}-{label}``, slugified.
    ``actor`` (a user of ``org`` with the right the provider's kind needs) becomes the owner.
    """
    channel = check_new_channel(
        session,
        org,
        label=label,
        provider=provider,
        binder=binder,
        recipient=recipient,
        slug=slug,
        time_slot=time_slot,
        actor=actor,
    )
    session.add(channel)
    session.flush()
    binder_slug = session.get(Binder, channel.binder_id).slug
    recipient_email = session.get(User, channel.recipient_user_id).email
    _audit(
        session,
        organization_of(session, channel),
        actor,
        "channel.create",
        channel.slug,
        f"provider {channel.provider}, binder {binder_slug}, recipient {recipient_email}, daily at {channel.time_slot}",
    )
    session.flush()
    return channel


def check_account_slot(session: Session, channel: Channel | str, login: str, *, actor: User) -> tuple[Channel, str]:
    """Whether ``actor`` may add ``login`` to ``channel``: at most two accounts, each login once.

    Returns the channel and the cleaned login. Called before asking for the password.
    """
    channel = get_channel(session, channel)
    _require_right(actor, organization_of(session, channel), right_for_kind(channel.kind))
    login = _check_login(login)
    accounts = channel_accounts(session, channel)
    if any(account.login == login for account in accounts):
        raise UsageError(
            f"account '{login}' is already on channel '{channel.slug}': update its credentials instead."
        )
    if len(accounts) >= MAX_ACCOUNTS_PER_CHANNEL:
        raise UsageError(
            f"a collector holds at most two accounts (jusqu'à deux comptes différents par collecteur); "
            f"channel '{channel.slug}' already has {names_or_none(a.login for a in accounts)}. "
            "Create another channel for a third account."
        )
    return channel, login


def add_account(
    session: Session,
    channel: Channel | str,
    *,
    login: str,
    password: str,
    totp_seed: str | None = None,
    actor: User,
) -> Account:
    """Add a set of credentials to a channel; the password and TOTP seed go to the vault."""
    channel, login = check_account_slot(session, channel, login, actor=actor)
    password = _check_password(password)
    seed = normalize_totp_seed(totp_seed) if totp_seed is not None else None
    taken = {account.position for account in channel_accounts(session, channel)}
    position = next(p for p in range(1, MAX_ACCOUNTS_PER_CHANNEL + 1) if p not in taken)

    vault = Vault(session)
    account = Account(
        channel_id=channel.id,
        position=position,
        login=login,
        secret_ref=vault.put(PASSWORD_PURPOSE, password),
        totp_ref=vault.put(TOTP_PURPOSE, seed) if seed is not None else None,
        status=Status.NEW,
        created_at=_now(),
    )
    session.add(account)
    if channel.status == Status.AWAITING_CREDENTIALS:
        _set_channel_status(channel, Status.NEW)
    totp = "with a TOTP seed" if seed is not None else "without TOTP seed"
    _audit(
        session,
        organization_of(session, channel),
        actor,
        "account.add",
        f"{channel.slug}/{login}",
        f"account {position} of {MAX_ACCOUNTS_PER_CHANNEL}, password {totp}",
    )
    session.flush()
    return account


def check_credentials_update(session: Session, channel: Channel | str, login: str, *, actor: User) -> Account:
    """Whether ``actor`` may overwrite the credentials of ``login`` on ``channel``; the account if so."""
    channel = get_channel(session, channel)
    _require_right(actor, organization_of(session, channel), right_for_kind(channel.kind))
    return get_account(session, channel, login)


def update_credentials(
    session: Session,
    channel: Channel | str,
    login: str,
    *,
    password: str,
    totp_seed: str | None = None,
    actor: User,
) -> Account:
    """Overwrite an account's credentials ("Modifier", then "Valider pour écraser").

    ``totp_seed=None`` keeps the stored seed. The saved portal session is dropped, since it
    belonged to the old credentials; the account and the channel go back to ``new`` so that the
    next run tries again (a locked or refused account is retried only after a person acts), and
    the owner will be told again if the new credentials fail too.
    """
    account = check_credentials_update(session, channel, login, actor=actor)
    channel = get_channel(session, channel)
    password = _check_password(password)
    seed = normalize_totp_seed(totp_seed) if totp_seed is not None else None

    vault = Vault(session)
    if account.secret_ref is None:
        account.secret_ref = vault.put(PASSWORD_PURPOSE, password)
    else:
        vault.replace(account.secret_ref, password)
    if seed is not None:
        if account.totp_ref is None:
            account.totp_ref = vault.put(TOTP_PURPOSE, seed)
        else:
            vault.replace(account.totp_ref, seed)
    stale_session = account.session_ref
    account.session_ref = None
    account.status = Status.NEW
    _set_channel_status(channel, Status.NEW)
    channel.notified_status = None  # a person acted: a new failure is a new change of state, told again
    session.add(account)
    session.add(channel)
    totp = "TOTP seed replaced" if seed is not None else "TOTP seed kept"
    _audit(
        session,
        organization_of(session, channel),
        actor,
        "account.credentials_update",
        f"{channel.slug}/{account.login}",
        f"password replaced, {totp}, status reset to new",
    )
    session.flush()
    if stale_session is not None:
        vault.delete(stale_session)
        session.flush()
    return account


@dataclass(frozen=True)
class Deletion:
    """What deleting a collector did: secrets purged; documents and history kept."""

    channel: Channel
    accounts: int
    purged_secrets: int
    cancelled_invitations: int
    documents_kept: int
    runs_kept: int
    invitation_runs: tuple[str, ...] = ()  # the suspended Prefect runs of the cancelled invitations, to cancel too


def check_deletion(session: Session, channel: Channel | str, *, actor: User) -> Channel:
    """Whether ``actor`` may delete ``channel``; deleting twice is refused, saying when it was deleted."""
    found = get_channel(session, channel, deleted_ok=True)
    _require_right(actor, organization_of(session, found), right_for_kind(found.kind))
    if is_deleted(found):
        raise UsageError(
            f"channel '{found.slug}' is already deleted{_on(found.deleted_at)}: nothing to do. "
            "Its documents and history are kept."
        )
    return found


def delete_channel(session: Session, channel: Channel | str, *, actor: User) -> Deletion:
    """Delete a collector for good ("le collecteur sera définitivement désactivé").

    The channel stops collecting (``active`` false, ``deleted_at`` set) and is hidden from the
    listings; every vault entry of its accounts (password, TOTP seed, portal session) is purged and
    the references cleared; pending invitations are cancelled. Documents, runs and account rows
    stay, so the history ("Collecte > Historique") still shows what was collected.
    """
    found = check_deletion(session, channel, actor=actor)
    accounts = channel_accounts(session, found)
    purged = sum(_purge_secrets(session, account) for account in accounts)
    pending = session.exec(
        select(Invitation).where(
            Invitation.channel_id == found.id,
            col(Invitation.state).in_([InvitationState.PENDING, InvitationState.UNDELIVERABLE]),
        )
    ).all()
    for invitation in pending:
        invitation.state = InvitationState.CANCELLED
        session.add(invitation)
    found.active = False
    found.deleted_at = _now()
    session.add(found)
    session.flush()
    documents = session.exec(select(func.count()).select_from(Document).where(Document.channel_id == found.id)).one()
    runs = session.exec(
        select(func.count()).select_from(CollectionRun).where(CollectionRun.channel_id == found.id)
    ).one()
    _audit(
        session,
        organization_of(session, found),
        actor,
        "channel.delete",
        found.slug,
        f"{purged} vault entr{'y' if purged == 1 else 'ies'} purged from {len(accounts)} account(s), "
        f"{len(pending)} pending invitation(s) cancelled; {documents} document(s) and {runs} run(s) kept",
    )
    session.flush()
    return Deletion(
        found, len(accounts), purged, len(pending), documents, runs,
        tuple(invitation.flow_run_id for invitation in pending if invitation.flow_run_id),
    )


def _purge_secrets(session: Session, account: Account) -> int:
    """Drop an account's vault entries (password, TOTP seed, portal session) and the references to them.

    Done on the rows rather than through :class:`Vault`: purging needs no key, so a collector can
    be deleted even when the vault key is lost.
    """
    refs = {ref for ref in (account.secret_ref, account.totp_ref, account.session_ref) if ref is not None}
    account.secret_ref = account.totp_ref = account.session_ref = None
    session.add(account)
    session.flush()  # the references go before the rows they point to (foreign keys)
    for ref in refs:
        entry = session.get(VaultEntry, ref)
        if entry is not None:
            session.delete(entry)
    session.flush()
    return len(refs)


def _now() -> datetime:
    # Explicit timestamps: the columns are sqlmodel UTCDateTime, which refuses the naive
    # datetimes glaneur.models.utcnow returns today (see the report); aware UTC suits both.
    return datetime.now(UTC)


def _set_channel_status(channel: Channel, status: Status) -> None:
    channel.status = status
    channel.status_message = describe(status).message
    channel.status_changed_at = _now()


# -- reading ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChannelSummary:
    """One row of the "Collecteurs" page: the channel, its accounts and its latest run."""

    channel: Channel
    organization: Organization
    accounts: list[Account]
    last_run: CollectionRun | None

    @property
    def message(self) -> str:
        """What the user reads: the channel's own message, else the status table's."""
        return self.channel.status_message or describe(self.channel.status).message


@dataclass(frozen=True)
class HistoryEntry:
    """One row of "Collecte > Historique"."""

    run: CollectionRun
    channel: Channel
    login: str | None  # None for a run that failed before reaching an account

    @property
    def message(self) -> str:
        return self.run.message or describe(self.run.status).message


def list_channels(session: Session, org: Organization | str | None = None) -> list[Channel]:
    """Channels not deleted, by slug, optionally of one organisation."""
    query = select(Channel).where(*_LIVE)
    if org is not None:
        query = query.where(Channel.organization_id == get_organization(session, org).id)
    return list(session.exec(query.order_by(Channel.slug)).all())


def channel_summaries(session: Session, org: Organization | str | None = None) -> list[ChannelSummary]:
    channels = list_channels(session, org)
    ids = [channel.id for channel in channels]
    if not ids:
        return []
    orgs = {o.id: o for o in session.exec(select(Organization)).all()}
    accounts: dict[int, list[Account]] = {}
    for account in session.exec(
        select(Account).where(col(Account.channel_id).in_(ids)).order_by(Account.position)
    ).all():
        accounts.setdefault(account.channel_id, []).append(account)
    latest = (
        select(CollectionRun.channel_id, func.max(CollectionRun.id).label("run_id"))
        .where(col(CollectionRun.channel_id).in_(ids))
        .group_by(CollectionRun.channel_id)
        .subquery()
    )
    last_runs = {
        run.channel_id: run
        for run in session.exec(select(CollectionRun).join(latest, CollectionRun.id == latest.c.run_id)).all()
    }
    return [
        ChannelSummary(
            channel=channel,
            organization=orgs[channel.organization_id],
            accounts=accounts.get(channel.id, []),
            last_run=last_runs.get(channel.id),
        )
        for channel in channels
    ]


def history(
    session: Session,
    *,
    channel: Channel | str | None = None,
    status: Status | str | None = None,
    since: date | str | None = None,
    limit: int = 50,
) -> list[HistoryEntry]:
    """Collection runs, newest first ("Collecte > Historique"), with the account's login."""
    if limit < 1:
        raise UsageError(f"invalid limit {limit}: expected a positive number.")
    query = (
        select(CollectionRun, Channel, Account.login)
        .join(Channel, CollectionRun.channel_id == Channel.id)
        .outerjoin(Account, CollectionRun.account_id == Account.id)
    )
    if channel is not None:
        # Deleted channels keep their history: look the slug up without the deletion filter.
        slug = channel.slug if isinstance(channel, Channel) else channel.strip()
        if session.exec(select(Channel).where(Channel.slug == slug)).first() is None:
            get_channel(session, slug)  # raises, listing the channels
        query = query.where(Channel.slug == slug)
    if status is not None:
        query = query.where(CollectionRun.status == parse_status(status))
    if since is not None:
        query = query.where(CollectionRun.started_at >= datetime.combine(parse_date(since), time.min, tzinfo=UTC))
    query = query.order_by(col(CollectionRun.started_at).desc(), col(CollectionRun.id).desc()).limit(limit)
    return [HistoryEntry(run=run, channel=ch, login=login) for run, ch, login in session.exec(query).all()]


def list_documents(session: Session, *, channel: Channel | str | None = None, limit: int = 100) -> list[Document]:
    """Filed documents, newest first (by document date, then filing order)."""
    if limit < 1:
        raise UsageError(f"invalid limit {limit}: expected a positive number.")
    query = select(Document)
    if channel is not None:
        slug = channel.slug if isinstance(channel, Channel) else channel.strip()
        found = session.exec(select(Channel).where(Channel.slug == slug)).first()
        if found is None:
            get_channel(session, slug)  # raises, listing the channels
        query = query.where(Document.channel_id == found.id)
    query = query.order_by(col(Document.document_date).desc(), col(Document.id).desc()).limit(limit)
    return list(session.exec(query).all())


def channel_slugs(session: Session, ids: Iterable[int]) -> dict[int, str]:
    """Channel id -> slug, for listings that show which channel a row came from."""
    wanted = set(ids)
    if not wanted:
        return {}
    rows = session.exec(select(Channel.id, Channel.slug).where(col(Channel.id).in_(wanted))).all()
    return {channel_id: slug for channel_id, slug in rows}


# -- the audit log ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditEntry:
    """One line of the audit log, with the names a reader needs."""

    log: AuditLog
    organization: str
    actor: str | None  # the actor's e-mail; None for the platform team, at the console


def audit_log(session: Session, *, org: Organization | str | None = None, limit: int = 50) -> list[AuditEntry]:
    """Who created, changed the credentials of, or deleted what, and when; newest first."""
    if limit < 1:
        raise UsageError(f"invalid limit {limit}: expected a positive number.")
    query = (
        select(AuditLog, Organization.slug, User.email)
        .join(Organization, AuditLog.organization_id == Organization.id)
        .outerjoin(User, AuditLog.actor_user_id == User.id)
    )
    if org is not None:
        query = query.where(AuditLog.organization_id == get_organization(session, org).id)
    query = query.order_by(col(AuditLog.at).desc(), col(AuditLog.id).desc()).limit(limit)
    return [AuditEntry(log, slug, email) for log, slug, email in session.exec(query).all()]


# -- requests for new collectors ("Demander l'ajout d'un collecteur") -----------------------------------------

URL_MAX = 2000
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_portal_url(url: str) -> str:
    """The address of a supplier's client area: http(s), with a host, without credentials in it."""
    text = url.strip()
    expected = "expected the address of the supplier's client area, like https://espace-client.example.com"
    if not text or len(text) > URL_MAX or any(c.isspace() for c in text):
        raise UsageError(f"invalid portal address '{url}': {expected}.")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018  raises on a port that is not a number
    except ValueError:
        raise UsageError(f"invalid portal address '{url}': {expected}.") from None
    if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
        raise UsageError(f"invalid portal address '{url}': {expected}.")
    if parts.username or parts.password:
        # Never a secret in a request: it is stored in clear and shown to the team.
        raise UsageError("the portal address contains a login or password: give the address alone, like https://espace-client.example.com.")
    return text


def portal_host(url: str) -> str:
    """``https://www.Dupont.fr/login`` -> ``dupont.fr``; a port is kept when it is not the default one."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower().removeprefix("www.")
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{host}:{port}" if port and port != _DEFAULT_PORTS.get(parts.scheme.lower()) else host


def provider_for_portal(url: str) -> Provider | None:
    """The compatible catalogue provider whose portal is at ``url``'s host, if any."""
    host = portal_host(url)
    for provider in catalog.PROVIDERS.values():
        if provider.compatible and provider.default_url and portal_host(provider.default_url) == host:
            return provider
    return None


def parse_request_state(value: ConnectorRequestState | str) -> ConnectorRequestState:
    try:
        return ConnectorRequestState(value.strip().lower() if isinstance(value, str) else value)
    except ValueError:
        states = ", ".join(s.value for s in ConnectorRequestState)
        raise UsageError(f"unknown request state '{value}'; states: {states}.") from None


def request_connector(
    session: Session,
    org: Organization | str,
    *,
    supplier: str,
    url: str,
    message: str = "",
    actor: User,
) -> ConnectorRequest:
    """Ask for a collector the catalogue lacks: supplier name, portal address, message.

    Any user of ``org`` may ask. A portal the catalogue already serves, or one the organisation
    already asked for, is refused with what to do instead.
    """
    org = get_organization(session, org)
    actor = _require_actor(actor, org)
    supplier = check_name(supplier, "supplier")
    url = normalize_portal_url(url)
    existing = provider_for_portal(url)
    if existing is not None:
        raise UsageError(
            f"the catalogue already has a collector for {portal_host(url)}: provider '{existing.slug}' "
            f"({existing.name}). Create a channel with it instead of asking for a new one."
        )
    for request in session.exec(
        select(ConnectorRequest).where(
            ConnectorRequest.organization_id == org.id, ConnectorRequest.state == ConnectorRequestState.OPEN
        )
    ).all():
        if portal_host(request.portal_url) == portal_host(url):
            raise UsageError(
                f"organisation '{org.slug}' already asked for a collector for {portal_host(url)} "
                f"(request #{request.id}, {request.supplier_name}, open): the requester is told when it is available."
            )
    request = ConnectorRequest(
        organization_id=org.id,
        requester_user_id=actor.id,
        supplier_name=supplier,
        portal_url=url,
        message=message.strip(),
        state=ConnectorRequestState.OPEN,
        created_at=_now(),
    )
    session.add(request)
    session.flush()
    _audit(session, org, actor, "connector_request.create", f"request #{request.id}", f"{supplier} at {url}")
    session.flush()
    return request


@dataclass(frozen=True)
class ConnectorRequestEntry:
    request: ConnectorRequest
    organization: str
    requester: str  # e-mail


def list_connector_requests(
    session: Session, *, org: Organization | str | None = None, state: ConnectorRequestState | str | None = None
) -> list[ConnectorRequestEntry]:
    """Requests for new collectors with their state, newest first."""
    query = (
        select(ConnectorRequest, Organization.slug, User.email)
        .join(Organization, ConnectorRequest.organization_id == Organization.id)
        .join(User, ConnectorRequest.requester_user_id == User.id)
    )
    if org is not None:
        query = query.where(ConnectorRequest.organization_id == get_organization(session, org).id)
    if state is not None:
        query = query.where(ConnectorRequest.state == parse_request_state(state))
    query = query.order_by(col(ConnectorRequest.created_at).desc(), col(ConnectorRequest.id).desc())
    return [ConnectorRequestEntry(request, slug, email) for request, slug, email in session.exec(query).all()]


def get_connector_request(session: Session, request_id: int) -> ConnectorRequest:
    found = session.get(ConnectorRequest, request_id)
    if found is None:
        open_ids = session.exec(
            select(ConnectorRequest.id)
            .where(ConnectorRequest.state == ConnectorRequestState.OPEN)
            .order_by(ConnectorRequest.id)
        ).all()
        raise UsageError(f"unknown connector request #{request_id}; open requests: {names_or_none(f'#{i}' for i in open_ids)}.")
    return found


@dataclass(frozen=True)
class ShippedRequest:
    """A request whose collector is available, and how its requester was told."""

    request: ConnectorRequest
    requester: User
    delivery: Delivery  # whether the mail went out, where, and what failed


def ship_connector_request(
    session: Session, request_id: int, provider: str, *, settings: Settings | None = None
) -> ShippedRequest:
    """The platform team marks a request done with the provider that serves it; the requester is told.

    For a supplier whose portal address differs from the provider's (a rebranded site, say);
    :func:`sync_connector_requests` ships the others by matching the portal's host.
    """
    request = get_connector_request(session, request_id)
    if request.state != ConnectorRequestState.OPEN:
        shipped = f" with provider '{request.provider}'" if request.provider else ""
        raise UsageError(f"connector request #{request.id} is already {request.state.value}{shipped}: nothing to do.")
    entry = get_provider(provider)
    if not entry.compatible:
        raise UsageError(
            f"provider '{entry.slug}' is not compatible with automatic collection: a request ships with a "
            "collector that works."
        )
    _mark_shipped(session, request, entry, how="by the platform team")
    return _tell_requester(session, request, settings)


def sync_connector_requests(session: Session, *, settings: Settings | None = None) -> list[ShippedRequest]:
    """Ship every open request whose portal a catalogue provider now serves; tell each requester once.

    Requests shipped earlier whose requester was not told yet (a crash between the two) are told too.
    """
    for request in session.exec(
        select(ConnectorRequest)
        .where(ConnectorRequest.state == ConnectorRequestState.OPEN)
        .order_by(ConnectorRequest.id)
    ).all():
        entry = provider_for_portal(request.portal_url)
        if entry is not None:
            _mark_shipped(session, request, entry, how=f"matched on {portal_host(request.portal_url)}")
    untold = session.exec(
        select(ConnectorRequest)
        .where(ConnectorRequest.state == ConnectorRequestState.SHIPPED, col(ConnectorRequest.notified_at).is_(None))
        .order_by(ConnectorRequest.id)
    ).all()
    return [_tell_requester(session, request, settings) for request in untold]


def _mark_shipped(session: Session, request: ConnectorRequest, provider: Provider, *, how: str) -> None:
    request.state = ConnectorRequestState.SHIPPED
    request.provider = provider.slug
    session.add(request)
    org = session.get(Organization, request.organization_id)
    _audit(session, org, None, "connector_request.ship", f"request #{request.id}", f"provider {provider.slug}, {how}")
    session.flush()


def _tell_requester(session: Session, request: ConnectorRequest, settings: Settings | None) -> ShippedRequest:
    from glaneur.notify import (
        notify_user,  # the mail engine loads only when a mail is due
    )

    requester = session.get(User, request.requester_user_id)
    org = session.get(Organization, request.organization_id)
    entry = get_provider(request.provider or "")
    delivery = notify_user(
        session,
        requester,
        kind="connector_shipped",
        subject=f"Collector available: {request.supplier_name}",
        body=(
            f"The collector you asked for on {request.created_at:%Y-%m-%d} (Demander l'ajout d'un collecteur) "
            f"is available: {request.supplier_name} ({request.portal_url}) is collected by the provider "
            f"'{entry.slug}' ({entry.name}).\n\n"
            f"To activate it, create a channel in organisation '{org.slug}' with this provider and enter "
            "the credentials of your client area; the first collection starts within the hour."
        ),
        settings=settings,
    )
    request.notified_at = _now()
    session.add(request)
    session.flush()
    return ShippedRequest(request, requester, delivery)
