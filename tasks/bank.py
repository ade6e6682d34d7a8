"""The steps of a bank channel's daily collection through Powens, as Prefect tasks.

Transient failures (Powens unreachable, 5xx, 429) are retried, and a 429's ``Retry-After`` is
honoured before anything else; a refused token, a connection in an error state or a malformed
answer is not. Tasks take and return plain values (ids, counts): the Powens token is read from
the vault inside each task and never becomes a task parameter, a result or a log line.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, TypeVar

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from connectors.powens import Connection, PowensApiError, PowensClient, RateLimitExceeded, as_status_error
from glaneur import bank
from glaneur.bank import files as bank_files
from glaneur.db import session_scope
from glaneur.errors import GlaneurError, PortalChanged, StorageError
from glaneur.settings import get_settings
from glaneur.storage import StorageConflict, get_storage
from tasks.collect import is_transient

if TYPE_CHECKING:
    from sqlmodel import Session

    from glaneur.models import BankConnection

T = TypeVar("T")
MAX_RETRY_AFTER_SECONDS = 120.0  # longer waits end the run as rate_limited; tomorrow's run catches up
FIRST_SYNC_LOOKBACK_DAYS = 90


@contextmanager
def client_for(channel_id: int) -> Iterator[tuple[PowensClient, int | None]]:
    """A client holding the channel's Powens token (read from the vault, kept in memory only), and the id of
    the channel's connection at Powens."""
    settings = bank.powens_settings()
    api_url, client_id, _ = settings.require()
    with channel_connection(channel_id) as (session, connection):
        token, powens_id = bank.read_token(session, connection), connection.powens_connection_id
    timeout = get_settings().navigation_timeout_seconds
    with PowensClient(api_url, client_id=client_id, token=token, timeout=timeout) as client:
        yield client, powens_id


@contextmanager
def channel_connection(channel_id: int) -> Iterator[tuple[Session, BankConnection]]:
    """A unit of work on the bank channel's connection (committed when the block ends without error)."""
    from glaneur.models import Channel

    with session_scope() as session:
        _, connection = bank.get_connection(session, session.get(Channel, channel_id).slug)
        yield session, connection


def call(fn: Callable[[], T]) -> T:
    """``fn()``, waiting out a 429's ``Retry-After`` (bounded); API errors become the status's typed error."""
    attempts = max(1, get_settings().retries + 1)
    for attempt in range(attempts):
        try:
            return fn()
        except RateLimitExceeded as error:
            wait = error.retry_after if error.retry_after is not None else get_settings().retry_base_seconds
            if attempt + 1 >= attempts or wait > MAX_RETRY_AFTER_SECONDS:
                raise as_status_error(error) from None
            get_run_logger().info("Powens asked to wait %.0f s (429); waiting", wait)
            time.sleep(wait)
        except PowensApiError as error:
            raise as_status_error(error) from None
    raise AssertionError("unreachable")


_step = task(cache_policy=NO_CACHE, retry_condition_fn=is_transient, retry_jitter_factor=0.2)


@_step(name="sync-connection")
def sync_connection(channel_id: int) -> Connection:
    """Ask Powens to synchronise, and record the connection's state (null, or a documented error state)."""
    with client_for(channel_id) as (client, powens_id):
        remote = call(lambda: client.sync(powens_id))
    with channel_connection(channel_id) as (session, connection):
        bank.record_state(session, connection, remote.state, remote.error_message)
    return remote


@_step(name="list-accounts")
def list_accounts(channel_id: int) -> int:
    """Record the connection's accounts, enabling the disabled ones (Powens synchronises only enabled accounts)."""
    with client_for(channel_id) as (client, powens_id):
        accounts = call(lambda: client.accounts(powens_id))
        for account in accounts:
            if account.disabled:
                call(lambda: client.enable_account(account.id))
        accounts = call(lambda: client.accounts(powens_id))
    with channel_connection(channel_id) as (session, connection):
        return len(bank.record_accounts(session, connection, accounts))


@dataclass(frozen=True)
class FetchOutcome:
    new: int
    updated: int
    unchanged: int
    pages: int


@_step(name="fetch-movements")
def fetch_movements(channel_id: int, run_id: int, page_size: int = 1000, full_pass: bool = False) -> FetchOutcome:
    """Every movement changed since the cursor (``last_update``), page by page (``_links.next``).

    Each page is committed as it comes; the cursor moves only once every page is in, so a run cut
    short is read again from the same cursor by the next one, and finds what it already has.
    A ``full_pass`` ignores the cursor and reads the whole window (``full_pass_lookback_days``):
    what it already has counts as unchanged, what changed unseen is updated.
    """
    tally = bank.Tally()
    pages = 0
    seen = []
    with client_for(channel_id) as (client, _):
        with channel_connection(channel_id) as (session, connection):
            cursor = None if full_pass else connection.cursor
        lookback = bank.powens_settings().full_pass_lookback_days if full_pass else FIRST_SYNC_LOOKBACK_DAYS
        min_date = None if cursor else date.today() - timedelta(days=lookback)
        page = call(lambda: client.transactions_page(last_update=cursor, min_date=min_date, limit=page_size))
        links: set[str] = set()
        while page is not None:
            pages += 1
            with channel_connection(channel_id) as (session, connection):
                accounts = {a.powens_id: a for a in bank.connection_accounts(session, connection)}
                bank.upsert_movements(session, accounts, page.transactions, run_id, tally)
            seen.extend(t.last_update for t in page.transactions if t.last_update)
            if page.next_href in links:
                raise PortalChanged("Powens' '_links.next' points to a page already read; nothing more was read.")
            links.add(page.next_href or "")
            current = page
            page = call(lambda: client.next_page(current))
    with channel_connection(channel_id) as (session, connection):
        newest = max(seen, default=None)
        if newest is not None and (connection.cursor is None or newest > _utc(connection.cursor)):
            connection.cursor = newest
            session.add(connection)
    return FetchOutcome(tally.new, tally.updated, tally.unchanged, pages)


@_step(name="file-movements")
def file_movements(channel_id: int, plan_org: str, plan_binder: str, plan_channel: str, run_id: int, day: date) -> list[str]:
    """Each account's new or updated movements as the day's CSV, OFX and CAMT.053 files; returns the keys written.

    Storage first, then the rows are marked filed: if marking is lost, the next run writes the same
    bytes to the same key (one object). A later run of the same day with more movements writes a
    second part rather than replacing the first file.
    """
    storage = get_storage(get_settings())
    keys: list[str] = []
    with channel_connection(channel_id) as (session, connection):
        for account in bank.connection_accounts(session, connection):
            pending = bank.movements_to_file(session, account)
            if not pending:
                continue
            contents = {"csv": bank_files.to_csv(pending), "ofx": bank_files.to_ofx(account, pending, day),
                        "xml": bank_files.to_camt053(account, pending, day, created=f"{day.isoformat()}T23:59:59")}
            for part in range(1, 100):
                names = bank_files.file_keys(organization=plan_org, binder=plan_binder, channel=plan_channel,
                                             account=account, day=day, part=part)
                try:
                    for ext, key in names.items():
                        storage.put(key, contents[ext], metadata={"channel": plan_channel, "run": str(run_id),
                                                                  "account": str(account.powens_id),
                                                                  "movements": str(len(pending))},
                                    content_type=bank_files.CONTENT_TYPES[ext])
                except StorageConflict:
                    continue  # this part holds other movements: the next part
                keys.extend(names.values())
                break
            else:
                raise StorageError(f"Too many files for account {account.powens_id} on {day}.")
            bank.mark_filed(session, pending)
    return keys


def _utc(moment):
    from datetime import UTC

    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def status_error(connection: Connection, channel: str) -> GlaneurError:
    """The typed error of a connection's state, saying what to do next."""
    from connectors.powens import _ERROR_CLASSES, RECONNECT_STATES

    cls = _ERROR_CLASSES.get(connection.status, GlaneurError)
    said = f"POWENS: {connection.error_message or connection.state}."
    if connection.state in RECONNECT_STATES:
        said += (" The account holder must reconnect the bank (the bank's second factor, or a new password, in the "
                 f"POWENS page): glaneur bank reconnect {channel}.")
    error = cls(said)
    if cls is GlaneurError:
        error.status = connection.status
    return error
