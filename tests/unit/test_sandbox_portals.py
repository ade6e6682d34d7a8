"""The sandbox portals over HTTP (in-process TestClient): login and CSRF, every scenario, the PDFs, the controls."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pypdf import PdfReader

from sandbox import portals
from sandbox.data import ENERGIE_VERTE, PAPETERIE_DUPONT, Supplier, accounts_of, french_amount
from sandbox.portals import APPS, energie_verte_app, papeterie_dupont_app


@dataclass(frozen=True)
class Portal:
    """What differs between the two portals, so that common behaviour is tested once for both."""

    supplier: Supplier
    make_app: Callable[[], FastAPI]
    login_path: str
    fields: tuple[str, str, str]  # login, password, CSRF token
    list_path: str  # the page counted by the intermittent scenario
    pdf_path: str  # with {number}
    password_path: str
    terms_path: str
    error_selector: str

    def login_of(self, stem: str) -> str:
        return self.supplier.login_format.format(stem=stem)

    def password_of(self, stem: str) -> str:
        return accounts_of(self.supplier)[self.login_of(stem)].password

    def client(self, same_portal_as: TestClient | None = None) -> TestClient:
        """A browser of its own (own cookies) on a fresh portal, or on the portal of another client."""
        app = same_portal_as.app if same_portal_as is not None else self.make_app()
        return TestClient(app, follow_redirects=False)

    def token(self, client: TestClient, path: str | None = None) -> str:
        match = re.search(rf'name="{self.fields[2]}" value="([^"]+)"', client.get(path or self.login_path).text)
        assert match, f"no {self.fields[2]} on {path or self.login_path}"
        return match[1]

    def post_login(self, client: TestClient, stem: str, password: str | None = None):
        login_field, password_field, token_field = self.fields
        form = {
            login_field: self.login_of(stem),
            password_field: self.password_of(stem) if password is None else password,
            token_field: self.token(client),
        }
        return client.post(self.login_path, data=form)


PD = Portal(
    PAPETERIE_DUPONT,
    papeterie_dupont_app,
    "/login",
    ("username", "password", "csrf_token"),
    "/factures",
    "/factures/{number}/pdf",
    "/mot-de-passe-expire",
    "/cgv",
    'class="alert',
)
EV = Portal(
    ENERGIE_VERTE,
    energie_verte_app,
    "/connexion",
    ("email", "mot_de_passe", "csrf"),
    "/espace-client",
    "/api/factures/{number}/pdf",
    "/securite/mot-de-passe",
    "/conditions-generales",
    'class="erreur"',
)
HOME = {PD: "/factures", EV: "/espace-client"}
TERMS_TOKEN = {PD: "csrf_token", EV: "jeton"}
both = pytest.mark.parametrize("portal", [PD, EV], ids=["papeterie-dupont", "energie-verte"])


def test_the_apps_registry_names_both_portals() -> None:
    assert set(APPS) == {"papeterie-dupont", "energie-verte"}


# -- login and CSRF -------------------------------------------------------------------------------


@both
def test_login_sets_a_session_and_redirects_to_the_client_area(portal: Portal) -> None:
    client = portal.client()
    response = portal.post_login(client, "acme")

    assert response.status_code == 303
    assert response.headers["location"] == HOME[portal]
    assert client.get(HOME[portal]).status_code == 200


@both
def test_a_login_without_the_right_csrf_token_is_refused(portal: Portal) -> None:
    client = portal.client()
    portal.token(client)  # the login page was shown: a token exists, but the form does not carry it
    login_field, password_field, token_field = portal.fields
    form = {login_field: portal.login_of("acme"), password_field: portal.password_of("acme"), token_field: "forged"}

    response = client.post(portal.login_path, data=form)

    assert response.status_code == 400
    assert "rechargez la page" in response.text
    assert client.get(HOME[portal]).status_code == 303  # not logged in


@both
def test_a_login_posted_without_the_login_page_cookie_is_refused(portal: Portal) -> None:
    browser = portal.client()
    token = portal.token(browser)  # a token shown to another browser
    login_field, password_field, token_field = portal.fields
    form = {login_field: portal.login_of("acme"), password_field: portal.password_of("acme"), token_field: token}

    assert portal.client(same_portal_as=browser).post(portal.login_path, data=form).status_code == 400


def test_papeterie_dupont_says_session_expired_on_a_bad_token() -> None:
    client = PD.client()
    PD.token(client)
    response = client.post("/login", data={"username": "acme", "password": "papier-acme", "csrf_token": "x"})
    assert "Session expirée, rechargez la page" in response.text


@both
def test_wrong_passwords_then_lock_until_reset(portal: Portal) -> None:
    client = portal.client()
    for _ in range(2):
        response = portal.post_login(client, "acme", "not-the-password")
        assert response.status_code == 200
        assert "incorrect" in response.text and "bloqué" not in response.text

    third = portal.post_login(client, "acme", "not-the-password")
    right_password = portal.post_login(client, "acme")

    assert "bloqué" in third.text.lower()
    assert right_password.status_code == 200 and "bloqué" in right_password.text.lower()
    assert client.post("/_sandbox/reset").status_code == 200
    assert portal.post_login(client, "acme").status_code == 303


@both
def test_a_success_resets_the_count_of_wrong_passwords(portal: Portal) -> None:
    client = portal.client()
    for _ in range(2):
        portal.post_login(client, "acme", "not-the-password")
    assert portal.post_login(client, "acme").status_code == 303
    for _ in range(2):
        portal.post_login(client, "acme", "not-the-password")
    assert portal.post_login(client, "acme").status_code == 303


@both
def test_an_unknown_login_is_a_wrong_login(portal: Portal) -> None:
    client = portal.client()
    login_field, password_field, token_field = portal.fields
    form = {login_field: "nobody", password_field: "secret", token_field: portal.token(client)}
    response = client.post(portal.login_path, data=form)
    assert response.status_code == 200 and "incorrect" in response.text


@both
def test_the_locked_account_is_locked_from_the_start(portal: Portal) -> None:
    response = portal.post_login(portal.client(), "bloque")
    assert response.status_code == 200 and "bloqué" in response.text.lower()


@both
def test_pages_need_a_session(portal: Portal) -> None:
    client = portal.client()
    number = portal.supplier.number_format.format(code=1001, seq=1)
    assert client.get(HOME[portal]).headers["location"] == portal.login_path
    response = client.get(portal.pdf_path.format(number=number))
    assert response.status_code in (303, 401)


# -- scenarios ------------------------------------------------------------------------------------


@both
def test_expired_password_sends_to_the_new_password_page_until_changed(portal: Portal) -> None:
    client = portal.client()
    response = portal.post_login(client, "perime")
    assert response.status_code == 303  # logged in, straight to the new password page (EV via its home)
    assert client.get(response.headers["location"], follow_redirects=True).url.path == portal.password_path
    page = client.get(portal.password_path)
    assert "Votre mot de passe a expiré, choisissez-en un nouveau" in page.text
    assert client.get(HOME[portal], follow_redirects=True).url.path == portal.password_path
    token = re.search(r'name="(?:csrf_token|jeton)" value="([^"]+)"', page.text)[1]
    field = TERMS_TOKEN[portal]

    mismatch = client.post(
        portal.password_path, data={"nouveau": "nouveau-secret", "confirmation": "autre", field: token}
    )
    assert "ne correspondent pas" in mismatch.text
    changed = client.post(
        portal.password_path, data={"nouveau": "nouveau-secret", "confirmation": "nouveau-secret", field: token}
    )
    assert changed.headers["location"] == HOME[portal]
    assert client.get(HOME[portal]).status_code == 200

    fresh = portal.client(same_portal_as=client)
    assert portal.post_login(fresh, "perime").status_code == 200  # the old password no longer works
    assert portal.post_login(fresh, "perime", "nouveau-secret").status_code == 303
    assert fresh.get(HOME[portal]).status_code == 200


@both
def test_new_terms_block_the_invoices_until_a_person_accepts_them(portal: Portal) -> None:
    client = portal.client()
    portal.post_login(client, "cgv")
    assert client.get(HOME[portal]).headers["location"] == portal.terms_path
    page = client.get(portal.terms_path)
    assert "Accepter" in page.text and 'method="post"' in page.text

    forged = client.post(portal.terms_path, data={TERMS_TOKEN[portal]: "forged"})
    assert forged.status_code == 400
    token = re.search(r'name="(?:csrf_token|jeton)" value="([^"]+)"', page.text)[1]
    accepted = client.post(portal.terms_path, data={TERMS_TOKEN[portal]: token})

    assert accepted.headers["location"] == HOME[portal]
    assert client.get(HOME[portal]).status_code == 200
    accounts = {a["login"]: a for a in client.get("/_sandbox/accounts").json()["accounts"]}
    assert accounts[portal.login_of("cgv")]["terms_accepted"] is True
    client.post("/_sandbox/reset")
    assert client.get(HOME[portal]).headers["location"] == portal.login_path  # reset ends every session
    portal.post_login(client, "cgv")
    assert client.get(HOME[portal]).headers["location"] == portal.terms_path


@both
def test_the_intermittent_account_fails_every_other_request_to_the_list(portal: Portal) -> None:
    client = portal.client()
    portal.post_login(client, "instable")

    statuses = [client.get(portal.list_path).status_code for _ in range(4)]

    assert statuses == [200, 503, 200, 503]
    response = client.get(portal.list_path)
    assert response.status_code == 200
    maintenance = client.get(portal.list_path)
    assert maintenance.status_code == 503 and "maintenance" in maintenance.text.lower()
    assert maintenance.headers["retry-after"]
    client.post("/_sandbox/reset")
    portal.post_login(client, "instable")
    assert client.get(portal.list_path).status_code == 200


@both
def test_the_slow_account_is_slow_and_the_others_are_not(portal: Portal, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(portals.responses, "SLOW_SECONDS", 0.3)  # the mechanism, quickly; the browser tests see 1.5 s

    def list_duration(stem: str) -> float:
        client = portal.client()
        portal.post_login(client, stem)
        started = time.monotonic()
        assert client.get(portal.list_path).status_code == 200
        return time.monotonic() - started

    assert list_duration("lent") >= 0.3
    assert list_duration("acme") < 0.3


@both
def test_the_not_pdf_account_serves_its_newest_invoice_as_html(portal: Portal) -> None:
    client = portal.client()
    portal.post_login(client, "pas-pdf")
    account = accounts_of(portal.supplier)[portal.login_of("pas-pdf")]
    newest = portal.supplier.number_format.format(code=account.code, seq=account.invoice_count)
    older = portal.supplier.number_format.format(code=account.code, seq=1)

    broken = client.get(portal.pdf_path.format(number=newest))
    fine = client.get(portal.pdf_path.format(number=older))

    assert broken.status_code == 200 and broken.headers["content-type"].startswith("text/html")
    assert not broken.content.startswith(b"%PDF")
    assert fine.headers["content-type"] == "application/pdf" and fine.content.startswith(b"%PDF-")


@both
def test_rate_limit_flag_answers_429_until_reset(portal: Portal) -> None:
    client = portal.client()
    assert client.post("/_sandbox/rate-limit").json() == {"rate_limited": True}

    response = client.get(portal.login_path)

    assert response.status_code == 429 and response.headers["retry-after"]
    assert client.get("/_sandbox/accounts").status_code == 200  # the controls stay reachable
    client.post("/_sandbox/rate-limit", json={"enabled": False})
    assert client.get(portal.login_path).status_code == 200
    client.post("/_sandbox/rate-limit")
    client.post("/_sandbox/reset")
    assert client.get(portal.login_path).status_code == 200


# -- invoices and PDFs ----------------------------------------------------------------------------


def pdf_text(content: bytes) -> str:
    reader = PdfReader(io.BytesIO(content))
    assert len(reader.pages) == 1
    return reader.pages[0].extract_text()


@both
def test_downloads_are_real_pdfs_of_the_listed_invoice(portal: Portal) -> None:
    client = portal.client()
    portal.post_login(client, "acme")
    number = portal.supplier.number_format.format(code=1001, seq=23)

    response = client.get(portal.pdf_path.format(number=number))

    assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
    assert f'filename="{number}.pdf"' in response.headers["content-disposition"]
    text = pdf_text(response.content)
    assert portal.supplier.name in text and number in text and "ACME Industries SARL" in text
    assert "Total TTC" in text and f"Date : {portal.supplier.invoice_day:02d}/10/2026" in text
    reader = PdfReader(io.BytesIO(response.content))
    assert reader.metadata.title == f"Facture {number}"


@both
def test_pdfs_are_deterministic_and_differ_between_invoices(portal: Portal) -> None:
    def download(seq: int) -> bytes:
        client = portal.client()  # a fresh app each time: nothing cached between them
        portal.post_login(client, "acme")
        return client.get(
            portal.pdf_path.format(number=portal.supplier.number_format.format(code=1001, seq=seq))
        ).content

    assert download(23) == download(23)
    assert download(23) != download(22)


@both
def test_an_invoice_of_another_account_is_not_served(portal: Portal) -> None:
    client = portal.client()
    portal.post_login(client, "acme-bis")
    someone_else = portal.supplier.number_format.format(code=1001, seq=1)  # acme's

    response = client.get(portal.pdf_path.format(number=someone_else))

    assert response.status_code in (403, 404)
    assert not response.content.startswith(b"%PDF")


@both
def test_adding_an_invoice_shows_it_first_and_reset_removes_it(portal: Portal) -> None:
    client = portal.client()
    added = client.post(f"/_sandbox/accounts/{portal.login_of('acme')}/invoices")
    custom = client.post(
        f"/_sandbox/accounts/{portal.login_of('acme')}/invoices", json={"date": "2027-01-15", "amount": "1234.56"}
    )

    assert added.status_code == 201
    assert added.json()["number"] == portal.supplier.number_format.format(code=1001, seq=24)
    assert added.json()["date"] == f"2026-11-{portal.supplier.invoice_day:02d}"
    assert custom.json() == {
        "number": portal.supplier.number_format.format(code=1001, seq=25),
        "date": "2027-01-15",
        "amount": "1234.56",
    }
    portal.post_login(client, "acme")
    text = pdf_text(client.get(portal.pdf_path.format(number=custom.json()["number"])).content)
    assert french_amount(Decimal("1234.56")).replace("\u00a0", " ") in text.replace("\u00a0", " ")
    accounts = {a["login"]: a for a in client.get("/_sandbox/accounts").json()["accounts"]}
    assert accounts[portal.login_of("acme")]["invoices"] == 25
    client.post("/_sandbox/reset")
    accounts = {a["login"]: a for a in client.get("/_sandbox/accounts").json()["accounts"]}
    assert accounts[portal.login_of("acme")]["invoices"] == 23


@both
def test_adding_an_invoice_refuses_bad_input(portal: Portal) -> None:
    client = portal.client()
    unknown = client.post("/_sandbox/accounts/nobody/invoices")
    assert unknown.status_code == 404 and portal.login_of("acme") in unknown.json()["detail"]
    assert (
        client.post(f"/_sandbox/accounts/{portal.login_of('acme')}/invoices", json={"amount": "-3"}).status_code == 422
    )
    assert (
        client.post(f"/_sandbox/accounts/{portal.login_of('acme')}/invoices", json={"date": "31/12/2026"}).status_code
        == 422
    )


@both
def test_the_accounts_endpoint_lists_every_scenario_with_its_password(portal: Portal) -> None:
    body = portal.client().get("/_sandbox/accounts").json()

    assert body["provider"] == portal.supplier.slug
    scenarios = {a["scenario"] for a in body["accounts"]}
    assert scenarios == {
        "normal",
        "password_expired",
        "terms",
        "intermittent",
        "slow",
        "changed_layout",
        "not_pdf",
        "locked",
        "second_factor_totp",
        "second_factor_code",
        "second_factor_app",
    }
    acme = next(a for a in body["accounts"] if a["login"] == portal.login_of("acme"))
    assert acme["password"] == portal.password_of("acme") and acme["invoices"] == 23


# -- what is particular to each portal --------------------------------------------------------------


def test_papeterie_dupont_paginates_ten_rows_newest_first() -> None:
    client = PD.client()
    PD.post_login(client, "acme")
    pages = [client.get(f"/factures?page={n}").text for n in (1, 2, 3, 4)]

    rows = [re.findall(r"<tr><td>(PD-[\d-]+)</td>", page) for page in pages]
    assert [len(r) for r in rows] == [10, 10, 3, 0]
    numbers = [n for page_rows in rows for n in page_rows]
    assert numbers == [f"PD-1001-{seq:04d}" for seq in range(23, 0, -1)]
    assert ['class="next"' in page for page in pages] == [True, True, False, False]
    assert '<a class="next" href="/factures?page=2">' in pages[0]
    assert client.get("/factures?page=0").status_code == 422


def test_papeterie_dupont_amounts_are_french() -> None:
    client = PD.client()
    PD.post_login(client, "acme")
    amounts = re.findall(r'<td class="montant">([^<]+)</td>', client.get("/factures").text)
    assert amounts[0] == "1\u00a0082,58 €"
    assert all(re.fullmatch(r"\d{1,3}(\u00a0\d{3})*,\d\d €", a) for a in amounts)


def test_papeterie_dupont_changed_layout_has_cards_and_no_table() -> None:
    client = PD.client()
    PD.post_login(client, "nouveau-site")
    page = client.get("/factures").text
    assert page.count('class="invoice-card"') == 4 and 'id="factures"' not in page and "Download" in page


def test_energie_verte_shell_loads_its_list_from_the_api() -> None:
    client = EV.client()
    EV.post_login(client, "acme")
    page = client.get("/espace-client").text
    assert '<ul id="factures"></ul>' in page
    assert "fetch('/api/factures?depuis='" in page and 'id="depuis" value="2025-11-01"' in page


def test_energie_verte_api_needs_the_session_and_filters_by_date() -> None:
    client = EV.client()
    anonymous = client.get("/api/factures")
    assert anonymous.status_code == 401 and anonymous.json() == {"detail": "Authentification requise."}

    EV.post_login(client, "acme")
    everything = client.get("/api/factures").json()["factures"]
    recent = client.get("/api/factures", params={"depuis": "2026-06-01"}).json()["factures"]

    assert len(everything) == 23
    assert everything[0] == {
        "numero": "EV100100023",
        "date": "2026-10-01",
        "montant_ttc": 77.39,
        "devise": "EUR",
        "pdf": "/api/factures/EV100100023/pdf",
    }
    assert [f["date"] for f in recent] == ["2026-10-01", "2026-09-01", "2026-08-01", "2026-07-01", "2026-06-01"]
    assert client.get("/api/factures", params={"depuis": "hier"}).status_code == 422


def test_energie_verte_api_refuses_accounts_with_a_pending_step() -> None:
    client = EV.client()
    EV.post_login(client, "cgv")
    assert client.get("/api/factures").status_code == 403


def test_energie_verte_changed_layout_has_a_new_shell_and_a_new_api() -> None:
    client = EV.client()
    EV.post_login(client, "nouveau-site")
    page = client.get("/espace-client").text
    body = client.get("/api/factures").json()
    assert 'id="factures"' not in page and "invoices-v2" in page
    assert "factures" not in body and len(body["data"]["bills"]) == 4


def test_energie_verte_rate_limit_answers_json_on_the_api() -> None:
    client = EV.client()
    client.post("/_sandbox/rate-limit")
    response = client.get("/api/factures")
    assert response.status_code == 429 and "detail" in response.json()
