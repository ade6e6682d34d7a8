"""Each connector driven by real Chromium against the sandbox portals: login, list, fetch, and every failure.

Uses the session's sandbox (``tests/conftest.py``), reset before each test, and one browser for
the module with a fresh context (cookies) per connector.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta

import httpx
import pytest
from playwright.sync_api import Browser
from pypdf import PdfReader

from connectors.base import PortalConnector
from connectors.catalog import connector_class
from glaneur.contract import Credentials
from glaneur.errors import (
    AccountLocked,
    ActionNeeded,
    CredentialsExpired,
    InvalidDocument,
    PortalChanged,
    PortalUnavailable,
    RateLimited,
    WrongCredentials,
)
from glaneur.invoices.collection import validate_pdf
from glaneur.settings import get_settings
from sandbox.data import french_amount
from sandbox.portals import SLOW_SECONDS
from sandbox.server import SandboxHandle
from tasks.browser import launch_browser

pytestmark = pytest.mark.slow

SLUGS = ["papeterie-dupont", "energie-verte"]
both = pytest.mark.parametrize("slug", SLUGS)
HOME = {"papeterie-dupont": "/factures", "energie-verte": "/espace-client"}
OpenConnector = Callable[[str], PortalConnector]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch_browser(get_settings()) as browser:
        yield browser


@pytest.fixture(autouse=True)
def fresh_portals(sandbox: SandboxHandle) -> None:
    for url in sandbox.urls.values():
        httpx.post(f"{url}/_sandbox/reset", trust_env=False).raise_for_status()


@pytest.fixture
def open_connector(sandbox: SandboxHandle, browser: Browser) -> Iterator[OpenConnector]:
    """A connector on a page of its own browser context, as each collection gets one."""
    contexts = []

    def open_one(slug: str) -> PortalConnector:
        context = browser.new_context(locale="fr-FR")
        context.set_default_timeout(20_000)
        contexts.append(context)
        return connector_class(slug)(context.new_page(), sandbox.urls[slug])

    yield open_one
    for context in contexts:
        context.close()


def control(sandbox: SandboxHandle, slug: str, method: str, path: str, **kwargs: object) -> httpx.Response:
    response = httpx.request(method, f"{sandbox.urls[slug]}/_sandbox{path}", trust_env=False, **kwargs)
    response.raise_for_status()
    return response


def account(sandbox: SandboxHandle, slug: str, stem: str) -> dict:
    accounts = control(sandbox, slug, "GET", "/accounts").json()["accounts"]
    return next(a for a in accounts if a["login"].split("@")[0] == stem)


def credentials(sandbox: SandboxHandle, slug: str, stem: str, password: str | None = None) -> Credentials:
    found = account(sandbox, slug, stem)
    return Credentials(found["login"], password if password is not None else found["password"])


def logged_in(open_connector: OpenConnector, sandbox: SandboxHandle, slug: str, stem: str) -> PortalConnector:
    connector = open_connector(slug)
    connector.login(credentials(sandbox, slug, stem))
    return connector


def pdf_text(content: bytes) -> str:
    return PdfReader(io.BytesIO(content)).pages[0].extract_text().replace("\u00a0", " ")


# -- collecting ---------------------------------------------------------------------------------------


@both
def test_login_lists_every_invoice_and_fetches_real_pdfs(
    slug: str, sandbox: SandboxHandle, open_connector: OpenConnector
) -> None:
    connector = logged_in(open_connector, sandbox, slug, "acme")

    documents = connector.list_documents(None)

    assert len(documents) == 23 == len({d.reference for d in documents})
    assert [d.document_date for d in documents] == sorted((d.document_date for d in documents), reverse=True)
    assert documents[0].document_date.strftime("%Y-%m") == "2026-10"
    assert documents[-1].document_date.strftime("%Y-%m") == "2024-12"
    for document in (documents[0], documents[-1]):
        fetched = connector.fetch(document)
        assert fetched.content_type == "application/pdf" and fetched.content.startswith(b"%PDF-")
        text = pdf_text(fetched.content)
        assert document.reference in text
        assert french_amount(document.amount).replace("\u00a0", " ") in text  # the listed amount is the invoice's


@both
def test_listing_since_a_date_stops_early(slug: str, sandbox: SandboxHandle, open_connector: OpenConnector) -> None:
    connector = logged_in(open_connector, sandbox, slug, "acme")
    pages_loaded: list[str] = []
    connector.page.on("request", lambda request: pages_loaded.append(request.url.split("/", 3)[-1]))

    documents = connector.list_documents(date(2026, 6, 1))

    assert [(d.document_date.year, d.document_date.month) for d in documents] == [(2026, m) for m in (10, 9, 8, 7, 6)]
    if slug == "papeterie-dupont":  # page 1 goes back to January: no need for page 2
        assert [p for p in pages_loaded if p.startswith("factures")] == ["factures?page=1"]


@both
def test_a_second_collection_lists_only_the_new_invoice(
    slug: str, sandbox: SandboxHandle, open_connector: OpenConnector
) -> None:
    first = logged_in(open_connector, sandbox, slug, "acme").list_documents(None)
    login = account(sandbox, slug, "acme")["login"]
    added = control(sandbox, slug, "POST", f"/accounts/{login}/invoices", json={"amount": "42.00"}).json()

    connector = logged_in(open_connector, sandbox, slug, "acme")
    second = connector.list_documents(first[0].document_date + timedelta(days=1))

    assert [d.reference for d in second] == [added["number"]]
    assert second[0].amount == 42
    assert connector.fetch(second[0]).content.startswith(b"%PDF-")


@both
def test_two_accounts_of_one_customer_see_their_own_invoices(
    slug: str, sandbox: SandboxHandle, open_connector: OpenConnector
) -> None:
    acme = logged_in(open_connector, sandbox, slug, "acme").list_documents(None)
    bis = logged_in(open_connector, sandbox, slug, "acme-bis")

    documents = bis.list_documents(None)

    assert len(documents) == 5 and not {d.reference for d in documents} & {d.reference for d in acme}
    with pytest.raises(PortalChanged, match=r"HTTP 40[34]"):
        bis.fetch(acme[0])  # someone else's invoice is refused, never served


# -- credentials and the account holder -----------------------------------------------------------------


@both
def test_wrong_passwords_then_the_portal_locks_the_account(
    slug: str, sandbox: SandboxHandle, open_connector: OpenConnector
) -> None:
    for _ in range(2):
        with pytest.raises(WrongCredentials, match="refused"):
            open_connector(slug).login(credentials(sandbox, slug, "acme", "not-the-password"))
    with pytest.raises(AccountLocked):
        open_connector(slug).login(credentials(sandbox, slug, "acme", "not-the-password"))
    with pytest.raises(AccountLocked, match="(?i)bloqué"):
        open_connector(slug).login(credentials(sandbox, slug, "acme"))


@pytest.mark.parametrize("slug", SLUGS)
@pytest.mark.parametrize(
    ("stem", "error", "words"),
    [
        ("perime", CredentialsExpired, "expired"),
        ("cgv", ActionNeeded, "accept its new terms"),
        ("bloque", AccountLocked, "bloqué"),
    ],
)
def test_account_problems_raise_their_typed_error(
    slug: str, stem: str, error: type[Exception], words: str, sandbox: SandboxHandle, open_connector: OpenConnector
) -> None:
    with pytest.raises(error, match=words):
        open_connector(slug).login(credentials(sandbox, slug, stem))


@both
def test_new_terms_are_left_to_the_account_holder(
    slug: str, sandbox: SandboxHandle, open_connector: OpenConnector
) -> None:
    connector = open_connector(slug)
    with pytest.raises(ActionNeeded):
        connector.login(credentials(sandbox, slug, "cgv"))
    assert account(sandbox, slug, "cgv")["terms_accepted"] is False  # the connector did not click

    connector.page.get_by_role("button", name="Accepter").click()  # the account holder, in their browser
    connector.page.wait_for_url(f"**{HOME[slug]}")

    assert account(sandbox, slug, "cgv")["terms_accepted"] is True
    assert len(logged_in(open_connector, sandbox, slug, "cgv").list_documents(None)) == 4


@both
def test_an_expired_password_works_again_once_the_holder_changed_it(
    slug: str, sandbox: SandboxHandle, open_connector: OpenConnector
) -> None:
    connector = open_connector(slug)
    with pytest.raises(CredentialsExpired):
        connector.login(credentials(sandbox, slug, "perime"))

    connector.page.fill("input[name=nouveau]", "un-nouveau-secret")  # the account holder, in their browser
    connector.page.fill("input[name=confirmation]", "un-nouveau-secret")
    connector.page.click("form#nouveau-mot-de-passe button[type=submit]")
    connector.page.wait_for_url(f"**{HOME[slug]}")

    with pytest.raises(WrongCredentials):
        open_connector(slug).login(
            credentials(sandbox, slug, "perime", account(sandbox, slug, "perime")["password"] + "-old")
        )
    again = open_connector(slug)
    again.login(credentials(sandbox, slug, "perime", "un-nouveau-secret"))
    assert len(again.list_documents(None)) == 4


# -- a portal that misbehaves -----------------------------------------------------------------------------


@both
def test_an_intermittent_503_is_unavailable_and_the_retry_succeeds(
    slug: str, sandbox: SandboxHandle, open_connector: OpenConnector
) -> None:
    connector = logged_in(open_connector, sandbox, slug, "instable")

    with pytest.raises(PortalUnavailable, match="503"):
        connector.list_documents(None)
    documents = connector.list_documents(None)

    assert len(documents) == 4
    assert connector.fetch(documents[0]).content.startswith(b"%PDF-")


@both
def test_a_slow_portal_is_still_collected(slug: str, sandbox: SandboxHandle, open_connector: OpenConnector) -> None:
    started = time.monotonic()
    connector = logged_in(open_connector, sandbox, slug, "lent")
    documents = connector.list_documents(None)

    assert len(documents) == 4
    assert time.monotonic() - started >= 2 * SLOW_SECONDS  # at least the login and the list were slow


@both
def test_a_changed_layout_is_portal_changed_naming_the_expected_page(
    slug: str, sandbox: SandboxHandle, open_connector: OpenConnector
) -> None:
    connector = logged_in(open_connector, sandbox, slug, "nouveau-site")  # logging in still works
    connector.page_timeout_ms = 1000  # the redesigned page is there at once: no need to wait 5 s for it

    with pytest.raises(PortalChanged, match=rf"expected the invoices page, found {HOME[slug]}"):
        connector.list_documents(None)


@both
def test_a_download_that_is_not_a_pdf_is_an_invalid_document(
    slug: str, sandbox: SandboxHandle, open_connector: OpenConnector
) -> None:
    connector = logged_in(open_connector, sandbox, slug, "pas-pdf")
    newest, *others = connector.list_documents(None)

    fetched = connector.fetch(newest)  # status 200: only its content tells it is an error page

    assert fetched.content_type.startswith("text/html")
    with pytest.raises(InvalidDocument, match="is not a PDF"):
        validate_pdf(fetched, get_settings().max_document_bytes)
    assert all(connector.fetch(document).content.startswith(b"%PDF-") for document in others)


@both
def test_a_rate_limited_portal_raises_rate_limited(
    slug: str, sandbox: SandboxHandle, open_connector: OpenConnector
) -> None:
    control(sandbox, slug, "POST", "/rate-limit")

    with pytest.raises(RateLimited, match="429"):
        open_connector(slug).login(credentials(sandbox, slug, "acme"))


def test_the_energie_verte_client_area_renders_its_list_in_the_browser(
    sandbox: SandboxHandle, open_connector: OpenConnector
) -> None:
    """The sandbox behaves like the real single-page client area: its script fills the list from the API."""
    connector = logged_in(open_connector, sandbox, "energie-verte", "acme")
    items = connector.page.locator("#factures li")

    items.nth(11).wait_for()

    assert items.count() == 12  # the default period: the last twelve months
    assert items.first.inner_text() == "Facture EV100100023 du 01/10/2026 : 77,39\u00a0€"
