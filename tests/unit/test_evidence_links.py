"""Evidence and history as data ops read them in the Prefect UI: links a browser opens, status and local
time first, narrow tables (issue 15, items 9 and 10)."""

from __future__ import annotations

import time
from datetime import datetime
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest

from glaneur.statuses import Status
from tasks.evidence import check_local_link, evidence_markdown, local_link
from tasks.history import history_description, history_markdown

KEY = "acme/_evidence/acme-papeterie/run-7/screenshot.png"
PLAN = SimpleNamespace(label="Papeterie", provider="papeterie-dupont", channel="acme-papeterie")


def _run(status, started, message="", evidence="", new=0, had=0, flow_run_id="f1"):
    return SimpleNamespace(status=status, started_at=started, message=message, evidence_keys=evidence,
                           new_documents=new, already_had=had, flow_run_id=flow_run_id)


def _parts(link: str):
    split = urlsplit(link)
    query = parse_qs(split.query)
    return split.path.removeprefix("/evidence/"), int(query["exp"][0]), query["sig"][0]


def test_a_local_evidence_link_opens_until_it_expires_and_only_for_its_key(glaneur_home):
    from glaneur.settings import get_settings

    settings = get_settings()
    link = local_link(settings, KEY)
    assert link.startswith("http://127.0.0.1:8707/evidence/acme/_evidence/")
    key, expires, signature = _parts(link)
    assert check_local_link(settings, key, expires, signature)
    assert expires - time.time() == pytest.approx(7 * 24 * 3600, abs=5)
    assert not check_local_link(settings, key.replace("run-7", "run-8"), expires, signature)
    assert not check_local_link(settings, key, expires + 1, signature)
    assert not check_local_link(settings, key, expires, signature, now=expires + 1)
    other = "acme/factures/2026/invoice.pdf"  # documents are not served, even with a valid signature
    _, other_expires, other_signature = _parts(local_link(settings, other))
    assert not check_local_link(settings, other, other_expires, other_signature)


def test_glaneur_serve_opens_a_signed_evidence_link_and_refuses_the_rest(glaneur_home, monkeypatch):
    from fastapi.testclient import TestClient

    from web.callbacks import create_callback_app
    from glaneur.settings import get_settings
    from glaneur.storage import get_storage

    png = b"\x89PNG\r\n\x1a\nfake"
    get_storage().put(KEY, png, metadata={}, content_type="image/png")
    get_storage().put(KEY.replace("screenshot.png", "trace.zip"), b"PK\x03\x04", metadata={},
                      content_type="application/zip")
    client = TestClient(create_callback_app())
    link = urlsplit(local_link(get_settings(), KEY))
    opened = client.get(f"{link.path}?{link.query}")
    assert opened.status_code == 200 and opened.content == png
    assert opened.headers["content-type"] == "image/png"
    trace = urlsplit(local_link(get_settings(), KEY.replace("screenshot.png", "trace.zip")))
    downloaded = client.get(f"{trace.path}?{trace.query}")
    assert downloaded.status_code == 200 and "attachment" in downloaded.headers["content-disposition"]
    assert client.get(link.path).status_code == 403
    assert client.get(f"{link.path}?{link.query.replace('sig=', 'sig=0')}").status_code == 403


def test_the_history_puts_local_date_and_status_first_and_long_messages_below():
    zone = ZoneInfo("Europe/Paris")
    message = "The portal's invoice list no longer looks as the connector expects " * 3
    rows = [
        (_run(Status.PORTAL_CHANGED, datetime(2026, 11, 23, 3, 12), message=message,
              evidence=KEY + "," + KEY.replace("screenshot.png", "trace.zip")), "acme"),
        (_run(Status.OK, datetime(2026, 11, 22, 3, 12), new=4, flow_run_id="f0"), "acme"),
    ]
    links = {KEY: "http://127.0.0.1:8707/evidence/x.png?exp=1&sig=2"}
    markdown = history_markdown(PLAN, rows, links, zone)
    header = next(line for line in markdown.splitlines() if line.startswith("| date"))
    assert [cell.strip() for cell in header.strip("|").split("|")][:2] == ["date (Europe/Paris)", "status"]
    assert "| 2026\\-11\\-23 04:12 CET | Portal changed | acme |" in markdown  # 03:12 UTC is 04:12 in Paris
    assert "[screenshot](<http://127.0.0.1:8707/evidence/x.png?exp=1&sig=2>)" in markdown
    assert "screenshot\\.png" not in markdown and "file://" not in markdown
    table = [line for line in markdown.splitlines() if line.startswith("|")]
    assert all("no longer looks" not in line for line in table)  # the message is a detail line, not a column
    assert max(len(line) for line in table) < 160
    assert "Portal changed: The portal" in markdown.split("**What happened**")[1]

    description = history_description(PLAN, rows, zone)
    assert description.startswith("**Portal changed** · Papeterie · 2026\\-11\\-23 04:12 CET")


def test_the_evidence_artifact_links_the_screenshot_and_the_trace_and_says_how_to_open_it(glaneur_home):
    from glaneur.settings import get_settings

    markdown = evidence_markdown("Papeterie", "papeterie-dupont", {
        "screenshot.png": "https://s3.example/b/screenshot.png?X-Amz-Signature=abc",
        "trace.zip": "https://s3.example/b/trace.zip?X-Amz-Signature=def",
    }, get_settings())
    assert markdown.startswith("## Portal changed: Papeterie")
    assert "[Screenshot](<https://s3.example/b/screenshot.png?X-Amz-Signature=abc>)" in markdown
    assert "[Playwright trace](<https://s3.example/b/trace.zip?X-Amz-Signature=def>)" in markdown
    assert "show-trace --host 127.0.0.1 --port 9323 trace.zip" in markdown
    assert "7 days" in markdown
