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
from glaneur.models import Account, Document, Invitation, InvitationState, Notification, Right, VaultEntry
from glaneur.settings import PROJECT_ROOT

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
def worker(home):
    environment = {
        **os.environ,
        "PREFECT_API_URL": _api_url(),
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "GLANEUR_HOME": str(home),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, "--type", "process"],
        env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()


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


def test_an_invitation_is_answered_and_the_first_collection_runs(glaneur_home, portals):
    from prefect.deployments import run_deployment
    from prefect.flow_runs import resume_flow_run
    from prefect.input.actions import read_flow_run_input

    with session_scope() as session:
        admin.create_organization(session, "org", "Org")
        owner = admin.create_user(session, "org", "owner@org.example", "Owner", [Right.CONFIGURE_COLLECTION])
        admin.create_user(session, "org", "holder@org.example", "Holder", actor=owner)
        admin.create_binder(session, "org", "factures", "Factures", actor=owner)
        admin.add_channel(session, "org", label="Papeterie", provider="papeterie-dupont", binder="factures",
                          recipient="owner@org.example", slug="org-papeterie", actor=owner)
    _deploy("flows/request_credentials.py:request_credentials", "request-credentials")

    with worker(glaneur_home):
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
        assert message["To"] == "holder@org.example"
        assert f"/runs/flow-run/{run.id}" in message.get_payload(decode=True).decode()
        assert bell.link and bell.link.endswith(f"/runs/flow-run/{run.id}")

        resume_flow_run(run.id, run_input={"login": "acme", "password": PASSWORD})
        finished = _wait(run.id, lambda state: state.is_final())

    assert finished.state.is_completed(), finished.state.message
    assert finished.parameters == {"channel": "org-papeterie", "invitee": "holder@org.example"}
    with session_scope() as session:
        account = session.exec(select(Account)).one()
        assert account.login == "acme" and account.status == "ok"
        vault_rows = session.exec(select(VaultEntry)).all()
        assert all(PASSWORD.encode() not in row.ciphertext for row in vault_rows)
        assert session.exec(select(Invitation)).one().state == InvitationState.ANSWERED
        assert len(session.exec(select(Document)).all()) == 23
    assert read_flow_run_input(f"suspended-invitation-{invitation.id}-response", flow_run_id=run.id) is None
