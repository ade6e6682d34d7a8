"""Pure pieces of the download and listing guards (issue 14): Retry-After, origins, pagination bounds."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime

import pytest

from connectors.base import Pagination, _origin, parse_retry_after
from glaneur.contract import RemoteDocument
from glaneur.errors import InvalidDocument, PortalChanged, StorageError
from glaneur.invoices.collection import documents_not_filed


def rows(*references: str) -> list[RemoteDocument]:
    return [RemoteDocument(r, date(2026, 1, 1), f"/f/{r}/pdf") for r in references]


@pytest.mark.parametrize(
    ("value", "expected"), [(None, None), ("", None), ("30", 30.0), (" 5 ", 5.0), ("soon", None), ("-3", None)]
)
def test_retry_after_in_seconds(value, expected) -> None:
    assert parse_retry_after(value) == expected


def test_retry_after_as_an_http_date() -> None:
    later = datetime.now(UTC) + timedelta(seconds=120)
    assert 100 < parse_retry_after(format_datetime(later, usegmt=True)) <= 120
    assert parse_retry_after(format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)) == 0.0


def test_origins_compare_scheme_host_and_port() -> None:
    assert _origin("http://127.0.0.1:8701/factures/1/pdf") == _origin("HTTP://127.0.0.1:8701")
    assert _origin("https://portal.example/x") == _origin("https://PORTAL.example:443/y")
    assert _origin("http://127.0.0.1:8701/") != _origin("http://127.0.0.1:8702/")
    assert _origin("http://portal.example/") != _origin("https://portal.example/")
    assert _origin("http://portal.example@evil.example/") != _origin("http://portal.example/")
    assert _origin("http://portal.example:notaport/") != _origin("http://portal.example/")


def test_pagination_stops_on_an_address_already_read() -> None:
    walk = Pagination("Portail", max_pages=100)
    walk.visit("http://p/factures?page=1", rows("A"))
    walk.visit("http://p/factures?page=2", rows("B"))
    with pytest.raises(PortalChanged, match=r"already read \(/factures\?page=1.*page=1 → /factures\?page=2 → /factures\?page=1"):
        walk.visit("http://p/factures?page=1", rows("A"))


def test_pagination_stops_on_rows_already_read_under_another_address() -> None:
    walk = Pagination("Portail", max_pages=100)
    walk.visit("http://p/factures?page=1", rows("A", "B"))
    with pytest.raises(PortalChanged, match="already read"):
        walk.visit("http://p/factures?page=1&x=2", rows("A", "B"))
    empty = Pagination("Portail", max_pages=100)
    empty.visit("http://p/a", [])
    empty.visit("http://p/b", [])  # two empty pages are not the same page


def test_pagination_is_full_after_the_page_limit_without_calling_it_a_changed_portal() -> None:
    walk = Pagination("Portail", max_pages=3)
    for page in range(1, 4):
        assert not walk.full  # a page to read: the walk may go on
        walk.visit(f"http://p/factures?page={page}", rows(str(page)))
    assert walk.full and walk.visited == ["/factures?page=1", "/factures?page=2", "/factures?page=3"]
    with pytest.raises(RuntimeError, match="past the 3-page bound"):  # the listing stops before: a bug otherwise
        walk.visit("http://p/factures?page=4", rows("4"))


def test_pagination_still_stops_a_loop_on_the_last_page_it_may_read() -> None:
    walk = Pagination("Portail", max_pages=2)
    walk.visit("http://p/factures?page=1", rows("A"))
    with pytest.raises(PortalChanged, match="came back to a page already read"):
        walk.visit("http://p/factures?page=1", rows("A"))


def test_documents_not_filed_names_each_and_keeps_the_first_status() -> None:
    one = InvalidDocument("Invoice A is not a PDF.")
    assert documents_not_filed([one]) is one
    both = documents_not_filed([StorageError("Conflict at k."), one])
    assert isinstance(both, StorageError) and not isinstance(both, PortalChanged)
    assert both.detail == "2 documents were not filed: Conflict at k. Invoice A is not a PDF."


# -- the sandbox's misbehaviour on demand (what the end-to-end tests of issue 14 switch on) --------


def _logged_in_papeterie():
    import re

    from fastapi.testclient import TestClient

    from sandbox.portals import papeterie_dupont_app

    client = TestClient(papeterie_dupont_app(), follow_redirects=False)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)[1]
    client.post("/login", data={"username": "acme-bis", "password": "papier-acme-bis", "csrf_token": token})
    return client


def test_sandbox_invoice_numbers_with_a_slash_download_under_an_escaped_link() -> None:
    client = _logged_in_papeterie()
    assert client.post("/_sandbox/accounts/acme-bis/invoices", json={"number": "FA/001"}).status_code == 201
    assert client.post("/_sandbox/accounts/acme-bis/invoices", json={"number": "FA/001"}).status_code == 409

    page = client.get("/factures?page=1").text

    assert 'href="/factures/FA%2F001/pdf"' in page
    response = client.get("/factures/FA%2F001/pdf")
    assert response.status_code == 200 and response.content.startswith(b"%PDF-")


def test_sandbox_odd_downloads_and_lists() -> None:
    client = _logged_in_papeterie()
    client.post("/_sandbox/accounts/acme-bis/invoices", json={"number": "BIG", "size": 300_000})
    client.post("/_sandbox/accounts/acme-bis/invoices", json={"number": "CHUNKED", "size": 1000, "announce_size": False})
    client.post("/_sandbox/accounts/acme-bis/invoices", json={"number": "AWAY", "link": "http://elsewhere.test/f.pdf"})
    client.post("/_sandbox/accounts/acme-bis/invoices", json={"number": "MOVED", "redirect": "http://elsewhere.test/g"})
    client.post("/_sandbox/accounts/acme-bis/list", json={"loop": True})

    big = client.get("/factures/BIG/pdf")
    chunked = client.get("/factures/CHUNKED/pdf")
    page = client.get("/factures?page=1").text

    assert big.headers["content-length"] == "300000" and len(big.content) == 300_000
    assert big.content.startswith(b"%PDF-")
    assert "content-length" not in chunked.headers and len(chunked.content) == 1000
    assert 'href="http://elsewhere.test/f.pdf"' in page
    assert client.get("/factures/MOVED/pdf").headers["location"] == "http://elsewhere.test/g"
    assert 'class="next" href="/factures?page=1"' in page  # one page only, and "next" loops back to it
    served = {(r["path"], r["status"]) for r in client.get("/_sandbox/served").json()}
    assert {("/factures/BIG/pdf", 200), ("/factures", 200), ("/factures/MOVED/pdf", 302)} <= served

    client.post("/_sandbox/reset")
    assert client.get("/_sandbox/served").json() == []
