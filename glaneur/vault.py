"""Secrets encrypted at rest (Fernet): portal passwords, TOTP seeds, portal sessions, partner secrets.

The database holds only ciphertexts (:class:`glaneur.models.VaultEntry`); the key lives outside
it: ``GLANEUR_VAULT_KEY``, or a file named by ``GLANEUR_VAULT_KEY_FILE``, or by default
``$GLANEUR_HOME/vault.key``, generated on first use.

The canary (an entry of purpose ``canary``, holding a known plaintext) is the database's record
of which key its secrets are under. It serves two ends:

- telling a wrong key from damaged data: a key that opens neither the canary nor any secret is
  the wrong key, and the whole vault is refused with a :class:`ConfigurationError` naming the
  setting, before anything is written under it;
- choosing the key that encrypts: of the configured keys, the one that opens the canary. So
  during a rotation a process configured with ``OLD,NEW`` or ``NEW,OLD`` writes under OLD before
  the rotation and under NEW after it, and a process still on OLD alone reads everything written
  before the rotation.

A damaged canary is no reason to stop: when the key opens a secret, the canary is rewritten under
that key (with a warning in the log) and work goes on. One entry that cannot be decrypted while the
key opens the rest raises :class:`~glaneur.errors.SecretUnreadable` for that entry alone, so only
the account, partner or source that uses it fails; entering that secret again repairs it.

Rotating a configured key (``GLANEUR_VAULT_KEY`` or ``GLANEUR_VAULT_KEY_FILE``) without downtime:

1. add the new key to the setting of every process, next to the old one (``OLD,NEW``, or
   ``NEW,OLD``: both work) and restart them; they still write under OLD, which every process reads;
2. run :func:`rotate_key` with NEW (``glaneur vault rotate-key --new-key-stdin``): every entry is
   re-encrypted under NEW in one transaction, the canary with it, so processes now write under NEW;
   it refuses a NEW that is not in the setting, because processes without it could read nothing;
3. set the setting to NEW alone everywhere. (Running step 2 again first, with the same NEW, is
   harmless and re-encrypts anything a process wrote under OLD while the rotation committed.)

No secret, plaintext or key, ever goes into a log line, an exception message or a repr.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, SQLModel, select

from glaneur.errors import ConfigurationError, SecretUnreadable
from glaneur.files import fsync_dir, replace_file, unlink_quietly, write_temp
from glaneur.models import VaultEntry
from glaneur.settings import Settings, get_settings

__all__ = ["Rotation", "Vault", "generate_key", "load_key", "rotate_key"]

logger = logging.getLogger(__name__)

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
            self._keys = _fernets(key, extra=_extra_decryption_keys(settings))
        else:
            if not _valid(key):
                raise ConfigurationError("The vault key given is not a valid Fernet key.")
            self._source = "the key given to the vault"
            self._keys = _fernets(key)
        self._fernet = MultiFernet(self._keys)
        self._current: Fernet | None = None  # the key that encrypts, chosen by the canary on first use

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
        except (InvalidToken, UnicodeDecodeError):
            raise SecretUnreadable(
                f"Vault entry {entry_id} ({entry.purpose}) cannot be decrypted with the vault key in use "
                f"({self._source}), although that key reads the rest of the vault: the entry is damaged, or was "
                "encrypted under a key no longer configured. Enter this secret again (it replaces the entry), "
                "or add the key that encrypted it to GLANEUR_VAULT_KEY after the current one."
            ) from None

    def replace(self, entry_id: int, secret: str, *, expires_at: datetime | None = None) -> None:
        """Put a new secret (and expiry) in an existing entry, keeping its id."""
        self._check()
        entry = self._entry(entry_id)
        entry.ciphertext = self._encrypt(secret)
        entry.expires_at = _utc(expires_at)
        self._session.add(entry)
        self._session.flush()

    def store(self, entry_id: int | None, purpose: str, secret: str, *, expires_at: datetime | None = None) -> int:
        """Keep ``secret`` in the entry ``entry_id`` (:meth:`replace`), or in a new one when there is none yet
        (:meth:`put`); returns the entry id for the referencing row. The old secret is never read."""
        if entry_id is None:
            return self.put(purpose, secret, expires_at=expires_at)
        self.replace(entry_id, secret, expires_at=expires_at)
        return entry_id

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
        assert self._current is not None, "_check() chooses the key first"
        return self._current.encrypt(secret.encode("utf-8"))

    def _purge(self, entry: VaultEntry) -> None:
        self._session.flush()
        _clear_references(self._session, entry.id)
        self._session.delete(entry)
        self._session.flush()

    def _check(self) -> None:
        """On first use: refuse a key that cannot read the secrets already stored; choose the key that encrypts."""
        if self._current is None:
            self._current = _current_key(self._session, self._keys, self._source)


@dataclass(frozen=True)
class Rotation:
    """What :func:`rotate_key` did. ``unreadable``: entries it could not decrypt, left exactly as they were."""

    new_key: str = field(repr=False)  # a secret: never in a repr or a log line
    rotated: int
    unreadable: tuple[int, ...] = ()


def rotate_key(session: Session, new_key: str | None = None, settings: Settings | None = None) -> Rotation:
    """Re-encrypt every readable entry under a new key (``MultiFernet.rotate``), in one transaction.

    Commits ``session``. With the embedded key file (no GLANEUR_VAULT_KEY nor
    GLANEUR_VAULT_KEY_FILE), the new key (generated unless given) replaces ``vault.key``
    atomically and the old one is kept as ``vault.key.previous``; a crash at any point leaves
    every secret readable. With a configured key, ``new_key`` is required and must already be
    listed in that setting, next to the old key, in every process (see the module's procedure):
    a rotation to a key the processes lack would leave them unable to read any secret.

    A wrong key (it opens neither the canary nor any secret) is refused and nothing changes. An
    entry that the key cannot decrypt while it opens the others (damaged, or from a key no longer
    configured) does not block the rotation: it is left as it was, no worse than before, and
    listed in the result so that its secret can be entered again.
    """
    settings = settings or get_settings()
    embedded = settings.uses_embedded_vault_key
    source = _key_source(settings)
    setting = "GLANEUR_VAULT_KEY" if settings.vault_key is not None else "GLANEUR_VAULT_KEY_FILE"
    current = load_key(settings)
    if embedded:
        _finish_pending_rotation(session, settings)
        current = load_key(settings)
        new_key = new_key or generate_key()
    elif not new_key:
        raise ConfigurationError(
            f"The vault key is configured ({setting}), so the new key must be given, and first added to {setting} "
            "in every process. Nothing was rotated."
        )
    new_key = new_key.strip()
    if not _valid(new_key) or "," in new_key:
        raise ConfigurationError("The new vault key is not a valid Fernet key (expected one key, not a list).")
    configured = [part.strip() for part in current.split(",")]
    if not embedded and new_key not in configured:
        raise ConfigurationError(
            f"The new vault key is not in {setting}: processes configured without it could read no secret after "
            f"the rotation. First set {setting} to OLD,NEW (both keys, comma-separated) in every process and restart "
            f"them; then rotate; then set {setting} to NEW alone. Nothing was rotated."
        )
    keys = _fernets(current, extra=_extra_decryption_keys(settings))
    session.flush()
    _current_key(session, keys, source)  # refuses a wrong key before anything changes
    new = Fernet(new_key.encode("ascii"))
    rotator = MultiFernet([new, *keys])  # rotate(): decrypt with any key, encrypt with the first

    session.flush()
    rotated, unreadable = 0, []
    for entry in session.exec(select(VaultEntry).order_by(VaultEntry.id)).all():
        if entry.purpose == CANARY_PURPOSE:
            session.delete(entry)  # one fresh canary, under the new key, replaces them all
            continue
        try:
            entry.ciphertext = rotator.rotate(entry.ciphertext)
        except InvalidToken:
            unreadable.append(entry.id)
            continue
        session.add(entry)
        rotated += 1
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
    if unreadable:
        logger.warning(
            "Vault rotation left %d entr(y/ies) it cannot decrypt as they were: %s",
            len(unreadable),
            ", ".join(map(str, unreadable)),
        )
    return Rotation(new_key=new_key, rotated=rotated, unreadable=tuple(unreadable))


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


def _fernets(key: str, extra: list[str] | tuple[str, ...] = ()) -> list[Fernet]:
    """The configured keys in their order, then the extra ones (embedded key file's .next, .previous)."""
    keys = [part.strip() for part in key.split(",")]
    keys += [k for k in extra if k not in keys]
    return [Fernet(k.encode("ascii")) for k in keys]


def _multi(key: str, extra: list[str] | tuple[str, ...] = ()) -> MultiFernet:
    """Decrypts with any of the keys (tests and rotation use it; the vault encrypts with the canary's key)."""
    return MultiFernet(_fernets(key, extra))


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
        unlink_quietly(temp)
    fsync_dir(path.parent)


def _replace_key_file(path: Path, key: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_file(path, (key + "\n").encode("ascii"), mode=0o600)
    fsync_dir(path.parent)


def _write_temp(path: Path, key: str) -> str:
    return write_temp(path.parent, f".{path.name}.", (key + "\n").encode("ascii"), mode=0o600)


def _promote(key_file: Path, current: str) -> None:
    """After a committed rotation: keep the old key as .previous, make .next the key."""
    _replace_key_file(_sibling(key_file, PREVIOUS_SUFFIX), current)
    os.replace(_sibling(key_file, NEXT_SUFFIX), key_file)
    fsync_dir(key_file.parent)


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
        unlink_quietly(next_file)


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


def _canary(fernet: Fernet | MultiFernet) -> VaultEntry:
    return VaultEntry(purpose=CANARY_PURPOSE, ciphertext=fernet.encrypt(_CANARY_PLAINTEXT), created_at=_now())


def _decrypts(fernet: Fernet | MultiFernet, ciphertext: bytes) -> bool:
    try:
        fernet.decrypt(ciphertext)
    except InvalidToken:
        return False
    return True


def _opener(keys: list[Fernet], ciphertext: bytes) -> Fernet | None:
    """The first key that decrypts this ciphertext."""
    for key in keys:
        if _decrypts(key, ciphertext):
            return key
    return None


def _current_key(session: Session, keys: list[Fernet], source: str) -> Fernet:
    """The key the vault's entries are under (it encrypts from now on); refuses a key that opens nothing.

    The newest canary that one of the keys opens decides. Failing that, a secret the keys open
    proves the key right and the canary damaged (or missing): the canary is rewritten under that
    secret's key, in the caller's transaction, and work goes on. Keys that open neither, while
    secrets exist, are the wrong key: nothing may be written under them.
    """
    canaries = session.exec(
        select(VaultEntry).where(VaultEntry.purpose == CANARY_PURPOSE).order_by(VaultEntry.id.desc())
    ).all()
    for canary in canaries:
        key = _opener(keys, canary.ciphertext)
        if key is not None:
            return key
    key, secrets_exist = _key_of_newest_readable_secret(session, keys)
    if key is None and secrets_exist:
        raise ConfigurationError(
            f"The vault key does not match the secrets in the database (key from {source}): it opens neither the "
            "vault's canary nor any stored secret. Restore the key that encrypted them (GLANEUR_VAULT_KEY / "
            "GLANEUR_VAULT_KEY_FILE) or, if it is lost for good, delete the vault entries and enter every "
            "channel's credentials again (resend the invitations)."
        )
    key = key or keys[0]
    if canaries and secrets_exist:
        logger.warning(
            "The vault canary (entr%s %s) cannot be decrypted, but the vault key (from %s) opens the stored "
            "secrets: the canary was damaged and is rewritten under that key.",
            "y" if len(canaries) == 1 else "ies",
            ", ".join(str(c.id) for c in canaries),
            source,
        )
    # Without secrets, a canary from another key guards nothing: start afresh.
    for canary in canaries:
        session.delete(canary)
    session.add(_canary(key))
    session.flush()
    return key


def _key_of_newest_readable_secret(
    session: Session, keys: list[Fernet], batch: int = 500
) -> tuple[Fernet | None, bool]:
    """(the key opening the newest secret that any key opens, whether any secret exists); reads in batches."""
    last_id: int | None = None
    seen = False
    while True:
        query = select(VaultEntry.id, VaultEntry.ciphertext).where(VaultEntry.purpose != CANARY_PURPOSE)
        if last_id is not None:
            query = query.where(VaultEntry.id < last_id)
        rows = session.exec(query.order_by(VaultEntry.id.desc()).limit(batch)).all()
        if not rows:
            return None, seen
        seen = True
        for entry_id, ciphertext in rows:
            key = _opener(keys, ciphertext)
            if key is not None:
                return key, True
            last_id = entry_id


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
