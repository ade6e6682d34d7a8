"""Invitation end to end: a deployment, a real `process` worker, a suspended run, resumed with the account holder's input.

The run suspends (its process exits), the invitee gets a mail and an in-app notification with the
link, the input resumes it, the worker starts it again from the top, the secrets go to the vault,
Prefect's copy of the input is deleted, and the first collection files the invoices.
"""

from __future__ import annotations

import email
import os
import subprocess
import sys
import time
from contextlib import contextmanager

import pytest
from sqlmodel import select

from glaneur import admin
from glaneur.db import session_scope
from glaneur.models import Account, Document, Invitation, InvitationState, Notification, VaultEntry
from glaneur.settings import PROJECT_ROOT
from glaneur.vault import Vault
from tests import factories
from tests.e2e.conftest import assert_no_secret_in_inputs, run_inputs

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

POOL = "glaneur-e2e"
PASSWORD = "papier-acme"


def _api_url() -> str:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()


def _deploy(entrypoint: str, name: str) -> None:
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=POOL, type="process"))
        except ObjectAlreadyExists:
            pass
    flow.from_source(source=str(PROJECT_ROOT), entrypoint=entrypoint).deploy(
        name=name, work_pool_name=POOL, build=False, push=False, print_next_steps=False
    )


@contextmanager
def worker(home, output=None, **settings: str):
    """A process worker on the pool; ``output``, a file path, keeps what it and its flow runs print."""
    environment = {
        **os.environ,
        "PREFECT_API_URL": _api_url(),
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "GLANEUR_HOME": str(home),
        **settings,
    }
    sink = open(output, "ab") if output else subprocess.DEVNULL  # noqa: SIM115  closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, "--type", "process"],
        env=environment, stdout=sink, stderr=subprocess.STDOUT if output else subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
        if output:
            sink.close()


def _flow_run(flow_run_id):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:  # sync: the browser tests run an event loop in this thread
        return client.read_flow_run(flow_run_id)


def _wait(flow_run_id, done, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = _flow_run(flow_run_id)
        if done(run.state):
            return run
        time.sleep(1)
    raise AssertionError(f"flow run {flow_run_id} still {run.state.name} after {timeout} s")


@contextmanager
def glaneur_serve(monkeypatch):
    """``glaneur serve`` (the callback app, on uvicorn) where the holder's credentials link points."""
    from glaneur.settings import reset_settings
    from tests.e2e.test_prefect_ui_browser import _free_port, evidence_service

    with evidence_service(_free_port()) as base:
        monkeypatch.setenv("GLANEUR_EVIDENCE_URL", base)
        reset_settings()
        yield base


def test_an_invitation_is_answered_in_the_holders_own_form_and_the_first_collection_runs(
    glaneur_home, portals, monkeypatch
):
    """The holder never opens the Prefect UI: the mail's link opens Glaneur's own form (``glaneur serve``), signed
    for this invitation; what it refuses is said there and never reaches Prefect; what it accepts resumes the
    suspended run, which stores it in the vault, deletes Prefect's copy and runs the first collection."""
    from prefect.deployments import run_deployment

    from tests.e2e.test_prefect_ui_browser import browser_page

    factories.collection_channel("org-papeterie", holders=["holder@org.example"])
    _deploy("flows/request_credentials.py:request_credentials", "request-credentials")
    _without_collect_deployment()

    with glaneur_serve(monkeypatch) as base, worker(glaneur_home, GLANEUR_EVIDENCE_URL=base):
        run = run_deployment("request-credentials/request-credentials",
                             parameters={"channel": "org-papeterie", "invitee": "holder@org.example"}, timeout=0)
        suspended = _wait(run.id, lambda state: state.is_paused())
        assert suspended.state.name == "Suspended"

        with session_scope() as session:
            invitation = session.exec(select(Invitation)).one()
            assert invitation.state == InvitationState.PENDING and invitation.sent_count == 1
            bell = session.exec(select(Notification).where(Notification.kind == "invitation")).one()
        mails = list((glaneur_home / "outbox").glob("*.eml"))
        assert len(mails) == 1
        message = email.message_from_bytes(mails[0].read_bytes())
        text = message.get_payload(decode=True).decode()
        assert message["To"] == "holder@org.example"
        link = next(word for word in text.split() if word.startswith(f"{base}/credentials/{invitation.id}?"))
        assert "/runs/flow-run/" not in text and bell.link == link  # no Prefect UI for the holder

        with browser_page() as page:
            forged = page.goto(link.replace("sig=", "sig=0"))
            assert forged.status == 403 and "Lien invalide" in page.content()
            page.goto(link)
            assert "Papeterie Dupont" in page.inner_text("body") and portals.urls["papeterie-dupont"] in page.content()
            assert page.locator("input[type=password]").count() == 2  # password and TOTP seed, masked
            # A seed that is not one: said on the form, nothing stored, nothing handed to Prefect.
            page.fill("#login", "acme")
            page.fill("#password", PASSWORD)
            page.fill("#totp_seed", "not a seed!")
            page.click("#submit")
            assert "n'a pas été enregistrée" in page.inner_text("#error") and "TOTP" in page.inner_text("#error")
            assert page.input_value("#login") == "acme" and page.input_value("#password") == ""
            assert _flow_run(run.id).state.is_paused()
            assert not [key for key in run_inputs(run.id) if key.endswith("-response")]
            # The right answer.
            page.fill("#password", PASSWORD)
            page.click("#submit")
            assert "Identifiants transmis" in page.inner_text("h1")
            # Sent twice (a second tab, a double click): the run already resumed takes the first answer only.
            query = dict(part.split("=", 1) for part in link.split("?", 1)[1].split("&"))
            twice = page.request.post(link.split("?", 1)[0], form={**query, "login": "acme", "password": "other-pass-9"})
            assert twice.status in (409, 410), twice.status  # being processed, or already answered
            finished = _wait(run.id, lambda state: state.is_final())
            page.goto(link)  # the link is spent
            assert "Demande terminée" in page.inner_text("h1")

    assert finished.state.is_completed(), finished.state.message
    assert finished.parameters == {"channel": "org-papeterie", "invitee": "holder@org.example"}
    with session_scope() as session:
        account = session.exec(select(Account)).one()
        assert account.login == "acme" and account.status == "ok", finished.state.message
        assert account.totp_ref is None
        vault_rows = session.exec(select(VaultEntry)).all()
        assert all(PASSWORD.encode() not in row.ciphertext for row in vault_rows)
        assert Vault(session).get(account.secret_ref) == PASSWORD  # the first answer, not the second
        assert session.exec(select(Invitation)).one().state == InvitationState.ANSWERED
        assert len(session.exec(select(Document)).all()) == 23
    assert run_inputs(run.id) == {}  # every key, read from Prefect's API and its database


def _without_collect_deployment() -> None:
    """The first collection runs in the invitation's own run when the server has no collect-channel
    deployment (else a worker of its pool takes it): earlier tests on this session's server may leave one."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.delete_deployment(client.read_deployment_by_name("collect-channel/collect-channel").id)
        except ObjectNotFound:
            pass


# -- what happens to an answer on the paths that do not end in a collection -------------------------------
SEED_SHORT = "JBSWY3DPEHPK"  # 12 characters, 60 bits: a seed copied short, not one a portal issues


def _org_with_channels(*slugs: str) -> None:
    with session_scope() as session:
        owner = factories.organization(session, holders=["holder@org.example"])
        for slug in slugs:
            factories.channel(session, owner, slug, label=f"Papeterie {slug}")


def _invite(slug: str):
    from prefect.deployments import run_deployment

    run = run_deployment("request-credentials/request-credentials",
                         parameters={"channel": slug, "invitee": "holder@org.example"}, timeout=0)
    return _wait(run.id, lambda state: state.is_paused())


def _pauses(flow_run_id) -> int:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return sum(1 for state in client.read_flow_run_states(flow_run_id) if state.is_paused())


def _cli(*args: str):
    from typer.testing import CliRunner

    from cli.main import app

    return CliRunner().invoke(app, ["--as", "owner@org.example", *args], env={"COLUMNS": "250"})


def test_an_answer_never_stays_in_prefect_whatever_the_path(glaneur_home, portals):
    from prefect.flow_runs import resume_flow_run

    _org_with_channels("org-deleted", "org-cli-deleted", "org-seed")
    with session_scope() as session:  # a collector with its two accounts, one of whose password changed
        owner = admin.get_user(session, "org", "owner@org.example")
        factories.channel(session, owner, "org-full", label="Papeterie full", accounts=[("acme", "old-1"), ("zeta", "z-2")])
    _deploy("flows/request_credentials.py:request_credentials", "request-credentials")
    with worker(glaneur_home):
        deleted, cli_deleted, seed = _invite("org-deleted"), _invite("org-cli-deleted"), _invite("org-seed")
        full = _invite("org-full")

        # The channel is deleted while the invitation waits, and its run is not cancelled (Prefect was down,
        # say): the holder's answer makes the run fail, and the answer is deleted all the same.
        with session_scope() as session:
            admin.delete_channel(session, "org-deleted", actor=admin.get_user(session, "org", "owner@org.example"))
        resume_flow_run(deleted.id, run_input={"login": "acme", "password": "deleted-pass-1"})
        finished = _wait(deleted.id, lambda state: state.is_final())
        assert finished.state.is_failed() and "deleted" in finished.state.message
        assert run_inputs(deleted.id) == {}

        # Deleting the channel with the command cancels its waiting invitation run.
        result = _cli("channel", "delete", "org-cli-deleted", "--yes")
        assert result.exit_code == 0, result.output
        assert "1 waiting invitation run(s) cancelled" in result.output
        assert _flow_run(cli_deleted.id).state.is_cancelled()
        assert run_inputs(cli_deleted.id) == {}

        # A seed copied short passes the form; the run refuses it, says why, and asks again.
        resume_flow_run(seed.id, run_input={"login": "acme", "password": "seed-pass-2", "totp_seed": SEED_SHORT})
        _wait(seed.id, lambda state: state.is_paused() and _pauses(seed.id) >= 2)
        inputs = run_inputs(seed.id)
        assert not any(key.endswith("-response") for key in inputs), inputs
        assert_no_secret_in_inputs(seed.id, ["seed-pass-2", SEED_SHORT])
        description = next(value for key, value in inputs.items() if key.endswith("-description"))
        assert "previous answer was not saved" in description and "too short" in description
        assert "Papeterie Dupont" in description  # the supplier and its portal address, named
        assert portals.urls["papeterie-dupont"] in description.replace("\\", "")  # Markdown-escaped
        with session_scope() as session:
            assert admin.channel_accounts(session, admin.get_channel(session, "org-seed")) == []
        resume_flow_run(seed.id, run_input={"login": "acme", "password": PASSWORD})
        finished = _wait(seed.id, lambda state: state.is_final())

        # A third login on a collector that holds two: refused, said why, asked again; a login already
        # there (whatever its case) then gets its new password (the holder's "Modifier" through an invitation).
        resume_flow_run(full.id, run_input={"login": "third", "password": "third-pass-4"})
        _wait(full.id, lambda state: state.is_paused() and _pauses(full.id) >= 2)
        assert_no_secret_in_inputs(full.id, ["third-pass-4"])
        description = next(value for key, value in run_inputs(full.id).items() if key.endswith("-description"))
        assert "previous answer was not saved" in description and "already holds its 2 accounts" in description
        resume_flow_run(full.id, run_input={"login": " ACME ", "password": PASSWORD})  # acme's, typed otherwise
        full_done = _wait(full.id, lambda state: state.is_final())
    assert full_done.state.is_completed(), full_done.state.message
    with session_scope() as session:
        full_channel = admin.get_channel(session, "org-full")
        assert [a.login for a in admin.channel_accounts(session, full_channel)] == ["ACME", "zeta"]
        acme = admin.get_account(session, full_channel, "acme")
        assert Vault(session).get(acme.secret_ref) == PASSWORD
    assert finished.state.is_completed(), finished.state.message
    assert run_inputs(seed.id) == {}
    with session_scope() as session:
        states = {i.flow_run_id: i.state for i in session.exec(select(Invitation)).all()}
    assert states[str(deleted.id)] == states[str(cli_deleted.id)] == InvitationState.CANCELLED
    assert states[str(seed.id)] == InvitationState.ANSWERED


def test_a_vault_error_leaves_no_answer_in_prefect(glaneur_home, portals):
    from prefect.flow_runs import resume_flow_run

    _org_with_channels("org-vault")
    _deploy("flows/request_credentials.py:request_credentials", "request-credentials")
    with worker(glaneur_home):  # the invitation goes out (its link is signed with a key the vault key derives)
        run = _invite("org-vault")
    with worker(glaneur_home, GLANEUR_VAULT_KEY="not-a-fernet-key"):  # the vault fails when the answer comes
        resume_flow_run(run.id, run_input={"login": "acme", "password": "vault-pass-3"})
        finished = _wait(run.id, lambda state: state.is_final())
    assert finished.state.is_failed()
    assert run_inputs(run.id) == {}


def test_an_expired_invitation_is_marked_and_the_owner_told(glaneur_home, portals, monkeypatch):
    from prefect.client.orchestration import get_client
    from prefect.states import Scheduled

    from glaneur.settings import reset_settings

    _org_with_channels("org-expiry")
    _deploy("flows/request_credentials.py:request_credentials", "request-credentials")
    with worker(glaneur_home, GLANEUR_INVITATION_TTL_HOURS="0.003"):  # about 11 s
        run = _invite("org-expiry")
        failed = _wait(run.id, lambda state: state.is_final(), timeout=120)
        assert failed.state.is_failed()

        def expired(_state) -> bool:
            with session_scope() as session:
                return session.exec(select(Invitation)).one().state == InvitationState.EXPIRED

        _wait(run.id, expired, timeout=120)
        # Nothing else runs here (no dispatch): the invitation's own expiry run did it.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _flow_run(run.id).state.name != "Expired":
            time.sleep(1)
        assert _flow_run(run.id).state.name == "Expired"
        mails = [email.message_from_bytes(path.read_bytes()) for path in (glaneur_home / "outbox").glob("*.eml")]
        told = [m for m in mails if m["To"] == "owner@org.example"]
        assert len(told) == 1 and "expired" in told[0]["Subject"]
        assert "glaneur channel invite org-expiry" in told[0].get_payload(decode=True).decode()

        # A dead invitation is never sent again.
        monkeypatch.setenv("GLANEUR_HOME", str(glaneur_home))
        reset_settings()
        result = _cli("channel", "resend-invitation", "org-expiry")
        assert result.exit_code != 0 and "send one with 'glaneur channel invite'" in result.output, result.output

        # Retry in the UI: the run starts again from the top and ends as expired, not with a 409.
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(run.id, Scheduled(), force=True)
        _wait(run.id, lambda state: state.is_running() or state.is_final(), timeout=120)
        retried = _wait(run.id, lambda state: state.is_final(), timeout=120)
    assert retried.state.name == "Expired", (retried.state.name, retried.state.message)
    assert "expired" in retried.state.message
    assert len([m for m in (glaneur_home / "outbox").glob("*.eml")]) == len(mails)  # told once


def test_resend_invitation_sends_the_holders_own_link_again(glaneur_home, portals, monkeypatch):
    _org_with_channels("org-resend")
    _deploy("flows/request_credentials.py:request_credentials", "request-credentials")
    with worker(glaneur_home):
        run = _invite("org-resend")
        monkeypatch.delenv("GLANEUR_PREFECT_UI_URL", raising=False)
        result = _cli("channel", "resend-invitation", "org-resend")
    assert result.exit_code == 0, result.output
    mails = sorted((glaneur_home / "outbox").glob("*.eml"), key=lambda path: path.stat().st_mtime)
    first, reminder = (email.message_from_bytes(mail.read_bytes()) for mail in (mails[0], mails[-1]))
    assert "Reminder" in reminder["Subject"]
    links = [next(word for word in mail.get_payload(decode=True).decode().split() if "/credentials/" in word)
             for mail in (first, reminder)]
    assert links[0] == links[1]  # the same link, the same expiry
    assert f"/runs/flow-run/{run.id}" not in reminder.get_payload(decode=True).decode()
