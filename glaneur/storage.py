"""Where filed documents go: one small interface, two backends (local folder, S3).

Both backends lay out the same keys and return the same metadata, so a deployment can move
from the embedded local folder to S3 (or MinIO) without changing anything else:

    {org}/{binder}/{channel}/{yyyy}/{mm}/{yyyy-mm-dd}_{provider}_{reference}_{hash}.pdf

``{hash}`` is a short hash of the raw reference: sanitising merges ``FA/001`` and ``FA-001``,
the hash keeps them apart. Writes are idempotent and never overwrite: filing the same bytes at
the same key twice is one object (``created=False`` the second time); different bytes at an
existing key raise :class:`StorageConflict`, even on an S3-compatible store that ignores
conditional writes (see :meth:`S3Storage.put`). Nothing is ever half-written (see
:meth:`LocalStorage.put`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from glaneur.errors import ConfigurationError, StorageError
from glaneur.files import folder_lock, fsync_dir, replace_file, unlink_quietly, write_temp
from glaneur.settings import Settings, get_settings


__all__ = [
    "LocalStorage",
    "ObjectNotFound",
    "PutResult",
    "S3Storage",
    "Storage",
    "StorageConflict",
    "UnsafeKey",
    "document_key",
    "get_storage",
    "reference_hash",
    "safe_part",
]

MAX_PART_LENGTH = 80
REFERENCE_HASH_LENGTH = 8
MAX_KEY_LENGTH = 1024
SIDECAR_SUFFIX = ".meta.json"
_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9._-]+")
_SAFE_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,199}")  # room left for the sidecar suffix
_METADATA_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_EXTENSION = re.compile(r"[a-z0-9]{1,10}")
# Printable ASCII stays readable in S3 metadata; '%' itself is escaped so decoding is exact.
_ASCII_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


# --- errors ------------------------------------------------------------------------------------


class StorageConflict(StorageError):
    """Different bytes are already filed at this key. Retrying cannot help: a person must look."""

    retried = False  # type: ignore[assignment]


class UnsafeKey(StorageError):
    """A key that is not made of sanitised parts, or that would leave the storage root (a bug)."""

    retried = False  # type: ignore[assignment]


class ObjectNotFound(StorageError):
    """No object at this key."""

    retried = False  # type: ignore[assignment]


# --- interface ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PutResult:
    key: str
    created: bool  # False: the identical object was already there


@runtime_checkable
class Storage(Protocol):
    def put(
        self, key: str, content: bytes, *, metadata: dict[str, str], content_type: str = "application/pdf"
    ) -> PutResult: ...

    def get(self, key: str) -> bytes: ...

    def metadata(self, key: str) -> dict[str, str]: ...

    def exists(self, key: str) -> bool: ...

    def keys(self, prefix: str = "") -> list[str]: ...

    def get_listed(self, key: str) -> bytes: ...

    def link(self, key: str) -> str: ...


def get_storage(settings: Settings | None = None) -> Storage:
    """The backend named by ``GLANEUR_STORAGE`` ("local", the default, or "s3")."""
    settings = settings or get_settings()
    if settings.storage == "s3":
        return S3Storage.from_settings(settings)
    return LocalStorage(settings.resolved_storage_path)


# --- keys --------------------------------------------------------------------------------------


def safe_part(text: str) -> str:
    """One path segment made safe: ASCII letters, digits, ``.``, ``_``, ``-``; never empty, ``..`` or hidden.

    Accents are folded (``Société`` → ``Societe``), runs of anything else become ``-``, leading and trailing
    dots and dashes are stripped. A part longer than 80 characters is cut and ends with a short
    hash of the whole text, so two long references that share a beginning stay distinct.
    """
    decomposed = unicodedata.normalize("NFKD", str(text))
    folded = "".join(c for c in decomposed if not unicodedata.combining(c))  # é → e; ° and 日 become separators
    part = _UNSAFE_RUN.sub("-", folded).strip(".-")
    if len(part) > MAX_PART_LENGTH:
        digest = hashlib.sha256(str(text).encode("utf-8")).hexdigest()[:8]
        part = part[: MAX_PART_LENGTH - 9].rstrip(".-") + "-" + digest
    return part or "_"


def reference_hash(reference: str) -> str:
    """A short hash of the raw reference, as it appears at the end of a document's file name."""
    return hashlib.sha256(str(reference).encode("utf-8")).hexdigest()[:REFERENCE_HASH_LENGTH]


def document_key(
    *,
    organization: str,
    binder: str,
    channel: str,
    document_date: date,
    provider: str,
    reference: str,
    extension: str = "pdf",
) -> str:
    """``{org}/{binder}/{channel}/{yyyy}/{mm}/{yyyy-mm-dd}_{provider}_{reference}_{hash}.{extension}``.

    ``{hash}`` is :func:`reference_hash` of the raw reference, so two distinct references never share
    a key even when they sanitise alike (``FA/001``, ``FA-001``, ``FA 001``).
    """
    ext = extension.lower().lstrip(".")
    if not _EXTENSION.fullmatch(ext):
        raise ValueError(f"Unsupported file extension {extension!r}: use 1 to 10 letters or digits.")
    day = document_date.strftime("%Y-%m-%d")
    name = f"{day}_{safe_part(provider)}_{safe_part(reference)}_{reference_hash(reference)}.{ext}"
    return "/".join(
        [
            safe_part(organization),
            safe_part(binder),
            safe_part(channel),
            document_date.strftime("%Y"),
            document_date.strftime("%m"),
            name,
        ]
    )


def _check_key(key: str) -> str:
    """Refuse any key not made of sanitised segments: no traversal, no absolute path, no hidden file."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise UnsafeKey(f"Invalid storage key {key!r}: expected 1 to {MAX_KEY_LENGTH} characters.")
    segments = key.split("/")
    for segment in segments:
        if not _SAFE_SEGMENT.fullmatch(segment):
            raise UnsafeKey(
                f"Invalid storage key {key!r}: segment {segment!r} is not a sanitised part "
                "(build keys with glaneur.storage.document_key or safe_part)."
            )
    if segments[-1].endswith(SIDECAR_SUFFIX):
        raise UnsafeKey(f"Invalid storage key {key!r}: names ending in {SIDECAR_SUFFIX} are reserved.")
    return key


def _clean_metadata(metadata: Mapping[str, Any], content: bytes) -> dict[str, str]:
    """Metadata as both backends store it; ``sha256`` is always computed here, never trusted."""
    cleaned: dict[str, str] = {}
    for name, value in metadata.items():
        if not isinstance(name, str) or not _METADATA_NAME.fullmatch(name):
            raise ValueError(
                f"Invalid metadata name {name!r}: use lowercase letters, digits, '_' or '-' (S3 lowercases names)."
            )
        cleaned[name] = "" if value is None else str(value)
    cleaned["sha256"] = hashlib.sha256(content).hexdigest()
    return cleaned


def _conflict(key: str, existing_sha256: str | None, new_sha256: str) -> StorageConflict:
    return StorageConflict(
        f"A different document is already filed at {key} (stored sha256 {existing_sha256 or 'unknown'}, "
        f"new sha256 {new_sha256}); it was not overwritten."
    )


# --- local folder ------------------------------------------------------------------------------


class LocalStorage:
    """Objects are files under ``root``; each has a sidecar ``<file>.meta.json`` with its metadata.

    A put writes the content to a hidden temporary file in the target folder, then the sidecar,
    then makes the object visible with ``os.link`` (which refuses to replace an existing file).
    A crash therefore leaves at worst a hidden temporary file or a sidecar without its object,
    both invisible to :meth:`exists` and :meth:`keys` and replaced by the next put; never an
    object without its metadata, and never a partial object. Writers of one folder hold an
    exclusive ``flock`` on it, so two processes filing the same key cannot mix their sidecars.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        _check_key(key)
        path = self.root.joinpath(*key.split("/"))
        real = os.path.realpath(path)  # follows symlinks planted inside the root
        if os.path.commonpath([real, str(self.root)]) != str(self.root) or real == str(self.root):
            raise UnsafeKey(f"Storage key {key!r} resolves outside the storage root; refused.")
        return path

    @staticmethod
    def _sidecar(path: Path) -> Path:
        return path.with_name(path.name + SIDECAR_SUFFIX)

    def put(
        self, key: str, content: bytes, *, metadata: dict[str, str], content_type: str = "application/pdf"
    ) -> PutResult:
        path = self._path(key)
        meta = _clean_metadata(metadata, content)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with folder_lock(path.parent):
                if path.exists():
                    return self._existing(key, path, meta["sha256"])
                temp = write_temp(path.parent, f".{path.name}.", content)
                try:
                    sidecar = {"content_type": content_type, "metadata": meta}
                    replace_file(self._sidecar(path), json.dumps(sidecar, indent=1, sort_keys=True).encode())
                    try:
                        os.link(temp, path)
                    except FileExistsError:  # a writer that does not take the lock (another host on NFS)
                        return self._existing(key, path, meta["sha256"])
                    fsync_dir(path.parent)
                finally:
                    unlink_quietly(temp)
        except StorageError:
            raise
        except OSError as exc:
            raise StorageError(
                f"Could not file {key} under {self.root}: {exc.strerror or type(exc).__name__}."
            ) from exc
        return PutResult(key=key, created=True)

    def _existing(self, key: str, path: Path, new_sha256: str) -> PutResult:
        existing = self._read_metadata(path).get("sha256")
        if existing != new_sha256:
            raise _conflict(key, existing, new_sha256)
        return PutResult(key=key, created=False)

    def _read_metadata(self, path: Path) -> dict[str, str]:
        try:
            data = json.loads(self._sidecar(path).read_bytes())
            meta = {str(k): str(v) for k, v in data["metadata"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            # Sidecar lost or damaged (by hand): the content itself is the truth for the hash.
            meta = {}
        if "sha256" not in meta:
            meta["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        return meta

    def get(self, key: str) -> bytes:
        return _read(self._path(key), key)

    def metadata(self, key: str) -> dict[str, str]:
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(f"No document at {key}.")
        try:
            return self._read_metadata(path)
        except OSError as exc:
            raise StorageError(f"Could not read the metadata of {key}: {exc.strerror or type(exc).__name__}.") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def keys(self, prefix: str = "") -> list[str]:
        folder, _, _ = prefix.rpartition("/")
        if folder and not all(_SAFE_SEGMENT.fullmatch(s) for s in folder.split("/")):
            return []
        start = self.root.joinpath(*folder.split("/")) if folder else self.root
        if not start.is_dir():
            return []
        found = []
        for key in self._walk(start):
            if key.startswith(prefix):
                found.append(key)
        return sorted(found)

    def get_listed(self, key: str) -> bytes:
        """An object as :meth:`keys` listed it, whatever its name: a file dropped by a person into an inbox may be
        called ``relevé du 19.xml``. Read only, and still never outside the root."""
        segments = key.split("/") if isinstance(key, str) else [""]
        if any(s in ("", ".", "..") or s.startswith(".") or "\0" in s for s in segments):
            raise UnsafeKey(f"Storage key {key!r} cannot be read: an empty, hidden or parent part.")
        path = self.root.joinpath(*segments)
        real = os.path.realpath(path)
        if os.path.commonpath([real, str(self.root)]) != str(self.root) or real == str(self.root):
            raise UnsafeKey(f"Storage key {key!r} resolves outside the storage root; refused.")
        return _read(path, key)

    def _walk(self, start: Path) -> Iterator[str]:
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            relative = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                if name.startswith(".") or name.endswith(SIDECAR_SUFFIX):
                    continue  # temporary files and sidecars are not objects
                yield name if relative == "." else f"{relative}/{name}"

    def link(self, key: str) -> str:
        return self._path(key).as_uri()


def _read(path: Path, key: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ObjectNotFound(f"No document at {key}.") from None
    except OSError as exc:
        raise StorageError(f"Could not read {key}: {exc.strerror or type(exc).__name__}.") from exc


# --- S3 ----------------------------------------------------------------------------------------

_ACCESS_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}
_RETRIED_CODES = {
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "ConditionalRequestConflict",  # two conditional writes raced: the next attempt sees the winner
}


def _encode_value(value: str) -> str:
    """S3 metadata travels in HTTP headers, ASCII only: percent-encode the rest (and '%')."""
    return quote(value, safe=_ASCII_SAFE)


def _decode_value(value: str) -> str:
    return unquote(value)


def _redacted(url: str | None) -> str:
    """An endpoint fit for a message: no user-info, query or fragment."""
    if not url:
        return "AWS S3"
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class S3Storage:
    """Objects in an S3 bucket (AWS, MinIO, any S3-compatible store) under an optional prefix.

    A put never replaces an object, even on a store that ignores conditional writes: see :meth:`put`.
    """

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        client: Any = None,
        max_attempts: int = 3,
    ) -> None:
        if not bucket:
            raise ConfigurationError("S3 storage needs a bucket: set GLANEUR_S3_BUCKET.")
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.session.Session().client(
                "s3",
                endpoint_url=endpoint_url,
                region_name=region,
                config=Config(
                    retries={"max_attempts": max_attempts, "mode": "standard"},
                    connect_timeout=10,
                    read_timeout=60,
                    s3={"addressing_style": "path"} if endpoint_url else None,
                ),
            )
        self._client = client

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> S3Storage:
        settings = settings or get_settings()
        if not settings.s3_bucket:
            raise ConfigurationError(
                "GLANEUR_STORAGE is 's3' but no bucket is set: set GLANEUR_S3_BUCKET "
                "(and GLANEUR_S3_ENDPOINT_URL for MinIO or another S3-compatible store)."
            )
        return cls(
            settings.s3_bucket,
            prefix=settings.s3_prefix,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
        )

    def __repr__(self) -> str:
        return f"S3Storage(bucket={self.bucket!r}, prefix={self.prefix!r}, endpoint={_redacted(self.endpoint_url)!r})"

    def _full(self, key: str) -> str:
        return self.prefix + _check_key(key)

    def put(
        self, key: str, content: bytes, *, metadata: dict[str, str], content_type: str = "application/pdf"
    ) -> PutResult:
        """File ``content`` at ``key`` unless an object is there; never replace an object with other bytes.

        The store is not trusted to refuse an overwrite: several S3-compatible servers ignore
        ``If-None-Match`` and replace silently. So the key is read first (an object there is
        compared by sha256, never written over), the write is conditional (a conforming server
        settles a race between workers), and the object is read back: if another writer's bytes
        are there, this put reports a conflict instead of ``created``. Only on a store that ignores
        conditional writes (s3rver is one, ``tests/e2e/test_storage_s3.py``), two writers of different
        bytes at one key in the same instant can both pass the first read, and the last write wins: the
        read back tells a loser that wrote first only if the winner wrote before it read. Two collections
        never write at one key: a document's key holds its channel, and a channel's runs are claimed one
        at a time (``claim_channel``).
        """
        full = self._full(key)
        meta = _clean_metadata(metadata, content)
        existing = self._stored_sha256(key)
        if existing is not None:
            return self._same_or_conflict(key, existing, meta["sha256"])
        try:
            self._client.put_object(
                Bucket=self.bucket,
                Key=full,
                Body=content,
                ContentType=content_type,
                Metadata={name: _encode_value(value) for name, value in meta.items()},
                IfNoneMatch="*",
            )
        except Exception as exc:  # noqa: BLE001 - sorted below
            if _error_code(exc) not in {"PreconditionFailed", "412"}:
                raise self._error("file", key, exc) from None
            return self._same_or_conflict(key, self._stored_sha256(key), meta["sha256"])
        stored = self._stored_sha256(key)
        if stored != meta["sha256"]:
            raise _conflict(key, stored, meta["sha256"])
        return PutResult(key=key, created=True)

    def _stored_sha256(self, key: str) -> str | None:
        """The sha256 of the object at ``key`` (None when there is none)."""
        try:
            stored = self.metadata(key).get("sha256")
        except ObjectNotFound:
            return None
        if stored is None:  # put there by something else than Glaneur: the content is the truth
            try:
                stored = hashlib.sha256(self.get(key)).hexdigest()
            except ObjectNotFound:
                return None
        return stored

    @staticmethod
    def _same_or_conflict(key: str, existing: str | None, new_sha256: str) -> PutResult:
        if existing != new_sha256:
            raise _conflict(key, existing, new_sha256)
        return PutResult(key=key, created=False)

    def get(self, key: str) -> bytes:
        full = self._full(key)
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=full)
            return response["Body"].read()
        except Exception as exc:  # noqa: BLE001
            raise self._error("read", key, exc) from None

    def metadata(self, key: str) -> dict[str, str]:
        full = self._full(key)
        try:
            response = self._client.head_object(Bucket=self.bucket, Key=full)
        except Exception as exc:  # noqa: BLE001
            raise self._error("read the metadata of", key, exc) from None
        return {name.lower(): _decode_value(value) for name, value in response.get("Metadata", {}).items()}

    def exists(self, key: str) -> bool:
        try:
            self.metadata(key)
        except ObjectNotFound:
            return False
        return True

    def keys(self, prefix: str = "") -> list[str]:
        found = []
        try:
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for item in page.get("Contents", []):
                    found.append(item["Key"][len(self.prefix) :])
        except Exception as exc:  # noqa: BLE001
            raise self._error("list", prefix or "/", exc) from None
        return sorted(found)

    def get_listed(self, key: str) -> bytes:
        """An object as :meth:`keys` listed it, whatever its name (``relevé du 19.xml``); S3 keys are plain
        strings, so no name leaves the bucket and prefix."""
        if not isinstance(key, str) or not key:
            raise UnsafeKey(f"Storage key {key!r} cannot be read: it is empty.")
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self.prefix + key)
            return response["Body"].read()
        except Exception as exc:  # noqa: BLE001
            raise self._error("read", key, exc) from None

    def link(self, key: str) -> str:
        # A presigned URL would expire; this names the object for anyone with access to the bucket.
        return f"s3://{self.bucket}/{self._full(key)}"

    def presigned_url(self, key: str, expires_seconds: int) -> str:
        """A GET link a browser opens without credentials for ``expires_seconds`` (SigV4: 7 days at most).

        Computed locally (no request to the store); whoever holds it can read the object until it expires.
        """
        return self._client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._full(key)}, ExpiresIn=expires_seconds
        )

    def _error(self, action: str, key: str, exc: Exception) -> StorageError:
        """A StorageError whose message says what failed, never with credentials or signed URLs."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        where = f"s3://{self.bucket}/{self.prefix}{key} ({_redacted(self.endpoint_url)})"
        if isinstance(exc, ClientError):
            code = _error_code(exc)
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in {"NoSuchKey", "404", "NotFound"}:
                return ObjectNotFound(f"No document at {key} in s3://{self.bucket}/{self.prefix}.")
            if code in _RETRIED_CODES or (isinstance(status, int) and status >= 500):
                return StorageError(f"S3 is unavailable ({code}, HTTP {status}) while trying to {action} {where}.")
            if code in _ACCESS_CODES or status == 403:  # a HEAD's 403 has no body: its code is just "403"
                return StorageError(
                    f"S3 refused to {action} {where}: access denied ({code}, HTTP {status}). Check "
                    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the AWS profile or role) and that they may "
                    "read and write this bucket."
                )
            return StorageError(f"S3 refused to {action} {where}: {code} (HTTP {status}).")
        if isinstance(exc, NoCredentialsError):
            return StorageError(
                f"No S3 credentials to {action} {where}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "(or an AWS profile or role)."
            )
        if isinstance(exc, BotoCoreError):
            # str(exc) may hold the request URL; the class name says enough (EndpointConnectionError, ...).
            return StorageError(f"Could not reach S3 to {action} {where}: {type(exc).__name__}.")
        return StorageError(f"Could not {action} {where}: {type(exc).__name__}.")


def _error_code(exc: Exception) -> str | None:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    return str(response.get("Error", {}).get("Code") or "") or None
