"""Secrets encrypted at rest (Fernet): portal passwords, TOTP seeds, portal sessions.

The database holds only ciphertexts (:class:`glaneur.models.VaultEntry`); the key lives outside
it: ``GLANEUR_VAULT_KEY``, or a file named by ``GLANEUR_VAULT_KEY_FILE``, or by default
``$GLANEUR_HOME/vault.key``, generated on first use. A canary entry (purpose ``canary``) lets
a wrong key be told apart from damaged data, with a message saying what to do.

A key setting may list several Fernet keys separated by commas, newest first: secrets are
encrypted with the first and decrypted with any. That allows a rotation without downtime with
``GLANEUR_VAULT_KEY``: deploy ``new,old`` everywhere, run :func:`rotate_key` with ``new``, then
deploy ``new`` alone. (With ``old,new``, secrets stored between the rotation and the last deploy
would be encrypted with the old key and lost with it: :func:`rotate_key` refuses that order.)

No secret, plaintext or key, ever goes into a log line, an exception message or a repr.
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, SQLModel, select

from glaneur.errors import ConfigurationError
from glaneur.models import VaultEntry
from glaneur.settings import Settings, get_settings

__all__ = ["Vault", "generate_key", "load_key", "rotate_key"]

CANARY_PURPOSE = "canary"
_CANARY_PLAINTEXT = b"glaneur vault canary"
PREVIOUS_SUFFIX = ".previous"  # the key before the last rotation, kept next to the key file
NEXT_SUFFIX = ".next"  # a rotation's new key, written before its transaction commits


def generate_key() -> str:
    """A new random Fernet key (urlsafe base64 of 32 bytes)."""
    return Fernet.generate_key().decode("ascii")


def load_key(settings: Settings | None = None) -> str:
    """The vault key from the settings, generating the embedded key file only if it does not exist.

    Order: ``GLANEUR_VAULT_KEY``; else ``GLANEUR_VAULT_KEY_FILE`` (never generated: a missing
    file is a configuration error); else ``$GLANEUR_HOME/vault.key``, created with mode 0600 on
    first use and never regenerated once it exists.
    """
    settings = settings or get_settings()
    if settings.vault_key is not None:
        key = settings.vault_key.get_secret_value().strip()
        if not _valid(key):
            raise ConfigurationError(
                "GLANEUR_VAULT_KEY is not a valid vault key: expected a Fernet key (44 characters of urlsafe "
                "base64), or several separated by commas. Generate one with `glaneur vault generate-key`."
            )
        return key
    if settings.vault_key_file is not None:
        return _read_key_file(Path(settings.vault_key_file), variable="GLANEUR_VAULT_KEY_FILE")
    path = settings.resolved_vault_key_file
    if not path.exists():
        _create_key_file(path, generate_key())
    return _read_key_file(path, variable="GLANEUR_HOME")


class Vault:
    """Encrypts and decrypts :class:`VaultEntry` rows in the caller's session (the caller commits)."""

    def __init__(self, session: Session, key: str | None = None) -> None:
        self._session = session
        if key is None:
            settings = get_settings()
            key = load_key(settings)
            self._source = _key_source(settings)
            self._fernet = _multi(key, extra=_extra_decryption_keys(settings))
        else:
            if not _valid(key):
                raise ConfigurationError("The vault key given is not a valid Fernet key.")
            self._source = "the key given to the vault"
            self._fernet = _multi(key)
        self._checked = False

    def __repr__(self) -> str:
        return f"Vault(key from {self._source})"

    def put(self, purpose: str, secret: str, *, expires_at: datetime | None = None) -> int:
        """Store a secret; returns the entry id to keep in the referencing row (e.g. ``Account.secret_ref``)."""
        self._check()
        if not purpose or purpose == CANARY_PURPOSE:
            raise ValueError(f"Invalid vault purpose {purpose!r}.")
        entry = VaultEntry(
            purpose=purpose,
            ciphertext=self._encrypt(secret),
            expires_at=_utc(expires_at),
            created_at=_now(),
        )
        self._session.add(entry)
        self._session.flush()
        assert entry.id is not None
        return entry.id

    def get(self, entry_id: int) -> str | None:
        """The secret; None if it has expired (the entry is then purged). LookupError if there is no such entry."""
        self._check()
        entry = self._entry(entry_id)
        if _expired(entry):
            self._purge(entry)
            return None
        try:
            return self._fernet.decrypt(entry.ciphertext).decode("utf-8")
        except InvalidToken:
            raise ConfigurationError(
                f"Vault entry {entry_id} cannot be decrypted with the vault key in use ({self._source}). "
                "Restore the key that encrypted it (GLANEUR_VAULT_KEY / GLANEUR_VAULT_KEY_FILE), or delete "
                "the entry and enter the credentials again."
            ) from None

    def replace(self, entry_id: int, secret: str, *, expires_at: datetime | None = None) -> None:
        """Put a new secret (and expiry) in an existing entry, keeping its id."""
        self._check()
        entry = self._entry(entry_id)
        entry.ciphertext = self._encrypt(secret)
        entry.expires_at = _utc(expires_at)
        self._session.add(entry)
        self._session.flush()

    def delete(self, entry_id: int | None) -> None:
        """Purge an entry (no-op on None or on an entry already gone); references to it become NULL."""
        if entry_id is None:
            return
        entry = self._session.get(VaultEntry, entry_id)
        if entry is not None:
            self._purge(entry)

    # --- internals ---

    def _entry(self, entry_id: int) -> VaultEntry:
        entry = self._session.get(VaultEntry, entry_id)
        if entry is None or entry.purpose == CANARY_PURPOSE:
            raise LookupError(f"No vault entry {entry_id}.")
        return entry

    def _encrypt(self, secret: str) -> bytes:
        if not isinstance(secret, str):
            raise TypeError("A vault secret must be a str.")
        return self._fernet.encrypt(secret.encode("utf-8"))

    def _purge(self, entry: VaultEntry) -> None:
        self._session.flush()
        _clear_references(self._session, entry.id)
        self._session.delete(entry)
        self._session.flush()

    def _check(self) -> None:
        """On first use: refuse a key that cannot read the secrets already stored; create the canary."""
        if self._checked:
            return
        _check_key_matches(self._session, self._fernet, self._source)
        self._checked = True


def rotate_key(session: Session, new_key: str | None = None, settings: Settings | None = None) -> str:
    """Re-encrypt every entry (canary included) with a new key, in one transaction; returns the new key.

    Commits ``session``. With the embedded key file (no GLANEUR_VAULT_KEY nor
    GLANEUR_VAULT_KEY_FILE), the new key replaces ``vault.key`` atomically and the old one is
    kept as ``vault.key.previous``; a crash at any point leaves every secret readable. With a
    configured key (GLANEUR_VAULT_KEY or GLANEUR_VAULT_KEY_FILE) nothing is written: the operator
    must set the returned key, and until then the old key no longer decrypts the secrets, so
    the caller must show it at once (or pass ``new_key`` it has shown beforehand).
    """
    settings = settings or get_settings()
    embedded = settings.uses_embedded_vault_key
    source = _key_source(settings)
    current = load_key(settings)
    if embedded:
        _finish_pending_rotation(session, settings)
        current = load_key(settings)
    old = _multi(current, extra=_extra_decryption_keys(settings))
    new_key = (new_key or generate_key()).strip()
    if not _valid(new_key) or "," in new_key:
        raise ConfigurationError("The new vault key is not a valid Fernet key (expected one key, not a list).")
    configured = [part.strip() for part in current.split(",")]
    if not embedded and new_key in configured[1:]:
        setting = "GLANEUR_VAULT_KEY" if settings.vault_key is not None else "GLANEUR_VAULT_KEY_FILE"
        raise ConfigurationError(
            f"The new vault key must come first in {setting} (NEW,OLD): secrets are encrypted with the first "
            "key, so with OLD first those stored until you set NEW alone would be lost. Nothing was rotated."
        )
    new = Fernet(new_key.encode("ascii"))

    session.flush()
    entries = list(session.exec(select(VaultEntry)).all())
    plaintexts = []
    for entry in entries:  # decrypt everything first: nothing changes unless all of it is readable
        try:
            plaintexts.append(old.decrypt(entry.ciphertext))
        except InvalidToken:
            raise ConfigurationError(
                f"Vault entry {entry.id} cannot be decrypted with the current vault key ({source}); "
                "nothing was rotated. Restore the key that encrypted the secrets first."
            ) from None
    for entry, plaintext in zip(entries, plaintexts, strict=True):
        entry.ciphertext = new.encrypt(plaintext)
        session.add(entry)
    if not any(entry.purpose == CANARY_PURPOSE for entry in entries):
        session.add(_canary(new))

    next_file = _sibling(settings.resolved_vault_key_file, NEXT_SUFFIX)
    if embedded:
        _replace_key_file(next_file, new_key)  # on disk before the commit: the new secrets are never keyless
    try:
        session.commit()
    except BaseException:
        # .next stays: if the commit did happen after all (a lost reply), it is the only copy of the key.
        # It keeps decrypting, and the next rotation promotes or drops it after looking at the canary.
        session.rollback()
        raise
    if embedded:
        _promote(settings.resolved_vault_key_file, current)
    return new_key


# --- key files ---------------------------------------------------------------------------------


def _valid(key: str) -> bool:
    parts = [part.strip() for part in key.split(",")]
    if not parts or not all(parts):
        return False
    try:
        for part in parts:
            Fernet(part.encode("ascii"))
    except (ValueError, TypeError, UnicodeEncodeError):
        return False
    return True


def _multi(key: str, extra: list[str] | tuple[str, ...] = ()) -> MultiFernet:
    """Encrypt with the first key; decrypt with any of them, then with the extra (older) ones."""
    keys = [part.strip() for part in key.split(",")]
    keys += [k for k in extra if k not in keys]
    return MultiFernet([Fernet(k.encode("ascii")) for k in keys])


def _read_key_file(path: Path, *, variable: str) -> str:
    what = "the vault key file" if variable == "GLANEUR_VAULT_KEY_FILE" else "the embedded vault key file"
    try:
        key = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise ConfigurationError(
            f"The vault key file {path} does not exist. Check GLANEUR_VAULT_KEY_FILE, or restore the file "
            "from your backups; a configured key file is never generated."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(
            f"Cannot read {what} {path} ({variable}): {getattr(exc, 'strerror', None) or type(exc).__name__}. "
            "Check its permissions."
        ) from None
    if not _valid(key):
        raise ConfigurationError(
            f"{what.capitalize()} {path} ({variable}) does not hold a valid Fernet key. Restore it from your "
            "backups; Glaneur never regenerates an existing key file."
        )
    return key


def _create_key_file(path: Path, key: str) -> None:
    """Write a key file only if none exists (another process may race us: its key wins)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = _write_temp(path, key)
    try:
        os.link(temp, path)
    except FileExistsError:
        pass
    finally:
        _unlink_quietly(temp)
    _fsync_dir(path.parent)


def _replace_key_file(path: Path, key: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = _write_temp(path, key)
    try:
        os.replace(temp, path)
    except BaseException:
        _unlink_quietly(temp)
        raise
    _fsync_dir(path.parent)


def _write_temp(path: Path, key: str) -> str:
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(key + "\n")
            handle.flush()
            os.fchmod(handle.fileno(), 0o600)
            os.fsync(handle.fileno())
    except BaseException:
        _unlink_quietly(temp)
        raise
    return temp


def _promote(key_file: Path, current: str) -> None:
    """After a committed rotation: keep the old key as .previous, make .next the key."""
    _replace_key_file(_sibling(key_file, PREVIOUS_SUFFIX), current)
    os.replace(_sibling(key_file, NEXT_SUFFIX), key_file)
    _fsync_dir(key_file.parent)


def _finish_pending_rotation(session: Session, settings: Settings) -> None:
    """A rotation that committed but crashed before swapping the key files is completed; a stale one is dropped."""
    key_file = settings.resolved_vault_key_file
    next_file = _sibling(key_file, NEXT_SUFFIX)
    if not next_file.exists():
        return
    pending = _optional_key(next_file)
    canaries = session.exec(select(VaultEntry).where(VaultEntry.purpose == CANARY_PURPOSE)).all()
    committed = pending is not None and any(_decrypts(Fernet(pending.encode()), c.ciphertext) for c in canaries)
    if committed:
        _promote(key_file, load_key(settings))
    else:  # its transaction never committed, so nothing was encrypted with it
        _unlink_quietly(next_file)


def _extra_decryption_keys(settings: Settings) -> list[str]:
    """With the embedded key file: keys that may still be needed after an interrupted rotation."""
    if not settings.uses_embedded_vault_key:
        return []
    key_file = settings.resolved_vault_key_file
    found = [_optional_key(_sibling(key_file, suffix)) for suffix in (NEXT_SUFFIX, PREVIOUS_SUFFIX)]
    return [key for key in found if key]


def _optional_key(path: Path) -> str | None:
    try:
        key = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return key if _valid(key) and "," not in key else None


def _key_source(settings: Settings) -> str:
    if settings.vault_key is not None:
        return "GLANEUR_VAULT_KEY"
    if settings.vault_key_file is not None:
        return f"GLANEUR_VAULT_KEY_FILE={settings.vault_key_file}"
    return f"the embedded key file {settings.resolved_vault_key_file}"


def _sibling(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quietly(path: str | Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# --- canary and entries ------------------------------------------------------------------------


def _canary(fernet: Fernet | MultiFernet) -> VaultEntry:
    return VaultEntry(purpose=CANARY_PURPOSE, ciphertext=fernet.encrypt(_CANARY_PLAINTEXT), created_at=_now())


def _decrypts(fernet: Fernet | MultiFernet, ciphertext: bytes) -> bool:
    try:
        fernet.decrypt(ciphertext)
    except InvalidToken:
        return False
    return True


def _check_key_matches(session: Session, fernet: MultiFernet, source: str) -> None:
    canaries = session.exec(select(VaultEntry).where(VaultEntry.purpose == CANARY_PURPOSE)).all()
    secret = session.exec(select(VaultEntry).where(VaultEntry.purpose != CANARY_PURPOSE).limit(1)).first()
    if canaries:
        witness = [c.ciphertext for c in canaries]
    elif secret is not None:  # secrets stored before any canary: one of them stands in
        witness = [secret.ciphertext]
    else:
        witness = []
    if not witness or any(_decrypts(fernet, ciphertext) for ciphertext in witness):
        if not canaries:
            session.add(_canary(fernet))
            session.flush()
        return
    if secret is None:
        # Only a canary from another key and no secret: nothing can be lost, start afresh.
        for canary in canaries:
            session.delete(canary)
        session.add(_canary(fernet))
        session.flush()
        return
    raise ConfigurationError(
        f"The vault key does not match the secrets in the database (key from {source}). "
        "Restore the key that encrypted them (GLANEUR_VAULT_KEY / GLANEUR_VAULT_KEY_FILE) or, if it is lost "
        "for good, delete the vault entries and enter every channel's credentials again (resend the invitations)."
    )


def _clear_references(session: Session, entry_id: int | None) -> None:
    """Set to NULL every column that references this entry (Account.secret_ref, totp_ref, session_ref...)."""
    if entry_id is None:
        return
    target = VaultEntry.__table__.c.id
    for table in SQLModel.metadata.sorted_tables:
        for column in table.columns:
            if not any(fk.column is target for fk in column.foreign_keys):
                continue
            session.exec(update(table).where(column == entry_id).values({column.name: None}))
            for obj in list(session.identity_map.values()):  # keep loaded rows in step without dirtying them
                if getattr(obj, "__table__", None) is table and getattr(obj, column.key, None) == entry_id:
                    set_committed_value(obj, column.key, None)


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(moment: datetime | None) -> datetime | None:
    """Aware UTC; a naive datetime is taken as UTC (as glaneur.models.utcnow produces)."""
    if moment is None:
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _expired(entry: VaultEntry) -> bool:
    expires_at = _utc(entry.expires_at)
    return expires_at is not None and expires_at <= _now()
