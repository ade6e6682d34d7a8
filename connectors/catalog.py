"""The catalogue: every provider Glaneur knows, and the connector of each one it can collect.

An explicit registry (no import-time discovery): adding a supplier means one import and one
line here. Providers listed with ``compatible=False`` are known but cannot be collected; they
are shown so that a user searching for them learns why, and can ask for a connector.
"""

from __future__ import annotations

import difflib
import sys
import unicodedata

from connectors import energie_verte, papeterie_dupont
from connectors.base import PortalConnector, Provider
from glaneur import providers
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
    provider.slug: provider for provider in (papeterie_dupont.provider, energie_verte.provider, TELECOM_OUEST)
}

CONNECTORS: dict[str, type[PortalConnector]] = {
    papeterie_dupont.provider.slug: papeterie_dupont.PapeterieDupont,
    energie_verte.provider.slug: energie_verte.EnergieVerte,
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


def portal_url(slug: str) -> str:
    """The portal's base URL: ``GLANEUR_PORTAL_URLS`` when it names the provider, else the provider's default."""
    provider = get_provider(slug)
    return get_settings().portal_urls.get(slug) or provider.default_url


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
