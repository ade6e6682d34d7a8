"""The connector contract.

A supplier connector is one small module that says only what is specific to its portal:

* the **provider** (:class:`Provider`): slug, name, login fields, second-factor kinds, default URL;
* **parsing**: pure functions from a page's HTML (or JSON) to typed records
  (:class:`RemoteDocument`), unit-tested on saved pages under ``tests/fixtures/pages``;
* **navigation** (a :class:`PortalConnector` subclass): ``login``, ``answer_second_factor``,
  ``is_logged_in``, ``list_documents(since)`` and ``fetch(document)``, driven through a
  Playwright ``Page`` that :mod:`tasks.browser` opens.
  A portal with a login form (most of them) subclasses :class:`FormPortalConnector` and says
  only its forms and its parsing; login, second factor and the session check come with it.

Navigation checks it is on the page it expects with :meth:`PortalConnector.expect_page`;
anything else raises :class:`~glaneur.errors.PortalChanged`, and the task layer keeps a
screenshot and a trace. Connectors raise only the typed errors of :mod:`glaneur.errors`.
Downloads go through the logged-in context's HTTP client (``page.request``), not clicks.
Connectors are listed explicitly in :mod:`connectors.catalog`.

Second factor
-------------
``Provider.second_factor_kinds`` lists what the portal may ask (:class:`SecondFactorKind`).
The connector never decides who answers: it reports what the portal asks and types what it is
given. The caller (the flow) answers a TOTP itself from the vault's seed and asks a person
for the rest.

``login(credentials) -> SecondFactorChallenge | None``
    ``None``: logged in. A :class:`SecondFactorChallenge` (its ``kind``, and the ``prompt`` the
    portal shows, plain text, no secret): the password was accepted and the browser **stays on
    the second-factor page**, in the same context, waiting for an answer (minutes or an hour
    later: keep the page open). Refusals raise as before (``WrongCredentials``,
    ``AccountLocked``, ``CredentialsExpired``, ``ActionNeeded``...).
``answer_second_factor(challenge, answer) -> SecondFactorChallenge | None``
    ``answer`` is the code (TOTP, or the code sent by SMS or e-mail; spaces ignored), or
    ``None`` for "I approved it in the app". ``None`` back: logged in (the remembered session
    can be saved now: ``page.context.storage_state()``). A challenge back: the portal asks for
    another factor (call again). The portal refused: ``WrongSecondFactor`` with the portal's
    message, and the browser is on the second-factor page again, ready for another answer;
    the same for an app approval not given yet (``"not approved yet"``) and for a code past its
    validity (the connector has the portal send a new one before raising). A portal that
    dropped the pending login after too many wrong codes: ``AwaitingSecondFactor`` (not a
    ``WrongSecondFactor``: asking the same page again is pointless; the next run logs in anew).
    An empty answer to a code raises ``WrongSecondFactor`` without using one of the portal's
    attempts.
``is_logged_in() -> bool``
    For a remembered session (a context created with a saved ``storage_state``): opens the
    portal's home; True when it shows the logged-in page, False when the portal sends to its
    login page (expired or revoked session). Never raises for "logged out"; still raises for
    what a login would too (``ActionNeeded`` for terms to accept, ``PortalUnavailable``...).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar

from glaneur.errors import (
    ActionNeeded,
    CredentialsExpired,
    GlaneurError,
    PortalChanged,
    PortalUnavailable,
    RateLimited,
    WrongSecondFactor,
)

if TYPE_CHECKING:
    from playwright.sync_api import APIResponse, Page, Response


class SecondFactorKind(StrEnum):
    TOTP = "totp"
    CODE = "code"  # one-time code sent by SMS or e-mail
    APP = "app"  # approval in the supplier's mobile app


class Engine(StrEnum):
    PLAYWRIGHT = "playwright"
    POWENS = "powens"


@dataclass(frozen=True)
class Provider:
    """A catalogue entry."""

    slug: str
    name: str
    kind: str = "supplier_portal"
    engine: Engine = Engine.PLAYWRIGHT
    default_url: str = ""
    login_fields: tuple[str, ...] = ("login", "password")
    second_factor_kinds: tuple[SecondFactorKind, ...] = ()
    compatible: bool = True
    description: str = ""


@dataclass(frozen=True)
class SecondFactorChallenge:
    """What the portal asks after the password: the kind of answer, and its own words (no secret)."""

    kind: SecondFactorKind
    prompt: str  # e.g. "Un code à 6 chiffres vous a été envoyé par SMS au 06 •• •• •• 42."


@dataclass(frozen=True)
class Credentials:
    login: str
    password: str = field(repr=False)
    totp_seed: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class RemoteDocument:
    """A document as the portal lists it, before download."""

    reference: str
    document_date: date
    download_url: str
    amount: Decimal | None = None
    currency: str = "EUR"
    label: str = ""


@dataclass(frozen=True)
class FetchedDocument:
    document: RemoteDocument
    content: bytes = field(repr=False)
    content_type: str = ""


@dataclass(frozen=True)
class PageSpec:
    """How to recognise a portal page: its URL path (regex) and a selector only it has."""

    url: str
    marker: str


class PortalConnector:
    """Navigation for one portal. Subclasses set ``provider`` and ``pages`` and implement the three steps.

    ``pages`` is the table of the portal's pages (name -> :class:`PageSpec`); navigation asks
    :meth:`expect_page` which of the pages it may be on now, and gets back the name.
    """

    provider: ClassVar[Provider]
    pages: ClassVar[dict[str, PageSpec]] = {}

    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url.rstrip("/")

    # -- the contract (see the module docstring) ------------------------------------------
    def login(self, credentials: Credentials) -> SecondFactorChallenge | None:
        """Log in: None when logged in, a challenge when the portal waits for a second factor.

        Raise WrongCredentials, CredentialsExpired, AccountLocked, ActionNeeded... on refusal.
        """
        raise NotImplementedError

    def answer_second_factor(
        self, challenge: SecondFactorChallenge, answer: str | None
    ) -> SecondFactorChallenge | None:
        """Answer the challenge on the page ``login`` left open: None when logged in; WrongSecondFactor when refused."""
        raise NotImplementedError(f"{self.provider.name}'s connector does not answer second factors.")

    def is_logged_in(self) -> bool:
        """Open the portal's home: True on the logged-in page, False when sent to the login page."""
        raise NotImplementedError

    def list_documents(self, since: date | None) -> list[RemoteDocument]:
        """Documents dated on or after ``since`` (all when None), newest first."""
        raise NotImplementedError

    def fetch(self, document: RemoteDocument) -> FetchedDocument:
        """Download one document through the logged-in context."""
        response = self.page.request.get(self.url(document.download_url))
        self.check_response(response, what=f"download of {document.reference}")
        return FetchedDocument(document, response.body(), response.headers.get("content-type", ""))

    # -- helpers shared by every connector -----------------------------------------------
    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path.lstrip('/')}"

    def goto(self, path: str) -> Response | None:
        response = self.page.goto(self.url(path))
        self.check_response(response, what=path)
        return response

    def submit(self, selector: str, *, what: str) -> None:
        """Click a form's button and wait for the page it leads to (HTTP failures mapped as in goto)."""
        with self.page.expect_navigation() as navigation:
            self.page.click(selector)
        self.check_response(navigation.value, what=what)

    def code_answer(self, challenge: SecondFactorChallenge, answer: str | None) -> str:
        """The code to type (spaces removed); an empty answer is refused here, without using a portal attempt."""
        code = "".join((answer or "").split())
        if not code:
            kind = challenge.kind.value
            raise WrongSecondFactor(f"{self.provider.name} asks for a {kind} code; the answer was empty.")
        return code

    def check_response(self, response: Response | APIResponse | None, *, what: str) -> None:
        """Map HTTP failures onto statuses: 429 rate limited, 5xx unavailable (both retried)."""
        if response is None:
            return
        status = response.status
        if status == 429:
            raise RateLimited(f"{self.provider.name} answered 429 to {what}.")
        if status >= 500:
            raise PortalUnavailable(f"{self.provider.name} answered HTTP {status} to {what}.")
        if status >= 400:
            raise PortalChanged(f"{self.provider.name} answered HTTP {status} to {what}.")

    def expect_page(self, *names: str, timeout_ms: float | None = None) -> str:
        """Wait until the browser shows one of the named pages and return its name.

        Anything else, after the timeout, means the portal changed (PortalChanged).
        """
        specs = {name: self.pages[name] for name in names}
        timeout_ms = timeout_ms if timeout_ms is not None else self.page_timeout_ms
        waited = 0.0
        while True:
            path = self.page_path()
            for name, spec in specs.items():
                if re.fullmatch(spec.url, path.split("?")[0]) and self._has(spec.marker):
                    return name
            if waited >= timeout_ms:
                raise PortalChanged(
                    f"{self.provider.name}: expected the {' or '.join(names)} page, found {path} "
                    f"without the expected content."
                )
            self.page.wait_for_timeout(100)
            waited += 100

    page_timeout_ms: ClassVar[float] = 5000

    def _has(self, selector: str) -> bool:
        try:
            return self.page.query_selector(selector) is not None
        except Exception:  # the page is navigating: its context was destroyed mid-query
            return False

    def page_path(self) -> str:
        return re.sub(r"^https?://[^/]+", "", self.page.url) or "/"


class FormPortalConnector(PortalConnector):
    """A portal with a login form, an optional second-factor form, and terms or password steps after login.

    The common shape of supplier portals: a subclass says only its forms (``login_path``, the forms'
    selectors and field names, ``home_path``) and its parsing of what the portal says
    (``login_refusal``, ``parse_second_factor``, ``second_factor_refusal``: pure functions of the
    page's HTML, unit-tested on saved pages); login, second factor and the remembered-session check
    are the same for all. Pages needed in ``pages``: login, home, second_factor, code_expired
    (with a ``form#renvoi`` asking for a new code), terms, new_password.
    """

    login_path: ClassVar[str]
    login_form: ClassVar[str]  # e.g. "form#login"
    login_field: ClassVar[str]
    password_field: ClassVar[str]
    second_factor_form: ClassVar[str]
    second_factor_form_name: ClassVar[str] = "the second-factor form"
    home_path: ClassVar[str]
    terms_name: ClassVar[str] = "new terms"  # as the portal calls them, for the ActionNeeded message
    after_login = ("home", "second_factor", "login", "terms", "new_password")  # where a submitted login may land

    # Parsing, from the connector's module: plain functions of the page's HTML.
    login_refusal: ClassVar[Callable[[str], GlaneurError]]
    parse_second_factor: ClassVar[Callable[[str], SecondFactorChallenge]]
    second_factor_refusal: ClassVar[Callable[[str], GlaneurError]]

    def login(self, credentials: Credentials) -> SecondFactorChallenge | None:
        self.goto(self.login_path)
        self.expect_page("login")
        self.page.fill(f"{self.login_form} input[name={self.login_field}]", credentials.login)
        self.page.fill(f"{self.login_form} input[name={self.password_field}]", credentials.password)
        self.submit(f"{self.login_form} button[type=submit]", what="the login form")
        landed = self.expect_page(*self.after_login)
        if landed == "login":
            raise type(self).login_refusal(self.page.content())
        return self._arrived(landed)

    def answer_second_factor(
        self, challenge: SecondFactorChallenge, answer: str | None
    ) -> SecondFactorChallenge | None:
        self.expect_page("second_factor")
        if challenge.kind is not SecondFactorKind.APP:
            self.page.fill(f"{self.second_factor_form} input[name=code]", self.code_answer(challenge, answer))
        self.submit(f"{self.second_factor_form} button[type=submit]", what=self.second_factor_form_name)
        landed = self.expect_page("code_expired", *self.after_login)
        if landed == "code_expired":
            self.submit("form#renvoi button[type=submit]", what="the request for a new code")
            self.expect_page("second_factor")
            raise WrongSecondFactor(f"{self.provider.name}: the code had expired; the portal sent a new one.")
        if landed in ("second_factor", "login"):  # the same page with the portal's complaint, or dropped
            raise type(self).second_factor_refusal(self.page.content())
        return self._arrived(landed)

    def is_logged_in(self) -> bool:
        self.goto(self.home_path)
        landed = self.expect_page("home", "login", "terms", "new_password")
        return landed != "login" and self._arrived(landed) is None

    def _arrived(self, landed: str) -> SecondFactorChallenge | None:
        """Past the password: logged in (None), a second factor to answer, or a step for the account holder."""
        if landed == "second_factor":
            return type(self).parse_second_factor(self.page.content())
        if landed == "terms":  # only the account holder may accept: never click "Accepter" for them
            raise ActionNeeded(
                f"{self.provider.name} asks the account holder to accept its {self.terms_name} on the portal."
            )
        if landed == "new_password":
            raise CredentialsExpired(f"{self.provider.name} says the password has expired and asks for a new one.")
        return None
