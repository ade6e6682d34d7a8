"""`collect_channel` end to end: a real Prefect server, real Chromium, the sandbox portals, real filing.

Each test looks at what was filed (count, bytes, sha256), the runs recorded, the channel's
status and message, and what Prefect kept (task run counts, artifacts, logs).
"""

from __future__ import annotations

import asyncio
import hashlib
import zipfile
from io import BytesIO
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from glaneur.db import session_scope
from glaneur.models import Channel, CollectionRun, Document
from glaneur.settings import get_settings
from glaneur.storage import get_storage, reference_hash
from sandbox.data import SUPPLIERS, accounts_of
from tests import factories

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]


def password(provider: str, login: str) -> str:
    return accounts_of(SUPPLIERS[provider])[login].password


def make_channel(provider: str, *accounts: tuple[str, str | None], slug: str = "test-channel") -> str:
    logins = [(login, secret or password(provider, login)) for login, secret in accounts]
    factories.collection_channel(slug, provider, label="Test", accounts=logins)
    return slug


def run(slug: str) -> dict:
    from flows.collect_channel import run_channel

    return run_channel(slug)


def filed_documents() -> list[Document]:
    with session_scope() as session:
        return list(session.exec(select(Document)).all())


def runs() -> list[CollectionRun]:
    with session_scope() as session:
        return list(session.exec(select(CollectionRun).order_by(CollectionRun.id)).all())


def channel_state(slug: str) -> Channel:
    with session_scope() as session:
        return session.exec(select(Channel).where(Channel.slug == slug)).one()


def task_run_counts(flow_run_id: str) -> dict[str, int]:
    """The highest run_count of each task name in a flow run (1 = never retried)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async def read():
        async with get_client() as client:
            return await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))

    counts: dict[str, int] = {}
    for task_run in asyncio.run(read()):
        name = task_run.name.rsplit("-", 1)[0]
        counts[name] = max(counts.get(name, 0), task_run.run_count)
    return counts


def flow_run_logs(flow_run_id: str) -> list[str]:
    """The run's log lines as the Prefect UI shows them (flow and task runs), oldest first."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import LogSort

    from prefect.logging.handlers import APILogHandler

    async def read():
        async with get_client() as client:
            return await client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), sort=LogSort.TIMESTAMP_ASC)

    APILogHandler().flush()  # the handler sends logs in batches: what the run logged, all of it
    return [log.message for log in asyncio.run(read())]


@pytest.fixture
def info_logs():
    """Run logs at INFO, as a worker sends them (the test session keeps Prefect at WARNING)."""
    from prefect.logging.configuration import setup_logging
    from prefect.settings import PREFECT_LOGGING_LEVEL, temporary_settings

    with temporary_settings({PREFECT_LOGGING_LEVEL: "INFO"}):
        setup_logging()
        yield
    setup_logging()


def test_two_accounts_are_collected_filed_and_not_downloaded_again(glaneur_home, portals, info_logs):
    slug = make_channel("papeterie-dupont", ("acme", None), ("acme-bis", None))

    summary = run(slug)

    assert summary["status"] == "ok", summary
    assert [(a["login"], a["new"]) for a in summary["accounts"]] == [("acme", 23), ("acme-bis", 5)]
    documents = filed_documents()
    assert len(documents) == 28
    storage = get_storage(get_settings())
    for document in documents:
        content = storage.get(document.storage_key)
        assert content.startswith(b"%PDF-")
        assert hashlib.sha256(content).hexdigest() == document.sha256 == storage.metadata(document.storage_key)["sha256"]
        assert document.size == len(content)
        assert document.storage_key.startswith(f"org/factures/{slug}/{document.document_date:%Y/%m}/")
        assert document.storage_key.endswith(
            f"_papeterie-dupont_{document.provider_reference}_{reference_hash(document.provider_reference)}.pdf"
        )
    files = [p for p in (glaneur_home / "documents").rglob("*.pdf")]
    assert len(files) == 28
    assert [r.status for r in runs()] == ["ok", "ok"]
    assert channel_state(slug).status == "ok"

    # Issue 15 item 8: the log as data ops read it; one task run per step of an account, none per invoice.
    flow_run_id = runs()[-1].flow_run_id
    counts = task_run_counts(flow_run_id)
    assert "download-document" not in counts and "file-document" not in counts
    assert counts["download-and-file"] == 1
    lines = flow_run_logs(flow_run_id)
    assert lines[0].startswith("Beginning flow run") and lines[1].startswith(f"Collecting {slug} (Test, provider papeterie-dupont)")
    assert sum("Finished in state" in line for line in lines) <= 10  # per step, not two per invoice (28 filed)
    for login, new in (("acme", 23), ("acme-bis", 5)):
        assert any(line.startswith(f"{login}: start, invoices since") for line in lines)
        assert any(line.startswith(f"{login}: end, ok, {new} new, 0 already had") for line in lines)
    filed = [line for line in lines if ": filed invoice " in line]
    assert len(filed) == 28
    document = documents[0]
    assert any(document.provider_reference in line and document.document_date.isoformat() in line
               and line.endswith(document.storage_key) and (document.amount or "no amount") in line for line in filed)
    summary_lines = [line for line in lines if line.startswith("Summary: ")]
    assert summary_lines == [f"Summary: {slug}: ok, 28 new, 0 already had (2 accounts: acme: ok, 23 new, "
                             "0 already had; acme-bis: ok, 5 new, 0 already had)"]

    again = run(slug)

    # The second run lists incrementally (cursor minus the look-back window): only recent invoices.
    assert again["status"] == "ok" and again["new"] == 0 and 0 < again["already_had"] < 28
    assert len(filed_documents()) == 28
    assert len([p for p in (glaneur_home / "documents").rglob("*.pdf")]) == 28
    # Issue 20: an unchanged day runs only the steps that do something: no download step, no bookkeeping task.
    assert set(task_run_counts(runs()[-1].flow_run_id)) == {"resume-session", "list-documents"}

    new_number = httpx.post(f"{portals.urls['papeterie-dupont']}/_sandbox/accounts/acme/invoices").json()
    third = run(slug)
    assert third["new"] == 1, third
    assert task_run_counts(runs()[-1].flow_run_id)["download-and-file"] == 1  # acme's new invoice; acme-bis none
    assert len(filed_documents()) == 29
    assert new_number["number"] in {d.provider_reference for d in filed_documents()}


def test_the_json_portal_is_collected(glaneur_home, portals):
    slug = make_channel("energie-verte", ("acme@client.test", None))
    summary = run(slug)
    assert summary["status"] == "ok", summary
    assert summary["new"] == len(filed_documents()) > 0


@pytest.mark.parametrize(
    ("provider", "login", "secret", "status", "words"),
    [
        ("papeterie-dupont", "acme", "not-the-password", "wrong_credentials", "refused"),
        ("papeterie-dupont", "perime", None, "credentials_expired", "expired"),
        ("papeterie-dupont", "cgv", None, "action_needed", "accept"),
        ("papeterie-dupont", "bloque", None, "account_locked", "blocked"),
    ],
)
def test_credential_problems_are_reported_and_never_retried(glaneur_home, portals, provider, login, secret, status, words):
    slug = make_channel(provider, (login, secret))

    summary = run(slug)

    assert summary["status"] == status
    assert words in summary["message"].lower()
    recorded = runs()[-1]
    assert recorded.status == status and recorded.new_documents == 0
    assert channel_state(slug).status == status
    assert task_run_counts(recorded.flow_run_id)["authenticate"] == 1
    assert filed_documents() == []


def test_an_unstable_portal_is_retried_and_collected(glaneur_home, portals):
    slug = make_channel("papeterie-dupont", ("instable", None))
    summary = run(slug)
    assert summary["status"] == "ok", summary
    assert summary["new"] == 4
    assert task_run_counts(runs()[-1].flow_run_id)["list-documents"] >= 2


def test_a_changed_portal_keeps_a_screenshot_and_a_redacted_trace(glaneur_home, portals):
    slug = make_channel("papeterie-dupont", ("nouveau-site", None))

    summary = run(slug)

    assert summary["status"] == "portal_changed"
    recorded = runs()[-1]
    keys = recorded.evidence_keys.split(",")
    assert [k.rsplit("/", 1)[-1] for k in keys] == ["screenshot.png", "trace.zip"]
    storage = get_storage(get_settings())
    assert storage.get(keys[0]).startswith(b"\x89PNG")
    trace = zipfile.ZipFile(BytesIO(storage.get(keys[1])))
    network = b"".join(trace.read(n) for n in trace.namelist() if n.endswith((".trace", ".network")))
    assert any(n.endswith(".trace") for n in trace.namelist())
    assert password("papeterie-dupont", "nouveau-site").encode() not in network
    assert b"[redacted]" in network
    assert task_run_counts(recorded.flow_run_id)["list-documents"] == 1


def test_a_download_that_is_not_a_pdf_is_refused_and_the_others_are_filed(glaneur_home, portals):
    slug = make_channel("papeterie-dupont", ("pas-pdf", None))
    summary = run(slug)
    assert summary["status"] == "portal_changed"
    assert "is not a PDF" in summary["message"]
    assert len(filed_documents()) == 3
    assert all(p.read_bytes().startswith(b"%PDF-") for p in Path(glaneur_home / "documents").rglob("*.pdf"))


def test_history_artifact_and_logs_hold_no_secret(glaneur_home, portals):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterKey,
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )

    slug = make_channel("papeterie-dupont", ("acme", None), ("cgv", None))
    run(slug)
    run(slug)
    flow_run_id = runs()[-1].flow_run_id

    async def read():
        async with get_client() as client:
            artifacts = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"channel-{slug}"])))
            logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
            flow_runs = await client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            return artifacts, logs, flow_runs

    artifacts, logs, flow_runs = asyncio.run(read())
    assert len(artifacts) >= 2  # one version per run: the key is the channel's history
    newest = max(artifacts, key=lambda a: a.created)
    table_rows = [line for line in newest.data.splitlines() if line.startswith("| 20")]
    assert len(table_rows) == 4  # two runs of two accounts
    assert flow_runs[0].parameters == {"channel": slug}
    assert flow_runs[0].name.startswith(f"{slug}-")
    everything = newest.data + "".join(log.message for log in logs) + str(flow_runs[0].parameters)
    for login in ("acme", "cgv"):
        assert password("papeterie-dupont", login) not in everything
