"""Collection channels ("collecteurs") and their accounts: creation, credentials, deletion."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from glaneur.errors import UsageError
from glaneur.models import (
    MAX_ACCOUNTS_PER_CHANNEL,
    Account,
    Binder,
    Channel,
    ChannelKind,
    CollectionRun,
    Invitation,
    InvitationState,
    Organization,
    User,
    VaultEntry,
)
from glaneur.statuses import Status, describe
from glaneur.vault import Vault
from glaneur.admin.checks import (
    check_login,
    same_login,
    check_name,
    check_password,
    check_slug,
    names_or_none,
    normalize_time_slot,
    normalize_totp_seed,
    now,
    slugify,
)
from glaneur.admin.lookups import (
    channel_accounts,
    check_biller,
    check_portal_url,
    deleted_on,
    get_account,
    get_binder,
    get_channel,
    get_organization,
    get_provider,
    get_user,
    is_deleted,
    organization_of,
)
from glaneur.admin.listings import count_documents
from glaneur.admin.rights import audit_log_entry, require_member, require_right, right_for_kind

PASSWORD_PURPOSE = "password"
TOTP_PURPOSE = "totp_seed"




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
    portal_url: str | None = None,
    biller: str | None = None,
) -> Channel:
    """Every check of :func:`add_channel`, without writing: returns the channel, not yet added.

    The CLI calls it before asking for a password, so that a typo in the provider is reported
    before anyone types a secret.
    """
    org = get_organization(session, org)
    actor = require_member(actor, org)
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
    require_right(actor, org, right_for_kind(kind))
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
        portal_url=check_portal_url(entry.slug, portal_url),  # a platform's channel: its supplier's address
        biller=check_biller(entry.slug, biller),  # engine POWENS: the supplier chosen in its list
        binder_id=found_binder.id,
        recipient_user_id=found_recipient.id,
        owner_user_id=actor.id,  # who set it up is told when it needs a person
        time_slot=normalize_time_slot(time_slot),
        status=Status.NEW,
        status_message=describe(Status.NEW).message,
        status_changed_at=now(),
        created_at=now(),
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


def add_channel(session: Session, org: Organization | str, *, actor: User, **fields: Any) -> Channel:
    """Create a collection channel ("canal de collecte connecteur marchand", "collecteur").

    ``fields`` are those of :func:`check_new_channel`, which checks them all first: ``label``,
    ``provider``, ``binder`` (a binder slug of ``org``, classeur de dépôt), ``recipient`` (the e-mail
    of a user of ``org``, utilisateur destinataire), and optionally ``slug`` (defaults to
    ``{org}-{label}``, slugified) and ``time_slot``. ``actor`` (a user of ``org`` with the right the
    provider's kind needs) becomes the owner.
    """
    channel = check_new_channel(session, org, actor=actor, **fields)
    session.add(channel)
    session.flush()
    binder_slug = session.get(Binder, channel.binder_id).slug
    recipient_email = session.get(User, channel.recipient_user_id).email
    audit_log_entry(
        session,
        organization_of(session, channel),
        actor,
        "channel.create",
        channel.slug,
        f"provider {channel.provider}, binder {binder_slug}, recipient {recipient_email}, daily at {channel.time_slot}"
        + (f", portal {channel.portal_url}" if channel.portal_url else "")
        + (f", POWENS biller {channel.biller}" if channel.biller else ""),
    )
    session.flush()
    return channel


def check_account_slot(session: Session, channel: Channel | str, login: str, *, actor: User) -> tuple[Channel, str]:
    """Whether ``actor`` may add ``login`` to ``channel``: at most two accounts, each login once.

    Returns the channel and the cleaned login. Called before asking for the password.
    """
    channel = get_channel(session, channel)
    require_right(actor, organization_of(session, channel), right_for_kind(channel.kind))
    login = check_login(login)
    accounts = channel_accounts(session, channel)
    if any(same_login(account.login, login) for account in accounts):
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
    password = check_password(password)
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
        created_at=now(),
    )
    session.add(account)
    if channel.status == Status.AWAITING_CREDENTIALS:
        _set_channel_status(channel, Status.NEW)
    totp = "with a TOTP seed" if seed is not None else "without TOTP seed"
    audit_log_entry(
        session,
        organization_of(session, channel),
        actor,
        "account.add",
        f"{channel.slug}/{login}",
        f"account {position} of {MAX_ACCOUNTS_PER_CHANNEL}, password {totp}",
    )
    session.flush()
    return account


def account_answered(session: Session, channel: Channel | str, login: str) -> str | None:
    """For credentials an account holder typed: the login of the account they update (case aside), or None when
    they add one; a UsageError, said to the holder, when the collector has no room for another."""
    channel = get_channel(session, channel)
    accounts = channel_accounts(session, channel)
    known = next((account.login for account in accounts if same_login(account.login, login)), None)
    if known is None and len(accounts) >= MAX_ACCOUNTS_PER_CHANNEL:
        raise UsageError(
            f"this collector already holds its {MAX_ACCOUNTS_PER_CHANNEL} accounts "
            f"({', '.join(a.login for a in accounts)}): type the login of one of them to give it a new password; "
            "another account needs another collector."
        )
    return known


def check_answer(session: Session, channel: Channel | str, login: str, totp_seed: str = "") -> str | None:
    """Credentials an account holder typed, checked before anything is stored (the form says why otherwise):
    a login, room for it on the collector (:func:`account_answered`), a valid TOTP seed. The normalised seed,
    None without one."""
    if not login.strip():
        raise UsageError("the login is empty: type the login of the supplier's customer area.")
    seed = normalize_totp_seed(totp_seed.strip()) if totp_seed.strip() else None
    account_answered(session, channel, login.strip())
    return seed


def check_credentials_update(
    session: Session, channel: Channel | str, login: str, *, actor: User, new_login: str | None = None
) -> Account:
    """Whether ``actor`` may overwrite the credentials of ``login`` on ``channel`` (and change its login to
    ``new_login``, one the channel does not have yet); the account if so."""
    channel = get_channel(session, channel)
    require_right(actor, organization_of(session, channel), right_for_kind(channel.kind))
    account = get_account(session, channel, login)
    new = check_login(new_login) if new_login is not None else account.login
    others = [other for other in channel_accounts(session, channel) if other.id != account.id]
    if new != account.login and any(same_login(other.login, new) for other in others):
        raise UsageError(f"account '{new}' is already on channel '{channel.slug}': update its credentials instead.")
    return account


def update_credentials(
    session: Session,
    channel: Channel | str,
    login: str,
    *,
    password: str,
    totp_seed: str | None = None,
    new_login: str | None = None,
    actor: User,
) -> Account:
    """Overwrite an account's credentials ("Modifier", then "Valider pour écraser").

    ``totp_seed=None`` keeps the stored seed; ``new_login`` replaces the login too (the supplier changed
    it), and the next run then reads the whole list again (what was filed is not filed twice). The saved
    portal session is dropped, since it belonged to the old credentials; the account and the channel go
    back to ``new`` so that the next run tries again (a locked or refused account is retried only after a
    person acts), and the owner will be told again if the new credentials fail too.
    """
    account = check_credentials_update(session, channel, login, actor=actor, new_login=new_login)
    channel = get_channel(session, channel)
    password = check_password(password)
    seed = normalize_totp_seed(totp_seed) if totp_seed is not None else None

    vault = Vault(session)
    account.secret_ref = vault.store(account.secret_ref, PASSWORD_PURPOSE, password)
    if seed is not None:
        account.totp_ref = vault.store(account.totp_ref, TOTP_PURPOSE, seed)
    renamed, login = "", check_login(new_login) if new_login is not None else account.login
    if login != account.login:
        renamed = f"login {account.login} -> {login}, "
        if not same_login(account.login, login):  # maybe another customer account: read its whole list
            account.cursor = account.last_full_pass = account.list_left_at = account.list_left_since = None
        account.login = login
    stale_session = account.session_ref
    account.session_ref = None
    account.status = Status.NEW
    _set_channel_status(channel, Status.NEW)
    channel.notified_status = None  # a person acted: a new failure is a new change of state, told again
    session.add(account)
    session.add(channel)
    totp = "TOTP seed replaced" if seed is not None else "TOTP seed kept"
    audit_log_entry(
        session,
        organization_of(session, channel),
        actor,
        "account.credentials_update",
        f"{channel.slug}/{account.login}",
        f"{renamed}password replaced, {totp}, status reset to new",
    )
    session.flush()
    if stale_session is not None:
        vault.delete(stale_session)
        session.flush()
    return account


def check_account_removal(session: Session, channel: Channel | str, login: str, *, actor: User) -> Account:
    """Whether ``actor`` may remove ``login`` from ``channel``; the account if so."""
    channel = get_channel(session, channel)
    require_right(actor, organization_of(session, channel), right_for_kind(channel.kind))
    return get_account(session, channel, login)


def remove_account(session: Session, channel: Channel | str, login: str, *, actor: User) -> tuple[Account, int]:
    """Remove an account from its collector: its secrets are purged from the vault and its slot is freed for
    another account; its documents and its history stay. The account and the number of secrets purged.

    A collector left without account waits for credentials (``awaiting_credentials``)."""
    account = check_account_removal(session, channel, login, actor=actor)
    channel = get_channel(session, channel)
    purged = _purge_secrets(session, account)
    account.removed_at = now()
    account.position = -account.id  # the unique (channel, position) slot is free again; ids never repeat
    session.add(account)
    session.flush()
    left = channel_accounts(session, channel)
    if not left:
        _set_channel_status(channel, Status.AWAITING_CREDENTIALS)
        session.add(channel)
    audit_log_entry(
        session,
        organization_of(session, channel),
        actor,
        "account.remove",
        f"{channel.slug}/{account.login}",
        f"{purged} secret(s) purged; its documents and history kept; {len(left)} account(s) left",
    )
    session.flush()
    return account, purged


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
    require_right(actor, organization_of(session, found), right_for_kind(found.kind))
    if is_deleted(found):
        raise UsageError(
            f"channel '{found.slug}' is already deleted{deleted_on(found.deleted_at)}: nothing to do. "
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
    found.deleted_at = now()
    session.add(found)
    session.flush()
    documents = count_documents(session, found)
    runs = session.exec(
        select(func.count()).select_from(CollectionRun).where(CollectionRun.channel_id == found.id)
    ).one()
    audit_log_entry(
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
    """Drop an account's vault entries (password, TOTP seed, portal session, a login waiting for its second
    factor) and the references to them.

    Done on the rows rather than through :class:`Vault`: purging needs no key, so a collector can
    be deleted even when the vault key is lost.
    """
    kept = (account.secret_ref, account.totp_ref, account.session_ref, account.pending_login_ref)
    refs = {ref for ref in kept if ref is not None}
    account.secret_ref = account.totp_ref = account.session_ref = account.pending_login_ref = None
    session.add(account)
    session.flush()  # the references go before the rows they point to (foreign keys)
    for ref in refs:
        entry = session.get(VaultEntry, ref)
        if entry is not None:
            session.delete(entry)
    session.flush()
    return len(refs)



def _set_channel_status(channel: Channel, status: Status) -> None:
    channel.status = status
    channel.status_message = describe(status).message
    channel.status_changed_at = now()
