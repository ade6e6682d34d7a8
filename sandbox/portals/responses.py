"""What both portals answer alike: the slow account's pace, an invoice's PDF (or the error page in its place), and the
303 a dependency asks for (:class:`Redirect`)."""

import asyncio
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from sandbox.data import Invoice, PortalState, Scenario
from sandbox.pdfs import invoice_pdf

SLOW_SECONDS = 1.5  # delay of every page of the slow account


class Redirect(Exception):
    """Raised by a dependency to send the browser elsewhere (login page, pending step) with a 303."""

    def __init__(self, location: str) -> None:
        self.location = location


def answer_redirects(app: FastAPI) -> None:
    """Make ``app`` answer a :class:`Redirect` raised by a dependency."""

    @app.exception_handler(Redirect)
    async def redirect(_: Request, exc: Redirect) -> Response:
        return RedirectResponse(exc.location, 303)


async def pace(state: PortalState, login: str) -> None:
    """The slow account's pages take :data:`SLOW_SECONDS`, like an overloaded portal; an unknown login is not slowed."""
    account = state.accounts.get(login)
    if account is not None and account.scenario is Scenario.SLOW:
        await asyncio.sleep(SLOW_SECONDS)


def pdf_response(state: PortalState, login: str, invoice: Invoice) -> Response:
    if state.broken_download(login, invoice.number):  # what real portals do when their PDF service is down
        page = "<h1>Erreur</h1><p>Le document est temporairement indisponible. Réessayez plus tard.</p>"
        return HTMLResponse(f"<!doctype html><html lang='fr'><body>{page}</body></html>", 200)
    return Response(
        invoice_pdf(state.supplier, invoice),
        media_type="application/pdf",
        headers={"Content-Disposition": _attachment(invoice.number)},
    )


def _attachment(number: str) -> str:
    """``filename="FA-001.pdf"``; a number a header cannot carry as is (newlines, quotes) percent-encoded (RFC 6266)."""
    if number.isprintable() and number.isascii() and '"' not in number and "\\" not in number:
        return f'attachment; filename="{number}.pdf"'
    return f"attachment; filename*=UTF-8''{quote(number, safe='')}.pdf"
