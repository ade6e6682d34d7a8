"""The Odoo sandbox's suppliers, customers and invoices: fixed, computed from formulas like :mod:`sandbox.data`.

Each supplier runs its own Odoo (its own address, its own version); customers log in with an
e-mail address, as on a real Odoo portal. An invoice has an Odoo-style number (``INV/2026/00012``),
an integer record id, an access token (a UUID, as ``portal.mixin`` draws one, here derived from
the supplier and the id so that saved pages stay the same) and a payment state: the newest
invoice is not paid, the one before is partly paid (so that its amount due is neither 0 nor its
total), the older ones are paid. The list shows the amount due; only the invoice (its page on
18.0, its PDF on every version) shows the total.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from sandbox.data import CENT, Customer, Invoice, InvoiceLine, Supplier, add_months, priced

VERSIONS = ("16.0", "17.0", "18.0")
PAYMENT_TERM = timedelta(days=30)
NEWEST_MONTH = date(2026, 10, 1)


@dataclass(frozen=True)
class OdooSupplier:
    """A supplier that runs Odoo: what it sells and how its customers log in."""

    supplier: Supplier  # its password_format is filled with the account's stem
    version: str = "18.0"

    @property
    def slug(self) -> str:
        return self.supplier.slug


@dataclass(frozen=True)
class OdooAccount:
    login: str
    password: str = field(repr=False)
    customer: Customer
    invoice_count: int
    code: int
    description: str


@dataclass(frozen=True)
class OdooInvoice:
    """An ``account.move`` as the portal shows it."""

    id: int
    invoice: Invoice  # number, date, lines, total (sandbox.data's, drawn by sandbox.pdfs)
    amount_residual: Decimal
    access_token: str

    @property
    def name(self) -> str:
        return self.invoice.number

    @property
    def amount_total(self) -> Decimal:
        return self.invoice.total_ttc

    @property
    def due(self) -> date:
        return self.invoice.issued + PAYMENT_TERM

    @property
    def payment_state(self) -> str:
        if self.amount_residual == 0:
            return "paid"
        return "partial" if self.amount_residual < self.amount_total else "not_paid"


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


INFOGERANCE_MARTIN = OdooSupplier(
    Supplier(
        slug="infogerance-martin",
        name="Infogérance Martin",
        address=("27 rue Garibaldi", "69006 Lyon"),
        legal="SIRET 823 456 789 00012 · TVA FR55 823456789",
        invoice_day=28,
        number_format="INV/{year}/{code}{seq:03d}",
        login_format="{stem}@client.test",
        password_format="martin-{stem}",
        code_channel="email",
        lines=_service_lines,
    ),
    version="17.0",
)

TRANSPORTS_GIRARD = OdooSupplier(
    Supplier(
        slug="transports-girard",
        name="Transports Girard",
        address=("Zone industrielle Nord", "38300 Bourgoin-Jallieu"),
        legal="SIRET 434 567 890 00034 · TVA FR71 434567890",
        invoice_day=15,
        number_format="FAC/{year}/{code}{seq:03d}",
        login_format="{stem}@client.test",
        password_format="girard-{stem}",
        code_channel="email",
        lines=_transport_lines,
    ),
    version="16.0",
)

ODOO_SUPPLIERS = {odoo.slug: odoo for odoo in (INFOGERANCE_MARTIN, TRANSPORTS_GIRARD)}

_ACME = Customer("C-1001", "ACME Industries SARL", ("4 quai Rambaud", "69002 Lyon"))
_ACCOUNTS = (
    ("acme", _ACME, 13, "13 monthly invoices (2 pages): the newest unpaid, the one before partly paid"),
    ("acme-bis", _ACME, 3, "second account of the same customer, 3 invoices"),
    ("nouveau", Customer("C-1013", "Atelier Roux", ("11 rue Mercière", "69002 Lyon")), 0, "a new customer: no invoice yet"),
)


def odoo_accounts(odoo: OdooSupplier) -> dict[str, OdooAccount]:
    accounts = {}
    for index, (stem, customer, count, description) in enumerate(_ACCOUNTS):
        login = odoo.supplier.login_format.format(stem=stem)
        accounts[login] = OdooAccount(
            login, odoo.supplier.password_format.format(stem=stem), customer, count, 101 + index, description
        )
    return accounts


def access_token(odoo: OdooSupplier, record_id: int) -> str:
    return str(uuid.UUID(bytes=hashlib.sha256(f"{odoo.slug}/{record_id}".encode()).digest()[:16], version=4))


def make_invoice(odoo: OdooSupplier, account: OdooAccount, seq: int, issued: date, record_id: int,
                 total: Decimal | None = None, newest: int = 0) -> OdooInvoice:
    """Invoice ``seq`` of the account; ``newest`` counts from the newest (0: not paid, 1: partly paid)."""
    number = odoo.supplier.number_format.format(year=issued.year, code=account.code, seq=seq)
    invoice = priced(number, issued, account.customer, odoo.supplier.lines(account.code, seq, issued))
    if total is not None:
        invoice = Invoice(number, issued, account.customer, invoice.lines, total.quantize(CENT, ROUND_HALF_UP))
    residual = {0: invoice.total_ttc, 1: (invoice.total_ttc * Decimal("0.4")).quantize(CENT)}.get(newest, Decimal(0))
    return OdooInvoice(record_id, invoice, residual, access_token(odoo, record_id))


def initial_invoices(odoo: OdooSupplier, account: OdooAccount, first_id: int) -> list[OdooInvoice]:
    """One invoice a month, the newest in :data:`NEWEST_MONTH`; oldest first."""
    first = add_months(NEWEST_MONTH, 1 - account.invoice_count)
    count = account.invoice_count
    return [
        make_invoice(odoo, account, seq, add_months(first, seq - 1).replace(day=odoo.supplier.invoice_day),
                     first_id + seq - 1, newest=count - seq)
        for seq in range(1, count + 1)
    ]
