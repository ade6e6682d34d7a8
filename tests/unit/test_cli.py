"""The glaneur command through Typer's CliRunner. Secrets go in through input=, never argv."""

from __future__ import annotations

import sys
import types
from datetime import UTC, date, datetime

import pytest
from cryptography.fernet import Fernet
from sqlmodel import Session, func, select

from connectors import catalog
from glaneur.contract import Provider, SecondFactorKind
from glaneur.models import (
    Account,
    Channel,
    CollectionRun,
    Document,
    Organization,
    User,
    VaultEntry,
)
from glaneur.settings import get_settings, reset_settings
from glaneur.statuses import Status, describe
from glaneur.vault import Vault
from tests.commands import first_collections, glaneur, ok  # noqa: F401  first_collections: an autouse fixture

PORTAL = "test-portal"
LEGACY = "test-legacy-portal"
PASSWORD = "Zq7-unique-Pa55word"
SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
CHANNEL = "acme-papeterie"


@pytest.fixture
def home(monkeypatch, request):
    for name in ("GLANEUR_DATABASE_URL", "GLANEUR_VAULT_KEY", "GLANEUR_VAULT_KEY_FILE", "GLANEUR_STORAGE_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setitem(
        catalog.PROVIDERS,
        PORTAL,
        Provider(slug=PORTAL, name="Test Portal", second_factor_kinds=(SecondFactorKind.TOTP,)),
    )
    monkeypatch.setitem(catalog.PROVIDERS, LEGACY, Provider(slug=LEGACY, name="Legacy Portal", compatible=False))
    return request.getfixturevalue("glaneur_home")


def refused(*args: str, input: str | None = None, expect: str = ""):
    """Exit code 2, one red 'Error: ...' on stderr, no traceback."""
    result = glaneur(*args, input=input)
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.stderr.startswith("Error: "), result.output
    assert "Traceback" not in result.output
    assert expect in " ".join(result.stderr.split()), result.stderr
    return result


def session() -> Session:
    from glaneur.db import get_engine

    return Session(get_engine(), expire_on_commit=False)


def count(model) -> int:
    with session() as s:
        return s.exec(select(func.count()).select_from(model)).one()


@pytest.fixture
def acme(home, monkeypatch):
    ok("org", "create", "acme", "Acme SA")
    ok("org", "create", "other", "Other SARL")
    ok("binder", "create", "acme", "factures", "Factures fournisseurs")  # no user yet: bootstrap
    ok("binder", "create", "other", "achats", "Achats")
    ok("user", "create", "acme", "alice@acme.fr", "Alice", "--right", "configure_collection")
    monkeypatch.setenv("GLANEUR_ACTING_USER", "alice@acme.fr")  # every later change acts as alice
    reset_settings()
    return home


def add_channel(*extra: str, input: str | None = None):
    return ok(
        "channel", "add", "acme", "--label", "Papeterie", "--provider", PORTAL,
        "--binder", "factures", "--recipient", "alice@acme.fr", *extra, input=input,
    )  # fmt: skip


def raw_database_bytes(home) -> bytes:
    """The SQLite files as they are on disk, write-ahead log included."""
    return b"".join(path.read_bytes() for path in home.glob("glaneur.db*"))


# -- setup commands ---------------------------------------------------------------------------------


def test_init_is_idempotent(home):
    assert "Database ready: sqlite:///" in ok("init").stdout
    ok("init")
    assert (home / "glaneur.db").exists()


def test_no_arguments_shows_help(home):
    result = glaneur()
    assert "org" in result.output and "channel" in result.output


def test_org_user_binder_create(acme):
    with session() as s:
        assert {o.slug for o in s.exec(select(Organization)).all()} == {"acme", "other"}
    result = ok("user", "create", "acme", "bob@acme.fr", "Bob")
    assert "no rights" in result.stdout
    refused("org", "create", "acme", "Again", expect="organisation 'acme' already exists")
    refused("user", "create", "acme", "not-an-email", "X", expect="invalid e-mail address 'not-an-email'")
    refused("user", "create", "nowhere", "x@acme.fr", "X", expect="unknown organisation 'nowhere'; organisations: acme, other")
    refused("binder", "create", "acme", "factures", "X", expect="already exists")


def test_user_update_corrects_a_profile(acme):
    ok("user", "create", "acme", "bob@acme.fr", "Bob")
    result = ok("--as", "bob@acme.fr", "user", "update", "acme", "bob@acme.fr", "--email", "Robert@acme.fr", "--name", "Robert")
    assert "User robert@acme.fr (Robert) of acme updated." in result.stdout
    with session() as s:
        assert s.exec(select(User).where(User.email == "bob@acme.fr")).first() is None
    refused("user", "update", "acme", "robert@acme.fr", expect="nothing to change: give --email")
    refused("user", "update", "acme", "robert@acme.fr", "--email", "alice@acme.fr", expect="already exists")
    refused("--as", "robert@acme.fr", "user", "update", "acme", "alice@acme.fr", "--name", "A", expect="configure")


def test_bad_right_is_a_usage_error(acme):
    result = glaneur("user", "create", "acme", "bob@acme.fr", "Bob", "--right", "superuser")
    assert result.exit_code == 2
    assert "configure_collection" in result.output


# -- channels and secrets ---------------------------------------------------------------------------


def test_channel_add_with_hidden_password_prompt(acme):
    result = add_channel("--login", "alice@dupont.fr", input=f"{PASSWORD}\n")
    assert "Password" in result.output
    assert "Created channel acme-papeterie" in result.stdout
    assert PASSWORD not in result.output
    assert PASSWORD.encode() not in raw_database_bytes(acme)
    with session() as s:
        account = s.exec(select(Account)).one()
        assert account.login == "alice@dupont.fr"
        assert Vault(s).get(account.secret_ref) == PASSWORD


def test_channel_add_password_and_totp_from_stdin(acme):
    result = add_channel("--slug", "dupont", "--time-slot", "7:15", "--login", "one", "--password-stdin", "--with-totp", input=f"{PASSWORD}\n{SEED}\n")
    assert "Password" not in result.output
    assert PASSWORD not in result.output and SEED not in result.output
    raw = raw_database_bytes(acme)
    assert PASSWORD.encode() not in raw and SEED.encode() not in raw
    with session() as s:
        channel = s.exec(select(Channel)).one()
        assert (channel.slug, channel.time_slot) == ("dupont", "07:15")
        account = s.exec(select(Account)).one()
        assert Vault(s).get(account.totp_ref) == SEED


def test_channel_add_without_login_asks_nothing(acme):
    result = add_channel()
    assert "no account yet" in result.stdout and "Password" not in result.output
    assert count(Account) == 0


def test_channel_add_refusals_come_before_the_password_prompt(acme):
    base = ["channel", "add", "acme", "--label", "Papeterie", "--login", "one"]
    cases = [
        (["--provider", "nope", "--binder", "factures", "--recipient", "alice@acme.fr"], "Unknown provider 'nope'"),
        (["--provider", LEGACY, "--binder", "factures", "--recipient", "alice@acme.fr"], "Demander l'ajout d'un collecteur"),
        (["--provider", PORTAL, "--binder", "achats", "--recipient", "alice@acme.fr"], "binder 'achats' belongs to another organisation"),
        (["--provider", PORTAL, "--binder", "factures", "--recipient", "nobody@acme.fr"], "unknown user 'nobody@acme.fr'"),
        (["--provider", PORTAL, "--binder", "factures", "--recipient", "alice@acme.fr", "--time-slot", "25:00"], "invalid time slot"),
    ]
    for options, expect in cases:
        result = refused(*base, *options, input=f"{PASSWORD}\n", expect=expect)
        assert "Password" not in result.output
    assert count(Channel) == 0 and count(Account) == 0 and count(VaultEntry) == 0


def test_duplicate_channel_slug(acme):
    add_channel()
    refused("channel", "add", "acme", "--label", "Papeterie", "--provider", PORTAL, "--binder", "factures",
            "--recipient", "alice@acme.fr", expect="'acme-papeterie' is already taken")  # fmt: skip
    assert count(Channel) == 1


def test_secret_options_need_a_login(acme):
    refused("channel", "add", "acme", "--label", "P", "--provider", PORTAL, "--binder", "factures",
            "--recipient", "alice@acme.fr", "--password-stdin", expect="need --login")  # fmt: skip


def test_empty_password_from_stdin_writes_nothing(acme):
    refused(*["channel", "add", "acme", "--label", "Papeterie"], "--provider", PORTAL, "--binder", "factures",
            "--recipient", "alice@acme.fr", "--login", "one", "--password-stdin", input="\n",
            expect="password is empty")  # fmt: skip
    assert count(Channel) == 0 and count(VaultEntry) == 0


def test_missing_totp_line(acme):
    add_channel()
    refused("channel", "account-add", CHANNEL, "--login", "one", "--password-stdin", "--with-totp",
            input=f"{PASSWORD}\n", expect="second line")  # fmt: skip
    assert count(Account) == 0


def test_bad_totp_seed_is_not_echoed(acme):
    add_channel()
    result = refused("channel", "account-add", CHANNEL, "--login", "one", "--with-totp",
                     input=f"{PASSWORD}\nnot-a-seed!\n", expect="TOTP seed")  # fmt: skip
    assert "not-a-seed!" not in result.output and PASSWORD not in result.output
    assert count(Account) == 0


def test_account_add_up_to_two(acme):
    add_channel("--login", "one", input=f"{PASSWORD}\n")
    result = ok("channel", "account-add", CHANNEL, "--login", "two", input="other-secret\n")
    assert "account 2 of 2" in result.stdout and "other-secret" not in result.output
    result = refused("channel", "account-add", CHANNEL, "--login", "three", input="third-secret\n",
                     expect="at most two accounts (jusqu'à deux comptes")  # fmt: skip
    assert "Password" not in result.output  # refused before asking
    refused("channel", "account-add", CHANNEL, "--login", "one", input="x\n", expect="already on channel")
    refused("channel", "account-add", "nope", "--login", "x", input="x\n", expect="unknown channel 'nope'; channels: acme-papeterie")
    assert count(Account) == 2


def test_update_credentials(acme):
    add_channel("--login", "one", input="old-password\n")
    with session() as s:
        s.exec(select(Channel)).one()
        account = s.exec(select(Account)).one()
        account.status = Status.WRONG_CREDENTIALS
        s.add(account)
        s.commit()
    result = ok("channel", "update-credentials", CHANNEL, "--login", "one", "--password-stdin", input=f"{PASSWORD}\n")
    assert PASSWORD not in result.output
    with session() as s:
        account = s.exec(select(Account)).one()
        assert account.status == Status.NEW and Vault(s).get(account.secret_ref) == PASSWORD
    refused("channel", "update-credentials", CHANNEL, "--login", "two", input="x\n", expect="no account 'two'")
    # The supplier changed the login too: checked before the password is asked, then both replaced.
    ok("channel", "account-add", CHANNEL, "--login", "two", "--no-collect", input="pw-two\n")
    refused("channel", "update-credentials", CHANNEL, "--login", "one", "--new-login", "two", expect="account 'two' is already on")
    result = ok("channel", "update-credentials", CHANNEL, "--login", "one", "--new-login", "one@new.example",
                "--password-stdin", input="renamed-password\n")  # fmt: skip
    assert "Updated the credentials of one@new.example" in result.stdout
    with session() as s:
        assert sorted(a.login for a in s.exec(select(Account)).all()) == ["one@new.example", "two"]


def test_account_remove(acme):
    add_channel("--login", "one", input=f"{PASSWORD}\n")
    ok("channel", "account-add", CHANNEL, "--login", "two", "--no-collect", input="pw-two\n")
    result = glaneur("channel", "account-remove", CHANNEL, "--login", "one", input="n\n")
    assert result.exit_code == 1 and "Nothing removed" in result.stdout
    out = " ".join(ok("channel", "account-remove", CHANNEL, "--login", "one", input="y\n").stdout.split())
    assert "Removed account one from acme-papeterie: 1 secret(s) purged from the vault" in out and "Accounts left: two" in out
    refused("channel", "account-remove", CHANNEL, "--login", "one", "--yes", expect="no account 'one'")
    assert "one (" not in ok("channels").stdout
    ok("channel", "account-add", CHANNEL, "--login", "three", "--no-collect", input="pw-three\n")  # its place is free


# -- listings -------------------------------------------------------------------------------------------


def test_channels_table(acme):
    ok("channels")  # empty: a hint, not an error
    add_channel("--login", "one", input=f"{PASSWORD}\n")
    out = ok("channels").stdout
    for expected in (CHANNEL, "Papeterie", PORTAL, "one (new)", "new", "Not collected yet", "never"):
        assert expected in out, out
    assert CHANNEL in ok("channels", "--org", "acme").stdout
    # alice acts (GLANEUR_ACTING_USER): she reads acme's only, and sees nothing of other's
    refused("channels", "--org", "other", expect="unknown organisation 'other' for user 'alice@acme.fr'")
    refused("channels", "--org", "nope", expect="unknown organisation 'nope'")


def test_providers(home):
    out = ok("providers").stdout
    assert PORTAL in out and LEGACY in out and "totp" in out and "login, password" in out
    out = ok("providers", "legacy").stdout
    assert LEGACY in out and PORTAL not in out and "no" in out
    assert "Demander l'ajout" in ok("providers", "zzzz-nothing").stdout


def _record_runs():
    with session() as s:
        channel = s.exec(select(Channel)).one()
        account = s.exec(select(Account)).one()
        s.add(CollectionRun(channel_id=channel.id, account_id=account.id, status=Status.OK, new_documents=4,
                            started_at=datetime(2025, 3, 10, 6, tzinfo=UTC)))  # fmt: skip
        s.add(CollectionRun(channel_id=channel.id, account_id=account.id, status=Status.WRONG_CREDENTIALS,
                            started_at=datetime(2025, 3, 11, 6, tzinfo=UTC), message="Refused by the portal."))  # fmt: skip
        s.commit()


def test_history(acme):
    add_channel("--login", "one", input=f"{PASSWORD}\n")
    assert "No collection" in ok("history").stdout
    _record_runs()
    out = ok("history").stdout
    assert out.index("2025-03-11") < out.index("2025-03-10")  # newest first
    assert "Refused by the portal." in out and "wrong_credentials" in out and "one" in out
    out = ok("history", "--status", "ok", "--channel", CHANNEL).stdout
    assert "2025-03-10" in out and "2025-03-11" not in out
    out = ok("history", "--since", "2025-03-11", "--limit", "5").stdout
    assert "2025-03-11" in out and "2025-03-10" not in out
    refused("history", "--status", "broken", expect="unknown status 'broken'; statuses: ok,")
    refused("history", "--since", "11/03/2025", expect="invalid date '11/03/2025': expected YYYY-MM-DD")
    refused("history", "--channel", "nope", expect="unknown channel 'nope'")
    assert glaneur("history", "--limit", "0").exit_code == 2


def test_documents(acme):
    add_channel()
    assert "No documents" in ok("documents").stdout
    with session() as s:
        channel = s.exec(select(Channel)).one()
        s.add(Document(channel_id=channel.id, provider_reference="F-2025-001", document_date=date(2025, 3, 1),
                       amount="118.40", file_name="f.pdf", sha256="a" * 64, size=2048,
                       storage_key="acme/factures/acme-papeterie/2025/03/f.pdf", filed_at=datetime.now(UTC)))  # fmt: skip
        s.commit()
    out = ok("documents", "--channel", CHANNEL).stdout
    assert "F-2025-001" in out and "118.40 EUR" in out and "2025-03-01" in out and CHANNEL in out
    refused("documents", "--channel", "nope", expect="unknown channel 'nope'")


# -- run ----------------------------------------------------------------------------------------------------


def _fake_flow(monkeypatch, behaviour):
    module = types.ModuleType("flows.collect_channel")
    calls = []

    def run_channel(channel: str):  # stands in for the flow: what it returns is what the CLI renders
        calls.append(channel)
        return behaviour(channel)

    module.run_channel = run_channel
    monkeypatch.setitem(sys.modules, "flows.collect_channel", module)
    return calls


def _summary(status: Status, message: str, new: int = 0) -> dict:
    return {
        "channel": CHANNEL, "status": status.value, "message": message, "new": new, "already_had": 1,
        "accounts": [{"login": "one", "status": status.value, "message": message, "new": new, "already_had": 1}],
    }  # fmt: skip


def test_run_unknown_channel(acme):
    refused("run", "nope", expect="unknown channel 'nope'")


def test_run_ok(acme, monkeypatch):
    add_channel("--login", "one", input=f"{PASSWORD}\n")
    calls = _fake_flow(monkeypatch, lambda c: _summary(Status.OK, describe(Status.OK).message, new=3))
    result = ok("run", CHANNEL)
    assert calls == [CHANNEL]
    assert "one" in result.stdout and "3 new, 1 already had" in result.stdout and "Collection works" in result.stdout


def test_run_not_ok_exits_1(acme, monkeypatch):
    add_channel("--login", "one", input=f"{PASSWORD}\n")
    message = describe(Status.WRONG_CREDENTIALS).message
    _fake_flow(monkeypatch, lambda c: _summary(Status.WRONG_CREDENTIALS, message))
    result = glaneur("run", CHANNEL)
    assert result.exit_code == 1
    assert "wrong_credentials" in result.stdout and "identifiants refusés" in result.stdout


def test_run_crash_exits_1_without_traceback(acme, monkeypatch):
    add_channel()

    def crash(channel):
        raise RuntimeError("browser vanished")

    _fake_flow(monkeypatch, crash)
    result = glaneur("run", CHANNEL)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "Error: the collection of acme-papeterie failed: RuntimeError: browser vanished" in result.stderr


# -- vault ------------------------------------------------------------------------------------------------


def test_vault_generate_key(home):
    key = ok("vault", "generate-key").stdout.strip()
    Fernet(key.encode())


def test_vault_rotate_key_embedded(acme):
    add_channel("--login", "one", input=f"{PASSWORD}\n")
    key_file = get_settings().resolved_vault_key_file
    old_key = key_file.read_text().strip()
    result = ok("vault", "rotate-key")
    new_key = key_file.read_text().strip()
    assert new_key != old_key and new_key not in result.output
    with session() as s:
        account = s.exec(select(Account)).one()
        assert Vault(s).get(account.secret_ref) == PASSWORD


def test_vault_rotate_key_configured(acme, monkeypatch):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("GLANEUR_VAULT_KEY", old_key)
    reset_settings()
    add_channel("--login", "one", input=f"{PASSWORD}\n")
    refused("vault", "rotate-key", expect="GLANEUR_VAULT_KEY")
    refused("vault", "rotate-key", "--new-key-stdin", input="not-a-key\n", expect="not a valid Fernet key")
    # The new key alone on stdin, the setting still OLD: refused, or every process on OLD could read nothing.
    refused("vault", "rotate-key", "--new-key-stdin", input=f"{new_key}\n", expect="set GLANEUR_VAULT_KEY to OLD,NEW")
    with session() as s:
        account = s.exec(select(Account)).one()
        assert Vault(s, key=old_key).get(account.secret_ref) == PASSWORD
    monkeypatch.setenv("GLANEUR_VAULT_KEY", f"{old_key},{new_key}")  # the order the help gives
    reset_settings()
    result = ok("vault", "rotate-key", "--new-key-stdin", input=f"{new_key}\n")
    assert new_key not in result.output and "set GLANEUR_VAULT_KEY to the new key alone" in result.output
    with session() as s:
        account = s.exec(select(Account)).one()
        assert Vault(s, key=new_key).get(account.secret_ref) == PASSWORD


# -- invitations -----------------------------------------------------------------------------------------


def test_invite_needs_the_invitation_deployment_and_says_how_to_get_it(acme):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    add_channel()
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):  # no server there
        refused("channel", "invite", CHANNEL, "--invitee", "alice@acme.fr",
                expect="request-credentials/request-credentials")  # fmt: skip
    with session() as s:
        from glaneur.models import AuditLog

        assert not any(entry.action == "invitation.send" for entry in s.exec(select(AuditLog)).all())


def test_invite_refuses_a_stranger_and_resend_needs_a_pending_invitation(acme):
    add_channel()
    refused("channel", "invite", CHANNEL, "--invitee", "nobody@acme.fr", expect="nobody@acme.fr")
    refused("channel", "resend-invitation", CHANNEL, expect="no pending invitation")
