"""The connector kit: a supplier portal described as data, in one short module.

Writing a connector
===================
A connector is one module in ``connectors/`` with a :class:`~glaneur.contract.Provider` and a
subclass of :class:`Connector` that declares the portal's pages; one line in
:mod:`connectors.catalog` registers it, and its saved pages under
``tests/fixtures/pages/<slug>/`` (with their ``pages.json``) are checked by
``tests/unit/test_connector_contract.py``; the unit suite also runs every connector's page readers
on damaged and hostile pages (``tests/unit/test_fuzz_parsers.py``): an override that reads a page
raises only errors of :mod:`glaneur.errors` (``PortalChanged``). Everything comes from this module::

    from connectors.kit import Connector, HtmlTable, LoginForm, NextLink, Page, Provider
    from glaneur.errors import AccountLocked, WrongCredentials

    provider = Provider(slug="bureau-plus", name="Bureau Plus", default_url="https://clients.bureau-plus.fr",
                        description="Office furniture: PDF invoices in the client area.")

    class BureauPlus(Connector):
        provider = provider
        login_form = LoginForm("/connexion", "form#login", login="email", password="password",
                               refusals={".alert.locked": AccountLocked, ".alert": WrongCredentials})
        home = Page("/compte", "a[href='/deconnexion']")
        listing = HtmlTable("/compte/factures", "table.invoices",
                            columns={"N°": "reference", "Date": "document_date", "Total TTC": "amount"},
                            link="a[href$='.pdf']", pages=NextLink("a[rel=next]"))

What to declare
---------------
``login_form`` (:class:`LoginForm`)
    The login page's address, the form, the names of its two fields, and its **refusals as data**:
    CSS selector -> typed error of :mod:`glaneur.errors` (``WrongCredentials``, ``AccountLocked``...),
    tried in order; the portal's own words go into the message. The selectors are soupsieve's CSS
    (``p.erreur:-soup-contains("bloqué")`` matches on text). A login page that comes back with none of
    them is ``PortalChanged``. ``submit`` is the control pressed within the form (by default any
    submit button or ``<input type=submit>``); a form without it is ``PortalChanged`` at once.
    ``marker``: a selector only the login page has (by default the form's password field).
``home`` (:class:`Page`)
    Where a logged-in user lands: its address and a selector only it has (the logout link).
``listing``
    :class:`HtmlTable` (a ``<table>``: column -> field, the download link in each row, pagination
    :class:`NextLink` or :class:`PageNumbers`) or :class:`JsonList` (the portal's own JSON API, asked
    through the logged-in browser context after its page showed). Fields are those of
    :class:`RemoteDocument`: ``reference``, ``document_date``, ``amount``, ``currency``, ``label``;
    ``amount_due`` names a column that shows what is left to pay (0.00 once paid): it is **never**
    recorded as the amount, which then stays empty unless ``total_on_detail`` (:class:`DetailTotal`)
    says where the invoice's total is. A field's parser is :func:`parse_date` / :func:`parse_amount`
    by default: amounts written ``1 234,56 €`` or ``1.234,56``; dates ISO, ``dd/mm/yyyy``, ``12 janv.
    2026``, ``Jan 12, 2026``. Give ``(field, parser)`` for another one (``amounts(".")`` for
    ``$1,234.56``, ``dates("mdy")`` for ``01/12/2026``), also for an ``amount_due`` column: it is read,
    then dropped. The table's rows are found with or without ``<tbody>`` (Chromium adds one
    that the server's HTML may lack, so saved pages and the live page read alike).

    *Columns* are named by their header's exact text (white space folded), or by position (``0``
    is a row's first cell) when headers are missing, empty, icons or translated: ``columns={0:
    "reference", "Date": "document_date"}``. A named column the table lacks is ``PortalChanged``.

    *The download address*: ``link`` is the selector of the link in each row (its ``href``, relative
    to the page, is fetched). When the row has no link but the address follows from the row's values,
    declare ``download="/factures/{reference}/pdf"`` instead (values URL-quoted, dates ISO); a row
    with neither is ``PortalChanged``. :class:`JsonList` takes the same ``download=`` when no key
    gives ``download_url``. An address that needs more (a query suffix, a token from another page)
    is an override of ``list_documents`` that rewrites ``download_url``
    (``dataclasses.replace(document, download_url=...)``: see :mod:`connectors.odoo`).

    *The currency* is, for each row, its ``currency`` column, else the one its amounts show (``$``,
    ``USD``, ``£``, ``€``, ``CHF``), else the listing's ``currency`` (``"EUR"`` by default: declare
    ``currency="USD"`` for a portal whose amounts show none). An amount showing another currency than
    its row's is ``PortalChanged``, never a dollar filed as a euro.

    *Pagination*: ``NextLink("a[rel=next]")`` follows a "next" link until a page has none;
    ``PageNumbers("/factures?page={n}")`` goes on while a page links to the next number (the first
    page may be the bare list address).

    *A JSON API* (:class:`JsonList`): field -> key of each item, dotted for a nested one
    (``"amount": "total.amount"``), ``"key?"`` for one that may be absent. An API that pages its
    answer (look for ``limit``, ``offset``, ``page``, a ``next`` address or a ``total`` count in it)
    declares how: ``pages=OffsetPages("offset", "limit", size=20)``, ``PageParam("page")`` or
    ``NextKey("links.next")``. **Without** ``pages`` one answer must hold the whole list: an API that
    silently returns its first 20 invoices would lose the others.

    *An empty list*: a portal that shows a message instead of an empty table would be
    ``PortalChanged`` (the table is the list page's marker). Declare that message's selector:
    ``empty="p.no-invoice"``; the page is then recognised as ``no_invoices`` and read as no document.

    *A total on the invoice's own page*: ``total_on_detail=DetailTotal(link, page, total,
    parser=...)``, where ``link`` is the selector of the row's link to its invoice page, ``page`` that
    page as a :class:`Page` (any one invoice's address, a marker, and ``pattern``, the regex of every
    invoice page's path), ``total`` the selector of the total there, ``parser`` as for columns. The
    page is named ``invoice_detail`` (in ``pages.json``). One page load per listed invoice, and **all
    or nothing**: a row without the detail link, or a detail page without the total, is
    ``PortalChanged`` for the whole listing (nothing is filed with a guessed amount). With
    ``optional=True`` a row without the link keeps an empty amount instead.
Only when the portal has them (**a page the portal does not have is simply not declared**):
``second_factor`` (:class:`SecondFactorForm`), ``terms`` (new terms only the account holder may
accept: ``ActionNeeded``) and ``password_expired`` (``CredentialsExpired``), each a :class:`Page`.
The names of the pages they declare (what ``pages.json`` says in ``is``): ``login``, ``home``,
``invoices``, ``no_invoices`` (``empty=``), ``invoice_detail`` (``total_on_detail``),
``second_factor``, ``code_expired`` (``SecondFactorForm.expired``), ``terms``, ``new_password``
(``password_expired``); :meth:`Connector.declared_pages` lists them.
``Provider.second_factor_kinds`` lists the kinds the form may ask, and a provider without kinds
declares no form (the contract test checks both ways). ``SecondFactorForm(path, form, prompt=,
refusals=)``: its address, the form, the selector of the portal's own words asking for the code, the
refusals read after an answer (a wrong code; the login page again, when the portal dropped the pending
login: ``AwaitingSecondFactor``), and, where they differ, ``code`` (the field's name, ``"code"``),
``resend`` and ``expired`` (see the class). A portal that keeps its pending login in a cookie, so
that a code typed later by a person can still be answered, sets ``resumable_second_factor = True``.

An unusual portal overrides one method of :class:`Connector` (``list_documents``, ``login``...)
and keeps the rest; the page-reading classmethods (:meth:`Connector.parse_listing`,
:meth:`Connector.login_refusal`, :meth:`Connector.parse_second_factor`,
:meth:`Connector.second_factor_refusal`, :meth:`Connector.recognise`) are pure functions of a page,
which is what the contract test runs on the saved pages (the declared listings read the pages they
load with their own ``parse``: override ``list_documents`` to change what a collection reads, not
``parse_listing`` alone). An override that must tell apart a page
the declarations do not know adds it to ``extra_pages`` (name -> :class:`PageSpec`, exported here:
an address regex and a selector only that page has), then asks ``self.expect_page("invoices",
"that_name")``, which answers the name of the page reached.

Which refusals are retried
--------------------------
A step that fails is retried by Prefect (backoff, ``GLANEUR_RETRIES``) only when its error's status
is marked retried in :mod:`glaneur.statuses`, as ``tasks.collect.is_transient`` (the tasks'
``retry_condition_fn``) reads it: ``PortalUnavailable`` (5xx, a page still loading at the timeout,
a browser timeout or a refused connection) and ``RateLimited`` (429), unless the portal's
``Retry-After`` is longer than ``GLANEUR_MAX_RETRY_AFTER_SECONDS`` (then tomorrow's run catches
up); ``StorageError`` too, on the filing side. **Nothing else is retried**: ``WrongCredentials``,
``AccountLocked``, ``CredentialsExpired``, ``ActionNeeded``, the second-factor errors,
``PortalChanged`` (and ``InvalidDocument``), and any exception that is not a Glaneur error. So map
a refusal to ``RateLimited`` or ``PortalUnavailable`` only when trying again later can work: a
credential refusal retried locks the account at the supplier. A block that lifts by itself and
does not say whose password was wrong (Odoo's login cool-down, counted per source address) is
``RateLimited`` with a ``retry_after`` long enough for the retry to be checked, not ``AccountLocked``
(a person told to unlock what unlocks itself): see :mod:`connectors.odoo`.

Saved pages and ``pages.json``
------------------------------
``tests/fixtures/pages/<slug>/`` holds the pages as the portal served them (HTML, or the JSON its
API answered), saved without the account's secrets, and ``pages.json`` says what the connector must
make of each (the rules :mod:`tests.unit.test_connector_contract` checks)::

    {"login_erreur.html": {"path": "/login", "is": ["login"], "login_refusal": "WrongCredentials"},
     "factures_page1.html": {"path": "/factures?page=1", "is": ["home", "invoices"],
                             "listing": {"count": 10, "first": {"reference": "PD-1001-0023",
                                                                "document_date": "2026-10-05", "amount": "1082.58"}}},
     "factures_nouveau_site.html": {"path": "/factures", "is": ["home"], "listing": "PortalChanged"}}

* Every ``.html`` and ``.json`` file of the folder has an entry, and every entry a file.
* ``is`` (with ``path``, the address it was served at): the exact set of declared page names
  recognised there (address regex and marker), as navigation sees it.
* ``listing``: ``count`` documents (distinct references), ``first`` the fields of the **newest**
  (after sorting newest first, not the first row), compared as text (``str()``: dates ISO,
  amounts as ``Decimal`` prints them); or the name of the error the parser raises.
  A listing whose totals are on the invoice pages reads no amount: leave ``amount`` out of ``first``.
* ``login_refusal`` / ``second_factor_refusal``: the error class read there (:mod:`glaneur.errors`);
  ``second_factor``: the kind asked (``totp``, ``code``, ``app``); ``invoice_total``, on an invoice
  page, the total ``total_on_detail`` reads there (with ``currency`` when it is not ``EUR``).
* Together the pages show every declared page but ``invoices`` in some ``is``, at least one listing
  with documents, exactly the catalogue entry's second-factor kinds, and an ``invoice_total`` when
  the listing reads totals on invoice pages.
* An API's answer is saved as ``.json`` with only a ``listing`` entry (no ``path`` nor ``is``: the
  page that asks it is the client area's): see ``tests/fixtures/pages/energie-verte/pages.json``.
* To save a page as Glaneur's browser sees it, a script can start that same Chromium with
  ``with tasks.browser.launch_browser(glaneur.settings.get_settings()) as browser:`` and write
  ``page.content()`` (the Playwright package alone has no browser of its own here).
* When a portal breaks in the field, the page it showed becomes a new entry here.

What the kit does for every connector
-------------------------------------
* Navigation checks it is on the page it expects (:meth:`PortalConnector.expect_page`, waiting up
  to ``GLANEUR_NAVIGATION_TIMEOUT_SECONDS``): a page still loading is ``PortalUnavailable``
  (retried), a loaded page that is not the one expected ``PortalChanged`` (the task layer keeps a
  screenshot and a trace). HTTP 429/5xx are ``RateLimited``/``PortalUnavailable`` and their
  ``Retry-After`` is honoured (up to ``GLANEUR_MAX_RETRY_AFTER_SECONDS``).
* Pages are read from the browser's DOM (:meth:`PortalConnector.has`, :meth:`PortalConnector.html`),
  not through Playwright's locators, which inject a script into every page (``bench/chromium_cost.py``):
  an override that looks at the page uses them too (``self.has("th[name=amount_due]")``).
* Pagination is bounded: a page seen twice (same address or same rows) ends the listing as
  ``PortalChanged`` (a loop). A list longer than ``GLANEUR_MAX_LIST_PAGES`` pages is not a changed
  portal: the listing stops after that many pages and returns what it read with the address of the
  next page (:class:`~glaneur.contract.Listing` ``.left_at``); see "Lists longer than one run reads".
* Downloads are streamed with the logged-in context's cookies from the portal's own origin (or the
  ``document_origins`` the connector declares), under ``GLANEUR_MAX_DOCUMENT_BYTES``.
* Second factor: the form's kind is read from the page (no code field: an app approval; a resend
  form: a code sent by SMS or e-mail; otherwise a TOTP), answered as the contract says
  (:mod:`connectors.base`), an expired code has the portal send a new one.

``list_documents(since)``: what ``since`` means
-----------------------------------------------
``since`` is None for a **full pass** (the first collection of an account, then every
``GLANEUR_FULL_PASS_EVERY_DAYS``): every document the portal lists. Otherwise it is the account's
**cursor** (the date of the newest document already filed) minus a **look-back** of
``GLANEUR_LOOKBACK_DAYS`` (documents the portal publishes late, back-dated): the connector returns
every document dated on or after ``since``, newest first, and may stop reading older pages (it
does, for lists declared ``newest_first``). Returning more is harmless (files already filed are
recognised); returning fewer loses invoices.

Lists longer than one run reads
-------------------------------
One run reads at most ``GLANEUR_MAX_LIST_PAGES`` pages of a list (bounded work, bounded memory). A
listing that gets there with pages still to go, having seen no page twice, stops and says where it
left the list (``Listing.left_at``, the next page's address). The collection files what was read,
keeps that address and the listing's ``since`` on the account, and the run ends ``more_to_collect``
("the list is longer than one run reads; N filed; the next run goes on from there"), not
``portal_changed``. The next runs first read the top of the list as a daily run does (the cursor
minus the look-back: invoices that appeared meanwhile), then call ``list_documents(since,
start=left_at)``, which opens the list's page, goes to that address and walks on, until a run reads
to the end of the list (or to ``since``): the address is then dropped, a full pass counts as done,
and the account is back to daily runs.

Why going on from the saved address misses nothing in a newest-first list: new invoices are added at
the top and push every older row down, so the rows not read yet are at the saved page or after it,
and the rows pushed from the last page read onto it are read again (and skipped: already filed).
A list that drops rows above the saved page would pull older rows up past it; the periodic full
pass (``GLANEUR_FULL_PASS_EVERY_DAYS``) is what catches those.

A loop longer than one run reads (the last page's "next" going back to the first after more than
``GLANEUR_MAX_LIST_PAGES`` pages) is caught across runs: a run that goes on from a saved address,
reads a whole run's worth of pages holding only invoices already filed and still finds more is
``portal_changed``.
"""

from __future__ import annotations

import dataclasses
import json
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any, ClassVar
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

from bs4 import BeautifulSoup, Tag

from connectors.base import PageSpec, Pagination, PortalConnector
from glaneur.contract import (
    Credentials,
    Engine,
    FetchedDocument,
    Listing,
    Provider,
    RemoteDocument,
    SecondFactorChallenge,
    SecondFactorKind,
)
from glaneur.errors import (
    AccountLocked,
    ActionNeeded,
    AwaitingSecondFactor,
    CredentialsExpired,
    GlaneurError,
    PortalChanged,
    RateLimited,
    WrongCredentials,
    WrongSecondFactor,
)

__all__ = [
    "Connector",
    "Credentials",
    "DetailTotal",
    "Engine",
    "FetchedDocument",
    "HtmlTable",
    "JsonList",
    "Listing",
    "LoginForm",
    "NextKey",
    "NextLink",
    "OffsetPages",
    "Page",
    "PageNumbers",
    "PageParam",
    "PageSpec",
    "Pagination",
    "Provider",
    "RemoteDocument",
    "SecondFactorChallenge",
    "SecondFactorForm",
    "SecondFactorKind",
    "amounts",
    "dates",
    "newest_first",
    "parse_amount",
    "parse_date",
    "shown_currency",
]

# -- parsers: text -> value, ValueError naming the expected format (the kit turns it into PortalChanged) ---------

_CURRENCY = re.compile(r"€|\bEUR\b|\$|\bUSD\b|£|\bGBP\b|\bCHF\b", re.IGNORECASE)
_SPACES = " \u00a0\u202f\u2009'’"


def parse_amount(text: str, decimal: str = ",") -> Decimal:
    """An amount as portals show it: ``1 234,56 €``, ``1.234,56``, ``-12,00 €``, ``66,06`` (``decimal=","``),
    or ``€1,234.56``, ``1 234.56 EUR`` (``decimal="."``). Thousands may be grouped by a space (normal,
    non-breaking or narrow), an apostrophe or the other separator; at most two decimals."""
    thousands = "." if decimal == "," else ","
    body = _CURRENCY.sub("", text).strip(_SPACES + "\n\t")
    sign = ""
    if body[:1] in ("-", "−"):
        sign, body = "-", body[1:].strip(_SPACES)
    group = f"[{re.escape(_SPACES + thousands)}]?"
    match = re.fullmatch(rf"(\d{{1,3}}(?:{group}\d{{3}})*|\d+)(?:{re.escape(decimal)}(\d{{1,2}}))?", body)
    if match is None:
        example = "1 234,56 €" if decimal == "," else "1,234.56"
        raise ValueError(f"unexpected amount {text!r}, expected an amount like {example!r}")
    units = re.sub(r"\D", "", match[1])
    return Decimal(f"{sign}{units}.{match[2] or '0'}")


_SHOWN_CURRENCIES = {"€": "EUR", "eur": "EUR", "$": "USD", "usd": "USD", "£": "GBP", "gbp": "GBP", "chf": "CHF"}


def shown_currency(text: str) -> str | None:
    """The currency an amount's text shows (``$1,234.56`` -> ``USD``), None when it shows none."""
    found = {_SHOWN_CURRENCIES[mark.casefold()] for mark in _CURRENCY.findall(text)}
    return found.pop() if len(found) == 1 else None


def _check_currency(text: str, currency: str, where: str) -> None:
    """An amount shown in another currency than the one the document records is refused: never a dollar
    filed as a euro."""
    shown = shown_currency(text)
    if shown is not None and shown != currency:
        raise PortalChanged(f"{where} shows {text.strip()!r}, in {shown}, but the invoice's currency is {currency}.")


def _record_currency(text: str, values: dict[str, Any], where: str) -> None:
    """The currency an amount's text shows is the document's, unless a column or key gave one: then
    they must agree."""
    if shown := shown_currency(text):
        _check_currency(text, values.setdefault("currency", shown), where)


def amounts(decimal: str) -> Callable[[str], Decimal]:
    """The amount parser of a portal writing ``decimal`` as its decimal separator: ``amounts(".")``."""
    return partial(parse_amount, decimal=decimal)


_MONTHS = {
    "janvier": 1, "january": 1, "fevrier": 2, "february": 2, "mars": 3, "march": 3, "avril": 4, "april": 4,
    "mai": 5, "may": 5, "juin": 6, "june": 6, "juillet": 7, "july": 7, "aout": 8, "august": 8,
    "septembre": 9, "september": 9, "octobre": 10, "october": 10, "novembre": 11, "november": 11,
    "decembre": 12, "december": 12,
}  # fmt: skip


def _month(word: str) -> int | None:
    word = "".join(c for c in unicodedata.normalize("NFKD", word.casefold()) if not unicodedata.combining(c))
    word = word.rstrip(".")
    found = {number for name, number in _MONTHS.items() if len(word) >= 3 and name.startswith(word)}
    return found.pop() if len(found) == 1 else None


def parse_date(text: str, order: str = "dmy") -> date:
    """A date as portals show it: ISO ``2026-01-12`` (a time after it is ignored), ``12/01/2026``,
    ``12.01.2026``, ``12-01-26`` (day first; ``order="mdy"`` for ``01/12/2026``), ``12 janv. 2026``,
    ``1er janvier 2026``, ``12 Jan 2026``, ``Jan 12, 2026``."""
    value = " ".join(text.split())
    try:
        if match := re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})(?:[T ][\d:.+Z-]*)?", value):
            return date(int(match[1]), int(match[2]), int(match[3]))
        if match := re.fullmatch(r"(\d{1,2})([/.-])(\d{1,2})\2(\d{4}|\d{2})", value):
            first, second, year = int(match[1]), int(match[3]), int(match[4])
            year += 2000 if year < 100 else 0
            return date(year, second, first) if order == "dmy" else date(year, first, second)
        if match := re.fullmatch(r"(\d{1,2})(?:er)? ([^\W\d_]+\.?) (\d{4})", value):
            if month := _month(match[2]):
                return date(int(match[3]), month, int(match[1]))
        if match := re.fullmatch(r"([^\W\d_]+\.?) (\d{1,2}),? (\d{4})", value):
            if month := _month(match[1]):
                return date(int(match[3]), month, int(match[2]))
    except ValueError:
        pass  # a day or month out of range: the same message as any other unreadable date
    shown = "dd/mm/yyyy" if order == "dmy" else "mm/dd/yyyy"
    raise ValueError(f"unexpected date {text!r}, expected {shown}, yyyy-mm-dd or '12 janv. 2026'")


def dates(order: str) -> Callable[[str], date]:
    """The date parser of a portal writing numeric dates month first: ``dates("mdy")``."""
    return partial(parse_date, order=order)


_PARSERS: dict[str, Callable[[str], Any]] = {
    "reference": str, "document_date": parse_date, "amount": parse_amount, "amount_due": parse_amount,
    "currency": str, "label": str, "download_url": str,
}  # fmt: skip


def _field(spec: str | tuple[str, Callable[[str], Any]]) -> tuple[str, Callable[[str], Any]]:
    name, parser = (spec, None) if isinstance(spec, str) else spec
    if name not in _PARSERS:
        raise TypeError(f"unknown field {name!r}; fields: {', '.join(_PARSERS)}")
    return name, parser or _PARSERS[name]


def _document(values: dict[str, Any], currency: str) -> RemoteDocument:
    """The listed values as a document: ``amount_due`` is never taken for the amount (it is 0.00 once paid);
    ``currency`` where no column or key gives one."""
    values.pop("amount_due", None)
    values.setdefault("currency", currency)
    return RemoteDocument(**values)


def _text(tag: Tag) -> str:
    return tag.get_text(" ", strip=True)


def _download_url(template: str, values: dict[str, Any]) -> str:
    """A download address built from the row's values: ``"/factures/{reference}.pdf"`` (values URL-quoted)."""
    try:
        return template.format(**{name: quote(str(value), safe="") for name, value in values.items()})
    except KeyError as missing:
        raise TypeError(f"download {template!r} names {missing}, which the listing does not read") from None


# -- pages -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """A portal page: where to go (``path``), a selector only it has (``marker``), and the address pattern
    (a regex on the path, query left out) when the page has several addresses; ``name`` as the portal calls it."""

    path: str
    marker: str
    pattern: str = ""
    name: str = ""

    def spec(self) -> PageSpec:
        return PageSpec(self.pattern or re.escape(self.path.split("?")[0]), self.marker)


SUBMIT = ":is(button:not([type]), button[type=submit], input[type=submit])"  # what a browser submits a form with


@dataclass(frozen=True)
class LoginForm:
    """The login page: its address, the form, its field names, and its refusals (selector -> typed error)."""

    path: str
    form: str
    login: str
    password: str
    refusals: Mapping[str, type[GlaneurError]]
    marker: str = ""  # a selector only the login page has; the form's password field by default
    submit: str = SUBMIT  # the control to press, within the form

    def page(self) -> Page:
        return Page(self.path, self.marker or f"{self.form} input[name='{self.password}']")


@dataclass(frozen=True)
class SecondFactorForm:
    """The page asking for a second factor after the password.

    ``refusals`` are read on the page an answer lands on (the same form with the portal's complaint, or
    the login page when the portal dropped the pending login: ``AwaitingSecondFactor``). ``expired`` marks
    the page saying the code is past its validity; ``resend`` the form asking for a new code.
    """

    path: str
    form: str
    prompt: str
    refusals: Mapping[str, type[GlaneurError]]
    code: str = "code"
    resend: str = ""
    expired: str = ""
    submit: str = SUBMIT
    name: str = "the second-factor form"
    pattern: str = ""


@dataclass(frozen=True)
class NextLink:
    """Pagination by a "next" link: follow it until a page has none."""

    selector: str

    def next(self, soup: BeautifulSoup, url: str, number: int) -> str | None:
        link = soup.select_one(self.selector)
        href = link.get("href") if link is not None else None
        return urljoin(url, str(href)) if href else None


@dataclass(frozen=True)
class PageNumbers:
    """Pagination by page numbers (``"/factures?page={n}"``): go on while the page links to the next number."""

    template: str

    def next(self, soup: BeautifulSoup, url: str, number: int) -> str | None:
        pattern = re.escape(self.template).replace(re.escape("{n}"), r"(\d+)")
        shown = re.search(pattern + "$", url)  # a walk that went on from a saved page counts from its number
        number = int(shown[1]) if shown else number
        wanted = urljoin(url, self.template.format(n=number + 1))
        links = {urljoin(url, str(a["href"])) for a in soup.select("a[href]")}
        return wanted if wanted in links else None


@dataclass(frozen=True)
class DetailTotal:
    """Where the invoice's total is when the list shows only the amount due: a link in the row to a detail
    page (``page``) and the selector of the total there.

    All or nothing by default: a row without the link, or a detail page without the total, is
    ``PortalChanged`` for the whole listing (nothing filed with a guessed amount). ``optional=True``
    accepts rows without the link (an invoice the portal shows no page for): their amount stays empty.
    A detail page that shows no total is ``PortalChanged`` either way."""

    link: str
    page: Page
    total: str
    parser: Callable[[str], Decimal] = parse_amount
    optional: bool = False

    def parse(self, html: str, provider: str, currency: str = "EUR") -> Decimal:
        found = BeautifulSoup(html, "html.parser").select_one(self.total)
        if found is None:
            raise PortalChanged(f"{provider}: the invoice page has no {self.total} (its total).")
        _check_currency(_text(found), currency, f"{provider}: the invoice page's total")
        try:
            return self.parser(_text(found))
        except ValueError as error:
            raise PortalChanged(f"{provider}: the invoice page's total: {error}.") from None


@dataclass(frozen=True)
class HtmlTable:
    """An invoice list in an HTML table: column -> field (or ``(field, parser)``), the download link of each
    row, and how to reach the next page. ``newest_first``: older pages hold older invoices, so a listing
    ``since`` a date stops at the first page reaching past it.

    A column is named by its header's text, or by its position (``0`` is the first cell) for a table whose
    headers are missing, empty or icons. ``link`` is the selector of the download link in each row; a row
    without one takes ``download`` instead, an address built from the row's values
    (``"/factures/{reference}/pdf"``). ``empty`` is a selector of the page the portal shows in place of the
    table when there is no invoice (``"p.no-invoice"``): that page is an empty list, not a changed portal.
    ``currency``: what the amounts are in when neither a column nor the amounts themselves say it (an
    amount shown as ``$1,234.56`` is in USD); an amount showing another currency than its row's currency
    column fails the listing, rather than be filed in the wrong currency.
    """

    path: str
    table: str
    columns: Mapping[str | int, str | tuple[str, Callable[[str], Any]]]
    link: str = ""
    pages: NextLink | PageNumbers | None = None
    pattern: str = ""
    newest_first: bool = True
    total_on_detail: DetailTotal | None = None
    download: str = ""
    empty: str = ""
    currency: str = "EUR"

    def __post_init__(self) -> None:
        names = {_field(spec)[0] for spec in self.columns.values()}
        if missing := {"reference", "document_date"} - names:
            raise TypeError(f"HtmlTable {self.table}: no column gives {', '.join(sorted(missing))}")
        if not (self.link or self.download):
            raise TypeError(f"HtmlTable {self.table}: say where each row's document is (link= or download=)")
        if self.download:
            _download_url(self.download, dict.fromkeys(names, ""))

    def page(self) -> Page:
        return Page(self.path, self.table, self.pattern)

    def parse(self, html: str, provider: str) -> list[RemoteDocument]:
        """The documents of one page of the list, in the portal's order."""
        return [document for document, _ in self._rows(html, provider)]

    def _rows(self, page: str | BeautifulSoup, provider: str) -> list[tuple[RemoteDocument, Tag]]:
        soup = page if isinstance(page, BeautifulSoup) else BeautifulSoup(page, "html.parser")
        table = soup.select_one(self.table)
        if table is None:
            raise PortalChanged(f"{provider}: the invoice list has no {self.table}.")
        rows = table.select(":scope > tr, :scope > thead > tr, :scope > tbody > tr, :scope > tfoot > tr")
        header = next((row for row in rows if row.find("th") and not row.find("td")), None)
        headers = [_text(cell) for cell in header.find_all(["th", "td"], recursive=False)] if header else []
        missing = [column for column in self.columns if isinstance(column, str) and column not in headers]
        if missing:
            raise PortalChanged(
                f"{provider}: the invoice table's columns are {headers}, expected {list(self.columns)} "
                f"(missing {missing})."
            )
        fields = {
            column if isinstance(column, int) else headers.index(column): (column, *_field(spec))
            for column, spec in self.columns.items()
        }
        width = max(len(headers), max(fields) + 1)
        documents = []
        for number, row in enumerate((row for row in rows if row.find("td")), start=1):
            cells = row.find_all(["td", "th"], recursive=False)
            link = row.select_one(self.link) if self.link else None
            href = str(link["href"]) if link is not None and link.get("href") else ""
            if len(cells) < width or not (href or self.download):
                raise PortalChanged(
                    f"{provider}: an invoice row without its {width} cells and {self.link} link: {_text(row)[:200]!r}."
                )
            values: dict[str, Any] = {}
            for index, (column, name, parser) in fields.items():
                try:
                    values[name] = parser(_text(cells[index]))
                except ValueError as error:
                    raise PortalChanged(f"{provider}: invoice row {number}, column {column!r}: {error}.") from None
            for index, (column, name, _) in fields.items():
                if name in ("amount", "amount_due"):
                    _record_currency(_text(cells[index]), values, f"{provider}: invoice row {number}, column {column!r},")
            values["download_url"] = href or _download_url(self.download, values)
            documents.append((_document(values, self.currency), row))
        return documents

    def read(self, connector: Connector, since: date | None, start: str | None = None, *, here: bool = False) -> Listing:
        """The list from its first page, or from ``start`` (where an earlier listing was left), at most
        ``GLANEUR_MAX_LIST_PAGES`` pages: past them, ``left_at`` says where to go on. ``here``: the connector
        has just shown the list's first page itself (to read something of it first): not loaded again."""
        name = connector.provider.name
        pagination = Pagination(name, connector.max_list_pages)
        documents: list[RemoteDocument] = []
        details: dict[str, str] = {}  # reference -> the address of its detail page, when the total is there
        number = 1
        left_at = None
        if not here:
            connector.goto(self.path)
        if connector.expect_page("invoices", "no_invoices") == "no_invoices":  # "no_invoices": declared by empty=
            return Listing()
        if start is not None:  # through the list's own page first, as a person would, then where it was left
            connector.goto(start)
            if connector.expect_page("invoices", "no_invoices") == "no_invoices":
                return Listing()
        while True:
            if number > 1:
                connector.expect_page("invoices")
            soup = BeautifulSoup(connector.html(), "html.parser")  # one parse a page: rows and next link
            found = self._rows(soup, name)
            rows = [document for document, _ in found]
            pagination.visit(connector.page.url, rows)
            documents += rows
            if self.total_on_detail is not None:
                details.update(self._detail_links(found, connector.page.url, name))
            if since is not None and self.newest_first and any(row.document_date < since for row in rows):
                break
            if self.pages is None:
                break
            following = self.pages.next(soup, connector.page.url, number)
            if following is None:
                break
            if pagination.full:  # longer than one run reads: not a changed portal, the next run goes on
                left_at = re.sub(r"^https?://[^/]+", "", following) or "/"
                break
            connector.goto(following)
            number += 1
        documents = newest_first(documents, since)
        if self.total_on_detail is not None:
            documents = [
                self._with_total(connector, document, details[document.reference]) if document.reference in details
                else document
                for document in documents
            ]
        return Listing(documents, left_at=left_at, pages=len(pagination.visited))

    def _detail_links(self, found: list[tuple[RemoteDocument, Tag]], url: str, provider: str) -> dict[str, str]:
        assert self.total_on_detail is not None
        links = {}
        for document, row in found:
            link = row.select_one(self.total_on_detail.link)
            if (link is None or not link.get("href")) and self.total_on_detail.optional:
                continue
            if link is None or not link.get("href"):
                what = self.total_on_detail.link
                raise PortalChanged(f"{provider}: invoice {document.reference} has no {what} link (to its total).")
            links[document.reference] = urljoin(url, str(link["href"]))
        return links

    def _with_total(self, connector: Connector, document: RemoteDocument, url: str) -> RemoteDocument:
        assert self.total_on_detail is not None
        connector.goto(url)
        connector.expect_page("invoice_detail")
        total = self.total_on_detail.parse(connector.html(), connector.provider.name, document.currency)
        return dataclasses.replace(document, amount=total)


def _with_query(url: str, **params: object) -> str:
    """``url`` with these query parameters set (others kept)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True)) | {name: str(value) for name, value in params.items()}
    return urlunsplit(parts._replace(query=urlencode(query)))


def _dig(data: Any, key: str) -> Any:
    """``data["a"]["b"]`` for ``key="a.b"``; None where a level is missing."""
    for part in filter(None, key.split(".")):
        data = data.get(part) if isinstance(data, dict) else None
    return data


@dataclass(frozen=True)
class OffsetPages:
    """A JSON API paged by item count: ``?limit=20&offset=40``. Asks ``size`` items a page and goes on
    while a page is full."""

    offset: str = "offset"
    limit: str = "limit"
    size: int = 20

    def first(self, url: str) -> str:
        return _with_query(url, **{self.offset: 0, self.limit: self.size})

    def next(self, url: str, answer: Any, items: list) -> str | None:
        shown = dict(parse_qsl(urlsplit(url).query))
        start = int(shown.get(self.offset, 0))
        return _with_query(url, **{self.offset: start + len(items), self.limit: self.size}) if len(items) >= self.size else None


@dataclass(frozen=True)
class PageParam:
    """A JSON API paged by number: ``?page=2``, from ``start``; goes on until a page is empty."""

    param: str = "page"
    start: int = 1

    def first(self, url: str) -> str:
        return _with_query(url, **{self.param: self.start})

    def next(self, url: str, answer: Any, items: list) -> str | None:
        shown = dict(parse_qsl(urlsplit(url).query))
        return _with_query(url, **{self.param: int(shown.get(self.param, self.start)) + 1}) if items else None


@dataclass(frozen=True)
class NextKey:
    """A JSON API whose answer gives the next page's address under ``key`` (dotted: ``"links.next"``),
    empty or null on the last page."""

    key: str

    def first(self, url: str) -> str:
        return url

    def next(self, url: str, answer: Any, items: list) -> str | None:
        following = _dig(answer, self.key)
        return urljoin(url, following) if isinstance(following, str) and following else None


@dataclass(frozen=True)
class JsonList:
    """An invoice list from the portal's own JSON API, asked after its client-area page (``path``, ``marker``)
    showed. ``fields``: field -> key in each item (a key ending in ``?`` may be absent or null); ``items``:
    the key of the list in the answer (dotted for nested, empty when the answer is the list; a field's key
    may be dotted too: ``"total.amount"``); ``since_param``:
    the query parameter the API filters dates with (ISO date). ``download``: the document's address built
    from the item's fields or its own keys (``"/api/factures/{reference}/pdf"``, ``"/api/invoices/{id}/pdf"``)
    when no key gives ``download_url``. ``parsers``: field -> parser of the key's text, where the defaults
    do not fit.
    ``currency``: what the amounts are in when no key gives it and their text shows none (``"CHF 89.90"``
    is in CHF, as in a table). ``pages``: how a paged API goes on
    (:class:`OffsetPages`, :class:`PageParam`, :class:`NextKey`); without it, one answer must hold the
    whole list."""

    path: str
    marker: str
    url: str
    fields: Mapping[str, str]
    items: str = ""
    since_param: str = ""
    parsers: Mapping[str, Callable[[str], Any]] = field(default_factory=dict)
    pattern: str = ""
    download: str = ""
    currency: str = "EUR"
    pages: OffsetPages | PageParam | NextKey | None = None

    def __post_init__(self) -> None:
        for name in self.fields:
            _field(name)
        needed = {"reference", "document_date"} | (set() if self.download else {"download_url"})
        if missing := needed - set(self.fields):
            raise TypeError(f"JsonList {self.url}: no key gives {', '.join(sorted(missing))}")

    def page(self) -> Page:
        return Page(self.path, self.marker, self.pattern)

    def parse(self, text: str, provider: str) -> list[RemoteDocument]:
        return self._answer(text, provider)[1]

    def _answer(self, text: str, provider: str) -> tuple[Any, list[RemoteDocument]]:
        """The answer's JSON and the documents of its list."""
        try:
            data = json.loads(text, parse_float=Decimal)
        except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
            raise PortalChanged(f"{provider}: the invoice API did not answer JSON: {text[:80]!r}.") from None
        items = _dig(data, self.items)
        if not isinstance(items, list):
            found = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise PortalChanged(f"{provider}: the invoice API answered without a {self.items!r} list (found {found}).")
        required = " and ".join(key for key in self.fields.values() if not key.endswith("?"))
        documents = []
        for item in items:
            values: dict[str, Any] = {}
            shown: dict[str, str] = {}  # the amounts' texts
            try:
                if not isinstance(item, dict):
                    raise TypeError("an item is not an object")
                for name, key in self.fields.items():
                    value = _dig(item, key.rstrip("?"))
                    if value is None and key.endswith("?"):
                        continue
                    values[name] = self._value(name, value)
                    if name in ("amount", "amount_due"):
                        shown[name] = str(value)
            except (AttributeError, TypeError, ValueError, InvalidOperation):
                raise PortalChanged(f"{provider}: an invoice without {required}: {str(item)[:200]}.") from None
            for name, text in shown.items():  # "CHF 89.90": the currency it shows, as in a table
                _record_currency(text, values, f"{provider}: invoice {name}")
            if "download_url" not in values:  # from the fields read, or the item's own keys ({id})
                keys = {key: value for key, value in item.items() if isinstance(value, str | int)}
                try:
                    values["download_url"] = _download_url(self.download, keys | values)
                except TypeError:
                    raise PortalChanged(f"{provider}: {self.download!r} names a key an invoice lacks: {str(item)[:200]}.") from None
            documents.append(_document(values, self.currency))
        return data, documents

    def _value(self, name: str, value: Any) -> Any:
        if name in self.parsers:
            return self.parsers[name](str(value))
        if name in ("amount", "amount_due") and isinstance(value, int | Decimal) and not isinstance(value, bool):
            return Decimal(value)
        if name == "reference" and isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str) or not value:
            raise TypeError(f"{name} is not a text")
        if name in ("amount", "amount_due"):
            return Decimal(value)
        return _PARSERS[name](value)

    def read(self, connector: Connector, since: date | None, start: str | None = None) -> Listing:
        """The list, page after page for a paged API (at most ``GLANEUR_MAX_LIST_PAGES``: past them,
        ``left_at`` is the next page's address, and ``start`` goes on from it), after the client area's
        page showed."""
        name = connector.provider.name
        connector.goto(self.path)
        connector.expect_page("invoices")
        url = self.url if since is None or not self.since_param else _with_query(self.url, **{self.since_param: since})
        url = start or (self.pages.first(url) if self.pages is not None else url)
        pagination = Pagination(name, connector.max_list_pages)
        documents: list[RemoteDocument] = []
        left_at = None
        while True:
            answer, found = self._answer(connector.api_get(url, what="the invoice list API").text(), name)
            pagination.visit(url, found)
            documents += found
            following = self.pages.next(url, answer, found) if self.pages else None
            if following is None:
                break
            if pagination.full:  # longer than one run reads: the next run goes on from there
                left_at = following
                break
            url = following
        return Listing(newest_first(documents, since), left_at=left_at, pages=len(pagination.visited))


def newest_first(documents: list[RemoteDocument], since: date | None) -> list[RemoteDocument]:
    """The documents dated on or after ``since`` (all when None), newest first."""
    kept = [document for document in documents if since is None or document.document_date >= since]
    return sorted(kept, key=lambda document: document.document_date, reverse=True)


# -- the connector ---------------------------------------------------------------------------------------------


class Connector(PortalConnector):
    """A portal declared as data (see the module docstring); override a method for what is unusual."""

    login_form: ClassVar[LoginForm]
    home: ClassVar[Page]
    listing: ClassVar[HtmlTable | JsonList]
    second_factor: ClassVar[SecondFactorForm | None] = None
    terms: ClassVar[Page | None] = None
    password_expired: ClassVar[Page | None] = None
    extra_pages: ClassVar[dict[str, PageSpec]] = {}
    after_login = ("home", "second_factor", "login", "terms", "new_password")  # where a submitted login may land

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if all(hasattr(cls, name) for name in ("login_form", "home", "listing")):
            cls.pages = cls.declared_pages()

    @classmethod
    def declared_pages(cls) -> dict[str, PageSpec]:
        """The pages table navigation recognises (see :meth:`PortalConnector.expect_page`)."""
        pages = {"login": cls.login_form.page().spec(), "home": cls.home.spec(), "invoices": cls.listing.page().spec()}
        if (form := cls.second_factor) is not None:
            pages["second_factor"] = PageSpec(form.pattern or re.escape(form.path), form.form)
            if form.expired:
                pages["code_expired"] = PageSpec(form.pattern or re.escape(form.path), form.expired)
        if cls.terms is not None:
            pages["terms"] = cls.terms.spec()
        if cls.password_expired is not None:
            pages["new_password"] = cls.password_expired.spec()
        if isinstance(cls.listing, HtmlTable) and cls.listing.total_on_detail is not None:
            pages["invoice_detail"] = cls.listing.total_on_detail.page.spec()
        if isinstance(cls.listing, HtmlTable) and cls.listing.empty:
            pages["no_invoices"] = PageSpec(pages["invoices"].url, cls.listing.empty)
        return {**pages, **cls.extra_pages}

    # -- reading pages: pure functions of a page's HTML (or JSON), run by the contract test on saved pages --------
    @classmethod
    def recognise(cls, html: str, path: str) -> set[str]:
        """The names of the declared pages this page (at ``path``) is, as :meth:`expect_page` would see it."""
        soup = BeautifulSoup(html, "html.parser")
        path = path.split("?")[0]
        pages = cls.pages.items()
        return {name for name, spec in pages if re.fullmatch(spec.url, path) and soup.select_one(spec.marker)}

    @classmethod
    def parse_listing(cls, text: str) -> list[RemoteDocument]:
        """One page of the invoice list (an HTML page or the API's JSON) as documents, in the portal's order."""
        return cls.listing.parse(text, cls.provider.name)

    @classmethod
    def login_refusal(cls, html: str) -> GlaneurError:
        """Why the login page came back: the first of the declared refusals found, else PortalChanged."""
        return cls._refusal(html, cls.login_form.refusals, "the login page came back")

    @classmethod
    def parse_second_factor(cls, html: str) -> SecondFactorChallenge:
        """What the second-factor page asks: no code field is an app approval, a resend form a code sent, else TOTP."""
        form = cls._second_factor_form()
        soup = BeautifulSoup(html, "html.parser")
        found, prompt = soup.select_one(form.form), soup.select_one(form.prompt)
        if found is None or prompt is None:
            raise PortalChanged(f"{cls.provider.name}: the second-factor page has no {form.form} and {form.prompt}.")
        if found.select_one(f"input[name='{form.code}']") is None:
            kind = SecondFactorKind.APP
        elif form.resend and soup.select_one(form.resend):
            kind = SecondFactorKind.CODE
        else:
            kind = SecondFactorKind.TOTP
        return SecondFactorChallenge(kind, _text(prompt))

    @classmethod
    def second_factor_refusal(cls, html: str) -> GlaneurError:
        """Why an answer did not log in: refused or not approved yet (on the form), or the login dropped."""
        form = cls._second_factor_form()
        on_form = BeautifulSoup(html, "html.parser").select_one(form.form) is not None
        refusals = {s: e for s, e in form.refusals.items() if on_form or not issubclass(e, WrongSecondFactor)}
        return cls._refusal(html, refusals, "the second-factor answer came back")

    @classmethod
    def _refusal(cls, html: str, refusals: Mapping[str, type[GlaneurError]], where: str) -> GlaneurError:
        soup = BeautifulSoup(html, "html.parser")
        name = cls.provider.name
        for selector, error in refusals.items():
            if (found := soup.select_one(selector)) is None:
                continue
            said = _text(found)
            if error is WrongCredentials:
                return error(f"{name} refused the login: {said}")
            if error is AccountLocked:
                return error(f"{name} locked the account: {said}")
            if error is AwaitingSecondFactor:
                return error(
                    f"{name} cancelled the login after too many wrong codes ({said}); the next run logs in again."
                )
            if error is WrongSecondFactor and cls.second_factor is not None:
                form = soup.select_one(cls.second_factor.form)
                if form is not None and form.select_one(f"input[name='{cls.second_factor.code}']") is None:
                    return error(f"{name}: not approved yet in the app ({said}).")
                return error(f"{name} refused the code: {said}")
            return error(f"{name}: {said}")
        return PortalChanged(f"{name}: {where} without {' or '.join(refusals) or 'a message this connector knows'}.")

    @classmethod
    def _second_factor_form(cls) -> SecondFactorForm:
        if cls.second_factor is None:
            raise PortalChanged(
                f"{cls.provider.name}: the portal asks for a second factor, which its connector does not declare."
            )
        return cls.second_factor

    # -- the contract ------------------------------------------------------------------------------------------
    def login(self, credentials: Credentials) -> SecondFactorChallenge | None:
        form = self.login_form
        self.goto(form.path)
        self.expect_page("login")
        self.page.fill(f"{form.form} input[name='{form.login}']", credentials.login)
        self.page.fill(f"{form.form} input[name='{form.password}']", credentials.password)
        self.submit(f"{form.form} {form.submit}", what="the login form")
        landed = self.expect_page(*self.after_login)
        if landed == "login":
            error = self.login_refusal(self.html())
            if isinstance(error, RateLimited) and error.retry_after:  # a cool-down the connector knows: as Retry-After
                self.wait_before_next_request(error.retry_after)
            raise error
        return self._arrived(landed)

    def answer_second_factor(
        self, challenge: SecondFactorChallenge, answer: str | None
    ) -> SecondFactorChallenge | None:
        form = self._second_factor_form()
        self.expect_page("second_factor")
        if challenge.kind is not SecondFactorKind.APP:
            self.page.fill(f"{form.form} input[name='{form.code}']", self.code_answer(challenge, answer))
        self.submit(f"{form.form} {form.submit}", what=form.name)
        landed = self.expect_page("code_expired", *self.after_login)
        if landed == "code_expired":
            self.submit(f"{form.resend} {form.submit}", what="the request for a new code")
            self.expect_page("second_factor")
            raise WrongSecondFactor(f"{self.provider.name}: the code had expired; the portal sent a new one.")
        if landed in ("second_factor", "login"):  # the same page with the portal's complaint, or dropped
            raise self.second_factor_refusal(self.html())
        return self._arrived(landed)

    def is_logged_in(self) -> bool:
        self.goto(self.home.path)
        landed = self.expect_page("home", "login", "terms", "new_password")
        return landed != "login" and self._arrived(landed) is None

    def list_documents(self, since: date | None, start: str | None = None) -> Listing:
        return self.listing.read(self, since, start)

    def _arrived(self, landed: str) -> SecondFactorChallenge | None:
        """Past the password: logged in (None), a second factor to answer, or a step for the account holder."""
        if landed == "second_factor":
            return self.parse_second_factor(self.html())
        if landed == "terms":  # only the account holder may accept: never click "Accepter" for them
            terms = self.terms.name if self.terms and self.terms.name else "new terms"
            raise ActionNeeded(f"{self.provider.name} asks the account holder to accept its {terms} on the portal.")
        if landed == "new_password":
            raise CredentialsExpired(f"{self.provider.name} says the password has expired and asks for a new one.")
        return None
