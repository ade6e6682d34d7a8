"""Requests for new collectors ("Demander l'ajout d'un collecteur"), shipped by the platform team."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sqlmodel import Session, col, select

from glaneur import providers
from glaneur.contract import Provider
from glaneur.errors import UsageError
from glaneur.models import ConnectorRequest, ConnectorRequestState, Organization, User
from glaneur.settings import Settings
from glaneur.admin.checks import check_name, names_or_none, now, parse_choice
from glaneur.admin.lookups import get_organization, get_provider, of_organizations
from glaneur.admin.rights import audit_log_entry, require_member

if TYPE_CHECKING:
    from glaneur.mail import Delivery


URL_MAX = 2000
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


def request_connector(
    session: Session,
    org: Organization | str,
    *,
    supplier: str,
    url: str,
    message: str = "",
    actor: User,
) -> ConnectorRequest:
    """Ask for a collector the catalogue lacks: supplier name, portal address, message.

    Any user of ``org`` may ask. A portal the catalogue already serves, or one the organisation
    already asked for, is refused with what to do instead.
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
    for request in session.exec(
        select(ConnectorRequest).where(
            ConnectorRequest.organization_id == org.id, ConnectorRequest.state == ConnectorRequestState.OPEN
        )
    ).all():
        if portal_host(request.portal_url) == portal_host(url):
            raise UsageError(
                f"organisation '{org.slug}' already asked for a collector for {portal_host(url)} "
                f"(request #{request.id}, {request.supplier_name}, open): the requester is told when it is available."
            )
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
    return request


@dataclass(frozen=True)
class ConnectorRequestEntry:
    request: ConnectorRequest
    organization: str
    requester: str  # e-mail


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
    return [ConnectorRequestEntry(request, slug, email) for request, slug, email in session.exec(query).all()]


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
class ShippedRequest:
    """A request whose collector is available, and how its requester was told."""

    request: ConnectorRequest
    requester: User
    delivery: Delivery  # whether the mail went out, where, and what failed


def ship_connector_request(
    session: Session, request_id: int, provider: str, *, settings: Settings | None = None
) -> ShippedRequest:
    """The platform team marks a request done with the provider that serves it; the requester is told.

    For a supplier whose portal address differs from the provider's (a rebranded site, say);
    :func:`sync_connector_requests` ships the others by matching the portal's host.
    """
    request = get_connector_request(session, request_id)
    if request.state != ConnectorRequestState.OPEN:
        shipped = f" with provider '{request.provider}'" if request.provider else ""
        raise UsageError(f"connector request #{request.id} is already {request.state.value}{shipped}: nothing to do.")
    entry = get_provider(provider)
    if not entry.compatible:
        raise UsageError(
            f"provider '{entry.slug}' is not compatible with automatic collection: a request ships with a "
            "collector that works."
        )
    _mark_shipped(session, request, entry, how="by the platform team")
    return _tell_requester(session, request, settings)


def sync_connector_requests(session: Session, *, settings: Settings | None = None) -> list[ShippedRequest]:
    """Ship every open request whose portal a catalogue provider now serves; tell each requester once.

    Requests shipped earlier whose requester was not told yet (a crash between the two) are told too.
    """
    for request in session.exec(
        select(ConnectorRequest)
        .where(ConnectorRequest.state == ConnectorRequestState.OPEN)
        .order_by(ConnectorRequest.id)
    ).all():
        entry = provider_for_portal(request.portal_url)
        if entry is not None:
            _mark_shipped(session, request, entry, how=f"matched on {portal_host(request.portal_url)}")
    untold = session.exec(
        select(ConnectorRequest)
        .where(ConnectorRequest.state == ConnectorRequestState.SHIPPED, col(ConnectorRequest.notified_at).is_(None))
        .order_by(ConnectorRequest.id)
    ).all()
    return [_tell_requester(session, request, settings) for request in untold]


def _mark_shipped(session: Session, request: ConnectorRequest, provider: Provider, *, how: str) -> None:
    request.state = ConnectorRequestState.SHIPPED
    request.provider = provider.slug
    session.add(request)
    org = session.get(Organization, request.organization_id)
    audit_log_entry(session, org, None, "connector_request.ship", f"request #{request.id}", f"provider {provider.slug}, {how}")
    session.flush()


def _tell_requester(session: Session, request: ConnectorRequest, settings: Settings | None) -> ShippedRequest:
    from glaneur.notify import (
        notify_user,  # the mail engine loads only when a mail is due
    )

    requester = session.get(User, request.requester_user_id)
    org = session.get(Organization, request.organization_id)
    entry = get_provider(request.provider or "")
    delivery = notify_user(
        session,
        requester,
        kind="connector_shipped",
        subject=f"Collector available: {request.supplier_name}",
        body=(
            f"The collector you asked for on {request.created_at:%Y-%m-%d} (Demander l'ajout d'un collecteur) "
            f"is available: {request.supplier_name} ({request.portal_url}) is collected by the provider "
            f"'{entry.slug}' ({entry.name}).\n\n"
            f"To activate it, create a channel in organisation '{org.slug}' with this provider and enter "
            "the credentials of your client area; the first collection starts within the hour."
        ),
        settings=settings,
    )
    request.notified_at = now()
    session.add(request)
    session.flush()
    return ShippedRequest(request, requester, delivery)
