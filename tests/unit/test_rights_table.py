"""Rights, table-driven (issue 19 item 6): every CLI command is classified here, and every command that
changes an organisation's data is refused, with nothing changed, for a user without the right, a user
with the other right, a user of another organisation, and no acting user.

A new command fails ``test_every_command_is_classified`` until it is added to ``COMMANDS``.
"""

from __future__ import annotations

import shutil
import sys
import types
from dataclasses import dataclass

import pytest
import typer
from sqlalchemy import inspect, text
from typer.testing import CliRunner

from cli.main import app
from connectors import catalog
from glaneur.contract import Provider
from glaneur.settings import reset_settings

runner = CliRunner()

PORTAL = "rights-portal"
CHANNEL = "acme-papeterie"
BANK_CHANNEL = "acme-banque"
IBAN = "FR7630004000000001234567845"
SECRET = "a-long-partner-signing-secret"

# Who acts. acme is a company, cabinet an accounting firm, other a second company.
ROOT = "rose@acme.fr"  # both rights: creates the others
COLLECTION = "alice@acme.fr"  # configure_collection
ACCOUNTING = "bruno@acme.fr"  # configure_accounting
NO_RIGHT = "nadia@acme.fr"  # no right
OUTSIDER = "oscar@other.fr"  # both rights, in another organisation
FIRM_ADMIN = "anne@cabinet.fr"  # administrator profile, configure_accounting
FIRM_NO_PROFILE = "noe@cabinet.fr"  # a firm user without profile nor right
FIRM_COLLECTION = "carl@cabinet.fr"  # configure_collection, no profile

# What a command needs.
READ = "read-only"
PLATFORM = "platform"  # the platform team's act at the console: no organisation, no acting user by design
NEEDS_COLLECTION = "configure_collection"
NEEDS_ACCOUNTING = "configure_accounting"
NEEDS_EITHER = "configure_collection or configure_accounting"  # users and binders: either right administers them
NEEDS_PROFILE = "firm profile"
NEEDS_SELF = "the acting user's own data"
NEEDS_MEMBER = "any user of the organisation"  # asking the platform team for a connector needs no right


@dataclass(frozen=True)
class Rule:
    needs: str
    args: tuple[str, ...] = ()
    input: str | None = None
    defect: str = ""  # a known hole: the rights test is expected to fail (strictly) until it is fixed
    reader: str = ""  # read-only commands naming an organisation's data (args): a user of it who reads them


def _rule(needs: str, *args: str, input: str | None = None, defect: str = "") -> Rule:
    return Rule(needs, args, input, defect)


def _read(*args: str, reader: str = COLLECTION) -> Rule:
    """A read of acme's (or the firm cabinet's) data: refused to a user of another organisation."""
    return Rule(READ, args, reader=reader)


# Reads that show no organisation's data: the catalogues, a local file, the callback service, and the
# acting user's own bell (its refusals are in test_one_organisation_never_sees_anothers_data...).
READS_OF_NO_ORGANISATION = {"providers", "partner list", "statements parse", "serve", "notifications list"}


# THE table: every command of `glaneur`, by its path.
COMMANDS: dict[str, Rule] = {
    # read-only: with an acting user, scoped to its organisation(s); without one, the platform team's console
    "channels": _read("channels", "--org", "acme"),
    "providers": _rule(READ),
    "history": _read("history", "--channel", CHANNEL),
    "documents": _read("documents", "--channel", CHANNEL),
    "audit": _read("audit", "--org", "acme"),
    "doctor": _read("doctor", CHANNEL),
    "connector-request list": _read("connector-request", "list", "--org", "acme"),
    "notifications list": _rule(READ),
    "partner list": _rule(READ),
    "firm connectors": _read("firm", "connectors", "cabinet", reader=FIRM_ADMIN),
    "firm sources": _read("firm", "sources", "cabinet", reader=FIRM_ADMIN),
    "iban list": _read("iban", "list", "cabinet", reader=FIRM_ADMIN),
    "statements parse": _rule(READ),
    "statements list": _read("statements", "list", "cabinet", reader=FIRM_ADMIN),
    # writes a local file from what is stored, changes nothing stored
    "statements download": _read("statements", "download", "cabinet", "--output", "/dev/null", reader=FIRM_ADMIN),
    "bank list": _read("bank", "list", "acme", reader=ACCOUNTING),
    "bank show": _read("bank", "show", BANK_CHANNEL, reader=ACCOUNTING),
    "serve": _rule(READ),  # the Powens callback service: changes happen through the flows it resumes
    # the platform team's, with no organisation to act in
    "init": _rule(PLATFORM),
    "org create": _rule(PLATFORM),
    "partner add": _rule(PLATFORM),
    "partner update": _rule(PLATFORM),
    "vault generate-key": _rule(PLATFORM),
    "vault rotate-key": _rule(PLATFORM),
    "connector-request ship": _rule(PLATFORM),
    "connector-request reject": _rule(PLATFORM),
    "connector-request sync": _rule(PLATFORM),
    # an organisation's users and binders
    "user create": _rule(NEEDS_EITHER, "user", "create", "acme", "new@acme.fr", "New"),
    "user update": _rule(NEEDS_EITHER, "user", "update", "acme", ROOT, "--email", "rose.b@acme.fr"),  # or oneself
    "binder create": _rule(NEEDS_EITHER, "binder", "create", "acme", "new-binder", "New binder"),
    # supplier channels
    "channel add": _rule(NEEDS_COLLECTION, "channel", "add", "acme", "--label", "Other", "--provider", PORTAL,
                         "--binder", "factures", "--recipient", COLLECTION, "--no-collect"),
    "channel set-slot": _rule(NEEDS_COLLECTION, "channel", "set-slot", CHANNEL, "07:15"),
    "channel account-add": _rule(NEEDS_COLLECTION, "channel", "account-add", CHANNEL, "--login", "second",
                                 "--password-stdin", "--no-collect", input="pw-second\n"),
    "channel update-credentials": _rule(NEEDS_COLLECTION, "channel", "update-credentials", CHANNEL, "--login",
                                        "first", "--password-stdin", "--no-collect", input="pw-new\n"),
    "channel account-remove": _rule(NEEDS_COLLECTION, "channel", "account-remove", CHANNEL, "--login", "first", "--yes"),
    "channel delete": _rule(NEEDS_COLLECTION, "channel", "delete", CHANNEL, "--yes"),
    "channel invite": _rule(NEEDS_COLLECTION, "channel", "invite", CHANNEL, "--invitee", COLLECTION),
    "channel resend-invitation": _rule(NEEDS_COLLECTION, "channel", "resend-invitation", CHANNEL),
    "connector-request add": _rule(NEEDS_MEMBER, "connector-request", "add", "acme", "--supplier", "Dupont",
                                   "--url", "https://dupont.example/login"),
    "run": _rule(NEEDS_COLLECTION, "run", CHANNEL),  # starts the work the right configures
    # bank side
    "bank add": _rule(NEEDS_ACCOUNTING, "bank", "add", "acme", "Banque Nouvelle"),
    "bank connect": _rule(NEEDS_ACCOUNTING, "bank", "connect", "acme", "Banque Test", "--holder", ACCOUNTING,
                          "--binder", "factures", "--recipient", ACCOUNTING, "--login", "bank-login",
                          "--holder-consents", "--password-stdin", "--no-collect", input="pw\n"),
    "bank invite": _rule(NEEDS_ACCOUNTING, "bank", "invite", "acme", "Banque Test", "--holder", ACCOUNTING,
                         "--binder", "factures", "--recipient", ACCOUNTING),
    "bank resend-invitation": _rule(NEEDS_ACCOUNTING, "bank", "resend-invitation", BANK_CHANNEL),
    "bank reconnect": _rule(NEEDS_ACCOUNTING, "bank", "reconnect", BANK_CHANNEL, "--login", "bank-login",
                            "--password-stdin", "--no-collect", input="pw\n"),
    "bank run": _rule(NEEDS_ACCOUNTING, "bank", "run", BANK_CHANNEL),
    "bank revoke": _rule(NEEDS_ACCOUNTING, "bank", "revoke", BANK_CHANNEL, "--yes"),
    # the acting user's own bell
    "notifications read": _rule(NEEDS_SELF, "notifications", "read"),
    # accounting firms
    "firm connector-add": _rule(NEEDS_PROFILE, "firm", "connector-add", "cabinet", "compta-express"),
    "firm connector-remove": _rule(NEEDS_PROFILE, "firm", "connector-remove", "cabinet", "tenue-plus"),
    "firm hold-warnings": _rule(NEEDS_PROFILE, "firm", "hold-warnings", "cabinet", "--hold"),
    "firm source-add": _rule(NEEDS_PROFILE, "firm", "source-add", "cabinet", "new-source", "--inbox", "second"),
    "firm source-token": _rule(NEEDS_PROFILE, "firm", "source-token", "cabinet", "inbox", "--token-stdin",
                               input="a-long-statement-api-token\n"),
    "iban add": _rule(NEEDS_PROFILE, "iban", "add", "cabinet", "DE89370400440532013000", "--client", "X"),
    "iban attach": _rule(NEEDS_PROFILE, "iban", "attach", "cabinet", IBAN, "compta-express"),
    "iban mandate": _rule(NEEDS_PROFILE, "iban", "mandate", "cabinet", IBAN, "approved", "--reference", "M-1"),
    "statements import": _rule(NEEDS_PROFILE, "statements", "import", "cabinet", "/nonexistent/statement.xml"),
    "statements release": _rule(NEEDS_PROFILE, "statements", "release", "cabinet", "1"),
    "statements route": _rule(NEEDS_PROFILE, "statements", "route", "cabinet"),  # as import and release
}


def command_paths() -> set[str]:
    found: set[str] = set()

    def walk(command, path: list[str]) -> None:
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, [*path, name])
        else:
            found.add(" ".join(path))

    walk(typer.main.get_command(app), [])
    return found


def test_every_command_is_classified():
    paths = command_paths()
    unclassified = sorted(paths - COMMANDS.keys())
    assert not unclassified, f"classify in COMMANDS (read-only, platform or the right they need): {unclassified}"
    gone = sorted(COMMANDS.keys() - paths)
    assert not gone, f"COMMANDS names commands that no longer exist: {gone}"


# -- the world the refusals are tried in -------------------------------------------------------------


def glaneur(*args: str, actor: str | None = None, input: str | None = None):
    prefix = ["--as", actor] if actor else []
    return runner.invoke(app, [*prefix, *args], input=input, env={"COLUMNS": "250"})


def ok(*args: str, actor: str | None = None, input: str | None = None):
    result = glaneur(*args, actor=actor, input=input)
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result


class Called(Exception):
    pass


ENV_CLEARED = ("GLANEUR_DATABASE_URL", "GLANEUR_VAULT_KEY", "GLANEUR_VAULT_KEY_FILE", "GLANEUR_STORAGE_PATH",
               "GLANEUR_ACTING_USER", "PREFECT_API_URL")


def _environment(monkeypatch, home) -> None:
    for name in ENV_CLEARED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GLANEUR_HOME", str(home))
    # Powens "configured" at an address where nothing listens: a rights check that came after a Powens call
    # would show as a connection error instead of the refusal.
    monkeypatch.setenv("GLANEUR_POWENS_API_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("GLANEUR_POWENS_CLIENT_ID", "rights-test")
    monkeypatch.setenv("GLANEUR_POWENS_CLIENT_SECRET", "rights-test-client-secret")
    monkeypatch.setitem(catalog.PROVIDERS, PORTAL, Provider(slug=PORTAL, name="Rights Portal"))
    # Anything that would run a flow stops with Called: a refused command never gets there.
    for module_name, function in (("flows.activation", "start_first_collection"),
                                  ("flows.collect_channel", "run_channel"),
                                  ("flows.collect_bank_movements", "run_bank_channel"),
                                  ("flows.route_statements", "run_firm")):
        module = types.ModuleType(module_name)

        def called(*args, _name=module_name, **kwargs):
            raise Called(_name)

        setattr(module, function, called)
        monkeypatch.setitem(sys.modules, module_name, module)
    reset_settings()


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """The world built once through the CLI; each test gets its own copy of it."""
    home = tmp_path_factory.mktemp("rights") / "var"
    with pytest.MonkeyPatch.context() as monkeypatch:
        _environment(monkeypatch, home)
        _build()
    reset_settings()
    return home


@pytest.fixture
def world(template, tmp_path, monkeypatch):
    home = tmp_path / "var"
    shutil.copytree(template, home)
    _environment(monkeypatch, home)
    yield home
    reset_settings()


def _build() -> None:
    ok("org", "create", "acme", "Acme SA")
    ok("org", "create", "other", "Other SARL")
    ok("org", "create", "cabinet", "Cabinet Durand", "--firm")
    ok("binder", "create", "acme", "factures", "Factures")
    ok("binder", "create", "other", "achats", "Achats")
    ok("user", "create", "acme", ROOT, "Rose", "--right", "configure_collection", "--right", "configure_accounting")
    ok("user", "create", "acme", COLLECTION, "Alice", "--right", "configure_collection", actor=ROOT)
    ok("user", "create", "acme", ACCOUNTING, "Bruno", "--right", "configure_accounting", actor=ROOT)
    ok("user", "create", "acme", NO_RIGHT, "Nadia", actor=ROOT)
    ok("user", "create", "other", OUTSIDER, "Oscar", "--right", "configure_collection", "--right",
       "configure_accounting")
    ok("user", "create", "cabinet", FIRM_ADMIN, "Anne", "--right", "configure_accounting", "--right",
       "configure_collection", "--profile", "administrator")
    ok("user", "create", "cabinet", FIRM_NO_PROFILE, "Noé", actor=FIRM_ADMIN)
    ok("user", "create", "cabinet", FIRM_COLLECTION, "Carl", "--right", "configure_collection", actor=FIRM_ADMIN)
    ok("channel", "add", "acme", "--label", "Papeterie", "--provider", PORTAL, "--binder", "factures",
       "--recipient", COLLECTION, "--slug", CHANNEL, "--login", "first", "--password-stdin", "--no-collect",
       actor=COLLECTION, input="pw-first\n")
    ok("bank", "add", "acme", "Banque Test", actor=ACCOUNTING)
    _invited_bank_channel()
    ok("partner", "add", "compta-express", "Compta Express", "--url", "http://127.0.0.1:9/api/statements",
       "--secret-stdin", input=SECRET + "\n")
    ok("partner", "add", "tenue-plus", "Tenue Plus")
    ok("firm", "connector-add", "cabinet", "tenue-plus", actor=FIRM_ADMIN)
    ok("firm", "source-add", "cabinet", "inbox", "--inbox", "main", actor=FIRM_ADMIN)
    ok("iban", "add", "cabinet", IBAN, "--client", "Boulangerie Martin", actor=FIRM_ADMIN)


def _invited_bank_channel() -> None:
    """A bank channel waiting for its holder, made as 'bank invite' makes it, without asking Powens."""
    from sqlmodel import Session

    from glaneur import admin, bank
    from glaneur.db import get_engine

    with Session(get_engine()) as session:
        new = bank.check_new_connection(session, "acme", "Banque Test", binder="factures", recipient=ACCOUNTING,
                                        actor=admin.get_actor(session, "acme", ACCOUNTING), slug=BANK_CHANNEL)
        bank.create_invited_channel(session, new, holder=admin.get_person(session, ACCOUNTING, new.org),
                                    powens_connector_id=1)
        session.commit()


def snapshot() -> dict[str, list[tuple]]:
    """Every row of every table: a refused command leaves all of them as they were."""
    from glaneur.db import get_engine

    engine = get_engine()
    with engine.connect() as connection:
        return {
            table: [tuple(row) for row in connection.execute(text(f'SELECT * FROM "{table}" ORDER BY 1'))]
            for table in inspect(engine).get_table_names()
        }


# -- who is refused, and why -------------------------------------------------------------------------


def cases(path: str, rule: Rule) -> list[tuple[str, str | None, tuple[str, ...]]]:
    """(case name, acting user, words the refusal must contain)."""
    no_actor = ("no acting user", None, ("must act as a known user", "--as"))
    if rule.needs == NEEDS_PROFILE:
        return [
            ("no right", FIRM_NO_PROFILE, (FIRM_NO_PROFILE, "has no profile")),
            ("other right", FIRM_COLLECTION, (FIRM_COLLECTION, "has no profile")),
            ("other organisation", COLLECTION, (COLLECTION, "cabinet")),
            no_actor,
        ]
    if rule.needs == NEEDS_SELF:
        return [no_actor]
    if rule.needs == NEEDS_MEMBER:
        return [("other organisation", OUTSIDER, (OUTSIDER, "acme")), no_actor]
    right = {NEEDS_COLLECTION: "configure_collection", NEEDS_ACCOUNTING: "configure_accounting"}.get(rule.needs)
    found = [
        ("no right", NO_RIGHT, (NO_RIGHT, "lacks the right", right or "configure_")),
        ("other organisation", OUTSIDER, (OUTSIDER, "acme")),
        no_actor,
    ]
    if right is not None:  # either right administers users and binders: there is no "other" right
        other = ACCOUNTING if right == "configure_collection" else COLLECTION
        found.insert(1, ("other right", other, (other, "lacks the right", right)))
    return found


CHANGING = [
    pytest.param(path, name, actor, words, id=f"{path}/{name}",
                 marks=[pytest.mark.xfail(strict=True, raises=AssertionError, reason=rule.defect)] if rule.defect
                 else [])
    for path, rule in COMMANDS.items()
    if rule.needs not in (READ, PLATFORM)
    for name, actor, words in cases(path, rule)
]


@pytest.mark.parametrize(("path", "case", "actor", "words"), CHANGING)
def test_changing_command_is_refused(world, path, case, actor, words):
    rule = COMMANDS[path]
    before = snapshot()
    result = glaneur(*rule.args, actor=actor, input=rule.input)
    message = " ".join(result.stderr.split())
    assert not isinstance(result.exception, Called), f"{path} ran {result.exception} for {case}"
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.stderr.startswith("Error: ") and "Traceback" not in result.output, result.output
    for word in words:
        assert word in message, (word, message)
    assert snapshot() == before, f"{path} changed the database although refused ({case})"


def test_the_same_commands_pass_for_the_right_user(world):
    """The refusals above are the rights check's, not a broken invocation: the right user gets through."""
    ok("channel", "set-slot", CHANNEL, "07:15", actor=COLLECTION)
    ok("bank", "add", "acme", "Banque Nouvelle", actor=ACCOUNTING)
    ok("connector-request", "add", "acme", "--supplier", "Dupont", "--url", "https://dupont.example/login",
       actor=COLLECTION)
    ok("iban", "mandate", "cabinet", IBAN, "approved", "--reference", "M-1", actor=FIRM_ADMIN)
    ok("firm", "hold-warnings", "cabinet", "--hold", actor=FIRM_ADMIN)
    ok("binder", "create", "acme", "new-binder", "New binder", actor=ACCOUNTING)
    ok("user", "update", "acme", NO_RIGHT, "--name", "Nadia N.", actor=NO_RIGHT)  # one's own profile
    # Starting work: the right user gets past the check, as far as the flow (stubbed here).
    for args, actor in ((("run", CHANNEL), COLLECTION), (("bank", "run", BANK_CHANNEL), ACCOUNTING),
                        (("statements", "route", "cabinet"), FIRM_ADMIN)):
        result = glaneur(*args, actor=actor)
        reached = isinstance(result.exception, Called) or "Called: flows.collect_channel" in result.stderr
        assert reached, (args, result.output, result.exception)


# -- what a user of one organisation reads of another's ----------------------------------------------


def test_every_read_of_an_organisations_data_is_in_the_table():
    unscoped = {path for path, rule in COMMANDS.items() if rule.needs == READ and not rule.reader}
    assert unscoped == READS_OF_NO_ORGANISATION, "give each read of an organisation's data its args and reader"


READS = [pytest.param(path, id=path) for path, rule in COMMANDS.items() if rule.reader]


@pytest.mark.parametrize("path", READS)
def test_a_read_of_another_organisations_data_is_refused(world, path):
    """OUTSIDER (both rights, in 'other') names acme's or cabinet's data: refused, exit 2, nothing of it shown."""
    rule = COMMANDS[path]
    result = glaneur(*rule.args, actor=OUTSIDER)
    message = " ".join(result.stderr.split())
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.stderr.startswith("Error: ") and OUTSIDER in message and "reads only its own" in message, message
    assert result.stdout == "", result.stdout
    for theirs in ("Papeterie", "Banque Test", "Boulangerie", "tenue-plus", "inbox", "alice@", "bruno@"):
        assert theirs not in result.output, (theirs, result.output)


@pytest.mark.parametrize("path", READS)
def test_the_same_read_passes_for_a_user_of_the_organisation(world, path):
    rule = COMMANDS[path]
    result = glaneur(*rule.args, actor=rule.reader)
    assert "reads only its own" not in result.output
    # What these say of the world, past the scope check: a failed check (the channel never ran), an empty day.
    past_the_check = {"doctor": "Diagnosis of", "statements download": "has no statement in its global file"}
    assert result.exit_code == 0 or past_the_check.get(path, "\0") in result.output, (result.output, result.exception)


# -- what one organisation sees of another's -----------------------------------------------------------


def test_one_organisation_never_sees_anothers_data_through_the_read_commands(world):
    """acme and other each have a channel, a run, a filed document, a notification, a connector request and an
    audit line; reading acme's (by --org, --channel or as its user) never shows other's, and the other way round."""
    from datetime import date

    from sqlmodel import Session, select

    from glaneur.db import get_engine
    from glaneur.models import Channel, CollectionRun, Document, Notification, User

    ok("channel", "add", "other", "--label", "Fournitures", "--provider", PORTAL, "--binder", "achats",
       "--recipient", OUTSIDER, "--slug", "other-fournitures", "--no-collect", actor=OUTSIDER)
    with Session(get_engine()) as session:
        for slug, reference, email in ((CHANNEL, "ACME-INV-1", COLLECTION),
                                       ("other-fournitures", "OTHER-INV-9", OUTSIDER)):
            channel = session.exec(select(Channel).where(Channel.slug == slug)).one()
            session.add(Document(channel_id=channel.id, provider_reference=reference, document_date=date(2026, 1, 5),
                                 file_name=f"{reference}.pdf", sha256=reference.lower(), size=10,
                                 storage_key=f"{slug}/{reference}.pdf"))
            user = session.exec(select(User).where(User.email == email)).one()
            session.add(Notification(user_id=user.id, kind="channel_status", subject=f"Note for {reference}", body=""))
            session.add(CollectionRun(channel_id=channel.id, status="wrong_credentials", message=f"Run of {reference}"))
        session.commit()
    ok("connector-request", "add", "acme", "--supplier", "Acme Fournil", "--url", "https://fournil.example/login",
       actor=COLLECTION)
    ok("connector-request", "add", "other", "--supplier", "Other Moulin", "--url", "https://moulin.example/login",
       actor=OUTSIDER)

    mine = {"acme": (CHANNEL, "ACME-INV-1", COLLECTION), "other": ("other-fournitures", "OTHER-INV-9", OUTSIDER)}
    for org, (channel, reference, email) in mine.items():
        theirs_channel, theirs_reference, _ = mine["other" if org == "acme" else "acme"]
        listed = ok("channels", "--org", org).stdout
        assert channel in listed and theirs_channel not in listed
        filed = ok("documents", "--channel", channel).stdout
        assert reference in filed and theirs_reference not in filed and theirs_channel not in filed
        bell = ok("notifications", "list", actor=email).stdout
        assert f"Note for {reference}" in bell and theirs_reference not in bell
        log = ok("audit", "--org", org).stdout
        assert theirs_channel not in log and (org == "other" or CHANNEL in log)
        runs = ok("history", "--channel", channel).stdout
        assert f"Run of {reference}" in runs and theirs_reference not in runs
        # The same reads as a user of the organisation, naming none: its own only.
        for args in (("channels",), ("documents",), ("history",), ("audit",), ("connector-request", "list")):
            seen = ok(*args, actor=email).stdout
            assert theirs_channel not in seen and theirs_reference not in seen, (args, seen)
            assert ("Other Moulin" if org == "acme" else "Acme Fournil") not in seen, (args, seen)
        assert reference in ok("documents", actor=email).stdout and channel in ok("channels", actor=email).stdout
        assert f"Run of {reference}" in ok("history", actor=email).stdout
    # A user of acme asking for acme's bell never gets other's, even naming the organisation.
    refused = glaneur("notifications", "list", "--org", "other", actor=COLLECTION)
    assert refused.exit_code == 2 and "OTHER-INV-9" not in refused.output
    # Statements are listed per firm (ORG is required); acme is no firm and cannot list cabinet's through itself.
    not_firm = glaneur("statements", "list", "acme")
    assert not_firm.exit_code == 2 and "not an accounting firm" in " ".join(not_firm.stderr.split())


def test_one_firm_never_sees_anothers_statements(world):
    """Two firms, each with a routed statement and a rejected file: `statements list` shows each its own only."""
    from sqlmodel import Session, select

    from glaneur.db import get_engine
    from glaneur.models import Organization, Statement, StatementFile, StatementFileState

    ok("org", "create", "cabinet-b", "Cabinet Bernard", "--firm")
    accounts = {"cabinet": "FR7630004000000001234567845", "cabinet-b": "BE68539007547034"}
    with Session(get_engine()) as session:
        for slug, account in accounts.items():
            org = session.exec(select(Organization).where(Organization.slug == slug)).one()
            parsed = StatementFile(organization_id=org.id, source_name=f"{slug}-statement.xml", format="camt053",
                                   sha256=f"{slug}-p", size=10, storage_key=f"{slug}/files/p.xml",
                                   state=StatementFileState.PARSED, statement_count=1)
            rejected = StatementFile(organization_id=org.id, source_name=f"{slug}-broken.xml", sha256=f"{slug}-r",
                                     size=3, storage_key=f"{slug}/files/r.xml", state=StatementFileState.REJECTED,
                                     error_reason="unreadable", error_message=f"{slug} file unreadable")
            session.add(parsed)
            session.add(rejected)
            session.flush()
            session.add(Statement(organization_id=org.id, file_id=parsed.id, account=account, iban=account,
                                  currency="EUR", statement_ref=f"{slug}-ref", format="camt053",
                                  opening_balance="1.00", closing_balance=f"{len(slug)}77.00", entries=1,
                                  sha256=f"{slug}-s", fingerprint=f"{slug}-f", storage_key=f"{slug}/s.xml"))
        session.commit()
    for slug, account in accounts.items():
        other_slug, other_account = next((s, a) for s, a in accounts.items() if s != slug)
        listed = ok("statements", "list", slug).stdout
        assert account in listed and f"{slug}-broken.xml" in listed, listed
        assert other_account not in listed and f"{other_slug}-broken.xml" not in listed, listed
