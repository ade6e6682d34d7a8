"""The sandbox's suppliers, accounts and invoices, and the little a portal remembers between requests.

Everything is fixed: calendar dates (monthly invoices ending in October 2026), amounts and TOTP
seeds come from formulas, never from the clock or a random generator, so a test, a saved page and
a demo all see the same portal. Each account plays one :class:`Scenario`, named by its login.
The only random values are what a real portal draws at random too: session tokens and the
one-time codes it "sends".

:class:`PortalState` is what a real portal keeps in its database (failed logins, locks,
accepted terms, changed passwords, new invoices, the flaky load balancer's counter, logins
waiting for their second factor, the codes it sent, which sessions are still valid);
``POST /_sandbox/reset`` puts it back to :meth:`PortalState.reset`.

Second factors (the ``double-*`` accounts): after the right password the portal opens a
:class:`PendingLogin` and asks for a TOTP code (RFC 6238, checked with pyotp, one window either
side accepted), a code it sends by SMS or e-mail (to its test outbox only, valid
:data:`CODE_VALIDITY`), or an approval in its app (``POST /_sandbox/approve/{login}`` plays the
phone). :data:`MAX_SECOND_FACTOR_ATTEMPTS` wrong codes drop the pending login.

Sessions last :data:`SESSION_LIFETIME` by default, across browser contexts (a saved Playwright
storage state skips login and second factor); they are revoked with a watermark on a session
serial number, which works for Papeterie Dupont's server-side sessions and Énergie Verte's
stateless signed cookies alike.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

import pyotp

CENT = Decimal("0.01")
VAT_RATE = Decimal("0.20")
NEWEST_MONTH = date(2026, 10, 1)  # month of every account's newest initial invoice
MAX_FAILED_LOGINS = 3  # consecutive wrong passwords before the portal locks the account
PAGE_SIZE = 10  # rows per page of Papeterie Dupont's invoice list
MAX_SECOND_FACTOR_ATTEMPTS = 5  # wrong codes before the portal drops a pending login
CODE_VALIDITY = timedelta(minutes=5)  # of a code sent by SMS or e-mail
SESSION_LIFETIME = timedelta(days=7)  # of a portal session, unless changed through the control endpoint
OUTBOX_SHOWN = 10  # messages GET /_sandbox/outbox/{login} returns: the latest, oldest first (the last is the newest)


class Scenario(StrEnum):
    NORMAL = "normal"
    PASSWORD_EXPIRED = "password_expired"
    TERMS = "terms"
    INTERMITTENT = "intermittent"
    SLOW = "slow"
    CHANGED_LAYOUT = "changed_layout"
    NOT_PDF = "not_pdf"
    LOCKED = "locked"
    SECOND_FACTOR_TOTP = "second_factor_totp"
    SECOND_FACTOR_CODE = "second_factor_code"
    SECOND_FACTOR_APP = "second_factor_app"


class SecondFactor(StrEnum):
    """What the portal asks after the password (the sandbox's own names; it does not import Glaneur)."""

    TOTP = "totp"
    CODE = "code"  # sent by SMS or e-mail
    APP = "app"  # approval in the supplier's app


_SECOND_FACTORS = {
    Scenario.SECOND_FACTOR_TOTP: SecondFactor.TOTP,
    Scenario.SECOND_FACTOR_CODE: SecondFactor.CODE,
    Scenario.SECOND_FACTOR_APP: SecondFactor.APP,
}


class LoginResult(StrEnum):
    OK = "ok"
    WRONG = "wrong"
    LOCKED = "locked"


@dataclass(frozen=True)
class Customer:
    number: str
    name: str
    address: tuple[str, ...]


@dataclass(frozen=True)
class InvoiceLine:
    label: str
    quantity: Decimal
    unit_price: Decimal  # excluding VAT

    @property
    def total(self) -> Decimal:
        return (self.quantity * self.unit_price).quantize(CENT, ROUND_HALF_UP)


@dataclass(frozen=True)
class Invoice:
    number: str
    issued: date
    customer: Customer
    lines: tuple[InvoiceLine, ...]
    total_ttc: Decimal

    @property
    def total_ht(self) -> Decimal:
        return sum((line.total for line in self.lines), Decimal("0.00"))

    @property
    def vat(self) -> Decimal:
        return self.total_ttc - self.total_ht


def priced(number: str, issued: date, customer: Customer, lines: tuple[InvoiceLine, ...]) -> Invoice:
    """An invoice whose total is its lines plus 20 % VAT."""
    total_ht = sum((line.total for line in lines), Decimal("0.00"))
    vat = (total_ht * VAT_RATE).quantize(CENT, ROUND_HALF_UP)
    return Invoice(number, issued, customer, lines, total_ht + vat)


LineMaker = Callable[[int, int, date], tuple[InvoiceLine, ...]]


@dataclass(frozen=True)
class Supplier:
    slug: str
    name: str
    address: tuple[str, ...]
    legal: str  # SIRET and VAT number, printed at the foot of each invoice
    invoice_day: int
    number_format: str  # filled with the account's code and the invoice's sequence number
    login_format: str  # filled with the account's stem
    password_format: str
    code_channel: str  # how its one-time codes travel: "sms" or "email"
    lines: LineMaker = field(compare=False)


@dataclass(frozen=True)
class Account:
    login: str
    password: str = field(repr=False)
    customer: Customer
    scenario: Scenario
    invoice_count: int
    code: int  # in invoice numbers and amount formulas
    description: str
    phone: str = ""  # where SMS codes go and the app runs (a fake number)
    totp_seed: str | None = field(default=None, repr=False)  # base32, for the TOTP account only

    @property
    def second_factor(self) -> SecondFactor | None:
        return _SECOND_FACTORS.get(self.scenario)

    @property
    def email(self) -> str:
        return self.login if "@" in self.login else f"{self.login}@client.test"


def french_number(amount: Decimal, thousands: str = "\u00a0") -> str:
    """``1 234,56``: two decimals after a comma, groups of three digits apart (a non-breaking space by default)."""
    sign = "-" if amount < 0 else ""
    units, cents = f"{abs(amount):.2f}".split(".")
    groups = []
    while units:
        groups.insert(0, units[-3:])
        units = units[:-3]
    return f"{sign}{thousands.join(groups)},{cents}"


def french_amount(amount: Decimal) -> str:
    """``1 234,56 €`` as French invoices print it (non-breaking space between thousands)."""
    return f"{french_number(amount)} €"


def _stationery_lines(code: int, seq: int, month: date) -> tuple[InvoiceLine, ...]:
    catalogue = (
        ("Ramette papier A4 80 g (500 feuilles)", "5.90"),
        ("Cartouche toner laser noir", "89.90"),
        ("Classeur à levier dos 80 mm", "3.45"),
        ("Stylos bille bleus (boîte de 50)", "14.20"),
        ("Fauteuil de bureau ergonomique", "189.00"),
    )
    lines = []
    for k, (label, price) in enumerate(catalogue):
        quantity = (code * 31 + seq * 17 + k * 13 + seq * k * 7 + month.month) % (9 if k < 4 else 3)
        if quantity:
            lines.append(InvoiceLine(label, Decimal(quantity), Decimal(price)))
    return tuple(lines) or (InvoiceLine(catalogue[0][0], Decimal(1), Decimal(catalogue[0][1])),)


def _electricity_lines(code: int, seq: int, month: date) -> tuple[InvoiceLine, ...]:
    winter = 220 if month.month in (11, 12, 1, 2) else 0
    kwh = Decimal(180 + (code * 37 + seq * 53) % 260 + winter)
    return (
        InvoiceLine("Abonnement Base 9 kVA", Decimal(1), Decimal("16.08")),
        InvoiceLine("Consommation électricité (kWh)", kwh, Decimal("0.2016")),
        InvoiceLine("Accise sur l'électricité (kWh)", kwh, Decimal("0.0225")),
    )


def _service_lines(code: int, seq: int, month: date) -> tuple[InvoiceLine, ...]:
    hours = Decimal(4 + (code * 7 + seq * 5 + month.month) % 12)
    return (
        InvoiceLine("Maintenance informatique (heures)", hours, Decimal("62.50")),
        InvoiceLine("Hébergement serveur (mois)", Decimal(1), Decimal("49.00")),
    )


def _transport_lines(code: int, seq: int, month: date) -> tuple[InvoiceLine, ...]:
    pallets = Decimal(2 + (code * 3 + seq * 11 + month.month) % 9)
    return (
        InvoiceLine("Transport palette Lyon - Paris", pallets, Decimal("38.40")),
        InvoiceLine("Frais de gestion", Decimal(1), Decimal("12.00")),
    )


# What each supplier sells, by the name its entry in suppliers.toml gives under "lines".
LINE_MAKERS: dict[str, LineMaker] = {
    "stationery": _stationery_lines,
    "electricity": _electricity_lines,
    "service": _service_lines,
    "transport": _transport_lines,
}

# The suppliers, customers and demo accounts are data: sandbox/suppliers.toml.
CATALOGUE = tomllib.loads((Path(__file__).parent / "suppliers.toml").read_text(encoding="utf-8"))


def customer(number: str) -> Customer:
    entry = CATALOGUE["customers"][number]
    return Customer(number, entry["name"], tuple(entry["address"]))


def supplier(slug: str) -> Supplier:
    """The supplier of that slug in suppliers.toml (its ``odoo_version``, if any, is read by sandbox.odoo)."""
    entry = {key: value for key, value in CATALOGUE["suppliers"][slug].items() if key != "odoo_version"}
    return Supplier(
        slug=slug, **{**entry, "address": tuple(entry["address"]), "lines": LINE_MAKERS[entry["lines"]]}
    )


PAPETERIE_DUPONT = supplier("papeterie-dupont")
ENERGIE_VERTE = supplier("energie-verte")
SUPPLIERS = {supplier.slug: supplier for supplier in (PAPETERIE_DUPONT, ENERGIE_VERTE)}


def totp_seed(supplier: Supplier, login: str) -> str:
    """A fixed base32 seed of 160 bits (32 characters), derived from the portal and the login."""
    digest = hashlib.sha256(f"{supplier.slug}/{login}".encode()).digest()
    return base64.b32encode(digest[:20]).decode()


def accounts_of(supplier: Supplier) -> dict[str, Account]:
    """The supplier's demo accounts by login; passwords are fake demo values."""
    accounts = {}
    for index, entry in enumerate(CATALOGUE["portal_accounts"]):
        login = supplier.login_format.format(stem=entry["stem"])
        password = supplier.password_format.format(stem=entry["stem"])
        code, scenario = 1001 + index, Scenario(entry["scenario"])
        seed = totp_seed(supplier, login) if scenario is Scenario.SECOND_FACTOR_TOTP else None
        phone = f"06 12 34 56 {code % 100:02d}"
        accounts[login] = Account(login, password, customer(entry["customer"]), scenario, entry["invoices"], code,
                                  entry["description"], phone, seed)
    return accounts


T = TypeVar("T")


def owned(by_login: Mapping[str, Iterable[T]], wanted: Callable[[T], bool]) -> tuple[str, T] | None:
    """The first of the accounts' records that is ``wanted``, with the login that owns it (None: no such record)."""
    return next(((login, record) for login, records in by_login.items() for record in records if wanted(record)), None)


def add_months(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def make_invoice(supplier: Supplier, account: Account, seq: int, issued: date) -> Invoice:
    number = supplier.number_format.format(code=account.code, seq=seq)
    return priced(number, issued, account.customer, supplier.lines(account.code, seq, issued))


def initial_invoices(supplier: Supplier, account: Account) -> list[Invoice]:
    """One invoice a month, the newest in :data:`NEWEST_MONTH`; oldest first (sequence order)."""
    first = add_months(NEWEST_MONTH, 1 - account.invoice_count)
    return [
        make_invoice(supplier, account, seq, add_months(first, seq - 1).replace(day=supplier.invoice_day))
        for seq in range(1, account.invoice_count + 1)
    ]


class SecondFactorResult(StrEnum):
    OK = "ok"  # the pending login is complete: open a session
    WRONG = "wrong"  # a wrong code; the same page again
    EXPIRED = "expired"  # the code sent is past its validity: ask for a new one (not counted as wrong)
    NOT_APPROVED = "not_approved"  # nobody approved in the app yet (not counted as wrong)
    DROPPED = "dropped"  # too many wrong codes: the pending login is gone, back to the login page
    UNKNOWN = "unknown"  # no such pending login (reset, dropped, or never started)


@dataclass
class PendingLogin:
    """A login whose password was right and whose second factor the portal awaits."""

    login: str
    kind: SecondFactor
    csrf: str = field(repr=False)  # of the second-factor form
    wrong_answers: int = 0
    code: str | None = field(default=None, repr=False)  # the code sent (CODE only)
    code_expires: datetime | None = None
    approved: bool = False  # in the app (APP only)

    @property
    def attempts_left(self) -> int:
        return MAX_SECOND_FACTOR_ATTEMPTS - self.wrong_answers


@dataclass(frozen=True)
class OutboxMessage:
    """A code the portal "sent": it goes nowhere but this outbox."""

    login: str
    channel: str  # sms or email
    to: str
    code: str
    text: str
    sent_at: datetime

    def as_json(self) -> dict[str, str]:
        return {**asdict(self), "sent_at": self.sent_at.isoformat()}


@dataclass(frozen=True)
class SessionTicket:
    """What a session cookie stands for: whose it is, its serial number and when it was issued."""

    login: str
    serial: int
    issued: datetime


def masked_phone(phone: str) -> str:
    """``06 12 34 56 10`` -> ``06 •• •• •• 10``, as portals show where they sent a code."""
    groups = phone.split()
    return " ".join([groups[0], *("••" for _ in groups[1:-1]), groups[-1]]) if len(groups) > 2 else "••"


def masked_email(address: str) -> str:
    """``double-code@client.test`` -> ``do•••••••••@client.test``."""
    name, _, domain = address.partition("@")
    return f"{name[:2]}{'•' * max(len(name) - 2, 1)}@{domain}"


def utc_now() -> datetime:
    return datetime.now(UTC)


class PortalState:
    """One portal's memory. Not thread-safe by design: the portals' handlers are coroutines on one loop.

    The portal's time is ``clock()`` plus ``clock_offset`` (UTC): unit tests replace ``clock``, and
    ``POST /_sandbox/clock`` moves the offset forward (reset puts it back), to expire codes and sessions
    without waiting.
    """

    def __init__(self, supplier: Supplier, clock: Callable[[], datetime] = utc_now) -> None:
        self.supplier = supplier
        self.accounts = accounts_of(supplier)
        self.clock = clock
        self._session_serial = 0  # never reset: a serial is never issued twice
        self.reset()

    def reset(self) -> None:
        self.passwords = {login: account.password for login, account in self.accounts.items()}
        self.failed_logins = dict.fromkeys(self.accounts, 0)
        self.locked = {login for login, account in self.accounts.items() if account.scenario is Scenario.LOCKED}
        self.terms_accepted: set[str] = set()
        self.passwords_changed: set[str] = set()
        self.list_requests = dict.fromkeys(self.accounts, 0)
        self.rate_limited = False
        self._invoices = {login: initial_invoices(self.supplier, account) for login, account in self.accounts.items()}
        self.pending: dict[str, PendingLogin] = {}  # pending-login token -> what it waits for
        self.outbox: list[OutboxMessage] = []
        self.session_lifetime = SESSION_LIFETIME
        self.clock_offset = timedelta(0)
        self._revoked_below = self._session_serial  # every session issued so far is invalid from now on
        self._revoked_below_for: dict[str, int] = {}

    # -- logging in ------------------------------------------------------------------------
    def authenticate(self, login: str, password: str) -> LoginResult:
        """Check a password; the third consecutive failure locks the account, even for the right one later."""
        if login not in self.accounts:
            return LoginResult.WRONG
        if login in self.locked:
            return LoginResult.LOCKED
        if password != self.passwords[login]:
            self.failed_logins[login] += 1
            if self.failed_logins[login] >= MAX_FAILED_LOGINS:
                self.locked.add(login)
                return LoginResult.LOCKED
            return LoginResult.WRONG
        self.failed_logins[login] = 0
        return LoginResult.OK

    def password_expired(self, login: str) -> bool:
        scenario = self.accounts[login].scenario
        return scenario is Scenario.PASSWORD_EXPIRED and login not in self.passwords_changed

    def change_password(self, login: str, new: str, confirmation: str) -> str | None:
        """Set a new password; returns what is wrong with it (in French, as the portal says it), or None."""
        if len(new) < 8:
            return "Le mot de passe doit contenir au moins 8 caractères."
        if new != confirmation:
            return "Les deux mots de passe ne correspondent pas."
        if new == self.passwords[login]:
            return "Le nouveau mot de passe doit être différent de l'ancien."
        self.passwords[login] = new
        self.passwords_changed.add(login)
        return None

    def terms_pending(self, login: str) -> bool:
        return self.accounts[login].scenario is Scenario.TERMS and login not in self.terms_accepted

    def accept_terms(self, login: str) -> None:
        self.terms_accepted.add(login)

    def pending_step(self, login: str) -> str | None:
        """What the portal insists on before showing invoices: 'password', 'terms' or nothing."""
        if self.password_expired(login):
            return "password"
        if self.terms_pending(login):
            return "terms"
        return None

    def now(self) -> datetime:
        return self.clock() + self.clock_offset

    # -- second factors ----------------------------------------------------------------------
    def begin_second_factor(self, login: str) -> str | None:
        """After the right password: a pending-login token when the account has a second factor, else None.

        For a code, the portal sends one at once (to the outbox).
        """
        kind = self.accounts[login].second_factor
        if kind is None:
            return None
        token = secrets.token_urlsafe(24)
        self.pending[token] = PendingLogin(login, kind, secrets.token_urlsafe(24))
        if kind is SecondFactor.CODE:
            self.send_code(token)
        return token

    def pending_login(self, token: str) -> PendingLogin | None:
        return self.pending.get(token)

    def send_code(self, token: str) -> OutboxMessage:
        """A new random 6-digit code for this pending login (the previous one stops working)."""
        pending = self.pending[token]
        account = self.accounts[pending.login]
        pending.code = f"{secrets.randbelow(10**6):06d}"
        pending.code_expires = self.now() + CODE_VALIDITY
        channel = self.supplier.code_channel
        minutes = int(CODE_VALIDITY.total_seconds() // 60)
        message = OutboxMessage(
            login=pending.login,
            channel=channel,
            to=account.phone if channel == "sms" else account.email,
            code=pending.code,
            text=f"{self.supplier.name} : votre code de connexion est {pending.code}. "
            f"Il est valable {minutes} minutes.",
            sent_at=self.now(),
        )
        self.outbox.append(message)
        return message

    def code_destination(self, pending: PendingLogin) -> str:
        """Where the code went, masked as the page shows it."""
        account = self.accounts[pending.login]
        if self.supplier.code_channel == "sms":
            return f"par SMS au {masked_phone(account.phone)}"
        return f"par e-mail à {masked_email(account.email)}"

    def answer_second_factor(self, token: str, answer: str | None) -> SecondFactorResult:
        """Check an answer (a code, or nothing for an app approval); OK ends the pending login."""
        pending = self.pending.get(token)
        if pending is None:
            return SecondFactorResult.UNKNOWN
        if pending.kind is SecondFactor.APP:
            if not pending.approved:
                return SecondFactorResult.NOT_APPROVED
        elif pending.kind is SecondFactor.CODE and pending.code_expires and self.now() > pending.code_expires:
            return SecondFactorResult.EXPIRED
        else:
            typed = "".join((answer or "").split())
            if pending.kind is SecondFactor.TOTP:
                seed = self.accounts[pending.login].totp_seed or ""
                # clock(), not now(): the authenticator app on the phone is not fast-forwarded with the portal
                right = pyotp.TOTP(seed).verify(typed, for_time=self.clock(), valid_window=1)
            else:
                right = secrets.compare_digest(typed, pending.code or "-")
            if not right:
                pending.wrong_answers += 1
                if pending.attempts_left <= 0:
                    del self.pending[token]
                    return SecondFactorResult.DROPPED
                return SecondFactorResult.WRONG
        del self.pending[token]
        return SecondFactorResult.OK

    def approve(self, login: str) -> int:
        """The phone approves every login of this account waiting in the app; how many there were."""
        waiting = [p for p in self.pending.values() if p.login == login and p.kind is SecondFactor.APP]
        for pending in waiting:
            pending.approved = True
        return len(waiting)

    def outbox_of(self, login: str) -> list[OutboxMessage]:
        """The latest codes sent for this login, in the order sent: the last one is the newest."""
        return [message for message in self.outbox if message.login == login][-OUTBOX_SHOWN:]

    # -- sessions ----------------------------------------------------------------------------
    def open_session(self, login: str) -> SessionTicket:
        self._session_serial += 1
        return SessionTicket(login, self._session_serial, self.now())

    def session_valid(self, ticket: SessionTicket) -> bool:
        """Not revoked (expire endpoint, reset) and younger than the session lifetime."""
        if ticket.login not in self.accounts:
            return False
        revoked_below = max(self._revoked_below, self._revoked_below_for.get(ticket.login, 0))
        return ticket.serial > revoked_below and self.now() < ticket.issued + self.session_lifetime

    def expire_sessions(self, login: str | None = None) -> None:
        """Invalidate every session issued so far, or only this login's."""
        if login is None:
            self._revoked_below = self._session_serial
        else:
            self._revoked_below_for[login] = self._session_serial

    # -- invoices ----------------------------------------------------------------------------
    def invoices(self, login: str, since: date | None = None) -> list[Invoice]:
        """The account's invoices, newest first."""
        found = sorted(self._invoices[login], key=lambda invoice: (invoice.issued, invoice.number), reverse=True)
        return [invoice for invoice in found if since is None or invoice.issued >= since]

    def find_invoice(self, number: str) -> tuple[str, Invoice] | None:
        """The invoice with this number and the login that owns it."""
        return owned(self._invoices, lambda invoice: invoice.number == number)

    def add_invoice(
        self, login: str, issued: date | None = None, amount: Decimal | None = None, number: str | None = None
    ) -> Invoice:
        """A new invoice: next month after the newest by default; one line when the amount is imposed.

        ``number`` imposes the invoice's number, as portals with their own numbering show it (``FA/001``).
        """
        account = self.accounts[login]
        existing = self._invoices[login]
        seq = len(existing) + 1
        if issued is None:
            newest = max(invoice.issued for invoice in existing) if existing else NEWEST_MONTH
            issued = add_months(newest.replace(day=1), 1).replace(day=self.supplier.invoice_day)
        if amount is None:
            invoice = make_invoice(self.supplier, account, seq, issued)
        else:
            total_ttc = amount.quantize(CENT, ROUND_HALF_UP)
            total_ht = (total_ttc / (1 + VAT_RATE)).quantize(CENT, ROUND_HALF_UP)
            line = InvoiceLine("Facture complémentaire", Decimal(1), total_ht)
            invoice = Invoice(
                self.supplier.number_format.format(code=account.code, seq=seq), issued, account.customer, (line,), total_ttc
            )
        if number is not None:
            invoice = Invoice(number, invoice.issued, invoice.customer, invoice.lines, invoice.total_ttc)
        existing.append(invoice)
        return invoice

    def add_history(self, login: str, count: int) -> tuple[date, date]:
        """``count`` older invoices, one a day back from the day before the oldest: a long history.

        Numbered after the existing ones (numbers stay unique); returns the oldest and newest dates added.
        """
        account = self.accounts[login]
        existing = self._invoices[login]
        oldest = min((invoice.issued for invoice in existing), default=NEWEST_MONTH)
        first_seq = len(existing) + 1
        added = [
            make_invoice(self.supplier, account, first_seq + k, oldest - timedelta(days=k + 1)) for k in range(count)
        ]
        existing.extend(added)
        return added[-1].issued, added[0].issued

    # -- misbehaviour --------------------------------------------------------------------------
    def list_request_fails(self, login: str) -> bool:
        """Count one request to the invoice list; True when the intermittent account must answer 503.

        Every second request fails: the one that lands there after login works, the connector's
        next one fails, its retry works. Deterministic, so tests can count on the retry.
        """
        self.list_requests[login] += 1
        return self.accounts[login].scenario is Scenario.INTERMITTENT and self.list_requests[login] % 2 == 0

    def broken_download(self, login: str, number: str) -> bool:
        """True for the one invoice of the not-a-PDF account served as an HTML page: its newest initial one."""
        account = self.accounts[login]
        if account.scenario is not Scenario.NOT_PDF:
            return False
        return number == self.supplier.number_format.format(code=account.code, seq=account.invoice_count)

    def describe(self) -> list[dict[str, object]]:
        """The accounts as the control endpoint and ``python -m sandbox`` show them."""
        return [
            {
                "login": login,
                "password": self.passwords[login],
                "scenario": account.scenario.value,
                "description": account.description,
                "customer": account.customer.name,
                "invoices": len(self._invoices[login]),
                "locked": login in self.locked,
                "terms_accepted": login in self.terms_accepted,
                "password_changed": login in self.passwords_changed,
                "second_factor": account.second_factor.value if account.second_factor else None,
                "totp_seed": account.totp_seed,
                "phone": account.phone if account.second_factor else None,
            }
            for login, account in self.accounts.items()
        ]
