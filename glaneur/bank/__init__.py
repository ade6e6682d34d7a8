"""The bank side ("Paramétrage POWENS"): the bank referential, consent, connections, movements bookkeeping.

Free of Prefect and of HTTP: the flow (:mod:`flows.collect_bank_movements`) and the CLI
(:mod:`cli.bank`) call these functions with what the Powens client read.

The rules of the help page, each enforced here:

* only a user holding "Autoriser l'accès au paramétrage de la comptabilité" configures it;
* the bank is added to the referential **before any connection**; a connection to a bank not in
  it is refused with the page's advice;
* the account holder's **explicit consent** is recorded before any connection: who gave it, who
  recorded it, when, and the exact text shown (with the page's GDPR warning); revoking it deletes
  the connection on Powens' side and purges the Powens token from the vault;
* the first movements come 48 to 72 hours after the connection: the status says when.

Movements are unique by their Powens id on their account: a re-run adds nothing, an update from
Powens updates the row (``version`` + 1), and the day's file carries each new or updated version once.
Secrets (the Powens user token) go to the vault only; nothing here logs or prints.

Beside it: ``files`` (the day's CSV, OFX and CAMT.053 of an account), ``states`` (what a connection's
``state`` means in the one status vocabulary) and ``doctor`` (the POWENS page's checklist, and the
movements compared with a firm's statements).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from glaneur import admin
from glaneur.errors import ConfigurationError, UsageError
from glaneur.models import (
    Bank,
    BankAccount,
    BankConnection,
    BankConsent,
    BankConsentState,
    BankMovement,
    Channel,
    ChannelKind,
    Organization,
    Right,
    User,
    utcnow,
)
from glaneur.statuses import Status, describe

POWENS_PROVIDER = "powens"  # the catalogue slug of bank channels
TOKEN_PURPOSE = "powens_user_token"
RIGHT = Right.CONFIGURE_ACCOUNTING

# The help page's warnings, shown as they are, and recorded with the consent.
GDPR_WARNING = (
    "La connexion POWENS nécessite la transmission d'identifiants bancaires sensibles. Assurez-vous du "
    "consentement explicite de votre client et respectez les obligations RGPD en matière de protection des "
    "données financières."
)
CONSENT_TEXT = (
    "Je, titulaire du compte, autorise {organization} à récupérer chaque jour, par l'intermédiaire de POWENS, "
    "les mouvements de mes comptes à la banque « {bank} », et à les classer dans sa comptabilité. Je peux "
    "retirer ce consentement à tout moment ; la connexion est alors supprimée chez POWENS.\n\n" + GDPR_WARNING
)
NOT_IN_POWENS = (
    "La banque n'apparaît pas dans la liste POWENS ? Vérifiez que l'établissement bancaire est compatible avec "
    "le service POWENS ou contactez le support technique."
)
SUPPLIER_NOT_IN_POWENS = (  # merchant-connector-setup.md's answer, for a supplier collected through POWENS
    "Le fournisseur n'apparaît pas dans la liste POWENS ? Vérifiez que l'établissement est compatible avec le "
    "service POWENS ou contactez le support technique."
)
# A connector POWENS lists but marks ``restricted``: "new connections cannot be added with this connector".
RESTRICTED_IN_POWENS = (
    "La banque apparaît dans la liste POWENS, mais POWENS n'y accepte pas de nouvelle connexion pour ce client "
    "(connecteur restreint : un accord avec POWENS est nécessaire). Vérifiez que l'établissement bancaire est "
    "compatible avec le service POWENS tel qu'il est ouvert ici ou contactez le support technique."
)


class PowensSettings(BaseSettings):
    """``GLANEUR_POWENS_*``: where Powens is and who we are to it. The client secret never leaves the process."""

    model_config = SettingsConfigDict(env_prefix="GLANEUR_POWENS_", extra="ignore")

    api_url: str | None = None  # https://{domain}.biapi.pro (the sandbox in tests and the demo)
    webview_url: str = "https://webview.powens.com"
    client_id: str | None = None
    client_secret: SecretStr | None = None
    redirect_uri: str = "http://127.0.0.1:8707/powens/callback"  # the callback service (glaneur serve)
    first_movements_hours: tuple[float, float] = (48.0, 72.0)  # "débutera 48-72 heures après la connexion"
    webview_timeout_seconds: float = 300.0  # how long a decoupled approval is waited for in the webview
    public_url: str = "http://127.0.0.1:8707"  # where `glaneur serve` is reached (links sent to holders)
    webhook_secret: SecretStr | None = None  # set in Powens' console for webhooks
    # Every N days a channel reads its whole window again (not only what changed since the cursor), so a
    # movement Powens changed without moving its last_update is caught; 0 turns it off. Channels are spread
    # over the N days (by channel id), so not all of them do it the same night.
    full_pass_days: int = 7
    full_pass_lookback_days: int = 90

    def require(self) -> tuple[str, str, str]:
        if not self.api_url or not self.client_id or self.client_secret is None:
            raise ConfigurationError(
                "Powens is not configured: set GLANEUR_POWENS_API_URL, GLANEUR_POWENS_CLIENT_ID and "
                "GLANEUR_POWENS_CLIENT_SECRET (the demo starts the Powens sandbox and sets them)."
            )
        return self.api_url, self.client_id, self.client_secret.get_secret_value()


def powens_settings() -> PowensSettings:
    return PowensSettings()


# --- the referential ---------------------------------------------------------------------------------


def name_key(name: str) -> str:
    """Accents, case and spacing folded: what makes two bank names the same bank."""
    folded = unicodedata.normalize("NFKD", name.casefold())
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9]+", " ", folded).strip()


def add_bank(session: Session, org: Organization | str, name: str, *, actor: User | None) -> Bank:
    """Add a bank to the referential ("Référentiel comptable > Banque > + Ajouter > Enregistrer")."""
    org = admin.get_organization(session, org)
    actor = admin.require_right(actor, org, RIGHT)
    name = admin.check_name(name, "bank")
    key = name_key(name)
    if not key:
        raise UsageError(f"the bank name '{name}' has no letter or digit: type the bank's name.")
    existing = session.exec(select(Bank).where(Bank.organization_id == org.id, Bank.name_key == key)).first()
    if existing is not None:
        raise UsageError(f"bank '{existing.name}' is already in the referential of '{org.slug}'.")
    bank = Bank(organization_id=org.id, name=name, name_key=key, created_by_user_id=actor.id)
    session.add(bank)
    session.flush()
    admin.audit_log_entry(session, org, actor, "bank.add", name)
    session.flush()
    return bank


def list_banks(session: Session, org: Organization | str) -> list[Bank]:
    org = admin.get_organization(session, org)
    return list(session.exec(select(Bank).where(Bank.organization_id == org.id).order_by(Bank.name)).all())


def get_bank(session: Session, org: Organization | str, name: str) -> Bank:
    """A bank of the referential; otherwise the help page's rule: add it first."""
    org = admin.get_organization(session, org)
    found = session.exec(select(Bank).where(Bank.organization_id == org.id, Bank.name_key == name_key(name))).first()
    if found is None:
        known = admin.names_or_none(b.name for b in list_banks(session, org))
        raise UsageError(
            f"bank '{name}' is not in the referential of '{org.slug}' (banks: {known}). Add it first, before any "
            f"connection: glaneur bank add {org.slug} \"{name}\" (Référentiel comptable > Banque > + Ajouter)."
        )
    return found


def find_connector(bank: Bank, connectors: list) -> object | None:
    """The Powens bank connector whose name is the referential's bank (restricted or not), or None."""
    return next((c for c in connectors if c.is_bank and name_key(c.name) == bank.name_key), None)


def connector_problem(bank: Bank, connector: object | None) -> tuple[str, str] | None:
    """Why ``bank`` cannot be connected through this Powens client (its connector: :func:`find_connector`), and the
    help page's advice; None when it can."""
    if connector is None:
        return f"'{bank.name}' is not in the POWENS list of banks.", NOT_IN_POWENS
    if connector.restricted:
        return (f"'{bank.name}' cannot be connected through this POWENS client: its POWENS connector is restricted "
                "(no new connection without an agreement with POWENS).", RESTRICTED_IN_POWENS)
    return None


def match_connector(bank: Bank, connectors: list) -> object:
    """The Powens bank connector of the referential's bank that accepts a new connection; else why not, with the
    help page's advice (:class:`~glaneur.errors.NotCompatible`), before any consent is asked or webview opened."""
    from glaneur.errors import NotCompatible

    connector = find_connector(bank, connectors)
    problem = connector_problem(bank, connector)
    if problem:
        raise NotCompatible(" ".join(problem))
    return connector


# --- consent -----------------------------------------------------------------------------------------


def consent_text(org: Organization, bank: Bank) -> str:
    return CONSENT_TEXT.format(organization=org.name, bank=bank.name)


def record_consent(
    session: Session, org: Organization | str, bank: Bank, *, holder_email: str, given: bool, actor: User | None,
    text: str,
) -> BankConsent:
    """The holder's answer to ``text`` (exactly what was shown). A refusal is recorded too, and stops there."""
    org = admin.get_organization(session, org)
    actor = admin.require_right(actor, org, RIGHT)
    email = admin.normalize_email(holder_email)
    if text != consent_text(org, bank):
        raise UsageError("the consent text shown is not the current one: show the holder the text again.")
    holder = session.exec(select(User).where(User.organization_id == org.id, User.email == email)).first()
    consent = BankConsent(
        organization_id=org.id, bank_id=bank.id, holder_email=email, holder_user_id=holder.id if holder else None,
        recorded_by_user_id=actor.id, text=text, text_sha256=hashlib.sha256(text.encode()).hexdigest(),
        state=BankConsentState.GIVEN if given else BankConsentState.REFUSED,
    )
    session.add(consent)
    session.flush()
    admin.audit_log_entry(session, org, actor, "bank.consent_given" if given else "bank.consent_refused",
                          f"{bank.name}/{email}", f"text sha256 {consent.text_sha256[:12]}")
    session.flush()
    return consent


# --- channels and connections -------------------------------------------------------------------------


@dataclass(frozen=True)
class NewConnection:
    """A bank channel about to be connected: everything checked, nothing written yet."""

    org: Organization
    bank: Bank
    slug: str
    label: str
    binder_id: int
    recipient_id: int
    actor: User


def check_new_connection(
    session: Session, org: Organization | str, bank_name: str, *, binder: str, recipient: str, actor: User | None,
    label: str | None = None, slug: str | None = None,
) -> NewConnection:
    """Every check before the webview opens: right, bank in the referential, binder, recipient, free slug."""
    org = admin.get_organization(session, org)
    actor = admin.require_right(actor, org, RIGHT)
    bank = get_bank(session, org, bank_name)
    found_binder = admin.get_binder(session, org, binder)
    found_recipient = admin.get_user(session, org, recipient)
    label = admin.check_name(label or bank.name, "channel")
    slug = admin.check_slug(slug or admin.slugify(f"{org.slug}-{label}"), "channel")
    if session.exec(select(Channel).where(Channel.slug == slug)).first() is not None:
        raise UsageError(f"channel slug '{slug}' is already taken: give another slug (--slug).")
    return NewConnection(org, bank, slug, label, found_binder.id, found_recipient.id, actor)


def create_connection(
    session: Session, new: NewConnection, *, consent: BankConsent, powens_user_id: int, token: str,
    powens_connection_id: int | None, powens_connector_id: int | None, settings: PowensSettings,
) -> tuple[Channel, BankConnection]:
    """The bank channel and its connection, in the caller's transaction; the token goes to the vault."""
    from glaneur.vault import Vault

    if consent.state != BankConsentState.GIVEN or consent.bank_id != new.bank.id:
        raise UsageError("no consent of the account holder for this bank: record it before connecting.")
    now = utcnow()
    channel = Channel(
        organization_id=new.org.id, slug=new.slug, label=new.label, kind=ChannelKind.BANK, provider=POWENS_PROVIDER,
        binder_id=new.binder_id, recipient_user_id=new.recipient_id, owner_user_id=new.actor.id, status=Status.NEW,
        status_message=describe(Status.NEW).message, status_changed_at=now,
    )
    session.add(channel)
    session.flush()
    connection = BankConnection(
        organization_id=new.org.id, bank_id=new.bank.id, channel_id=channel.id, consent_id=consent.id,
        powens_user_id=powens_user_id, token_ref=Vault(session).put(TOKEN_PURPOSE, token),
        powens_connector_id=powens_connector_id,
    )
    session.add(connection)
    session.flush()
    if powens_connection_id is not None:
        connected(session, connection, powens_connection_id, settings=settings)
    admin.audit_log_entry(session, new.org, new.actor, "bank.connect", channel.slug,
                          f"bank {new.bank.name}, holder {consent.holder_email}")
    session.flush()
    return channel, connection


def create_invited_channel(session: Session, new: NewConnection, *, holder: User,
                           powens_connector_id: int | None) -> tuple[Channel, BankConnection]:
    """Option 2: the bank channel waits for its holder, who consents and connects through the invitation.

    Nothing Powens-side exists yet (no user token, no connection): both come when the holder opens
    the invitation link (:mod:`web.callbacks`), after their consent is recorded.
    """
    now = utcnow()
    channel = Channel(
        organization_id=new.org.id, slug=new.slug, label=new.label, kind=ChannelKind.BANK, provider=POWENS_PROVIDER,
        binder_id=new.binder_id, recipient_user_id=new.recipient_id, owner_user_id=new.actor.id,
        status=Status.AWAITING_CREDENTIALS, status_changed_at=now,
        status_message=f"Waiting for {holder.email} to consent and connect the bank (invitation sent).",
    )
    session.add(channel)
    session.flush()
    connection = BankConnection(organization_id=new.org.id, bank_id=new.bank.id, channel_id=channel.id,
                                powens_connector_id=powens_connector_id)
    session.add(connection)
    session.flush()
    admin.audit_log_entry(session, new.org, new.actor, "bank.invite", channel.slug,
                          f"bank {new.bank.name}, holder {holder.email}")
    session.flush()
    return channel, connection


def holder_consents(session: Session, connection: BankConnection, holder_email: str, *, given: bool) -> BankConsent:
    """Option 2: the holder answers the consent text themself, on the invitation page.

    The invitation is the authorisation: recorded on behalf of the channel's owner, who sent it.
    """
    channel = session.get(Channel, connection.channel_id)
    org = session.get(Organization, channel.organization_id)
    found = session.get(Bank, connection.bank_id)
    owner = session.get(User, channel.owner_user_id)
    consent = record_consent(session, org, found, holder_email=holder_email, given=given, actor=owner,
                             text=consent_text(org, found))
    if given:
        connection.consent_id = consent.id
        session.add(connection)
    else:
        channel.status_message = (f"{holder_email} refused the consent on the invitation page (recorded): nothing "
                                  "was connected. The invitation stays open until it expires.")
        session.add(channel)
    session.flush()
    return consent


def store_token(session: Session, connection: BankConnection, *, powens_user_id: int, token: str) -> None:
    """The Powens user's permanent token, to the vault (the connection keeps only its reference)."""
    from glaneur.vault import Vault

    if connection.token_ref is not None:
        raise UsageError("this bank channel already has a POWENS access.")
    connection.powens_user_id = powens_user_id
    connection.token_ref = Vault(session).put(TOKEN_PURPOSE, token)
    session.add(connection)
    session.flush()


def connected(session: Session, connection: BankConnection, powens_connection_id: int, *,
              settings: PowensSettings) -> None:
    """The webview came back with a connection id: the first movements are expected 48 to 72 hours later."""
    now = utcnow()
    connection.powens_connection_id = powens_connection_id
    connection.connected_at = now
    connection.first_movements_expected_at = now + timedelta(hours=settings.first_movements_hours[0])
    channel = session.get(Channel, connection.channel_id)
    channel.status = Status.NEW
    channel.status_message = first_movements_message(connection, settings)
    channel.status_changed_at = now
    session.add_all([connection, channel])
    session.flush()


def is_full_pass_day(channel_id: int, day: date, settings: PowensSettings) -> bool:
    """Whether ``day`` is the channel's periodic full pass (every ``full_pass_days``, spread by channel)."""
    every = settings.full_pass_days
    return every > 0 and (day.toordinal() + channel_id) % every == 0


def first_movements_message(connection: BankConnection, settings: PowensSettings) -> str:
    start = connection.connected_at or utcnow()
    low, high = (start + timedelta(hours=h) for h in settings.first_movements_hours)
    return (f"Connected on {start:%Y-%m-%d %H:%M} UTC. The bank sends the first movements 48 to 72 hours after "
            f"the connection: expected between {low:%Y-%m-%d %H:%M} and {high:%Y-%m-%d %H:%M} UTC.")


def get_connection(session: Session, channel: Channel | str, *, deleted_ok: bool = False) -> tuple[Channel, BankConnection]:
    channel = admin.get_channel(session, channel, deleted_ok=deleted_ok)
    if channel.kind != ChannelKind.BANK:
        raise UsageError(f"channel '{channel.slug}' is not a bank channel.")
    connection = session.exec(select(BankConnection).where(BankConnection.channel_id == channel.id)).first()
    if connection is None:
        raise UsageError(f"bank channel '{channel.slug}' has no POWENS connection: connect it with 'glaneur bank connect'.")
    return channel, connection


def read_token(session: Session, connection: BankConnection) -> str:
    from glaneur.errors import AwaitingCredentials
    from glaneur.vault import Vault

    token = Vault(session).get(connection.token_ref) if connection.token_ref else None
    if not token:
        raise AwaitingCredentials("No Powens access for this bank channel (consent revoked or never connected).")
    return token


def record_state(session: Session, connection: BankConnection, state: str | None, error_message: str | None) -> None:
    connection.state = state
    connection.error_message = error_message or ""
    connection.last_sync_at = utcnow()
    session.add(connection)
    session.flush()


def check_revoker(session: Session, channel: Channel | str, actor: User | None) -> tuple[Channel, BankConnection]:
    """Who may withdraw a consent: the holder who gave it ("Je peux retirer ce consentement à tout moment"),
    whatever their rights, or a user holding the accounting right."""
    channel, connection = get_connection(session, channel)
    org = admin.organization_of(session, channel)
    consent = session.get(BankConsent, connection.consent_id) if connection.consent_id else None
    if consent is not None and actor is not None and consent.holder_user_id == actor.id:
        admin.require_member(actor, org)
    else:
        admin.require_right(actor, org, RIGHT)
    return channel, connection


def revoke_consent(session: Session, channel: Channel | str, *, actor: User | None) -> BankConnection:
    """Withdraw the holder's consent: the caller has deleted the connection at Powens; this purges our side.

    Purged: the Powens token (vault), the connection's Powens ids, the channel (it no longer collects).
    Kept: movements already filed, which are accounting records the organisation must keep.
    """
    from glaneur.vault import Vault

    channel, connection = check_revoker(session, channel, actor)
    org = admin.organization_of(session, channel)
    now = utcnow()
    if connection.consent_id:
        consent = session.get(BankConsent, connection.consent_id)
        consent.state, consent.revoked_at, consent.revoked_by_user_id = BankConsentState.REVOKED, now, actor.id
        session.add(consent)
    ref, connection.token_ref = connection.token_ref, None
    connection.deleted_at = now
    connection.powens_connection_id = None
    session.add(connection)
    session.flush()
    Vault(session).delete(ref)
    channel.active = False
    channel.deleted_at = now
    channel.status = Status.AWAITING_CREDENTIALS
    channel.status_message = "The holder's consent was revoked: the connection was deleted at POWENS."
    session.add(channel)
    admin.audit_log_entry(session, org, actor, "bank.consent_revoked", channel.slug)
    session.flush()
    return connection


# --- accounts and movements -----------------------------------------------------------------------------


def record_accounts(session: Session, connection: BankConnection, accounts: list) -> dict[int, BankAccount]:
    """Upsert the connection's accounts (Powens ids); returns them by Powens id."""
    known = {a.powens_id: a for a in session.exec(
        select(BankAccount).where(BankAccount.connection_id == connection.id)).all()}
    for remote in accounts:
        row = known.get(remote.id) or BankAccount(connection_id=connection.id, powens_id=remote.id, name=remote.name)
        row.name, row.number, row.iban, row.currency = remote.name, remote.number, remote.iban, remote.currency
        row.balance = None if remote.balance is None else str(remote.balance)
        row.enabled = not remote.disabled
        session.add(row)
        known[remote.id] = row
    session.flush()
    return known


@dataclass
class Tally:
    new: int = 0
    updated: int = 0
    unchanged: int = 0


def upsert_movements(session: Session, accounts: dict[int, BankAccount], transactions: list, run_id: int | None,
                     tally: Tally) -> None:
    """One page of transactions into the database: new rows, updated rows (version + 1), the rest untouched.

    The caller commits per page; a crash mid-way leaves whole pages, and the next run (same cursor)
    reads them again and finds them unchanged.
    """
    by_account: dict[int, dict[int, object]] = {}
    for item in transactions:  # an item repeated within a page (offset pages shift as movements arrive): the last wins
        by_account.setdefault(item.id_account, {})[item.id] = item
    for powens_account, unique in by_account.items():
        items = list(unique.values())
        account = accounts.get(powens_account)
        if account is None:
            continue  # an account of another connection of the same Powens user
        existing = {m.powens_id: m for m in session.exec(select(BankMovement).where(
            BankMovement.bank_account_id == account.id, col(BankMovement.powens_id).in_([i.id for i in items]))).all()}
        for item in items:
            values = dict(
                booking_date=item.date, value_date=item.vdate, real_date=item.rdate, amount=_amount(item.value),
                currency=account.currency, wording=item.wording, original_wording=item.original_wording,
                kind=item.type, coming=item.coming, deleted=item.deleted, powens_last_update=item.last_update,
            )
            row = existing.get(item.id)
            if row is None:
                session.add(BankMovement(bank_account_id=account.id, powens_id=item.id, run_id=run_id, **values))
                tally.new += 1
            elif any(getattr(row, k) != v for k, v in values.items()):
                for k, v in values.items():
                    setattr(row, k, v)
                row.version += 1
                row.updated_at = utcnow()
                row.run_id = run_id
                session.add(row)
                tally.updated += 1
            else:
                tally.unchanged += 1
    try:
        session.flush()
    except IntegrityError:  # another run recorded the same movements meanwhile: the next run reconciles
        session.rollback()
        raise


def _amount(value: Decimal) -> str:
    return f"{value:.2f}" if value == value.quantize(Decimal("0.01")) else str(value)


def movements_to_file(session: Session, account: BankAccount) -> list[BankMovement]:
    """New or updated movements not yet in a daily file, oldest first."""
    return list(session.exec(select(BankMovement).where(
        BankMovement.bank_account_id == account.id, BankMovement.filed_version < BankMovement.version,
    ).order_by(BankMovement.booking_date, BankMovement.powens_id)).all())


def mark_filed(session: Session, movements: list[BankMovement]) -> None:
    for movement in movements:
        movement.filed_version = movement.version
        session.add(movement)
    session.flush()


def has_movements(session: Session, connection: BankConnection) -> bool:
    return session.exec(select(BankMovement.id).join(BankAccount).where(
        BankAccount.connection_id == connection.id)).first() is not None


def connection_accounts(session: Session, connection: BankConnection) -> list[BankAccount]:
    return list(session.exec(select(BankAccount).where(BankAccount.connection_id == connection.id)
                             .order_by(BankAccount.powens_id)).all())


def movements(session: Session, account: BankAccount) -> list[BankMovement]:
    return list(session.exec(select(BankMovement).where(BankMovement.bank_account_id == account.id)
                             .order_by(BankMovement.booking_date, BankMovement.powens_id)).all())


# Why the bank stopped, in the holder's words, by the connection's state (the reconnect states).
RECONNECT_REASONS = {
    "wrongpass": "elle refuse le mot de passe enregistré",
    "passwordExpired": "votre mot de passe a expiré",
    "additionalInformationNeeded": "elle demande un code de validation",
}
REVALIDATE = "elle demande de valider à nouveau l'accès (double authentification)"  # SCA, webauth, decoupled


def reconnect_mail(bank_name: str, organization: str, state: str | None, link_days: int) -> tuple[str, str]:
    """The holder's mail (subject, body) when the bank needs them: one sentence saying what happened, to whom,
    and what to do, as the help pages do."""
    reason = RECONNECT_REASONS.get(state or "", REVALIDATE)
    subject = f"[Glaneur] {bank_name} : reconnectez votre banque pour continuer la récupération des mouvements"
    body = (f"{bank_name} a interrompu la récupération automatique des mouvements de vos comptes pour {organization} "
            f"({reason}) : en tant que titulaire du compte, ouvrez le lien ci-dessous dans les {link_days} jours et "
            "suivez la page POWENS pour reconnecter votre banque.")
    return subject, body


def tell_holder_to_reconnect(session: Session, channel: Channel, connection: BankConnection, link: str) -> bool:
    """The holder (a user of the organisation, by the consent's address) gets the reconnect link: bell and mail."""
    from glaneur.notify import notify_user
    from glaneur.signing import LINK_TTL_SECONDS

    consent = session.get(BankConsent, connection.consent_id) if connection.consent_id else None
    holder = session.get(User, consent.holder_user_id) if consent and consent.holder_user_id else None
    if holder is None:
        return False
    found = session.get(Bank, connection.bank_id)
    org = session.get(Organization, channel.organization_id)
    subject, body = reconnect_mail(found.name, org.name, connection.state, LINK_TTL_SECONDS // 86400)
    notify_user(session, holder, kind="bank_reconnect", subject=subject, body=body, link=link)
    return True


@dataclass(frozen=True)
class ConsentView:
    holder: str
    state: str
    given_at: datetime
    recorded_by: str
    text_sha256: str
    revoked_at: datetime | None


def consent_of(session: Session, connection: BankConnection) -> ConsentView | None:
    """What ``doctor`` shows: who consented, when, to which text, and whether it was revoked."""
    if connection.consent_id is None:
        return None
    consent = session.get(BankConsent, connection.consent_id)
    recorder = session.get(User, consent.recorded_by_user_id) if consent.recorded_by_user_id else None
    return ConsentView(consent.holder_email, consent.state.value, consent.given_at,
                       recorder.email if recorder else "-", consent.text_sha256, consent.revoked_at)
