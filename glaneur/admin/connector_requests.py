"""Requests for new collectors ("Demander l'ajout d'un collecteur"), shipped by the platform team."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sqlmodel import Session, col, select

from glaneur import providers
from glaneur.contract import Provider
from glaneur.errors import UsageError
from glaneur.models import ConnectorRequest, ConnectorRequestFollower, ConnectorRequestState, Organization, User
from glaneur.settings import Settings
from glaneur.admin.checks import check_name, names_or_none, now, parse_choice
from glaneur.admin.lookups import get_organization, get_provider, of_organizations
from glaneur.admin.rights import audit_log_entry, require_member

if TYPE_CHECKING:
    from glaneur.mail import Delivery


URL_MAX = 2000
REASON_MAX = 2000
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_portal_url(url: str) -> str:
    """The address of a supplier's client area: http(s), with a host, without credentials in it."""
    text = url.strip()
    expected = "expected the address of the supplier's client area, like https://espace-client.example.com"
    if not text or len(text) > URL_MAX or any(c.isspace() for c in text):
        raise UsageError(f"invalid portal address '{url}': {expected}.")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018  raises on a port that is not a number
    except ValueError:
        raise UsageError(f"invalid portal address '{url}': {expected}.") from None
    if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
        raise UsageError(f"invalid portal address '{url}': {expected}.")
    if parts.username or parts.password:
        # Never a secret in a request: it is stored in clear and shown to the team.
        raise UsageError("the portal address contains a login or password: give the address alone, like https://espace-client.example.com.")
    return text


def portal_host(url: str) -> str:
    """``https://www.Dupont.fr/login`` -> ``dupont.fr``; a port is kept when it is not the default one."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower().removeprefix("www.")
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{host}:{port}" if port and port != _DEFAULT_PORTS.get(parts.scheme.lower()) else host


def provider_for_portal(url: str) -> Provider | None:
    """The compatible catalogue provider whose portal is at ``url``'s host, if any."""
    host = portal_host(url)
    for provider in providers.all_providers():
        if provider.compatible and provider.default_url and portal_host(provider.default_url) == host:
            return provider
    return None


@dataclass(frozen=True)
class AskedRequest:
    """What asking did: a new request, or the organisation's open one for that portal, now followed by the asker."""

    request: ConnectorRequest
    joined: bool = False  # True when another user had asked first: the asker is told too when it ships
    first_asker: str = ""  # that user's e-mail, when joined


def request_connector(
    session: Session,
    org: Organization | str,
    *,
    supplier: str,
    url: str,
    message: str = "",
    actor: User,
) -> AskedRequest:
    """Ask for a collector the catalogue lacks: supplier name, portal address, message.

    Any user of ``org`` may ask. A portal the catalogue already serves, or one shipped for the
    organisation already, is refused with what to do instead. When another user of the organisation
    asked for that portal and the request is still open, the asker joins it ("Vous serez notifié dès
    qu'il sera disponible" holds for every user who asked).
    """
    org = get_organization(session, org)
    actor = require_member(actor, org)
    supplier = check_name(supplier, "supplier")
    url = normalize_portal_url(url)
    existing = provider_for_portal(url)
    if existing is not None:
        raise UsageError(
            f"the catalogue already has a collector for {portal_host(url)}: provider '{existing.slug}' "
            f"({existing.name}). Create a channel with it instead of asking for a new one."
        )
    same_portal = [
        request
        for request in session.exec(
            select(ConnectorRequest)
            .where(ConnectorRequest.organization_id == org.id, ConnectorRequest.state != ConnectorRequestState.REJECTED)
            .order_by(ConnectorRequest.id)
        ).all()
        if portal_host(request.portal_url) == portal_host(url)
    ]
    for request in same_portal:
        if request.state == ConnectorRequestState.SHIPPED:
            raise UsageError(
                f"the collector for {portal_host(url)} is available since request #{request.id}: provider "
                f"'{request.provider}'. Create a channel with it instead of asking again."
            )
    if same_portal:
        return _follow(session, org, same_portal[0], actor)
    request = ConnectorRequest(
        organization_id=org.id,
        requester_user_id=actor.id,
        supplier_name=supplier,
        portal_url=url,
        message=message.strip(),
        state=ConnectorRequestState.OPEN,
        created_at=now(),
    )
    session.add(request)
    session.flush()
    audit_log_entry(session, org, actor, "connector_request.create", f"request #{request.id}", f"{supplier} at {url}")
    session.flush()
    return AskedRequest(request)


def _follow(session: Session, org: Organization, request: ConnectorRequest, actor: User) -> AskedRequest:
    first = session.get(User, request.requester_user_id)
    already = f"{org.slug!r} already asked for a collector for {portal_host(request.portal_url)} (request #{request.id}"
    if actor.id in {request.requester_user_id, *_follower_ids(session, request)}:
        raise UsageError(f"you already asked: organisation {already}, open); you are told when it is available.")
    session.add(ConnectorRequestFollower(request_id=request.id, user_id=actor.id, created_at=now()))
    session.flush()
    audit_log_entry(session, org, actor, "connector_request.follow", f"request #{request.id}",
                    f"{request.supplier_name} at {request.portal_url}")
    session.flush()
    return AskedRequest(request, joined=True, first_asker=first.email)


def _follower_ids(session: Session, request: ConnectorRequest) -> list[int]:
    return list(session.exec(
        select(ConnectorRequestFollower.user_id).where(ConnectorRequestFollower.request_id == request.id)
    ).all())


@dataclass(frozen=True)
class ConnectorRequestEntry:
    request: ConnectorRequest
    organization: str
    requester: str  # e-mail
    followers: tuple[str, ...] = ()  # the e-mails of the users who asked for the same portal after


def list_connector_requests(
    session: Session,
    *,
    org: Organization | str | None = None,
    state: ConnectorRequestState | str | None = None,
    organizations: set[int] | None = None,
) -> list[ConnectorRequestEntry]:
    """Requests for new collectors with their state, newest first (only ``organizations``' when given)."""
    query = (
        select(ConnectorRequest, Organization.slug, User.email)
        .join(Organization, ConnectorRequest.organization_id == Organization.id)
        .join(User, ConnectorRequest.requester_user_id == User.id)
    )
    query = of_organizations(session, query, ConnectorRequest.organization_id, org, organizations)
    if state is not None:
        query = query.where(
            ConnectorRequest.state == parse_choice(ConnectorRequestState, state, "request state", "states")
        )
    query = query.order_by(col(ConnectorRequest.created_at).desc(), col(ConnectorRequest.id).desc())
    rows = session.exec(query).all()
    followers: dict[int, list[str]] = {}
    for request_id, email in session.exec(
        select(ConnectorRequestFollower.request_id, User.email)
        .join(User, ConnectorRequestFollower.user_id == User.id)
        .where(col(ConnectorRequestFollower.request_id).in_([request.id for request, _, _ in rows]))
        .order_by(ConnectorRequestFollower.id)
    ).all():
        followers.setdefault(request_id, []).append(email)
    return [
        ConnectorRequestEntry(request, slug, email, tuple(followers.get(request.id, ())))
        for request, slug, email in rows
    ]


def get_connector_request(session: Session, request_id: int) -> ConnectorRequest:
    found = session.get(ConnectorRequest, request_id)
    if found is None:
        open_ids = session.exec(
            select(ConnectorRequest.id)
            .where(ConnectorRequest.state == ConnectorRequestState.OPEN)
            .order_by(ConnectorRequest.id)
        ).all()
        raise UsageError(f"unknown connector request #{request_id}; open requests: {names_or_none(f'#{i}' for i in open_ids)}.")
    return found


@dataclass(frozen=True)
class ToldRequest:
    """A request closed (shipped or rejected), one of the users who asked, and how they were told."""

    request: ConnectorRequest
    requester: User
    delivery: Delivery  # whether the mail went out, where, and what failed


def ship_connector_request(
    session: Session, request_id: int, provider: str, *, settings: Settings | None = None
) -> list[ToldRequest]:
    """The platform team marks a request done with the provider that serves it; everyone who asked is told.

    For a supplier whose portal address differs from the provider's (a rebranded site, say);
    :func:`sync_connector_requests` ships the others by matching the portal's host.
    """
    request = _open_request(session, request_id)
    entry = get_provider(provider)
    if not entry.compatible:
        raise UsageError(
            f"provider '{entry.slug}' is not compatible with automatic collection: a request ships with a "
            "collector that works."
        )
    _mark_shipped(session, request, entry, how="by the platform team")
    return _tell_askers(session, request, settings)


def reject_connector_request(
    session: Session, request_id: int, reason: str, *, settings: Settings | None = None
) -> list[ToldRequest]:
    """The platform team cannot build this collector (a portal behind a code sent by post, no invoices
    online...): the request is closed with the reason, and everyone who asked is told why."""
    request = _open_request(session, request_id)
    reason = " ".join(reason.split())
    if not reason:
        raise UsageError("the reason is empty: tell the requester why the collector cannot be built (--reason).")
    if len(reason) > REASON_MAX:
        raise UsageError(f"the reason is {len(reason)} characters long; at most {REASON_MAX}.")
    request.state = ConnectorRequestState.REJECTED
    request.reason = reason
    session.add(request)
    org = session.get(Organization, request.organization_id)
    audit_log_entry(session, org, None, "connector_request.reject", f"request #{request.id}", reason)
    session.flush()
    return _tell_askers(session, request, settings)


def sync_connector_requests(session: Session, *, settings: Settings | None = None) -> list[ToldRequest]:
    """Ship every open request whose portal a catalogue provider now serves; tell each user who asked once.

    Requests closed earlier whose askers were not all told yet (a crash between two mails) are told too.
    """
    for request in session.exec(
        select(ConnectorRequest)
        .where(ConnectorRequest.state == ConnectorRequestState.OPEN)
        .order_by(ConnectorRequest.id)
    ).all():
        entry = provider_for_portal(request.portal_url)
        if entry is not None:
            _mark_shipped(session, request, entry, how=f"matched on {portal_host(request.portal_url)}")
    closed = col(ConnectorRequest.state).in_([ConnectorRequestState.SHIPPED, ConnectorRequestState.REJECTED])
    untold = session.exec(
        select(ConnectorRequest)
        .where(closed)
        .where(
            col(ConnectorRequest.notified_at).is_(None)
            | col(ConnectorRequest.id).in_(
                select(ConnectorRequestFollower.request_id).where(col(ConnectorRequestFollower.notified_at).is_(None))
            )
        )
        .order_by(ConnectorRequest.id)
    ).all()
    return [told for request in untold for told in _tell_askers(session, request, settings)]


def _open_request(session: Session, request_id: int) -> ConnectorRequest:
    request = get_connector_request(session, request_id)
    if request.state != ConnectorRequestState.OPEN:
        shipped = f" with provider '{request.provider}'" if request.provider else ""
        raise UsageError(f"connector request #{request.id} is already {request.state.value}{shipped}: nothing to do.")
    return request


def _mark_shipped(session: Session, request: ConnectorRequest, provider: Provider, *, how: str) -> None:
    request.state = ConnectorRequestState.SHIPPED
    request.provider = provider.slug
    session.add(request)
    org = session.get(Organization, request.organization_id)
    audit_log_entry(session, org, None, "connector_request.ship", f"request #{request.id}", f"provider {provider.slug}, {how}")
    session.flush()


def _tell_askers(session: Session, request: ConnectorRequest, settings: Settings | None) -> list[ToldRequest]:
    """Tell the requester, then each follower, who was not told yet; each is marked told after their own mail."""
    told = []
    if request.notified_at is None:
        told.append(_tell(session, request, session.get(User, request.requester_user_id), settings))
        request.notified_at = now()
        session.add(request)
        session.flush()
    for follower in session.exec(
        select(ConnectorRequestFollower)
        .where(ConnectorRequestFollower.request_id == request.id, col(ConnectorRequestFollower.notified_at).is_(None))
        .order_by(ConnectorRequestFollower.id)
    ).all():
        told.append(_tell(session, request, session.get(User, follower.user_id), settings))
        follower.notified_at = now()
        session.add(follower)
        session.flush()
    return told


def _tell(session: Session, request: ConnectorRequest, asker: User, settings: Settings | None) -> ToldRequest:
    from glaneur.notify import (
        notify_user,  # the mail engine loads only when a mail is due
    )

    org = session.get(Organization, request.organization_id)
    asked = f"The collector asked for on {request.created_at:%Y-%m-%d} (Demander l'ajout d'un collecteur)"
    if request.state == ConnectorRequestState.REJECTED:
        subject = f"Collector not possible: {request.supplier_name}"
        body = (
            f"{asked} for {request.supplier_name} ({request.portal_url}) cannot be built: {request.reason}\n\n"
            "If this supplier is in POWENS's list (glaneur providers --powens), a channel with the provider "
            f"'powens' and --biller NAME collects it in organisation '{org.slug}'. A new request may be sent "
            "if the portal changes."
        )
        kind = "connector_rejected"
    else:
        entry = get_provider(request.provider or "")
        subject = f"Collector available: {request.supplier_name}"
        body = (
            f"{asked} is available: {request.supplier_name} ({request.portal_url}) is collected by the provider "
            f"'{entry.slug}' ({entry.name}).\n\n"
            f"To activate it, create a channel in organisation '{org.slug}' with this provider and enter "
            "the credentials of your client area; the first collection starts within the hour."
        )
        kind = "connector_shipped"
    delivery = notify_user(session, asker, kind=kind, subject=subject, body=body, settings=settings)
    return ToldRequest(request, asker, delivery)
