"""Odoo's customer portal: a platform that each supplier runs at its own address (the channel's ``--portal-url``).

``/web/login``, then ``/my/invoices`` (``table.o_portal_my_doc_table``, the ``ul.pagination`` pager), one
PDF per invoice: its page's address (in the row's link, with its access token) plus
``&report_type=pdf&download=true``. Markup of Odoo 16.0, 17.0 and 18.0. The list shows the amount
DUE (0 once paid), never taken for the amount: Odoo 18.0 shows the total on the invoice's page
(``h2.text-break``), read there; 16.0 and 17.0 show the amount due there too while one is left, so
their amount stays empty rather than wrong. Column headers are read in English (Odoo's own strings).
"""

import dataclasses
from datetime import date

from connectors.kit import Connector, DetailTotal, HtmlTable, Listing, LoginForm, NextLink, Page, Provider
from glaneur.errors import RateLimited, WrongCredentials

provider = Provider(
    slug="odoo",
    name="Odoo customer portal",
    platform=True,
    login_fields=("login", "password"),
    description="Platform: the customer portal of the Odoo ERP (16.0 to 18.0), run by each supplier at its own "
    "address, given with --portal-url; PDF invoices under My Account > Invoices.",
)

_ROW_LINK = "a[href*='access_token=']"


class Odoo(Connector):
    provider = provider
    login_form = LoginForm(
        "/web/login",
        "form.oe_login_form",
        login="login",
        password="password",
        refusals={  # Odoo's login cool-down after repeated failures, then a wrong login or password
            'p.alert-danger:-soup-contains("Too many login failures")': RateLimited,
            "p.alert-danger": WrongCredentials,
        },
    )
    home = Page("/my", "a#o_logout", pattern=r"/my(/home)?")
    listing = HtmlTable(
        "/my/invoices",
        "table.o_portal_my_doc_table",
        columns={"Invoice #": "reference", "Invoice Date": "document_date", "Amount Due": "amount_due"},
        link=_ROW_LINK,
        pages=NextLink("ul.pagination > li:last-child > a[href]"),
        pattern=r"/my/invoices(/page/\d+)?",
        empty="#wrap nav.o_portal_navbar ~ p",  # "There are currently no invoices..." (a bare <p> on 16.0)
        total_on_detail=DetailTotal(
            _ROW_LINK, Page("/my/invoices", "#sidebar_content", pattern=r"/my/invoices/\d+"), "#sidebar_content h2.text-break"
        ),
    )

    def list_documents(self, since: date | None, start: str | None = None) -> Listing:
        self.goto(self.listing.path)
        if self.expect_page("invoices", "no_invoices") == "no_invoices":
            return Listing()
        total_shown = self.page.locator("th[name=amount_due]").count() > 0  # 18.0: the invoice page shows the total
        listing = self.listing if total_shown else dataclasses.replace(self.listing, total_on_detail=None)
        pdf = "&report_type=pdf&download=true"
        read = listing.read(self, since, start)
        return Listing([dataclasses.replace(d, download_url=d.download_url + pdf) for d in read],
                       left_at=read.left_at, pages=read.pages)
