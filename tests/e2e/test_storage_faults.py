"""S3 down in the middle of a run, then the run again (issue 19 item 1).

Real Prefect server, real Chromium, the sandbox portal, moto's S3 server over HTTP behind a proxy that
stops answering right after its second object write, as a store that dies mid-run does (connections dropped).
The run ends ``storage_error`` (never ``ok``), with what was filed before the fault counted; the next
run, the store back, files the rest. Every invoice is then in the bucket exactly once, each object
whole (its bytes match its sha256), and the history tells both runs as they were.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator

import boto3
import pytest

from glaneur.settings import get_settings, reset_settings
from glaneur.storage import get_storage
from tests.e2e.s3_servers import moto_server, store_that_goes_down
from tests.e2e.test_collect_channel import filed_documents, make_channel, run, runs

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

PD = "papeterie-dupont"


@pytest.fixture
def dying_s3(monkeypatch, glaneur_home) -> Iterator[tuple[dict, object]]:
    """GLANEUR_STORAGE=s3 on moto's server through the proxy; yields (the proxy's control, a direct client)."""
    bucket = f"glaneur-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAGLANEURTESTING00")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "glaneur-test-secret-never-printed")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("GLANEUR_RETRIES", "1")  # one retry of the filing task, quickly: the store stays down
    with moto_server() as endpoint, store_that_goes_down(endpoint) as proxy:
        direct = boto3.session.Session().client("s3", endpoint_url=endpoint, region_name="us-east-1")
        direct.create_bucket(Bucket=bucket)
        monkeypatch.setenv("GLANEUR_STORAGE", "s3")
        monkeypatch.setenv("GLANEUR_S3_BUCKET", bucket)
        monkeypatch.setenv("GLANEUR_S3_ENDPOINT_URL", proxy["url"])
        monkeypatch.setenv("GLANEUR_S3_REGION", "us-east-1")
        reset_settings()
        yield proxy, (direct, bucket)
    reset_settings()


def test_s3_down_mid_run_then_the_run_again_files_every_invoice_once(dying_s3, portals):
    proxy, (direct, bucket) = dying_s3
    slug = make_channel(PD, ("acme-bis", None))
    proxy["writes_left"] = 2

    first = run(slug)

    assert proxy["refused"] > 0  # the store really was down
    assert first["status"] == "storage_error", first
    # The store died after the second object's write, before Glaneur read it back: only one counts as filed.
    assert first["new"] == 1
    (row,) = runs()
    assert row.status == "storage_error" and row.finished_at is not None  # not ok, not left running

    proxy["down"], proxy["writes_left"] = False, None
    second = run(slug)

    assert second["status"] == "ok", second
    assert first["new"] + second["new"] == 5  # the half-known second object is recognised, not written twice
    documents = filed_documents()
    assert len(documents) == 5 == len({d.provider_reference for d in documents})
    objects = direct.list_objects_v2(Bucket=bucket).get("Contents", [])
    assert sorted(o["Key"] for o in objects) == sorted(d.storage_key for d in documents)  # nothing extra, nothing partial
    for document in documents:
        body = direct.get_object(Bucket=bucket, Key=document.storage_key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == document.sha256 and body.startswith(b"%PDF")
    assert get_storage(get_settings()).keys() == sorted(d.storage_key for d in documents)
    assert [r.status for r in runs()] == ["storage_error", "ok"]
