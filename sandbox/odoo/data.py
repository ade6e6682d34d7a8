"""The Odoo sandbox's suppliers, customers and invoices: fixed, computed from formulas like :mod:`sandbox.data`.

Each supplier runs its own Odoo (its own address, its own version); customers log in with an
e-mail address, as on a real Odoo portal. An invoice has an Odoo-style number (``INV/2026/00012``),
an integer record id, an access token (a UUID, as ``portal.mixin`` draws one, here derived from
the supplier and the id so that saved pages stay the same) and a payment state: the newest
invoice is not paid, the one before is partly paid (so that its amount due is neither 0 nor its
total), the older ones are paid. The list shows the amount due; only the invoice (its page on
18.0 and master, its PDF on every version) shows the total.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from sandbox.data import CATALOGUE, CENT, Account, Invoice, Scenario, Supplier, add_months, customer, priced, supplier

VERSIONS = ("16.0", "17.0", "18.0", "master")  # master: the branch Odoo Online's saas releases are cut from
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


ODOO_SUPPLIERS = {
    slug: OdooSupplier(supplier(slug), version=entry["odoo_version"])
    for slug, entry in CATALOGUE["suppliers"].items()
    if "odoo_version" in entry
}


def odoo_accounts(odoo: OdooSupplier) -> dict[str, Account]:
    accounts = {}
    for index, entry in enumerate(CATALOGUE["odoo_accounts"]):
        login = odoo.supplier.login_format.format(stem=entry["stem"])
        password = odoo.supplier.password_format.format(stem=entry["stem"])
        accounts[login] = Account(login, password, customer(entry["customer"]), Scenario.NORMAL, entry["invoices"],
                                  101 + index, entry["description"])
    return accounts


def access_token(odoo: OdooSupplier, record_id: int) -> str:
    return str(uuid.UUID(bytes=hashlib.sha256(f"{odoo.slug}/{record_id}".encode()).digest()[:16], version=4))


def make_invoice(odoo: OdooSupplier, account: Account, seq: int, issued: date, record_id: int,
                 total: Decimal | None = None, newest: int = 0) -> OdooInvoice:
    """Invoice ``seq`` of the account; ``newest`` counts from the newest (0: not paid, 1: partly paid)."""
    number = odoo.supplier.number_format.format(year=issued.year, code=account.code, seq=seq)
    invoice = priced(number, issued, account.customer, odoo.supplier.lines(account.code, seq, issued))
    if total is not None:
        invoice = Invoice(number, issued, account.customer, invoice.lines, total.quantize(CENT, ROUND_HALF_UP))
    residual = {0: invoice.total_ttc, 1: (invoice.total_ttc * Decimal("0.4")).quantize(CENT)}.get(newest, Decimal(0))
    return OdooInvoice(record_id, invoice, residual, access_token(odoo, record_id))


def initial_invoices(odoo: OdooSupplier, account: Account, first_id: int) -> list[OdooInvoice]:
    """One invoice a month, the newest in :data:`NEWEST_MONTH`; oldest first."""
    first = add_months(NEWEST_MONTH, 1 - account.invoice_count)
    count = account.invoice_count
    return [
        make_invoice(odoo, account, seq, add_months(first, seq - 1).replace(day=odoo.supplier.invoice_day),
                     first_id + seq - 1, newest=count - seq)
        for seq in range(1, count + 1)
    ]
