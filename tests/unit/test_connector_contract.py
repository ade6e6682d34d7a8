"""The connector contract, checked on every connector the catalogue registers (never a hand-written list).

Adding a supplier is one module, one line in :mod:`connectors.catalog`, and its saved pages in
``tests/fixtures/pages/<slug>/`` with a ``pages.json`` saying, for each saved page, what the connector
must make of it::

    {"login_erreur.html": {"path": "/login", "is": ["login"], "login_refusal": "WrongCredentials"},
     "factures_page1.html": {"path": "/factures", "is": ["home", "invoices"],
                             "listing": {"count": 10, "first": {"reference": "PD-1001-0023", "amount": "1082.58"}}},
     "factures_nouveau_site.html": {"path": "/factures", "is": ["home"], "listing": "PortalChanged"},
     "double_authentification_code.html": {"path": "/double-authentification", "is": ["second_factor"],
                                           "second_factor": "code"}}

The rules (the kit's docstring, "Saved pages and pages.json", says the same for connector authors):

* every ``.html`` / ``.json`` file of the folder has an entry in ``pages.json``, and every entry a file;
* ``is`` (with ``path``, the address the page was served at; its query is ignored): exactly the declared
  page names recognised there (address regex and marker, as navigation does);
* ``listing``: the documents its listing parser reads: ``count`` (references distinct) and ``first``, the
  fields of the **newest** document (after sorting newest first, not the first row), compared as text
  (dates ISO, amounts as ``Decimal`` prints them); or the name of the error of :mod:`glaneur.errors` it raises;
* ``login_refusal`` / ``second_factor_refusal``: the typed error read from it; ``second_factor``: the kind
  it asks (``totp``, ``code``, ``app``); ``invoice_total``: on an invoice's own page (``invoice_detail``),
  the total the listing's ``total_on_detail`` reads there (as ``Decimal`` prints it);
* together, the saved pages show every page the connector declares (``invoices`` aside: a JSON listing's
  page is its API), a listing with documents, exactly the second-factor kinds the catalogue entry lists,
  and an ``invoice_total`` when the listing reads totals on invoice pages.

``list_documents(since)``: ``since`` None is a full pass (every document the portal lists: the first
collection of an account, then every ``GLANEUR_FULL_PASS_EVERY_DAYS``); otherwise it is the account's
cursor (the date of the newest document filed) minus the look-back (``GLANEUR_LOOKBACK_DAYS``), and the
connector returns every document dated on or after it, newest first (more is harmless, fewer loses
invoices). Checked here through :func:`connectors.kit.newest_first` on the saved listings, and end to
end in ``tests/e2e/test_connectors_browser.py``.
"""

from __future__ import annotations

import inspect
import json
import re
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from connectors import catalog
from connectors.base import PortalConnector
from connectors.code_lines import code_lines
from connectors.kit import Connector, HtmlTable, newest_first
from glaneur import errors
from glaneur.contract import Engine, RemoteDocument, SecondFactorKind

PAGES = Path(__file__).resolve().parents[1] / "fixtures" / "pages"
# Browser connectors (engine PLAYWRIGHT). A POWENS-engine biller declares no pages: its contract is the Powens
# client's (tests/unit/test_powens_client.py, tests/e2e/test_powens_billers.py).
SLUGS = sorted(slug for slug, connector in catalog.CONNECTORS.items() if connector.provider.engine == Engine.PLAYWRIGHT)
MAX_CODE_LINES = 60


def saved(slug: str) -> dict[str, dict]:
    manifest = PAGES / slug / "pages.json"
    assert manifest.is_file(), f"{slug}: no saved pages ({manifest} lists them); see this test's docstring"
    return json.loads(manifest.read_text(encoding="utf-8"))


def read(slug: str, name: str) -> str:
    return (PAGES / slug / name).read_text(encoding="utf-8")


def error(name: str) -> type[Exception]:
    found = getattr(errors, name, None)
    assert isinstance(found, type) and issubclass(found, errors.GlaneurError), f"{name} is not in glaneur.errors"
    return found


def test_the_catalogue_has_connectors() -> None:
    assert SLUGS, "the catalogue registers no connector"


@pytest.mark.parametrize("slug", SLUGS)
def test_the_connector_is_its_catalogue_entry(slug: str) -> None:
    connector, provider = catalog.CONNECTORS[slug], catalog.PROVIDERS[slug]
    assert issubclass(connector, PortalConnector)
    assert connector.provider is provider and provider.compatible
    assert provider.slug == slug and provider.name and provider.description
    assert {"login", "home", "invoices"} <= set(connector.pages), "a connector declares its login, home and list"
    for name, spec in connector.pages.items():
        re.compile(spec.url)
        assert spec.marker, f"page {name} has no marker"


@pytest.mark.parametrize("slug", SLUGS)
def test_declared_pages_and_second_factor_kinds_agree_with_the_catalogue(slug: str) -> None:
    connector, provider = catalog.CONNECTORS[slug], catalog.PROVIDERS[slug]
    kinds = set(provider.second_factor_kinds)
    assert ("second_factor" in connector.pages) == bool(kinds), (
        f"{slug}: the catalogue lists second-factor kinds {sorted(kinds)}; the connector must declare its "
        "second-factor form exactly when there are some"
    )
    if issubclass(connector, Connector):
        assert len(provider.login_fields) == 2, "a login form has a login and a password field"
        form = connector.second_factor
        if form is not None and SecondFactorKind.CODE in kinds:
            assert form.resend, "a code sent by SMS or e-mail is told apart by its resend form"
        if form is not None and form.expired:
            assert form.resend, "an expired code is answered by asking a new one (the resend form)"


@pytest.mark.parametrize("slug", SLUGS)
def test_the_connector_module_is_at_most_60_code_lines(slug: str) -> None:
    module = inspect.getmodule(catalog.CONNECTORS[slug])
    assert module is not None and module.__file__
    counted = code_lines(Path(module.__file__).read_text(encoding="utf-8"))
    assert counted <= MAX_CODE_LINES, f"{module.__name__} has {counted} code lines (at most {MAX_CODE_LINES})"


@pytest.mark.parametrize("slug", SLUGS)
def test_every_saved_page_is_listed_and_they_cover_the_declared_pages(slug: str) -> None:
    connector, manifest = catalog.CONNECTORS[slug], saved(slug)
    on_disk = {p.name for p in (PAGES / slug).iterdir() if p.suffix in (".html", ".json") and p.name != "pages.json"}
    assert on_disk == set(manifest), "pages.json says what to make of every saved page"
    recognised = {name for entry in manifest.values() for name in entry.get("is", [])}
    assert set(connector.pages) - {"invoices"} <= recognised, "a saved page shows each declared page"
    assert any(isinstance(e.get("listing"), dict) and e["listing"]["count"] for e in manifest.values())
    if getattr(getattr(connector, "listing", None), "total_on_detail", None) is not None:
        assert any("invoice_total" in e for e in manifest.values()), "a saved invoice page shows the total read there"
    asked = {SecondFactorKind(e["second_factor"]) for e in manifest.values() if "second_factor" in e}
    assert asked == set(catalog.PROVIDERS[slug].second_factor_kinds), "a saved page asks each declared kind"


def cases(key: str) -> list[tuple[str, str]]:
    return [(slug, name) for slug in SLUGS for name, entry in saved(slug).items() if key in entry]


@pytest.mark.parametrize(("slug", "name"), cases("is"))
def test_the_pages_table_recognises_the_saved_page(slug: str, name: str) -> None:
    entry = saved(slug)[name]
    assert catalog.CONNECTORS[slug].recognise(read(slug, name), entry["path"]) == set(entry["is"])


@pytest.mark.parametrize(("slug", "name"), cases("listing"))
def test_the_listing_parser_reads_the_saved_list(slug: str, name: str) -> None:
    connector, expected = catalog.CONNECTORS[slug], saved(slug)[name]["listing"]
    if isinstance(expected, str):
        with pytest.raises(error(expected)):
            connector.parse_listing(read(slug, name))
        return
    documents = connector.parse_listing(read(slug, name))
    assert len(documents) == expected["count"] == len({d.reference for d in documents})
    for document in documents:
        assert isinstance(document, RemoteDocument) and document.reference and document.download_url
        assert isinstance(document.document_date, date)
        assert document.amount is None or isinstance(document.amount, Decimal)
        assert re.fullmatch(r"[A-Z]{3}", document.currency)
    first = newest_first(documents, None)[0]
    for field, value in expected.get("first", {}).items():
        assert str(getattr(first, field)) == value, field
    if isinstance(connector.listing, HtmlTable) and "amount_due" in _fields(connector.listing):
        assert "amount" not in _fields(connector.listing), "the amount due is never the invoice's amount"
    # what since means: every document dated on or after it, newest first
    since = sorted(d.document_date for d in documents)[len(documents) // 2]
    kept = newest_first(documents, since)
    assert {d.reference for d in kept} == {d.reference for d in documents if d.document_date >= since}
    assert [d.document_date for d in kept] == sorted((d.document_date for d in kept), reverse=True)
    assert newest_first(documents, since + timedelta(days=36500)) == []


def _fields(listing: HtmlTable) -> set[str]:
    return {spec if isinstance(spec, str) else spec[0] for spec in listing.columns.values()}


@pytest.mark.parametrize(("slug", "name"), cases("invoice_total"))
def test_the_total_read_on_the_saved_invoice_page(slug: str, name: str) -> None:
    entry, detail = saved(slug)[name], catalog.CONNECTORS[slug].listing.total_on_detail
    assert detail is not None, "invoice_total goes with a listing that reads totals on invoice pages"
    assert "invoice_detail" in entry["is"]
    total = detail.parse(read(slug, name), catalog.PROVIDERS[slug].name, entry.get("currency", "EUR"))
    assert str(total) == entry["invoice_total"]


@pytest.mark.parametrize(("slug", "name"), cases("login_refusal"))
def test_the_login_refusal_read_from_the_saved_page(slug: str, name: str) -> None:
    refusal = catalog.CONNECTORS[slug].login_refusal(read(slug, name))
    assert type(refusal) is error(saved(slug)[name]["login_refusal"])
    assert catalog.PROVIDERS[slug].name in str(refusal)


@pytest.mark.parametrize(("slug", "name"), cases("second_factor"))
def test_the_second_factor_read_from_the_saved_page(slug: str, name: str) -> None:
    challenge = catalog.CONNECTORS[slug].parse_second_factor(read(slug, name))
    assert challenge.kind is SecondFactorKind(saved(slug)[name]["second_factor"])
    assert challenge.prompt and "<" not in challenge.prompt


@pytest.mark.parametrize(("slug", "name"), cases("second_factor_refusal"))
def test_the_second_factor_refusal_read_from_the_saved_page(slug: str, name: str) -> None:
    refusal = catalog.CONNECTORS[slug].second_factor_refusal(read(slug, name))
    assert type(refusal) is error(saved(slug)[name]["second_factor_refusal"])
