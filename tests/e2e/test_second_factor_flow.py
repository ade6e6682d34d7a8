"""Second factor end to end: TOTP by itself; a code or an app approval from an approver who resumes
the paused run from another process; a wrong code then the right one; a timeout; a remembered
session reused the next day; and no secret left behind anywhere.
"""

from __future__ import annotations

import contextvars
import json
import os
import subprocess
import sys
import threading
import time

import httpx
import pytest
from sqlmodel import select

from glaneur.db import session_scope
from glaneur.models import Account, Channel, Document
from glaneur.settings import get_settings, reset_settings
from tests import factories
from tests.e2e.conftest import assert_no_secret, run_inputs

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]
PROVIDER = "papeterie-dupont"


def sandbox_account(portals, login: str) -> dict:
    accounts = httpx.get(f"{portals.urls[PROVIDER]}/_sandbox/accounts").json()
    rows = accounts["accounts"] if isinstance(accounts, dict) else accounts
    return next(row for row in rows if row["login"] == login)


def make_channel(portals, login: str, *, with_seed: bool = False) -> str:
    account = sandbox_account(portals, login)
    seed = account.get("totp_seed") if with_seed else None
    factories.collection_channel("org-2fa", PROVIDER, owner="approver@org.example", owner_name="Approver",
                                 accounts=[(login, account["password"], seed)])  # fmt: skip
    return "org-2fa"


class Background:
    """A collection running in a thread of this process, as a worker would run it."""

    def __init__(self, slug: str):
        self.result = None
        self.error = None
        context = contextvars.copy_context()  # the Prefect test server's settings live in a context variable
        self.thread = threading.Thread(target=lambda: context.run(self._run, slug), daemon=True)
        self.thread.start()

    def _run(self, slug):
        from flows.collect_channel import run_channel

        try:
            self.result = run_channel(slug)
        except BaseException as error:  # noqa: BLE001
            self.error = error

    def join(self, timeout=180) -> dict:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the collection did not finish"
        if self.error:
            raise self.error
        return self.result


def paused_run(slug: str, *, pause_number: int = 1, timeout: float = 120):
    """Wait until the channel's flow run is paused for the given time; return it."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    def read():  # a sync client: the browser tests run Playwright's event loop in this thread
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(name=FlowRunFilterName(like_=slug)), sort=FlowRunSort.START_TIME_DESC,
                limit=1)
            if not runs:
                return None, 0
            states = client.read_flow_run_states(runs[0].id)
            return runs[0], sum(1 for state in states if state.is_paused())

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run, pauses = read()
        if run is not None and run.state.is_paused() and pauses >= pause_number:
            return run
        time.sleep(0.5)
    raise AssertionError(f"{slug} was not paused (pause {pause_number}) within {timeout} s")


def resume_from_another_process(flow_run_id, run_input: dict) -> None:
    """What the Prefect UI's Resume form does, from a separate process, through the API."""
    from prefect.settings import PREFECT_API_URL

    code = ("import json, sys, uuid\nfrom prefect.flow_runs import resume_flow_run\n"
            "resume_flow_run(uuid.UUID(sys.argv[1]), run_input=json.loads(sys.stdin.read()))\n")
    subprocess.run([sys.executable, "-c", code, str(flow_run_id)], input=json.dumps(run_input), text=True, check=True,
                   env={**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}, timeout=120)


def sent_code(portals, login: str) -> str:
    messages = httpx.get(f"{portals.urls[PROVIDER]}/_sandbox/outbox/{login}").json()
    return messages[-1]["code"]


def flow_run_inputs(flow_run_id) -> list:
    """Every flow run input Prefect still holds for the run (every key, API and server database)."""
    return list(run_inputs(flow_run_id).values())


def test_a_totp_seed_in_the_vault_answers_by_itself(glaneur_home, portals):
    slug = make_channel(portals, "double-totp", with_seed=True)
    summary = Background(slug).join()
    assert summary["status"] == "ok", summary
    assert summary["new"] > 0


def test_a_code_typed_by_the_approver_resumes_the_same_browser_session(glaneur_home, portals):
    slug = make_channel(portals, "double-code")
    collection = Background(slug)
    run = paused_run(slug)
    with session_scope() as session:
        assert session.exec(select(Channel)).one().status == "awaiting_second_factor"
    mails = [path.read_text() for path in (glaneur_home / "outbox").glob("*.eml")]
    assert any(f"/runs/flow-run/{run.id}" in mail for mail in mails), "the approver got no link to the run"
    code = sent_code(portals, "double-code")

    resume_from_another_process(run.id, {"code": code})

    summary = collection.join()
    assert summary["status"] == "ok", summary
    assert summary["new"] == len([d for d in _documents()]) > 0
    assert flow_run_inputs(run.id) == []  # the typed code is not kept by Prefect
    assert_no_secret(glaneur_home, run.id, [code, sandbox_account(portals, "double-code")["password"]])

    # The next day: the remembered session skips login and second factor.
    again = Background(slug).join()
    assert again["status"] == "ok"
    with session_scope() as session:
        assert session.exec(select(Account)).one().session_ref is not None

    # The portal forgot the session: a normal login, and the approver is asked again.
    httpx.post(f"{portals.urls[PROVIDER]}/_sandbox/sessions/expire").raise_for_status()
    third = Background(slug)
    run = paused_run(slug)
    resume_from_another_process(run.id, {"code": sent_code(portals, "double-code")})
    assert third.join()["status"] == "ok"


def test_a_wrong_code_asks_again_then_the_right_one_works(glaneur_home, portals):
    slug = make_channel(portals, "double-code")
    collection = Background(slug)
    run = paused_run(slug)
    resume_from_another_process(run.id, {"code": "000000"})
    run = paused_run(slug, pause_number=2)
    resume_from_another_process(run.id, {"code": sent_code(portals, "double-code")})
    summary = collection.join()
    assert summary["status"] == "ok", summary


def test_an_app_approval_is_a_single_confirmation(glaneur_home, portals):
    slug = make_channel(portals, "double-appli")
    collection = Background(slug)
    run = paused_run(slug)
    httpx.post(f"{portals.urls[PROVIDER]}/_sandbox/approve/double-appli").raise_for_status()
    resume_from_another_process(run.id, {"approved": True})
    summary = collection.join()
    assert summary["status"] == "ok", summary


def test_an_unticked_app_approval_declines_the_login(glaneur_home, portals):
    slug = make_channel(portals, "double-appli")
    collection = Background(slug)
    run = paused_run(slug)
    # Even with the phone's approval given, the approver's "no" in the form wins: Glaneur does not log in.
    httpx.post(f"{portals.urls[PROVIDER]}/_sandbox/approve/double-appli").raise_for_status()
    resume_from_another_process(run.id, {"approved": False})
    summary = collection.join()
    assert summary["status"] == "second_factor_declined", summary
    assert "declined this login" in summary["message"]
    assert _documents() == []
    with session_scope() as session:
        assert session.exec(select(Channel)).one().status == "second_factor_declined"
        account = session.exec(select(Account)).one()
        assert account.status == "second_factor_declined" and account.session_ref is None
    told = [path.read_text() for path in (glaneur_home / "outbox").glob("*.eml") if "second_factor_declined" in path.read_text()]
    assert len(told) == 1, "the owner was not mailed about the declined login"
    assert flow_run_inputs(run.id) == []


def test_the_last_refused_code_ends_the_run_and_tells_the_owner(glaneur_home, portals, monkeypatch):
    monkeypatch.setenv("GLANEUR_SECOND_FACTOR_ATTEMPTS", "2")
    reset_settings()
    slug = make_channel(portals, "double-code")
    collection = Background(slug)
    run = paused_run(slug)
    resume_from_another_process(run.id, {"code": "000000"})
    run = paused_run(slug, pause_number=2)
    resume_from_another_process(run.id, {"code": "000001"})
    summary = collection.join()
    assert summary["status"] == "second_factor_refused", summary
    assert "this run is over" in summary["message"] and "type the code" not in summary["message"]
    with session_scope() as session:
        assert session.exec(select(Channel)).one().status == "second_factor_refused"
        assert session.exec(select(Account)).one().status == "second_factor_refused"
    told = [path.read_text() for path in (glaneur_home / "outbox").glob("*.eml") if "second_factor_refused" in path.read_text()]
    assert len(told) == 1, "the owner was not mailed when the run gave up"
    assert flow_run_inputs(run.id) == []


def test_no_answer_ends_the_run_cleanly_as_second_factor_timeout(glaneur_home, portals, monkeypatch):
    monkeypatch.setenv("GLANEUR_SECOND_FACTOR_TIMEOUT_SECONDS", "3")
    reset_settings()
    assert get_settings().second_factor_timeout_seconds == 3
    slug = make_channel(portals, "double-code")
    summary = Background(slug).join()
    assert summary["status"] == "second_factor_timeout"
    assert "next daily run asks again" in summary["message"]
    assert "within 3 s" in summary["message"], summary["message"]  # not "within 0 min"
    with session_scope() as session:
        assert session.exec(select(Channel)).one().status == "second_factor_timeout"
    assert _documents() == []


def _documents():
    with session_scope() as session:
        return list(session.exec(select(Document)).all())


# -- issue 19 item 8: on a worker, a wait holds a browser briefly, then the run suspends without a process ------


def _processes_of(flow_run_id) -> list[int]:
    """Process ids running this flow run (the worker's flow-run processes carry its id in their environment)."""
    from pathlib import Path

    marker = f"PREFECT__FLOW_RUN_ID={flow_run_id}".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:  # gone, or another user's
            continue
    return found


def _deployed_collection(glaneur_home, **settings: str):
    """The collect-channel deployment and a process worker (its output, and its runs', in worker.log)."""
    from tests.e2e.test_run_lifecycle import deploy, worker

    deploy("flows/collect_channel.py:collect_channel", "collect-channel")
    return worker(glaneur_home, glaneur_home.parent / "worker.log", GLANEUR_SECOND_FACTOR_HOLD_SECONDS="2", **settings)


@pytest.mark.timeout(1200)  # two worker process starts: slow on a loaded 2-core machine
def test_on_a_worker_an_unanswered_code_suspends_and_a_new_process_types_it_into_the_pending_login(glaneur_home, portals):
    from prefect.deployments import run_deployment

    from glaneur.models import CollectionRun, VaultEntry
    from tests.e2e.test_invitation import _wait

    slug = make_channel(portals, "double-code")
    with _deployed_collection(glaneur_home):
        run = run_deployment("collect-channel/collect-channel", parameters={"channel": slug}, timeout=0)
        suspended = _wait(run.id, lambda state: state.is_paused() and state.name == "Suspended" or state.is_final(),
                          timeout=180)
        assert suspended.state.name == "Suspended", (glaneur_home.parent / "worker.log").read_text()[-4000:]
        # The run holds nothing: no process (so no Chromium); the pending login waits in the vault, encrypted.
        deadline = time.monotonic() + 30
        while _processes_of(run.id) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _processes_of(run.id) == [], "a process still holds the suspended run"
        with session_scope() as session:
            account = session.exec(select(Account)).one()
            assert account.pending_login_ref is not None and account.status == "awaiting_second_factor"
            entry = session.get(VaultEntry, account.pending_login_ref)
            assert entry.purpose == "pending_login" and b"pd_double_auth" not in entry.ciphertext
            from glaneur.vault import Vault

            kept = json.loads(Vault(session).get(entry.id))
            assert kept["url"].endswith("/double-authentification") and kept["flow_run_id"] == str(run.id)
            assert "pd_double_auth" in {cookie["name"] for cookie in kept["storage_state"]["cookies"]}
            (row,) = session.exec(select(CollectionRun)).all()
            assert row.status == "running" and row.flow_run_id == str(run.id)
        mails = [path.read_text() for path in (glaneur_home / "outbox").glob("*.eml")]
        assert sum(f"/runs/flow-run/{run.id}" in mail for mail in mails) == 1  # told once, not again at the suspend
        code = sent_code(portals, "double-code")

        resume_from_another_process(suspended.id, {"code": code})
        finished = _wait(run.id, lambda state: state.is_final(), timeout=600)

    assert finished.state.is_completed(), finished.state.message
    assert len(_documents()) == 4
    with session_scope() as session:
        (row,) = session.exec(select(CollectionRun)).all()  # the same row, finished by the resumed process
        assert row.status == "ok" and row.new_documents == 4
        account = session.exec(select(Account)).one()
        assert account.pending_login_ref is None and account.session_ref is not None  # used once, then gone
        assert session.exec(select(VaultEntry).where(VaultEntry.purpose == "pending_login")).all() == []
    assert flow_run_inputs(run.id) == []
    assert_no_secret(glaneur_home, run.id, [code, sandbox_account(portals, "double-code")["password"]])
