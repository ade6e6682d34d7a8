"""A 10,000-row invoice list (issue 19 item 2) and a history longer than one run reads, end to end.

Real Prefect server, real Chromium, the Papeterie Dupont sandbox with a long history added through
``/_sandbox/accounts/{login}/history`` and its page size set through ``/_sandbox/accounts/{login}/list``.

* A list longer than ``GLANEUR_MAX_LIST_PAGES`` pages is collected over several runs: each files what it
  read and says ``more_to_collect`` (not ``portal_changed``, not a plain ``ok``), the next one goes on from
  where it was left, with the invoices that appeared meanwhile, and the last reads to the end: every
  invoice filed exactly once, nothing outside the channel's prefix, the history truthful.
* 10,000 rows, in 1,000 pages of 10 or on one page: a run reads a bounded part of them, and a daily run
  (a cursor) reads the one 10,000-row page and downloads only what is new. What that parse costs is
  measured by ``bench/long_list.py`` (figures in the README), not timed here.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from glaneur.db import session_scope
from glaneur.models import Account
from glaneur.settings import get_settings, reset_settings
from glaneur.storage import get_storage
from sandbox.data import PAPETERIE_DUPONT, PortalState
from tests.e2e.test_collect_channel import channel_state, filed_documents, make_channel, run, runs
from tests.e2e.test_collect_hostile_portals import add_invoice, control, run_measuring_memory
from tests.e2e.test_hostile_portal import files_under
from tests.e2e.test_run_lifecycle import read_artifacts

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

PD = "papeterie-dupont"
PREFIX = "org/factures/test-channel/"


def portal_references(login: str, history: int, added: list[str]) -> set[str]:
    """What the portal lists for the account: its initial invoices, the history added (deterministic), the new ones."""
    state = PortalState(PAPETERIE_DUPONT)
    state.add_history(login, history)
    return {invoice.number for invoice in state.invoices(login)} | set(added)


def account(login: str) -> Account:
    with session_scope() as session:
        return session.exec(select(Account).where(Account.login == login)).one()


def flow_run_state(flow_run_id: str):
    from tests.e2e.conftest import prefect_call

    return prefect_call(lambda client: client.read_flow_run(flow_run_id)).state


def assert_filed_once_inside_the_prefix(expected: set[str]) -> None:
    documents = filed_documents()
    assert sorted(d.provider_reference for d in documents) == sorted(expected)  # each exactly once
    assert all(d.storage_key.startswith(PREFIX) for d in documents)
    root = get_settings().resolved_storage_path
    stored = files_under(root)
    assert len([p for p in stored if p.suffix == ".pdf"]) == len(expected)  # beside each, its metadata
    assert all(p.resolve().is_relative_to((root / PREFIX).resolve()) for p in stored)
    assert len(get_storage(get_settings()).keys()) == len(expected)


@pytest.mark.timeout(900)
def test_a_history_longer_than_one_run_reads_is_collected_over_several_runs(glaneur_home, portals, monkeypatch):
    monkeypatch.setenv("GLANEUR_MAX_LIST_PAGES", "3")  # 30 invoices a run, so that four runs show the whole rule
    reset_settings()
    slug = make_channel(PD, ("acme", None))
    control(portals, "/accounts/acme/history", {"count": 37})  # 23 + 37 = 60 invoices: 6 pages of 10

    first = run(slug)  # the first collection: a full pass, longer than one run reads

    assert first["status"] == "more_to_collect", first
    assert first["new"] == 30
    assert "longer than one run reads (3 pages, GLANEUR_MAX_LIST_PAGES)" in first["message"]
    assert "filed 30 new invoice(s). The next run goes on from '/factures?page=4'" in first["message"]
    state = flow_run_state(runs()[-1].flow_run_id)
    assert state.type.value == "COMPLETED" and state.name == "More to collect"  # not a failure, not "Collected"
    assert (account("acme").list_left_at, account("acme").cursor) == ("/factures?page=4", date(2026, 10, 5))
    assert channel_state(slug).status == "more_to_collect"

    arrived = [add_invoice(portals, "acme", date=f"2026-11-{day:02d}") for day in (3, 4, 5, 6)]  # pushes rows down

    second = run(slug)  # the top (the 4 new ones), then on from page 4, which now repeats 4 rows already filed

    assert second["status"] == "more_to_collect", second
    assert set(arrived) <= {d.provider_reference for d in filed_documents()}
    assert second["new"] == 4 + 26 and second["already_had"] >= 4
    assert "The next run goes on from '/factures?page=7'" in second["message"]

    arrived.append(add_invoice(portals, "acme", date="2026-11-20"))

    third = run(slug)  # the top, then pages 7 (the end of the list)

    assert third["status"] == "ok", third
    assert third["new"] == 1 + 4  # the newest, and the 4 rows the two additions pushed past page 6
    after = account("acme")
    assert (after.list_left_at, after.list_left_since, after.last_full_pass is not None) == (None, None, True)
    assert after.cursor == date(2026, 11, 20)

    fourth = run(slug)  # back to a daily run: from the cursor, the first page only
    assert fourth["status"] == "ok" and fourth["new"] == 0, fourth

    assert_filed_once_inside_the_prefix(portal_references("acme", 37, arrived))
    history = runs()
    assert [r.status for r in history] == ["more_to_collect", "more_to_collect", "ok", "ok"]
    assert [r.new_documents for r in history] == [30, 30, 5, 0]
    assert history[0].error_code is None and "goes on from '/factures?page=4'" in history[0].message
    assert history[2].message and "longer than one run" not in history[2].message
    cards = [a.description or "" for a in read_artifacts(f"channel-{slug}")]
    assert any(card.startswith("**More to collect**") for card in cards), cards
    assert channel_state(slug).status == "ok"


@pytest.mark.timeout(900)
def test_ten_thousand_rows_in_a_thousand_pages_are_read_a_bounded_part_at_a_time(glaneur_home, portals, monkeypatch):
    monkeypatch.setenv("GLANEUR_MAX_LIST_PAGES", "2")
    reset_settings()
    slug = make_channel(PD, ("acme", None))
    control(portals, "/accounts/acme/history", {"count": 10_000 - 23})  # 10,000 rows, 1,000 pages of 10

    first = run(slug)
    second = run(slug)

    assert (first["status"], first["new"]) == ("more_to_collect", 20), first
    assert (second["status"], second["new"]) == ("more_to_collect", 20), second
    assert "goes on from '/factures?page=5'" in second["message"]
    assert len(filed_documents()) == 40 and all(d.storage_key.startswith(PREFIX) for d in filed_documents())


@pytest.mark.timeout(900)
def test_one_page_of_ten_thousand_rows_is_read_whole_and_only_the_new_invoices_are_fetched(
    glaneur_home, portals, monkeypatch
):
    slug = make_channel(PD, ("acme", None))
    control(portals, "/accounts/acme/history", {"count": 10_000 - 23})
    control(portals, "/accounts/acme/list", {"page_size": 100_000})  # the whole list on one page
    with session_scope() as session:  # a daily run: the account's full pass was done before
        found = session.exec(select(Account).where(Account.login == "acme")).one()
        found.cursor, found.last_full_pass = date(2026, 10, 5), date.today() - timedelta(days=1)
        session.add(found)
        session.commit()
    new = [add_invoice(portals, "acme", date="2026-11-05"), add_invoice(portals, "acme", date="2026-11-06")]
    summary, peak = run_measuring_memory(slug)

    assert summary["status"] == "ok", summary
    # The two new ones, and the look-back's (45 days before the cursor): the 9,998 older rows read, not fetched.
    filed = {d.provider_reference for d in filed_documents()}
    assert set(new) <= filed and len(filed) == 4
    assert summary["already_had"] == 0
    lists = [r for r in httpx.get(f"{portals.urls[PD]}/_sandbox/served", trust_env=False).json()
             if r["path"] == "/factures"]
    assert len(lists) == 2  # the landing page after login, then the one page: 10,002 rows
    assert peak < 400 * 1024 * 1024, f"peak Python memory {peak / 2**20:.0f} MiB for one 10,002-row page"
    assert all(Path(d.storage_key).as_posix().startswith(PREFIX) for d in filed_documents())


@pytest.mark.timeout(600)
def test_a_loop_longer_than_one_run_reads_is_caught_across_runs(glaneur_home, portals, monkeypatch):
    monkeypatch.setenv("GLANEUR_MAX_LIST_PAGES", "2")
    reset_settings()
    slug = make_channel(PD, ("acme", None))

    first = run(slug)  # pages 1 and 2 of 3
    control(portals, "/accounts/acme/list", {"loop": True})  # page 3's "next" now goes back to page 1
    second = run(slug)  # page 3 (new), then page 1 again: too far apart for one walk to see it twice
    third = run(slug)  # pages 2 and 3, all filed, and still a "next": it leads back

    assert (first["status"], second["status"]) == ("more_to_collect", "more_to_collect"), (first, second)
    assert third["status"] == "portal_changed", third
    assert "seem to lead back to its beginning" in third["message"]
    assert len(filed_documents()) == 23  # each once
    assert account("acme").list_left_at == "/factures?page=2"  # kept: the connector must be looked at
