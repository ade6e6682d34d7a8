"""Administration of the domain: organisations, users, binders, channels and their accounts, history.

Every function takes a :class:`sqlmodel.Session` and returns model objects. Bad input raises
:class:`~glaneur.errors.UsageError` naming what to fix, and every check runs before the first
write, so a refused call changes nothing. Writes are flushed, never committed: the caller owns
the transaction (:func:`glaneur.db.session_scope` commits, or rolls back on any error).

Secrets (passwords, TOTP seeds) go to the vault; an account keeps only the vault entry's id.
No function here prints, prompts or touches Prefect.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

import pyotp
from sqlalchemy import func
from sqlmodel import Session, col, select

from connectors import catalog
from connectors.base import Provider
from glaneur.errors import UsageError
from glaneur.models import (
    MAX_ACCOUNTS_PER_CHANNEL,
    Account,
    Binder,
    Channel,
    ChannelKind,
    CollectionRun,
    Document,
    Organization,
    Right,
    User,
)
from glaneur.statuses import Status, describe
from glaneur.vault import Vault

# Slugs end up in storage keys, Prefect flow run names and artifact keys (^[a-z0-9-]*$).
SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
SLUG_MAX = 63
# Pragmatic address check: one @, a dot-atom local part, a domain of DNS labels with a dot.
EMAIL_RE = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
TIME_SLOT_RE = re.compile(r"^(\d{1,2}):(\d{2})$")
# pyotp (>= 2.10) refuses seeds under 112 bits (NIST SP 800-63B); storing one would only fail at collection time.
TOTP_MIN_BYTES = 14
TOTP_MIN_CHARS = 23  # base32 characters holding 112 bits

_LIVE = (col(Channel.deleted_at).is_(None), col(Channel.active).is_(True))

PASSWORD_PURPOSE = "password"
TOTP_PURPOSE = "totp_seed"


# -- small validators ------------------------------------------------------------------------


def slugify(text: str) -> str:
    """``"Acme - Papeterie Dupont"`` -> ``"acme-papeterie-dupont"`` (accents dropped)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:SLUG_MAX].strip("-")


def _check_slug(slug: str, what: str) -> str:
    slug = slug.strip()
    if not SLUG_RE.fullmatch(slug) or len(slug) > SLUG_MAX:
        suggestion = slugify(slug)
        hint = f" (for example '{suggestion}')" if suggestion else ""
        raise UsageError(
            f"invalid {what} slug '{slug}': use lowercase letters, digits and single dashes, "
            f"at most {SLUG_MAX} characters{hint}."
        )
    return slug


def _check_name(name: str, what: str) -> str:
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
    if len(base64.b32decode(_padded(cleaned))) < TOTP_MIN_BYTES:
        raise UsageError(
            f"the TOTP seed is too short ({len(cleaned)} characters; pyotp needs at least {TOTP_MIN_CHARS}, "
            "112 bits): copy the whole seed from the portal."
        )
    pyotp.TOTP(cleaned).now()  # the collection computes codes with pyotp: it must accept the seed
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


def _names(items: Iterable[str]) -> str:
    listed = ", ".join(items)
    return listed or "none yet"


# -- lookups ----------------------------------------------------------------------------------


def get_organization(session: Session, org: Organization | str) -> Organization:
    if isinstance(org, Organization):
        return org
    found = session.exec(select(Organization).where(Organization.slug == org.strip())).first()
    if found is None:
        existing = session.exec(select(Organization.slug).order_by(Organization.slug)).all()
        raise UsageError(f"unknown organisation '{org}'; organisations: {_names(existing)}.")
    return found


def get_user(session: Session, org: Organization | str, email: str) -> User:
    """A user of ``org`` by e-mail; says so when the address belongs to another organisation."""
    org = get_organization(session, org)
    address = email.strip().lower()
    found = session.exec(select(User).where(User.organization_id == org.id, User.email == address)).first()
    if found is not None:
        return found
    elsewhere = session.exec(select(User).where(User.email == address)).first()
    existing = session.exec(select(User.email).where(User.organization_id == org.id).order_by(User.email)).all()
    if elsewhere is not None:
        raise UsageError(
            f"user '{address}' belongs to another organisation, not '{org.slug}'; "
            f"users of '{org.slug}': {_names(existing)}."
        )
    raise UsageError(f"unknown user '{address}' in organisation '{org.slug}'; users: {_names(existing)}.")


def get_binder(session: Session, org: Organization | str, binder: Binder | str) -> Binder:
    """A binder ("classeur") of ``org``; one of another organisation is refused, saying so."""
    org = get_organization(session, org)
    existing = session.exec(select(Binder.slug).where(Binder.organization_id == org.id).order_by(Binder.slug)).all()
    if isinstance(binder, Binder):
        if binder.organization_id != org.id:
            raise UsageError(
                f"binder '{binder.slug}' belongs to another organisation, not '{org.slug}'; "
                f"binders of '{org.slug}': {_names(existing)}."
            )
        return binder
    slug = binder.strip()
    found = session.exec(select(Binder).where(Binder.organization_id == org.id, Binder.slug == slug)).first()
    if found is not None:
        return found
    if session.exec(select(Binder).where(Binder.slug == slug)).first() is not None:
        raise UsageError(
            f"binder '{slug}' belongs to another organisation, not '{org.slug}'; "
            f"binders of '{org.slug}': {_names(existing)}."
        )
    raise UsageError(f"unknown binder '{slug}' in organisation '{org.slug}'; binders: {_names(existing)}.")


def get_channel(session: Session, channel: Channel | str) -> Channel:
    """A channel ("collecteur") by slug; deleted channels are not found."""
    if isinstance(channel, Channel):
        return channel
    slug = channel.strip()
    found = session.exec(select(Channel).where(Channel.slug == slug)).first()
    if found is None or _is_deleted(found):
        existing = session.exec(
            select(Channel.slug).where(*_LIVE).order_by(Channel.slug)
        ).all()
        state = "deleted" if found is not None else "unknown"
        raise UsageError(f"{state} channel '{slug}'; channels: {_names(existing)}.")
    return found


def _is_deleted(channel: Channel) -> bool:
    # Deleting a collector ("définitivement désactivé") clears `active`; the collection flow reads that flag.
    return channel.deleted_at is not None or not channel.active


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
        f"no account '{login}' on channel '{channel.slug}'; accounts: {_names(a.login for a in accounts)}."
    )


def channel_accounts(session: Session, channel: Channel) -> list[Account]:
    return list(session.exec(select(Account).where(Account.channel_id == channel.id).order_by(Account.position)).all())


def _require_right(actor: User | None, org: Organization, right: Right) -> None:
    """Only a user with the right may configure collection ("paramétrage de la collecte")."""
    if actor is None:
        return  # operators at the console act for the platform
    if actor.organization_id != org.id or not actor.has_right(right):
        raise UsageError(
            f"user '{actor.email}' lacks the right '{right.value}' in organisation '{org.slug}' "
            "(Autoriser l'accès au paramétrage de la collecte): ask an administrator to grant it."
        )


# -- organisations, users, binders ---------------------------------------------------------------


def create_organization(session: Session, slug: str, name: str) -> Organization:
    slug = _check_slug(slug, "organisation")
    name = _check_name(name, "organisation")
    if session.exec(select(Organization).where(Organization.slug == slug)).first() is not None:
        raise UsageError(f"organisation '{slug}' already exists: choose another slug.")
    org = Organization(slug=slug, name=name, created_at=_now())
    session.add(org)
    session.flush()
    return org


def create_user(
    session: Session, org: Organization | str, email: str, name: str, rights: Iterable[Right | str] = ()
) -> User:
    org = get_organization(session, org)
    address = normalize_email(email)
    name = _check_name(name, "user")
    granted: list[Right] = []
    for right in rights:
        try:
            value = Right(right)
        except ValueError:
            raise UsageError(f"unknown right '{right}'; rights: {', '.join(r.value for r in Right)}.") from None
        if value not in granted:
            granted.append(value)
    if session.exec(select(User).where(User.organization_id == org.id, User.email == address)).first():
        raise UsageError(f"user '{address}' already exists in organisation '{org.slug}'.")
    user = User(
        organization_id=org.id, email=address, name=name, rights=",".join(r.value for r in granted), created_at=_now()
    )
    session.add(user)
    session.flush()
    return user


def create_binder(session: Session, org: Organization | str, slug: str, name: str) -> Binder:
    """A binder ("classeur de dépôt") where channels file their documents."""
    org = get_organization(session, org)
    slug = _check_slug(slug, "binder")
    name = _check_name(name, "binder")
    if session.exec(select(Binder).where(Binder.organization_id == org.id, Binder.slug == slug)).first():
        raise UsageError(f"binder '{slug}' already exists in organisation '{org.slug}': choose another slug.")
    binder = Binder(organization_id=org.id, slug=slug, name=name, created_at=_now())
    session.add(binder)
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
    actor: User | None = None,
) -> Channel:
    """Every check of :func:`add_channel`, without writing: returns the channel, not yet added.

    The CLI calls it before asking for a password, so that a typo in the provider is reported
    before anyone types a secret.
    """
    org = get_organization(session, org)
    _require_right(actor, org, Right.CONFIGURE_COLLECTION)
    label = _check_name(label, "channel")
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
    found_binder = get_binder(session, org, binder)
    if isinstance(recipient, User):
        if recipient.organization_id != org.id:
            raise UsageError(f"user '{recipient.email}' belongs to another organisation, not '{org.slug}'.")
        found_recipient = recipient
    else:
        found_recipient = get_user(session, org, recipient)
    if slug is None:
        slug = slugify(f"{org.slug}-{label}")  # never empty: the organisation's slug is valid
    slug = _check_slug(slug, "channel")
    taken = session.exec(select(Channel).where(Channel.slug == slug)).first()
    if taken is not None:
        raise UsageError(f"channel slug '{slug}' is already taken: give another slug.")
    return Channel(
        organization_id=org.id,
        slug=slug,
        label=label,
        kind=kind,
        provider=entry.slug,
        binder_id=found_binder.id,
        recipient_user_id=found_recipient.id,
        time_slot=normalize_time_slot(time_slot),
        status=Status.NEW,
        status_message=describe(Status.NEW).message,
        status_changed_at=_now(),
        created_at=_now(),
    )


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
    actor: User | None = None,
) -> Channel:
    """Create a collection channel ("canal de collecte connecteur marchand", "collecteur").

    ``binder`` is a binder slug of ``org`` (classeur de dépôt), ``recipient`` the e-mail of a user
    of ``org`` (utilisateur destinataire). The slug defaults to ``{org}-{label}``, slugified.
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
    return channel


def check_account_slot(session: Session, channel: Channel | str, login: str) -> tuple[Channel, str]:
    """Whether ``login`` may be added to ``channel``: at most two accounts, each login once.

    Returns the channel and the cleaned login. Called before asking for the password.
    """
    channel = get_channel(session, channel)
    login = _check_login(login)
    accounts = channel_accounts(session, channel)
    if any(account.login == login for account in accounts):
        raise UsageError(
            f"account '{login}' is already on channel '{channel.slug}': update its credentials instead."
        )
    if len(accounts) >= MAX_ACCOUNTS_PER_CHANNEL:
        raise UsageError(
            f"a collector holds at most two accounts (jusqu'à deux comptes différents par collecteur); "
            f"channel '{channel.slug}' already has {_names(a.login for a in accounts)}. "
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
    actor: User | None = None,
) -> Account:
    """Add a set of credentials to a channel; the password and TOTP seed go to the vault."""
    channel, login = check_account_slot(session, channel, login)
    _require_right(actor, _organization_of(session, channel), Right.CONFIGURE_COLLECTION)
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
    session.flush()
    return account


def update_credentials(
    session: Session,
    channel: Channel | str,
    login: str,
    *,
    password: str,
    totp_seed: str | None = None,
    actor: User | None = None,
) -> Account:
    """Overwrite an account's credentials ("Modifier", then "Valider pour écraser").

    ``totp_seed=None`` keeps the stored seed. The saved portal session is dropped, since it
    belonged to the old credentials; the account and the channel go back to ``new`` so that the
    next run tries again (a locked or refused account is retried only after a person acts).
    """
    account = get_account(session, channel, login)
    channel = get_channel(session, channel)
    _require_right(actor, _organization_of(session, channel), Right.CONFIGURE_COLLECTION)
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
    session.add(account)
    session.add(channel)
    session.flush()
    if stale_session is not None:
        vault.delete(stale_session)
        session.flush()
    return account


def _now() -> datetime:
    # Explicit timestamps: the columns are sqlmodel UTCDateTime, which refuses the naive
    # datetimes glaneur.models.utcnow returns today (see the report); aware UTC suits both.
    return datetime.now(UTC)


def _set_channel_status(channel: Channel, status: Status) -> None:
    channel.status = status
    channel.status_message = describe(status).message
    channel.status_changed_at = _now()


def _organization_of(session: Session, channel: Channel) -> Organization:
    org = session.get(Organization, channel.organization_id)
    assert org is not None  # foreign key
    return org


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
