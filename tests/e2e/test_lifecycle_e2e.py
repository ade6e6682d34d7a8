"""The collector lifecycle end to end: the CLI, a real Prefect server, real Chromium, the sandbox portals.

A collector set up with a wrong password fails its first collection (started at once, in this
process, since the test server has no worker); updated credentials make the next run collect;
``doctor`` names the cause of every failure the sandbox portals stage; a deployed
``collect-channel`` takes the first collection instead; deletion purges the vault.
"""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from glaneur.models import Account, Channel, CollectionRun, Document, VaultEntry
from glaneur.statuses import Status, describe
from glaneur.vault import Vault
from tests.commands import glaneur, ok
from tests.e2e.conftest import prefect_call

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

ALICE = "alice@org.example"
SLUG = "org-papeterie"


def flat(text: str) -> str:
    return " ".join(text.split())


def session() -> Session:
    from glaneur.db import get_engine

    return Session(get_engine(), expire_on_commit=False)


@pytest.fixture
def org(glaneur_home, portals, monkeypatch):
    for name in ("GLANEUR_ACTING_USER", "GLANEUR_SMTP_HOST"):
        monkeypatch.delenv(name, raising=False)
    ok("org", "create", "org", "Org")
    ok("user", "create", "org", ALICE, "Alice", "--right", "configure_collection")
    ok("--as", ALICE, "binder", "create", "org", "factures", "Factures")
    return glaneur_home


def add_channel(login: str, password: str, *extra: str):
    return ok(
        "--as", ALICE, "channel", "add", "org", "--label", "Papeterie", "--provider", "papeterie-dupont",
        "--binder", "factures", "--recipient", ALICE, "--login", login, "--password-stdin", *extra,
        input=f"{password}\n",
    )  # fmt: skip


def channel() -> Channel:
    with session() as s:
        return s.exec(select(Channel).where(Channel.slug == SLUG)).one()


def runs() -> list[CollectionRun]:
    with session() as s:
        return list(s.exec(select(CollectionRun).order_by(CollectionRun.id)).all())


def documents() -> int:
    with session() as s:
        return len(s.exec(select(Document)).all())


def test_a_refused_password_is_not_tried_again_until_a_person_acts(org):
    """The sandbox portal locks an account after 3 wrong passwords in a row, as real portals do. Days of
    runs after a refusal must not lock it: each one records the refusal again without logging in."""
    from sandbox.data import MAX_FAILED_LOGINS

    flat(add_channel("acme", "not-the-password").stdout)
    assert channel().status == Status.WRONG_CREDENTIALS
    for _ in range(MAX_FAILED_LOGINS):  # the next days' runs
        out = flat(glaneur("--as", ALICE, "run", SLUG).stdout)
        assert "org-papeterie: wrong_credentials" in out
    with session() as s:
        history = list(s.exec(select(CollectionRun).order_by(CollectionRun.id)).all())
    assert [r.status for r in history] == [Status.WRONG_CREDENTIALS] * (1 + MAX_FAILED_LOGINS)
    assert all(r.message.startswith("Not tried: the portal refused this password on ") for r in history[1:])
    assert f"glaneur channel update-credentials {SLUG} --login acme" in history[-1].message
    assert "Not tried" not in history[0].message  # the first refusal is the portal's own

    # The right password then logs in at once: the supplier never locked the account.
    out = flat(ok("--as", ALICE, "channel", "update-credentials", SLUG, "--login", "acme", "--password-stdin",
                  input="papier-acme\n").stdout)  # fmt: skip
    assert ": ok, 23 new, 0 already had" in out and channel().status == Status.OK


def test_updated_credentials_make_the_next_run_succeed(org):
    out = flat(add_channel("acme", "not-the-password").stdout)
    # The first collection ran at once, as its own flow run, in this process (no worker here).
    assert "First collection of org-papeterie ran in this process" in out
    assert "has no collect-channel/collect-channel deployment" in out and "wrong_credentials" in out
    assert channel().status == Status.WRONG_CREDENTIALS
    assert [r.status for r in runs()] == [Status.WRONG_CREDENTIALS] and runs()[0].flow_run_id
    assert documents() == 0

    result = glaneur("doctor", SLUG)
    assert result.exit_code == 1
    assert "wrong_credentials" in result.stdout and "not-the-password" not in result.output

    out = flat(ok("--as", ALICE, "channel", "update-credentials", SLUG, "--login", "acme", "--password-stdin",
                  input="papier-acme\n").stdout)  # fmt: skip
    assert "Updated the credentials of acme" in out
    assert "ran in this process" in out and ": ok, 23 new, 0 already had" in out
    assert channel().status == Status.OK and documents() == 23
    with session() as s:
        account = s.exec(select(Account)).one()
        assert account.status == Status.OK and Vault(s).get(account.secret_ref) == "papier-acme"

    # And the run after that (tomorrow's) collects incrementally.
    out = flat(ok("--as", ALICE, "run", SLUG).stdout)
    assert "org-papeterie: ok, 0 new" in out
    assert [r.status for r in runs()] == [Status.WRONG_CREDENTIALS, Status.OK, Status.OK]

    # Deleting it purges the vault and keeps what was collected.
    ok("--as", ALICE, "channel", "delete", SLUG, "--yes")
    with session() as s:
        assert s.exec(select(VaultEntry).where(VaultEntry.purpose != "canary")).all() == []
    assert documents() == 23 and len(runs()) == 3
    result = glaneur("--as", ALICE, "run", SLUG)
    assert result.exit_code == 2 and "was deleted" in result.stderr


@pytest.mark.parametrize(
    ("login", "password", "status", "words"),
    [
        ("acme", "not-the-password", Status.WRONG_CREDENTIALS, "identifiants refusés"),
        ("perime", None, Status.CREDENTIALS_EXPIRED, "identifiants expirés"),
        ("cgv", None, Status.ACTION_NEEDED, "accept new terms"),
        ("nouveau-site", None, Status.PORTAL_CHANGED, "interface fournisseur modifiée"),
    ],
)
def test_doctor_names_the_cause_of_each_sandbox_failure(org, login, password, status, words):
    from glaneur import doctor
    from tasks.deployments import lookup_deployment

    secret = password or f"papier-{login}"
    add_channel(login, secret)
    assert channel().status == status

    with session() as s:
        checks = {check.name: check for check in doctor.diagnose(s, SLUG, deployments=lookup_deployment)}
        s.rollback()
    cause = checks[f"last run {login}"]
    assert cause.verdict == "fail" and f"UTC: {status.value}" in cause.detail
    assert cause.fix == describe(status).message and words in cause.fix
    assert checks[f"credentials {login}"].verdict == "ok"  # the credentials are there: the portal is the cause
    assert checks["provider"].verdict == "ok" and checks["accounts"].verdict == "ok"
    if status == Status.PORTAL_CHANGED:
        assert "Screenshot and trace kept:" in cause.detail
    # The test server has no dispatch-daily deployment: said so, as a failure with its fix.
    assert checks["next run"].verdict == "fail" and "make deploy" in checks["next run"].fix

    result = glaneur("doctor", SLUG)
    assert result.exit_code == 1, result.output
    out = flat(result.stdout)
    assert f"last run {login}" in out and status.value in out
    assert f"check(s) failed: status, last run {login}, next run." in out
    assert secret not in result.output


def test_a_deployed_collection_takes_the_first_run_and_the_dispatch_is_checked(org, deployments):
    add_channel("acme", "papier-acme", "--no-collect")
    assert runs() == []
    collect = deployments("collect-channel")
    deployments("dispatch-daily", cron="5 0 * * *")

    out = flat(ok("--as", ALICE, "channel", "update-credentials", SLUG, "--login", "acme", "--password-stdin",
                  input="papier-acme\n").stdout)  # fmt: skip

    assert "started as flow run" in out and "on deployment collect-channel/collect-channel" in out
    flow_run_id = out.split("(")[1].split(")")[0]

    async def read(client):
        return await client.read_flow_run(flow_run_id)

    flow_run = prefect_call(read)
    assert flow_run.deployment_id == collect and flow_run.parameters == {"channel": SLUG}
    assert "first-collection" in flow_run.tags and flow_run.state.is_scheduled()
    assert runs() == []  # a worker runs it, not this process

    from glaneur import doctor
    from tasks.deployments import lookup_deployment

    with session() as s:
        next_run = {check.name: check for check in doctor.diagnose(s, SLUG, deployments=lookup_deployment)}["next run"]
        s.rollback()
    assert next_run.verdict == "ok", next_run
    assert "scheduled by dispatch-daily/dispatch-daily (5 0 * * * Europe/Paris)" in next_run.detail
    assert ok("doctor", SLUG).stdout.rstrip().endswith("No check failed.")  # the run is ok, new: a warning at most


# -- an account removed while a run of its collector is under way ---------------------------------------------


def remove_during_listing(monkeypatch, gone: str | None, *, then_fail: bool = False) -> None:
    """While the run lists its first account's invoices, a person removes account ``gone`` (None: deletes the
    collector) in their own transaction, as the CLI does; the listing goes on, or the portal then fails."""
    from connectors.papeterie_dupont import PapeterieDupont
    from glaneur import admin
    from glaneur.errors import PortalChanged

    listed = PapeterieDupont.list_documents
    removed = []

    def list_documents(self, since, start=None):
        if not removed:
            with session() as s:
                alice = admin.get_user(s, "org", ALICE)
                if gone is None:
                    admin.delete_channel(s, SLUG, actor=alice)
                else:
                    admin.remove_account(s, SLUG, gone, actor=alice)
                s.commit()
            removed.append(gone)
            if then_fail:
                raise PortalChanged("Papeterie Dupont: the invoice list has a new layout.")
        return listed(self, since, start)

    monkeypatch.setattr(PapeterieDupont, "list_documents", list_documents)


def channel_mails() -> int:
    from glaneur.models import Notification

    with session() as s:
        return len(s.exec(select(Notification).where(Notification.kind == "channel_status")).all())


def this_run(before: int) -> list[tuple[str, Status]]:
    with session() as s:
        rows = s.exec(select(CollectionRun, Account.login).join(Account).where(CollectionRun.id > before)).all()
        return [(login, run.status) for run, login in rows]


def two_accounts() -> int:
    add_channel("acme", "papier-acme")
    ok("--as", ALICE, "channel", "account-add", SLUG, "--login", "acme-bis", "--password-stdin", input="papier-acme-bis\n")
    assert channel().status == Status.OK
    return runs()[-1].id


def test_an_account_removed_before_its_turn_is_not_collected_and_raises_no_alarm(org, monkeypatch):
    last = two_accounts()
    mails = channel_mails()
    remove_during_listing(monkeypatch, "acme-bis")

    out = flat(ok("--as", ALICE, "run", SLUG).stdout)

    assert "org-papeterie: ok" in out
    assert this_run(last) == [("acme", Status.OK)]  # no row, and no "awaiting credentials", for the one removed
    assert channel().status == Status.OK and channel_mails() == mails
    with session() as s:
        bis = s.exec(select(Account).where(Account.login == "acme-bis")).one()
        assert bis.removed_at is not None and bis.secret_ref is None
        assert len(s.exec(select(Document).where(Document.account_id == bis.id)).all()) == 5  # its documents stay


def test_the_outcome_of_an_account_removed_during_its_own_collection_no_longer_sets_the_status(org, monkeypatch):
    last = two_accounts()
    mails = channel_mails()
    remove_during_listing(monkeypatch, "acme", then_fail=True)

    result = glaneur("--as", ALICE, "run", SLUG)

    # The run's history tells what happened to each account, the removed one too ...
    assert this_run(last) == [("acme", Status.PORTAL_CHANGED), ("acme-bis", Status.OK)]
    assert "portal_changed" in flat(result.stdout)
    # ... but the collector's status, and whom it alarms, come from the accounts it still has.
    assert channel().status == Status.OK and channel_mails() == mails


def test_a_collector_whose_only_account_was_removed_during_the_run_waits_for_credentials(org, monkeypatch):
    add_channel("acme", "papier-acme")
    last = runs()[-1].id
    remove_during_listing(monkeypatch, "acme")

    ok("--as", ALICE, "run", SLUG)

    assert this_run(last) == [("acme", Status.OK)]  # it was logged in already: it finished its collection
    assert channel().status == Status.AWAITING_CREDENTIALS  # what the removal said; the run does not undo it


def test_a_collector_deleted_during_its_run_keeps_nothing_secret_and_its_status(org, monkeypatch):
    last = two_accounts()
    mails = channel_mails()
    remove_during_listing(monkeypatch, None)

    glaneur("--as", ALICE, "run", SLUG)

    assert this_run(last) == [("acme", Status.OK)]  # logged in already: finished; the second account not started
    deleted = channel()
    assert not deleted.active and deleted.status == Status.OK and channel_mails() == mails
    with session() as s:
        assert s.exec(select(VaultEntry).where(VaultEntry.purpose != "canary")).all() == []
    assert documents() == 28  # what it collected stays
