"""Collection bookkeeping: what to collect, what is already filed, filing, the history.

Free of Prefect and of the browser: :mod:`tasks.collect` calls these functions inside its steps.
Filing is idempotent by construction (lesson 7): a unique (channel, provider reference), a
unique (channel, sha256), and a storage write that never overwrites.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from glaneur.contract import Credentials, FetchedDocument
from glaneur.errors import AwaitingCredentials, ConfigurationError, GlaneurError, InvalidDocument, SecretUnreadable
from glaneur.models import Account, Binder, Channel, CollectionRun, Document, Organization, User, utcnow
from glaneur.settings import Settings
from glaneur.statuses import Status, describe
from glaneur.storage import Storage, document_key


@dataclass(frozen=True)
class AccountPlan:
    id: int
    login: str
    position: int
    since: date | None  # list documents dated on or after; None = full pass


@dataclass(frozen=True)
class CollectionPlan:
    """Everything a collection run needs to know about its channel, read once at the start."""

    channel_id: int
    channel: str
    label: str
    provider: str
    organization: str
    binder: str
    accounts: list[AccountPlan] = field(default_factory=list)
    portal_url: str | None = None  # the channel's own portal address (a platform provider's channel)


def listing_since(account: Account, today: date, settings: Settings) -> date | None:
    """Incremental listing with a look-back window; a periodic full pass catches what a cursor missed."""
    if account.cursor is None or account.last_full_pass is None:
        return None
    if (today - account.last_full_pass).days >= settings.full_pass_every_days:
        return None
    return account.cursor - timedelta(days=settings.lookback_days)


def load_plan(session: Session, channel_slug: str, settings: Settings, today: date) -> CollectionPlan:
    channel = session.exec(select(Channel).where(Channel.slug == channel_slug)).first()
    if channel is None:
        known = ", ".join(session.exec(select(Channel.slug).where(Channel.active == True)).all())  # noqa: E712
        raise ConfigurationError(f"Unknown channel {channel_slug!r}. Active channels: {known or 'none'}.")
    if not channel.active:
        raise ConfigurationError(f"Channel {channel_slug!r} was deleted; it no longer collects.")
    organization = session.get(Organization, channel.organization_id)
    binder = session.get(Binder, channel.binder_id)
    accounts = session.exec(
        select(Account).where(Account.channel_id == channel.id).order_by(col(Account.position))
    ).all()
    return CollectionPlan(
        channel_id=channel.id,
        channel=channel.slug,
        label=channel.label,
        provider=channel.provider,
        organization=organization.slug,
        binder=binder.slug,
        accounts=[AccountPlan(a.id, a.login, a.position, listing_since(a, today, settings)) for a in accounts],
        portal_url=channel.portal_url,
    )


def read_credentials(session: Session, account_id: int) -> Credentials:
    from glaneur.vault import Vault  # the vault loads its key on first use only

    account = session.get(Account, account_id)
    if account.secret_ref is None:
        raise AwaitingCredentials(f"No password stored for account {account.login!r}.")
    vault = Vault(session)
    try:
        password = vault.get(account.secret_ref)
        if password is None:
            raise AwaitingCredentials(f"The stored password of {account.login!r} has expired.")
        totp = vault.get(account.totp_ref) if account.totp_ref else None
    except SecretUnreadable as error:  # this account alone fails; the channel's other account still runs
        channel = session.get(Channel, account.channel_id)
        raise SecretUnreadable(
            f"The stored credentials of {account.login!r} cannot be read. {error.detail} To enter them again: "
            f"glaneur channel update-credentials {channel.slug} --login {account.login}"
        ) from None
    return Credentials(login=account.login, password=password, totp_seed=totp)


def is_filed(session: Session, channel_id: int, reference: str) -> bool:
    found = session.exec(
        select(Document.id).where(Document.channel_id == channel_id, Document.provider_reference == reference)
    ).first()
    return found is not None


def validate_pdf(fetched: FetchedDocument, max_bytes: int) -> None:
    reference = fetched.document.reference
    size = len(fetched.content)
    if size == 0:
        raise InvalidDocument(f"The portal sent an empty file for invoice {reference}; nothing was filed.")
    if size > max_bytes:
        raise InvalidDocument(
            f"Invoice {reference} is {size} bytes, over the {max_bytes}-byte limit "
            f"(GLANEUR_MAX_DOCUMENT_BYTES); nothing was filed."
        )
    if not fetched.content.lstrip()[:5] == b"%PDF-":
        kind = fetched.content_type or "unknown type"
        raise InvalidDocument(
            f"Invoice {reference} is not a PDF (the portal sent {kind}); nothing was filed. "
            f"The portal may be showing an error page instead of the invoice."
        )


@dataclass(frozen=True)
class FilingOutcome:
    new: bool
    storage_key: str
    sha256: str


def file_document(
    session: Session,
    storage: Storage,
    plan: CollectionPlan,
    *,
    account_id: int,
    run_id: int,
    fetched: FetchedDocument,
    settings: Settings,
) -> FilingOutcome:
    """File one downloaded document. Safe to repeat: the same bytes are one object and one row."""
    validate_pdf(fetched, settings.max_document_bytes)
    remote = fetched.document
    sha256 = hashlib.sha256(fetched.content).hexdigest()
    same_bytes = session.exec(
        select(Document).where(Document.channel_id == plan.channel_id, Document.sha256 == sha256)
    ).first()
    if same_bytes is not None:
        return FilingOutcome(False, same_bytes.storage_key, sha256)
    key = document_key(
        organization=plan.organization,
        binder=plan.binder,
        channel=plan.channel,
        document_date=remote.document_date,
        provider=plan.provider,
        reference=remote.reference,
    )
    metadata = {
        "sha256": sha256,
        "channel": plan.channel,
        "date": remote.document_date.isoformat(),
        "amount": "" if remote.amount is None else str(remote.amount),
        "currency": remote.currency,
        "reference": remote.reference,
        "run": str(run_id),
    }
    # Storage first: if the database write is lost, the next run finds the object identical and records it.
    storage.put(key, fetched.content, metadata=metadata, content_type="application/pdf")
    document = Document(
        channel_id=plan.channel_id,
        account_id=account_id,
        run_id=run_id,
        provider_reference=remote.reference,
        document_date=remote.document_date,
        amount=None if remote.amount is None else str(remote.amount),
        currency=remote.currency,
        file_name=key.rsplit("/", 1)[-1],
        sha256=sha256,
        size=len(fetched.content),
        storage_key=key,
    )
    session.add(document)
    try:
        session.commit()
    except IntegrityError:  # another run filed it meanwhile: same document, already had
        session.rollback()
        return FilingOutcome(False, key, sha256)
    return FilingOutcome(True, key, sha256)


def start_run(session: Session, plan: CollectionPlan, account_id: int | None, flow_run_id: str | None) -> int:
    """A run starts as ``running``: until :func:`finish_run` (or :func:`close_open_runs`) says what happened."""
    run = CollectionRun(
        channel_id=plan.channel_id, account_id=account_id, flow_run_id=flow_run_id, status=Status.RUNNING
    )
    session.add(run)
    session.commit()
    return run.id


def open_runs(
    session: Session, *, channel_id: int | None = None, flow_run_id: str | None = None
) -> list[CollectionRun]:
    """Runs still ``running``, oldest first: under way, or left behind by a process that died."""
    query = select(CollectionRun).where(CollectionRun.status == Status.RUNNING)
    if channel_id is not None:
        query = query.where(CollectionRun.channel_id == channel_id)
    if flow_run_id is not None:
        query = query.where(CollectionRun.flow_run_id == flow_run_id)
    return list(session.exec(query.order_by(col(CollectionRun.id))).all())


def close_open_runs(session: Session, run_ids: list[int], message: str) -> list[int]:
    """Close runs that will never finish (process killed, crashed, cancelled) as ``internal_error``.

    Only rows still ``running`` change, so a run that finished meanwhile keeps its outcome. The
    channel's status follows, since its newest run failed. Returns the ids closed.
    """
    closed = []
    for run_id in run_ids:
        run = session.get(CollectionRun, run_id)
        if run is None or run.status != Status.RUNNING:
            continue
        run.finished_at = utcnow()
        run.status = Status.INTERNAL_ERROR
        run.error_code = Status.INTERNAL_ERROR.value
        run.message = message
        session.add(run)
        closed.append(run)
    session.commit()
    for channel_id in {run.channel_id for run in closed}:
        update_channel_status(session, channel_id, Status.INTERNAL_ERROR, message)
    return [run.id for run in closed]


def finish_run(
    session: Session,
    run_id: int,
    *,
    status: Status,
    message: str,
    new: int,
    already_had: int,
    evidence_keys: list[str] | None = None,
) -> CollectionRun:
    run = session.get(CollectionRun, run_id)
    run.finished_at = utcnow()
    run.status = status
    run.message = message
    run.error_code = None if status == Status.OK else status.value
    run.new_documents = new
    run.already_had = already_had
    run.evidence_keys = ",".join(evidence_keys or [])
    session.add(run)
    session.commit()
    return run


def documents_not_filed(errors: list[GlaneurError]) -> GlaneurError:
    """One error for the documents a run could not file (each named), with the first one's status."""
    first = errors[0]
    if len(errors) == 1:
        return first
    return type(first)(f"{len(errors)} documents were not filed: " + " ".join(e.detail or str(e) for e in errors))


def advance_cursor(session: Session, account_id: int, newest: date | None) -> None:
    """Move the listing cursor up to the newest document handled; never back."""
    account = session.get(Account, account_id)
    if newest and (account.cursor is None or newest > account.cursor):
        account.cursor = newest
        session.add(account)
        session.commit()


def record_success(session: Session, account_id: int, newest: date | None, full_pass: bool, today: date) -> None:
    advance_cursor(session, account_id, newest)
    account = session.get(Account, account_id)
    account.status = Status.OK
    account.last_success_at = utcnow()
    if full_pass:
        account.last_full_pass = today
    session.add(account)
    session.commit()


def record_account_status(session: Session, account_id: int, status: Status) -> None:
    account = session.get(Account, account_id)
    if account is None:  # a bank channel's second-factor pause: no supplier account to mark
        return
    account.status = status
    session.add(account)
    session.commit()


def update_channel_status(session: Session, channel_id: int, status: Status, message: str) -> bool:
    """Set the channel's status; True when it changed (a person may need telling)."""
    channel = session.get(Channel, channel_id)
    changed = channel.status != status
    channel.status = status
    channel.status_message = message or describe(status).message
    if changed:
        channel.status_changed_at = utcnow()
    session.add(channel)
    session.commit()
    return changed


def recent_runs(session: Session, channel_id: int, limit: int = 30) -> list[tuple[CollectionRun, str]]:
    """Newest first, with the account's login (or '-' for runs without an account)."""
    rows = session.exec(
        select(CollectionRun, Account.login)
        .join(Account, isouter=True)
        .where(CollectionRun.channel_id == channel_id)
        .order_by(col(CollectionRun.started_at).desc(), col(CollectionRun.id).desc())
        .limit(limit)
    ).all()
    return [(run, login or "-") for run, login in rows]


def channel_owner(session: Session, channel_id: int) -> User | None:
    """Who is told about the channel: the person who set it up, else its recipient user."""
    channel = session.get(Channel, channel_id)
    return session.get(User, channel.owner_user_id or channel.recipient_user_id)


def remembered_session(session: Session, account_id: int) -> dict | None:
    """The portal session kept after a second factor (Playwright storage state), if still valid."""
    from glaneur.vault import Vault

    account = session.get(Account, account_id)
    if account.session_ref is None:
        return None
    try:
        stored = Vault(session).get(account.session_ref)
    except LookupError:
        stored = None
    if stored is None:  # expired: the vault purged it
        account.session_ref = None
        session.add(account)
        session.commit()
        return None
    return json.loads(stored)


def remember_session(session: Session, account_id: int, state: dict, ttl: timedelta) -> None:
    """Keep the portal session encrypted, with an expiry, so tomorrow's run skips the second factor."""
    from glaneur.vault import Vault

    vault = Vault(session)
    account = session.get(Account, account_id)
    expires = utcnow() + ttl
    if account.session_ref is not None:
        vault.replace(account.session_ref, json.dumps(state), expires_at=expires)
    else:
        account.session_ref = vault.put("session", json.dumps(state), expires_at=expires)
        session.add(account)
    session.commit()


def forget_session(session: Session, account_id: int) -> None:
    from glaneur.vault import Vault

    account = session.get(Account, account_id)
    if account.session_ref is not None:
        ref, account.session_ref = account.session_ref, None
        session.add(account)
        session.flush()
        Vault(session).delete(ref)
        session.commit()
