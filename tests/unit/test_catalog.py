"""The explicit registry of providers and connectors."""

from __future__ import annotations

import json

import pytest

from connectors import catalog
from connectors.base import PortalConnector
from connectors.kit import Provider
from connectors.powens_billers import EnergieVerteViaPowens
from glaneur.contract import Engine, SecondFactorKind
from glaneur.errors import NotCompatible, UsageError
from glaneur.settings import reset_settings
from sandbox.server import DEFAULT_PORTS


@pytest.fixture
def fresh_settings(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("GLANEUR_PORTAL_URLS", raising=False)
    reset_settings()
    yield monkeypatch
    reset_settings()


def test_a_provider_listed_as_incompatible_says_why_and_has_no_connector() -> None:
    incompatible = [provider for provider in catalog.PROVIDERS.values() if not provider.compatible]
    assert incompatible, "the catalogue shows at least one provider it cannot collect, with the reason"
    for provider in incompatible:
        assert provider.description and provider.slug not in catalog.CONNECTORS


def test_every_connector_has_its_catalogue_entry() -> None:
    """Each connector's own checks are in test_connector_contract.py, parametrized over the catalogue."""
    assert set(catalog.CONNECTORS) <= set(catalog.PROVIDERS)


def test_a_powens_biller_is_a_connector_of_engine_powens() -> None:
    """Item 7 of issue 17: the same connector contract, the engine POWENS, the biller's code as a second factor."""
    provider = catalog.PROVIDERS["energie-verte-powens"]
    assert provider.engine == Engine.POWENS and provider.compatible
    assert provider.second_factor_kinds == (SecondFactorKind.CODE,)
    assert issubclass(EnergieVerteViaPowens, PortalConnector) and EnergieVerteViaPowens.provider is provider
    assert catalog.CONNECTORS["energie-verte-powens"] is EnergieVerteViaPowens
    assert EnergieVerteViaPowens.biller == "Énergie Verte"


def test_default_urls_are_the_sandbox_default_ports() -> None:
    for slug, port in DEFAULT_PORTS.items():
        assert catalog.PROVIDERS[slug].default_url == f"http://127.0.0.1:{port}"


@pytest.fixture
def three_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    """A catalogue of our own, so that these tests do not change when a supplier is added."""
    providers = [
        Provider(slug="papeterie-dupont", name="Papeterie Dupont", description="Office supplies: monthly PDF bills."),
        Provider(slug="energie-verte", name="Énergie Verte", description="Electricity: monthly PDF invoices."),
        Provider(slug="telecom-ouest", name="Télécom Ouest", compatible=False, description="Not compatible: post."),
    ]
    monkeypatch.setattr(catalog, "PROVIDERS", {provider.slug: provider for provider in providers})
    monkeypatch.setattr(catalog, "CONNECTORS", {"papeterie-dupont": object, "energie-verte": object})


def test_get_provider_and_connector_class(three_providers: None) -> None:
    assert catalog.get_provider("energie-verte").name == "Énergie Verte"
    assert catalog.connector_class("papeterie-dupont") is object


def test_an_unknown_slug_names_the_close_match_and_every_known_slug(three_providers: None) -> None:
    with pytest.raises(UsageError) as error:
        catalog.get_provider("papeterie-dupond")
    message = str(error.value)
    assert "'papeterie-dupond'" in message
    assert "Did you mean papeterie-dupont?" in message
    assert "energie-verte, papeterie-dupont, telecom-ouest" in message


def test_an_unknown_slug_without_close_match_still_lists_the_known_ones(three_providers: None) -> None:
    with pytest.raises(UsageError, match=r"Unknown provider 'zzz'\. Known providers: energie-verte"):
        catalog.connector_class("zzz")


def test_an_incompatible_provider_has_no_connector(three_providers: None) -> None:
    with pytest.raises(NotCompatible, match="Télécom Ouest cannot be collected automatically"):
        catalog.connector_class("telecom-ouest")


def test_portal_url_defaults_and_settings_override(fresh_settings: pytest.MonkeyPatch) -> None:
    assert catalog.portal_url("energie-verte") == "http://127.0.0.1:8702"

    fresh_settings.setenv("GLANEUR_PORTAL_URLS", json.dumps({"energie-verte": "http://127.0.0.1:9999"}))
    reset_settings()

    assert catalog.portal_url("energie-verte") == "http://127.0.0.1:9999"
    assert catalog.portal_url("papeterie-dupont") == "http://127.0.0.1:8701"
    with pytest.raises(UsageError):
        catalog.portal_url("nowhere")


@pytest.mark.parametrize(
    ("text", "slugs"),
    [
        ("", ["energie-verte", "papeterie-dupont", "telecom-ouest"]),
        ("energie", ["energie-verte"]),
        ("ÉNERGIE verte", ["energie-verte"]),
        ("telecom", ["telecom-ouest"]),
        ("papeterie-dupont", ["papeterie-dupont"]),
        ("monthly pdf", ["energie-verte", "papeterie-dupont"]),
        ("banque", []),
    ],
)
def test_search_matches_every_word_without_accents_or_case(three_providers: None, text: str, slugs: list[str]) -> None:
    assert [provider.slug for provider in catalog.search(text)] == slugs
