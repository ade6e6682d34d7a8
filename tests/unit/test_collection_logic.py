"""Unit tests for collection bookkeeping that needs no browser: statuses, cursors, PDF checks, escaping."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import date
from decimal import Decimal

import pytest

from glaneur.contract import FetchedDocument, RemoteDocument
from glaneur.errors import (
    GlaneurError,
    InvalidDocument,
    PortalChanged,
    PortalUnavailable,
    RateLimited,
    StorageError,
    WrongCredentials,
)
from glaneur.invoices.collection import listing_since, validate_pdf
from glaneur.models import Account
from glaneur.settings import Settings
from glaneur.statuses import STATUS_TABLE, Status, describe
from tasks.browser import redact_trace
from tasks.history import artifact_key, md_escape


def _fetched(content: bytes, content_type: str = "application/pdf") -> FetchedDocument:
    return FetchedDocument(RemoteDocument("F-1", date(2026, 1, 2), "/f/1.pdf", Decimal("12.50")), content, content_type)


def test_every_status_has_advice_and_only_transient_ones_are_retried():
    assert set(STATUS_TABLE) == set(Status)
    for info in STATUS_TABLE.values():
        assert len(info.message) > 20
    retried = {status for status, info in STATUS_TABLE.items() if info.retried}
    assert retried == {Status.PORTAL_UNAVAILABLE, Status.RATE_LIMITED, Status.STORAGE_ERROR}


@pytest.mark.parametrize(
    ("error", "retried"),
    [(WrongCredentials(), False), (PortalChanged(), False), (PortalUnavailable(), True), (RateLimited(), True),
     (StorageError(), True)],
)
def test_errors_carry_their_status(error: GlaneurError, retried: bool):
    assert error.retried is retried
    assert describe(error.status).message in error.user_message


def test_retry_condition_never_retries_a_wrong_password():
    from prefect.states import Failed

    from tasks.collect import is_transient

    assert is_transient(None, None, Failed(data=PortalUnavailable("503"))) is True
    assert is_transient(None, None, Failed(data=WrongCredentials("refused"))) is False
    assert is_transient(None, None, Failed(data=ValueError("bug"))) is False


def test_listing_is_incremental_with_a_look_back_and_periodic_full_pass():
    settings = Settings(lookback_days=45, full_pass_every_days=7)
    today = date(2026, 11, 23)
    assert listing_since(Account(channel_id=1, position=1, login="a"), today, settings) is None
    account = Account(channel_id=1, position=1, login="a", cursor=date(2026, 11, 1), last_full_pass=date(2026, 11, 20))
    assert listing_since(account, today, settings) == date(2026, 9, 17)
    account.last_full_pass = date(2026, 11, 16)
    assert listing_since(account, today, settings) is None


def test_a_pdf_passes_and_anything_else_is_refused_with_the_reference_named():
    validate_pdf(_fetched(b"%PDF-1.4\n..."), max_bytes=100)
    with pytest.raises(InvalidDocument, match="F-1 is not a PDF.*text/html"):
        validate_pdf(_fetched(b"<html>Erreur</html>", "text/html"), max_bytes=100)
    with pytest.raises(InvalidDocument, match="empty file for invoice F-1"):
        validate_pdf(_fetched(b""), max_bytes=100)
    with pytest.raises(InvalidDocument, match="over the 100-byte limit"):
        validate_pdf(_fetched(b"%PDF-" + b"x" * 200), max_bytes=100)


def test_markdown_escaping_neutralises_links_images_and_tables():
    hostile = "![x](javascript:alert(1)) <img src=x onerror=alert(1)> | col\nnext"
    escaped = md_escape(hostile)
    assert "](" not in escaped and "<img" not in escaped
    assert "\\|" in escaped and "\n" not in escaped
    assert artifact_key("Demo_Papeterie Dupont!") == "channel-demo-papeterie-dupont"


def test_trace_redaction_removes_cookies_and_authorization():
    event = {"type": "resource-snapshot", "snapshot": {"request": {"headers": [
        {"name": "Cookie", "value": "session=SECRET"}, {"name": "Accept", "value": "text/html"}],
        "cookies": [{"name": "session", "value": "SECRET"}]},
        "response": {"headers": [{"name": "Set-Cookie", "value": "session=SECRET2"}]}}}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("trace.network", json.dumps(event) + "\n")
        archive.writestr("resources/page.html", b"<p>kept</p>")
    redacted = zipfile.ZipFile(io.BytesIO(redact_trace(buffer.getvalue())))
    network = redacted.read("trace.network")
    assert b"SECRET" not in network and b"text/html" in network
    assert redacted.read("resources/page.html") == b"<p>kept</p>"
