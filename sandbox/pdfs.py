"""Real, deterministic PDF invoices drawn with reportlab.

``invariant=1`` makes reportlab leave out its creation date and random document id, so the same
invoice always gives the same bytes: filing can be tested for idempotence (same sha256) and a
changed byte means a changed invoice.
"""

from __future__ import annotations

from functools import lru_cache
from io import BytesIO

from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from sandbox.data import Invoice, Supplier, french_amount

_LEFT = 20 * mm
_RIGHT = A4[0] - 20 * mm


@lru_cache(maxsize=512)
def invoice_pdf(supplier: Supplier, invoice: Invoice) -> bytes:
    """The invoice as a one-page A4 PDF: supplier, customer, number, date, lines, totals."""
    buffer = BytesIO()
    canvas = Canvas(buffer, pagesize=A4, invariant=1)
    canvas.setTitle(f"Facture {invoice.number}")
    canvas.setAuthor(supplier.name)
    canvas.setSubject(f"Facture {invoice.number} du {invoice.issued:%d/%m/%Y} pour {invoice.customer.name}")
    canvas.setCreator("Glaneur sandbox")

    top = A4[1] - 25 * mm
    canvas.setFont("Helvetica-Bold", 18)
    canvas.drawString(_LEFT, top, supplier.name)
    canvas.setFont("Helvetica", 10)
    for i, line in enumerate(supplier.address):
        canvas.drawString(_LEFT, top - (6 + 5 * i) * mm, line)

    canvas.setFont("Helvetica-Bold", 14)
    canvas.drawRightString(_RIGHT, top, "FACTURE")
    canvas.setFont("Helvetica", 10)
    canvas.drawRightString(_RIGHT, top - 6 * mm, f"N° {invoice.number}")
    canvas.drawRightString(_RIGHT, top - 11 * mm, f"Date : {invoice.issued:%d/%m/%Y}")

    y = top - 35 * mm
    canvas.setFont("Helvetica-Bold", 10)
    canvas.drawString(A4[0] / 2, y, invoice.customer.name)
    canvas.setFont("Helvetica", 10)
    for i, line in enumerate((f"Client n° {invoice.customer.number}", *invoice.customer.address), start=1):
        canvas.drawString(A4[0] / 2, y - 5 * i * mm, line)

    y -= 35 * mm
    columns = (_LEFT, _RIGHT - 75 * mm, _RIGHT - 40 * mm, _RIGHT)
    canvas.setFont("Helvetica-Bold", 10)
    canvas.drawString(columns[0], y, "Désignation")
    canvas.drawRightString(columns[1], y, "Qté")
    canvas.drawRightString(columns[2], y, "PU HT")
    canvas.drawRightString(columns[3], y, "Total HT")
    canvas.line(_LEFT, y - 2 * mm, _RIGHT, y - 2 * mm)
    canvas.setFont("Helvetica", 10)
    for line in invoice.lines:
        y -= 7 * mm
        canvas.drawString(columns[0], y, line.label)
        canvas.drawRightString(columns[1], y, f"{line.quantity}")
        canvas.drawRightString(columns[2], y, f"{line.unit_price}".replace(".", ",") + " €")
        canvas.drawRightString(columns[3], y, french_amount(line.total))

    y -= 12 * mm
    for label, amount in (("Total HT", invoice.total_ht), ("TVA 20 %", invoice.vat), ("Total TTC", invoice.total_ttc)):
        canvas.setFont("Helvetica-Bold" if label == "Total TTC" else "Helvetica", 10)
        canvas.drawRightString(columns[2], y, label)
        canvas.drawRightString(columns[3], y, french_amount(amount))
        y -= 6 * mm

    canvas.setFont("Helvetica", 8)
    canvas.drawString(_LEFT, 15 * mm, f"{supplier.name} · {supplier.legal}")
    canvas.drawString(_LEFT, 11 * mm, "Document fictif produit par le bac à sable de Glaneur.")
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()
