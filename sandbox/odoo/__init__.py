"""An Odoo customer portal (``/web/login``, ``/my/invoices``), one FastAPI app per supplier running Odoo.

Many suppliers run Odoo and give their customers its portal, each at its own address: start one
app per supplier (:func:`create_odoo_app`), each with its own data and its own Odoo version.

What is served, as Odoo serves it:

* ``GET/POST /web/login``: the ``web.login`` form (``login``, ``password``, ``csrf_token``
  bound to the ``session_id`` cookie, ``redirect``); a wrong password shows "Wrong
  login/password" in ``p.alert-danger``. Odoo's login cool-down (``res.users._assert_can_auth`` and
  ``_on_login_cooldown``) as its source does it: failed logins are counted per **source address**
  (``remote_addr``, whatever the login tried), and after :data:`LOGIN_COOLDOWN_AFTER` of them
  without a success in between every login from that address is refused for
  ``cooldown_seconds`` after the last failure ("Too many login failures, please wait a bit before
  trying again."; ``base.login_cooldown_after``, ``base.login_cooldown_duration``: 5 and 60 s by
  default). A login refused by the cool-down is not checked and not counted; a success clears the
  address's count. A good login redirects (303) to ``redirect`` or ``/my``.
* ``/my``, ``/my/home``: the portal home; ``/web/session/logout``.
* ``/my/invoices``, ``/my/invoices/page/<n>`` (the pager's links) and ``/my/invoices?page=<n>``
  (Odoo takes query parameters as the controller's arguments): the ``o_portal_my_doc_table``
  table, newest first, :data:`ITEMS_PER_PAGE` a page (Odoo's ``CustomerPortal._items_per_page``
  is larger; a small page shows the pager with little data), the ``ul.pagination`` pager. The
  amount column is the amount DUE (``amount_residual``): 0 once paid.
* ``/my/invoices/<id>?access_token=...``: the invoice page (its sidebar amount, see
  :func:`sandbox.odoo.markup.invoice_page`), ``&report_type=html`` the report shown in its iframe,
  ``&report_type=pdf&download=true`` the PDF (drawn by :mod:`sandbox.pdfs`: it carries the total).
  Without a session the access token alone opens the invoice, as ``portal.mixin`` allows.
* Control (``/_sandbox``): ``GET /accounts``, ``POST /reset`` (invoices, sessions, failed logins),
  ``POST /accounts/{login}/invoices``
  (``{"date": ..., "amount": ...}`` optional: a new unpaid invoice), ``GET /version`` and
  ``POST /version`` (``{"version": "16.0"}``: the markup of another version from the next page on).

Versions: 16.0, 17.0, 18.0 and master (``VERSIONS``; master is the branch the saas releases of Odoo
Online are cut from). Their differences, as rendered here:
16.0 wraps the list in ``div.table-responsive.border.rounded`` around
``table.table.rounded.bg-white.o_portal_my_doc_table``, under a bordered ``nav.o_portal_navbar``
holding the breadcrumbs, in ``div.container.mb64``; its pager is ``div.o_portal_pager.d-flex.justify-content-center``
(the others add ``my-3``); the others use ``table.o_list_table.table-sm.table-striped.o_portal_my_doc_table``.
16.0 and 17.0 put Status before Amount Due; 18.0 and master put Amount Due first, name their columns
(``th[name=amount_due]``...) and mark overdue due dates ``text-danger``; master also names the amount
cell (``td[name=invoice_amount]``). The invoice page of 16.0 and 17.0 shows the amount due while one
is left (the total only once paid); 18.0 and master always show the total, then the due date while
unpaid; 16.0's sidebar is a card (``portal.portal_record_sidebar``), master's adds "Powered by" and a rule. 16.0's home
lists the documents in a ``list-group``, the others in cards. The login form: plain on 16.0 and 17.0;
on 18.0 and master the ``web.user_switch`` component comes first and the form is ``d-none`` until its
script shows it (here a stand-in: :func:`sandbox.odoo.markup.login_page`), with a hidden
``type=password`` field; master puts the password in a ``password-reveal`` input group.

Sources (Odoo Community, LGPL-3, Odoo S.A.; nothing of Odoo's code is copied: this package writes the
resulting HTML itself). **Official** ``odoo/odoo`` files, read in the stored-file index at these commits:
``addons/portal/views/portal_templates.xml`` at e02a0503a0670b976ee46fea022867125efeb35e (master: its
user menu links ``/odoo``, its API-key help links the master documentation; ``portal_layout``,
``portal_table``, ``pager``, ``portal_searchbar``, ``portal_breadcrumbs``, ``portal_my_home``,
``portal_docs_entry``, ``portal_record_sidebar``, ``user_dropdown``) and at
005555384000103acf0068be20443f39fc0f9d00; ``addons/web/views/webclient_templates.xml`` at
005555384000103acf0068be20443f39fc0f9d00 (master: ``web.login_layout``, ``web.login``,
``web.frontend_layout``); ``addons/account/views/account_portal_templates.xml`` at
0096690e2914876086957dceaff69ffb3b004400 (after 18.0: ``/odoo/action-`` back-office links,
installments; ``portal_my_invoices``, ``portal_invoice_page``); ``addons/portal/controllers/portal.py``
at 0110668521beadb366485f98322c58e8c7164f6d (master: ``pager()``, a window of five pages,
``_items_per_page = 80``); ``addons/portal/models/portal_mixin.py`` at
0785f89d6defb7c820dc62278bb493047744734d (``get_portal_url``: always ``?access_token=``, then
``&report_type=pdf&download=true``); ``odoo/addons/base/models/res_users.py`` at
26462545a2f69734327b6d829362d5d57b2bb448 (the 16.0 branch: its deploy link names 16.0;
``_assert_can_auth``, ``_on_login_cooldown``: failures keyed on ``remote_addr``, 5 and 60 s by
default, refused logins neither checked nor counted, a success clears the count). No stable-branch
version of the templates could be read there (the index names one stored commit a path, and the
other stored versions found are master's or older than 16.0), so **the 16.0, 17.0 and 18.0 markup
comes from forks** that carry those branches (LGPL-3 copies of Odoo's files): 16.0 from Kireihana7/miceven2
(commit dfe6101719d36fc0fe9b258fc8001be2f45a4e21, ``odoo/release.py`` 16.0; ``account_portal_templates.xml``
and ``portal_templates.xml``, an unresolved merge with 14.0 whose ``<<<<<<< HEAD`` side is 16.0's
Bootstrap 5 markup), jointdream/odoo16 (commit 1b8db6aed96d49abec2236b44ad79088bb07477e,
``portal_templates.xml``) and Johnnas12/Odoo-16.0 (commit 4352d223899e8824829c969fec06a2ace376e619,
``webclient_templates.xml``, standard ``web.login``); 17.0 from filesdna/filesdna17-setup (commit
7b7b9b1cb81125f43401c4ee71473a33be6db10e for ``account_portal_templates.xml``,
8a1d96964ff0d7486174b760f3203bd42af26398 for ``portal_templates.xml`` and ``webclient_templates.xml``);
18.0 from informaticeng0011/odoo_18.0 (commit 011dedd570d57800e6fa07de6797b690a77b5f91, which merges
``upstream/18.0``: ``account_portal_templates.xml`` and ``webclient_templates.xml``). The two 16.0
``portal_templates.xml`` agree on ``portal_table``, ``portal_searchbar``, ``portal_layout``,
``portal_breadcrumbs``, ``portal_my_home`` and ``portal_record_sidebar``; their ``pager`` differs only
in its previous/next links (chevron icons in jointdream/odoo16, as served here and on master, the
words Prev and Next in miceven2), which nothing reads. The 16.0 account templates: the empty list is
a bare ``<p>`` (the others give it ``alert alert-warning``), the Status header is ``th.text-center``
and its cell ``td.tx_status.text-center``, the invoice page shows ``<h2 class="mb-0"><b>`` the amount
due (the total once paid) and Download and Print buttons in a ``btn-toolbar``.
"""

import datetime as dt
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel

from sandbox.data import Account, add_months, owned
from sandbox.odoo import markup
from sandbox.odoo.data import (
    NEWEST_MONTH,
    ODOO_SUPPLIERS,
    VERSIONS,
    OdooInvoice,
    OdooSupplier,
    initial_invoices,
    make_invoice,
    odoo_accounts,
)
from sandbox.pdfs import invoice_pdf

ITEMS_PER_PAGE = 10
LOGIN_COOLDOWN_AFTER = 5  # base.login_cooldown_after (the code's default)
LOGIN_COOLDOWN_SECONDS = 60.0  # base.login_cooldown_duration
SESSION_COOKIE = "session_id"
TODAY = date(2026, 11, 20)  # the portal's "today" (overdue marks), fixed like every sandbox date
WRONG_LOGIN = "Wrong login/password"
COOLDOWN = "Too many login failures, please wait a bit before trying again."


@dataclass
class _Session:
    csrf: str
    login: str | None = None


@dataclass
class OdooState:
    """One Odoo database: its accounts, their invoices, failed logins, sessions, and the version it renders."""

    odoo: OdooSupplier
    version: str = ""
    cooldown_seconds: float = LOGIN_COOLDOWN_SECONDS
    clock: Callable[[], float] = time.monotonic
    accounts: dict[str, Account] = field(default_factory=dict)
    invoices: dict[str, list[OdooInvoice]] = field(default_factory=dict)  # oldest first
    failures: dict[str, tuple[int, float]] = field(default_factory=dict)  # source address -> (count, last failure)
    refused_in_cooldown: int = 0  # logins the cool-down refused (Odoo only logs them)
    sessions: dict[str, _Session] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.version = self.version or self.odoo.version
        self.accounts = odoo_accounts(self.odoo)
        self.reset()

    def reset(self) -> None:
        self.invoices, self.failures, self.sessions, self.refused_in_cooldown = {}, {}, {}, 0
        next_id = 1
        for login, account in self.accounts.items():
            self.invoices[login] = initial_invoices(self.odoo, account, next_id)
            next_id += account.invoice_count

    def find(self, record_id: int) -> tuple[str, OdooInvoice] | None:
        return owned(self.invoices, lambda invoice: invoice.id == record_id)

    def on_cooldown(self, source: str) -> bool:
        """``_on_login_cooldown``: enough failures from this address, the last one less than the cool-down ago."""
        count, last = self.failures.get(source, (0, 0.0))
        return count >= LOGIN_COOLDOWN_AFTER and self.clock() - last < self.cooldown_seconds

    def login_failed(self, source: str) -> None:
        self.failures[source] = (self.failures.get(source, (0, 0.0))[0] + 1, self.clock())

    def add_invoice(self, login: str, issued: date | None, amount: Decimal | None) -> OdooInvoice:
        account, invoices = self.accounts[login], self.invoices[login]
        seq = len(invoices) + 1
        newest = invoices[-1].invoice.issued if invoices else NEWEST_MONTH
        issued = issued or add_months(newest.replace(day=1), 1).replace(day=self.odoo.supplier.invoice_day)
        record_id = 1 + max(i.id for listed in self.invoices.values() for i in listed)
        invoice = make_invoice(self.odoo, account, seq, issued, record_id, amount)
        invoices.append(invoice)
        return invoice

    def banner(self, url: str) -> str:
        """What ``python -m sandbox`` and ``python -m sandbox.odoo`` print: the portal, then one line an account."""
        lines = [f"{self.odoo.supplier.name} (Odoo {self.version}, provider odoo): {url}/web/login"]
        lines += [f"  {a['login']:<26} {a['password']:<30} {a['description']}" for a in self.describe()]
        return "\n".join(lines)

    def describe(self) -> list[dict[str, object]]:
        return [
            {"login": a.login, "password": a.password, "invoices": len(self.invoices[a.login]), "description": a.description}
            for a in self.accounts.values()
        ]


class NewInvoice(BaseModel):
    date: dt.date | None = None
    amount: Decimal | None = None


class VersionChoice(BaseModel):
    version: str


def _control(state: OdooState) -> APIRouter:
    router = APIRouter(prefix="/_sandbox", tags=["sandbox control"])

    @router.get("/accounts")
    async def accounts() -> dict[str, object]:
        odoo = state.odoo
        return {"provider": "odoo", "supplier": odoo.slug, "name": odoo.supplier.name, "version": state.version,
                "accounts": state.describe()}

    @router.post("/reset")
    async def reset() -> dict[str, str]:
        state.reset()
        return {"reset": state.odoo.slug}

    @router.post("/accounts/{login}/invoices", status_code=201)
    async def add_invoice(login: str, body: NewInvoice | None = None) -> dict[str, object]:
        if login not in state.accounts:
            raise HTTPException(404, f"Unknown account {login!r}; known: {', '.join(state.accounts)}.")
        body = body or NewInvoice()
        invoice = state.add_invoice(login, body.date, body.amount)
        return {"id": invoice.id, "number": invoice.name, "date": invoice.invoice.issued.isoformat(),
                "amount": str(invoice.amount_total)}

    @router.get("/version")
    async def version() -> dict[str, str]:
        return {"version": state.version}

    @router.post("/version")
    async def set_version(body: VersionChoice) -> dict[str, str]:
        if body.version not in VERSIONS:
            raise HTTPException(422, f"Unknown Odoo version {body.version!r}; this sandbox renders {', '.join(VERSIONS)}.")
        state.version = body.version
        return {"version": state.version}

    return router


def create_odoo_app(
    odoo: OdooSupplier | str, version: str | None = None, *, cooldown_seconds: float = LOGIN_COOLDOWN_SECONDS
) -> FastAPI:
    """A fresh Odoo portal for one supplier (an :class:`OdooSupplier` or the slug of one in ``ODOO_SUPPLIERS``);
    ``cooldown_seconds`` is its ``base.login_cooldown_duration``."""
    odoo = ODOO_SUPPLIERS[odoo] if isinstance(odoo, str) else odoo
    if version is not None and version not in VERSIONS:
        raise ValueError(f"Unknown Odoo version {version!r}; this sandbox renders {', '.join(VERSIONS)}.")
    state = OdooState(odoo, version or "", cooldown_seconds)
    company = odoo.supplier.name
    app = FastAPI(title=f"{company} (Odoo {state.version} sandbox)", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.portal = state
    app.include_router(_control(state))

    def session(request: Request) -> tuple[str, _Session]:
        sid = request.cookies.get(SESSION_COOKIE, "")
        if sid not in state.sessions:
            sid = secrets.token_hex(20)
            state.sessions[sid] = _Session(secrets.token_hex(20))
        return sid, state.sessions[sid]

    def html(sid: str, text: str, status: int = 200) -> HTMLResponse:
        response = HTMLResponse(text, status)
        response.set_cookie(SESSION_COOKIE, sid, httponly=True, samesite="lax")
        return response

    def to_login(request: Request) -> RedirectResponse:
        return RedirectResponse(f"/web/login?redirect={request.url.path}", 303)

    @app.get("/")
    async def root(request: Request) -> Response:
        return RedirectResponse("/my" if session(request)[1].login else "/web/login", 303)

    @app.get("/web/login")
    async def login_form(request: Request, redirect: str = "") -> Response:
        sid, current = session(request)
        if current.login:
            return RedirectResponse(redirect or "/my", 303)
        return html(sid, markup.login_page(state.version, company, current.csrf, redirect=redirect))

    @app.post("/web/login")
    async def login_submit(
        request: Request,
        login: Annotated[str, Form()] = "",
        password: Annotated[str, Form()] = "",
        csrf_token: Annotated[str, Form()] = "",
        redirect: Annotated[str, Form()] = "",
    ) -> Response:
        sid, current = session(request)
        if not hmac.compare_digest(current.csrf, csrf_token):
            return HTMLResponse("<h1>Bad Request</h1><p>Session expired (invalid CSRF token)</p>", 400)
        account = state.accounts.get(login)
        source = request.client.host if request.client else ""
        error = ""
        if state.on_cooldown(source):  # refused before the password is looked at, and not counted
            state.refused_in_cooldown += 1
            error = COOLDOWN
        elif account is None or not hmac.compare_digest(account.password, password):
            state.login_failed(source)
            error = WRONG_LOGIN
        if error:
            page = markup.login_page(state.version, company, current.csrf, login=login, error=error, redirect=redirect)
            return html(sid, page)
        state.failures.pop(source, None)
        del state.sessions[sid]  # Odoo rotates the session on login
        new_sid = secrets.token_hex(20)
        state.sessions[new_sid] = _Session(secrets.token_hex(20), login)
        target = redirect if redirect.startswith("/") and not redirect.startswith("//") else "/my"
        response = RedirectResponse(target, 303)
        response.set_cookie(SESSION_COOKIE, new_sid, httponly=True, samesite="lax")
        return response

    @app.get("/web/session/logout")
    async def logout(request: Request, redirect: str = "/web/login") -> Response:
        state.sessions.pop(request.cookies.get(SESSION_COOKIE, ""), None)
        response = RedirectResponse(redirect if redirect.startswith("/") else "/web/login", 303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    @app.get("/my")
    @app.get("/my/home")
    async def home(request: Request) -> Response:
        sid, current = session(request)
        if not current.login:
            return to_login(request)
        name = state.accounts[current.login].customer.name
        return html(sid, markup.home_page(state.version, company, name, len(state.invoices[current.login])))

    async def listing(request: Request, page: int) -> Response:
        sid, current = session(request)
        if not current.login:
            return to_login(request)
        invoices = list(reversed(state.invoices[current.login]))  # Odoo's default sort: newest first
        count = max(1, -(-len(invoices) // ITEMS_PER_PAGE))
        page = min(max(page, 1), count)  # Odoo's pager clamps the page number
        shown = invoices[(page - 1) * ITEMS_PER_PAGE : page * ITEMS_PER_PAGE]
        args = "sortby=date" if state.version == "16.0" else "sortby=date&filterby=all"
        pager = markup.pager(state.version, page, count, args=args)
        name = state.accounts[current.login].customer.name
        return html(sid, markup.invoices_page(state.version, company, name, shown, pager, TODAY))

    @app.get("/my/invoices")
    async def invoices_first(request: Request, page: int = 1) -> Response:
        return await listing(request, page)

    @app.get("/my/invoices/page/{page}")
    async def invoices_page(request: Request, page: int) -> Response:
        return await listing(request, page)

    @app.get("/my/invoices/{record_id}")
    async def invoice(request: Request, record_id: int, access_token: str = "", report_type: str = "",
                      download: str = "") -> Response:
        sid, current = session(request)
        found = state.find(record_id)
        allowed = found is not None and (
            current.login == found[0] or (access_token and hmac.compare_digest(access_token, found[1].access_token))
        )
        if not allowed:  # Odoo redirects a document the visitor may not see to /my
            return RedirectResponse("/my", 303)
        owner, record = found
        if report_type == "pdf":
            disposition = "attachment" if download == "true" else "inline"
            filename = record.name.replace("/", "_") + ".pdf"
            return Response(invoice_pdf(state.odoo.supplier, record.invoice), media_type="application/pdf",
                            headers={"Content-Disposition": f"{disposition}; filename*=UTF-8''{filename}"})
        if report_type == "html":
            return HTMLResponse(markup.invoice_report_html(company, record))
        user = state.accounts[current.login].customer.name if current.login else None
        return html(sid, markup.invoice_page(state.version, company, user, record))

    return app


__all__ = ["ITEMS_PER_PAGE", "LOGIN_COOLDOWN_AFTER", "ODOO_SUPPLIERS", "VERSIONS", "OdooState", "create_odoo_app"]
