"""`collect_channel` against portals and stores that misbehave (issue 14, items 1, 2, 4, 8, 19, 21).

Real Prefect server, real Chromium, the sandbox portals with their misbehaviour switched on through
``/_sandbox``, real filing (local folder, or moto's S3 server behind a proxy that ignores
conditional writes). Each test shows that one bad document or page is reported as such and that
the rest of the account is still collected.
"""

from __future__ import annotations

import hashlib
import os
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from datetime import date

import boto3
import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response
from sqlmodel import select

from glaneur.contract import Credentials
from glaneur.db import session_scope
from glaneur.models import Account
from glaneur.settings import get_settings, reset_settings
from glaneur.storage import document_key, get_storage
from sandbox.server import serve_app
from tests.e2e.s3_servers import moto_server, store_ignoring_conditional_writes
from tests.e2e.test_collect_channel import channel_state, filed_documents, make_channel, run, runs, task_run_counts

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

PD = "papeterie-dupont"
NEW_DAY = date(2026, 11, 5)  # after every initial invoice: listed first


def control(portals, path: str, body: dict | None = None, provider: str = PD) -> httpx.Response:
    response = httpx.post(f"{portals.urls[provider]}/_sandbox{path}", json=body, trust_env=False)
    response.raise_for_status()
    return response


def add_invoice(portals, login: str, provider: str = PD, **body: object) -> str:
    body = {"date": NEW_DAY.isoformat(), **body}
    return control(portals, f"/accounts/{login}/invoices", body, provider).json()["number"]


def served(portals, provider: str = PD) -> list[dict]:
    """The requests the portal served, oldest first, without the favicon Chromium asks for by itself."""
    response = httpx.get(f"{portals.urls[provider]}/_sandbox/served", trust_env=False)
    response.raise_for_status()
    return [r for r in response.json() if r["path"] != "/favicon.ico"]


def cursor_of(login: str) -> date | None:
    with session_scope() as session:
        return session.exec(select(Account).where(Account.login == login)).one().cursor


def assert_each_object_holds_its_own_bytes(expected_count: int) -> None:
    documents = filed_documents()
    assert len(documents) == expected_count
    storage = get_storage(get_settings())
    assert len({d.storage_key for d in documents}) == expected_count
    for document in documents:
        content = storage.get(document.storage_key)
        assert hashlib.sha256(content).hexdigest() == document.sha256 == storage.metadata(document.storage_key)["sha256"]


# -- items 1 and 2: references that sanitise alike; conflicts stay on their document ---------------


def test_references_that_sanitise_alike_are_both_filed(glaneur_home, portals):
    slug = make_channel(PD, ("acme-bis", None))
    add_invoice(portals, "acme-bis", number="FA/001")
    add_invoice(portals, "acme-bis", number="FA-001")

    summary = run(slug)

    assert summary["status"] == "ok", summary
    assert summary["new"] == 7
    by_reference = {d.provider_reference: d for d in filed_documents()}
    assert {"FA/001", "FA-001"} <= set(by_reference)
    assert by_reference["FA/001"].storage_key != by_reference["FA-001"].storage_key
    assert by_reference["FA/001"].sha256 != by_reference["FA-001"].sha256
    assert_each_object_holds_its_own_bytes(7)
    assert cursor_of("acme-bis") == NEW_DAY

    again = run(slug)  # nothing is filed twice, nothing is in conflict
    assert again["status"] == "ok" and again["new"] == 0, again


def test_a_conflict_is_reported_on_its_document_and_the_rest_is_filed(glaneur_home, portals):
    slug = make_channel(PD, ("acme-bis", None))
    number = add_invoice(portals, "acme-bis", number="FA/002")
    storage = get_storage(get_settings())
    taken = document_key(organization="org", binder="factures", channel=slug, document_date=NEW_DAY,
                         provider=PD, reference=number)
    storage.put(taken, b"%PDF-1.4 filed by hand, other bytes\n", metadata={})

    summary = run(slug)

    assert summary["status"] == "storage_error", summary
    assert "FA/002" not in {d.provider_reference for d in filed_documents()}
    assert taken in summary["message"] and "not overwritten" in summary["message"]
    assert summary["new"] == 5  # the invoices listed after the conflicting one were filed
    assert storage.get(taken) == b"%PDF-1.4 filed by hand, other bytes\n"
    assert runs()[-1].status == "storage_error" and runs()[-1].new_documents == 5
    assert cursor_of("acme-bis") == date(2026, 10, 5)  # up to what was filed: the next run lists FA/002 again
    assert task_run_counts(runs()[-1].flow_run_id)["download-and-file"] == 1  # a conflict is not retried


@pytest.fixture
def lax_s3(monkeypatch, glaneur_home) -> Iterator[str]:
    """GLANEUR_STORAGE=s3 on moto's server, through a proxy that ignores If-None-Match; yields the bucket."""
    bucket = f"glaneur-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAGLANEURTESTING00")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "glaneur-test-secret-never-printed")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    with moto_server() as endpoint, store_ignoring_conditional_writes(endpoint) as lax_endpoint:
        boto3.session.Session().client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
        monkeypatch.setenv("GLANEUR_STORAGE", "s3")
        monkeypatch.setenv("GLANEUR_S3_BUCKET", bucket)
        monkeypatch.setenv("GLANEUR_S3_ENDPOINT_URL", lax_endpoint)
        monkeypatch.setenv("GLANEUR_S3_REGION", "us-east-1")
        reset_settings()
        yield bucket
    reset_settings()


def test_on_a_store_that_ignores_conditional_writes_no_object_is_replaced(lax_s3, portals):
    slug = make_channel(PD, ("acme-bis", None))
    add_invoice(portals, "acme-bis", number="FA/001")
    add_invoice(portals, "acme-bis", number="FA-001")
    number = add_invoice(portals, "acme-bis", number="FA/003")
    storage = get_storage(get_settings())
    taken = document_key(organization="org", binder="factures", channel=slug, document_date=NEW_DAY,
                         provider=PD, reference=number)
    storage.put(taken, b"%PDF-1.4 filed before, other bytes\n", metadata={})

    summary = run(slug)

    assert summary["status"] == "storage_error", summary  # the planted object, and only it
    assert "FA/003" in summary["message"] or taken in summary["message"]
    assert storage.get(taken) == b"%PDF-1.4 filed before, other bytes\n"
    assert_each_object_holds_its_own_bytes(7)
    assert len(storage.keys()) == 8


# -- item 4: a document far over the size limit ------------------------------------------------------


def test_an_oversized_document_is_refused_alone_without_holding_it_in_memory(glaneur_home, portals, monkeypatch):
    limit = 1024 * 1024
    size = 64 * 1024 * 1024
    monkeypatch.setenv("GLANEUR_MAX_DOCUMENT_BYTES", str(limit))
    reset_settings()
    slug = make_channel(PD, ("acme-bis", None))
    announced = add_invoice(portals, "acme-bis", number="BIG-1", size=size)
    chunked = add_invoice(portals, "acme-bis", number="BIG-2", size=size, announce_size=False)

    summary, peak = run_measuring_memory(slug)

    assert peak < size / 4, f"peak Python memory {peak} bytes for a {size}-byte document"
    assert summary["status"] == "portal_changed", summary
    assert summary["new"] == 5
    assert {announced, chunked}.isdisjoint(d.provider_reference for d in filed_documents())
    assert f"{announced}: Papeterie Dupont announced {size} bytes" in summary["message"]
    assert f"{chunked}: Papeterie Dupont sent more than {limit} bytes" in summary["message"]
    assert "GLANEUR_MAX_DOCUMENT_BYTES" in summary["message"]
    assert cursor_of("acme-bis") == date(2026, 10, 5)  # the newest invoice filed


# -- item 19: downloads stay on the portal's origin -----------------------------------------------


@pytest.fixture
def elsewhere() -> Iterator[tuple[str, list[str]]]:
    """Another server (another origin) that would serve a PDF; yields its URL and the paths it was asked for."""
    hits: list[str] = []
    app = FastAPI()

    @app.get("/probe")
    async def probe() -> dict:
        return {}

    @app.get("/{path:path}")
    async def anything(path: str, request: Request) -> Response:
        hits.append(f"/{path} cookie={request.headers.get('cookie', '')}")
        return Response(b"%PDF-1.4 from elsewhere\n%%EOF\n", media_type="application/pdf")

    handle = serve_app(app, "elsewhere", "/probe")
    try:
        yield handle.urls["elsewhere"], hits
    finally:
        handle.stop()


@pytest.mark.parametrize("provider, login", [(PD, "acme-bis"), ("energie-verte", "acme-bis@client.test")])
def test_documents_are_fetched_only_from_the_portal_origin(glaneur_home, portals, elsewhere, provider, login):
    other, hits = elsewhere
    slug = make_channel(provider, (login, None))
    linked = add_invoice(portals, login, provider, number="EXT-1", link=f"{other}/facture.pdf")
    redirected = add_invoice(portals, login, provider, number="EXT-2", redirect=f"{other}/redirige.pdf")

    summary = run(slug)

    assert hits == []  # nothing was ever asked of the other origin, let alone with the portal's cookies
    assert summary["status"] == "portal_changed", summary
    assert summary["new"] == 5
    assert {linked, redirected}.isdisjoint(d.provider_reference for d in filed_documents())
    assert summary["message"].count("outside the portal's own origin") == 2
    assert other in summary["message"]


# -- item 8: invoice lists that never end ----------------------------------------------------------


@pytest.mark.timeout(180)
def test_a_next_link_back_to_page_one_stops_as_portal_changed_with_evidence(glaneur_home, portals):
    slug = make_channel(PD, ("acme", None))
    control(portals, "/accounts/acme/list", {"loop": True})

    summary = run(slug)

    assert summary["status"] == "portal_changed", summary
    assert "came back to a page already read (/factures?page=1" in summary["message"]
    assert [k.rsplit("/", 1)[-1] for k in runs()[-1].evidence_keys.split(",")] == ["screenshot.png", "trace.zip"]
    assert filed_documents() == []
    assert task_run_counts(runs()[-1].flow_run_id)["list-documents"] == 1  # not retried
    lists = [r for r in served(portals) if r["path"] == "/factures"]
    assert len(lists) == 1 + 4  # the landing page after login, then pages 1, 2, 3 and page 1 again


@pytest.mark.timeout(180)
def test_a_list_longer_than_the_page_limit_is_more_to_collect_not_a_changed_portal(glaneur_home, portals, monkeypatch):
    monkeypatch.setenv("GLANEUR_MAX_LIST_PAGES", "2")
    reset_settings()
    slug = make_channel(PD, ("acme", None))

    summary = run(slug)  # 23 invoices, 3 pages: two read, the third left for the next run (tests/e2e/test_long_list.py)

    assert summary["status"] == "more_to_collect", summary
    assert summary["new"] == 20 and "The next run goes on from '/factures?page=3'" in summary["message"]
    assert runs()[-1].evidence_keys == ""  # nothing changed on the portal: no screenshot, no trace


# -- item 21: slow pages, Retry-After ---------------------------------------------------------------


def test_a_slow_page_within_the_navigation_timeout_is_collected(glaneur_home, portals, monkeypatch):
    monkeypatch.setenv("GLANEUR_NAVIGATION_TIMEOUT_SECONDS", "40")
    reset_settings()
    slug = make_channel(PD, ("acme-bis", None))
    control(portals, "/accounts/acme-bis/list", {"slow_redirect": 20})  # well past the 5 s that used to be fixed

    summary = run(slug)

    assert summary["status"] == "ok", summary
    assert summary["new"] == 5


def test_content_shown_late_within_the_navigation_timeout_is_collected(glaneur_home, portals, monkeypatch):
    """The page has loaded; its script shows the list later (what used to hit the fixed 5 s as portal_changed)."""
    monkeypatch.setenv("GLANEUR_NAVIGATION_TIMEOUT_SECONDS", "40")
    reset_settings()
    slug = make_channel(PD, ("acme-bis", None))
    control(portals, "/accounts/acme-bis/list", {"late_render": 15})

    summary = run(slug)

    assert summary["status"] == "ok", summary
    assert summary["new"] == 5


def test_a_page_still_loading_after_the_timeout_is_unavailable_and_retried(glaneur_home, portals, monkeypatch):
    monkeypatch.setenv("GLANEUR_NAVIGATION_TIMEOUT_SECONDS", "2")
    monkeypatch.setenv("GLANEUR_RETRIES", "1")
    reset_settings()
    slug = make_channel(PD, ("acme-bis", None))
    control(portals, "/accounts/acme-bis/list", {"slow_redirect": 8})

    summary = run(slug)

    assert summary["status"] == "portal_unavailable", summary
    assert "had not finished loading after 2 s" in summary["message"]
    assert task_run_counts(runs()[-1].flow_run_id)["list-documents"] == 2
    assert channel_state(slug).status == "portal_unavailable"


def test_retry_after_is_honoured_before_the_retry(glaneur_home, portals):
    slug = make_channel(PD, ("acme-bis", None))
    control(portals, "/rate-limit", {"retry_after": 3, "requests": 1})

    summary = run(slug)

    assert summary["status"] == "ok", summary
    assert task_run_counts(runs()[-1].flow_run_id)["authenticate"] == 2
    refused, following = served(portals)[:2]
    assert refused["status"] == 429
    assert following["at"] - refused["at"] >= 3, (refused, following)


def test_a_retry_after_longer_than_the_maximum_is_not_retried(glaneur_home, portals, monkeypatch):
    monkeypatch.setenv("GLANEUR_MAX_RETRY_AFTER_SECONDS", "60")
    reset_settings()
    slug = make_channel(PD, ("acme-bis", None))
    control(portals, "/rate-limit", {"retry_after": 3600})
    started = time.monotonic()

    summary = run(slug)

    assert summary["status"] == "rate_limited", summary
    assert "asked to wait 3600 s" in summary["message"] and "GLANEUR_MAX_RETRY_AFTER_SECONDS" in summary["message"]
    assert task_run_counts(runs()[-1].flow_run_id)["authenticate"] == 1
    assert [r["status"] for r in served(portals)] == [429]
    assert time.monotonic() - started < 60


def test_an_origin_the_connector_declares_is_fetched_without_the_portal_cookies(portals, elsewhere):
    from connectors.papeterie_dupont import PapeterieDupont
    from tasks.browser import launch_browser

    other, hits = elsewhere
    # Another host name for the same server: cookies are scoped by host, not port, so 127.0.0.1:other-port
    # would rightly get the portal's cookies, as a browser would send them.
    other = other.replace("127.0.0.1", "localhost")

    class WithStorageHost(PapeterieDupont):
        document_origins = (other,)

    number = add_invoice(portals, "acme-bis", number="CDN-1", link=f"{other}/cdn/facture.pdf")
    with launch_browser(get_settings()) as browser:
        context = browser.new_context()
        connector = WithStorageHost(context.new_page(), portals.urls[PD])
        connector.login(Credentials("acme-bis", "papier-acme-bis"))
        document = next(d for d in connector.list_documents(None) if d.reference == number)
        fetched = connector.fetch(document)
        context.close()

    assert fetched.content.startswith(b"%PDF-1.4 from elsewhere")
    assert hits == ["/cdn/facture.pdf cookie="]  # the portal's session cookie stays with the portal


def test_retry_after_of_a_503_is_honoured_too(glaneur_home, portals):
    slug = make_channel(PD, ("instable", None))  # every other list request answers 503 with Retry-After: 5

    summary = run(slug)

    assert summary["status"] == "ok", summary
    lists = [r for r in served(portals) if r["path"] == "/factures"]
    unavailable = next(i for i, r in enumerate(lists) if r["status"] == 503)
    assert lists[unavailable + 1]["at"] - lists[unavailable]["at"] >= 5, lists


def run_measuring_memory(slug: str) -> tuple[dict, int]:
    """One collection of ``slug`` and the peak of Python memory it traced (the flow's imports done before)."""
    import flows.collect_channel  # noqa: F401  - imports are not what is measured

    tracemalloc.start()
    try:
        summary = run(slug)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return summary, peak
