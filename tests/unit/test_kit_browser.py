"""The kit's listing in a real Chromium: a list showing the amount due, its totals read on the invoice pages;
and a download from a portal whose certificate nobody vouches for.

A plain HTTP server on a free port serves the saved pages of ``tests/fixtures/pages/kit`` (no login: the
listing is what is under test); the list is sent without ``<tbody>``, which Chromium adds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from connectors.kit import (
    Connector,
    DetailTotal,
    HtmlTable,
    JsonList,
    LoginForm,
    NextKey,
    OffsetPages,
    Page,
    PageParam,
    Provider,
    amounts,
    dates,
)
from glaneur.contract import RemoteDocument
from glaneur.errors import PortalUnavailable, WrongCredentials
from glaneur.settings import get_settings
from tasks.browser import launch_browser
from tests.local_http import QuietHandler, self_signed_certificate, send_html, serving, tls_server_context

pytestmark = pytest.mark.slow

PAGES = Path(__file__).resolve().parents[1] / "fixtures" / "pages" / "kit"


class AmountDuePortal(Connector):
    provider = Provider(slug="amount-due", name="Amount Due Portal")
    login_form = LoginForm("/web/login", "form.oe_login_form", login="login", password="password",
                           refusals={"p.alert-danger": WrongCredentials})
    home = Page("/my", "a[href='/web/session/logout']")
    listing = HtmlTable(
        "/my/invoices",
        "table.o_portal_my_doc_table",
        columns={"Invoice #": "reference", "Invoice Date": ("document_date", dates("mdy")),
                 "Amount Due": ("amount_due", amounts("."))},
        link="a.o_download_btn",
        total_on_detail=DetailTotal("td:first-child a", Page("/my/invoices/0", "div.o_portal_html_view",
                                                                  r"/my/invoices/\d+"),
                                    total="tr.o_total td.text-end .oe_currency_value", parser=amounts(".")),
    )


class Pages(QuietHandler):
    served: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (the http.server name)
        path = self.path.split("?")[0]
        Pages.served.append(path)
        name = {"/my/invoices": "amount_due_list.html"}.get(path, "amount_due_invoice.html")
        send_html(self, (PAGES / name).read_bytes())

@pytest.fixture
def portal() -> Iterator[str]:
    with serving(Pages) as url:
        yield url


def test_the_totals_come_from_the_invoice_pages_never_from_the_amount_due(portal: str) -> None:
    Pages.served.clear()
    with launch_browser(get_settings()) as browser:
        context = browser.new_context()
        documents = AmountDuePortal(context.new_page(), portal).list_documents(date(2026, 1, 1))
        context.close()

    assert [(d.reference, d.document_date, d.amount) for d in documents] == [
        ("INV/2026/00014", date(2026, 2, 3), Decimal("1200.00")),  # the saved invoice page serves both
        ("INV/2026/00012", date(2026, 1, 15), Decimal("1200.00")),  # paid: the list said 0.00
    ]
    pages = [path for path in Pages.served if path.startswith("/my")]  # not the browser's /favicon.ico
    assert pages == ["/my/invoices", "/my/invoices/14", "/my/invoices/12"]


class Scripted(QuietHandler):
    """A page whose script adds the list after load, as many portals do."""

    def do_GET(self) -> None:  # noqa: N802 (the http.server name)
        send_html(self, b"<p class='erreur'>Compte bloqu\xc3\xa9</p><div id='liste'></div><script>"
                        b"addEventListener('load', () => { document.getElementById('liste').innerHTML = "
                        b"'<table id=factures><tr><td>F-1</td></tr></table>'; });</script>")

def test_the_page_is_read_from_its_live_dom_and_playwright_selectors_still_work() -> None:
    """``has`` and ``html`` ask the page's DOM (no Playwright script injected per page: bench/chromium_cost.py)."""
    with serving(Scripted) as url, launch_browser(get_settings()) as browser:
        context = browser.new_context()
        connector = AmountDuePortal(context.new_page(), url)
        connector.goto("/")
        connector.page.wait_for_selector("table#factures")
        assert connector.has("table#factures tbody td")  # what the script added, with the tbody Chromium adds
        assert not connector.has("table#autre")
        assert connector.has("p.erreur:has-text('bloqué')")  # Playwright's own syntax goes to Playwright
        assert not connector.has("p.erreur:has-text('expiré')")
        assert "<td>F-1</td>" in connector.html() and "Compte bloqué" in connector.html()
        context.close()


class Pdf(QuietHandler):
    fetched = 0

    def do_GET(self) -> None:  # noqa: N802 (the http.server name)
        Pdf.fetched += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/pdf")
        self.send_header("Content-Length", "9")
        self.end_headers()
        self.wfile.write(b"%PDF-1.4\n")

def test_a_download_from_a_portal_with_a_certificate_nobody_vouches_for_is_refused_every_time(tmp_path, monkeypatch):
    """Downloads share one trust store a process (loading it cost ~30 ms of CPU a download): it still checks
    each portal, and a certificate the process environment trusts (SSL_CERT_FILE) is no exception."""
    cert_file, key_file = self_signed_certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))  # downloads go as the browser does, not by the environment
    Pdf.fetched = 0
    document = RemoteDocument("F-1", date(2026, 1, 15), "/factures/F-1.pdf", Decimal("12.00"))
    with serving(Pdf, tls=tls_server_context(cert_file, key_file)) as url, launch_browser(get_settings()) as browser:
        context = browser.new_context()
        connector = AmountDuePortal(context.new_page(), url)
        for _ in range(2):
            with pytest.raises(PortalUnavailable, match="could not be reached during the download of F-1 .ConnectError"):
                connector.fetch(document)
        context.close()
    assert Pdf.fetched == 0


class Forms(QuietHandler):
    """A form submitted with ``<input type=submit>`` (as Rails and Devise portals write it), and one with no
    control to press at all."""

    def do_GET(self) -> None:  # noqa: N802 (the http.server name)
        control = "" if self.path == "/bare" else "<input type=submit name=commit value='Log in'>"
        send_html(self, f"<form id=f method=post action=/done><input name=login>{control}</form>".encode())

    def do_POST(self) -> None:  # noqa: N802
        send_html(self, b"<p id=done>signed in</p>")

def test_a_form_is_submitted_by_whichever_control_it_has_and_one_without_is_a_changed_portal() -> None:
    from connectors.kit import SUBMIT
    from glaneur.errors import PortalChanged

    with serving(Forms) as url, launch_browser(get_settings()) as browser:
        context = browser.new_context()
        connector = AmountDuePortal(context.new_page(), url)
        connector.goto("/")
        connector.submit(f"form#f {SUBMIT}", what="the login form")
        assert connector.has("p#done")
        connector.goto("/bare")
        connector.page.set_default_timeout(60_000)  # a click waiting for a control would take this long
        with pytest.raises(PortalChanged, match="the login form has no form#f .* to press"):
            connector.submit(f"form#f {SUBMIT}", what="the login form")
        context.close()


class PagedApi(QuietHandler):
    """A client area whose API pages its 45 invoices by offset, by page number, or by a next address;
    ``/stuck`` answers the same first page whatever it is asked."""

    items = [{"id": 45 - i, "issued": f"2026-{12 - i // 4:02d}-{4 - i % 4:02d}", "total": {"amount": f"{10 + i}.50",
              "currency": "CHF"}} for i in range(45)]
    asked: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (the http.server name)
        from urllib.parse import parse_qs, urlsplit

        parts = urlsplit(self.path)
        query = {name: int(values[0]) for name, values in parse_qs(parts.query).items()}
        if not parts.path.startswith("/api"):
            send_html(self, b"<main id=espace>Rechnungen</main>")
            return
        PagedApi.asked.append(self.path)
        if parts.path == "/api/by-page":
            start = (query.get("page", 1) - 1) * 20
            answer: dict = {"data": self.items[start:start + 20]}
        elif parts.path == "/api/by-link":
            start = query.get("from", 0)
            following = f"/api/by-link?from={start + 20}" if start + 20 < len(self.items) else None
            answer = {"data": self.items[start:start + 20], "links": {"next": following}}
        else:
            start = 0 if parts.path == "/api/stuck" else query.get("offset", 0)
            answer = {"data": self.items[start:start + min(query.get("limit", 20), 20)]}
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def api_portal(api: str, pages: object) -> type[Connector]:
    class Paged(Connector):
        provider = Provider(slug="paged", name="Paged API")
        login_form = AmountDuePortal.login_form
        home = Page("/", "main#espace")
        listing = JsonList("/", "main#espace", api, {"reference": "id", "document_date": "issued",
                                                     "amount": "total.amount", "currency": "total.currency"},
                           items="data", download="/api/{reference}.pdf", pages=pages)
    return Paged


@pytest.mark.parametrize(("api", "pages", "asked"), [
    ("/api/by-offset", OffsetPages(), 3),
    ("/api/by-page", PageParam(), 4),  # the last page is known by the empty one after it
    ("/api/by-link", NextKey("links.next"), 3),
])
def test_a_paged_json_api_is_read_to_its_last_page(api: str, pages: object, asked: int) -> None:
    with serving(PagedApi) as url, launch_browser(get_settings()) as browser:
        context = browser.new_context()
        listing = api_portal(api, pages)(context.new_page(), url).list_documents(None)
        context.close()
    assert len(listing) == 45 == len({d.reference for d in listing}) and listing.pages == asked
    assert (listing[0].reference, listing[0].amount, listing[0].currency) == ("45", Decimal("10.50"), "CHF")


def test_a_paged_api_longer_than_a_run_reads_goes_on_next_time_and_one_that_loops_is_a_changed_portal(monkeypatch):
    from glaneur.errors import PortalChanged

    monkeypatch.setenv("GLANEUR_MAX_LIST_PAGES", "2")
    get_settings.cache_clear()
    try:
        with serving(PagedApi) as url, launch_browser(get_settings()) as browser:
            context = browser.new_context()
            connector = api_portal("/api/by-offset", OffsetPages())(context.new_page(), url)
            first = connector.list_documents(None)
            rest = connector.list_documents(None, first.left_at)
            with pytest.raises(PortalChanged, match="came back to a page already read"):
                api_portal("/api/stuck", OffsetPages())(context.new_page(), url).list_documents(None)
            context.close()
    finally:
        get_settings.cache_clear()
    assert (len(first), first.left_at, len(rest), rest.left_at) == (40, "/api/by-offset?offset=40&limit=20", 5, None)
    assert {d.reference for d in first} | {d.reference for d in rest} == {str(n) for n in range(1, 46)}
