"""Rules of glaneur.admin: each bad input is refused with a message naming what to fix, and changes nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pyotp
import pytest
from sqlmodel import Session, func, select

from connectors import catalog
from glaneur import admin
from glaneur.contract import Provider
from glaneur.errors import UsageError
from glaneur.models import (
    Account,
    Binder,
    Channel,
    CollectionRun,
    Document,
    Organization,
    Right,
    User,
    VaultEntry,
)
from glaneur.statuses import Status, describe
from glaneur.vault import Vault

PORTAL = "test-portal"
LEGACY = "test-legacy-portal"
SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


@pytest.fixture
def home(monkeypatch, request):
    """A fresh GLANEUR_HOME (the shared glaneur_home fixture), whatever the outer environment says."""
    for name in ("GLANEUR_DATABASE_URL", "GLANEUR_VAULT_KEY", "GLANEUR_VAULT_KEY_FILE", "GLANEUR_STORAGE_PATH"):
        monkeypatch.delenv(name, raising=False)
    return request.getfixturevalue("glaneur_home")


@pytest.fixture
def providers(monkeypatch):
    """Two catalogue entries of our own, so the tests do not depend on the real catalogue's content."""
    monkeypatch.setitem(catalog.PROVIDERS, PORTAL, Provider(slug=PORTAL, name="Test Portal"))
    monkeypatch.setitem(
        catalog.PROVIDERS, LEGACY, Provider(slug=LEGACY, name="Legacy Portal", compatible=False)
    )


@pytest.fixture
def session(home, providers):
    from glaneur.db import get_engine

    with Session(get_engine(), expire_on_commit=False) as session:
        yield session


@pytest.fixture
def world(session):
    """Two organisations, each with a binder and a user allowed to configure collection."""
    acme = admin.create_organization(session, "acme", "Acme SA")
    other = admin.create_organization(session, "other", "Other SARL")
    admin.create_binder(session, acme, "factures", "Factures fournisseurs")
    admin.create_binder(session, other, "achats", "Achats")
    admin.create_user(session, acme, "alice@acme.fr", "Alice", [Right.CONFIGURE_COLLECTION])
    admin.create_user(session, other, "bob@other.fr", "Bob", [])
    session.commit()
    return session


def counts(session: Session) -> dict[str, int]:
    tables = (Organization, User, Binder, Channel, Account, VaultEntry, CollectionRun, Document)
    return {table.__name__: session.exec(select(func.count()).select_from(table)).one() for table in tables}


def refused(session: Session, call, *fragments: str) -> str:
    """Call, expect a UsageError containing every fragment, and check nothing was written."""
    before = counts(session)
    with pytest.raises(UsageError) as caught:
        call()
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, message
    assert counts(session) == before, f"written despite the refusal: {message}"
    return message


def alice(session: Session) -> User:
    return admin.get_user(session, "acme", "alice@acme.fr")


def channel(session: Session, **overrides) -> Channel:
    fields = {"label": "Papeterie", "provider": PORTAL, "binder": "factures", "recipient": "alice@acme.fr"}
    fields.update(overrides)
    fields.setdefault("actor", alice(session))
    return admin.add_channel(session, "acme", **fields)


def add_account(session: Session, ch, **fields) -> Account:
    return admin.add_account(session, ch, actor=alice(session), **fields)


def update_credentials(session: Session, ch, login: str, **fields) -> Account:
    return admin.update_credentials(session, ch, login, actor=alice(session), **fields)


# -- organisations, users, binders ---------------------------------------------------------------------


def test_create_organization_and_refusals(session):
    org = admin.create_organization(session, "acme", "  Acme SA ")
    assert (org.id, org.slug, org.name) == (org.id, "acme", "Acme SA")
    refused(session, lambda: admin.create_organization(session, "acme", "Again"), "already exists")
    refused(session, lambda: admin.create_organization(session, "Acme Two", "X"), "invalid organisation slug", "acme-two")
    refused(session, lambda: admin.create_organization(session, "acme-2", "  "), "name is empty")


@pytest.mark.parametrize(
    "email",
    ["", "alice", "alice@", "@acme.fr", "alice@acme", "alice@@acme.fr", "alice @acme.fr", "alice@acme..fr", "a..b@acme.fr"],
)
def test_create_user_refuses_malformed_email(world, email):
    refused(world, lambda: admin.create_user(world, "acme", email, "Someone"), "invalid e-mail address")


def test_create_user_rights_and_duplicates(world):
    alice(world).rights = "configure_collection,configure_accounting"  # a user grants only rights they hold
    boss = admin.create_user(world, "acme", "boss@acme.fr", "Boss", [Right.CONFIGURE_COLLECTION, Right.CONFIGURE_ACCOUNTING], actor=alice(world))
    user = admin.create_user(world, "acme", " Carol.Doe+inv@Acme.FR ", "Carol", ["configure_collection", Right.CONFIGURE_ACCOUNTING], actor=boss)
    assert user.email == "carol.doe+inv@acme.fr"
    assert user.has_right(Right.CONFIGURE_COLLECTION) and user.has_right(Right.CONFIGURE_ACCOUNTING)
    refused(world, lambda: admin.create_user(world, "acme", "ALICE@acme.fr", "Alice again", actor=boss), "already exists", "acme")
    refused(world, lambda: admin.create_user(world, "acme", "dan@acme.fr", "Dan", ["superuser"], actor=boss), "unknown right 'superuser'", "configure_collection")
    refused(world, lambda: admin.create_user(world, "nowhere", "dan@acme.fr", "Dan"), "unknown organisation 'nowhere'", "acme, other")
    # The same person may belong to two organisations (a firm's collaborator, say).
    bob = admin.get_user(world, "other", "bob@other.fr")
    bob.rights = Right.CONFIGURE_COLLECTION.value
    assert admin.create_user(world, "other", "alice@acme.fr", "Alice", actor=bob).organization_id != user.organization_id


def test_a_profile_is_corrected_by_its_user_or_by_a_configurer(world):
    carol = admin.create_user(world, "acme", "carol@acme.fr", "Carol", actor=alice(world))
    dan = admin.create_user(world, "acme", "dan@acme.fr", "Dan", actor=alice(world))
    # Carol corrects her own address; Alice (configure right) corrects Dan's name and address.
    assert admin.update_user(world, "acme", "carol@acme.fr", new_email=" Carol.B@Acme.fr ", actor=carol).email == "carol.b@acme.fr"
    fixed = admin.update_user(world, "acme", "dan@acme.fr", new_email="daniel@acme.fr", name="Daniel", actor=alice(world))
    assert (fixed.email, fixed.name) == ("daniel@acme.fr", "Daniel")
    assert admin.get_user(world, "acme", "daniel@acme.fr").id == dan.id
    # Nobody else corrects another's profile, and an address stays one user's.
    refused(world, lambda: admin.update_user(world, "acme", "daniel@acme.fr", name="X", actor=carol), "configure")
    refused(world, lambda: admin.update_user(world, "acme", "carol.b@acme.fr", new_email="ALICE@acme.fr", actor=carol), "already exists")
    refused(world, lambda: admin.update_user(world, "acme", "carol.b@acme.fr", new_email="carol@", actor=carol), "invalid e-mail address")
    refused(world, lambda: admin.update_user(world, "acme", "carol.b@acme.fr", actor=carol), "nothing to change")
    bob = admin.get_user(world, "other", "bob@other.fr")
    refused(world, lambda: admin.update_user(world, "acme", "carol.b@acme.fr", name="Y", actor=bob), "another organisation")
    lines = {(e.actor, e.log.detail) for e in admin.audit_log(world, org="acme") if e.log.action == "user.update"}
    assert lines == {
        ("carol.b@acme.fr", "e-mail carol@acme.fr -> carol.b@acme.fr"),
        ("alice@acme.fr", "e-mail dan@acme.fr -> daniel@acme.fr; name Dan -> Daniel"),
    }


def test_create_binder(world):
    binder = admin.create_binder(world, "acme", "notes-de-frais", "Notes de frais", actor=alice(world))
    assert binder.organization_id == admin.get_organization(world, "acme").id
    refused(world, lambda: admin.create_binder(world, "acme", "factures", "Encore", actor=alice(world)), "already exists")
    refused(world, lambda: admin.create_binder(world, "acme", "Notes/Frais", "X", actor=alice(world)), "invalid binder slug")
    # Binder slugs are per organisation.
    admin.create_organization(world, "third", "Third")
    assert admin.create_binder(world, "third", "factures", "Factures").slug == "factures"  # no user yet: bootstrap


# -- channels ------------------------------------------------------------------------------------------------


def test_add_channel_defaults(world):
    created = channel(world, label="Papeterie Dupont – Été")
    assert created.slug == "acme-papeterie-dupont-ete"
    assert created.status == Status.NEW
    assert created.status_message == describe(Status.NEW).message
    assert created.time_slot == "06:00"
    assert created.binder_id == admin.get_binder(world, "acme", "factures").id
    assert created.recipient_user_id == admin.get_user(world, "acme", "alice@acme.fr").id
    assert admin.list_channels(world) == [created]


def test_add_channel_explicit_slug_and_time_slot(world):
    created = channel(world, slug="dupont", time_slot="7:30")
    assert (created.slug, created.time_slot) == ("dupont", "07:30")


def test_a_supplier_from_powens_list_is_named_and_only_there(world, monkeypatch):
    """The provider 'powens' needs --biller (checked against POWENS's list: e2e in test_powens_billers.py);
    any other refuses it."""
    refused(world, lambda: channel(world, provider="powens"), "give the supplier with --biller")
    for name in ("GLANEUR_POWENS_API_URL", "GLANEUR_POWENS_CLIENT_ID", "GLANEUR_POWENS_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    refused(world, lambda: channel(world, provider="powens", biller="Énergie Verte"), "Powens is not configured")
    refused(world, lambda: channel(world, biller="Énergie Verte"), "--biller is for the provider 'powens'")
    assert channel(world, biller="  ").biller is None


def test_unknown_provider_is_refused(world):
    refused(world, lambda: channel(world, provider="no-such-portal"), "no-such-portal")


def test_incompatible_provider_gives_the_faq_advice(world):
    message = refused(world, lambda: channel(world, provider=LEGACY), "not compatible")
    assert "catalogue" in message and "Demander l'ajout d'un collecteur" in message


def test_binder_of_another_organisation_is_refused(world):
    refused(world, lambda: channel(world, binder="achats"), "binder 'achats' belongs to another organisation", "factures")
    achats = admin.get_binder(world, "other", "achats")
    refused(world, lambda: channel(world, binder=achats), "belongs to another organisation")
    refused(world, lambda: channel(world, binder="nope"), "unknown binder 'nope'", "binders: factures")


def test_recipient_must_be_a_user_of_the_organisation(world):
    refused(world, lambda: channel(world, recipient="nobody@acme.fr"), "unknown user 'nobody@acme.fr'", "alice@acme.fr")
    refused(world, lambda: channel(world, recipient="bob@other.fr"), "belongs to another organisation")
    bob = admin.get_user(world, "other", "bob@other.fr")
    refused(world, lambda: channel(world, recipient=bob), "belongs to another organisation")


@pytest.mark.parametrize("slot", ["24:00", "06:60", "6h", "0600", "", "06:00:00", "-1:00"])
def test_bad_time_slot_is_refused(world, slot):
    refused(world, lambda: channel(world, time_slot=slot), "invalid time slot", "HH:MM")


def test_duplicate_and_invalid_channel_slugs_are_refused(world):
    channel(world)
    refused(world, lambda: channel(world), "'acme-papeterie' is already taken")
    refused(world, lambda: channel(world, label="Autre", slug="acme-papeterie"), "already taken")
    refused(world, lambda: channel(world, label="Autre", slug="Acme Papeterie"), "invalid channel slug")
    assert channel(world, label="!!!").slug == "acme"  # punctuation only: the organisation's slug remains
    refused(world, lambda: channel(world, label=" "), "name is empty")


def test_only_users_with_the_collection_right_may_add_channels(world):
    bob = admin.get_user(world, "other", "bob@other.fr")
    refused(world, lambda: channel(world, actor=bob), "user 'bob@other.fr' belongs to another organisation, not 'acme'")
    carol = admin.create_user(world, "acme", "carol@acme.fr", "Carol", [], actor=alice(world))
    refused(
        world,
        lambda: channel(world, actor=carol),
        "lacks the right 'Autoriser l'accès au paramétrage de la collecte' (configure_collection)",
    )
    refused(world, lambda: channel(world, actor=None), "known user of organisation 'acme'")
    assert channel(world, actor=alice(world)).slug == "acme-papeterie"


def test_check_new_channel_writes_nothing(world):
    before = counts(world)
    unsaved = admin.check_new_channel(
        world, "acme", label="Papeterie", provider=PORTAL, binder="factures", recipient="alice@acme.fr", actor=alice(world)
    )
    assert unsaved.id is None and unsaved.slug == "acme-papeterie"
    world.flush()
    assert counts(world) == before


# -- accounts ----------------------------------------------------------------------------------------------------


def test_add_account_stores_secrets_in_the_vault_only(world):
    created = channel(world)
    account = add_account(world, created, login=" alice@dupont.fr ", password="s3cret-Pa55", totp_seed="jbsw y3dp ehpk 3pxp jbsw y3dp ehpk 3pxp")
    world.commit()
    assert (account.login, account.position, account.status) == ("alice@dupont.fr", 1, Status.NEW)
    vault = Vault(world)
    assert vault.get(account.secret_ref) == "s3cret-Pa55"
    assert vault.get(account.totp_ref) == SEED
    entries = world.exec(select(VaultEntry).where(VaultEntry.purpose != "canary")).all()
    assert sorted(e.purpose for e in entries) == ["password", "totp_seed"]
    assert all(b"s3cret-Pa55" not in e.ciphertext and b"JBSWY3DPEHPK3PXP" not in e.ciphertext for e in entries)


def test_at_most_two_accounts_per_channel(world):
    created = channel(world)
    first = add_account(world, created, login="one", password="pw1")
    second = add_account(world, "acme-papeterie", login="two", password="pw2")
    assert (first.position, second.position) == (1, 2)
    message = refused(
        world, lambda: add_account(world, created, login="three", password="pw3"), "at most two accounts"
    )
    assert "jusqu'à deux comptes" in message and "one, two" in message


def test_same_login_twice_is_refused(world):
    created = channel(world)
    add_account(world, created, login="one", password="pw1")
    refused(world, lambda: add_account(world, created, login="one", password="other"), "already on channel")


@pytest.mark.parametrize("password", ["", "   ", None])
def test_empty_password_is_refused(world, password):
    created = channel(world)
    refused(world, lambda: add_account(world, created, login="one", password=password), "password is empty")


def test_empty_login_is_refused(world):
    created = channel(world)
    refused(world, lambda: add_account(world, created, login="  ", password="pw"), "login is empty")


@pytest.mark.parametrize(
    "seed", ["not base32!", "JBSWY3DP1", "ABC", "", "JBSWY3DPEHPK3PX0JBSWY3DPEHPK3PXP", "JBSWY3DPEHPK"]
)
def test_bad_totp_seed_is_refused_without_echoing_it(world, seed):
    created = channel(world)
    message = refused(world, lambda: add_account(world, created, login="one", password="pw", totp_seed=seed), "TOTP seed")
    if seed:
        assert seed not in message


def test_valid_totp_seed_works_with_pyotp(world):
    created = channel(world)
    seed = pyotp.random_base32()
    account = add_account(world, created, login="one", password="pw", totp_seed=seed.lower())
    stored = Vault(world).get(account.totp_ref)
    assert pyotp.TOTP(stored).now() == pyotp.TOTP(seed).now()


def test_account_on_unknown_channel(world):
    channel(world)
    refused(world, lambda: add_account(world, "nope", login="one", password="pw"), "unknown channel 'nope'", "channels: acme-papeterie")


def test_update_credentials_overwrites_and_resets_statuses(world):
    created = channel(world)
    account = add_account(world, created, login="one", password="old", totp_seed=SEED)
    account.status = Status.WRONG_CREDENTIALS
    account.session_ref = Vault(world).put("session", "{\"cookies\": []}")
    created.status, created.status_message = Status.WRONG_CREDENTIALS, "refused"
    world.commit()
    secret_ref, totp_ref, session_ref = account.secret_ref, account.totp_ref, account.session_ref

    updated = update_credentials(world, "acme-papeterie", "one", password="new-password")
    world.commit()
    vault = Vault(world)
    assert updated.secret_ref == secret_ref and vault.get(secret_ref) == "new-password"
    assert updated.totp_ref == totp_ref and vault.get(totp_ref) == SEED  # kept when not given
    assert updated.status == Status.NEW and updated.session_ref is None
    with pytest.raises(LookupError):  # the old portal session is gone
        vault.get(session_ref)
    assert created.status == Status.NEW and created.status_message == describe(Status.NEW).message

    update_credentials(world, created, "one", password="newer", totp_seed="GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
    assert vault.get(totp_ref) == "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"


def test_update_credentials_refusals(world):
    created = channel(world)
    add_account(world, created, login="one", password="old")
    world.commit()
    refused(world, lambda: update_credentials(world, created, "two", password="x"), "no account 'two'", "accounts: one")
    refused(world, lambda: update_credentials(world, created, "one", password=""), "password is empty")
    refused(world, lambda: update_credentials(world, created, "one", password="x", totp_seed="bad!"), "TOTP seed")
    assert Vault(world).get(admin.get_account(world, created, "one").secret_ref) == "old"


def test_update_credentials_may_change_the_login_too(world):
    """"Si vos identifiants ont expiré ou ont été modifiés... Saisissez vos nouveaux identifiants": the login too."""
    created = channel(world)
    one = add_account(world, created, login="one", password="old")
    add_account(world, created, login="two", password="pw2")
    one.cursor, one.last_full_pass, one.list_left_at = date(2026, 11, 1), date(2026, 10, 1), "/factures?page=3"
    world.commit()
    refused(world, lambda: update_credentials(world, created, "one", password="x", new_login="two"), "account 'two' is already on")
    refused(world, lambda: update_credentials(world, created, "one", password="x", new_login="  "), "login is empty")
    renamed = update_credentials(world, created, "one", password="new-pw", new_login=" one.new@acme.fr ")
    world.commit()
    assert renamed.id == one.id and renamed.login == "one.new@acme.fr" and renamed.position == 1
    assert Vault(world).get(renamed.secret_ref) == "new-pw"
    # Another customer account may be behind the new login: the next run reads the whole list again.
    assert (renamed.cursor, renamed.last_full_pass, renamed.list_left_at) == (None, None, None)
    assert [a.login for a in admin.channel_accounts(world, created)] == ["one.new@acme.fr", "two"]
    detail = next(e.log.detail for e in admin.audit_log(world, org="acme") if e.log.action == "account.credentials_update")
    assert detail.startswith("login one -> one.new@acme.fr, password replaced")
    # Logins that differ only in case are one account: not added twice, found either way, and a case
    # change alone keeps where the list stands.
    refused(world, lambda: add_account(world, created, login=" TWO ", password="x"), "account 'TWO' is already on")
    assert admin.get_account(world, created, "One.New@acme.fr").id == one.id
    renamed.cursor = date(2026, 11, 2)
    again = update_credentials(world, created, "one.new@acme.fr", password="pw", new_login="One.New@acme.fr")
    assert again.login == "One.New@acme.fr" and again.cursor == date(2026, 11, 2)


def test_an_account_removed_frees_its_place_and_keeps_its_history(world):
    from glaneur.invoices.collection import load_plan
    from glaneur.settings import get_settings

    created = channel(world)
    one = add_account(world, created, login="one", password="pw1", totp_seed=SEED)
    add_account(world, created, login="two", password="pw2")
    world.add(CollectionRun(channel_id=created.id, account_id=one.id, status=Status.OK, new_documents=3))
    world.commit()
    one_id, secrets = one.id, {one.secret_ref, one.totp_ref}

    removed, purged = admin.remove_account(world, created, "ONE", actor=alice(world))
    world.commit()
    assert (removed.id, purged) == (one_id, 2) and removed.removed_at is not None
    assert all(world.get(VaultEntry, ref) is None for ref in secrets)  # its secrets are gone
    assert [a.login for a in admin.channel_accounts(world, created)] == ["two"]
    assert [a.login for a in load_plan(world, created.slug, get_settings(), date(2026, 12, 4)).accounts] == ["two"]
    assert [(e.login, e.run.new_documents) for e in admin.history(world, channel=created.slug)] == [("one", 3)]
    # Its place is free: a third account fits, as the first; the removed one is gone for lookups.
    assert add_account(world, created, login="three", password="pw3").position == 1
    refused(world, lambda: admin.remove_account(world, created, "one", actor=alice(world)), "no account 'one'", "three, two")
    # The last account removed: the collector waits for credentials.
    admin.remove_account(world, created, "two", actor=alice(world))
    admin.remove_account(world, created, "three", actor=alice(world))
    assert created.status == Status.AWAITING_CREDENTIALS
    actions = [e.log.action for e in admin.audit_log(world, org="acme")]
    assert actions.count("account.remove") == 3
    bob = admin.get_user(world, "other", "bob@other.fr")
    refused(world, lambda: admin.remove_account(world, created, "x", actor=bob), "another organisation")


# -- lookups and listings -----------------------------------------------------------------------------------------


def test_lookups_name_what_exists(world):
    channel(world)
    channel(world, label="Telecom")
    refused(world, lambda: admin.get_channel(world, "x"), "unknown channel 'x'; channels: acme-papeterie, acme-telecom")
    refused(world, lambda: admin.get_organization(world, "x"), "organisations: acme, other")
    refused(world, lambda: admin.get_user(world, "acme", "x@acme.fr"), "users: alice@acme.fr")


def test_deleted_channels_are_hidden(world):
    created = channel(world)
    kept = channel(world, label="Telecom")
    created.active = False
    created.deleted_at = datetime(2025, 1, 1, tzinfo=UTC)
    world.flush()
    assert admin.list_channels(world) == [kept]
    refused(world, lambda: admin.get_channel(world, "acme-papeterie"), "channel 'acme-papeterie' was deleted on 2025-01-01")


def test_list_channels_by_organisation(world):
    mine = channel(world)
    bob = admin.get_user(world, "other", "bob@other.fr")
    bob.rights = Right.CONFIGURE_COLLECTION.value
    theirs = admin.add_channel(world, "other", label="Papeterie", provider=PORTAL, binder="achats", recipient="bob@other.fr", actor=bob)
    assert admin.list_channels(world, "acme") == [mine]
    assert admin.list_channels(world, "other") == [theirs]
    assert admin.list_channels(world) == [mine, theirs]
    refused(world, lambda: admin.list_channels(world, "nope"), "unknown organisation")


def _run(session, ch, account, status, started, new=0, had=0, message=""):
    run = CollectionRun(
        channel_id=ch.id,
        account_id=account.id if account else None,
        started_at=started,
        status=status,
        new_documents=new,
        already_had=had,
        message=message,
    )
    session.add(run)
    session.flush()
    return run


def test_history_newest_first_with_filters(world):
    papeterie, telecom = channel(world), channel(world, label="Telecom")
    one = add_account(world, papeterie, login="one", password="pw")
    two = add_account(world, telecom, login="two", password="pw")
    day = datetime(2025, 3, 10, 6, 0, tzinfo=UTC)
    _run(world, papeterie, one, Status.OK, day, new=3)
    _run(world, telecom, two, Status.WRONG_CREDENTIALS, day + timedelta(days=1), message="refused")
    _run(world, papeterie, one, Status.OK, day + timedelta(days=2), had=3)
    _run(world, telecom, None, Status.AWAITING_CREDENTIALS, day + timedelta(days=3))

    entries = admin.history(world)
    assert [e.run.started_at.day for e in entries] == [13, 12, 11, 10]
    assert [e.login for e in entries] == [None, "one", "two", "one"]
    assert entries[0].message == describe(Status.AWAITING_CREDENTIALS).message  # plain words when the run has none
    assert entries[2].message == "refused"
    assert [e.run.new_documents for e in admin.history(world, channel="acme-papeterie")] == [0, 3]
    assert [e.channel.slug for e in admin.history(world, status="wrong_credentials")] == ["acme-telecom"]
    assert len(admin.history(world, since="2025-03-12")) == 2
    assert len(admin.history(world, since=date(2025, 3, 11), status=Status.OK)) == 1
    assert len(admin.history(world, limit=1)) == 1


def test_history_refusals(world):
    channel(world)
    refused(world, lambda: admin.history(world, status="broken"), "unknown status 'broken'", "wrong_credentials")
    refused(world, lambda: admin.history(world, since="10/03/2025"), "invalid date", "YYYY-MM-DD")
    refused(world, lambda: admin.history(world, channel="nope"), "unknown channel 'nope'")
    refused(world, lambda: admin.history(world, limit=0), "invalid limit")


def test_history_keeps_deleted_channels(world):
    created = channel(world)
    _run(world, created, None, Status.OK, datetime(2025, 1, 1, tzinfo=UTC))
    created.active = False
    world.flush()
    assert len(admin.history(world, channel="acme-papeterie")) == 1


def _document(session, ch, reference, day):
    document = Document(
        channel_id=ch.id,
        provider_reference=reference,
        document_date=day,
        amount="12.50",
        file_name=f"{reference}.pdf",
        sha256=reference * 4,
        size=1000,
        storage_key=f"acme/factures/{ch.slug}/{reference}.pdf",
        filed_at=datetime.now(UTC),
    )
    session.add(document)
    session.flush()
    return document


def test_list_documents(world):
    papeterie, telecom = channel(world), channel(world, label="Telecom")
    _document(world, papeterie, "F1", date(2025, 1, 5))
    _document(world, papeterie, "F2", date(2025, 2, 5))
    _document(world, telecom, "T1", date(2025, 1, 20))
    assert [d.provider_reference for d in admin.list_documents(world)] == ["F2", "T1", "F1"]
    assert [d.provider_reference for d in admin.list_documents(world, channel="acme-papeterie")] == ["F2", "F1"]
    assert len(admin.list_documents(world, limit=2)) == 2
    assert admin.channel_slugs(world, [papeterie.id]) == {papeterie.id: "acme-papeterie"}
    refused(world, lambda: admin.list_documents(world, channel="nope"), "unknown channel")


def test_channel_summaries(world):
    papeterie = channel(world)
    channel(world, label="Telecom")
    one = add_account(world, papeterie, login="one", password="pw")
    _run(world, papeterie, one, Status.OK, datetime(2025, 1, 1, tzinfo=UTC))
    last = _run(world, papeterie, one, Status.PORTAL_CHANGED, datetime(2025, 1, 2, tzinfo=UTC))
    papeterie.status, papeterie.status_message = Status.PORTAL_CHANGED, ""
    world.flush()
    by_slug = {s.channel.slug: s for s in admin.channel_summaries(world)}
    assert by_slug["acme-papeterie"].last_run.id == last.id
    assert [a.login for a in by_slug["acme-papeterie"].accounts] == ["one"]
    assert by_slug["acme-papeterie"].message == describe(Status.PORTAL_CHANGED).message
    assert by_slug["acme-telecom"].last_run is None and by_slug["acme-telecom"].accounts == []
    assert admin.channel_summaries(world, "other") == []


def test_slugify():
    assert admin.slugify("Acme – Papeterie Dupont (Été 2025)") == "acme-papeterie-dupont-ete-2025"
    assert admin.slugify("---") == ""
    assert len(admin.slugify("x" * 200)) == admin.SLUG_MAX
