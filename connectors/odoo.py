"""Odoo's customer portal: a platform that each supplier runs at its own address (the channel's ``--portal-url``).

``/web/login``, then ``/my/invoices`` (``table.o_portal_my_doc_table``, the ``ul.pagination`` pager), one
PDF per invoice: its page's address (in the row's link, with its access token) plus
``&report_type=pdf&download=true``. Markup of Odoo 16.0, 17.0, 18.0 and master (Odoo Online's saas
releases), checked against the official templates of master (``sandbox.odoo`` names the sources). The
list shows the amount DUE (0 once paid), never taken for the amount: 18.0 and master show the total
on the invoice's page (``h2.text-break``), read there; 16.0 and 17.0 show the amount due there too
while one is left, so their amount stays empty rather than wrong. Column headers are read in English
(Odoo's own strings). From 18.0 the login form is hidden until Odoo's script shows it: filling it
waits for that, as for any field.

Odoo's login cool-down ("Too many login failures, please wait a bit before trying again.") is
``RateLimited``, retried once it is over: Odoo counts failed logins per source address (any
account's, Glaneur's one address for every channel on that portal), and after
``base.login_cooldown_after`` of them refuses every login from that address, unchecked and
uncounted, for ``base.login_cooldown_duration`` (60 s by default) after the last. Glaneur never
retries a wrong password, so the password of the account that meets it may well be right: neither
``WrongCredentials`` nor ``AccountLocked`` (a person told to unlock an account that unlocks itself
within the minute) would be true. The retry waits :attr:`Odoo.cooldown_seconds` first, so that it
is checked: logged in (which clears the count), or ``WrongCredentials``, never retried.
"""

import dataclasses
from datetime import date

from connectors.kit import Connector, DetailTotal, HtmlTable, Listing, LoginForm, NextLink, Page, Provider
from glaneur.errors import GlaneurError, RateLimited, WrongCredentials

provider = Provider(
    slug="odoo",
    name="Odoo customer portal",
    platform=True,
    login_fields=("login", "password"),
    description="Platform: the customer portal of the Odoo ERP (16.0 to 18.0 and master), run by each supplier at its "
    "own address, given with --portal-url; PDF invoices under My Account > Invoices.",
)

_ROW_LINK = "a[href*='access_token=']"


class Odoo(Connector):
    provider = provider
    cooldown_seconds = 60.0  # Odoo's default base.login_cooldown_duration: the retry comes after it
    login_form = LoginForm(
        "/web/login", "form.oe_login_form", login="login", password="password",
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

    @classmethod
    def login_refusal(cls, html: str) -> GlaneurError:
        error = super().login_refusal(html)
        if isinstance(error, RateLimited):  # Odoo does not say how long: its default cool-down (the kit waits it out)
            error.retry_after = cls.cooldown_seconds
        return error

    def list_documents(self, since: date | None, start: str | None = None) -> Listing:
        self.goto(self.listing.path)
        if self.expect_page("invoices", "no_invoices") == "no_invoices":
            return Listing()
        total_shown = self.has("th[name=amount_due]")  # 18.0+: the invoice page shows the total
        listing = self.listing if total_shown else dataclasses.replace(self.listing, total_on_detail=None)
        pdf = "&report_type=pdf&download=true"
        read = listing.read(self, since, start, here=True)
        return Listing([dataclasses.replace(d, download_url=d.download_url + pdf) for d in read],
                       left_at=read.left_at, pages=read.pages)
