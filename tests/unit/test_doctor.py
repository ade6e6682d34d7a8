"""``glaneur doctor`` and the first collection's choice of path, against the database and a stand-in Prefect API.

The sandbox scenarios end to end (real portals, real Prefect) are in tests/e2e/test_lifecycle_e2e.py;
here each check's verdict and fix is pinned on states built directly in the database.
"""

from __future__ import annotations

import json
import sys
import threading
import types
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from zoneinfo import ZoneInfo

import pytest
from cryptography.fernet import Fernet
from sqlmodel import Session, select
from typer.testing import CliRunner

from cli.main import app
from glaneur import admin, doctor
from glaneur.doctor import Verdict
from glaneur.models import (
    Account,
    Channel,
    CollectionRun,
    Invitation,
    InvitationState,
    User,
)
from glaneur.settings import get_settings, reset_settings
from glaneur.statuses import Status, describe
from tasks.deployments import lookup_deployment
from tests import factories

PASSWORD = "Zq7-unique-Pa55word"
SLUG = "acme-papeterie"
runner = CliRunner()


# -- a stand-in Prefect API ----------------------------------------------------------------------------------


class FakePrefect(BaseHTTPRequestHandler):
    """Answers the two calls doctor and activation make through Prefect's client: a deployment by name, a pool's workers."""

    deployments: ClassVar[dict[str, dict]] = {}
    workers: ClassVar[dict[str, list[dict]]] = {}

    def do_GET(self):
        prefix = "/api/deployments/name/"
        name = self.path.removeprefix(prefix)
        if self.path.startswith(prefix) and name in self.deployments:  # the fields Prefect's client requires
            return self._answer(200, {"flow_id": str(uuid.uuid4()), **self.deployments[name]})
        return self._answer(404, {"detail": "Deployment not found"})

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        pool = self.path.removeprefix("/api/work_pools/").removesuffix("/workers/filter")
        workers = [{"name": f"worker-{i}", "work_pool_id": str(uuid.uuid4()), **w} for i, w in enumerate(self.workers.get(pool, []))]
        return self._answer(200, workers)

    def _answer(self, code: int, body) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):  # quiet
        pass


@contextmanager
def prefect_api(url: str | None):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if url is None:
        with temporary_settings(restore_defaults={PREFECT_API_URL}):
            yield
    else:
        with temporary_settings(updates={PREFECT_API_URL: url}):
            yield


@pytest.fixture
def fake_prefect():
    FakePrefect.deployments, FakePrefect.workers = {}, {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakePrefect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    with prefect_api(f"http://127.0.0.1:{server.server_address[1]}/api"):
        yield FakePrefect
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def no_prefect_server():
    """Unless a test says otherwise, no Prefect server is configured."""
    with prefect_api(None):
        yield


def dispatch_deployment(**overrides) -> dict:
    deployment = {
        "name": "dispatch-daily",
        "paused": False,
        "work_pool_name": "glaneur",
        "schedules": [{"active": True, "schedule": {"cron": "5 0 * * *", "timezone": "Europe/Paris"}}],
    }
    deployment.update(overrides)
    return deployment


# -- the world -------------------------------------------------------------------------------------------------


@pytest.fixture
def home(monkeypatch, request):
    for name in ("GLANEUR_DATABASE_URL", "GLANEUR_VAULT_KEY", "GLANEUR_VAULT_KEY_FILE", "GLANEUR_ACTING_USER"):
        monkeypatch.delenv(name, raising=False)
    return request.getfixturevalue("glaneur_home")


def session() -> Session:
    from glaneur.db import get_engine

    return Session(get_engine(), expire_on_commit=False)


@pytest.fixture
def world(home):
    """acme, with alice allowed to configure collection and a papeterie-dupont channel, one account."""
    with session() as s:
        alice = factories.organization(s, "acme", "Acme SA", owner="alice@acme.fr", owner_name="Alice",
                                       holders=["holder@acme.fr"])  # fmt: skip
        factories.channel(s, alice, SLUG, accounts=[("acme", PASSWORD)], time_slot="06:00")
        s.commit()
    return home


def diagnose(slug: str = SLUG, **options) -> dict[str, doctor.Check]:
    with session() as s:
        checks = doctor.diagnose(s, slug, deployments=lookup_deployment, **options)
        s.rollback()
    names = [check.name for check in checks]
    assert len(names) == len(set(names)), names
    return {check.name: check for check in checks}


def record_run(status: Status, *, message: str = "", evidence: str = "", when: datetime | None = None, login="acme"):
    with session() as s:
        channel = s.exec(select(Channel).where(Channel.slug == SLUG)).one()
        account = s.exec(select(Account).where(Account.login == login)).first()
        s.add(CollectionRun(channel_id=channel.id, account_id=account.id if account else None, status=status,
                            message=message, evidence_keys=evidence, started_at=when or datetime.now(UTC),
                            flow_run_id="0d5e-run"))  # fmt: skip
        channel.status, channel.status_message = status, message
        s.add(channel)
        s.commit()


def invite(state: InvitationState, *, email: str = "holder@acme.fr", expires_in=timedelta(days=3), error: str = "", sent=1):
    with session() as s:
        channel = s.exec(select(Channel).where(Channel.slug == SLUG)).one()
        holder = s.exec(select(User).where(User.email == "holder@acme.fr")).one()
        now = datetime.now(UTC)
        s.add(Invitation(channel_id=channel.id, invitee_user_id=holder.id, email=email, state=state,
                         expires_at=now + expires_in, sent_count=sent, last_sent_at=now if sent else None,
                         delivery_error=error, answered_at=now if state == InvitationState.ANSWERED else None))  # fmt: skip
        s.commit()


# -- the checks ------------------------------------------------------------------------------------------------


def test_a_healthy_channel(world):
    record_run(Status.OK)
    checks = diagnose()
    assert list(checks) == ["status", "provider", "accounts", "credentials acme", "last run acme", "invitation", "next run"]
    assert {name: c.verdict for name, c in checks.items() if name != "next run"} == dict.fromkeys(
        ["status", "provider", "accounts", "credentials acme", "last run acme", "invitation"], Verdict.OK
    )
    assert "Papeterie Dupont (papeterie-dupont): compatible" in checks["provider"].detail
    assert checks["accounts"].detail == "1 of 2: acme"
    assert "password stored and decryptable with the current vault key" in checks["credentials acme"].detail
    assert all(PASSWORD not in f"{c.detail} {c.fix}" for c in checks.values())
    # No server configured: the next run is computed, the dispatch unknown: a warning, not a crash.
    assert checks["next run"].verdict == Verdict.WARN
    assert "time slot 06:00" in checks["next run"].detail and "PREFECT_API_URL" in checks["next run"].detail


def test_no_account_and_no_invitation(world):
    with session() as s:
        channel = admin.get_channel(s, SLUG)
        alice = admin.get_user(s, "acme", "alice@acme.fr")
        admin.delete_channel(s, channel, actor=alice)  # free the slug's accounts... then a fresh channel:
        admin.add_channel(s, "acme", label="Vide", provider="papeterie-dupont", binder="factures",
                          recipient="alice@acme.fr", slug="acme-vide", actor=alice)  # fmt: skip
        s.commit()
    checks = diagnose("acme-vide")
    assert checks["accounts"].verdict == Verdict.FAIL
    assert "glaneur channel account-add acme-vide --login LOGIN" in checks["accounts"].fix
    assert not any(name.startswith("credentials") for name in checks)
    assert checks["last run"].verdict == Verdict.WARN and checks["last run"].detail == "never collected"


def test_a_missing_password(world):
    with session() as s:
        account = s.exec(select(Account)).one()
        account.secret_ref = None
        s.add(account)
        s.commit()
    check = diagnose()["credentials acme"]
    assert check.verdict == Verdict.FAIL and check.detail == "no password stored"
    assert f"glaneur channel update-credentials {SLUG} --login acme" in check.fix


def test_credentials_the_current_vault_key_cannot_read(world, monkeypatch):
    monkeypatch.setenv("GLANEUR_VAULT_KEY", Fernet.generate_key().decode())
    reset_settings()
    check = diagnose()["credentials acme"]
    assert check.verdict == Verdict.FAIL
    assert "cannot be decrypted with the current vault key" in check.detail
    assert "Restore the key that encrypted them" in check.fix


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (Status.WRONG_CREDENTIALS, Verdict.FAIL),
        (Status.CREDENTIALS_EXPIRED, Verdict.FAIL),
        (Status.ACTION_NEEDED, Verdict.FAIL),
        (Status.ACCOUNT_LOCKED, Verdict.FAIL),
        (Status.PORTAL_CHANGED, Verdict.FAIL),
        (Status.PORTAL_UNAVAILABLE, Verdict.WARN),
        (Status.AWAITING_SECOND_FACTOR, Verdict.WARN),
    ],
)
def test_the_last_run_names_the_cause_and_the_fix(world, status, verdict):
    record_run(Status.OK, when=datetime.now(UTC) - timedelta(days=2))
    record_run(status, when=datetime.now(UTC) - timedelta(days=1), message="The portal said no.")
    record_run(status, message="The portal said no.", evidence="acme/_evidence/shot.png,acme/_evidence/trace.zip")
    checks = diagnose()
    check = checks["last run acme"]
    assert check.verdict == verdict
    assert f"UTC: {status.value} (2 runs in a row). The portal said no." in check.detail
    assert "Screenshot and trace kept: acme/_evidence/shot.png, acme/_evidence/trace.zip." in check.detail
    assert "Last success: never." in check.detail and "Flow run 0d5e-run." in check.detail
    assert check.fix == describe(status).message
    assert checks["status"].verdict == verdict and checks["status"].fix == describe(status).message


def test_an_incompatible_or_unknown_provider(world):
    with session() as s:
        channel = s.exec(select(Channel)).one()
        channel.provider = "telecom-ouest"
        s.add(channel)
        s.commit()
    check = diagnose()["provider"]
    assert check.verdict == Verdict.FAIL and "code sent by post" in check.detail
    assert "Demander l'ajout d'un collecteur" in check.fix
    with session() as s:
        channel = s.exec(select(Channel)).one()
        channel.provider = "gone-supplier"
        s.add(channel)
        s.commit()
    check = diagnose()["provider"]
    assert check.verdict == Verdict.FAIL and "no longer in the catalogue" in check.detail


def test_a_pending_invitation_shows_its_address(world):
    invite(InvitationState.PENDING)
    check = diagnose()["invitation"]
    assert check.verdict == Verdict.WARN
    assert "pending, sent 1 time(s) to holder@acme.fr" in check.detail and "expires on" in check.detail
    assert "consultez le dossier spam" in check.fix


def test_an_invitation_sent_to_an_address_the_profile_no_longer_has(world):
    invite(InvitationState.PENDING, email="old@acme.fr")
    check = diagnose()["invitation"]
    assert "their profile now says holder@acme.fr" in check.detail and "send the invitation again (glaneur channel resend-invitation acme-papeterie)" in check.fix


@pytest.mark.parametrize(
    ("state", "options", "words"),
    [
        (InvitationState.UNDELIVERABLE, {"error": "550 mailbox unknown"}, "could not be delivered: 550 mailbox unknown"),
        (InvitationState.PENDING, {"expires_in": timedelta(hours=-1)}, "expired on"),
        (InvitationState.EXPIRED, {"expires_in": timedelta(days=-2)}, "expired on"),
        (InvitationState.PENDING, {"email": "holder@acme"}, "'holder@acme' is not an e-mail address"),
    ],
)
def test_invitations_that_cannot_be_answered(world, state, options, words):
    invite(state, **options)
    check = diagnose()["invitation"]
    assert check.verdict == Verdict.FAIL and words in check.detail, check


def test_a_waiting_invitation_needs_glaneur_serve_where_its_link_points(world):
    """The holder's link opens the form at glaneur serve (GLANEUR_EVIDENCE_URL): doctor asks it, through the
    probe the CLI gives (an HTTP GET of /healthz)."""
    invite(InvitationState.PENDING)
    asked = []

    def down(base):
        asked.append(base)
        return "ConnectError"

    check = diagnose(serve_answers=down)["holder's form"]
    assert asked == ["http://127.0.0.1:8707"]
    assert check.verdict == Verdict.FAIL and "glaneur serve does not answer (ConnectError)" in check.detail
    assert "GLANEUR_EVIDENCE_URL" in check.fix and "send the invitation again" in check.fix
    assert diagnose(serve_answers=lambda base: None)["holder's form"].verdict == Verdict.OK
    assert "holder's form" not in diagnose()  # no probe given: not checked


@pytest.mark.parametrize("state", [InvitationState.ANSWERED, InvitationState.EXPIRED])
def test_no_form_to_reach_once_the_invitation_is_closed(world, state):
    invite(state, expires_in=timedelta(days=-2) if state == InvitationState.EXPIRED else timedelta(days=3))
    assert "holder's form" not in diagnose(serve_answers=lambda base: "ConnectError")


def test_an_answered_invitation(world):
    invite(InvitationState.ANSWERED)
    check = diagnose()["invitation"]
    assert check.verdict == Verdict.OK and "answered on" in check.detail


def test_a_deleted_channel_says_so(world):
    with session() as s:
        admin.delete_channel(s, SLUG, actor=admin.get_user(s, "acme", "alice@acme.fr"))
        s.commit()
    checks = diagnose()
    assert list(checks) == ["channel"]
    assert checks["channel"].verdict == Verdict.FAIL
    assert "was deleted on" in checks["channel"].detail and "Create a new channel" in checks["channel"].fix


def test_unknown_channel(world):
    with session() as s, pytest.raises(Exception, match="unknown channel 'nope'; channels: acme-papeterie"):
        doctor.diagnose(s, "nope")


def test_next_slot():
    paris = ZoneInfo("Europe/Paris")
    before = datetime(2026, 3, 10, 5, 0, tzinfo=paris)
    assert doctor.next_slot("06:00", "Europe/Paris", before) == datetime(2026, 3, 10, 6, 0, tzinfo=paris)
    after = datetime(2026, 3, 10, 6, 0, tzinfo=paris)
    assert doctor.next_slot("06:00", "Europe/Paris", after) == datetime(2026, 3, 11, 6, 0, tzinfo=paris)
    utc_evening = datetime(2026, 3, 10, 23, 30, tzinfo=UTC)  # already the 11th in Paris
    assert doctor.next_slot("06:00", "Europe/Paris", utc_evening) == datetime(2026, 3, 11, 6, 0, tzinfo=paris)
    across_dst = datetime(2026, 3, 28, 7, 0, tzinfo=paris)  # clocks go forward that night
    upcoming = doctor.next_slot("06:00", "Europe/Paris", across_dst)
    assert (upcoming.day, upcoming.hour, upcoming.utcoffset()) == (29, 6, timedelta(hours=2))


# -- the Prefect server -------------------------------------------------------------------------------------------


def test_an_unreachable_server_is_a_warning(world):
    with prefect_api("http://127.0.0.1:9/api"):
        check = diagnose()["next run"]
    assert check.verdict == Verdict.WARN and "the Prefect server at http://127.0.0.1:9/api did not answer" in check.detail


def test_the_daily_dispatch_deployed_and_scheduled(world, fake_prefect):
    fake_prefect.deployments["dispatch-daily/dispatch-daily"] = dispatch_deployment()
    fake_prefect.workers["glaneur"] = [{"status": "ONLINE"}]
    check = diagnose()["next run"]
    assert check.verdict == Verdict.OK, check
    assert "scheduled by dispatch-daily/dispatch-daily (5 0 * * * Europe/Paris)" in check.detail


@pytest.mark.parametrize(
    ("deployment", "workers", "verdict", "words"),
    [
        (None, [], Verdict.FAIL, "has no dispatch-daily/dispatch-daily deployment"),
        (dispatch_deployment(paused=True), [], Verdict.FAIL, "deployment is paused"),
        (dispatch_deployment(schedules=[]), [], Verdict.FAIL, "has no active schedule"),
        (dispatch_deployment(), [{"status": "OFFLINE"}], Verdict.WARN, "no worker is online in work pool 'glaneur'"),
    ],
)
def test_the_daily_dispatch_problems(world, fake_prefect, deployment, workers, verdict, words):
    if deployment is not None:
        fake_prefect.deployments["dispatch-daily/dispatch-daily"] = deployment
    fake_prefect.workers["glaneur"] = workers
    check = diagnose()["next run"]
    assert check.verdict == verdict and words in check.detail, check


# -- through the CLI --------------------------------------------------------------------------------------------


def test_doctor_command(world):
    record_run(Status.WRONG_CREDENTIALS, message="Identifiants refusés par le portail.")
    result = runner.invoke(app, ["doctor", SLUG], env={"COLUMNS": "250"})
    assert result.exit_code == 1, result.output
    out = " ".join(result.stdout.split())
    for expected in ("Diagnosis of acme-papeterie", "last run acme", "wrong_credentials", "fail",
                     "Identifiants refusés par le portail.", "Update the credentials", "2 check(s) failed: status, last run acme"):  # fmt: skip
        assert expected in out, out
    assert PASSWORD not in result.output


def test_doctor_command_without_failures_exits_0(world):
    record_run(Status.OK)
    result = runner.invoke(app, ["doctor", SLUG], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "No check failed." in result.stdout


def test_doctor_command_leaves_the_database_as_it_was(world):
    from glaneur.models import VaultEntry

    with session() as s:  # no canary yet: the vault's first use would write one
        for entry in s.exec(select(VaultEntry).where(VaultEntry.purpose == "canary")).all():
            s.delete(entry)
        s.commit()
    runner.invoke(app, ["doctor", SLUG])
    with session() as s:
        assert s.exec(select(VaultEntry).where(VaultEntry.purpose == "canary")).all() == []


def test_doctor_command_bad_input(world):
    result = runner.invoke(app, ["doctor", "nope"])
    assert result.exit_code == 2 and result.stderr.startswith("Error: unknown channel 'nope'")


# -- the first collection: which path -------------------------------------------------------------------------


@pytest.fixture
def collect_calls(monkeypatch):
    """flows.collect_channel replaced: run_channel records the slug and returns a summary."""
    module = types.ModuleType("flows.collect_channel")
    calls: list[str] = []

    def run_channel(channel: str) -> dict:
        calls.append(channel)
        return {"channel": channel, "status": "ok", "new": 3, "already_had": 0, "message": "Collection works."}

    module.run_channel = run_channel
    monkeypatch.setitem(sys.modules, "flows.collect_channel", module)
    return calls


@pytest.fixture
def deployment_calls(monkeypatch):
    import prefect.deployments

    calls: list[dict] = []

    def run_deployment(name, **options):
        calls.append({"name": name, **options})
        return types.SimpleNamespace(id="6f1e-run", name="crimson-fox")

    monkeypatch.setattr(prefect.deployments, "run_deployment", run_deployment)
    return calls


def test_without_a_server_the_first_collection_runs_here(home, collect_calls, deployment_calls):
    from flows.activation import start_first_collection

    line = start_first_collection(SLUG)
    assert collect_calls == [SLUG] and deployment_calls == []
    assert line.startswith(f"First collection of {SLUG} ran in this process (no Prefect server is configured")
    assert "ok, 3 new, 0 already had. Collection works." in line


def test_without_the_deployment_the_first_collection_runs_here(home, fake_prefect, collect_calls, deployment_calls):
    from flows.activation import start_first_collection

    line = start_first_collection(SLUG)
    assert collect_calls == [SLUG] and deployment_calls == []
    assert "has no collect-channel/collect-channel deployment" in line


def test_with_the_deployment_a_worker_runs_it(home, fake_prefect, collect_calls, deployment_calls, monkeypatch):
    from flows.activation import start_first_collection

    fake_prefect.deployments["collect-channel/collect-channel"] = {"name": "collect-channel", "work_pool_name": "glaneur"}
    fake_prefect.workers["glaneur"] = [{"status": "ONLINE"}]
    monkeypatch.setenv("GLANEUR_PREFECT_UI_URL", "http://prefect.example")
    reset_settings()
    line = start_first_collection(SLUG)
    assert collect_calls == []
    assert deployment_calls == [{
        "name": "collect-channel/collect-channel", "parameters": {"channel": SLUG}, "timeout": 0,
        "as_subflow": False, "tags": ["first-collection"],
    }]  # fmt: skip
    assert "started as flow run crimson-fox (6f1e-run) on deployment collect-channel/collect-channel" in line
    assert "http://prefect.example/v2/runs/flow-run/6f1e-run" in line and "Warning" not in line

    fake_prefect.workers["glaneur"] = []
    assert "no worker is online in work pool 'glaneur' yet" in start_first_collection(SLUG)


def test_a_failing_path_falls_back_or_reports(home, fake_prefect, monkeypatch):
    import prefect.deployments

    from flows.activation import start_first_collection

    fake_prefect.deployments["collect-channel/collect-channel"] = {"name": "collect-channel"}

    def refuse(*args, **kwargs):
        raise RuntimeError("server said 500")

    def crash(channel):
        raise RuntimeError("browser vanished")

    monkeypatch.setattr(prefect.deployments, "run_deployment", refuse)
    module = types.ModuleType("flows.collect_channel")
    module.run_channel = crash
    monkeypatch.setitem(sys.modules, "flows.collect_channel", module)
    line = start_first_collection(SLUG)
    assert "creating the flow run on the Prefect server" in line and "server said 500" in line
    assert "and failed: RuntimeError: browser vanished" in line and "tries again at the channel's time slot" in line
    assert get_settings().home == home


def test_a_bank_channel_gets_the_powens_checklist(world):
    # Bank channels have their own checks (glaneur/bank/doctor.py); one without a POWENS connection says so.
    with session() as s:
        channel = s.exec(select(Channel)).one()
        channel.kind = "bank"
        s.add(channel)
        s.commit()
    check = diagnose()["connection"]
    assert check.verdict == Verdict.FAIL and "has no POWENS connection" in check.detail
