"""Parsers and key building under generated input (hypothesis), issue 19 item 5.

* statement files (every format :func:`parse_statement_file` reads), from mutated real and sample files:
  statements or a :class:`StatementFileError`, nothing else;
* the registered connectors' parsing functions (found through the catalogue: each connector class's
  public ``parse_*`` and ``*_refusal`` functions), on mutated saved pages: a result or a
  :class:`GlaneurError`, nothing else;
* storage keys: whatever the organisation, binder, channel, provider and reference, the key stays under
  its channel's prefix, is accepted by the store, and lands inside the store's folder.

IBAN handling has its own module (``test_fuzz_iban.py``). Example counts are bounded so that the whole
module runs in well under a minute.
"""

from __future__ import annotations

import inspect
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.catalog import CONNECTORS
from glaneur.contract import Engine
from glaneur.errors import GlaneurError
from glaneur.statements import ParsedStatement, StatementFileError, parse_statement_file
from glaneur.storage import LocalStorage, UnsafeKey, document_key, safe_part

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
STATEMENTS = sorted(
    p for p in [*(FIXTURES / "statements").glob("*"), *(FIXTURES / "statements" / "real").glob("*")]
    if p.is_file() and p.suffix != ".md" and p.stat().st_size < 200_000
)
FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Bytes an attacker or a broken export would put in: markup, entities, MT940 tags, encodings' odd bytes.
NASTY = [b"<", b">", b"&", b"<!DOCTYPE d [<!ENTITY e 'x'>]>", b"&e;", b"]]>", b"<![CDATA[", b"\x00", b"\xff\xfe",
         b"\xc3\x28", b"<a>" * 3000, b"[" * 3000, b"{\"factures\": [" + b"[" * 3000,
         b"\r\n", b"\n:61:", b"\n:20:", b"\n:60F:C", b"\n-}", b"{4:", b"9" * 40, b",", b"-", b"EUR",
         b"</Stmt>", b"<Ntry>", b"<Amt Ccy=\"EUR\">", b"\xef\xbb\xbf", "é".encode("latin-1"), b"\x1b[31m"]


def mutations(data_strategy: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """A sample, then up to four edits: cut a slice, duplicate one, insert nasty or random bytes, truncate."""

    @st.composite
    def mutated(draw: st.DrawFn) -> bytes:
        data = draw(data_strategy)
        for _ in range(draw(st.integers(0, 4))):
            if not data:
                break
            i = draw(st.integers(0, len(data)))
            j = draw(st.integers(i, min(len(data), i + 400)))
            edit = draw(st.sampled_from(["cut", "duplicate", "insert", "random", "truncate"]))
            if edit == "cut":
                data = data[:i] + data[j:]
            elif edit == "duplicate":
                data = data[:j] + data[i:j] * draw(st.integers(1, 3)) + data[j:]
            elif edit == "insert":
                data = data[:i] + draw(st.sampled_from(NASTY)) + data[i:]
            elif edit == "random":
                data = data[:i] + draw(st.binary(max_size=30)) + data[j:]
            else:
                data = data[:i]
        return data

    return mutated()


def test_the_samples_are_there() -> None:
    assert len(STATEMENTS) > 30
    assert any(p.suffix == ".xml" for p in STATEMENTS) and any(p.suffix in (".sta", ".txt", ".940") for p in STATEMENTS)


@FUZZ
@given(mutations(st.sampled_from(STATEMENTS).map(lambda p: p.read_bytes())))
def test_a_mutated_statement_file_is_read_or_refused_with_a_reason(data: bytes) -> None:
    try:
        statements = parse_statement_file(data)
    except StatementFileError as refused:
        assert refused.reason and str(refused)
        return
    assert all(isinstance(s, ParsedStatement) and s.content for s in statements)


@FUZZ
@given(st.binary(max_size=2000))
def test_any_bytes_are_read_or_refused_with_a_reason(data: bytes) -> None:
    try:
        parse_statement_file(data)
    except StatementFileError as refused:
        assert refused.reason


# -- the connectors' parsers, through the catalogue ------------------------------------------------


# Browser connectors parse pages; a POWENS-engine biller reads the Powens API (tests/unit/test_powens_client.py).
BROWSER_CONNECTORS = {slug: c for slug, c in CONNECTORS.items() if c.provider.engine == Engine.PLAYWRIGHT}


def parsing_functions() -> list[tuple[str, str, object]]:
    """(provider, name, function): every public parsing function of every registered connector class
    (``parse_*`` and ``*_refusal``: page text in, records or an error out)."""
    found = []
    for slug, connector in sorted(BROWSER_CONNECTORS.items()):
        for name in sorted(dir(connector)):
            if name.startswith("_") or not (name.startswith("parse_") or name.endswith("_refusal")):
                continue
            function = getattr(connector, name)
            if callable(function) and len(inspect.signature(function).parameters) == 1:
                found.append((slug, name, function))
    return found


def saved_pages(slug: str) -> list[str]:
    return [p.read_text(encoding="utf-8") for p in sorted((FIXTURES / "pages" / slug).glob("*")) if p.is_file()]


def test_every_registered_connector_has_parsers_and_saved_pages() -> None:
    providers = {slug for slug, _, _ in parsing_functions()}
    assert providers == set(BROWSER_CONNECTORS)
    assert all(saved_pages(slug) for slug in BROWSER_CONNECTORS)


@pytest.mark.parametrize(("slug", "name", "function"), parsing_functions(), ids=lambda v: getattr(v, "__name__", v))
def test_a_connector_parser_on_a_mutated_saved_page_answers_or_raises_a_typed_error(slug, name, function) -> None:
    pages = saved_pages(slug)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(mutations(st.sampled_from(pages).map(lambda text: text.encode("utf-8"))))
    def check(page: bytes) -> None:
        try:
            function(page.decode("utf-8", errors="replace"))
        except GlaneurError as refused:
            assert str(refused)

    check()


DEEP = ["[" * 5000, '{"factures": [' + "[" * 5000, "<div>" * 2000, "<table id='factures'>" + "<tr>" * 2000]


@pytest.mark.parametrize(("slug", "name", "function"), parsing_functions(), ids=lambda v: getattr(v, "__name__", v))
def test_a_connector_parser_on_a_page_nested_thousands_deep_raises_a_typed_error(slug, name, function):
    for page in DEEP:  # what a random mutation seldom hits: a JSON reader recurses once per level
        try:
            function(page)
        except GlaneurError as refused:
            assert str(refused)


# -- storage keys ----------------------------------------------------------------------------------

PARTS = st.one_of(
    st.text(max_size=120),
    st.sampled_from(["..", ".", "/", "../../etc/passwd", "/etc/passwd", "C:\\Windows\\x", "a\x00b", "a\nb",
                     "\x1b[2J", "FA/001", "FA-001", "<b>x</b>", "[x](javascript:alert(1))", ".hidden", "~", "$HOME",
                     "x.meta.json", " ", "日本", "é" * 200]),
)


@FUZZ
@given(org=PARTS, binder=PARTS, channel=PARTS, provider=PARTS, reference=PARTS,
       day=st.dates(min_value=date(1900, 1, 1), max_value=date(9999, 12, 31)))
def test_a_document_key_never_leaves_its_channel_prefix(org, binder, channel, provider, reference, day) -> None:
    key = document_key(organization=org, binder=binder, channel=channel, document_date=day, provider=provider,
                       reference=reference)
    prefix = f"{safe_part(org)}/{safe_part(binder)}/{safe_part(channel)}/"
    assert key.startswith(prefix)
    segments = key.split("/")
    assert len(segments) == 6 and all(s and s not in (".", "..") and not s.startswith(".") for s in segments)
    assert all(c.isascii() and c.isprintable() and c not in "\\:" for c in key)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(reference=PARTS, channel=PARTS)
def test_a_document_is_filed_inside_the_store_folder(tmp_path, reference, channel) -> None:
    root = tmp_path / "store"
    store = LocalStorage(root)
    key = document_key(organization="org", binder="factures", channel=channel, document_date=date(2026, 1, 2),
                       provider="papeterie-dupont", reference=reference)
    store.put(key, b"%PDF-1.4\n", metadata={"reference": reference})
    assert store.get(key) == b"%PDF-1.4\n"
    assert store.metadata(key)["reference"] == reference
    for path in root.rglob("*"):
        assert path.resolve().is_relative_to(root.resolve())


@FUZZ
@given(st.text(max_size=200))
def test_a_raw_key_is_stored_inside_the_folder_or_refused_as_unsafe(tmp_path_factory, text) -> None:
    root = tmp_path_factory.mktemp("raw")
    try:
        LocalStorage(root).put(text, b"x", metadata={})
    except UnsafeKey:
        return
    for path in root.rglob("*"):
        assert path.resolve().is_relative_to(root.resolve())
