"""What the pages list: channels with their latest run, the collection history, filed documents."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from sqlalchemy import func
from sqlmodel import Session, col, select

from glaneur.errors import UsageError
from glaneur.models import Account, Channel, CollectionRun, Document, Organization
from glaneur.statuses import Status, describe
from glaneur.admin.checks import parse_date, parse_status
from glaneur.admin.lookups import LIVE, get_channel, of_organizations



@dataclass(frozen=True)
class ChannelSummary:
    """One row of the "Collecteurs" page: the channel, its accounts and its latest run."""

    channel: Channel
    organization: Organization
    accounts: list[Account]
    last_run: CollectionRun | None

    @property
    def message(self) -> str:
        """What the user reads: the channel's own message, else the status table's."""
        return self.channel.status_message or describe(self.channel.status).message


@dataclass(frozen=True)
class HistoryEntry:
    """One row of "Collecte > Historique"."""

    run: CollectionRun
    channel: Channel
    login: str | None  # None for a run that failed before reaching an account

    @property
    def message(self) -> str:
        return self.run.message or describe(self.run.status).message


def list_channels(
    session: Session, org: Organization | str | None = None, *, organizations: set[int] | None = None
) -> list[Channel]:
    """Channels not deleted, by slug, optionally of one organisation (and only of ``organizations`` when given)."""
    query = of_organizations(session, select(Channel).where(*LIVE), Channel.organization_id, org, organizations)
    return list(session.exec(query.order_by(Channel.slug)).all())


def channel_summaries(
    session: Session, org: Organization | str | None = None, *, organizations: set[int] | None = None
) -> list[ChannelSummary]:
    channels = list_channels(session, org, organizations=organizations)
    ids = [channel.id for channel in channels]
    if not ids:
        return []
    orgs = {o.id: o for o in session.exec(select(Organization)).all()}
    accounts: dict[int, list[Account]] = {}
    for account in session.exec(
        select(Account)
        .where(col(Account.channel_id).in_(ids), col(Account.removed_at).is_(None))
        .order_by(Account.position)
    ).all():
        accounts.setdefault(account.channel_id, []).append(account)
    latest = (
        select(CollectionRun.channel_id, func.max(CollectionRun.id).label("run_id"))
        .where(col(CollectionRun.channel_id).in_(ids))
        .group_by(CollectionRun.channel_id)
        .subquery()
    )
    last_runs = {
        run.channel_id: run
        for run in session.exec(select(CollectionRun).join(latest, CollectionRun.id == latest.c.run_id)).all()
    }
    return [
        ChannelSummary(
            channel=channel,
            organization=orgs[channel.organization_id],
            accounts=accounts.get(channel.id, []),
            last_run=last_runs.get(channel.id),
        )
        for channel in channels
    ]


def history(
    session: Session,
    *,
    channel: Channel | str | None = None,
    status: Status | str | None = None,
    since: date | str | None = None,
    limit: int = 50,
    organizations: set[int] | None = None,
) -> list[HistoryEntry]:
    """Collection runs, newest first ("Collecte > Historique"), with the account's login (only the channels of
    ``organizations`` when given)."""
    if limit < 1:
        raise UsageError(f"invalid limit {limit}: expected a positive number.")
    query = (
        select(CollectionRun, Channel, Account.login)
        .join(Channel, CollectionRun.channel_id == Channel.id)
        .outerjoin(Account, CollectionRun.account_id == Account.id)
    )
    if channel is not None:
        # Deleted channels keep their history: look the slug up without the deletion filter.
        slug = channel.slug if isinstance(channel, Channel) else channel.strip()
        if session.exec(select(Channel).where(Channel.slug == slug)).first() is None:
            get_channel(session, slug)  # raises, listing the channels
        query = query.where(Channel.slug == slug)
    if organizations is not None:
        query = query.where(col(Channel.organization_id).in_(organizations))
    if status is not None:
        query = query.where(CollectionRun.status == parse_status(status))
    if since is not None:
        query = query.where(CollectionRun.started_at >= datetime.combine(parse_date(since), time.min, tzinfo=UTC))
    query = query.order_by(col(CollectionRun.started_at).desc(), col(CollectionRun.id).desc()).limit(limit)
    return [HistoryEntry(run=run, channel=ch, login=login) for run, ch, login in session.exec(query).all()]


def list_documents(
    session: Session, *, channel: Channel | str | None = None, limit: int = 100, organizations: set[int] | None = None
) -> list[Document]:
    """Filed documents, newest first (by document date, then filing order); only the channels of
    ``organizations`` when given."""
    if limit < 1:
        raise UsageError(f"invalid limit {limit}: expected a positive number.")
    query = select(Document)
    if channel is not None:
        slug = channel.slug if isinstance(channel, Channel) else channel.strip()
        found = session.exec(select(Channel).where(Channel.slug == slug)).first()
        if found is None:
            get_channel(session, slug)  # raises, listing the channels
        query = query.where(Document.channel_id == found.id)
    if organizations is not None:
        query = query.where(col(Document.channel_id).in_(
            select(Channel.id).where(col(Channel.organization_id).in_(organizations))))
    query = query.order_by(col(Document.document_date).desc(), col(Document.id).desc()).limit(limit)
    return list(session.exec(query).all())


def count_documents(session: Session, channel: Channel) -> int:
    """How many documents the channel has filed (all kept when it is deleted)."""
    return session.exec(select(func.count()).select_from(Document).where(Document.channel_id == channel.id)).one()


def channel_slugs(session: Session, ids: Iterable[int]) -> dict[int, str]:
    """Channel id -> slug, for listings that show which channel a row came from."""
    wanted = set(ids)
    if not wanted:
        return {}
    rows = session.exec(select(Channel.id, Channel.slug).where(col(Channel.id).in_(wanted))).all()
    return {channel_id: slug for channel_id, slug in rows}
