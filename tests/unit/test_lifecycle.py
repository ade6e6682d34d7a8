"""The collector lifecycle of the help pages, one rule per test, through the CLI and against the database.

Rights ("Seul un utilisateur ayant le droit ... peut créer un canal"), prerequisites, the catalogue,
"Demander l'ajout d'un collecteur", accounts, deletion ("définitivement désactivé"), statuses at a
glance, the first collection "dans l'heure", and the audit log. Secrets go in through input=.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlmodel import Session, func, select

from cli.main import app
from connectors import catalog
from glaneur import admin
from glaneur.contract import Provider
from glaneur.models import (
    Account,
    AuditLog,
    Binder,
    Channel,
    CollectionRun,
    ConnectorRequest,
    ConnectorRequestFollower,
    Document,
    Invitation,
    InvitationState,
    Notification,
    User,
    VaultEntry,
)
from glaneur.settings import reset_settings
from glaneur.statuses import STATUS_TABLE, Status, describe
from glaneur.vault import Vault
from tests.commands import first_collections, glaneur, ok, runner  # noqa: F401  first_collections: an autouse fixture

PORTAL = "test-portal"
LEGACY = "test-legacy-portal"
BANK = "test-bank"
PASSWORD = "Zq7-unique-Pa55word"
NEW_PASSWORD = "Fresh-9-Pa55word"
SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
CHANNEL = "acme-papeterie"
COLLECTION_RIGHT = "Autoriser l'accès au paramétrage de la collecte"
ACCOUNTING_RIGHT = "Autoriser l'accès au paramétrage de la comptabilité"


# -- fixtures and helpers ---------------------------------------------------------------------------------


@pytest.fixture
def home(monkeypatch, request):
    for name in (
        "GLANEUR_DATABASE_URL", "GLANEUR_VAULT_KEY", "GLANEUR_VAULT_KEY_FILE", "GLANEUR_STORAGE_PATH",
        "GLANEUR_ACTING_USER", "GLANEUR_SMTP_HOST",
    ):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setitem(catalog.PROVIDERS, PORTAL, Provider(slug=PORTAL, name="Test Portal"))
    monkeypatch.setitem(catalog.PROVIDERS, LEGACY, Provider(slug=LEGACY, name="Legacy Portal", compatible=False,
                                                            description="Needs a code sent by post."))  # fmt: skip
    monkeypatch.setitem(catalog.PROVIDERS, BANK, Provider(slug=BANK, name="Test Bank", kind="bank"))
    return request.getfixturevalue("glaneur_home")


def refused(*args: str, input: str | None = None, expect: str = ""):
    """Exit 2, one red 'Error: ...' on stderr, no traceback, and nothing written to the database."""
    before = counts()
    result = glaneur(*args, input=input)
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.stderr.startswith("Error: "), result.output
    assert "Traceback" not in result.output
    assert expect in " ".join(result.stderr.split()), result.stderr
    assert counts() == before, f"written despite the refusal: {result.stderr}"
    return result


def session() -> Session:
    from glaneur.db import get_engine

    return Session(get_engine(), expire_on_commit=False)


def counts() -> dict[str, int]:
    from glaneur.db import migrate

    migrate()
    tables = (User, Binder, Channel, Account, VaultEntry, AuditLog, ConnectorRequest, ConnectorRequestFollower,
              Notification, Invitation)
    with session() as s:
        return {t.__name__: s.exec(select(func.count()).select_from(t)).one() for t in tables}


@pytest.fixture
def acme(home):
    """acme: alice may configure collection, carol accounting, dan nothing; other: bob may configure collection."""
    ok("org", "create", "acme", "Acme SA")
    ok("org", "create", "other", "Other SARL")
    ok("user", "create", "acme", "alice@acme.fr", "Alice", "--right", "configure_collection", "--right", "configure_accounting")
    ok("--as", "alice@acme.fr", "user", "create", "acme", "carol@acme.fr", "Carol", "--right", "configure_accounting")
    ok("--as", "alice@acme.fr", "user", "create", "acme", "dan@acme.fr", "Dan")
    ok("--as", "alice@acme.fr", "binder", "create", "acme", "factures", "Factures fournisseurs")
    ok("user", "create", "other", "bob@other.fr", "Bob", "--right", "configure_collection")
    ok("--as", "bob@other.fr", "binder", "create", "other", "achats", "Achats")
    return home


def channel_add(*extra: str, who: str = "alice@acme.fr", provider: str = PORTAL, input: str | None = None):
    return glaneur(
        "--as", who, "channel", "add", "acme", "--label", "Papeterie", "--provider", provider,
        "--binder", "factures", "--recipient", "alice@acme.fr", *extra, input=input,
    )  # fmt: skip


def channel_row(slug: str = CHANNEL) -> Channel:
    with session() as s:
        return s.exec(select(Channel).where(Channel.slug == slug)).one()


def accounts() -> list[Account]:
    with session() as s:
        return list(s.exec(select(Account).order_by(Account.position)).all())


def audit_rows() -> list[AuditLog]:
    with session() as s:
        return list(s.exec(select(AuditLog).order_by(AuditLog.id)).all())


def secrets() -> list[VaultEntry]:
    with session() as s:
        return list(s.exec(select(VaultEntry).where(VaultEntry.purpose != "canary")).all())


# -- 1. rights -------------------------------------------------------------------------------------------------


def test_channel_add_is_refused_without_an_acting_user(acme):
    result = refused("channel", "add", "acme", "--label", "P", "--provider", PORTAL, "--binder", "factures",
                     "--recipient", "alice@acme.fr", "--login", "one", input=f"{PASSWORD}\n",
                     expect="must act as a known user: put --as EMAIL")  # fmt: skip
    assert "Password" not in result.output  # refused before anyone types a secret


def test_channel_add_is_refused_without_the_collection_right_and_names_it(acme):
    result = refused(*channel_add_args("dan@acme.fr"), "--login", "one", input=f"{PASSWORD}\n",
                     expect=f"user 'dan@acme.fr' lacks the right '{COLLECTION_RIGHT}' (configure_collection)")  # fmt: skip
    assert "Password" not in result.output
    # The accounting right is not the collection right.
    refused(*channel_add_args("carol@acme.fr"), expect=COLLECTION_RIGHT)


def test_channel_add_is_accepted_with_the_right_and_the_actor_owns_the_channel(acme):
    result = channel_add("--login", "one", input=f"{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    created = channel_row()
    with session() as s:
        alice = admin.get_user(s, "acme", "alice@acme.fr")
    assert created.owner_user_id == alice.id
    actions = [(row.action, row.target, row.actor_user_id) for row in audit_rows()[-2:]]
    assert actions == [("channel.create", CHANNEL, alice.id), ("account.add", f"{CHANNEL}/one", alice.id)]


def test_the_setting_names_the_acting_user(acme, monkeypatch):
    monkeypatch.setenv("GLANEUR_ACTING_USER", "alice@acme.fr")
    reset_settings()
    ok("channel", "add", "acme", "--label", "Papeterie", "--provider", PORTAL, "--binder", "factures",
       "--recipient", "alice@acme.fr")  # fmt: skip
    # --as wins over the setting.
    refused("--as", "dan@acme.fr", "channel", "add", "acme", "--label", "Other", "--provider", PORTAL,
            "--binder", "factures", "--recipient", "alice@acme.fr", expect="lacks the right")  # fmt: skip


@pytest.mark.parametrize(
    ("who", "expect"),
    [
        ("bob@other.fr", "user 'bob@other.fr' belongs to another organisation, not 'acme'"),
        ("nobody@acme.fr", "unknown user 'nobody@acme.fr' in organisation 'acme'"),
        ("not-an-address", "invalid e-mail address 'not-an-address'"),
        ("alice@acme", "invalid e-mail address 'alice@acme'"),
    ],
)
def test_unknown_foreign_or_malformed_acting_users_are_refused(acme, who, expect):
    refused(*channel_add_args(who), expect=expect)


def test_bank_channels_need_the_accounting_right(acme):
    ok("--as", "alice@acme.fr", "user", "create", "acme", "eve@acme.fr", "Eve", "--right", "configure_collection")
    refused(*channel_add_args("eve@acme.fr", provider=BANK), expect=f"'{ACCOUNTING_RIGHT}' (configure_accounting)")
    result = channel_add(who="carol@acme.fr", provider=BANK)
    assert result.exit_code == 0, result.output
    assert channel_row().kind == "bank"
    # ...and the same right for its accounts.
    refused("--as", "eve@acme.fr", "channel", "account-add", CHANNEL, "--login", "x", input="pw\n", expect=ACCOUNTING_RIGHT)


def channel_add_args(who: str, provider: str = PORTAL) -> list[str]:
    return ["--as", who, "channel", "add", "acme", "--label", "Papeterie", "--provider", provider,
            "--binder", "factures", "--recipient", "alice@acme.fr"]  # fmt: skip


def test_account_changes_and_deletion_need_the_right(acme):
    ok(*channel_add_args("alice@acme.fr"), "--login", "one", input=f"{PASSWORD}\n")
    refused("--as", "dan@acme.fr", "channel", "account-add", CHANNEL, "--login", "two", input="pw\n", expect=COLLECTION_RIGHT)
    refused("--as", "dan@acme.fr", "channel", "update-credentials", CHANNEL, "--login", "one", input="pw\n", expect=COLLECTION_RIGHT)
    refused("--as", "dan@acme.fr", "channel", "delete", CHANNEL, "--yes", expect=COLLECTION_RIGHT)
    refused("--as", "bob@other.fr", "channel", "delete", CHANNEL, "--yes", expect="belongs to another organisation")
    refused("channel", "delete", CHANNEL, "--yes", expect="--as EMAIL")
    with session() as s:
        assert Vault(s).get(accounts()[0].secret_ref) == PASSWORD  # untouched


def test_users_and_binders_bootstrap_then_need_an_administrator(home):
    ok("org", "create", "acme", "Acme SA")  # the platform team's: no acting user
    ok("binder", "create", "acme", "factures", "Factures")  # no user yet: bootstrap
    ok("user", "create", "acme", "alice@acme.fr", "Alice", "--right", "configure_collection")  # first user
    refused("user", "create", "acme", "dan@acme.fr", "Dan", expect="--as EMAIL")
    refused("binder", "create", "acme", "notes", "Notes", expect="--as EMAIL")
    ok("--as", "alice@acme.fr", "user", "create", "acme", "dan@acme.fr", "Dan")
    refused("--as", "dan@acme.fr", "user", "create", "acme", "eve@acme.fr", "Eve", expect=COLLECTION_RIGHT)
    refused("--as", "dan@acme.fr", "binder", "create", "acme", "notes", "Notes", expect=ACCOUNTING_RIGHT)
    # No one grants a right they do not hold.
    refused("--as", "alice@acme.fr", "user", "create", "acme", "eve@acme.fr", "Eve", "--right", "configure_accounting",
            expect=f"cannot grant '{ACCOUNTING_RIGHT}'")  # fmt: skip
    ok("--as", "alice@acme.fr", "binder", "create", "acme", "notes", "Notes")
    actions = [(row.action, row.target) for row in audit_rows()]
    assert actions == [
        ("organization.create", "acme"),
        ("binder.create", "factures"),
        ("user.create", "alice@acme.fr"),
        ("user.create", "dan@acme.fr"),
        ("binder.create", "notes"),
    ]


def test_the_audit_log_says_who_did_what_and_never_a_secret(acme):
    ok(*channel_add_args("alice@acme.fr"), "--login", "one", "--password-stdin", "--with-totp", input=f"{PASSWORD}\n{SEED}\n")
    ok("--as", "alice@acme.fr", "channel", "update-credentials", CHANNEL, "--login", "one", "--password-stdin",
       input=f"{NEW_PASSWORD}\n")  # fmt: skip
    ok("--as", "alice@acme.fr", "connector-request", "add", "acme", "--supplier", "Bureau Vallée",
       "--url", "https://www.bureau-vallee.example/espace-client", "--message", "Monthly invoices")  # fmt: skip
    ok("--as", "alice@acme.fr", "channel", "delete", CHANNEL, "--yes")

    out = ok("audit", "--org", "acme").stdout
    for expected in ("channel.create", "account.add", "account.credentials_update", "channel.delete",
                     "connector_request.create", "alice@acme.fr", f"{CHANNEL}/one", "platform (console)"):  # fmt: skip
        assert expected in out, out
    assert out.index("channel.delete") < out.index("channel.create")  # newest first
    assert "bob@other.fr" not in ok("audit", "--org", "acme").stdout
    assert "achats" in ok("audit", "--org", "other").stdout
    assert len(ok("audit", "--limit", "1").stdout.split("channel.delete")) == 2
    for row in audit_rows():
        text = f"{row.action} {row.target} {row.detail}"
        assert PASSWORD not in text and NEW_PASSWORD not in text and SEED not in text
    refused("audit", "--org", "nope", expect="unknown organisation 'nope'")


# -- 2. prerequisites ----------------------------------------------------------------------------------------


def test_each_missing_prerequisite_is_named(acme):
    result = refused("--as", "alice@acme.fr", "channel", "add", "acme", "--label", "P", "--provider", PORTAL,
                     "--binder", "nope", "--recipient", "nobody@acme.fr", expect="unknown binder 'nope'")  # fmt: skip
    message = " ".join(result.stderr.split())
    assert "unknown user 'nobody@acme.fr'" in message and "critères obligatoires" in message
    refused(*channel_add_args("alice@acme.fr")[:-4], "--binder", "factures", "--recipient", "bob@other.fr",
            expect="recipient: user 'bob@other.fr' belongs to another organisation")  # fmt: skip
    refused(*channel_add_args("alice@acme.fr")[:-4], "--binder", "factures", "--recipient", "not-an-address",
            expect="invalid e-mail address 'not-an-address'")  # fmt: skip


# -- 3. the catalogue ---------------------------------------------------------------------------------------


def test_an_incompatible_provider_is_refused_with_the_faq_advice(acme):
    result = refused(*channel_add_args("alice@acme.fr", provider=LEGACY), "--login", "x", input="pw\n",
                     expect="is not compatible with automatic collection. Needs a code sent by post.")  # fmt: skip
    message = " ".join(result.stderr.split())
    assert "Check the catalogue" in message and "Demander l'ajout d'un collecteur" in message
    refused(*channel_add_args("alice@acme.fr", provider="papeterie-dupond"), expect="Did you mean papeterie-dupont")
    out = ok("providers", "legacy").stdout
    assert LEGACY in out and "no" in out and "Needs a code sent by post." in out


# -- 4. requesting a new collector ------------------------------------------------------------------------------


def request_add(*extra: str, who: str = "dan@acme.fr", url: str = "https://espace.fournisseur-x.example/login"):
    return ["--as", who, "connector-request", "add", "acme", "--supplier", "Fournisseur X", "--url", url, *extra]


@pytest.mark.parametrize(
    "url",
    ["fournisseur-x.example", "ftp://fournisseur-x.example", "https://", "http:///login", "https://exa mple.com",
     "mailto:contact@fournisseur-x.example", "https://host:port/", ""],
)  # fmt: skip
def test_a_request_needs_a_web_address(acme, url):
    refused(*request_add(url=url), expect="invalid portal address")


def test_a_request_never_stores_credentials_in_the_address(acme):
    refused(*request_add(url="https://me:secret@fournisseur-x.example/"), expect="contains a login or password")


def test_requests_are_listed_with_their_state_and_the_requester_is_told_once(acme, monkeypatch):
    result = ok(*request_add("--message", "Factures mensuelles, pas de double authentification"))
    assert "Request #1 sent" in result.stdout
    ok(*request_add(who="alice@acme.fr", url="https://portail.autre.example"))
    refused(*request_add(url="https://www.espace.fournisseur-x.example/other"), expect="already asked for a collector for espace.fournisseur-x.example (request #1")
    refused(*request_add(url="http://127.0.0.1:8701/login"), expect="already has a collector for 127.0.0.1:8701: provider 'papeterie-dupont'")
    refused(*request_add(who="bob@other.fr"), expect="belongs to another organisation")
    refused("connector-request", "add", "acme", "--supplier", " ", "--url", "https://x.example", expect="--as EMAIL")
    refused(*["--as", "dan@acme.fr", "connector-request", "add", "acme", "--supplier", " ", "--url", "https://x.example"],
            expect="supplier name is empty")  # fmt: skip

    out = ok("connector-request", "list").stdout
    assert "Fournisseur X" in out and "dan@acme.fr" in out and "open" in out and "Factures mensuelles" in out
    assert "No connector request" in ok("connector-request", "list", "--state", "shipped").stdout
    assert "No connector request" in ok("connector-request", "list", "--org", "other").stdout
    refused("connector-request", "list", "--state", "done", expect="unknown request state 'done'; states: open, shipped, rejected")

    # Nothing ships while the catalogue lacks the supplier.
    assert "No open request" in ok("connector-request", "sync").stdout
    # The connector ships: a catalogue provider now serves that portal.
    monkeypatch.setitem(catalog.PROVIDERS, "fournisseur-x", Provider(
        slug="fournisseur-x", name="Fournisseur X", default_url="https://espace.fournisseur-x.example"))  # fmt: skip
    out = ok("connector-request", "sync").stdout
    assert "Request #1 (Fournisseur X) shipped with provider fournisseur-x; dan@acme.fr notified, mailed" in out
    assert "No open request" in ok("connector-request", "sync").stdout  # told once
    with session() as s:
        dan = admin.get_user(s, "acme", "dan@acme.fr")
        told = s.exec(select(Notification).where(Notification.user_id == dan.id)).all()
        request = s.get(ConnectorRequest, 1)
    assert [n.kind for n in told] == ["connector_shipped"] and "Fournisseur X" in told[0].subject
    assert "fournisseur-x" in told[0].body
    assert request.state == "shipped" and request.provider == "fournisseur-x" and request.notified_at is not None
    mails = list((acme / "outbox").glob("*.eml"))
    assert len(mails) == 1 and "dan@acme.fr" in mails[0].read_text()
    out = ok("connector-request", "list", "--state", "shipped").stdout
    assert "Fournisseur X" in out and "fournisseur-x" in out and "Autre" not in out

    # Dan reads it in the bell.
    out = ok("--as", "dan@acme.fr", "notifications", "list", "--unread").stdout
    assert "Collector available: Fournisseur X" in out
    assert "Marked 1 notification" in ok("--as", "dan@acme.fr", "notifications", "read").stdout
    assert "No unread notification" in ok("--as", "dan@acme.fr", "notifications", "list", "--unread").stdout


def test_staff_ship_a_request_explicitly(acme):
    ok(*request_add(url="https://nouveau-portail.papeterie.example"))
    refused("connector-request", "ship", "7", "--provider", "papeterie-dupont", expect="unknown connector request #7; open requests: #1")
    refused("connector-request", "ship", "1", "--provider", "nope", expect="Unknown provider 'nope'")
    refused("connector-request", "ship", "1", "--provider", LEGACY, expect="not compatible")
    out = ok("connector-request", "ship", "1", "--provider", "papeterie-dupont").stdout
    assert "shipped with provider papeterie-dupont; dan@acme.fr notified" in out
    refused("connector-request", "ship", "1", "--provider", "papeterie-dupont", expect="already shipped with provider 'papeterie-dupont'")
    assert "No open request" in ok("connector-request", "sync").stdout  # already told: not twice
    with session() as s:
        assert s.exec(select(func.count()).select_from(Notification)).one() == 1


def _told(kind: str) -> list[tuple[str, Notification]]:
    with session() as s:
        return [(s.get(User, n.user_id).email, n)
                for n in s.exec(select(Notification).where(Notification.kind == kind).order_by(Notification.id)).all()]


def test_every_user_who_asked_for_the_same_portal_is_told_once(acme, monkeypatch):
    """"Vous serez notifié dès qu'il sera disponible" holds for the second user who asks, not only the first."""
    ok(*request_add())
    out = ok(*request_add(who="alice@acme.fr", url="https://www.espace.fournisseur-x.example/factures")).stdout
    assert "dan@acme.fr already asked for this collector: request #1" in out and "notified too" in out
    refused(*request_add(who="alice@acme.fr"), expect="you already asked: organisation 'acme' already asked")
    refused(*request_add(), expect="you already asked")
    ok("--as", "bob@other.fr", "connector-request", "add", "other", "--supplier", "Fournisseur X",
       "--url", "https://espace.fournisseur-x.example")  # another organisation: a request of its own
    out = " ".join(ok("connector-request", "list", "--org", "acme").stdout.split())
    assert "dan@acme.fr" in out and "alice@acme.fr" in out
    with session() as s:
        assert s.exec(select(func.count()).select_from(ConnectorRequest)).one() == 2
        follow = s.exec(select(AuditLog).where(AuditLog.action == "connector_request.follow")).one()
        assert follow.target == "request #1"

    monkeypatch.setitem(catalog.PROVIDERS, "fournisseur-x", Provider(
        slug="fournisseur-x", name="Fournisseur X", default_url="https://espace.fournisseur-x.example"))  # fmt: skip
    out = " ".join(ok("connector-request", "sync").stdout.split())
    for who in ("dan@acme.fr", "alice@acme.fr", "bob@other.fr"):
        assert f"shipped with provider fournisseur-x; {who} notified, mailed" in out
    assert "No open request" in ok("connector-request", "sync").stdout  # each told once
    told = _told("connector_shipped")
    assert sorted(email for email, _ in told) == ["alice@acme.fr", "bob@other.fr", "dan@acme.fr"]
    assert all("fournisseur-x" in n.body for _, n in told)
    assert len(list((acme / "outbox").glob("*.eml"))) == 3


def test_a_request_shipped_for_a_rebranded_portal_answers_the_next_asker(acme):
    ok(*request_add(url="https://nouveau-portail.papeterie.example"))
    ok("connector-request", "ship", "1", "--provider", "papeterie-dupont")
    refused(*request_add(who="alice@acme.fr", url="https://nouveau-portail.papeterie.example/login"),
            expect="available since request #1: provider 'papeterie-dupont'")  # fmt: skip


def test_a_follower_not_told_yet_is_told_by_the_next_sync(acme):
    """A crash between two mails: the one already told is not told again, the other is."""
    ok(*request_add())
    ok(*request_add(who="alice@acme.fr"))
    with session() as s:  # the state a crash between the two mails leaves
        request = s.get(ConnectorRequest, 1)
        request.state, request.provider, request.notified_at = "shipped", "papeterie-dupont", datetime.now(UTC)
        s.add(request)
        s.commit()
    out = " ".join(ok("connector-request", "sync").stdout.split())
    assert "alice@acme.fr notified" in out and "dan@acme.fr" not in out
    assert [email for email, _ in _told("connector_shipped")] == ["alice@acme.fr"]
    assert "No open request" in ok("connector-request", "sync").stdout


def test_staff_reject_a_request_and_everyone_who_asked_learns_why(acme):
    ok(*request_add())
    ok(*request_add(who="alice@acme.fr"))
    refused("connector-request", "reject", "1", "--reason", "  ", expect="the reason is empty")
    refused("connector-request", "reject", "1", "--reason", "x" * 2001, expect="at most 2000")
    refused("connector-request", "reject", "9", "--reason", "no", expect="unknown connector request #9; open requests: #1")
    reason = "Le portail exige un code reçu par courrier à chaque connexion."
    out = " ".join(ok("connector-request", "reject", "1", "--reason", reason).stdout.split())
    assert "Request #1 (Fournisseur X) rejected; dan@acme.fr notified" in out and "alice@acme.fr notified" in out
    told = _told("connector_rejected")
    assert [email for email, _ in told] == ["dan@acme.fr", "alice@acme.fr"]
    assert all(reason in n.body and "providers --powens" in n.body for _, n in told)
    assert told[0][1].subject == "Collector not possible: Fournisseur X"
    refused("connector-request", "reject", "1", "--reason", "again", expect="connector request #1 is already rejected")
    refused("connector-request", "ship", "1", "--provider", "papeterie-dupont", expect="already rejected")
    assert "No open request" in ok("connector-request", "sync").stdout  # told once
    out = " ".join(ok("connector-request", "list", "--state", "rejected").stdout.split())
    assert "rejected" in out and "courrier" in out
    with session() as s:
        entry = s.exec(select(AuditLog).where(AuditLog.action == "connector_request.reject")).one()
        assert entry.detail == reason
    # The portal may change: asking again opens a new request.
    assert "Request #2 sent" in ok(*request_add()).stdout


def test_a_failed_mail_still_leaves_the_bell_entry(acme, monkeypatch):
    ok(*request_add())
    monkeypatch.setenv("GLANEUR_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("GLANEUR_SMTP_PORT", "9")  # nothing listens there
    reset_settings()
    out = ok("connector-request", "ship", "1", "--provider", "papeterie-dupont").stdout
    assert "in the bell only, the mail failed" in out
    with session() as s:
        assert s.exec(select(func.count()).select_from(Notification)).one() == 1
        assert s.get(ConnectorRequest, 1).notified_at is not None


# -- 5. accounts: two at most, credentials overwritten, deletion ----------------------------------------------


def test_a_third_account_is_refused(acme):
    ok(*channel_add_args("alice@acme.fr"), "--login", "one", input=f"{PASSWORD}\n")
    ok("--as", "alice@acme.fr", "channel", "account-add", CHANNEL, "--login", "two", input="second\n")
    result = refused("--as", "alice@acme.fr", "channel", "account-add", CHANNEL, "--login", "three", input="third\n",
                     expect="at most two accounts (jusqu'à deux comptes différents par collecteur)")  # fmt: skip
    assert "Password" not in result.output
    assert [a.login for a in accounts()] == ["one", "two"]


def test_updating_credentials_overwrites_them_and_resets_the_status(acme):
    ok(*channel_add_args("alice@acme.fr"), "--login", "one", input="old-password\n")
    with session() as s:
        account = s.exec(select(Account)).one()
        channel = s.exec(select(Channel)).one()
        account.status = channel.status = Status.WRONG_CREDENTIALS
        channel.notified_status = Status.WRONG_CREDENTIALS
        account.session_ref = Vault(s).put("session", "{}")
        s.add_all([account, channel])
        s.commit()
        refs = (account.secret_ref, account.session_ref)
    before = len(secrets())
    result = ok("--as", "alice@acme.fr", "channel", "update-credentials", CHANNEL, "--login", "one", input=f"{NEW_PASSWORD}\n")
    assert NEW_PASSWORD not in result.output
    with session() as s:
        account = s.exec(select(Account)).one()
        assert account.secret_ref == refs[0] and Vault(s).get(account.secret_ref) == NEW_PASSWORD  # overwritten in place
        assert account.status == Status.NEW and account.session_ref is None
        assert s.get(VaultEntry, refs[1]) is None  # the old portal session is gone
    channel = channel_row()
    assert channel.status == Status.NEW and channel.notified_status is None
    assert len(secrets()) == before - 1


def test_deleting_a_collector_purges_its_secrets_and_keeps_its_history(acme):
    ok(*channel_add_args("alice@acme.fr"), "--login", "one", "--password-stdin", "--with-totp", input=f"{PASSWORD}\n{SEED}\n")
    ok("--as", "alice@acme.fr", "channel", "account-add", CHANNEL, "--login", "two", input="second\n")
    with session() as s:
        channel = s.exec(select(Channel)).one()
        one = s.exec(select(Account).where(Account.login == "one")).one()
        one.session_ref = Vault(s).put("session", "{}")
        s.add(one)
        two = s.exec(select(Account).where(Account.login == "two")).one()
        two.pending_login_ref = Vault(s).put("pending_login", "{}")  # waiting for its second factor
        s.add(two)
        s.add(CollectionRun(channel_id=channel.id, account_id=one.id, status=Status.OK, new_documents=1))
        s.add(Document(channel_id=channel.id, provider_reference="F1", document_date=date(2025, 1, 1), file_name="f.pdf",
                       sha256="a" * 64, size=10, storage_key="acme/factures/acme-papeterie/f.pdf"))  # fmt: skip
        holder = s.exec(select(User).where(User.email == "dan@acme.fr")).one()
        s.add(Invitation(channel_id=channel.id, invitee_user_id=holder.id, email=holder.email,
                         expires_at=datetime.now(UTC) + timedelta(days=1)))  # fmt: skip
        s.commit()
    assert len(secrets()) == 5  # two passwords, a TOTP seed, a session, a pending login

    result = glaneur("--as", "alice@acme.fr", "channel", "delete", CHANNEL, input="n\n")
    assert result.exit_code == 1 and "Nothing deleted" in result.stdout
    assert channel_row().active

    out = ok("--as", "alice@acme.fr", "channel", "delete", CHANNEL, input="y\n").stdout
    assert "5 secret(s) of 2 account(s) purged" in out and "1 document(s) and 1 run(s) of history kept" in out
    assert secrets() == []  # every VaultEntry row of its accounts is gone
    assert all((a.secret_ref, a.totp_ref, a.session_ref, a.pending_login_ref) == (None,) * 4 for a in accounts())
    deleted = channel_row()
    assert not deleted.active and deleted.deleted_at is not None
    with session() as s:
        assert s.exec(select(func.count()).select_from(Document)).one() == 1
        assert s.exec(select(Invitation)).one().state == InvitationState.CANCELLED
    assert CHANNEL not in ok("channels").stdout
    assert "ok" in ok("history", "--channel", CHANNEL).stdout  # history kept
    assert "F1" in ok("documents", "--channel", CHANNEL).stdout

    refused("--as", "alice@acme.fr", "channel", "delete", CHANNEL, "--yes", expect=f"channel '{CHANNEL}' is already deleted on")
    refused("--as", "alice@acme.fr", "channel", "update-credentials", CHANNEL, "--login", "one", input="x\n",
            expect=f"channel '{CHANNEL}' was deleted on")  # fmt: skip
    refused("--as", "alice@acme.fr", "channel", "account-add", CHANNEL, "--login", "three", input="x\n", expect="was deleted")
    refused("run", CHANNEL, expect="was deleted")
    refused("--as", "alice@acme.fr", "channel", "delete", "nope", "--yes", expect="unknown channel 'nope'")
    # Its slug stays taken: the history keeps it.
    refused(*channel_add_args("alice@acme.fr"), expect="already taken by a deleted channel")


def test_deletion_works_without_the_vault_key(acme, monkeypatch):
    ok(*channel_add_args("alice@acme.fr"), "--login", "one", input=f"{PASSWORD}\n")
    (acme / "vault.key").unlink()
    monkeypatch.setenv("GLANEUR_VAULT_KEY_FILE", str(acme / "lost.key"))  # a configured key that is gone
    reset_settings()
    ok("--as", "alice@acme.fr", "channel", "delete", CHANNEL, "--yes")
    assert secrets() == []


# -- 6. statuses at a glance ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", list(Status))
def test_every_status_shows_its_message_in_the_channel_list(acme, status):
    ok(*channel_add_args("alice@acme.fr"))
    with session() as s:
        channel = s.exec(select(Channel)).one()
        channel.status, channel.status_message = status, ""
        s.add(channel)
        s.commit()
    result = runner.invoke(app, ["channels"], env={"COLUMNS": "2000"})
    assert result.exit_code == 0
    assert status.value in result.stdout and STATUS_TABLE[status].message in result.stdout


def test_every_status_message_says_what_to_do():
    for status, info in STATUS_TABLE.items():
        assert info.message.endswith(".") and len(info.message.split()) >= 8, status
    assert "identifiants expirés" in describe(Status.CREDENTIALS_EXPIRED).message
    assert "interface fournisseur modifiée" in describe(Status.PORTAL_CHANGED).message


# -- 7. the first collection, at once ---------------------------------------------------------------------------


def test_credentials_start_the_first_collection_at_once(acme, first_collections):
    out = ok(*channel_add_args("alice@acme.fr"), "--login", "one", input=f"{PASSWORD}\n").stdout
    assert "First collection of acme-papeterie ran in this process" in out
    ok("--as", "alice@acme.fr", "channel", "account-add", CHANNEL, "--login", "two", input="pw\n")
    updated = ok("--as", "alice@acme.fr", "channel", "update-credentials", CHANNEL, "--login", "one", input="pw2\n")
    assert "Collection with the new credentials of acme-papeterie" in updated.stdout
    assert "First collection" not in updated.stdout
    assert first_collections == [CHANNEL, CHANNEL, CHANNEL]


def test_no_collect_and_no_credentials_start_nothing(acme, first_collections):
    ok(*channel_add_args("alice@acme.fr"))  # no account: nothing to collect yet
    out = ok("--as", "alice@acme.fr", "channel", "account-add", CHANNEL, "--login", "one", "--no-collect", input="pw\n").stdout
    assert "First collection not started (--no-collect)" in out and f"glaneur run {CHANNEL}" in out
    assert first_collections == []
