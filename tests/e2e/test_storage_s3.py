"""S3 storage against two real HTTP S3 servers on loopback, written apart from each other and from Glaneur:
moto's ThreadedMotoServer (Python; honours conditional writes, accepts any credentials) and s3rver
(Node.js; checks signatures, ignores conditional writes, as several S3-compatible stores do).

The S3 backend must lay out the same keys and return the same metadata as the local folder,
refuse overwrites on the server side (If-None-Match: *), and fail with StorageError messages
that never show a credential.
"""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from glaneur.errors import ConfigurationError, StorageError
from glaneur.settings import get_settings, reset_settings
from glaneur.storage import (
    LocalStorage,
    ObjectNotFound,
    PutResult,
    S3Storage,
    StorageConflict,
    document_key,
    get_storage,
)
from tests.e2e.s3_servers import moto_server, s3rver_server, store_ignoring_conditional_writes

ACCESS_KEY = "AKIAGLANEURTESTING00"
SECRET_KEY = "glaneur-test-secret-never-printed"
REGION = "eu-west-3"


@pytest.fixture(scope="module", params=["moto", "s3rver"])
def s3_server(request: pytest.FixtureRequest) -> Iterator[str]:
    """The server's name; the endpoint is ``s3_endpoint``."""
    yield request.param


@pytest.fixture(scope="module")
def s3_endpoint(s3_server: str) -> Iterator[str]:
    with moto_server() if s3_server == "moto" else s3rver_server(ACCESS_KEY, SECRET_KEY) as endpoint:
        yield endpoint


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, s3_endpoint: str) -> Iterator[str]:
    """Fake AWS credentials, GLANEUR_STORAGE=s3 on a fresh bucket; yields the bucket name."""
    for name in list(os.environ):
        if name.startswith(("GLANEUR_", "AWS_")):
            monkeypatch.delenv(name)
    bucket = f"glaneur-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("GLANEUR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GLANEUR_STORAGE", "s3")
    monkeypatch.setenv("GLANEUR_S3_BUCKET", bucket)
    monkeypatch.setenv("GLANEUR_S3_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("GLANEUR_S3_REGION", REGION)
    reset_settings()
    raw_client().create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    yield bucket
    reset_settings()


def raw_client():
    settings = get_settings()
    return boto3.session.Session().client("s3", endpoint_url=settings.s3_endpoint_url, region_name=REGION)


def documents() -> list[tuple[str, bytes, dict[str, str]]]:
    """The same invoices a collection would file, with awkward names and metadata."""
    found = []
    for i, (provider, reference, amount, day) in enumerate(
        [
            ("papeterie-dupont", "F-2024-001", "118.80", date(2024, 3, 5)),
            ("papeterie-dupont", "F-2024-002", "12.00", date(2024, 3, 28)),
            ("Énergie Verte S.A.", "Facture n°2024/04", None, date(2024, 4, 1)),
            ("Télécom & Cie", "../../etc/passwd", "9.99", date(2023, 12, 31)),
        ]
    ):
        key = document_key(
            organization="Acme SARL",
            binder="Achats",
            channel=f"canal {provider}",
            document_date=day,
            provider=provider,
            reference=reference,
        )
        metadata = {
            "channel": f"canal {provider}",
            "date": day.isoformat(),
            "amount": amount,
            "run": str(100 + i),
            "reference": reference,
        }
        found.append((key, f"%PDF-1.4 invoice {i} {reference}\n%%EOF\n".encode(), metadata))
    return found


# --- same layout as the local folder -----------------------------------------------------------


def test_s3_and_local_give_the_same_keys_and_metadata(s3_env: str, tmp_path: Path) -> None:
    s3 = get_storage()
    assert isinstance(s3, S3Storage)
    local = LocalStorage(tmp_path / "local")

    for key, content, metadata in documents():
        assert s3.put(key, content, metadata=metadata) == local.put(key, content, metadata=metadata)
        assert s3.put(key, content, metadata=metadata) == local.put(key, content, metadata=metadata)

    assert s3.keys() == local.keys() and len(s3.keys()) == len(documents())
    for prefix in ("Acme-SARL/", "Acme-SARL/Achats/canal-papeterie-dupont/2024/03/", "Acme-SARL/Achats/canal-T", "x"):
        assert s3.keys(prefix) == local.keys(prefix)
    for key, content, metadata in documents():
        assert s3.metadata(key) == local.metadata(key)
        assert s3.metadata(key)["sha256"] == hashlib.sha256(content).hexdigest()
        assert s3.metadata(key)["reference"] == metadata["reference"]  # non-ASCII survives
        assert s3.get(key) == local.get(key) == content
        assert s3.exists(key) and local.exists(key)
    assert s3.link(documents()[0][0]) == f"s3://{s3_env}/{documents()[0][0]}"


def test_s3_metadata_travels_as_ascii(s3_env: str) -> None:
    s3 = get_storage()
    key, content, metadata = documents()[2]
    s3.put(key, content, metadata=metadata, content_type="application/pdf")
    head = raw_client().head_object(Bucket=s3_env, Key=key)
    assert head["ContentType"] == "application/pdf"
    assert all(value.isascii() for value in head["Metadata"].values())
    assert head["Metadata"]["reference"] == "Facture n%C2%B02024/04"
    assert head["Metadata"]["channel"] == "canal \u00c9nergie Verte S.A.".replace("\u00c9", "%C3%89")
    assert s3.metadata(key)["channel"] == "canal Énergie Verte S.A."


def test_s3_prefix(s3_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLANEUR_S3_PREFIX", "/glaneur/tenant-1/")
    reset_settings()
    s3 = get_storage()
    key, content, metadata = documents()[0]
    s3.put(key, content, metadata=metadata)
    raw_keys = [o["Key"] for o in raw_client().list_objects_v2(Bucket=s3_env)["Contents"]]
    assert raw_keys == [f"glaneur/tenant-1/{key}"]
    assert s3.keys() == [key]
    assert s3.keys("Acme-SARL/") == [key]
    assert s3.link(key) == f"s3://{s3_env}/glaneur/tenant-1/{key}"
    assert s3.get(key) == content


# --- conditional writes ------------------------------------------------------------------------


def test_s3_idempotent_and_never_overwrites(s3_env: str) -> None:
    s3 = get_storage()
    key, content, metadata = documents()[0]
    assert s3.put(key, content, metadata=metadata) == PutResult(key, True)
    assert s3.put(key, content, metadata={**metadata, "run": "999"}) == PutResult(key, False)
    with pytest.raises(StorageConflict) as caught:
        s3.put(key, content + b"% regenerated\n", metadata=metadata)
    assert isinstance(caught.value, StorageError) and not caught.value.retried
    assert "not overwritten" in str(caught.value)
    assert s3.get(key) == content
    assert s3.metadata(key)["run"] == metadata["run"]
    versions = raw_client().list_objects_v2(Bucket=s3_env)["Contents"]
    assert len(versions) == 1


def test_the_write_is_conditional_and_read_back(s3_env: str, s3_server: str) -> None:
    """Read first (never write over an object), write with If-None-Match (a race), read back (a lax store)."""
    s3 = get_storage()
    key, content, metadata = documents()[0]
    calls: list[str] = []
    conditions: list[object] = []
    client = s3._client
    client.meta.events.register("before-call.s3.*", lambda model, **_: calls.append(model.name))
    client.meta.events.register(
        "provide-client-params.s3.PutObject", lambda params, **_: conditions.append(params.get("IfNoneMatch"))
    )

    s3.put(key, content, metadata=metadata)
    assert calls == ["HeadObject", "PutObject", "HeadObject"]
    assert conditions == ["*"]
    s3.put(key, content, metadata=metadata)
    assert calls[3:] == ["HeadObject"]  # there already, same sha256: nothing written

    if s3_server == "moto":  # the server settles a race between workers
        with pytest.raises(ClientError) as caught:
            raw_client().put_object(Bucket=s3_env, Key=key, Body=b"other", IfNoneMatch="*")
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    else:  # s3rver ignores the condition and replaces: hence the read first and the read back
        raw_client().put_object(Bucket=s3_env, Key=key, Body=b"other", IfNoneMatch="*")
        assert s3.get(key) == b"other"


def test_a_store_that_ignores_conditional_writes_never_has_an_object_replaced(
    s3_env: str, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 14 item 2: through a store that ignores If-None-Match, a put used to replace the object silently."""
    direct = raw_client()  # straight to moto, to see what is really stored
    with store_ignoring_conditional_writes(s3_endpoint) as lax_endpoint:
        lax = boto3.session.Session().client("s3", endpoint_url=lax_endpoint, region_name=REGION)
        lax.put_object(Bucket=s3_env, Key="probe", Body=b"first")
        lax.put_object(Bucket=s3_env, Key="probe", Body=b"second", IfNoneMatch="*")  # the store ignores it
        assert direct.get_object(Bucket=s3_env, Key="probe")["Body"].read() == b"second"

        monkeypatch.setenv("GLANEUR_S3_ENDPOINT_URL", lax_endpoint)
        reset_settings()
        s3 = get_storage()
        key, content, metadata = documents()[0]
        other = content + b"% another invoice\n"

        assert s3.put(key, content, metadata=metadata) == PutResult(key, True)
        with pytest.raises(StorageConflict, match="not overwritten"):
            s3.put(key, other, metadata={**metadata, "run": "2"})
        assert s3.put(key, content, metadata={**metadata, "run": "3"}) == PutResult(key, False)

        planted = documents()[1][0]  # an object some other tool put there, without Glaneur's metadata
        direct.put_object(Bucket=s3_env, Key=planted, Body=b"%PDF-1.4 not ours")
        with pytest.raises(StorageConflict):
            s3.put(planted, other, metadata=metadata)

    def stored(k: str) -> tuple[bytes, dict[str, str]]:
        found = direct.get_object(Bucket=s3_env, Key=k)
        return found["Body"].read(), found["Metadata"]

    body, meta = stored(key)
    assert body == content and meta["run"] == metadata["run"] and meta["sha256"] == hashlib.sha256(content).hexdigest()
    assert stored(planted)[0] == b"%PDF-1.4 not ours"


def test_object_filed_by_something_else_is_compared_by_content(s3_env: str) -> None:
    key, content, metadata = documents()[0]
    raw_client().put_object(Bucket=s3_env, Key=key, Body=content)  # no sha256 metadata
    s3 = get_storage()
    assert s3.put(key, content, metadata=metadata) == PutResult(key, False)
    with pytest.raises(StorageConflict):
        s3.put(key, content + b"% other\n", metadata=metadata)


def test_concurrent_s3_writers_of_one_key(s3_env: str, s3_server: str) -> None:
    """Eight workers file two different documents at one key at the same instant.

    On a server that honours If-None-Match (moto), exactly one writer creates the object and every writer
    of the other bytes gets a conflict. On one that ignores it (s3rver), the last write wins: a writer can
    read back its own bytes and report them filed just before another replaces them. s3rver 3.7 also
    writes an object's body and its metadata in two steps (``putObject`` then ``putMetadata`` in
    lib/stores/filesystem.js), so the body can be one writer's and the metadata another's: only the body
    is whole there. Neither server is safe for two writers of one key, which is why two collections never
    write at one key: a document's key holds its channel, and a channel's runs are claimed one at a time
    (``claim_channel``)."""
    key, content, _ = documents()[0]
    contents = [content + f"% writer {i % 2}\n".encode() for i in range(8)]
    stores = [get_storage() for _ in contents]  # one client each, as separate workers would have
    results: list[object] = [None] * len(contents)
    barrier = threading.Barrier(len(contents))

    def write(i: int) -> None:
        barrier.wait()
        try:
            results[i] = stores[i].put(key, contents[i], metadata={"run": str(i)})
        except StorageConflict as exc:
            results[i] = exc

    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(contents))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    stored = stores[0].get(key)
    metadata = stores[0].metadata(key)
    assert stored in contents and metadata["sha256"] == hashlib.sha256(contents[int(metadata["run"])]).hexdigest()
    assert any(isinstance(r, PutResult) and r.created for r in results)
    if s3_server == "moto":
        assert metadata["sha256"] == hashlib.sha256(stored).hexdigest()
        assert sum(1 for r in results if isinstance(r, PutResult) and r.created) == 1
        for i, result in enumerate(results):
            assert isinstance(result, PutResult if contents[i] == stored else StorageConflict), result


# --- errors ------------------------------------------------------------------------------------


def test_missing_objects(s3_env: str) -> None:
    s3 = get_storage()
    key = documents()[0][0]
    assert not s3.exists(key)
    with pytest.raises(ObjectNotFound):
        s3.get(key)
    with pytest.raises(ObjectNotFound):
        s3.metadata(key)
    assert s3.keys() == []


def test_missing_bucket_setting(s3_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GLANEUR_S3_BUCKET")
    reset_settings()
    with pytest.raises(ConfigurationError, match="GLANEUR_S3_BUCKET"):
        get_storage()


def assert_no_credential(exc: BaseException) -> None:
    for text in (str(exc), repr(exc), getattr(exc, "user_message", "")):
        assert SECRET_KEY not in text and ACCESS_KEY not in text
    assert exc.__cause__ is None and exc.__suppress_context__


def test_bucket_that_does_not_exist(s3_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLANEUR_S3_BUCKET", "no-such-bucket-here")
    reset_settings()
    s3 = get_storage()
    key, content, metadata = documents()[0]
    with pytest.raises(StorageError, match="NoSuchBucket") as caught:
        s3.put(key, content, metadata=metadata)
    assert "s3://no-such-bucket-here/" in str(caught.value)
    assert_no_credential(caught.value)


def test_unreachable_endpoint_is_a_storage_error_without_credentials(s3_env: str) -> None:
    settings = get_settings()
    s3 = S3Storage(
        settings.s3_bucket or "",
        endpoint_url=f"http://{ACCESS_KEY}:{SECRET_KEY}@127.0.0.1:9",  # port 9 (discard): nothing listens
        region=REGION,
        max_attempts=1,
    )
    key, content, metadata = documents()[0]
    for call in (lambda: s3.put(key, content, metadata=metadata), lambda: s3.get(key), lambda: s3.keys()):
        with pytest.raises(StorageError) as caught:
            call()
        assert type(caught.value) is StorageError and caught.value.retried
        assert "Could not reach S3" in str(caught.value) and "127.0.0.1:9" in str(caught.value)
        assert_no_credential(caught.value)
    assert SECRET_KEY not in repr(s3)


def test_missing_credentials(s3_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    s3 = get_storage()
    with pytest.raises(StorageError, match="AWS_ACCESS_KEY_ID") as caught:
        s3.keys()
    assert_no_credential(caught.value)


def test_wrong_credentials_are_not_echoed(s3_env: str, s3_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """s3rver refuses an access key it does not know (it does not verify SigV4 signatures); moto accepts any
    credentials, so there a stubbed refusal that quotes the keys checks what the message keeps."""
    if s3_server == "s3rver":
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", f"{ACCESS_KEY}X")
    s3 = get_storage()

    def refuse(**_kwargs: object) -> None:
        raise ClientError(
            {
                "Error": {"Code": "SignatureDoesNotMatch", "Message": f"key {ACCESS_KEY} {SECRET_KEY}"},
                "ResponseMetadata": {"HTTPStatusCode": 403},
            },
            "PutObject",
        )

    if s3_server == "moto":
        monkeypatch.setattr(s3._client, "put_object", refuse)
    key, content, metadata = documents()[0]
    with pytest.raises(StorageError, match="access denied") as caught:
        s3.put(key, content, metadata=metadata)
    assert "Check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in str(caught.value)
    assert_no_credential(caught.value)


@pytest.mark.parametrize(("code", "status"), [("SlowDown", 503), ("InternalError", 500), ("ServiceUnavailable", 503)])
def test_throttling_and_server_errors_are_retried_storage_errors(
    s3_env: str, monkeypatch: pytest.MonkeyPatch, code: str, status: int
) -> None:
    s3 = get_storage()

    def fail(**_kwargs: object) -> None:
        raise ClientError(
            {"Error": {"Code": code, "Message": "x"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject"
        )

    monkeypatch.setattr(s3._client, "put_object", fail)
    key, content, metadata = documents()[0]
    with pytest.raises(StorageError, match="unavailable") as caught:
        s3.put(key, content, metadata=metadata)
    assert type(caught.value) is StorageError and caught.value.retried


def test_evidence_on_s3_opens_in_a_browser_through_a_presigned_url_that_expires(s3_env: str, monkeypatch) -> None:
    """The links of a changed portal's evidence: no credentials needed, within GLANEUR_EVIDENCE_LINK_TTL_SECONDS."""
    import httpx

    from tasks.evidence import browser_link

    monkeypatch.setenv("GLANEUR_EVIDENCE_LINK_TTL_SECONDS", "3600")
    reset_settings()
    settings = get_settings()
    s3 = get_storage(settings)
    key = "acme/_evidence/acme-papeterie/run-1/screenshot.png"
    s3.put(key, b"\x89PNG-evidence", metadata={}, content_type="image/png")
    link = browser_link(s3, settings, key)
    assert link.startswith(settings.s3_endpoint_url) and "X-Amz-Expires=3600" in link
    opened = httpx.get(link)  # a plain GET, as a browser sends it: no AWS credentials
    assert opened.status_code == 200 and opened.content == b"\x89PNG-evidence"
    assert opened.headers["content-type"] == "image/png"
    assert SECRET_KEY not in link  # signed with it, never carrying it
