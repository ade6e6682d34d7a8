"""Vault: secrets encrypted at rest, a key checked against a canary, key files, rotation."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlmodel import Session, select

from glaneur import vault as vault_module
from glaneur.db import get_engine, migrate
from glaneur.errors import ConfigurationError, GlaneurError, SecretUnreadable
from glaneur.models import Account, Binder, Channel, Organization, User, VaultEntry
from glaneur.settings import get_settings, reset_settings
from glaneur.statuses import Status
from glaneur.vault import Vault, generate_key, load_key, rotate_key

SECRET = "p4ssw0rd-Été-🔑"


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    """A fresh GLANEUR_HOME (so a fresh SQLite database and engine) with no other GLANEUR_ setting."""
    for name in list(os.environ):
        if name.startswith("GLANEUR_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("GLANEUR_HOME", str(tmp_path / "home"))
    reset_settings()
    yield monkeypatch
    reset_settings()


def configure(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for name, value in values.items():
        monkeypatch.setenv(f"GLANEUR_{name.upper()}", value)
    reset_settings()


@pytest.fixture
def session(env: pytest.MonkeyPatch) -> Iterator[Session]:
    migrate()
    with Session(get_engine(), expire_on_commit=False) as session:
        yield session


def home() -> Path:
    return get_settings().home


def key_file() -> Path:
    return get_settings().resolved_vault_key_file


def count(session: Session, purpose: str | None = None) -> int:
    query = select(VaultEntry)
    if purpose:
        query = query.where(VaultEntry.purpose == purpose)
    return len(session.exec(query).all())


def readable_by(key: str, session: Session, entry_id: int) -> str | None:
    return Vault(session, key=key).get(entry_id)


# --- keys --------------------------------------------------------------------------------------


def test_generate_key_is_a_fernet_key() -> None:
    key = generate_key()
    assert isinstance(key, str) and len(key) == 44
    assert generate_key() != key
    assert vault_module._valid(key)


def test_embedded_key_is_generated_once_then_reused(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    configure(env, home=str(tmp_path / "deep" / "er" / "home"))
    assert not key_file().exists()
    first = load_key()
    assert key_file().parent.is_dir()
    content = key_file().read_bytes()
    assert stat.S_IMODE(key_file().stat().st_mode) == 0o600
    assert load_key() == first
    reset_settings()
    assert load_key() == first
    assert key_file().read_bytes() == content
    assert [p.name for p in key_file().parent.iterdir()] == ["vault.key"]  # no temporary file left


def test_existing_malformed_embedded_key_is_never_regenerated(env: pytest.MonkeyPatch) -> None:
    key_file().parent.mkdir(parents=True)
    key_file().write_text("not a key\n")
    with pytest.raises(ConfigurationError, match="vault.key"):
        load_key()
    assert key_file().read_text() == "not a key\n"


def test_key_from_the_environment_wins(env: pytest.MonkeyPatch) -> None:
    key = generate_key()
    configure(env, vault_key=key, vault_key_file=str(home() / "unused.key"))
    assert load_key() == key
    assert not key_file().exists() and not home().exists()


def test_malformed_key_in_the_environment_is_not_echoed(env: pytest.MonkeyPatch) -> None:
    configure(env, vault_key="hunter2-hunter2")
    with pytest.raises(ConfigurationError, match="GLANEUR_VAULT_KEY") as caught:
        load_key()
    assert "hunter2" not in str(caught.value)
    configure(env, vault_key="")
    with pytest.raises(ConfigurationError, match="GLANEUR_VAULT_KEY"):
        load_key()


def test_configured_key_file(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    key = generate_key()
    path = tmp_path / "secrets" / "glaneur.key"
    path.parent.mkdir()
    path.write_text(f"  {key}\n")
    configure(env, vault_key_file=str(path))
    assert load_key() == key


def test_missing_configured_key_file_is_an_error_not_a_new_key(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "missing" / "glaneur.key"
    configure(env, vault_key_file=str(path))
    with pytest.raises(ConfigurationError) as caught:
        load_key()
    assert str(path) in str(caught.value) and "GLANEUR_VAULT_KEY_FILE" in str(caught.value)
    assert not path.exists() and not path.parent.exists()
    assert not get_settings().home.joinpath("vault.key").exists()


def test_malformed_configured_key_file(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "glaneur.key"
    path.write_text("AAAA")
    configure(env, vault_key_file=str(path))
    with pytest.raises(ConfigurationError) as caught:
        load_key()
    assert str(path) in str(caught.value) and "GLANEUR_VAULT_KEY_FILE" in str(caught.value)


def test_configured_key_file_that_is_a_folder(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    configure(env, vault_key_file=str(tmp_path))
    with pytest.raises(ConfigurationError) as caught:
        load_key()
    assert str(tmp_path) in str(caught.value) and "GLANEUR_VAULT_KEY_FILE" in str(caught.value)


def test_unreadable_configured_key_file(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "glaneur.key"
    path.write_text(generate_key())
    configure(env, vault_key_file=str(path))

    def denied(*_args: object, **_kwargs: object) -> str:
        raise PermissionError(13, "Permission denied")  # chmod 0 does not stop root, who runs CI here

    env.setattr(Path, "read_text", denied)
    with pytest.raises(ConfigurationError) as caught:
        load_key()
    assert str(path) in str(caught.value) and "GLANEUR_VAULT_KEY_FILE" in str(caught.value)
    assert "Permission denied" in str(caught.value)


def test_a_key_file_created_meanwhile_by_another_process_wins(env: pytest.MonkeyPatch) -> None:
    theirs, ours = generate_key(), generate_key()
    vault_module._create_key_file(key_file(), theirs)
    vault_module._create_key_file(key_file(), ours)
    assert load_key() == theirs
    assert [p.name for p in key_file().parent.iterdir()] == ["vault.key"]


# --- secrets -----------------------------------------------------------------------------------


def test_round_trip(session: Session) -> None:
    vault = Vault(session)
    entry_id = vault.put("password", SECRET)
    assert isinstance(entry_id, int)
    assert vault.get(entry_id) == SECRET
    session.commit()
    assert Vault(session).get(entry_id) == SECRET
    with Session(get_engine()) as other:
        assert Vault(other).get(entry_id) == SECRET


def test_ciphertext_in_the_database_holds_no_plaintext(session: Session) -> None:
    vault = Vault(session)
    secret = "correct horse battery staple"
    entry_id = vault.put("password", secret)
    session.commit()
    database = get_settings().resolved_database_url.removeprefix("sqlite:///")
    with sqlite3.connect(database) as connection:
        connection.execute("PRAGMA wal_checkpoint(FULL)")
        (ciphertext,) = connection.execute("SELECT ciphertext FROM vaultentry WHERE id = ?", (entry_id,)).fetchone()
    assert secret.encode() not in ciphertext
    for path in Path(database).parent.glob("glaneur.db*"):
        assert secret.encode() not in path.read_bytes()


def test_first_use_creates_one_canary(session: Session) -> None:
    Vault(session).put("password", SECRET)
    Vault(session).put("totp_seed", "JBSWY3DPEHPK3PXP")
    assert count(session, "canary") == 1
    canary_id = session.exec(select(VaultEntry.id).where(VaultEntry.purpose == "canary")).one()
    with pytest.raises(LookupError):
        Vault(session).get(canary_id)  # internal, not a secret anyone asked for
    with pytest.raises(ValueError):
        Vault(session).put("canary", "x")


def test_wrong_key_is_refused_with_actionable_text(session: Session) -> None:
    entry_id = Vault(session).put("password", SECRET)
    session.commit()
    other_key = generate_key()
    for use in (lambda v: v.get(entry_id), lambda v: v.put("password", "x"), lambda v: v.replace(entry_id, "x")):
        with pytest.raises(ConfigurationError) as caught:
            use(Vault(session, key=other_key))
        message = str(caught.value)
        assert "does not match the secrets in the database" in message
        assert "GLANEUR_VAULT_KEY" in message and "restore the key" in message.lower()
        assert SECRET not in message and other_key not in message and load_key() not in message
    assert count(session) == 2  # nothing added


def test_wrong_default_key_names_where_it_came_from(session: Session) -> None:
    Vault(session).put("password", SECRET)
    session.commit()
    key_file().write_text(generate_key() + "\n")  # the embedded key replaced by another
    with pytest.raises(ConfigurationError, match="embedded key file .*vault.key"):
        Vault(session).put("password", "x")


def test_secrets_stored_before_any_canary_still_guard_the_key(session: Session) -> None:
    key = load_key()
    session.add(VaultEntry(purpose="password", ciphertext=vault_module._multi(key).encrypt(b"x"), created_at=now()))
    session.commit()
    with pytest.raises(ConfigurationError, match="does not match"):
        Vault(session, key=generate_key()).put("password", "y")
    Vault(session).put("password", "y")  # the right key adds the missing canary
    assert count(session, "canary") == 1


def test_a_lone_canary_from_another_key_is_replaced(session: Session) -> None:
    Vault(session, key=generate_key()).put("password", "x")
    for entry in session.exec(select(VaultEntry).where(VaultEntry.purpose != "canary")):
        session.delete(entry)
    session.commit()
    vault = Vault(session)
    entry_id = vault.put("password", SECRET)  # no secret could be lost: start afresh
    assert vault.get(entry_id) == SECRET
    assert count(session, "canary") == 1


def test_entry_encrypted_with_another_key_fails_clearly(session: Session) -> None:
    vault = Vault(session)
    vault.put("password", "x")
    alien = VaultEntry(
        purpose="password", ciphertext=vault_module._multi(generate_key()).encrypt(b"y"), created_at=now()
    )
    session.add(alien)
    session.flush()
    with pytest.raises(SecretUnreadable, match=f"Vault entry {alien.id} \\(password\\) cannot be decrypted") as caught:
        vault.get(alien.id)
    assert isinstance(caught.value, GlaneurError) and caught.value.status == Status.SECRET_UNREADABLE
    assert "GLANEUR_VAULT_KEY" in str(caught.value) and "Enter this secret again" in str(caught.value)


def damage(session: Session, entry_id: int) -> None:
    """Flip one byte in the middle of an entry's ciphertext, as a bad disk or a bad restore would."""
    entry = session.get(VaultEntry, entry_id)
    ciphertext = bytearray(entry.ciphertext)
    ciphertext[len(ciphertext) // 2] ^= 0x01
    entry.ciphertext = bytes(ciphertext)
    session.add(entry)
    session.commit()


def canary_id(session: Session) -> int:
    return session.exec(select(VaultEntry.id).where(VaultEntry.purpose == "canary")).one()


def test_a_damaged_entry_fails_alone_with_a_typed_error(session: Session) -> None:
    vault = Vault(session)
    damaged, intact = vault.put("password", SECRET), vault.put("partner_secret", "other")
    session.commit()
    damage(session, damaged)

    with pytest.raises(SecretUnreadable) as caught:
        Vault(session).get(damaged)
    assert SECRET not in str(caught.value) and load_key() not in str(caught.value)
    assert Vault(session).get(intact) == "other"  # the rest of the vault still works
    Vault(session).replace(damaged, "entered again")  # and entering the secret again repairs it
    assert Vault(session).get(damaged) == "entered again"


def test_a_damaged_canary_is_rewritten_and_stops_nothing(session: Session, caplog: pytest.LogCaptureFixture) -> None:
    entry_id = Vault(session).put("password", SECRET)
    session.commit()
    damaged_canary = canary_id(session)
    damage(session, damaged_canary)

    with caplog.at_level(logging.WARNING, logger="glaneur.vault"):
        assert Vault(session).get(entry_id) == SECRET
        new_id = Vault(session).put("password", "added after")
    session.commit()

    assert "canary" in caplog.text and "rewritten" in caplog.text
    assert SECRET not in caplog.text and load_key() not in caplog.text
    assert canary_id(session) != damaged_canary  # one canary, a fresh one, readable by the key
    canary = session.get(VaultEntry, canary_id(session))
    assert vault_module._multi(load_key()).decrypt(canary.ciphertext) == vault_module._CANARY_PLAINTEXT
    assert Vault(session).get(new_id) == "added after"


def test_a_damaged_canary_does_not_let_a_wrong_key_in(session: Session) -> None:
    Vault(session).put("password", SECRET)
    session.commit()
    damage(session, canary_id(session))
    with pytest.raises(ConfigurationError, match="does not match the secrets"):
        Vault(session, key=generate_key()).put("password", "x")
    assert count(session) == 2


def test_unknown_entry(session: Session) -> None:
    with pytest.raises(LookupError):
        Vault(session).get(12345)
    with pytest.raises(LookupError):
        Vault(session).replace(12345, "x")


def test_replace_keeps_the_id(session: Session) -> None:
    vault = Vault(session)
    entry_id = vault.put("session", "cookie-1", expires_at=now() + timedelta(hours=1))
    vault.replace(entry_id, "cookie-2")
    assert vault.get(entry_id) == "cookie-2"
    assert session.get(VaultEntry, entry_id).expires_at is None


def test_store_puts_a_new_entry_then_replaces_it_in_place(session: Session) -> None:
    vault = Vault(session)
    entry_id = vault.store(None, "password", "first")
    assert vault.get(entry_id) == "first" and count(session, "password") == 1
    assert vault.store(entry_id, "password", "second", expires_at=now() + timedelta(hours=1)) == entry_id
    assert vault.get(entry_id) == "second" and count(session, "password") == 1
    assert session.get(VaultEntry, entry_id).expires_at is not None


def test_delete(session: Session) -> None:
    vault = Vault(session)
    entry_id = vault.put("password", SECRET)
    vault.delete(None)
    vault.delete(entry_id)
    vault.delete(entry_id)
    with pytest.raises(LookupError):
        vault.get(entry_id)
    session.commit()
    assert session.get(VaultEntry, entry_id) is None


@pytest.mark.parametrize(
    "expires_at",
    [
        datetime.now(UTC) - timedelta(seconds=1),
        datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=1),  # naive: taken as UTC
        datetime.now(timezone(timedelta(hours=-5))) - timedelta(seconds=1),
    ],
)
def test_expired_entry_gives_none_and_is_purged(session: Session, expires_at: datetime) -> None:
    vault = Vault(session)
    entry_id = vault.put("session", "cookie", expires_at=expires_at)
    session.commit()
    assert Vault(session).get(entry_id) is None
    session.commit()
    assert session.get(VaultEntry, entry_id) is None
    with pytest.raises(LookupError):
        vault.get(entry_id)


def test_unexpired_entry_is_returned(session: Session) -> None:
    vault = Vault(session)
    aware = vault.put("session", "a", expires_at=now() + timedelta(minutes=5))
    naive = vault.put("session", "b", expires_at=(now() + timedelta(minutes=5)).replace(tzinfo=None))
    session.commit()
    assert (Vault(session).get(aware), Vault(session).get(naive)) == ("a", "b")


def test_purging_clears_the_references_to_the_entry(session: Session) -> None:
    created = {"created_at": now()}  # glaneur.models.utcnow is naive; see the report
    org = Organization(slug="acme", name="Acme", **created)
    session.add(org)
    session.flush()
    user = User(organization_id=org.id, email="a@acme.test", name="A", **created)
    binder = Binder(organization_id=org.id, slug="achats", name="Achats", **created)
    session.add_all([user, binder])
    session.flush()
    channel = Channel(
        organization_id=org.id,
        slug="acme-dupont",
        label="Dupont",
        provider="papeterie-dupont",
        binder_id=binder.id,
        recipient_user_id=user.id,
        **created,
    )
    session.add(channel)
    session.flush()
    vault = Vault(session)
    account = Account(
        channel_id=channel.id,
        position=1,
        login="compta@acme.test",
        secret_ref=vault.put("password", SECRET),
        session_ref=vault.put("session", "cookie", expires_at=now() - timedelta(seconds=1)),
        **created,
    )
    session.add(account)
    session.commit()
    expired_ref = account.session_ref

    assert vault.get(expired_ref) is None
    assert account.session_ref is None
    vault.delete(account.secret_ref)
    assert account.secret_ref is None
    session.commit()
    session.refresh(account)
    assert (account.secret_ref, account.session_ref) == (None, None)
    assert count(session) == 1  # the canary


def test_repr_and_errors_hold_no_secret(session: Session) -> None:
    key = generate_key()
    vault = Vault(session, key=key)
    entry_id = vault.put("password", SECRET)
    assert key not in repr(vault) and SECRET not in repr(vault)
    assert SECRET not in repr(session.get(VaultEntry, entry_id))
    with pytest.raises(TypeError) as caught:
        vault.put("password", b"bytes")  # type: ignore[arg-type]
    assert "bytes" not in str(caught.value)
    with pytest.raises(ConfigurationError) as caught_key:
        Vault(session, key="not-a-key-" + SECRET)
    assert SECRET not in str(caught_key.value)


# --- rotation ----------------------------------------------------------------------------------


def fill(session: Session) -> dict[int, str]:
    vault = Vault(session)
    secrets = {vault.put("password", f"secret-{i}"): f"secret-{i}" for i in range(3)}
    secrets[vault.put("session", "cookie", expires_at=now() + timedelta(days=1))] = "cookie"
    session.commit()
    return secrets


def assert_readable(session: Session, secrets: dict[int, str], key: str | None = None) -> None:
    vault = Vault(session, key=key)
    assert {entry_id: vault.get(entry_id) for entry_id in secrets} == secrets


def assert_unreadable(session: Session, secrets: dict[int, str], key: str) -> None:
    with pytest.raises(ConfigurationError):
        Vault(session, key=key).get(next(iter(secrets)))
    for entry in session.exec(select(VaultEntry)):
        with pytest.raises(vault_module.InvalidToken):
            vault_module._multi(key).decrypt(entry.ciphertext)


def test_rotation_with_the_embedded_key(session: Session) -> None:
    secrets = fill(session)
    old = load_key()
    ciphertexts = {e.id: e.ciphertext for e in session.exec(select(VaultEntry))}

    rotation = rotate_key(session)
    new = rotation.new_key

    assert (rotation.rotated, rotation.unreadable) == (len(secrets), ())
    assert new not in repr(rotation) and new not in str(rotation)
    assert new != old and vault_module._valid(new)
    assert key_file().read_text().strip() == new
    assert key_file().with_name("vault.key.previous").read_text().strip() == old
    assert stat.S_IMODE(key_file().stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file().with_name("vault.key.previous").stat().st_mode) == 0o600
    assert not key_file().with_name("vault.key.next").exists()
    assert all(e.ciphertext != ciphertexts.get(e.id) for e in session.exec(select(VaultEntry)))
    reset_settings()
    assert load_key() == new
    assert_readable(session, secrets)
    assert_readable(session, secrets, key=new)
    assert_unreadable(session, secrets, key=old)


def test_rotation_refuses_a_new_key_the_setting_does_not_list(session: Session, env: pytest.MonkeyPatch) -> None:
    """Issue 20: with only OLD configured, a rotation would leave every process on OLD unable to read."""
    old, new = generate_key(), generate_key()
    configure(env, vault_key=old)
    secrets = fill(session)
    ciphertexts = {e.id: e.ciphertext for e in session.exec(select(VaultEntry))}
    for given in (new, None):
        with pytest.raises(ConfigurationError, match="GLANEUR_VAULT_KEY") as caught:
            rotate_key(session, new_key=given)
        assert "Nothing was rotated" in str(caught.value) and new not in str(caught.value)
        session.rollback()
    assert {e.id: e.ciphertext for e in session.exec(select(VaultEntry))} == ciphertexts
    assert_readable(session, secrets, key=old)


def test_rotation_with_a_key_from_the_environment_writes_nothing(session: Session, env: pytest.MonkeyPatch) -> None:
    old, new = generate_key(), generate_key()
    configure(env, vault_key=old)
    secrets = fill(session)
    configure(env, vault_key=f"{old},{new}")
    before = sorted(p.name for p in home().iterdir())

    assert rotate_key(session, new_key=new).new_key == new

    assert sorted(p.name for p in home().iterdir()) == before
    assert "vault.key" not in before
    assert_readable(session, secrets, key=new)
    assert_unreadable(session, secrets, key=old)
    configure(env, vault_key=new)
    assert_readable(session, secrets)


@pytest.mark.parametrize("order", ["OLD,NEW", "NEW,OLD"])
def test_rotation_without_downtime_in_either_order(session: Session, env: pytest.MonkeyPatch, order: str) -> None:
    """Add NEW everywhere, rotate, drop OLD: at each step every process reads every secret."""
    old, new = generate_key(), generate_key()
    both = order.replace("OLD", old).replace("NEW", new)
    configure(env, vault_key=old)
    secrets = fill(session)

    configure(env, vault_key=both)  # step 1, deployed process by process: some still run with OLD alone
    secrets[Vault(session).put("password", "before")] = "before"
    session.commit()
    assert_readable(session, secrets)
    assert_readable(session, secrets, key=old)  # a process not yet redeployed reads what the others wrote

    rotation = rotate_key(session, new_key=new)  # step 2
    assert (rotation.new_key, rotation.rotated, rotation.unreadable) == (new, len(secrets), ())
    assert_readable(session, secrets)  # processes with both keys
    secrets[Vault(session).put("password", "after")] = "after"  # written by a process still on both keys...
    session.commit()
    assert_readable(session, secrets, key=new)  # ...under NEW, so nothing is lost when OLD goes
    assert_unreadable(session, secrets, key=old)

    configure(env, vault_key=new)  # step 3
    assert_readable(session, secrets)


def test_rotating_again_catches_a_secret_written_under_the_old_key(session: Session, env: pytest.MonkeyPatch) -> None:
    old, new = generate_key(), generate_key()
    configure(env, vault_key=f"{old},{new}")
    secrets = fill(session)
    rotate_key(session, new_key=new)
    # A process that checked the canary just before the rotation committed writes under OLD.
    late = VaultEntry(purpose="password", ciphertext=vault_module._multi(old).encrypt(b"late"), created_at=now())
    session.add(late)
    session.commit()
    secrets[late.id] = "late"

    assert rotate_key(session, new_key=new).rotated == len(secrets)

    assert_readable(session, secrets, key=new)


def test_rotation_uses_multifernet_rotate_and_keeps_each_token_timestamp(session: Session) -> None:
    secrets = fill(session)
    stamps = {e.id: vault_module.Fernet(load_key().encode()).extract_timestamp(e.ciphertext)
              for e in session.exec(select(VaultEntry).where(VaultEntry.purpose != "canary"))}
    new = rotate_key(session).new_key
    assert {e.id: vault_module.Fernet(new.encode()).extract_timestamp(e.ciphertext)
            for e in session.exec(select(VaultEntry).where(VaultEntry.purpose != "canary"))} == stamps
    assert set(stamps) == set(secrets)


def test_rotation_refuses_a_wrong_key(session: Session, env: pytest.MonkeyPatch) -> None:
    secrets = fill(session)
    old = load_key()
    ciphertexts = {e.id: e.ciphertext for e in session.exec(select(VaultEntry))}
    wrong, new = generate_key(), generate_key()
    configure(env, vault_key=f"{wrong},{new}")
    with pytest.raises(ConfigurationError, match="does not match the secrets"):
        rotate_key(session, new_key=new)
    session.rollback()
    assert {e.id: e.ciphertext for e in session.exec(select(VaultEntry))} == ciphertexts
    env.delenv("GLANEUR_VAULT_KEY")
    reset_settings()
    assert load_key() == old
    assert_readable(session, secrets)


def test_rotation_leaves_an_unreadable_entry_as_it_was_and_names_it(session: Session) -> None:
    secrets = fill(session)
    alien_key = vault_module._multi(generate_key())
    alien = VaultEntry(purpose="password", ciphertext=alien_key.encrypt(b"z"), created_at=now())
    session.add(alien)
    session.commit()
    alien_ciphertext = alien.ciphertext

    rotation = rotate_key(session)

    assert rotation.unreadable == (alien.id,) and rotation.rotated == len(secrets)
    assert session.get(VaultEntry, alien.id).ciphertext == alien_ciphertext  # no worse: its own key still opens it
    assert_readable(session, secrets, key=rotation.new_key)


def test_rotation_with_a_damaged_canary(session: Session) -> None:
    secrets = fill(session)
    damage(session, canary_id(session))
    rotation = rotate_key(session)
    assert rotation.unreadable == ()
    assert count(session, "canary") == 1
    assert_readable(session, secrets, key=rotation.new_key)


def test_rotation_refuses_an_invalid_new_key(session: Session) -> None:
    fill(session)
    for bad in ("nope", f"{generate_key()},{generate_key()}"):
        with pytest.raises(ConfigurationError, match="new vault key"):
            rotate_key(session, new_key=bad)


def test_rotation_of_an_empty_vault_creates_the_canary(session: Session) -> None:
    new = rotate_key(session).new_key
    assert count(session, "canary") == 1
    assert Vault(session, key=new).put("password", "x")


def test_crash_before_the_commit_leaves_the_old_key_working(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = fill(session)
    old = load_key()

    def failing_commit() -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(session, "commit", failing_commit)
    with pytest.raises(RuntimeError):
        rotate_key(session)
    monkeypatch.undo()
    assert load_key() == old
    assert_readable(session, secrets)
    assert_readable(session, secrets, key=old)
    # The stale next key is dropped by the next rotation, which then works normally.
    new = rotate_key(session).new_key
    assert not key_file().with_name("vault.key.next").exists()
    assert key_file().with_name("vault.key.previous").read_text().strip() == old
    assert_readable(session, secrets, key=new)


def test_crash_after_the_commit_loses_no_secret(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = fill(session)
    old = load_key()

    def crash(*_args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(vault_module, "_promote", crash)
    with pytest.raises(KeyboardInterrupt):
        rotate_key(session)
    monkeypatch.undo()
    new = key_file().with_name("vault.key.next").read_text().strip()
    assert load_key() == old
    assert_unreadable(session, secrets, key=old)
    assert_readable(session, secrets)  # the default vault also reads with vault.key.next
    # Meanwhile a new secret is encrypted with vault.key (the old key): the database mixes both.
    secrets[Vault(session).put("password", "added meanwhile")] = "added meanwhile"
    session.commit()
    assert_readable(session, secrets)

    newest = rotate_key(session).new_key  # completes the interrupted rotation first, then rotates

    assert key_file().read_text().strip() == newest
    assert key_file().with_name("vault.key.previous").read_text().strip() == new
    assert not key_file().with_name("vault.key.next").exists()
    assert_readable(session, secrets)
    assert_readable(session, secrets, key=newest)
