"""The provider catalogue as the domain sees it, without importing the connectors.

The catalogue (:mod:`connectors.catalog`) lives with the connectors, in the layer above the domain;
importing it installs it here (:func:`install`), and the domain looks providers up through these
functions. Every entry point imports the catalogue before it touches channels: the CLI's session,
the flows and tasks (they run connectors), the sandbox and the tests' conftest. A domain call made
before that is a programming error, reported as such.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Protocol

from glaneur.contract import Provider
from glaneur.errors import ConfigurationError


class Catalogue(Protocol):
    """What the domain needs of the catalogue: its entries, which have a connector, and where each portal is."""

    PROVIDERS: Mapping[str, Provider]
    CONNECTORS: Mapping[str, object]

    def get_provider(self, slug: str) -> Provider: ...

    def portal_url(self, slug: str, channel_url: str | None = None) -> str: ...

    def check_portal_url(self, slug: str, url: str | None) -> str | None: ...

    def check_biller(self, slug: str, biller: str | None) -> str | None: ...


_installed: Catalogue | None = None


def install(catalogue: Catalogue) -> None:
    """Called by :mod:`connectors.catalog` when it is imported."""
    global _installed
    _installed = catalogue


def catalogue() -> Catalogue:
    if _installed is None:
        raise ConfigurationError(
            "no provider catalogue is installed: import connectors.catalog before using the domain "
            "(the CLI, the flows and the tests' conftest do)."
        )
    return _installed


def get_provider(slug: str) -> Provider:
    """A catalogue entry; an unknown slug raises the catalogue's UsageError, naming the known ones."""
    return catalogue().get_provider(slug)


def all_providers() -> Iterable[Provider]:
    return catalogue().PROVIDERS.values()


def connectors() -> Collection[str]:
    """The slugs of the providers that have a connector in this installation."""
    return catalogue().CONNECTORS.keys()


def portal_url(slug: str, channel_url: str | None = None) -> str:
    """Where a channel's portal is: its own address (a platform's channel), else the provider's."""
    return catalogue().portal_url(slug, channel_url)


def check_portal_url(slug: str, url: str | None) -> str | None:
    """The portal address a channel of this provider keeps: required for a platform, refused for others."""
    return catalogue().check_portal_url(slug, url)


def check_biller(slug: str, biller: str | None) -> str | None:
    """The POWENS biller a channel of this provider collects, as POWENS's list names it: required for the
    provider that chooses one, refused for others."""
    return catalogue().check_biller(slug, biller)
