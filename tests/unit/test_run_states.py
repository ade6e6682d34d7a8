"""A run's states without a server: rows start ``running``, close as ``internal_error``; final states are named
after the status table and resolve into an exception; the day comes from the scheduled start, not the clock."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlmodel import select

from glaneur import admin
from glaneur.db import session_scope
from glaneur.invoices import collection
from glaneur.models import Channel, CollectionRun
from glaneur.settings import get_settings
from glaneur.statuses import COLLECTED, STATUS_TABLE, Status, describe
from tasks.history import md_link
from tests import factories


@pytest.fixture
def plan(glaneur_home):
    factories.collection_channel("org-papeterie")
    with session_scope() as session:
        return collection.load_plan(session, "org-papeterie", get_settings(), date(2026, 3, 15))


def test_a_run_starts_running_never_ok(plan):
    with session_scope() as session:
        run_id = collection.start_run(session, plan, None, "flow-run-1")
        assert session.get(CollectionRun, run_id).status == Status.RUNNING
        assert CollectionRun(channel_id=plan.channel_id).status == Status.RUNNING  # the default too
        assert [run.id for run in collection.open_runs(session, flow_run_id="flow-run-1")] == [run_id]


def test_closing_open_runs_leaves_finished_ones_alone_and_sets_the_channel_status(plan):
    with session_scope() as session:
        finished = collection.start_run(session, plan, None, "a")
        collection.finish_run(session, finished, status=Status.OK, message="fine", new=1, already_had=0)
        left = collection.start_run(session, plan, None, "b")
        closed = collection.close_open_runs(session, [finished, left], "The process was killed.")
        assert closed == [left]
        assert session.get(CollectionRun, finished).status == Status.OK
        killed = session.get(CollectionRun, left)
        assert (killed.status, killed.error_code, killed.message) == (
            Status.INTERNAL_ERROR, "internal_error", "The process was killed.")
        assert killed.finished_at is not None
        channel = session.exec(select(Channel)).one()
        assert (channel.status, channel.status_message) == (Status.INTERNAL_ERROR, "The process was killed.")
        assert collection.open_runs(session) == []


def test_a_run_suspended_for_a_second_factor_that_ended_unanswered_closes_as_second_factor_timeout(plan):
    from datetime import timedelta

    from glaneur.models import Account, User, utcnow

    with session_scope() as session:
        owner = session.exec(select(User).where(User.email == "owner@org.example")).one()
        admin.add_account(session, "org-papeterie", login="acme", password="secret-password-1", actor=owner)
        account = session.exec(select(Account)).one()
        run_id = collection.start_run(session, plan, account.id, "flow-run-1")
        collection.keep_pending_login(session, account.id, collection.PendingLogin(
            flow_run_id="flow-run-1", run_id=run_id, url="https://portal.example/double-authentification",
            storage_state={"cookies": [], "origins": []}, kind="code", prompt="Code?", attempt=1, refused="",
            key="second-factor-1-1-suspended", deadline=utcnow() + timedelta(hours=1)))
        assert collection.pending_login(session, account.id, "flow-run-1").run_id == run_id
        assert collection.close_open_runs(session, [run_id], "it failed") == [run_id]
        closed = session.get(CollectionRun, run_id)
        assert closed.status == Status.SECOND_FACTOR_TIMEOUT
        assert closed.message.startswith("Nobody answered the second factor of acme in time.")
        account = session.get(Account, account.id)
        assert account.pending_login_ref is None and account.status == Status.SECOND_FACTOR_TIMEOUT
        assert session.exec(select(Channel)).one().status == Status.SECOND_FACTOR_TIMEOUT


def test_every_status_has_a_short_distinct_title():
    titles = [info.title for info in STATUS_TABLE.values()]
    assert len(set(titles)) == len(titles) == len(Status)
    assert all(0 < len(title) <= 30 and title[0].isupper() for title in titles)


@pytest.mark.parametrize("status", [s for s in Status if s not in COLLECTED | {Status.RUNNING, Status.NEW}])
def test_a_failed_final_state_is_named_after_its_status_and_resolves_into_an_exception(status):
    from prefect.states import StateType, get_state_exception

    from tasks.lifecycle import RunFailed, final_state

    summary = {"channel": "c", "status": status.value, "message": "m", "accounts": []}
    state = final_state(status, "what happened", summary)
    assert state.type == StateType.FAILED and state.name == describe(status).title
    error = get_state_exception(state)  # a dict here made the worker log a TypeError traceback
    assert isinstance(error, RunFailed) and error.summary == summary and str(error) == "what happened"


def test_a_completed_final_state_carries_the_summary():
    from prefect.states import StateType

    from tasks.lifecycle import final_state, summary_of

    state = final_state(Status.OK, "fine", {"status": "ok"})
    assert state.type == StateType.COMPLETED and state.name == "Collected"
    assert summary_of(state) == {"status": "ok"}
    longer = final_state(Status.MORE_TO_COLLECT, "the list goes on", {"status": "more_to_collect"})
    assert longer.type == StateType.COMPLETED and longer.name == "More to collect"  # not a failure, not "Collected"
    assert summary_of(longer) == {"status": "more_to_collect"}


def test_a_failed_summary_survives_pickling():
    import cloudpickle

    from tasks.lifecycle import RunFailed

    error = cloudpickle.loads(cloudpickle.dumps(RunFailed("m", {"status": "wrong_credentials"})))
    assert error.summary == {"status": "wrong_credentials"} and str(error) == "m"


@pytest.mark.parametrize(
    ("scheduled", "day"),
    [
        (datetime(2026, 3, 14, 23, 5, tzinfo=UTC), date(2026, 3, 15)),  # 00:05 in Paris: the daily dispatch
        (datetime(2026, 7, 14, 22, 30, tzinfo=UTC), date(2026, 7, 15)),  # summer time: UTC+2
        (datetime(2026, 3, 15, 4, 0, tzinfo=UTC), date(2026, 3, 15)),
    ],
)
def test_the_day_of_a_run_is_its_scheduled_start_in_the_timezone(monkeypatch, scheduled, day):
    import time

    from tasks.lifecycle import day_of

    monkeypatch.setenv("TZ", "UTC")  # the worker's clock: what date.today() used to read
    time.tzset()
    try:
        assert day_of(scheduled, "Europe/Paris") == day
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_evidence_links_are_links_a_browser_opens_and_cannot_close_the_markdown():
    assert md_link("javascript:alert(1)") == ""
    assert md_link("https://s3.example/b/a b>(c)?X-Amz-Signature=1") == "https://s3.example/b/a%20b%3E%28c%29?X-Amz-Signature=1"
    assert md_link("file:///var/x.png") == ""  # nothing happens when clicked in the Prefect UI
    assert md_link("s3://bucket/x.png") == ""


@pytest.mark.parametrize("how", ["account removed", "collector deleted"])
def test_no_portal_session_or_pending_login_outlives_an_account_removed_during_its_login(plan, how):
    """A run logging in when a person removes the account (or deletes the collector) must not store its
    portal session or pending login again after the purge."""
    from datetime import timedelta

    from glaneur.models import Account, User, VaultEntry, utcnow

    with session_scope() as session:
        owner = session.exec(select(User).where(User.email == "owner@org.example")).one()
        admin.add_account(session, "org-papeterie", login="acme", password="secret-password-1", actor=owner)
        account = session.exec(select(Account)).one()
        run_id = collection.start_run(session, plan, account.id, "flow-run-1")
        if how == "account removed":
            admin.remove_account(session, "org-papeterie", "acme", actor=owner)
        else:
            admin.delete_channel(session, "org-papeterie", actor=owner)
        session.commit()
        collection.remember_session(session, account.id, {"cookies": [{"name": "sid"}], "origins": []}, None)
        collection.keep_pending_login(session, account.id, collection.PendingLogin(
            flow_run_id="flow-run-1", run_id=run_id, url="https://portal.example/double-authentification",
            storage_state={"cookies": [], "origins": []}, kind="code", prompt="Code?", attempt=1, refused="",
            key="second-factor-1-1-suspended", deadline=utcnow() + timedelta(hours=1)))
        account = session.get(Account, account.id)
        assert (account.session_ref, account.pending_login_ref, account.secret_ref) == (None, None, None)
        assert session.exec(select(VaultEntry).where(VaultEntry.purpose != "canary")).all() == []
