"""Lists longer than one run reads (issue 19 item 2): where a list is left, how the next run goes on, what it says.

The bookkeeping (``glaneur.invoices.collection``) on its own and on a database; the kit's listing in a real
Chromium against a plain HTTP server whose newest-first list grows between two walks
(``test_long_list_browser`` below is marked slow). The end-to-end runs are in
``tests/e2e/test_long_list.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from html import escape
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlmodel import select

from connectors.kit import Connector, HtmlTable, Listing, LoginForm, NextLink, Page, PageNumbers, Provider
from glaneur import admin
from glaneur.contract import RemoteDocument
from glaneur.db import session_scope
from glaneur.errors import PortalChanged, WrongCredentials
from glaneur.invoices import collection
from glaneur.invoices.collection import AccountOutcome, AccountPlan, ListingOutcome, listing_outcome
from glaneur.models import Account, Channel, Document, Right
from glaneur.settings import Settings, get_settings
from glaneur.statuses import Status
from tests.local_http import send_html, serving

TODAY = date(2026, 12, 2)


def docs(*references: str, day: date = date(2026, 1, 1)) -> list[RemoteDocument]:
    return [RemoteDocument(r, day, f"/f/{r}/pdf") for r in references]


def plan(since: date | None = None, left_at: str | None = None, left_since: date | None = None) -> AccountPlan:
    return AccountPlan(1, "acme", 1, since, left_at, left_since)


# -- where the list stands after a run ------------------------------------------------------------------------


def test_a_full_pass_read_to_its_end_is_a_full_pass_and_leaves_nothing():
    assert listing_outcome(plan(), Listing(docs("A"), pages=3), None) == ListingOutcome(None, None, True, 3)
    assert listing_outcome(plan(since=TODAY), Listing(pages=1), None) == ListingOutcome(None, None, False, 1)


def test_a_listing_stopped_at_the_bound_is_left_there_with_its_since_and_is_no_full_pass():
    top = Listing(docs("A"), left_at="/factures?page=101", pages=100)
    assert listing_outcome(plan(), top, None) == ListingOutcome("/factures?page=101", None, False, 100)
    assert listing_outcome(plan(since=TODAY), top, None) == ListingOutcome("/factures?page=101", TODAY, False, 100)


def test_a_list_read_on_moves_its_address_then_ends_the_full_pass_it_belongs_to():
    going_on = plan(since=TODAY, left_at="/factures?page=101", left_since=None)
    top, rest = Listing(pages=1), Listing(docs("B"), left_at="/factures?page=201", pages=100)
    assert listing_outcome(going_on, top, rest) == ListingOutcome("/factures?page=201", None, False, 101)
    assert listing_outcome(going_on, top, Listing(docs("C"), pages=7)) == ListingOutcome(None, None, True, 8)
    incremental = plan(since=TODAY, left_at="/factures?page=101", left_since=TODAY - timedelta(days=45))
    assert listing_outcome(incremental, top, Listing(pages=2)) == ListingOutcome(None, None, False, 3)


def test_a_top_longer_than_a_run_never_keeps_the_pass_under_way_from_moving_on():
    """A list whose newest invoices are not at its top reads all of it from the top: the pass still moves on."""
    going_on = plan(since=TODAY, left_at="/p?page=101", left_since=None)
    top = Listing(docs("A"), left_at="/p?page=101", pages=100)
    moved = listing_outcome(going_on, top, Listing(docs("B"), left_at="/p?page=201", pages=100))
    assert moved == ListingOutcome("/p?page=201", None, False, 200)
    ended = listing_outcome(going_on, top, Listing(docs("B"), pages=40))  # the pass ended; the top's rest comes next
    assert ended == ListingOutcome("/p?page=101", TODAY, True, 140)
    with pytest.raises(ValueError, match="was not read on"):
        listing_outcome(going_on, top, None)


def test_the_top_and_the_rest_are_filed_once_each_newest_first():
    top = Listing([*docs("N1", day=date(2026, 12, 1)), *docs("P100", day=date(2020, 1, 2))])
    rest = Listing([*docs("P100", day=date(2020, 1, 2)), *docs("P101", day=date(2020, 1, 1))])  # read again
    assert [d.reference for d in collection.listed_together(top, rest)] == ["N1", "P100", "P101"]
    assert [d.reference for d in collection.listed_together(top, None)] == ["N1", "P100"]


def test_while_a_list_is_read_on_the_top_is_read_as_a_daily_run_reads_it():
    settings = Settings(lookback_days=45, full_pass_every_days=7)
    first = Account(channel_id=1, position=1, login="a", cursor=date(2026, 11, 1), list_left_at="/f?page=101")
    assert collection.listing_since(first, TODAY, settings) == date(2026, 9, 17)  # not a second full pass
    nothing_filed = Account(channel_id=1, position=1, login="a", list_left_at="/f?page=101")
    assert collection.listing_since(nothing_filed, TODAY, settings) == TODAY - timedelta(days=45)


def test_the_message_says_the_list_is_longer_what_was_filed_and_where_the_next_run_goes_on():
    said = collection.more_to_collect(ListingOutcome("/factures?page=101", None, False, 100), 1000, 100)
    assert "longer than one run reads (100 pages, GLANEUR_MAX_LIST_PAGES)" in said
    assert "read 100 page(s) and filed 1000 new invoice(s)" in said
    assert "The next run goes on from '/factures?page=101'" in said
    hostile = collection.more_to_collect(ListingOutcome("/f?p=\x1b[2J" + "x" * 500, None, False, 1), 0, 1)
    assert "\x1b" not in hostile and len(hostile) < 700  # the portal's address, quoted and cut


def test_a_run_with_more_to_collect_is_not_a_failure_and_not_a_plain_ok():
    more = AccountOutcome("acme", Status.MORE_TO_COLLECT, "The invoice list is longer...", 10)
    ok = AccountOutcome("bis", Status.OK, "fine", 1)
    wrong = AccountOutcome("ter", Status.WRONG_CREDENTIALS, "refused")
    assert collection.summarize("c", [ok]).status == Status.OK
    summary = collection.summarize("c", [ok, more])
    assert summary.status == Status.MORE_TO_COLLECT and summary.message == "acme: The invoice list is longer..."
    assert collection.summarize("c", [more]).message == "The invoice list is longer..."
    assert collection.summarize("c", [more, wrong]).status == Status.WRONG_CREDENTIALS  # a failure still shows


# -- on a database: the account keeps where its list was left ---------------------------------------------------


def an_account() -> tuple[int, int]:
    with session_scope() as session:
        admin.create_organization(session, "org", "Org")
        owner = admin.create_user(session, "org", "owner@org.example", "Owner", [Right.CONFIGURE_COLLECTION])
        admin.create_binder(session, "org", "factures", "Factures", actor=owner)
        admin.add_channel(session, "org", label="Test", provider="papeterie-dupont", binder="factures",
                          recipient="owner@org.example", slug="test-channel", actor=owner)
        admin.add_account(session, "test-channel", login="acme", password="pw", actor=owner)
        return session.exec(select(Channel.id)).one(), session.exec(select(Account.id)).one()


def end(account_id: int, status: Status, listing: ListingOutcome | None, newest: date | None = None) -> Account:
    with session_scope() as session:
        plan = collection.load_plan(session, "test-channel", get_settings(), TODAY)
        run_id = collection.start_run(session, plan, account_id, None)
        outcome = AccountOutcome("acme", status, "m")
        collection.end_account(session, plan.accounts[0], run_id, outcome, newest=newest, today=TODAY, listing=listing)
        return session.get(Account, account_id)


def test_the_account_keeps_where_its_list_was_left_until_a_run_reads_to_the_end(glaneur_home):
    _, account_id = an_account()

    first = end(account_id, Status.MORE_TO_COLLECT, ListingOutcome("/factures?page=101", None, False, 100),
                newest=date(2026, 10, 5))
    assert (first.list_left_at, first.list_left_since, first.last_full_pass) == ("/factures?page=101", None, None)
    assert first.status == Status.MORE_TO_COLLECT and first.cursor == date(2026, 10, 5)
    with session_scope() as session:  # the next run: the top since the cursor, then on from the saved page
        going_on = collection.load_plan(session, "test-channel", get_settings(), TODAY).accounts[0]
    assert (going_on.since, going_on.left_at, going_on.left_since) == (date(2026, 8, 21), "/factures?page=101", None)

    failed = end(account_id, Status.PORTAL_UNAVAILABLE, None)  # failed before reading the list: left as it was
    assert failed.list_left_at == "/factures?page=101" and failed.status == Status.PORTAL_UNAVAILABLE

    last = end(account_id, Status.OK, ListingOutcome(None, None, True, 37), newest=date(2001, 1, 1))
    assert (last.list_left_at, last.last_full_pass, last.status) == (None, TODAY, Status.OK)
    assert last.cursor == date(2026, 10, 5)  # never back
    with session_scope() as session:  # back to daily runs
        daily = collection.load_plan(session, "test-channel", get_settings(), TODAY).accounts[0]
    assert (daily.since, daily.left_at) == (date(2026, 8, 21), None)


def test_a_list_read_on_that_shows_only_filed_invoices_and_goes_on_leads_back(glaneur_home):
    channel_id, account_id = an_account()
    with session_scope() as session:
        for reference in ("A", "B"):
            session.add(Document(channel_id=channel_id, account_id=account_id, provider_reference=reference,
                                 document_date=date(2026, 1, 1), file_name=f"{reference}.pdf", sha256=reference * 64,
                                 size=1, storage_key=f"k/{reference}"))
        session.commit()
        assert collection.leads_back(session, channel_id, Listing(docs("A", "B"), left_at="/p?page=3", pages=2))
        assert not collection.leads_back(session, channel_id, Listing(docs("A", "C"), left_at="/p?page=3", pages=2))
        assert not collection.leads_back(session, channel_id, Listing(docs("A", "B"), pages=2))  # it ended
        assert not collection.leads_back(session, channel_id, None)


# -- the kit's walk in a real Chromium, on a newest-first list that grows between runs --------------------------


class ListServer(BaseHTTPRequestHandler):
    """``/factures?page=N``: ``invoices`` newest first, ``size`` a page, a "next" link while more remain."""

    invoices: list[tuple[str, date]] = []
    size = 10
    loop_after = 0  # > 0: the page after this one is page 1 again
    served: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (the http.server name)
        parts = urlsplit(self.path)
        ListServer.served.append(self.path)
        number = int(parse_qs(parts.query).get("page", ["1"])[0])
        shown = self.invoices[(number - 1) * self.size: number * self.size]
        rows = "".join(f"<tr><td>{escape(r)}</td><td>{d:%d/%m/%Y}</td><td><a class='pdf' href='/f/{r}.pdf'>PDF</a>"
                       "</td></tr>" for r, d in shown)
        following = number + 1 if len(self.invoices) > number * self.size else None
        if self.loop_after and number == self.loop_after:
            following = 1
        link = f"<a class='next' href='/factures?page={following}'>suivante</a>" if following else ""
        body = (f"<html><body><a href='/logout'>x</a><table id='f'><tr><th>N°</th><th>Date</th><th>PDF</th></tr>"
                f"{rows}</table>{link}</body></html>").encode()
        send_html(self, body)

    def log_message(self, *args: object) -> None:
        pass


def listing(pages: NextLink | PageNumbers) -> type[Connector]:
    class Portal(Connector):
        provider = Provider(slug="long-list", name="Long List")
        login_form = LoginForm("/login", "form#l", login="u", password="p", refusals={".e": WrongCredentials})
        home = Page("/compte", "a[href='/logout']")
        listing = HtmlTable("/factures", "table#f", columns={"N°": "reference", "Date": "document_date"},
                            link="a.pdf", pages=pages, pattern="/factures")

    return Portal


def history(count: int, newest: date) -> list[tuple[str, date]]:
    return [(f"H{k:05d}", newest - timedelta(days=k)) for k in range(count)]


@pytest.fixture
def list_server() -> Iterator[str]:
    ListServer.size, ListServer.loop_after, ListServer.served = 10, 0, []
    with serving(ListServer) as url:
        yield url


@pytest.fixture
def browser_page(monkeypatch):
    from glaneur.settings import reset_settings
    from tasks.browser import launch_browser

    monkeypatch.setenv("GLANEUR_MAX_LIST_PAGES", "3")
    reset_settings()
    with launch_browser(get_settings()) as browser:
        context = browser.new_context()
        yield context.new_page()
        context.close()
    reset_settings()


@pytest.mark.slow
@pytest.mark.parametrize("pages", [NextLink("a.next"), PageNumbers("/factures?page={n}")], ids=["next", "numbers"])
def test_long_list_browser_walks_on_from_where_it_was_left_and_misses_nothing_when_invoices_arrive(
    list_server, browser_page, pages
):
    ListServer.invoices = history(60, date(2026, 10, 31))
    connector = listing(pages)(browser_page, list_server)

    first = connector.list_documents(None)
    assert (len(first), first.pages, first.left_at) == (30, 3, "/factures?page=4")  # 3 pages, not portal_changed
    seen = {d.reference for d in first}

    ListServer.invoices = [(f"N{k}", date(2026, 11, 20 - k)) for k in range(4)] + ListServer.invoices  # 4 new
    top = connector.list_documents(date(2026, 10, 31) - timedelta(days=5))  # the top, as a daily run reads it
    rest = connector.list_documents(None, first.left_at)
    assert {d.reference for d in top} >= {"N0", "N1", "N2", "N3"} and top.left_at is None
    assert [d.reference for d in rest][:4] == ["H00026", "H00027", "H00028", "H00029"]  # pushed down: read again
    lists = [path for path in ListServer.served if path.startswith("/factures")]  # not Chromium's /favicon.ico
    assert rest.left_at == "/factures?page=7" and lists[-4:] == [
        "/factures", "/factures?page=4", "/factures?page=5", "/factures?page=6"]  # through the list's page
    seen |= {d.reference for d in top} | {d.reference for d in rest}

    ListServer.invoices = [(f"M{k}", date(2026, 11, 25 - k)) for k in range(13)] + ListServer.invoices  # 13 more
    last = connector.list_documents(None, rest.left_at)
    assert last.left_at is None and last.pages == 2  # pages 7 and 8 of 77 invoices: the end
    seen |= {d.reference for d in last} | {d.reference for d in connector.list_documents(date(2026, 11, 1))}

    assert seen == {reference for reference, _ in ListServer.invoices}  # nothing missed


@pytest.mark.slow
def test_long_list_browser_a_page_seen_twice_is_still_a_changed_portal(list_server, browser_page):
    ListServer.invoices = history(50, date(2026, 10, 31))
    ListServer.loop_after = 2  # page 2's "next" goes back to page 1
    connector = listing(NextLink("a.next"))(browser_page, list_server)

    with pytest.raises(PortalChanged, match=r"came back to a page already read"):
        connector.list_documents(None)
