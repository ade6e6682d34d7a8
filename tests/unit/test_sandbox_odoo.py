"""The Odoo portal sandbox over HTTP (in-process): login, the list and its pager, the invoice, the PDF, per version."""

from __future__ import annotations

import importlib.util
import io
import re
from decimal import Decimal
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from fastapi.testclient import TestClient
from pypdf import PdfReader

from connectors.odoo import Odoo
from glaneur.errors import RateLimited, WrongCredentials
from sandbox.odoo import ITEMS_PER_PAGE, LOGIN_COOLDOWN_AFTER, VERSIONS, create_odoo_app
from sandbox.odoo.data import ODOO_SUPPLIERS, odoo_accounts

_SAVER = Path(__file__).resolve().parents[1] / "fixtures" / "pages" / "odoo" / "save_pages.py"
_spec = importlib.util.spec_from_file_location("odoo_save_pages", _SAVER)
save_pages = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(save_pages)

LOGIN, PASSWORD = "acme@client.test", "martin-acme"


def csrf(client: TestClient) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get("/web/login").text)[1]


def logged_in(version: str = "18.0", supplier: str = "infogerance-martin", login: str = LOGIN) -> TestClient:
    client = TestClient(create_odoo_app(supplier, version), follow_redirects=False)
    password = odoo_accounts(ODOO_SUPPLIERS[supplier])[login].password
    response = client.post("/web/login", data={"login": login, "password": password, "csrf_token": csrf(client)})
    assert response.status_code == 303 and response.headers["location"] == "/my"
    return client


def rows(html: str) -> list[dict[str, str]]:
    table = BeautifulSoup(html, "html.parser").select_one("table.o_portal_my_doc_table")
    heads = [th.get_text(strip=True) for th in table.select("thead th")]
    return [dict(zip(heads, (td.get_text(strip=True) for td in tr.find_all("td")), strict=True)) for tr in table.select("tbody tr")]


def amount(text: str) -> Decimal:
    return Decimal(re.sub(r"[\s\u202f€]", "", text).replace(",", "."))


@pytest.mark.parametrize("version", VERSIONS)
def test_saved_pages_are_what_the_sandbox_renders(version):
    for name, text in save_pages.pages(version).items():
        assert (save_pages.HERE / f"{version}_{name}").read_text(encoding="utf-8") == text, (
            f"{version}_{name} differs from the sandbox: run python tests/fixtures/pages/odoo/save_pages.py"
        )


def test_login_checks_the_csrf_token_and_the_password():
    client = TestClient(create_odoo_app("infogerance-martin"), follow_redirects=False)
    assert client.post("/web/login", data={"login": LOGIN, "password": PASSWORD, "csrf_token": "x"}).status_code == 400
    page = client.post("/web/login", data={"login": LOGIN, "password": "nope", "csrf_token": csrf(client)})
    assert BeautifulSoup(page.text, "html.parser").select_one("p.alert-danger").get_text() == "Wrong login/password"
    response = client.post(
        "/web/login", data={"login": LOGIN, "password": PASSWORD, "csrf_token": csrf(client), "redirect": "/my/invoices"}
    )
    assert response.headers["location"] == "/my/invoices"


def test_the_cool_down_counts_failures_per_address_refuses_unchecked_and_ends_by_itself():
    """As res.users._assert_can_auth: keyed on the source address whatever the login, attempts refused during the
    cool-down are neither checked nor counted, it ends cooldown_seconds after the last failure, a success clears."""
    now = [1000.0]
    app = create_odoo_app("infogerance-martin", cooldown_seconds=60)
    state = app.state.portal
    state.clock = lambda: now[0]
    here = TestClient(app, follow_redirects=False)
    elsewhere = TestClient(app, follow_redirects=False, client=("192.0.2.7", 50000))

    def log_in(client: TestClient, login: str, password: str):
        return client.post("/web/login", data={"login": login, "password": password, "csrf_token": csrf(client)})

    for login in ["stranger@client.test"] + [LOGIN] * (LOGIN_COOLDOWN_AFTER - 1):  # any login counts
        assert "Wrong login/password" in log_in(here, login, "nope").text
    assert "Too many login failures, please wait a bit before trying again." in log_in(here, LOGIN, PASSWORD).text
    now[0] += 59
    assert "Too many login failures" in log_in(here, LOGIN, PASSWORD).text
    assert state.failures["testclient"] == (LOGIN_COOLDOWN_AFTER, 1000.0)  # refused attempts: not counted
    assert state.refused_in_cooldown == 2
    assert log_in(elsewhere, LOGIN, PASSWORD).status_code == 303  # another address is not in cool-down
    now[0] += 2  # 61 s after the last failure
    assert "Wrong login/password" in log_in(here, LOGIN, "nope").text  # checked again, and counted
    assert "Too many login failures" in log_in(here, LOGIN, PASSWORD).text  # a new cool-down
    now[0] += 61
    assert log_in(here, LOGIN, PASSWORD).status_code == 303
    assert "testclient" not in state.failures  # a success clears the address's count


@pytest.mark.parametrize("version", VERSIONS)
def test_the_connector_retries_the_cool_down_once_it_is_over_and_never_a_wrong_password(version):
    cooldown = Odoo.login_refusal((save_pages.HERE / f"{version}_login_cooldown.html").read_text(encoding="utf-8"))
    assert isinstance(cooldown, RateLimited) and cooldown.retried and cooldown.retry_after == Odoo.cooldown_seconds == 60
    assert "Too many login failures" in cooldown.detail
    wrong = Odoo.login_refusal((save_pages.HERE / f"{version}_login_error.html").read_text(encoding="utf-8"))
    assert isinstance(wrong, WrongCredentials) and not wrong.retried


def test_pages_need_a_session():
    client = TestClient(create_odoo_app("infogerance-martin"), follow_redirects=False)
    response = client.get("/my/invoices/page/2")
    assert response.status_code == 303 and response.headers["location"] == "/web/login?redirect=/my/invoices/page/2"


@pytest.mark.parametrize("version", VERSIONS)
def test_the_list_shows_the_amount_due_newest_first_with_a_pager(version):
    client = logged_in(version)
    first = client.get("/my/invoices").text
    listed = rows(first)
    assert len(listed) == ITEMS_PER_PAGE
    invoices = {i.name: i for i in client.app.state.portal.invoices[LOGIN]}
    assert [row["Invoice #"] for row in listed] == sorted(invoices, reverse=True)[:ITEMS_PER_PAGE]
    for row in listed:
        invoice = invoices[row["Invoice #"]]
        assert amount(row["Amount Due"]) == invoice.amount_residual
    partial = invoices[listed[1]["Invoice #"]]
    assert 0 < amount(listed[1]["Amount Due"]) < partial.amount_total  # the list never shows this total
    assert amount(listed[2]["Amount Due"]) == 0
    pager = BeautifulSoup(first, "html.parser").select_one("ul.pagination")
    links = [a.get("href") for a in pager.select("li.page-item a.page-link")]
    suffix = "?sortby=date" if version == "16.0" else "?sortby=date&filterby=all"
    assert links == [None, "/my/invoices" + suffix, "/my/invoices/page/2" + suffix, "/my/invoices/page/2" + suffix]
    assert "disabled" in pager.select("li")[0]["class"] and "active" in pager.select("li")[1]["class"]
    second = rows(client.get("/my/invoices/page/2").text)
    assert second == rows(client.get("/my/invoices?page=2").text) and len(second) == 3
    assert rows(client.get("/my/invoices/page/9").text) == second  # clamped, as Odoo's pager does


def test_versions_differ_where_odoo_does():
    heads = {}
    for version in VERSIONS:
        soup = BeautifulSoup(logged_in(version).get("/my/invoices").text, "html.parser")
        heads[version] = [th.get_text(strip=True) for th in soup.select("table.o_portal_my_doc_table thead th")]
        table_classes = soup.select_one("table.o_portal_my_doc_table")["class"]
        assert ("bg-white" in table_classes) == (version == "16.0")
        assert ("table-striped" in table_classes) == (version != "16.0")
        pager = soup.select_one("div.o_portal_pager.d-flex.justify-content-center > ul.pagination")
        assert pager is not None and ("my-3" in pager.parent["class"]) == (version != "16.0")
        bordered = "border" in soup.select_one("nav.o_portal_navbar")["class"]  # 16.0's breadcrumbs_searchbar
        assert bordered == (version == "16.0")
        home = BeautifulSoup(logged_in(version).get("/my").text, "html.parser")
        entry = home.select_one("div.o_portal_docs.list-group > a.list-group-item[href='/my/invoices']")
        assert (entry is not None) == (version == "16.0")  # 17.0 and 18.0: index cards
    assert heads["16.0"] == heads["17.0"] == ["Invoice #", "Invoice Date", "Due Date", "Status", "Amount Due"]
    assert heads["18.0"] == heads["master"] == ["Invoice #", "Invoice Date", "Due Date", "Amount Due", "Status"]
    master = BeautifulSoup(logged_in("master").get("/my/invoices").text, "html.parser")
    assert len(master.select("td[name=invoice_amount]")) == ITEMS_PER_PAGE  # official master names the amount cell


@pytest.mark.parametrize("version", VERSIONS)
def test_the_login_form_from_18_shows_once_the_user_switch_script_has_run(version):
    """18.0 and master: web.user_switch, then the form d-none until its script shows it; a refused login comes back
    with the login filled in and the form shown. master: the password in a password-reveal group."""
    client = TestClient(create_odoo_app("infogerance-martin", version))
    page = BeautifulSoup(client.get("/web/login").text, "html.parser")
    form = page.select_one("form.oe_login_form")
    recent = version in ("18.0", "master")
    assert ("d-none" in form["class"]) == recent
    assert (page.select_one("owl-component[name='web.user_switch']") is not None) == recent
    assert (form.select_one("input[name=type][value=password]") is not None) == recent
    assert (form.select_one("[data-widget=password-reveal] input[name=password]") is not None) == (version == "master")
    script = page.select_one("script")
    assert ("classList.remove('d-none')" in script.text) if recent else script is None
    answer = client.post("/web/login", data={"login": LOGIN, "password": "nope", "csrf_token": csrf(client)})
    refused = BeautifulSoup(answer.text, "html.parser")
    assert "d-none" not in refused.select_one("form.oe_login_form")["class"]
    assert refused.select_one("input[name=login]")["value"] == LOGIN


@pytest.mark.parametrize("version", VERSIONS)
def test_the_invoice_page_shows_the_total_from_18_on_and_links_the_pdf(version):
    client = logged_in(version)
    partial = next(i for i in client.app.state.portal.invoices[LOGIN] if i.payment_state == "partial")
    page = BeautifulSoup(client.get(f"/my/invoices/{partial.id}?access_token={partial.access_token}").text, "html.parser")
    shown = amount(page.select_one("#sidebar_content h2").get_text(strip=True))
    assert shown == (partial.amount_total if version in ("18.0", "master") else partial.amount_residual)
    if version in ("18.0", "master"):  # what the connector reads there
        assert Odoo.listing.total_on_detail.parse(str(page), "Odoo") == partial.amount_total
    href = page.select_one("a.o_download_btn")["href"]
    assert href == f"/my/invoices/{partial.id}?access_token={partial.access_token}&report_type=pdf&download=true"


def test_the_pdf_opens_with_the_access_token_alone_and_carries_the_total():
    owner = logged_in()
    invoice = owner.app.state.portal.invoices[LOGIN][-2]
    stranger = TestClient(owner.app, follow_redirects=False)
    url = f"/my/invoices/{invoice.id}?access_token={invoice.access_token}&report_type=pdf&download=true"
    response = stranger.get(url)
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"].startswith("attachment;")
    text = PdfReader(io.BytesIO(response.content)).pages[0].extract_text()
    assert invoice.name in text and f"{invoice.amount_total}".replace(".", ",") in text.replace("\u00a0", "")
    assert stranger.get(url.replace(invoice.access_token, "0" * 36)).headers["location"] == "/my"


def test_controls_switch_the_version_add_invoices_and_keep_each_supplier_apart():
    client = logged_in("16.0")
    assert client.post("/_sandbox/version", json={"version": "15.0"}).status_code == 422
    assert client.post("/_sandbox/version", json={"version": "18.0"}).json() == {"version": "18.0"}
    assert "table-striped" in client.get("/my/invoices").text
    added = client.post(f"/_sandbox/accounts/{LOGIN}/invoices", json={"amount": "120.00"}).json()
    assert rows(client.get("/my/invoices").text)[0]["Invoice #"] == added["number"]
    assert added["date"] == "2026-11-28" and added["amount"] == "120.00"
    other = logged_in("16.0", "transports-girard")
    assert all(row["Invoice #"].startswith("FAC/") for row in rows(other.get("/my/invoices").text))
    client.post("/_sandbox/reset")
    assert client.get("/_sandbox/accounts").json()["accounts"][0]["invoices"] == 13
