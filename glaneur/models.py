"""Domain model (SQLModel). Free of Prefect so that it is testable alone.

French terms from the help pages are given where the product uses them.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from enum import StrEnum

from sqlalchemy import Column, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from glaneur.statuses import Status
from glaneur.vocabulary import MAX_ACCOUNTS_PER_CHANNEL, FirmRole, Right, StatementRoute  # noqa: F401 (re-exported)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class OrganizationKind(StrEnum):
    COMPANY = "company"
    FIRM = "firm"  # cabinet comptable: receives its clients' bank statements


class Organization(SQLModel, table=True):
    """A company, or an accounting firm ("cabinet")."""

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(unique=True, index=True)
    name: str
    kind: OrganizationKind = OrganizationKind.COMPANY
    created_at: datetime = Field(default_factory=utcnow)
    # Firms: statements read with warnings wait for a person (``glaneur statements release``) instead of being routed.
    hold_statements_with_warnings: bool = False


class User(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("organization_id", "email"),)

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organization.id", index=True)
    email: str = Field(index=True)
    name: str
    rights: str = ""  # comma-separated Right values
    firm_role: FirmRole | None = None  # in a firm only
    created_at: datetime = Field(default_factory=utcnow)

    def has_right(self, right: Right) -> bool:
        return right.value in self.rights.split(",")


class Binder(SQLModel, table=True):
    """Where a channel's documents land ("classeur")."""

    __table_args__ = (UniqueConstraint("organization_id", "slug"),)

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organization.id", index=True)
    slug: str
    name: str
    created_at: datetime = Field(default_factory=utcnow)


class ChannelKind(StrEnum):
    SUPPLIER_PORTAL = "supplier_portal"  # connecteur marchand / collecteur
    BANK = "bank"
    STATEMENTS = "statements"


class Channel(SQLModel, table=True):
    """A collection channel ("canal de collecte", "collecteur")."""

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organization.id", index=True)
    slug: str = Field(unique=True, index=True)  # also the Prefect flow run name prefix
    label: str
    kind: ChannelKind = ChannelKind.SUPPLIER_PORTAL
    provider: str = Field(index=True)  # slug in connectors.catalog
    portal_url: str | None = None  # a platform provider's portal address for this channel (Odoo: the supplier's)
    biller: str | None = None  # engine POWENS: the supplier chosen in POWENS's list, as the list names it
    binder_id: int = Field(foreign_key="binder.id")
    recipient_user_id: int = Field(foreign_key="user.id")  # utilisateur destinataire
    owner_user_id: int | None = Field(default=None, foreign_key="user.id")  # who set it up; told of problems
    notified_status: Status | None = None  # last status the owner was told about (one mail per change)
    time_slot: str = "06:00"  # daily collection time (HH:MM, organisation's timezone)
    status: Status = Status.NEW
    status_message: str = ""
    status_changed_at: datetime | None = None
    # The flow run collecting the channel now, if any: one run of a channel at a time (collection.claim_channel).
    collecting_flow_run_id: str | None = None
    collecting_since: datetime | None = None
    active: bool = True
    deleted_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)




class Account(SQLModel, table=True):
    """One set of credentials on a channel. Secrets live in the vault, referenced here."""

    __table_args__ = (UniqueConstraint("channel_id", "position"),)

    id: int | None = Field(default=None, primary_key=True)
    channel_id: int = Field(foreign_key="channel.id", index=True)
    position: int  # 1 or 2
    login: str
    secret_ref: int | None = Field(default=None, foreign_key="vaultentry.id")
    totp_ref: int | None = Field(default=None, foreign_key="vaultentry.id")
    session_ref: int | None = Field(default=None, foreign_key="vaultentry.id")  # remembered portal session
    # A login waiting for its second factor while its flow run is suspended (cookies and page, encrypted).
    pending_login_ref: int | None = Field(default=None, foreign_key="vaultentry.id")
    status: Status = Status.NEW
    cursor: date | None = None  # newest document date seen; listing looks back from it
    last_full_pass: date | None = None
    # A list longer than one run reads: the address of the page where the last run left it, and the
    # ``since`` of that listing (None: a full pass). The next runs go on from there; None once read to the end.
    list_left_at: str | None = None
    list_left_since: date | None = None
    last_success_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    # Removed from its collector: secrets purged, history kept, and its slot freed (position set to -id).
    removed_at: datetime | None = None


class VaultEntry(SQLModel, table=True):
    """An encrypted secret (password, TOTP seed, portal session). Plaintext never reaches the database."""

    id: int | None = Field(default=None, primary_key=True)
    purpose: str  # password, totp_seed, session, canary
    ciphertext: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    expires_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class CollectionRun(SQLModel, table=True):
    """One account's collection in one flow run: the history ("Collecte > Historique")."""

    id: int | None = Field(default=None, primary_key=True)
    channel_id: int = Field(foreign_key="channel.id", index=True)
    account_id: int | None = Field(default=None, foreign_key="account.id")
    started_at: datetime = Field(default_factory=utcnow, index=True)
    finished_at: datetime | None = None
    status: Status = Status.RUNNING  # until the run says what happened: never "ok" by default
    new_documents: int = 0
    already_had: int = 0
    error_code: str | None = None
    message: str = ""
    evidence_keys: str = ""  # storage keys of screenshot and trace, comma-separated
    flow_run_id: str | None = Field(default=None, index=True)


class Document(SQLModel, table=True):
    """A filed document. The same bytes are never filed twice on a channel."""

    __table_args__ = (
        UniqueConstraint("channel_id", "provider_reference"),
        UniqueConstraint("channel_id", "sha256"),
    )

    id: int | None = Field(default=None, primary_key=True)
    channel_id: int = Field(foreign_key="channel.id", index=True)
    account_id: int | None = Field(default=None, foreign_key="account.id")
    run_id: int | None = Field(default=None, foreign_key="collectionrun.id")
    provider_reference: str
    document_date: date
    amount: str | None = None  # decimal as text, exact
    currency: str = "EUR"
    file_name: str
    sha256: str = Field(index=True)
    size: int
    storage_key: str
    filed_at: datetime = Field(default_factory=utcnow)


class AuditLog(SQLModel, table=True):
    """Who created, changed the credentials of, deleted or consented to what, and when. Never a secret."""

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organization.id", index=True)
    actor_user_id: int | None = Field(default=None, foreign_key="user.id")
    action: str  # e.g. channel.create, account.credentials_update, channel.delete
    target: str  # e.g. channel slug, "channel/login"
    detail: str = ""
    at: datetime = Field(default_factory=utcnow, index=True)


class ConnectorRequestState(StrEnum):
    OPEN = "open"
    SHIPPED = "shipped"
    REJECTED = "rejected"


class ConnectorRequest(SQLModel, table=True):
    """A request to add a supplier that the catalogue lacks ("Demander l'ajout d'un collecteur")."""

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organization.id", index=True)
    requester_user_id: int = Field(foreign_key="user.id")
    supplier_name: str
    portal_url: str
    message: str = ""
    state: ConnectorRequestState = ConnectorRequestState.OPEN
    provider: str | None = None  # catalogue slug once a connector ships
    reason: str = ""  # why the platform team cannot build it, once rejected
    created_at: datetime = Field(default_factory=utcnow)
    notified_at: datetime | None = None  # the requester told that it shipped or was rejected


class ConnectorRequestFollower(SQLModel, table=True):
    """Another user of the organisation who asked for the same portal while its request was open: told too."""

    __table_args__ = (UniqueConstraint("request_id", "user_id"),)

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="connectorrequest.id", index=True)
    user_id: int = Field(foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow)
    notified_at: datetime | None = None


class Notification(SQLModel, table=True):
    """An in-app notification (the bell); mails are sent alongside."""

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    kind: str  # channel_status, invitation, second_factor, connector_shipped, connector_rejected
    subject: str
    body: str
    link: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    read_at: datetime | None = None


class InvitationState(StrEnum):
    PENDING = "pending"
    ANSWERED = "answered"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    UNDELIVERABLE = "undeliverable"  # the mail could not be delivered to the address


class Invitation(SQLModel, table=True):
    """A request sent to the account holder to enter credentials ("envoyez la demande à un utilisateur")."""

    id: int | None = Field(default=None, primary_key=True)
    channel_id: int = Field(foreign_key="channel.id", index=True)
    invitee_user_id: int = Field(foreign_key="user.id")
    email: str
    state: InvitationState = InvitationState.PENDING
    expires_at: datetime
    flow_run_id: str | None = None
    sent_count: int = 0
    last_sent_at: datetime | None = None
    delivery_error: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    answered_at: datetime | None = None
    refused_answers: int = 0  # answers the flow refused (a TOTP seed it cannot use); the form asks again
    refusal: str = ""  # why the last answer was refused, shown above the form (never the answer itself)
    owner_told_at: datetime | None = None  # when the channel's owner was told the invitation ended unanswered


# --- Firm side: partner connectors, client IBANs, mandates, statements -----------------------------


class PartnerConnector(SQLModel, table=True):
    """A partner production tool statements can be sent to (a "connecteur" of the firms' page).

    The catalogue is the platform team's: each partner has a storage prefix (``partners/{slug}/``)
    and, when it takes deliveries over HTTP, an endpoint and an HMAC secret (in the vault).
    """

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(unique=True, index=True)
    name: str
    delivery_url: str | None = None
    secret_ref: int | None = Field(default=None, foreign_key="vaultentry.id")
    support_contact: str = ""  # whom the firm contacts when nothing arrives in the tool
    created_at: datetime = Field(default_factory=utcnow)


class FirmConnector(SQLModel, table=True):
    """A partner connector associated with a firm ("associer un connecteur à votre cabinet")."""

    __table_args__ = (UniqueConstraint("organization_id", "partner_id", name="uq_firmconnector_partner"),)

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organization.id", index=True)
    partner_id: int = Field(foreign_key="partnerconnector.id")
    associated_by_user_id: int | None = Field(default=None, foreign_key="user.id")
    associated_at: datetime = Field(default_factory=utcnow)


class MandateStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"  # the IBAN is active only in this state
    REVOKED = "revoked"


class ClientIban(SQLModel, table=True):
    """A bank account of one of the firm's clients, by IBAN, with at most one connector and a mandate."""

    __table_args__ = (UniqueConstraint("organization_id", "iban", name="uq_clientiban_iban"),)

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organization.id", index=True)
    iban: str = Field(index=True)  # compact, upper case, checksum verified
    client_name: str
    bic: str | None = None
    partner_id: int | None = Field(default=None, foreign_key="partnerconnector.id")  # None: "Aucun connecteur"
    mandate_status: MandateStatus = MandateStatus.PENDING
    mandate_reference: str = ""
    mandate_changed_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)

    @property
    def active(self) -> bool:
        return self.mandate_status == MandateStatus.APPROVED


class StatementSourceKind(StrEnum):
    API = "api"  # a statement API polled with a bearer token
    INBOX = "inbox"  # a prefix in storage where files are dropped


class StatementSource(SQLModel, table=True):
    """Where a firm's statement files come from."""

    __table_args__ = (UniqueConstraint("organization_id", "slug", name="uq_statementsource_slug"),)

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organization.id", index=True)
    slug: str
    kind: StatementSourceKind
    url: str | None = None
    token_ref: int | None = Field(default=None, foreign_key="vaultentry.id")
    inbox_prefix: str | None = None
    cursor: str | None = None
    last_polled_at: datetime | None = None
    last_error: str = ""
    created_at: datetime = Field(default_factory=utcnow)


class StatementFileState(StrEnum):
    PARSED = "parsed"
    REJECTED = "rejected"  # kept in storage as received, with the reason; never lost
    DUPLICATE = "duplicate"  # the same bytes arrived before: this arrival is noted, nothing recorded again


class StatementFile(SQLModel, table=True):
    """A statement file's arrival. Its bytes are kept once in storage; a second arrival is a duplicate."""

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organization.id", index=True)
    source_id: int | None = Field(default=None, foreign_key="statementsource.id")
    source_name: str  # remote id or inbox key
    format: str | None = None
    sha256: str = Field(index=True)
    size: int
    storage_key: str
    state: StatementFileState
    error_reason: str = ""
    error_message: str = ""
    statement_count: int = 0
    received_at: datetime = Field(default_factory=utcnow, index=True)


class DeliveryState(StrEnum):
    PENDING = "pending"  # not acknowledged yet: retried
    DELIVERED = "delivered"
    REFUSED = "refused"  # the partner refused it (4xx): a person must act; retried after a fix


class Statement(SQLModel, table=True):
    """One account's statement, split from a file, and where it went."""

    __table_args__ = (UniqueConstraint("organization_id", "fingerprint", name="uq_statement_fingerprint"),)

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organization.id", index=True)
    file_id: int = Field(foreign_key="statementfile.id")
    client_iban_id: int | None = Field(default=None, foreign_key="clientiban.id", index=True)
    account: str
    iban: str | None = Field(default=None, index=True)
    currency: str
    statement_ref: str
    format: str
    period_start: date | None = None
    period_end: date | None = None
    opening_balance: str  # decimal as text, exact
    closing_balance: str
    entries: int
    sha256: str
    fingerprint: str  # what makes two statements the same: account, period, balances, each entry
    money_key: str | None = Field(default=None, index=True)  # the same without references: across formats
    warnings: str = "[]"  # JSON list of {code, message}: what the statement says loosely or inconsistently
    reviewed_at: datetime | None = None  # a person released it from review: routed despite its warnings
    storage_key: str
    received_at: datetime = Field(default_factory=utcnow, index=True)
    route: StatementRoute = StatementRoute.PENDING
    partner_id: int | None = Field(default=None, foreign_key="partnerconnector.id")
    routed_at: datetime | None = None
    global_date: date | None = Field(default=None, index=True)  # the day's global file it is in
    delivery_state: DeliveryState | None = None
    delivery_attempts: int = 0
    delivery_receipt: str | None = None
    delivery_key: str | None = None  # the copy under the partner's prefix
    delivered_at: datetime | None = None
    last_delivery_error: str = ""


# --- Bank side: the bank referential, Powens connections, consent, accounts, movements ----------------


class Bank(SQLModel, table=True):
    """A bank of the organisation's accounting referential ("Référentiel comptable > Banque").

    It must exist before any connection ("cette étape doit être réalisée avant toute tentative de connexion").
    """

    __table_args__ = (UniqueConstraint("organization_id", "name_key", name="uq_bank_name"),)

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organization.id", index=True)
    name: str
    name_key: str  # folded name: "Banque Exemple" and "banque  exemple" are one bank
    created_by_user_id: int | None = Field(default=None, foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow)


class BankConsentState(StrEnum):
    GIVEN = "given"
    REFUSED = "refused"
    REVOKED = "revoked"


class BankConsent(SQLModel, table=True):
    """The account holder's explicit consent (GDPR), recorded before any connection: who, when, the text shown."""

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organization.id", index=True)
    bank_id: int = Field(foreign_key="bank.id", index=True)
    holder_email: str
    holder_user_id: int | None = Field(default=None, foreign_key="user.id")
    recorded_by_user_id: int | None = Field(default=None, foreign_key="user.id")
    text: str  # exactly what was shown
    text_sha256: str
    state: BankConsentState = BankConsentState.GIVEN
    given_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None
    revoked_by_user_id: int | None = Field(default=None, foreign_key="user.id")


class BankConnection(SQLModel, table=True):
    """A bank channel's Powens connection. The Powens user token is in the vault (``token_ref``)."""

    id: int | None = Field(default=None, primary_key=True)
    organization_id: int = Field(foreign_key="organization.id", index=True)
    bank_id: int = Field(foreign_key="bank.id", index=True)
    channel_id: int = Field(foreign_key="channel.id", unique=True)
    consent_id: int | None = Field(default=None, foreign_key="bankconsent.id")
    powens_user_id: int | None = None
    token_ref: int | None = Field(default=None, foreign_key="vaultentry.id")
    powens_connection_id: int | None = Field(default=None, index=True)
    powens_connector_id: int | None = None
    state: str | None = None  # Powens' own state, as last read (null: synchronised)
    error_message: str = ""
    connected_at: datetime | None = None
    first_movements_expected_at: datetime | None = None  # connection + 48 h ("débutera 48-72 heures après")
    last_sync_at: datetime | None = None
    cursor: datetime | None = None  # newest Powens last_update seen: the next sync asks what changed since
    deleted_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class BankAccount(SQLModel, table=True):
    """One account of a connection (Powens account)."""

    __table_args__ = (UniqueConstraint("connection_id", "powens_id", name="uq_bankaccount_powens"),)

    id: int | None = Field(default=None, primary_key=True)
    connection_id: int = Field(foreign_key="bankconnection.id", index=True)
    powens_id: int
    name: str
    number: str | None = None
    iban: str | None = Field(default=None, index=True)
    currency: str = "EUR"
    balance: str | None = None  # decimal as text, exact
    enabled: bool = True
    created_at: datetime = Field(default_factory=utcnow)


class BankMovement(SQLModel, table=True):
    """A bank movement, unique by its Powens id on its account; an update from Powens updates the row."""

    __table_args__ = (UniqueConstraint("bank_account_id", "powens_id", name="uq_bankmovement_powens"),)

    id: int | None = Field(default=None, primary_key=True)
    bank_account_id: int = Field(foreign_key="bankaccount.id", index=True)
    powens_id: int
    booking_date: date = Field(index=True)
    value_date: date | None = None
    real_date: date | None = None
    amount: str  # decimal as text, exact
    currency: str = "EUR"
    wording: str
    original_wording: str = ""
    kind: str = ""
    coming: bool = False  # not booked yet
    deleted: bool = False
    powens_last_update: datetime | None = None
    version: int = 1  # incremented by each update from Powens
    first_seen_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    run_id: int | None = Field(default=None, foreign_key="collectionrun.id")
    filed_version: int = 0  # the version last written to a daily file; below ``version``: to file
