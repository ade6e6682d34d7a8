"""The kit's listing in a real Chromium: a list showing the amount due, its totals read on the invoice pages;
and a download from a portal whose certificate nobody vouches for.

A plain HTTP server on a free port serves the saved pages of ``tests/fixtures/pages/kit`` (no login: the
listing is what is under test); the list is sent without ``<tbody>``, which Chromium adds.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from connectors.kit import Connector, DetailTotal, HtmlTable, LoginForm, Page, Provider, amounts, dates
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
