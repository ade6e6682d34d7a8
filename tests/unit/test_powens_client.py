"""The Powens client: parsing on payloads shaped like the documentation's examples, then HTTP against the sandbox."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import httpx
import pytest

from connectors import powens
from glaneur.errors import PortalChanged, PortalUnavailable
from glaneur.statuses import Status

# Shaped like docs.powens.com "Bank transactions" (List bank transactions) and "Connections".
DOC_TRANSACTIONS = {
    "transactions": [
        {
            "id": 309,
            "id_account": 17,
            "application_date": "2024-03-28",
            "date": "2024-03-28",
            "datetime": None,
            "vdate": "2024-03-29",
            "rdate": "2024-03-27",
            "bdate": "2024-03-28",
            "value": -25.5,
            "gross_value": -25.5,
            "type": "card",
            "original_wording": "CB BOULANGERIE 27/03",
            "simplified_wording": "Boulangerie",
            "wording": "Boulangerie",
            "categories": [],
            "date_scraped": "2024-03-28 08:00:00",
            "coming": False,
            "active": True,
            "comment": None,
            "last_update": "2024-03-28 08:00:00",
            "deleted": None,
        }
    ],
    "first_date": "2024-03-28",
    "last_date": "2024-03-28",
    "result_min_date": None,
    "result_max_date": None,
    "_links": {"next": {"href": "/2.0/users/me/transactions?limit=1&offset=1"}},
}

DOC_CONNECTION = {
    "id": 12,
    "id_user": 3,
    "id_connector": 40,
    "state": "SCARequired",
    "error": "SCARequired",
    "error_message": "Your institution requires a new step for validating your credentials.",
    "last_update": "2024-03-28 08:00:00",
    "created": "2024-03-01 10:00:00",
    "active": True,
    "last_push": None,
    "next_try": None,
}


def test_transactions_page_follows_the_documented_shape():
    page = powens.parse_transactions_page(DOC_TRANSACTIONS)
    [movement] = page.transactions
    assert movement.id == 309 and movement.id_account == 17
    assert movement.value == Decimal("-25.5")  # exact, through str
    assert movement.date == date(2024, 3, 28) and movement.rdate == date(2024, 3, 27)
    assert movement.wording == "Boulangerie" and movement.original_wording == "CB BOULANGERIE 27/03"
    assert page.next_href == "/2.0/users/me/transactions?limit=1&offset=1"
    assert powens.parse_transactions_page({**DOC_TRANSACTIONS, "_links": {}}).next_href is None


@pytest.mark.parametrize(
    "broken",
    [
        {},
        {"transactions": "nope"},
        {"transactions": [{"id": "309", "id_account": 17, "date": "2024-03-28", "value": 1}]},
        {"transactions": [{"id": 1, "id_account": 17, "date": "28/03/2024", "value": 1}]},
        {"transactions": [{"id": 1, "id_account": 17, "date": "2024-03-28", "value": "NaN"}]},
        {"transactions": [{"id": 1, "id_account": 17, "date": "2024-03-28"}]},
    ],
)
def test_a_malformed_answer_is_portal_changed(broken):
    with pytest.raises(PortalChanged):
        powens.parse_transactions_page(broken)


def test_connection_state_maps_onto_the_one_vocabulary():
    connection = powens.parse_connection(DOC_CONNECTION)
    assert connection.status == Status.AWAITING_SECOND_FACTOR
    assert "new step" in connection.error_message
    assert powens.parse_connection({**DOC_CONNECTION, "state": None}).status == Status.OK
    expected = {
        "wrongpass": Status.WRONG_CREDENTIALS, "passwordExpired": Status.CREDENTIALS_EXPIRED,
        "actionNeeded": Status.ACTION_NEEDED, "additionalInformationNeeded": Status.ACTION_NEEDED,
        "SCARequired": Status.AWAITING_SECOND_FACTOR, "webauthRequired": Status.AWAITING_SECOND_FACTOR,
        "decoupled": Status.AWAITING_SECOND_FACTOR, "rateLimiting": Status.RATE_LIMITED,
        "websiteUnavailable": Status.PORTAL_UNAVAILABLE, "bug": Status.INTERNAL_ERROR,
        "notSupported": Status.NOT_COMPATIBLE, "validating": Status.RUNNING,
    }
    for state, status in expected.items():
        assert powens.status_of_state(state) == status
    assert powens.status_of_state("somethingNew") == Status.INTERNAL_ERROR


def test_documented_error_json_and_rate_limit():
    request = httpx.Request("GET", "https://x.biapi.pro/2.0/users/me/transactions")
    error = powens.error_from_response(httpx.Response(
        429, headers={"Retry-After": "17"}, json={"code": "rateLimiting", "description": "slow down"}, request=request))
    assert isinstance(error, powens.RateLimitExceeded) and error.retry_after == 17 and error.status == Status.RATE_LIMITED
    assert error.retried
    revoked = powens.error_from_response(httpx.Response(401, json={"code": "invalidToken"}, request=request))
    assert isinstance(revoked, powens.TokenRevoked) and revoked.status == Status.AWAITING_CREDENTIALS
    wrongpass = powens.error_from_response(httpx.Response(400, json={"code": "wrongpass", "description": "bad"}, request=request))
    assert wrongpass.status == Status.WRONG_CREDENTIALS and not wrongpass.retried
    not_json = powens.error_from_response(httpx.Response(502, text="<html>Bad gateway</html>", request=request))
    assert not_json.status == Status.PORTAL_UNAVAILABLE


def test_connectors_say_banks_from_billers():
    connectors = powens.parse_list({"connectors": [
        {"id": 40, "name": "Connecteur de test", "capabilities": ["bank", "document"],
         "fields": [{"name": "login", "label": "Identifiant", "type": "text"}]},
        {"id": 60, "name": "Énergie Verte", "capabilities": ["document"], "fields": []},
    ]}, "connectors", powens.parse_connector)
    assert [c.is_bank for c in connectors] == [True, False]
    assert connectors[1].is_biller and connectors[0].fields[0].name == "login"


def test_restricted_connectors_are_read_and_refused_before_any_consent():
    """Powens' ``Connector.restricted`` (its OpenAPI description: "If true, new connections cannot be added with
    this connector"): parsed as a boolean, absent meaning open; a restricted bank is refused with the help page's
    advice, an open one is the match."""
    from glaneur import bank
    from glaneur.errors import NotCompatible
    from glaneur.models import Bank

    connectors = powens.parse_list({"connectors": [
        {"id": 41, "name": "Banque Exemple", "capabilities": ["bank", "transfer"], "restricted": False},
        {"id": 43, "name": "Banque Réservée", "capabilities": ["bank"], "restricted": True, "hidden": False},
        {"id": 44, "name": "Banque Ancienne", "capabilities": ["bank"], "restricted": None},
    ]}, "connectors", powens.parse_connector)
    assert [c.restricted for c in connectors] == [False, True, False]
    with pytest.raises(PortalChanged, match="'restricted' is not a boolean"):
        powens.parse_list({"connectors": [{"id": 1, "name": "x", "capabilities": ["bank"], "restricted": "no"}]},
                          "connectors", powens.parse_connector)

    def referential(name: str) -> Bank:
        return Bank(organization_id=1, name=name, name_key=bank.name_key(name))

    assert bank.match_connector(referential("banque exemple"), connectors).id == 41
    with pytest.raises(NotCompatible) as refused:
        bank.match_connector(referential("BANQUE RESERVEE"), connectors)
    said = str(refused.value)
    assert "cannot be connected through this POWENS client" in said and "restricted" in said
    assert bank.RESTRICTED_IN_POWENS in said and "contactez le support technique" in said
    with pytest.raises(NotCompatible, match="La banque n'apparaît pas dans la liste POWENS"):
        bank.match_connector(referential("Banque Inconnue"), connectors)
    assert bank.find_connector(referential("Banque Réservée"), connectors).id == 43  # found, but not connectable


def test_webview_url_is_the_documented_one():
    url = powens.webview_url("https://webview.powens.com", "connect", domain="acme.biapi.pro", client_id="42",
                             redirect_uri="https://glaneur.example/powens/callback", code="abc")
    assert url == ("https://webview.powens.com/connect?domain=acme.biapi.pro&client_id=42&redirect_uri="
                   "https%3A%2F%2Fglaneur.example%2Fpowens%2Fcallback&code=abc")
    # Billers: the names and shapes of Powens' webview SDK (connectorCapabilities, connectorUuids: lists).
    billers = powens.webview_url("https://webview.powens.com", "connect", domain="acme.biapi.pro", client_id="42",
                                 redirect_uri="https://g.example/cb", code="abc", capabilities=["document", "bank"],
                                 connector_uuids=["338178e6-3d01-564f-9a7b-52ca442459bf", "2e9d4a1c"])
    assert billers.endswith("&connector_uuids=338178e6-3d01-564f-9a7b-52ca442459bf%2C2e9d4a1c"
                            "&connector_capabilities=document%2Cbank")


# --- over HTTP, against the sandbox ------------------------------------------------------------


@pytest.fixture
def sandbox_world():
    from sandbox.powens import PowensWorld, start_powens

    world = PowensWorld("client-1", "secret-1")
    with start_powens(world) as handle:
        yield world, handle.urls["powens"]


def test_client_against_the_sandbox(sandbox_world):
    world, url = sandbox_world
    client = powens.PowensClient(url, client_id="client-1", client_secret="secret-1")
    token, user = client.init_user()
    assert token and user == 1 and token not in repr(client)
    assert client.temporary_code()
    # The login fields come only with expand=fields, as documented: the client asks for them.
    test_connector = next(c for c in client.connectors() if c.name == "Connecteur de test")
    assert [f.name for f in test_connector.fields] == ["login", "password"]
    assert not test_connector.restricted  # the sandbox serves one restricted bank beside the open ones
    assert [c.name for c in client.connectors() if c.restricted] == ["Banque Réservée"]
    assert "fields" not in httpx.get(f"{url}/2.0/connectors").json()["connectors"][0]
    connection = world.create_connection(user, 40, "ok")
    [found] = client.connections()
    assert found.id == connection.id and found.status == Status.OK
    accounts = client.accounts(connection.id)
    assert [a.disabled for a in accounts] == [False, True]
    client.enable_account(accounts[1].id)
    assert not any(a.disabled for a in client.accounts(connection.id))
    pages = list(client.transaction_pages(limit=7))
    movements = [m for page in pages for m in page.transactions]
    assert len(pages) > 1 and len({m.id for m in movements}) == len(movements)
    assert {m.id for m in movements} == {m.id for m in next(client.transaction_pages(limit=1000)).transactions}

    world.truncate_next = 1
    with pytest.raises(PortalChanged):
        list(client.transaction_pages())
    world.revoke_user(user)
    with pytest.raises(powens.TokenRevoked):
        client.connections()
    with pytest.raises(powens.PowensApiError) as refused:
        powens.PowensClient(url, client_id="client-1", client_secret="wrong").init_user()
    assert "secret-1" not in str(refused.value)


def test_rate_limit_answers_429_with_retry_after(sandbox_world):
    world, url = sandbox_world
    world.rate_limit = 3
    client = powens.PowensClient(url, client_id="client-1")
    for _ in range(3):
        client.connectors()
    with pytest.raises(powens.RateLimitExceeded) as limited:
        client.connectors()
    assert limited.value.retry_after and 0 < limited.value.retry_after <= 60


def test_unreachable_is_portal_unavailable():
    client = powens.PowensClient("http://127.0.0.1:9", client_id="x", timeout=2)
    with pytest.raises(PortalUnavailable):
        client.connectors()
