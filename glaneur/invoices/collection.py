"""Collection bookkeeping: what to collect, what is already filed, filing, the history, the outcomes.

Free of Prefect and of the browser: :mod:`tasks.collect` calls these functions inside its steps,
each step in one database unit of work. Filing is idempotent by construction (lesson 7): a unique
(channel, provider reference), a unique (channel, sha256), and a storage write that never overwrites.

What a collection says it did is typed: an :class:`AccountOutcome` per account, a
:class:`CollectionSummary` per run (its :meth:`~CollectionSummary.as_dict` is the flow's result).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from glaneur.admin.lookups import channel_accounts
from glaneur.contract import Credentials, FetchedDocument, Listing, RemoteDocument
from glaneur.errors import (
    AccountLocked,
    AwaitingCredentials,
    ConfigurationError,
    GlaneurError,
    InvalidDocument,
    SecretUnreadable,
    WrongCredentials,
)
from glaneur.models import Account, Binder, Channel, CollectionRun, Document, Organization, User, utcnow
from glaneur.settings import Settings
from glaneur.statuses import COLLECTED, NOT_TRIED_AGAIN, Status, describe
from glaneur.storage import Storage, document_key


@dataclass(frozen=True)
class AccountPlan:
    id: int
    login: str
    position: int
    since: date | None  # list documents dated on or after; None = full pass
    # A list longer than one run reads, being read on: where the last run left it, and that listing's since.
    left_at: str | None = None
    left_since: date | None = None


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
    biller: str | None = None  # the supplier chosen in POWENS's list (engine POWENS)


def listing_since(account: Account, today: date, settings: Settings) -> date | None:
    """Incremental listing with a look-back window; a periodic full pass catches what a cursor missed.

    While a list longer than one run reads is read on (``list_left_at``), the top of the list is read as a
    daily run reads it (what appeared meanwhile); the pass under way goes on from where it was left.
    """
    if account.list_left_at is not None:
        return (account.cursor or today) - timedelta(days=settings.lookback_days)
    if account.cursor is None or account.last_full_pass is None:
        return None
    if (today - account.last_full_pass).days >= settings.full_pass_every_days:
        return None
    return account.cursor - timedelta(days=settings.lookback_days)


def load_plan(session: Session, channel_slug: str, settings: Settings, today: date) -> CollectionPlan:
    """A supplier channel's plan, with its accounts and where each one's listing starts."""
    channel = session.exec(select(Channel).where(Channel.slug == channel_slug)).first()
    if channel is None:
        known = ", ".join(session.exec(select(Channel.slug).where(Channel.active == True)).all())  # noqa: E712
        raise ConfigurationError(f"Unknown channel {channel_slug!r}. Active channels: {known or 'none'}.")
    accounts = channel_accounts(session, channel)  # removed accounts aside
    return channel_plan(
        session,
        channel,
        [
            AccountPlan(a.id, a.login, a.position, listing_since(a, today, settings), a.list_left_at, a.list_left_since)
            for a in accounts
        ],
    )


def channel_plan(session: Session, channel: Channel, accounts: list[AccountPlan] | None = None) -> CollectionPlan:
    """What a run of ``channel`` (supplier or bank) collects into; a deleted channel no longer collects."""
    if not channel.active:
        raise ConfigurationError(f"Channel {channel.slug!r} was deleted; it no longer collects.")
    organization = session.get(Organization, channel.organization_id)
    binder = session.get(Binder, channel.binder_id)
    return CollectionPlan(
        channel_id=channel.id,
        channel=channel.slug,
        label=channel.label,
        provider=channel.provider,
        organization=organization.slug,
        binder=binder.slug,
        accounts=accounts or [],
        portal_url=channel.portal_url,
        biller=channel.biller,
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


@dataclass(frozen=True)
class AccountOutcome:
    """What one account's collection did: its status, the message for people, and the counts."""

    login: str
    status: Status
    message: str
    new: int = 0
    already_had: int = 0

    def line(self) -> str:
        return f"{self.login}: {self.status.value}, {self.new} new, {self.already_had} already had"

    def as_dict(self) -> dict:
        return {"login": self.login, "status": self.status.value, "message": self.message, "new": self.new,
                "already_had": self.already_had}


@dataclass(frozen=True)
class CollectionSummary:
    """What a run of a channel did: the first failing account's status (ok when none failed)."""

    channel: str
    status: Status
    message: str
    accounts: tuple[AccountOutcome, ...]

    @property
    def new(self) -> int:
        return sum(outcome.new for outcome in self.accounts)

    @property
    def already_had(self) -> int:
        return sum(outcome.already_had for outcome in self.accounts)

    def line(self) -> str:
        """The run in one line, for the top of its log."""
        accounts = "; ".join(outcome.line() for outcome in self.accounts)
        return (f"{self.channel}: {self.status.value}, {self.new} new, {self.already_had} already had "
                f"({len(self.accounts)} account{'s' if len(self.accounts) != 1 else ''}: {accounts})")

    def as_dict(self) -> dict:
        """The flow's result, as the CLI, the demo and the tests read it."""
        return {"channel": self.channel, "status": self.status.value, "message": self.message, "new": self.new,
                "already_had": self.already_had, "accounts": [outcome.as_dict() for outcome in self.accounts]}


def summarize(channel: str, outcomes: list[AccountOutcome]) -> CollectionSummary:
    failing = [outcome for outcome in outcomes if outcome.status not in COLLECTED]
    if not failing:
        longer = [outcome for outcome in outcomes if outcome.status == Status.MORE_TO_COLLECT]
        if not longer:
            return CollectionSummary(channel, Status.OK, describe(Status.OK).message, tuple(outcomes))
        message = (" ".join(f"{outcome.login}: {outcome.message}" for outcome in longer) if len(outcomes) > 1
                   else longer[0].message)
        return CollectionSummary(channel, Status.MORE_TO_COLLECT, message, tuple(outcomes))
    message = (" ".join(f"{outcome.login}: {outcome.message}" for outcome in failing) if len(outcomes) > 1
               else failing[0].message)
    return CollectionSummary(channel, failing[0].status, message, tuple(outcomes))


@dataclass(frozen=True)
class FilingReport:
    """What the download-and-file step of one account did."""

    new: int
    already_had: int
    newest: date | None  # the newest document date handled (filed now or before): the cursor moves up to it
    refused: tuple[GlaneurError, ...] = ()


def filed_references(session: Session, channel_id: int, references: list[str]) -> set[str]:
    """Which of these provider references the channel has filed already (one query)."""
    found: set[str] = set()
    for start in range(0, len(references), 500):
        chunk = references[start:start + 500]
        found.update(session.exec(
            select(Document.provider_reference).where(
                Document.channel_id == channel_id, col(Document.provider_reference).in_(chunk))
        ).all())
    return found


def all_filed(session: Session, channel_id: int, documents: list[RemoteDocument]) -> FilingReport | None:
    """The report of a listing whose invoices the channel has all filed already (an unchanged day): nothing to
    download, so no download step; None when one at least is new."""
    if len(filed_references(session, channel_id, [d.reference for d in documents])) < len(documents):
        return None
    newest = max((document.document_date for document in documents), default=None)
    return FilingReport(new=0, already_had=len(documents), newest=newest)


def filed_by_run(session: Session, run_id: int) -> int:
    """How many documents this collection row filed (new ones: rows it created)."""
    return len(session.exec(select(Document.id).where(Document.run_id == run_id)).all())


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

    The documents a run filed before it died are counted on its row (the history says what it did).
    Only rows still ``running`` change, so a run that finished meanwhile keeps its outcome. The
    channel's status follows, since its newest run failed. Returns the ids closed.
    """
    closed = []
    for run_id in run_ids:
        run = session.get(CollectionRun, run_id)
        if run is None or run.status != Status.RUNNING:
            continue
        status, said = Status.INTERNAL_ERROR, message
        account = session.get(Account, run.account_id) if run.account_id else None
        if account is not None and account.pending_login_ref is not None:
            # Suspended for a second factor and ended without an answer (the server fails it at the timeout).
            forget_pending_login(session, account.id)
            status = Status.SECOND_FACTOR_TIMEOUT
            said = f"Nobody answered the second factor of {account.login} in time. {describe(status).message}"
            account.status = status
            session.add(account)
        run.finished_at = utcnow()
        run.status = status
        run.error_code = status.value
        run.message = said
        run.new_documents = filed_by_run(session, run.id)  # what it filed before it died counts, once
        session.add(run)
        closed.append(run)
    session.commit()
    for run in closed:
        update_channel_status(session, run.channel_id, run.status, run.message)
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
    run.error_code = None if status in COLLECTED else status.value
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


# -- lists longer than one run reads (see "Lists longer than one run reads" in connectors/kit.py) ------------


@dataclass(frozen=True)
class ListingOutcome:
    """What an account's listing did to the list: where the next run goes on, and whether a full pass ended."""

    left_at: str | None  # the address the next run goes on from; None: the list was read to its end (or since)
    left_since: date | None  # the since of the listing left there (None: a full pass)
    full_pass: bool  # a full pass read to the end of the list (in this run, or as the last of several)
    pages: int


def listing_outcome(account: AccountPlan, top: Listing, rest: Listing | None) -> ListingOutcome:
    """Where the list stands after this run read its top (``top``, from ``account.since``) and, for a list being
    read on, the rest from where it was left (``rest``, from ``account.left_at``).

    The pass being read on goes first: a top that is itself longer than one run reads (a list whose newest
    invoices are not at the top reads all of it every time) must not keep the pass from moving on.
    """
    pages = top.pages + (rest.pages if rest is not None else 0)
    if account.left_at is None:
        if top.left_at is not None:
            return ListingOutcome(top.left_at, account.since, False, pages)
        return ListingOutcome(None, None, account.since is None, pages)
    if rest is None:
        raise ValueError(f"{account.login}: the list left at {account.left_at!r} was not read on")
    if rest.left_at is not None:
        return ListingOutcome(rest.left_at, account.left_since, False, pages)
    if top.left_at is not None:  # the pass ended; what the top could not read in one run is read on next
        return ListingOutcome(top.left_at, account.since, account.left_since is None, pages)
    return ListingOutcome(None, None, account.left_since is None, pages)


def listed_together(top: Listing, rest: Listing | None) -> list[RemoteDocument]:
    """The documents of both listings, each once (the rest may read again rows the top read), newest first."""
    seen: set[str] = set()
    documents = []
    for document in [*top, *(rest or [])]:
        if document.reference not in seen:
            seen.add(document.reference)
            documents.append(document)
    return sorted(documents, key=lambda document: document.document_date, reverse=True)


def leads_back(session: Session, channel_id: int, rest: Listing | None) -> bool:
    """True when the list, read on from where it was left, showed a whole run's worth of pages of invoices all
    filed already and still went on: a "next" link leading back to the list's beginning, too far for one run
    to see a page twice. A list really read on shows invoices not filed yet (only the few rows new invoices
    pushed onto the page where it was left are read again)."""
    if rest is None or rest.left_at is None or not rest:
        return False
    references = list({document.reference for document in rest})
    return len(filed_references(session, channel_id, references)) == len(references)


def more_to_collect(listing: ListingOutcome, new: int, max_pages: int) -> str:
    """What a run that read as much of a list as one run reads says (the status message of more_to_collect)."""
    shown = repr(listing.left_at[:200]) if listing.left_at else "?"
    return (
        f"The invoice list is longer than one run reads ({max_pages} pages, GLANEUR_MAX_LIST_PAGES): this run read "
        f"{listing.pages} page(s) and filed {new} new invoice(s). The next run goes on from {shown}, where this one "
        "stopped, and the runs after it until the end of the list; then daily runs as usual. Nothing needs doing."
    )


def advance_cursor(session: Session, account_id: int, newest: date | None) -> None:
    """Move the listing cursor up to the newest document handled; never back."""
    account = session.get(Account, account_id)
    if newest and (account.cursor is None or newest > account.cursor):
        account.cursor = newest
        session.add(account)
        session.commit()


def record_success(
    session: Session, account_id: int, newest: date | None, full_pass: bool, today: date,
    status: Status = Status.OK,
) -> None:
    advance_cursor(session, account_id, newest)
    account = session.get(Account, account_id)
    account.status = status
    account.last_success_at = utcnow()
    if full_pass:
        account.last_full_pass = today
    session.add(account)
    session.commit()


def record_list_left_at(session: Session, account_id: int, listing: ListingOutcome) -> None:
    """Keep where the list was left (the next run goes on from there), or forget it once read to the end."""
    account = session.get(Account, account_id)
    account.list_left_at, account.list_left_since = listing.left_at, listing.left_since
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


# -- one run of a channel at a time ------------------------------------------------------------------------


def claim_channel(session: Session, channel_id: int, flow_run_id: str, *, replacing: str | None = None) -> str | None:
    """Make this flow run the one collecting the channel: None when it is, else the flow run id that is.

    One conditional UPDATE, so two runs starting together cannot both win (SQLite serialises writers,
    PostgreSQL re-reads the row after the other's commit). The claim is taken again by the same flow
    run (a run resumed after a suspension), or over ``replacing``, a holder known to have ended.
    """
    free = col(Channel.collecting_flow_run_id).is_(None) | (Channel.collecting_flow_run_id == flow_run_id)
    if replacing is not None:
        free = free | (Channel.collecting_flow_run_id == replacing)
    taken = session.connection().execute(
        update(Channel).where(Channel.id == channel_id, free)
        .values(collecting_flow_run_id=flow_run_id, collecting_since=utcnow())
    ).rowcount
    session.commit()
    if taken == 1:
        return None
    holder = session.exec(select(Channel.collecting_flow_run_id).where(Channel.id == channel_id)).one()
    if holder is None:  # released between the two statements: try once more
        return claim_channel(session, channel_id, flow_run_id)
    return holder


def release_channel(session: Session, flow_run_id: str) -> None:
    """The flow run no longer collects its channel (a claim another run holds is left alone)."""
    session.connection().execute(
        update(Channel).where(Channel.collecting_flow_run_id == flow_run_id)
        .values(collecting_flow_run_id=None, collecting_since=None)
    )
    session.commit()


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
    stored = _kept(session, account_id, "session_ref")
    return None if stored is None else json.loads(stored)


def remember_session(session: Session, account_id: int, state: dict, ttl: timedelta | None) -> None:
    """Keep the portal session encrypted, with an expiry (``ttl``; None: kept until replaced or forgotten), so
    tomorrow's run skips the second factor."""
    _keep(session, account_id, "session_ref", "session", json.dumps(state), utcnow() + ttl if ttl is not None else None)


def forget_session(session: Session, account_id: int) -> None:
    _forget(session, account_id, "session_ref")


# An account keeps two things in the vault, each referenced by a field of its row: the portal session
# saved after a second factor (``session_ref``) and a pending login while its run is suspended
# (``pending_login_ref``). Both may expire; the vault purges them after.


def _kept(session: Session, account_id: int, ref_field: str) -> str | None:
    """The value the account keeps in ``ref_field``; None (and the reference dropped) once the vault purged it."""
    from glaneur.vault import Vault

    account = session.get(Account, account_id)
    ref = getattr(account, ref_field)
    if ref is None:
        return None
    try:
        stored = Vault(session).get(ref)
    except LookupError:
        stored = None
    if stored is None:  # expired: the vault purged it
        setattr(account, ref_field, None)
        session.add(account)
        session.commit()
    return stored


def _keep(session: Session, account_id: int, ref_field: str, purpose: str, value: str,
          expires: datetime | None) -> None:
    """Keep ``value`` encrypted until ``expires`` (None: until replaced or forgotten), replacing what ``ref_field`` held.

    Nothing is kept for an account removed, or a collector deleted, while its run was logging in: their
    secrets were purged, and a portal session or pending login must not outlive them."""
    from glaneur.vault import Vault

    account = session.get(Account, account_id)
    if gone(session, account.channel_id, account_id):
        return
    setattr(account, ref_field, Vault(session).store(getattr(account, ref_field), purpose, value, expires_at=expires))
    session.add(account)
    session.commit()


def _forget(session: Session, account_id: int, ref_field: str) -> None:
    """Unlink the vault entry ``ref_field`` holds, then delete it."""
    from glaneur.vault import Vault

    account = session.get(Account, account_id)
    ref = getattr(account, ref_field)
    if ref is not None:
        setattr(account, ref_field, None)
        session.add(account)
        session.flush()
        Vault(session).delete(ref)
        session.commit()


# -- one unit of work at the start and at the end of an account's collection ------------------------------


@dataclass(frozen=True)
class PendingLogin:
    """A login waiting for its second factor while its flow run is suspended (no process, no browser).

    Kept encrypted in the vault: the portal's cookies and storage (``storage_state``) and the page the
    login waits on (``url``) let a new process open the same pending login and type the answer.
    """

    flow_run_id: str
    run_id: int  # the collection row, still running: the resumed run finishes it
    url: str
    storage_state: dict = field(repr=False)
    kind: str
    prompt: str
    attempt: int
    refused: str  # the portal's complaint about the previous answer, if any
    key: str  # the suspend key: the resumed run asks Prefect for the input submitted under it
    deadline: datetime  # when nobody answering becomes second_factor_timeout


@dataclass(frozen=True)
class AccountStart:
    """What an account's collection needs, read in one unit of work; ``error`` when it cannot log in."""

    run_id: int
    credentials: Credentials | None = None
    remembered: dict | None = field(default=None, repr=False)
    pending: PendingLogin | None = None
    error: GlaneurError | None = None


def begin_account(
    session: Session, plan: CollectionPlan, account: AccountPlan, flow_run_id: str | None
) -> AccountStart | None:
    """Open (or, for a suspended login resumed, take back) the account's collection row; read what it needs.

    An account whose password was refused or which the supplier locked is not logged in again: its row
    says so, with the command that puts it back (see :data:`~glaneur.statuses.NOT_TRIED_AGAIN`).
    None, and no row, for an account removed from the collector (or a collector deleted) since the run
    began: it is no longer collected, and nothing about it is waiting for a person."""
    if gone(session, plan.channel_id, account.id):
        return None
    pending = pending_login(session, account.id, flow_run_id)
    run_id = pending.run_id if pending else start_run(session, plan, account.id, flow_run_id)
    held = None if pending else not_tried_again(session, plan, account.id)
    if held is not None:
        return AccountStart(run_id, error=held)
    try:
        credentials = read_credentials(session, account.id)
    except GlaneurError as error:
        return AccountStart(run_id, error=error)
    remembered = None if pending else remembered_session(session, account.id)
    return AccountStart(run_id, credentials, remembered, pending)


def gone(session: Session, channel_id: int, account_id: int) -> bool:
    """Whether the account was removed from its collector, or the collector deleted, since the plan was read."""
    return session.get(Account, account_id).removed_at is not None or not session.get(Channel, channel_id).active


def status_now(
    session: Session, plan: CollectionPlan, summary: CollectionSummary, outcomes: dict[int | None, AccountOutcome]
) -> CollectionSummary | None:
    """The channel's status after a run: the run's ``summary``, but from the outcomes of the accounts still
    on the collector (``outcomes`` by account id; None for a run that collected no account).

    None when nothing is left to say: the collector was deleted during the run, or every account the run
    collected was removed meanwhile (its removal set the status already). The run's history keeps every
    outcome."""
    if not session.get(Channel, plan.channel_id).active:
        return None
    if None in outcomes:
        return summary
    live = [outcome for account_id, outcome in outcomes.items() if not gone(session, plan.channel_id, account_id)]
    return summarize(plan.channel, live) if live else None


def not_tried_again(session: Session, plan: CollectionPlan, account_id: int) -> GlaneurError | None:
    """The error an account left refused or locked is recorded with again, without logging in; None to log in."""
    account = session.get(Account, account_id)
    if account.status not in NOT_TRIED_AGAIN:
        return None
    since = session.exec(
        select(CollectionRun.started_at)
        .where(CollectionRun.account_id == account_id, CollectionRun.status == account.status)
        .order_by(col(CollectionRun.id).desc())
    ).first()
    when = f" on {since:%Y-%m-%d}" if since else ""
    refused = account.status == Status.WRONG_CREDENTIALS
    kind, what = (WrongCredentials, "refused this password") if refused else (AccountLocked, "locked this account")
    return kind(
        f"Not tried: the portal {what}{when}, and Glaneur logs in again only once a person has acted, so "
        f"that the supplier does not count one more refused login each day. Then: glaneur channel "
        f"update-credentials {plan.channel} --login {account.login}."
    )


def end_account(
    session: Session,
    account: AccountPlan,
    run_id: int,
    outcome: AccountOutcome,
    *,
    newest: date | None,
    today: date,
    listing: ListingOutcome | None = None,
    evidence_keys: list[str] | None = None,
) -> None:
    """Record the account's outcome: its status, cursor, where its list was left and the history row.

    ``listing`` is None when the run did not read the list through (a failure before or while listing):
    where an earlier run left a long list stays as it was.
    """
    if listing is not None:
        record_list_left_at(session, account.id, listing)
    if outcome.status in COLLECTED:
        full_pass = listing.full_pass if listing is not None else False
        record_success(session, account.id, newest, full_pass=full_pass, today=today, status=outcome.status)
    else:
        advance_cursor(session, account.id, newest)  # what was filed counts: the next run starts after it
        record_account_status(session, account.id, outcome.status)
    finish_run(session, run_id, status=outcome.status, message=outcome.message, new=outcome.new,
               already_had=outcome.already_had, evidence_keys=evidence_keys)


def finished_outcomes(session: Session, flow_run_id: str | None) -> dict[int, AccountOutcome]:
    """Accounts this flow run already collected (account id -> outcome).

    A suspended run starts again from the top when resumed: what it finished before is not done twice.
    """
    if flow_run_id is None:
        return {}
    rows = session.exec(
        select(CollectionRun, Account.login).join(Account)
        .where(CollectionRun.flow_run_id == flow_run_id, CollectionRun.status != Status.RUNNING)
    ).all()
    return {
        run.account_id: AccountOutcome(login, run.status, run.message, run.new_documents, run.already_had)
        for run, login in rows
    }


# -- a pending login kept while the run is suspended ---------------------------------------------------------

PENDING_LOGIN_PURPOSE = "pending_login"


def keep_pending_login(session: Session, account_id: int, pending: PendingLogin) -> None:
    """Keep the pending login encrypted until its deadline (the vault purges it after)."""
    value = json.dumps({**asdict(pending), "deadline": pending.deadline.isoformat()})
    _keep(session, account_id, "pending_login_ref", PENDING_LOGIN_PURPOSE, value, pending.deadline)


def pending_login(session: Session, account_id: int, flow_run_id: str | None) -> PendingLogin | None:
    """This flow run's pending login for the account; one another flow run left behind is forgotten."""
    stored = _kept(session, account_id, "pending_login_ref")
    if stored is None:
        return None
    values = json.loads(stored)
    found = PendingLogin(**{**values, "deadline": datetime.fromisoformat(values["deadline"])})
    if found.flow_run_id != flow_run_id:
        forget_pending_login(session, account_id)
        return None
    return found


def forget_pending_login(session: Session, account_id: int) -> None:
    _forget(session, account_id, "pending_login_ref")
