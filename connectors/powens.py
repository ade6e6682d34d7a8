"""Powens (bank aggregation, REST API 2.0): an httpx client and the parsing of its answers.

Written against Powens' public documentation (docs.powens.com), not against the sandbox:

* ``POST /auth/init`` with ``client_id`` and ``client_secret`` creates a user and returns its
  **permanent** ``auth_token`` and ``id_user`` ("Authentication" page). The token goes to the vault.
* ``GET /auth/token/code`` (header ``Authorization: Bearer <user token>``) returns a single-use,
  short-lived ``code`` (``type: "temporary"``) that the **webview** takes in its URL:
  ``https://webview.powens.com[/{lang}]/connect?domain={domain}.biapi.pro&client_id=&redirect_uri=&code=``
  (also ``/reconnect?connection_id=`` and ``/manage``). The webview redirects to ``redirect_uri`` with
  ``connection_id`` (``error``/``error_description`` when the user cancelled or failed). Checked against
  docs.powens.com/api-reference/overview/webview ("Webview protocol", "Base URL": the ``domain`` query
  parameter is the API host, ``{domain}.biapi.pro``, which :attr:`PowensClient.domain` gives) and
  ".../quick-start/add-a-first-user-and-connection" (permanent token, then a temporary code per opening).
* ``GET /connectors?expand=fields``: the banks and billers with ``capabilities`` (``bank``,
  ``bankwealth``, ``transfer``, ``document``, ``profile``, ``contact``) and, only when asked with
  ``expand=fields``, ``fields`` (the login fields), so "the bank does not appear in the list" can be
  answered. The list takes no capability filter: ``expand`` (``fields``, ``sources``, ``countries``)
  is its only parameter (Powens' OpenAPI description, ``ConnectorsApi.listConnectors``, in
  github.com/powenscompany/powens-sdks); filtering by capability is the webview's
  ``connector_capabilities``. A connector also says ``restricted`` (the same description's ``Connector``:
  "If true, new connections cannot be added with this connector": the bank is listed, but this client
  cannot connect it without an agreement with Powens), which Glaneur checks before any consent or webview.
* ``GET /users/me/connections``: each connection's ``state`` is null (synced) or one of the
  documented error codes, with ``error_message`` ("Error message" page of the webview docs).
  ``PUT /users/me/connections/{id}`` asks for a synchronisation; ``DELETE`` removes it.
* ``GET /users/me/connections/{id}/accounts?all``; ``PUT /users/me/accounts/{id}?all`` with
  ``{"disabled": false}`` enables an account (disabled accounts are not synchronised).
* ``GET /users/me/transactions`` (or per account) with ``limit`` (at most 1000), ``offset``,
  ``min_date``, ``max_date`` and ``last_update`` (only what changed since); the answer carries
  ``_links.next.href`` while more remains ("Bank transactions" page, "Pagination").
* ``GET /users/me/subscriptions`` and ``/users/me/documents`` (billers: "Documents" product), each
  document with a ``url`` to its file.
* Errors are JSON ``{"code": "...", "description": "..."}``; ``429`` carries ``Retry-After``.

Parsing (``parse_*``) is pure: dicts in, typed records out, a malformed answer raising
:class:`~glaneur.errors.PortalChanged` naming the field. HTTP lives in :class:`PowensClient`.
No token or password is ever put in an exception message or a repr.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar
from urllib.parse import urlencode, urljoin, urlsplit

import httpx

from connectors.http_api import HttpApi
from glaneur.bank.states import STATE_STATUS, status_of_state
from glaneur.contract import Engine, Provider
from glaneur.errors import (
    ActionNeeded,
    AwaitingCredentials,
    AwaitingSecondFactor,
    CredentialsExpired,
    GlaneurError,
    NotCompatible,
    PortalChanged,
    PortalUnavailable,
    RateLimited,
    WrongCredentials,
)
from glaneur.statuses import Status

API_PREFIX = "/2.0"
R = TypeVar("R")  # a record read from an answer

# The catalogue entry of bank channels (the engine is Powens, not a browser).
provider = Provider(
    slug="powens",
    name="POWENS (banques)",
    kind="bank",
    engine=Engine.POWENS,
    login_fields=(),
    description="Bank movements through POWENS: add the bank to the referential, then 'glaneur bank connect'.",
)
MAX_PAGE = 1000  # documented maximum of ``limit`` on transactions

# States whose next action is the reconnect webview (the holder answers the bank's second factor there).
RECONNECT_STATES = frozenset({"SCARequired", "webauthRequired", "decoupled", "additionalInformationNeeded", "wrongpass",
                              "passwordExpired"})

_ERROR_CLASSES: dict[Status, type[GlaneurError]] = {
    Status.WRONG_CREDENTIALS: WrongCredentials,
    Status.CREDENTIALS_EXPIRED: CredentialsExpired,
    Status.ACTION_NEEDED: ActionNeeded,
    Status.AWAITING_SECOND_FACTOR: AwaitingSecondFactor,
    Status.RATE_LIMITED: RateLimited,
    Status.PORTAL_UNAVAILABLE: PortalUnavailable,
    Status.NOT_COMPATIBLE: NotCompatible,
}


class PowensApiError(GlaneurError):
    """An error answer of the API, with Powens' ``code`` (never a token in the message)."""

    def __init__(self, detail: str, *, code: str | None, http_status: int, status: Status) -> None:
        self.code = code
        self.http_status = http_status
        self.status = status  # instance attribute: the status this answer maps onto
        super().__init__(detail)


class TokenRevoked(PowensApiError):
    """401/403: the user token is no longer valid (revoked, or the user deleted)."""


class RateLimitExceeded(PowensApiError):
    """429: ``retry_after`` seconds from the ``Retry-After`` header (None when absent)."""

    def __init__(self, detail: str, *, retry_after: float | None, code: str | None) -> None:
        self.retry_after = retry_after
        super().__init__(detail, code=code, http_status=429, status=Status.RATE_LIMITED)


# --- typed records --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field_:
    name: str
    label: str
    type: str  # text, password, list...


@dataclass(frozen=True)
class Connector:
    id: int
    name: str
    capabilities: tuple[str, ...]
    fields: tuple[Field_, ...]
    auth_mechanism: str | None = None
    restricted: bool = False  # documented: "If true, new connections cannot be added with this connector."

    @property
    def is_bank(self) -> bool:
        return "bank" in self.capabilities

    @property
    def is_biller(self) -> bool:
        return "document" in self.capabilities


@dataclass(frozen=True)
class Connection:
    id: int
    id_connector: int
    state: str | None
    error_message: str | None
    last_update: datetime | None
    created: datetime | None
    active: bool

    @property
    def status(self) -> Status:
        return status_of_state(self.state)


@dataclass(frozen=True)
class BankAccount:
    id: int
    id_connection: int
    name: str
    number: str | None
    iban: str | None
    balance: Decimal | None
    currency: str
    disabled: bool


@dataclass(frozen=True)
class Transaction:
    id: int
    id_account: int
    date: date  # the booking date ("date")
    rdate: date | None  # the real date the operation was made
    vdate: date | None  # value date
    value: Decimal
    wording: str
    original_wording: str
    type: str
    coming: bool  # not booked yet
    deleted: bool
    last_update: datetime | None


@dataclass(frozen=True)
class TransactionPage:
    transactions: list[Transaction]
    next_href: str | None


@dataclass(frozen=True)
class Subscription:
    id: int
    id_connection: int
    label: str


@dataclass(frozen=True)
class BillerDocument:
    id: int
    id_subscription: int
    date: date
    number: str | None
    total_amount: Decimal | None
    currency: str
    url: str | None
    name: str


# --- parsing ---------------------------------------------------------------------------------------


def _malformed(what: str, detail: str) -> PortalChanged:
    return PortalChanged(f"Powens answered {what} in an unexpected shape ({detail}); nothing was recorded from it.")


def _list(payload: Any, key: str, what: str) -> list[dict]:
    if not isinstance(payload, dict) or not isinstance(payload.get(key), list):
        raise _malformed(what, f"no '{key}' list")
    items = payload[key]
    if not all(isinstance(item, dict) for item in items):
        raise _malformed(what, f"an item of '{key}' is not an object")
    return items


def _int(item: dict, name: str, what: str) -> int:
    value = item.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _malformed(what, f"'{name}' is not an integer")
    return value


def _date(value: Any, name: str, what: str, *, required: bool = True) -> date | None:
    if value in (None, ""):
        if required:
            raise _malformed(what, f"'{name}' is missing")
        return None
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise _malformed(what, f"'{name}' is not a date") from None


def _datetime(value: Any, name: str, what: str) -> datetime | None:
    """Powens writes ``YYYY-MM-DD HH:MM:SS`` in UTC (documented), sometimes ISO with a 'T': always aware, UTC."""
    if value in (None, ""):
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace(" ", "T"))
    except ValueError:
        raise _malformed(what, f"'{name}' is not a date-time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _decimal(value: Any, name: str, what: str, *, required: bool = True) -> Decimal | None:
    if value is None:
        if required:
            raise _malformed(what, f"'{name}' is missing")
        return None
    if isinstance(value, bool):
        raise _malformed(what, f"'{name}' is not a number")
    try:
        # Through str: a float 12.1 becomes Decimal("12.1"), not its binary expansion.
        number = Decimal(str(value))
    except InvalidOperation:
        raise _malformed(what, f"'{name}' is not a number") from None
    if not number.is_finite():
        raise _malformed(what, f"'{name}' is not a finite number")
    return number


def _currency(item: dict) -> str:
    currency = item.get("currency")
    if isinstance(currency, dict):  # documented: {"id": "EUR", "symbol": "€", ...}
        currency = currency.get("id")
    return str(currency or "EUR")


def parse_list(payload: Any, key: str, read: Callable[[dict], R]) -> list[R]:
    """Each object of the answer's ``key`` list (``connectors``, ``accounts``...) read by ``read`` (``parse_connector``,
    ``parse_account``...): the one record selector of every list the API answers."""
    return [read(item) for item in _list(payload, key, f"the '{key}' list")]


def _flag(item: dict, name: str, what: str) -> bool:
    """A documented boolean; absent or null is false, anything else but a boolean is a changed API."""
    value = item.get(name)
    if value is not None and not isinstance(value, bool):
        raise _malformed(what, f"'{name}' is not a boolean")
    return bool(value)


def parse_connector(item: dict) -> Connector:
    what = "a connector"
    capabilities = item.get("capabilities") or []
    if not isinstance(capabilities, list):
        raise _malformed(what, "'capabilities' is not a list")
    return Connector(
        id=_int(item, "id", what),
        name=str(item.get("name") or ""),
        capabilities=tuple(str(c) for c in capabilities),
        fields=tuple(Field_(str(f.get("name", "")), str(f.get("label", "")), str(f.get("type", "text")))
                     for f in item.get("fields") or [] if isinstance(f, dict)),
        auth_mechanism=item.get("auth_mechanism"),
        restricted=_flag(item, "restricted", what),
    )


def parse_connection(item: Any) -> Connection:
    what = "a connection"
    if not isinstance(item, dict):
        raise _malformed(what, "not an object")
    state = item.get("state")
    if state is not None and not isinstance(state, str):
        raise _malformed(what, "'state' is not a string")
    message = item.get("error_message")
    return Connection(
        id=_int(item, "id", what),
        id_connector=_int(item, "id_connector", what),
        state=state or None,
        error_message=str(message) if message else None,
        last_update=_datetime(item.get("last_update"), "last_update", what),
        created=_datetime(item.get("created"), "created", what),
        active=bool(item.get("active", True)),
    )


def parse_account(item: dict) -> BankAccount:
    what = "an account"
    return BankAccount(
        id=_int(item, "id", what),
        id_connection=_int(item, "id_connection", what),
        name=str(item.get("name") or item.get("original_name") or ""),
        number=item.get("number"),
        iban=(str(item["iban"]).replace(" ", "").upper() if item.get("iban") else None),
        balance=_decimal(item.get("balance"), "balance", what, required=False),
        currency=_currency(item),
        disabled=bool(item.get("disabled")),  # documented: null, or the date it was disabled
    )


def parse_transaction(item: dict) -> Transaction:
    what = "a transaction"
    original = str(item.get("original_wording") or "")
    return Transaction(
        id=_int(item, "id", what),
        id_account=_int(item, "id_account", what),
        date=_date(item.get("date"), "date", what),
        rdate=_date(item.get("rdate"), "rdate", what, required=False),
        vdate=_date(item.get("vdate"), "vdate", what, required=False),
        value=_decimal(item.get("value"), "value", what),
        wording=str(item.get("wording") or item.get("simplified_wording") or original),
        original_wording=original,
        type=str(item.get("type") or "unknown"),
        coming=bool(item.get("coming")),
        deleted=bool(item.get("deleted")),
        last_update=_datetime(item.get("last_update"), "last_update", what),
    )


def parse_transactions_page(payload: Any) -> TransactionPage:
    transactions = parse_list(payload, "transactions", parse_transaction)
    links = payload.get("_links") or {}
    nxt = links.get("next") if isinstance(links, dict) else None
    href = nxt.get("href") if isinstance(nxt, dict) else None
    if href is not None and not isinstance(href, str):
        raise _malformed("the transaction list", "'_links.next.href' is not a string")
    return TransactionPage(transactions, href or None)


def parse_subscription(item: dict) -> Subscription:
    what = "a subscription"
    label = str(item.get("label") or item.get("subscriber") or "")
    return Subscription(_int(item, "id", what), _int(item, "id_connection", what), label)


def parse_document(item: dict) -> BillerDocument:
    what = "a document"
    return BillerDocument(
        id=_int(item, "id", what),
        id_subscription=_int(item, "id_subscription", what),
        date=_date(item.get("date"), "date", what),
        number=str(item["number"]) if item.get("number") else None,
        total_amount=_decimal(item.get("total_amount"), "total_amount", what, required=False),
        currency=_currency(item),
        url=item.get("url"),
        name=str(item.get("name") or ""),
    )


def error_from_response(response: httpx.Response) -> PowensApiError:
    """A documented error answer (``{"code", "description"}``) as a typed error on the status vocabulary."""
    code = description = None
    try:
        body = response.json()
        if isinstance(body, dict):
            code = body.get("code") if isinstance(body.get("code"), str) else None
            description = body.get("description") if isinstance(body.get("description"), str) else None
    except ValueError:
        pass
    said = f"Powens answered {response.status_code}" + (f" {code}" if code else "") + (
        f": {description}" if description else "") + "."
    if response.status_code == 429:
        return RateLimitExceeded(said, retry_after=_retry_after(response.headers.get("Retry-After")), code=code)
    if response.status_code in (401, 403):
        return TokenRevoked(
            f"{said} The access to Powens was refused (token revoked or user deleted): connect the bank again.",
            code=code, http_status=response.status_code, status=Status.AWAITING_CREDENTIALS)
    if code is not None and code in STATE_STATUS:  # e.g. {"code": "wrongpass"} answering a sync
        return PowensApiError(said, code=code, http_status=response.status_code, status=status_of_state(code))
    if response.status_code >= 500:
        return PowensApiError(said, code=code, http_status=response.status_code, status=Status.PORTAL_UNAVAILABLE)
    return PowensApiError(said, code=code, http_status=response.status_code, status=Status.INTERNAL_ERROR)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, (moment - datetime.now(moment.tzinfo)).total_seconds())


def as_status_error(error: PowensApiError) -> GlaneurError:
    """The plain typed error of :mod:`glaneur.errors` for an API error (the flow records its status)."""
    cls = _ERROR_CLASSES.get(error.status)
    if error.status == Status.AWAITING_CREDENTIALS:
        return AwaitingCredentials(error.detail)
    return cls(error.detail) if cls else error


# --- webview ---------------------------------------------------------------------------------------


def webview_url(base: str, flow: str, *, domain: str, client_id: str, redirect_uri: str, code: str,
                connection_id: int | None = None, connector_uuids: list[str] | None = None, state: str | None = None,
                capabilities: list[str] | tuple[str, ...] | str | None = None) -> str:
    """``{base}/{connect|reconnect|manage}?domain=&client_id=&redirect_uri=&code=`` as documented.

    ``capabilities`` (``connector_capabilities``, e.g. ``document`` for billers) restricts the connectors the
    webview offers, and ``connector_uuids`` to those connectors (by ``uuid``, not ``id``); both are
    comma-separated lists, the names and shapes of Powens' own webview SDK (``connectorCapabilities`` and
    ``connectorUuids`` in github.com/powenscompany/powens-webview-js, turned into snake_case parameters)."""
    if flow not in ("connect", "reconnect", "manage"):
        raise ValueError(f"Unknown webview flow {flow!r}.")
    query = {"domain": domain, "client_id": client_id, "redirect_uri": redirect_uri, "code": code}
    if connection_id is not None:
        query["connection_id"] = str(connection_id)
    if connector_uuids:
        query["connector_uuids"] = ",".join(connector_uuids)
    if state:
        query["state"] = state
    if capabilities:
        query["connector_capabilities"] = capabilities if isinstance(capabilities, str) else ",".join(capabilities)
    return f"{base.rstrip('/')}/{flow}?{urlencode(query)}"


# --- HTTP ------------------------------------------------------------------------------------------


class PowensClient(HttpApi):
    """The REST API 2.0 of one Powens domain. ``token`` is a user's permanent token (from the vault).

    Transport failures become :class:`~glaneur.errors.PortalUnavailable`; error answers become
    :class:`PowensApiError` (see :func:`error_from_response`); a body that is not the documented JSON
    becomes :class:`~glaneur.errors.PortalChanged`.
    """

    def __init__(self, base_url: str, *, client_id: str, client_secret: str | None = None, token: str | None = None,
                 timeout: float = 30.0, http: httpx.Client | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith(API_PREFIX):
            self.base_url += API_PREFIX
        self.client_id = client_id
        self._client_secret = client_secret
        self._token = token
        self._http = http or httpx.Client(timeout=timeout)

    api_name = "Powens"

    @property
    def domain(self) -> str:
        return urlsplit(self.base_url).netloc

    # -- plumbing --

    def _request(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> Any:
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        headers = kwargs.pop("headers", {})
        if auth:
            if not self._token:
                raise AwaitingCredentials("No Powens user token: connect the bank first.")
            headers["Authorization"] = f"Bearer {self._token}"
        response = self._send(method, url, headers=headers, **kwargs)
        if response.status_code >= 400:
            raise error_from_response(response)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except (ValueError, json.JSONDecodeError):
            raise _malformed(f"{method} {_path_only(url)}", "not JSON, or truncated") from None

    # -- authentication --

    def init_user(self) -> tuple[str, int]:
        """``POST /auth/init``: a new Powens user; returns its permanent token (keep it in the vault) and id."""
        body = self._request("POST", "/auth/init", auth=False,
                             json={"client_id": self.client_id, "client_secret": self._client_secret})
        token, user = (body or {}).get("auth_token"), (body or {}).get("id_user")
        if not isinstance(token, str) or not token or not isinstance(user, int):
            raise _malformed("/auth/init", "no 'auth_token' or 'id_user'")
        self._token = token
        return token, user

    def delete_user(self) -> None:
        """``DELETE /users/me``: the user and every connection it has; a user already gone counts as deleted."""
        try:
            self._request("DELETE", "/users/me")
        except PowensApiError as error:
            if error.http_status not in (401, 403, 404):
                raise

    def temporary_code(self) -> str:
        """``GET /auth/token/code``: a single-use code for the webview."""
        body = self._request("GET", "/auth/token/code")
        code = (body or {}).get("code")
        if not isinstance(code, str) or not code:
            raise _malformed("/auth/token/code", "no 'code'")
        return code

    # -- catalogue --

    def connectors(self) -> list[Connector]:
        """Every connector of the domain with its login fields (``fields`` comes only with ``expand=fields``)."""
        return parse_list(self._request("GET", "/connectors", auth=False, params={"expand": "fields"}), "connectors",
                          parse_connector)

    # -- connections --

    def connections(self) -> list[Connection]:
        return parse_list(self._request("GET", "/users/me/connections"), "connections", parse_connection)

    def connection(self, connection_id: int) -> Connection:
        return parse_connection(self._request("GET", f"/users/me/connections/{connection_id}"))

    def sync(self, connection_id: int) -> Connection:
        """``PUT /users/me/connections/{id}``: synchronise now; the answer is the connection and its state."""
        return parse_connection(self._request("PUT", f"/users/me/connections/{connection_id}"))

    def delete_connection(self, connection_id: int) -> None:
        """``DELETE /users/me/connections/{id}``; a connection already gone (404) counts as deleted."""
        try:
            self._request("DELETE", f"/users/me/connections/{connection_id}")
        except PowensApiError as error:
            if error.http_status != 404:
                raise

    # -- accounts and transactions --

    def accounts(self, connection_id: int) -> list[BankAccount]:
        """Every account of the connection, disabled ones included (``?all``)."""
        answer = self._request("GET", f"/users/me/connections/{connection_id}/accounts", params={"all": ""})
        return parse_list(answer, "accounts", parse_account)

    def enable_account(self, account_id: int) -> None:
        self._request("PUT", f"/users/me/accounts/{account_id}", params={"all": ""}, json={"disabled": False})

    def transactions_page(self, *, account_id: int | None = None, min_date: date | None = None,
                          last_update: datetime | None = None, limit: int = MAX_PAGE) -> TransactionPage:
        """The first page of ``GET /users/me/transactions`` (``limit``, ``min_date``, ``last_update``)."""
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be 1 to {MAX_PAGE}.")
        params: dict[str, str] = {"limit": str(limit)}
        if min_date is not None:
            params["min_date"] = min_date.isoformat()
        if last_update is not None:
            utc = last_update.astimezone(UTC) if last_update.tzinfo else last_update
            params["last_update"] = utc.strftime("%Y-%m-%d %H:%M:%S")
        path = f"/users/me/accounts/{account_id}/transactions" if account_id else "/users/me/transactions"
        return parse_transactions_page(self._request("GET", path, params=params))

    def next_page(self, page: TransactionPage) -> TransactionPage | None:
        """The page ``_links.next`` points to (relative to the API), or None after the last page."""
        if not page.next_href:
            return None
        href = urljoin(self.base_url + "/", page.next_href)
        if urlsplit(href).netloc != urlsplit(self.base_url).netloc:
            raise _malformed("the transaction list", "'_links.next' points to another host")
        return parse_transactions_page(self._request("GET", href))

    def transaction_pages(self, **query: Any) -> Iterator[TransactionPage]:
        """Every page, following ``_links.next`` until it is absent (documented pagination)."""
        page: TransactionPage | None = self.transactions_page(**query)
        seen: set[str] = set()
        while page is not None:
            yield page
            if page.next_href in seen:  # a server repeating its own link would loop forever
                raise _malformed("the transaction list", "'_links.next' points to a page already read")
            if page.next_href:
                seen.add(page.next_href)
            page = self.next_page(page)

    # -- billers --

    def subscriptions(self) -> list[Subscription]:
        return parse_list(self._request("GET", "/users/me/subscriptions"), "subscriptions", parse_subscription)

    def documents(self, subscription_id: int | None = None) -> list[BillerDocument]:
        path = f"/users/me/subscriptions/{subscription_id}/documents" if subscription_id else "/users/me/documents"
        return parse_list(self._request("GET", path), "documents", parse_document)

    def document_file(self, document: BillerDocument) -> bytes:
        if not document.url:
            raise _malformed("a document", "no 'url' to its file")
        headers = {"Authorization": f"Bearer {self._token}"}
        response = self._send("GET", urljoin(self.base_url + "/", document.url), headers=headers)
        if response.status_code >= 400:
            raise error_from_response(response)
        return response.content


def _path_only(url: str) -> str:
    """The path of a URL, for messages: never the query (it may carry a code)."""
    return urlsplit(url).path


def powens_connectors(timeout: float = 30.0) -> list[Connector]:
    """POWENS' list of connectors (no user token needed), for the checks before any consent or webview and for
    ``doctor``; errors are :class:`GlaneurError` (an API error as its typed status)."""
    from glaneur.bank import powens_settings

    api_url, client_id, _ = powens_settings().require()
    try:
        with PowensClient(api_url, client_id=client_id, timeout=timeout) as client:
            return client.connectors()
    except PowensApiError as error:
        raise as_status_error(error) from None
