"""Storage: sanitised keys, the local backend (idempotence, no overwrite, no escape, nothing half-written)."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from datetime import date, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from glaneur import storage as storage_module
from glaneur.errors import ConfigurationError, StorageError
from glaneur.settings import get_settings, reset_settings
from glaneur.storage import (
    LocalStorage,
    ObjectNotFound,
    PutResult,
    S3Storage,
    Storage,
    StorageConflict,
    UnsafeKey,
    document_key,
    get_storage,
    reference_hash,
    safe_part,
)

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
META = {"channel": "papeterie-dupont", "date": "2024-03-05", "amount": "118.80", "run": "42"}


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in list(os.environ):
        if name.startswith("GLANEUR_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("GLANEUR_HOME", str(tmp_path / "home"))
    reset_settings()
    yield tmp_path / "home"
    reset_settings()


@pytest.fixture
def store(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "documents")


def a_key(reference: str = "F-2024-001") -> str:
    return document_key(
        organization="Acme SARL",
        binder="Achats",
        channel="papeterie-dupont",
        document_date=date(2024, 3, 5),
        provider="papeterie-dupont",
        reference=reference,
    )


def visible_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


# --- safe_part ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("F-2024-001", "F-2024-001"),
        ("Société Générale", "Societe-Generale"),
        ("Ÿ ß Œuvre ﬁn", "Y-uvre-fin"),  # NFKD folds the ligature ﬁ; ß and Œ have no ASCII decomposition
        ("../../etc/passwd", "etc-passwd"),
        ("..", "_"),
        (".", "_"),
        ("...", "_"),
        ("", "_"),
        ("   ", "_"),
        ("/", "_"),
        ("a/b\\c", "a-b-c"),
        ("C:\\Windows\\system32", "C-Windows-system32"),
        (".hidden", "hidden"),
        ("-rf", "rf"),
        ("name.", "name"),
        ("a\x00b\nc", "a-b-c"),
        ("日本語", "_"),
        ("a  b__c..d", "a-b__c..d"),
        ("facture n°12", "facture-n-12"),
    ],
)
def test_safe_part(text: str, expected: str) -> None:
    assert safe_part(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "../../etc",
        "..",
        "/etc/passwd",
        "a/../../b",
        "\\..\\..\\",
        "..%2f..%2f",
        "~root",
        "\u2024\u2024",
        "．．",
        "x" * 500,
    ],
)
def test_safe_part_never_yields_a_dangerous_part(text: str) -> None:
    part = safe_part(text)
    assert part and part not in {".", ".."}
    assert "/" not in part and "\\" not in part
    assert not part.startswith((".", "-"))
    assert len(part) <= storage_module.MAX_PART_LENGTH
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in part)


def test_safe_part_caps_length_and_keeps_long_parts_distinct() -> None:
    long_a, long_b = "A" * 200 + "1", "A" * 200 + "2"
    assert len(safe_part(long_a)) == storage_module.MAX_PART_LENGTH
    assert safe_part(long_a) != safe_part(long_b)
    assert safe_part(long_a) == safe_part(long_a)  # deterministic: the same document gets the same key
    assert safe_part("B" * 80) == "B" * 80


# --- document_key ------------------------------------------------------------------------------


def test_document_key_layout() -> None:
    assert a_key() == "Acme-SARL/Achats/papeterie-dupont/2024/03/2024-03-05_papeterie-dupont_F-2024-001_289ebf70.pdf"
    assert reference_hash("F-2024-001") == hashlib.sha256(b"F-2024-001").hexdigest()[:8]


def test_references_that_sanitise_alike_get_distinct_keys() -> None:
    """Issue 14 item 1: FA/001 and FA-001 (same day) used to share a key; each blocked the other."""
    references = ["FA/001", "FA-001", "FA 001", "FA:001", "fa-001", "FA-001 "]
    keys = [a_key(reference) for reference in references]
    assert len(set(keys)) == len(references)
    assert {key.rsplit("_", 2)[1] for key in keys[:4]} == {"FA-001"}  # still readable: the sanitised reference
    assert a_key("FA/001") == a_key("FA/001")  # deterministic: the same document gets the same key


def test_document_key_sanitises_every_part() -> None:
    key = document_key(
        organization="../../etc",
        binder="/",
        channel="é/..",
        document_date=date(2024, 12, 31),
        provider="Fournisseur & Cie",
        reference="../../../passwd",
        extension=".PNG",
    )
    assert key == "etc/_/e/2024/12/2024-12-31_Fournisseur-Cie_passwd_9bc39a87.png"
    storage_module._check_key(key)


def test_document_key_takes_only_the_date_of_a_datetime() -> None:
    key = document_key(
        organization="o",
        binder="b",
        channel="c",
        document_date=datetime(2024, 1, 2, 13, 45),
        provider="p",
        reference="r",
    )
    assert key == "o/b/c/2024/01/2024-01-02_p_r_454349e4.pdf"


@pytest.mark.parametrize("extension", ["", "p/df", "../pdf", "x" * 11, "pd f"])
def test_document_key_refuses_odd_extensions(extension: str) -> None:
    with pytest.raises(ValueError):
        document_key(
            organization="o",
            binder="b",
            channel="c",
            document_date=date(2024, 1, 2),
            provider="p",
            reference="r",
            extension=extension,
        )


# --- local backend: writes ---------------------------------------------------------------------


def test_local_storage_satisfies_the_protocol(store: LocalStorage) -> None:
    assert isinstance(store, Storage)


def test_put_then_get_and_metadata(store: LocalStorage) -> None:
    key = a_key()
    result = store.put(key, PDF, metadata=META)
    assert result == PutResult(key=key, created=True)
    assert store.get(key) == PDF
    assert store.exists(key)
    assert store.metadata(key) == {**META, "sha256": hashlib.sha256(PDF).hexdigest()}
    assert (store.root / key).read_bytes() == PDF


def test_same_document_twice_is_one_object(store: LocalStorage) -> None:
    key = a_key()
    assert store.put(key, PDF, metadata=META).created is True
    assert store.put(key, PDF, metadata={**META, "run": "43"}).created is False
    assert store.keys() == [key]
    assert visible_files(store.root) == [key, key + ".meta.json"]
    assert store.metadata(key)["run"] == "42"  # the first filing's metadata stays


def test_different_content_at_an_existing_key_is_refused(store: LocalStorage) -> None:
    key = a_key()
    store.put(key, PDF, metadata=META)
    with pytest.raises(StorageConflict) as caught:
        store.put(key, PDF + b"% regenerated\n", metadata=META)
    assert isinstance(caught.value, StorageError)
    assert caught.value.retried is False
    assert key in str(caught.value) and "not overwritten" in str(caught.value)
    assert hashlib.sha256(PDF).hexdigest() in str(caught.value)
    assert store.get(key) == PDF
    assert store.metadata(key)["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert visible_files(store.root) == [key, key + ".meta.json"]


def test_backend_computes_sha256_itself(store: LocalStorage) -> None:
    key = a_key()
    store.put(key, PDF, metadata={**META, "sha256": "forged"})
    assert store.metadata(key)["sha256"] == hashlib.sha256(PDF).hexdigest()


def test_sidecar_holds_metadata_and_content_type(store: LocalStorage) -> None:
    key = a_key().replace(".pdf", ".png")
    store.put(key, b"\x89PNG", metadata={"run": "7", "note": "Société, 100 %"}, content_type="image/png")
    sidecar = json.loads((store.root / (key + ".meta.json")).read_text())
    assert sidecar["content_type"] == "image/png"
    assert sidecar["metadata"] == {
        "run": "7",
        "note": "Société, 100 %",
        "sha256": hashlib.sha256(b"\x89PNG").hexdigest(),
    }
    assert store.metadata(key)["note"] == "Société, 100 %"


def test_metadata_values_are_text_and_names_are_checked(store: LocalStorage) -> None:
    store.put(a_key(), PDF, metadata={"amount": None, "run": 42})  # type: ignore[dict-item]
    assert store.metadata(a_key())["amount"] == "" and store.metadata(a_key())["run"] == "42"
    for name in ["Run", "with space", "", "é", "x" * 65]:
        with pytest.raises(ValueError):
            store.put(a_key("other"), PDF, metadata={name: "1"})
    assert not store.exists(a_key("other"))


def test_missing_object(store: LocalStorage) -> None:
    assert not store.exists(a_key())
    with pytest.raises(ObjectNotFound):
        store.get(a_key())
    with pytest.raises(ObjectNotFound):
        store.metadata(a_key())
    assert store.keys() == []


def test_files_are_not_left_writable_by_others(store: LocalStorage) -> None:
    store.put(a_key(), PDF, metadata=META)
    assert (store.root / a_key()).stat().st_mode & 0o022 == 0


# --- local backend: nothing half-written -------------------------------------------------------


def test_crash_before_the_object_is_visible_leaves_nothing_visible(
    store: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = a_key()

    def crash(*_args: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(storage_module.os, "link", crash)
    with pytest.raises(StorageError) as caught:
        store.put(key, PDF, metadata=META)
    assert caught.value.retried is True
    assert not store.exists(key)
    assert store.keys() == []
    # The sidecar may be there, the temporary content is gone; neither counts as an object.
    assert visible_files(store.root) == [key + ".meta.json"]

    monkeypatch.undo()
    assert store.put(key, PDF + b"% other\n", metadata={**META, "run": "43"}).created is True
    assert store.metadata(key)["sha256"] == hashlib.sha256(PDF + b"% other\n").hexdigest()
    assert store.metadata(key)["run"] == "43"
    assert visible_files(store.root) == [key, key + ".meta.json"]


def test_sidecar_is_written_before_the_object_appears(store: LocalStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    key = a_key()
    seen: list[bool] = []
    real_link = os.link

    def watching_link(src: str, dst: str) -> None:
        seen.append((store.root / (key + ".meta.json")).is_file())
        real_link(src, dst)

    monkeypatch.setattr(storage_module.os, "link", watching_link)
    store.put(key, PDF, metadata=META)
    assert seen == [True]


def test_object_whose_sidecar_was_lost_still_answers(store: LocalStorage) -> None:
    key = a_key()
    store.put(key, PDF, metadata=META)
    (store.root / (key + ".meta.json")).unlink()
    assert store.metadata(key) == {"sha256": hashlib.sha256(PDF).hexdigest()}
    assert store.put(key, PDF, metadata=META).created is False
    with pytest.raises(StorageConflict):
        store.put(key, b"%PDF other", metadata=META)


def test_concurrent_writers_of_one_key(store: LocalStorage) -> None:
    key = a_key()
    contents = [PDF + f"% writer {i % 2}\n".encode() for i in range(16)]
    results: list[object] = [None] * len(contents)
    barrier = threading.Barrier(len(contents))

    def write(i: int) -> None:
        barrier.wait()
        try:
            results[i] = store.put(key, contents[i], metadata={"run": str(i)})
        except StorageConflict as exc:
            results[i] = exc

    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(contents))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    created = [r for r in results if isinstance(r, PutResult) and r.created]
    assert len(created) == 1
    stored = store.get(key)
    assert store.metadata(key)["sha256"] == hashlib.sha256(stored).hexdigest()
    for content, result in zip(contents, results):
        if content == stored:
            assert isinstance(result, PutResult)
        else:
            assert isinstance(result, StorageConflict)
    assert visible_files(store.root) == [key, key + ".meta.json"]


# --- local backend: keys -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "../outside.pdf",
        "a/../../outside.pdf",
        "/etc/passwd",
        "a//b.pdf",
        "a/./b.pdf",
        "a/b/",
        ".hidden.pdf",
        "a/.b/c.pdf",
        "a\\b.pdf",
        "a/b c.pdf",
        "é.pdf",
        "a/-rf.pdf",
        "a/b.pdf.meta.json",
        "",
        "x" * 1025,
    ],
)
def test_unsafe_keys_are_refused(store: LocalStorage, key: str) -> None:
    for call in (
        lambda: store.put(key, PDF, metadata=META),
        lambda: store.get(key),
        lambda: store.exists(key),
        lambda: store.metadata(key),
        lambda: store.link(key),
    ):
        with pytest.raises(UnsafeKey) as caught:
            call()
        assert isinstance(caught.value, StorageError) and caught.value.retried is False
    assert not store.root.exists() or visible_files(store.root) == []


def test_symlink_out_of_the_root_is_refused(store: LocalStorage, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    store.root.mkdir(parents=True)
    (store.root / "org").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafeKey, match="outside the storage root"):
        store.put("org/x.pdf", PDF, metadata=META)
    assert list(outside.iterdir()) == []


def test_keys_lists_objects_only_and_filters_by_prefix(store: LocalStorage) -> None:
    keys = [
        a_key("F-1"),
        a_key("F-2"),
        document_key(
            organization="Acme SARL",
            binder="Ventes",
            channel="c",
            document_date=date(2023, 12, 1),
            provider="p",
            reference="r",
        ),
        document_key(
            organization="Other",
            binder="Achats",
            channel="c",
            document_date=date(2024, 1, 1),
            provider="p",
            reference="r",
        ),
    ]
    for key in keys:
        store.put(key, key.encode(), metadata={})
    (store.root / "Acme-SARL" / "Achats" / ".stray.tmp").write_bytes(b"x")
    assert store.keys() == sorted(keys)
    assert store.keys("Acme-SARL/") == sorted(keys[:3])
    assert store.keys("Acme-SARL/Achats/papeterie-dupont/2024/03/") == sorted(keys[:2])
    assert store.keys("Acme-SARL/Ach") == sorted(keys[:2])
    assert store.keys("Acme-SARL/Achats/papeterie-dupont/2024/03/2024-03-05_papeterie-dupont_F-2") == [keys[1]]
    assert store.keys("Nobody/") == []
    assert store.keys("../") == []
    assert store.keys("Acme-SARL/../Other/") == []


def test_a_listed_object_is_read_whatever_its_name_but_never_outside_the_root(
    store: LocalStorage, tmp_path: Path
) -> None:
    """An inbox file a person named ``relevé du 19.xml``: listed, then read (issue 14 item 3)."""
    inbox = store.root / "cab" / "inbox"
    inbox.mkdir(parents=True)
    (inbox / "relevé du 19.xml").write_bytes(b"<Document/>")
    outside = tmp_path / "outside.xml"
    outside.write_bytes(b"secret")
    (inbox / "z-link.xml").symlink_to(outside)

    assert store.keys("cab/inbox/") == ["cab/inbox/relevé du 19.xml", "cab/inbox/z-link.xml"]
    with pytest.raises(UnsafeKey):
        store.get("cab/inbox/relevé du 19.xml")  # a key Glaneur builds must still be sanitised
    assert store.get_listed("cab/inbox/relevé du 19.xml") == b"<Document/>"
    with pytest.raises(UnsafeKey, match="outside the storage root"):
        store.get_listed("cab/inbox/z-link.xml")
    for key in ("../outside.xml", "cab/../../outside.xml", "", "cab//x", "cab/.hidden"):
        with pytest.raises(UnsafeKey):
            store.get_listed(key)
    with pytest.raises(ObjectNotFound):
        store.get_listed("cab/inbox/gone.xml")


def test_link_is_a_file_uri_to_the_object(store: LocalStorage) -> None:
    key = a_key("Facture n°1")
    store.put(key, PDF, metadata=META)
    link = store.link(key)
    assert link.startswith("file:///")
    assert Path(unquote(urlsplit(link).path)).read_bytes() == PDF


# --- factory and S3 configuration (no network) -------------------------------------------------


def test_get_storage_defaults_to_a_folder_in_home(home: Path) -> None:
    store = get_storage()
    assert isinstance(store, LocalStorage)
    assert store.root == (home / "documents").resolve()
    store.put(a_key(), PDF, metadata=META)
    assert (home / "documents" / a_key()).is_file()


def test_get_storage_uses_the_storage_path(home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GLANEUR_STORAGE_PATH", str(tmp_path / "elsewhere"))
    reset_settings()
    assert get_storage().root == (tmp_path / "elsewhere").resolve()  # type: ignore[attr-defined]


def test_s3_without_a_bucket_names_the_setting(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLANEUR_STORAGE", "s3")
    reset_settings()
    with pytest.raises(ConfigurationError, match="GLANEUR_S3_BUCKET"):
        get_storage()
    with pytest.raises(ConfigurationError, match="GLANEUR_S3_BUCKET"):
        S3Storage.from_settings(get_settings())


@pytest.mark.parametrize("value", ["plain", "Société Générale", "100 %", "%41%", "a\nb", "ü€😀", "", " lead"])
def test_s3_metadata_encoding_is_ascii_and_exact(value: str) -> None:
    encoded = storage_module._encode_value(value)
    assert encoded.isascii() and all(0x20 <= ord(c) < 0x7F for c in encoded)
    assert storage_module._decode_value(encoded) == value


def test_endpoint_is_redacted_in_messages() -> None:
    assert storage_module._redacted("http://user:secret@minio:9000/x?X-Amz-Signature=abc") == "http://minio:9000/x"
    assert storage_module._redacted(None) == "AWS S3"
