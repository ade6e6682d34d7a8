"""The sandbox's suppliers, accounts and invoices, and the little a portal remembers between requests.

Everything is fixed: calendar dates (monthly invoices ending in October 2026) and amounts come
from formulas, never from the clock or a random generator, so a test, a saved page and a demo
all see the same portal. Each account plays one :class:`Scenario`, named by its login.

:class:`PortalState` is what a real portal keeps in its database (failed logins, locks,
accepted terms, changed passwords, new invoices, the flaky load balancer's counter);
``POST /_sandbox/reset`` puts it back to :meth:`PortalState.reset`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

CENT = Decimal("0.01")
VAT_RATE = Decimal("0.20")
NEWEST_MONTH = date(2026, 10, 1)  # month of every account's newest initial invoice
MAX_FAILED_LOGINS = 3  # consecutive wrong passwords before the portal locks the account
PAGE_SIZE = 10  # rows per page of Papeterie Dupont's invoice list


class Scenario(StrEnum):
    NORMAL = "normal"
    PASSWORD_EXPIRED = "password_expired"
    TERMS = "terms"
    INTERMITTENT = "intermittent"
    SLOW = "slow"
    CHANGED_LAYOUT = "changed_layout"
    NOT_PDF = "not_pdf"
    LOCKED = "locked"


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


def french_amount(amount: Decimal) -> str:
    """``1 234,56 €`` as French invoices print it (non-breaking space between thousands)."""
    sign = "-" if amount < 0 else ""
    units, cents = f"{abs(amount):.2f}".split(".")
    groups = []
    while units:
        groups.insert(0, units[-3:])
        units = units[:-3]
    return f"{sign}{chr(0xA0).join(groups)},{cents} €"


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


PAPETERIE_DUPONT = Supplier(
    slug="papeterie-dupont",
    name="Papeterie Dupont",
    address=("12 rue des Écoles", "69002 Lyon"),
    legal="SIRET 552 100 554 00017 · TVA FR40 552100554",
    invoice_day=5,
    number_format="PD-{code}-{seq:04d}",
    login_format="{stem}",
    password_format="papier-{stem}",
    lines=_stationery_lines,
)

ENERGIE_VERTE = Supplier(
    slug="energie-verte",
    name="Énergie Verte",
    address=("8 avenue du Soleil", "31000 Toulouse"),
    legal="SIRET 801 234 567 00029 · TVA FR12 801234567",
    invoice_day=1,
    number_format="EV{code}{seq:05d}",
    login_format="{stem}@client.test",
    password_format="soleil-{stem}",
    lines=_electricity_lines,
)

SUPPLIERS = {supplier.slug: supplier for supplier in (PAPETERIE_DUPONT, ENERGIE_VERTE)}

_ACME = Customer("C-1001", "ACME Industries SARL", ("4 quai Rambaud", "69002 Lyon"))

# (stem, customer, scenario, invoice count, description): the same demo accounts on both portals.
_ACCOUNTS = (
    ("acme", _ACME, Scenario.NORMAL, 23, "23 monthly invoices (3 pages on Papeterie Dupont)"),
    ("acme-bis", _ACME, Scenario.NORMAL, 5, "second account of the same customer, 5 invoices"),
    (
        "perime",
        Customer("C-1003", "Boulangerie Martin", ("2 place du Marché", "38000 Grenoble")),
        Scenario.PASSWORD_EXPIRED,
        4,
        "password expired: the portal asks for a new one after login",
    ),
    (
        "cgv",
        Customer("C-1004", "Cabinet Leroy Avocats", ("17 cours Lafayette", "69003 Lyon")),
        Scenario.TERMS,
        4,
        "new terms to accept after login (only the account holder may accept)",
    ),
    (
        "instable",
        Customer("C-1005", "Garage du Centre", ("45 route de Vienne", "69007 Lyon")),
        Scenario.INTERMITTENT,
        4,
        "every other request to the invoice list answers 503; the retry works",
    ),
    (
        "lent",
        Customer("C-1006", "Pharmacie des Lilas", ("3 rue des Lilas", "75019 Paris")),
        Scenario.SLOW,
        4,
        "every page after login takes 1.5 s",
    ),
    (
        "nouveau-site",
        Customer("C-1007", "Atelier Bernard", ("9 impasse des Tanneurs", "67000 Strasbourg")),
        Scenario.CHANGED_LAYOUT,
        4,
        "the invoice list has a new layout the connector does not know",
    ),
    (
        "pas-pdf",
        Customer("C-1008", "Librairie Moreau", ("21 rue Sainte-Catherine", "33000 Bordeaux")),
        Scenario.NOT_PDF,
        4,
        "the newest invoice downloads as an HTML error page (status 200)",
    ),
    (
        "bloque",
        Customer("C-1009", "Fleurs & Cie", ("6 allée des Roses", "44000 Nantes")),
        Scenario.LOCKED,
        3,
        f"locked from the start, as after {MAX_FAILED_LOGINS} wrong passwords",
    ),
)


def accounts_of(supplier: Supplier) -> dict[str, Account]:
    """The supplier's demo accounts by login; passwords are fake demo values."""
    accounts = {}
    for index, (stem, customer, scenario, count, description) in enumerate(_ACCOUNTS):
        login = supplier.login_format.format(stem=stem)
        password = supplier.password_format.format(stem=stem)
        accounts[login] = Account(login, password, customer, scenario, count, 1001 + index, description)
    return accounts


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


class PortalState:
    """One portal's memory. Not thread-safe by design: the portals' handlers are coroutines on one loop."""

    def __init__(self, supplier: Supplier) -> None:
        self.supplier = supplier
        self.accounts = accounts_of(supplier)
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

    # -- invoices ----------------------------------------------------------------------------
    def invoices(self, login: str, since: date | None = None) -> list[Invoice]:
        """The account's invoices, newest first."""
        found = sorted(self._invoices[login], key=lambda invoice: (invoice.issued, invoice.number), reverse=True)
        return [invoice for invoice in found if since is None or invoice.issued >= since]

    def find_invoice(self, number: str) -> tuple[str, Invoice] | None:
        """The invoice with this number and the login that owns it."""
        for login, invoices in self._invoices.items():
            for invoice in invoices:
                if invoice.number == number:
                    return login, invoice
        return None

    def add_invoice(self, login: str, issued: date | None = None, amount: Decimal | None = None) -> Invoice:
        """A new invoice: next month after the newest by default; one line when the amount is imposed."""
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
            number = self.supplier.number_format.format(code=account.code, seq=seq)
            line = InvoiceLine("Facture complémentaire", Decimal(1), total_ht)
            invoice = Invoice(number, issued, account.customer, (line,), total_ttc)
        existing.append(invoice)
        return invoice

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
            }
            for login, account in self.accounts.items()
        ]
