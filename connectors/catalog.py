"""The catalogue: every provider Glaneur knows, and the connector of each one it can collect.

An explicit registry (no import-time discovery): adding a supplier means one import and one
line here. Providers listed with ``compatible=False`` are known but cannot be collected; they
are shown so that a user searching for them learns why, and can ask for a connector.
"""

from __future__ import annotations

import difflib
import ipaddress
import sys
import unicodedata
from urllib.parse import urlsplit

from connectors import energie_verte, odoo, papeterie_dupont, powens_billers
from connectors.base import PortalConnector
from glaneur import providers
from glaneur.contract import Provider
from glaneur.errors import NotCompatible, UsageError
from glaneur.settings import get_settings

TELECOM_OUEST = Provider(
    slug="telecom-ouest",
    name="Télécom Ouest",
    compatible=False,
    description="Not compatible: its client area requires a code sent by post at every login, "
    "which no automated collection can receive. Download the invoices by hand, or ask for "
    "e-mailed invoices.",
)

PROVIDERS: dict[str, Provider] = {
    provider.slug: provider
    for provider in (papeterie_dupont.provider, energie_verte.provider, odoo.provider,
                     powens_billers.EnergieVerteViaPowens.provider, powens_billers.ChosenBiller.provider, TELECOM_OUEST)
}

CONNECTORS: dict[str, type[PortalConnector]] = {
    papeterie_dupont.provider.slug: papeterie_dupont.PapeterieDupont,
    odoo.provider.slug: odoo.Odoo,  # a platform: each channel gives its supplier's portal address
    energie_verte.provider.slug: energie_verte.EnergieVerte,
    # Engine POWENS: a biller through the Powens client (connectors/powens_billers.py), same contract.
    powens_billers.EnergieVerteViaPowens.provider.slug: powens_billers.EnergieVerteViaPowens,
    powens_billers.ChosenBiller.provider.slug: powens_billers.ChosenBiller,  # the channel names the biller
}


def get_provider(slug: str) -> Provider:
    """The provider with this slug; a UsageError naming the known slugs (and close matches) otherwise."""
    provider = PROVIDERS.get(slug)
    if provider is not None:
        return provider
    close = difflib.get_close_matches(slug, PROVIDERS, n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    raise UsageError(f"Unknown provider {slug!r}.{hint} Known providers: {', '.join(sorted(PROVIDERS))}.")


def connector_class(slug: str) -> type[PortalConnector]:
    """The connector of a provider; NotCompatible for a provider listed as not collectable."""
    provider = get_provider(slug)
    connector = CONNECTORS.get(slug)
    if connector is None or not provider.compatible:
        raise NotCompatible(f"{provider.name} cannot be collected automatically. {provider.description}".strip())
    return connector


def portal_url(slug: str, channel_url: str | None = None) -> str:
    """The portal's base URL: the channel's own (a platform's channel), else ``GLANEUR_PORTAL_URLS`` when it
    names the provider, else the provider's default."""
    provider = get_provider(slug)
    return channel_url or get_settings().portal_urls.get(slug) or provider.default_url


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_portal_url(slug: str, url: str | None) -> str | None:
    """The portal address a channel of this provider keeps: required for a platform, refused for any other.

    https, or http on a loopback address only (a sandbox or a tunnel on this machine); no login,
    query or fragment in it. Returned without its trailing slash. A UsageError says what is wrong.
    """
    provider = get_provider(slug)
    url = (url or "").strip()
    if not provider.platform:
        if url:
            raise UsageError(
                f"{provider.name} has one portal for all its customers; --portal-url is only for a platform "
                f"(software many suppliers run at their own address): {', '.join(platforms()) or 'none'}."
            )
        return None
    if not url:
        raise UsageError(
            f"{provider.name} is a platform that each supplier runs at its own address: give the supplier's "
            f"portal with --portal-url (e.g. --portal-url https://portal.supplier.example)."
        )
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        raise UsageError(f"Portal URL {url!r} is not a web address; expected https://host[/path].")
    if parts.scheme == "http" and not _loopback(host):
        raise UsageError(f"Portal URL {url!r} uses http on {host}: use https (http is accepted on loopback only).")
    if parts.username or parts.password:
        raise UsageError("The portal URL must not carry a login or password: give them as the channel's account.")
    if parts.query or parts.fragment:
        raise UsageError(f"Portal URL {url!r} has a query or fragment; give the portal's base address only.")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number or out of range
    except ValueError:
        raise UsageError(f"Portal URL {url!r} has an invalid port.") from None
    return url.rstrip("/")


def check_biller(slug: str, biller: str | None) -> str | None:
    """The supplier a channel of POWENS's list collects, as the list names it: required for that provider (and
    checked against POWENS's list), refused for any other."""
    provider = get_provider(slug)
    biller = (biller or "").strip()
    if not provider.chooses_biller:
        if biller:
            raise UsageError(f"{provider.name} is not chosen in POWENS's list: --biller is for the provider 'powens'.")
        return None
    if not biller:
        raise UsageError(
            f"{provider.name}: give the supplier with --biller NAME, as POWENS's list names it "
            "('glaneur providers --powens' lists it)."
        )
    return powens_billers.chosen_biller(biller)


def platforms() -> list[str]:
    return sorted(slug for slug, provider in PROVIDERS.items() if provider.platform)


def _folded(text: str) -> str:
    """Lower case without accents, so that 'energie' finds 'Énergie Verte'."""
    return "".join(c for c in unicodedata.normalize("NFKD", text.casefold()) if not unicodedata.combining(c))


def search(text: str) -> list[Provider]:
    """Providers whose name, slug or description contains every word of ``text``, sorted by name."""
    words = _folded(text).split()
    found = [
        provider
        for provider in PROVIDERS.values()
        if all(word in _folded(f"{provider.name} {provider.slug} {provider.description}") for word in words)
    ]
    return sorted(found, key=lambda provider: _folded(provider.name))


providers.install(sys.modules[__name__])  # the domain looks providers up here, without importing connectors


def release_remembered(session, channel_slug: str, logins: list[str] | None = None) -> list[str]:
    """Before Glaneur forgets the remembered sessions of ``channel_slug``'s accounts (``logins``, else all):
    what each holds at the remote side is undone (:meth:`PortalConnector.release`: a POWENS connection and
    its user). The logins whose session could not be read (the vault key lost), to say so; a remote refusal
    raises, before anything is forgotten."""
    from glaneur.admin import channel_accounts, get_channel
    from glaneur.errors import ConfigurationError, SecretUnreadable
    from glaneur.invoices.collection import remembered_session

    channel = get_channel(session, channel_slug, deleted_ok=True)
    connector = CONNECTORS.get(channel.provider)
    if connector is None or connector.release.__func__ is PortalConnector.release.__func__:
        return []  # its sessions hold nothing at a remote side
    unreadable = []
    for account in channel_accounts(session, channel):
        if logins is not None and account.login not in logins or account.session_ref is None:
            continue
        try:
            remembered = remembered_session(session, account.id)
        except (SecretUnreadable, ConfigurationError):  # the vault key lost: purging still works without it
            unreadable.append(account.login)
            continue
        if remembered is not None:
            connector.release(remembered)
    return unreadable
