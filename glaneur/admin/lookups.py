"""Finding organisations, users, binders, channels, accounts and providers by what a person types."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from sqlmodel import Session, col, select
from sqlmodel.sql.expression import Select, SelectOfScalar

from glaneur import providers
from glaneur.contract import Provider
from glaneur.errors import UsageError
from glaneur.models import Account, Binder, Channel, Organization, User
from glaneur.admin.checks import names_or_none, normalize_email, same_login

LIVE = (col(Channel.deleted_at).is_(None), col(Channel.active).is_(True))
Query = TypeVar("Query", Select, SelectOfScalar)




def get_organization(session: Session, org: Organization | str) -> Organization:
    if isinstance(org, Organization):
        return org
    found = session.exec(select(Organization).where(Organization.slug == org.strip())).first()
    if found is None:
        existing = session.exec(select(Organization.slug).order_by(Organization.slug)).all()
        raise UsageError(f"unknown organisation '{org}'; organisations: {names_or_none(existing)}.")
    return found


def of_organizations(
    session: Session, query: Query, column: Any, org: Organization | str | None, organizations: set[int] | None
) -> Query:
    """``query`` narrowed, by its organisation ``column``, to ``org`` (which must exist) when given, and to
    ``organizations`` (the rows a user may read) when given."""
    if org is not None:
        query = query.where(column == get_organization(session, org).id)
    if organizations is not None:
        query = query.where(col(column).in_(organizations))
    return query


def get_user(session: Session, org: Organization | str, email: str) -> User:
    """A user of ``org`` by e-mail; says so when the address belongs to another organisation."""
    org = get_organization(session, org)
    address = normalize_email(email)
    found = session.exec(select(User).where(User.organization_id == org.id, User.email == address)).first()
    if found is not None:
        return found
    elsewhere = session.exec(select(User).where(User.email == address)).first()
    existing = session.exec(select(User.email).where(User.organization_id == org.id).order_by(User.email)).all()
    if elsewhere is not None:
        raise UsageError(
            f"user '{address}' belongs to another organisation, not '{org.slug}'; "
            f"users of '{org.slug}': {names_or_none(existing)}."
        )
    raise UsageError(f"unknown user '{address}' in organisation '{org.slug}'; users: {names_or_none(existing)}.")


def get_actor(session: Session, org: Organization | str, email: str) -> User:
    """The user acting on ``org`` (``--as``, ``GLANEUR_ACTING_USER``): a user of ``org``, else refused.

    The same address may belong to several organisations (a firm's collaborator): the acting user
    is always the one of the organisation whose data changes.
    """
    return get_user(session, org, email)


def get_person(session: Session, email: str, org: Organization | str | None = None) -> User:
    """A user by e-mail alone when the address belongs to one organisation; ``org`` chooses among several."""
    if org is not None:
        return get_user(session, org, email)
    address = normalize_email(email)
    found = session.exec(
        select(User, Organization.slug)
        .join(Organization, User.organization_id == Organization.id)
        .where(User.email == address)
        .order_by(Organization.slug)
    ).all()
    if not found:
        raise UsageError(f"unknown user '{address}': no organisation has a user with this address.")
    if len(found) > 1:
        raise UsageError(
            f"user '{address}' belongs to several organisations ({', '.join(slug for _, slug in found)}): "
            "say which one."
        )
    return found[0][0]


def get_binder(session: Session, org: Organization | str, binder: Binder | str) -> Binder:
    """A binder ("classeur") of ``org``; one of another organisation is refused, saying so."""
    org = get_organization(session, org)
    existing = session.exec(select(Binder.slug).where(Binder.organization_id == org.id).order_by(Binder.slug)).all()
    if isinstance(binder, Binder):
        if binder.organization_id != org.id:
            raise UsageError(
                f"binder '{binder.slug}' belongs to another organisation, not '{org.slug}'; "
                f"binders of '{org.slug}': {names_or_none(existing)}."
            )
        return binder
    slug = binder.strip()
    found = session.exec(select(Binder).where(Binder.organization_id == org.id, Binder.slug == slug)).first()
    if found is not None:
        return found
    if session.exec(select(Binder).where(Binder.slug == slug)).first() is not None:
        raise UsageError(
            f"binder '{slug}' belongs to another organisation, not '{org.slug}'; "
            f"binders of '{org.slug}': {names_or_none(existing)}."
        )
    raise UsageError(f"unknown binder '{slug}' in organisation '{org.slug}'; binders: {names_or_none(existing)}.")


def get_channel(session: Session, channel: Channel | str, *, deleted_ok: bool = False) -> Channel:
    """A channel ("collecteur") by slug; a deleted one is refused, saying so, unless ``deleted_ok``."""
    if isinstance(channel, Channel):
        found: Channel | None = channel
        slug = channel.slug
    else:
        slug = channel.strip()
        found = session.exec(select(Channel).where(Channel.slug == slug)).first()
    if found is None:
        existing = session.exec(select(Channel.slug).where(*LIVE).order_by(Channel.slug)).all()
        raise UsageError(f"unknown channel '{slug}'; channels: {names_or_none(existing)}.")
    if is_deleted(found) and not deleted_ok:
        raise UsageError(
            f"channel '{found.slug}' was deleted{deleted_on(found.deleted_at)} (définitivement désactivé): it no longer "
            "collects and its credentials were purged. Create a new channel to collect from this supplier again."
        )
    return found


def is_deleted(channel: Channel) -> bool:
    # Deleting a collector ("définitivement désactivé") clears `active`; the collection flow reads that flag.
    return channel.deleted_at is not None or not channel.active


def deleted_on(moment: datetime | None) -> str:
    return f" on {moment:%Y-%m-%d}" if moment is not None else ""


def get_provider(slug: str) -> Provider:
    """A catalogue entry (unknown slugs raise the catalogue's UsageError)."""
    return providers.get_provider(slug.strip())


def check_portal_url(provider: str, url: str | None) -> str | None:
    """The portal address a channel of ``provider`` keeps (a platform's: required; any other's: refused)."""
    return providers.check_portal_url(provider, url)


def check_biller(provider: str, biller: str | None) -> str | None:
    """The POWENS biller a channel of ``provider`` collects (required for POWENS's list; else refused)."""
    return providers.check_biller(provider, biller)


def get_account(session: Session, channel: Channel | str, login: str) -> Account:
    channel = get_channel(session, channel)
    accounts = channel_accounts(session, channel)
    exact = [account for account in accounts if account.login == login.strip()]
    alike = [account for account in accounts if same_login(account.login, login)]
    if exact or len(alike) == 1:
        return (exact or alike)[0]
    raise UsageError(
        f"no account '{login}' on channel '{channel.slug}'; accounts: {names_or_none(a.login for a in accounts)}."
    )


def channel_accounts(session: Session, channel: Channel) -> list[Account]:
    """The channel's accounts, first then second; one removed from the collector is no longer among them."""
    query = select(Account).where(Account.channel_id == channel.id, col(Account.removed_at).is_(None))
    return list(session.exec(query.order_by(Account.position)).all())


def organization_of(session: Session, channel: Channel) -> Organization:
    org = session.get(Organization, channel.organization_id)
    assert org is not None  # foreign key
    return org
