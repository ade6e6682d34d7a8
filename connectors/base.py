"""The connector contract.

A supplier connector is one small module that says only what is specific to its portal:

* the **provider** (:class:`Provider`): slug, name, login fields, second-factor kinds, default URL;
* **parsing**: pure functions from a page's HTML (or JSON) to typed records
  (:class:`RemoteDocument`), unit-tested on saved pages under ``tests/fixtures/pages``;
* **navigation** (a :class:`PortalConnector` subclass): ``login``, ``answer_second_factor``,
  ``is_logged_in``, ``list_documents(since)`` and ``fetch(document)``, driven through a
  Playwright ``Page`` that :mod:`tasks.browser` opens.
  A portal with a login form (most of them) is declared with the kit (:mod:`connectors.kit`):
  its pages as data; login, second factor, listing and the session check come with it.

Navigation checks it is on the page it expects with :meth:`PortalConnector.expect_page`,
waiting up to ``GLANEUR_NAVIGATION_TIMEOUT_SECONDS``: a page still loading then is
:class:`~glaneur.errors.PortalUnavailable` (retried), a loaded page that is not the one expected
is :class:`~glaneur.errors.PortalChanged`, and the task layer keeps a screenshot and a trace.
A 429 or 503 with ``Retry-After`` makes every later request of the connector wait that long
(up to ``GLANEUR_MAX_RETRY_AFTER_SECONDS``). Connectors raise only the typed errors of
:mod:`glaneur.errors`. Lists that span pages go through :class:`Pagination`: a page already seen is
``PortalChanged`` (a loop); after ``GLANEUR_MAX_LIST_PAGES`` pages the listing stops and returns what it
read with the address it would have read next (:class:`~glaneur.contract.Listing` ``.left_at``), and
``list_documents(since, start=that address)`` goes on from there in a later run.

Downloads (:meth:`PortalConnector.fetch`) are streamed to a temporary file with the logged-in
context's cookies, never held whole in memory before their size is known: a
``Content-Length`` over ``GLANEUR_MAX_DOCUMENT_BYTES`` is refused before reading, and reading
stops at the limit. They are fetched only from the portal's own origin (or the
``document_origins`` the connector declares), redirects included.
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

import hashlib
import json
import re
import ssl
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from functools import cache
from typing import IO, TYPE_CHECKING, ClassVar
from urllib.parse import urljoin, urlsplit

import httpx

from glaneur.contract import Credentials, FetchedDocument, Listing, Provider, RemoteDocument, SecondFactorChallenge
from glaneur.errors import (
    InvalidDocument,
    PortalChanged,
    PortalUnavailable,
    RateLimited,
    WrongSecondFactor,
)
from glaneur.settings import Settings, get_settings

__all__ = ["PageSpec", "Pagination", "PortalConnector", "parse_retry_after"]

if TYPE_CHECKING:
    from playwright.sync_api import APIResponse, Frame, Page, Request, Response


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
    # Origins other than the portal's own that may serve its documents (a CDN): "https://cdn.example.com".
    document_origins: ClassVar[tuple[str, ...]] = ()
    max_redirects: ClassVar[int] = 5
    # True when the portal keeps a login waiting for its second factor in its cookies and storage: a new
    # browser given the saved state opens it again at the same address, so the run may suspend without a
    # process while a person answers. False (the default): the answer must reach the same browser.
    resumable_second_factor: ClassVar[bool] = False
    # False when what the remembered session holds does not expire by itself (a POWENS connection and its
    # permanent token, kept until deleted): it is then kept without the portal-session lifetime.
    session_expires: ClassVar[bool] = True

    @classmethod
    def release(cls, remembered: dict) -> bool:
        """Undo, at the remote side, what a remembered session holds, before Glaneur forgets it for good (the
        collector deleted, the account removed, its credentials replaced); True when something was undone.

        A portal's cookies hold nothing to undo (the default). A POWENS connection holds the supplier's
        login at Powens: its connector deletes it. Raises a GlaneurError when the remote side refused."""
        return False

    def __init__(self, page: Page, base_url: str, settings: Settings | None = None) -> None:
        settings = settings or get_settings()
        self.page = page
        self.base_url = base_url.rstrip("/")
        self.page_timeout_ms = settings.navigation_timeout_seconds * 1000
        self.max_document_bytes = settings.max_document_bytes
        self.max_list_pages = settings.max_list_pages
        self.max_retry_after = settings.max_retry_after_seconds
        self._not_before = 0.0  # time.monotonic() before which the portal asked not to be called again
        self._navigating: Request | None = None  # the main frame's navigation request, not committed yet
        page.on("request", self._on_request)
        page.on("requestfailed", self._on_request_done)
        page.on("framenavigated", self._on_frame_navigated)

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

    def reopen_pending_login(self, url: str) -> bool:
        """In a context restored from saved state (``resumable_second_factor``): open the page the login waited
        on; True when the portal shows its second factor again, False when it dropped the pending login."""
        self.goto(url)
        return self.expect_page("second_factor", "login") == "second_factor"

    def list_documents(self, since: date | None, start: str | None = None) -> Listing:
        """Documents dated on or after ``since`` (all when None), newest first.

        ``start``: the address where an earlier listing was left (its ``left_at``) to go on from, instead of
        the list's first page. A listing that reaches ``GLANEUR_MAX_LIST_PAGES`` pages stops there and says
        where (``left_at``); a list without pages never does.
        """
        raise NotImplementedError

    def fetch(self, document: RemoteDocument) -> FetchedDocument:
        """Download one document with the logged-in context's cookies, streamed under the size limit.

        Refused with :class:`InvalidDocument` (that document only; nothing else is stopped): a link or
        redirect outside the portal's origins, a document over ``GLANEUR_MAX_DOCUMENT_BYTES``.
        """
        with tempfile.TemporaryFile(prefix="glaneur-download-") as spool:
            try:
                content_type = self._download(self.url(document.download_url), spool, document.reference)
            except httpx.TimeoutException as exc:
                raise PortalUnavailable(
                    f"{self.provider.name} did not answer in time during the download of {document.reference}."
                ) from exc
            except httpx.TransportError as exc:  # the class name says enough; the message may repeat the URL
                raise PortalUnavailable(
                    f"{self.provider.name} could not be reached during the download of {document.reference} "
                    f"({type(exc).__name__})."
                ) from exc
            spool.seek(0)
            content = spool.read()  # at most max_document_bytes: checked while streaming
        return FetchedDocument(document, content, content_type)

    def _download(self, url: str, spool: IO[bytes], reference: str) -> str:
        what = f"the download of {reference}"
        limit = self.max_document_bytes
        timeout = httpx.Timeout(self.page_timeout_ms / 1000)
        # trust_env=False: go to the portal the way the browser does, not through a proxy it does not use.
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False, verify=_tls_context()) as client:
            for _ in range(self.max_redirects + 1):
                self._check_origin(url, reference)
                self.wait_for_portal()
                with client.stream("GET", url, headers=self._request_headers(url)) as response:
                    if response.is_redirect and "location" in response.headers:
                        url = urljoin(url, response.headers["location"])
                        continue
                    self._check_status(response.status_code, response.headers, what=what)
                    declared = response.headers.get("content-length", "")
                    if declared.isdigit() and int(declared) > limit:
                        raise self._too_big(reference, f"announced {int(declared)} bytes")
                    received = 0
                    for chunk in response.iter_bytes(64 * 1024):
                        received += len(chunk)
                        if received > limit:
                            raise self._too_big(reference, f"sent more than {limit} bytes")
                        spool.write(chunk)
                    if received == 0:
                        raise InvalidDocument(
                            f"{self.provider.name} sent an empty file for invoice {reference}; nothing was filed."
                        )
                    return response.headers.get("content-type", "")
        raise InvalidDocument(
            f"{self.provider.name}: the download of invoice {reference} redirected more than "
            f"{self.max_redirects} times; nothing was filed."
        )

    def _too_big(self, reference: str, how: str) -> InvalidDocument:
        return InvalidDocument(
            f"Invoice {reference}: {self.provider.name} {how}, over the {self.max_document_bytes}-byte limit "
            "(GLANEUR_MAX_DOCUMENT_BYTES); it was not downloaded further and nothing was filed."
        )

    def allowed_origins(self) -> set[tuple[str, str, int]]:
        return {_origin(self.base_url), *(_origin(o) for o in self.document_origins)}

    def _check_origin(self, url: str, reference: str) -> None:
        if _origin(url) not in self.allowed_origins():
            parts = urlsplit(url)
            shown = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"  # never a user-info part
            raise InvalidDocument(
                f"Invoice {reference}: {self.provider.name} sends its download to {shown}, outside the portal's "
                f"own origin ({self.base_url}); it was not fetched. If the supplier really serves its documents "
                "there, the connector must declare that origin (document_origins)."
            )

    def _request_headers(self, url: str) -> dict[str, str]:
        """The browser's identity and the cookies the logged-in context would send to this URL."""
        cookies = self.page.context.cookies([url])
        headers = {"User-Agent": self._user_agent(), "Accept": "application/pdf,*/*;q=0.8"}
        if cookies:
            headers["Cookie"] = "; ".join(f"{c['name']}={c['value']}" for c in cookies)
        return headers

    def _user_agent(self) -> str:
        if not hasattr(self, "_agent"):
            self._agent = str(self.page.evaluate("navigator.userAgent"))
        return self._agent

    # -- helpers shared by every connector -----------------------------------------------
    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path.lstrip('/')}"

    def goto(self, path: str) -> Response | None:
        self.wait_for_portal()
        response = self.page.goto(self.url(path))
        self.check_response(response, what=path)
        return response

    def api_get(self, path: str, *, what: str) -> APIResponse:
        """A request of the portal's own API through the logged-in context (HTTP failures mapped as in goto)."""
        self.wait_for_portal()
        response = self.page.request.get(self.url(path))
        self.check_response(response, what=what)
        return response

    def submit(self, selector: str, *, what: str) -> None:
        """Click a form's button and wait for the page it leads to (HTTP failures mapped as in goto)."""
        self.wait_for_portal()
        button = self.page.locator(selector)
        if button.count() == 0:  # not a slow portal: nothing to press (else the click waits out its timeout)
            raise PortalChanged(f"{self.provider.name}: {what} has no {selector} to press.")
        with self.page.expect_navigation() as navigation:
            button.first.click()
        self.check_response(navigation.value, what=what)

    def code_answer(self, challenge: SecondFactorChallenge, answer: str | None) -> str:
        """The code to type (spaces removed); an empty answer is refused here, without using a portal attempt."""
        code = "".join((answer or "").split())
        if not code:
            kind = challenge.kind.value
            raise WrongSecondFactor(f"{self.provider.name} asks for a {kind} code; the answer was empty.")
        return code

    def check_response(self, response: Response | APIResponse | None, *, what: str) -> None:
        """Map HTTP failures onto statuses: 429 rate limited, 5xx unavailable (both retried), other 4xx changed."""
        if response is None:
            return
        self._check_status(response.status, response.headers, what=what)

    def _check_status(self, status: int, headers: Mapping[str, str], *, what: str) -> None:
        if status != 429 and status < 500:
            if status >= 400:
                raise PortalChanged(f"{self.provider.name} answered HTTP {status} to {what}.")
            return
        retry_after = parse_retry_after(headers.get("retry-after"))
        asked = ""
        if retry_after is not None:
            asked = f" and asked to wait {retry_after:g} s"
            if retry_after > self.max_retry_after:
                asked += (
                    f", longer than a run waits (GLANEUR_MAX_RETRY_AFTER_SECONDS = {self.max_retry_after:g} s): "
                    "the next run tries again"
                )
            else:
                self.wait_before_next_request(retry_after)
        if status == 429:
            raise RateLimited(f"{self.provider.name} answered 429 to {what}{asked}.", retry_after=retry_after)
        raise PortalUnavailable(
            f"{self.provider.name} answered HTTP {status} to {what}{asked}.", retry_after=retry_after
        )

    def wait_before_next_request(self, seconds: float) -> None:
        """The portal asked for ``seconds`` of quiet: every later request of this connector waits (the retry too)."""
        self._not_before = max(self._not_before, time.monotonic() + min(seconds, self.max_retry_after))

    def wait_for_portal(self) -> None:
        """Sleep until the time the portal's last Retry-After asked for (at once when it asked nothing)."""
        remaining = self._not_before - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)

    def expect_page(self, *names: str, timeout_ms: float | None = None) -> str:
        """Wait until the browser shows one of the named pages and return its name.

        After the timeout (``GLANEUR_NAVIGATION_TIMEOUT_SECONDS`` unless given): a page still loading is
        PortalUnavailable (retried: the portal is slow), a loaded page that is none of them PortalChanged.
        Names the portal does not declare in ``pages`` are left out: a portal without a terms page never shows one.
        """
        specs = {name: self.pages[name] for name in names if name in self.pages}
        if not specs:
            raise TypeError(f"{type(self).__name__} declares none of the pages {names}.")
        names = tuple(specs)
        timeout_ms = timeout_ms if timeout_ms is not None else self.page_timeout_ms
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            path = self.page_path()
            for name, spec in specs.items():
                if re.fullmatch(spec.url, path.split("?")[0]) and self.has(spec.marker):
                    return name
            if time.monotonic() >= deadline:
                break
            self.page.wait_for_timeout(100)
        expected = " or ".join(names)
        if self._still_loading():
            raise PortalUnavailable(
                f"{self.provider.name}: the {expected} page had not finished loading after {timeout_ms / 1000:g} s "
                f"(at {path}; GLANEUR_NAVIGATION_TIMEOUT_SECONDS)."
            )
        raise PortalChanged(f"{self.provider.name}: expected the {expected} page, found {path} without the expected content.")

    def _on_request(self, request: Request) -> None:
        if request.is_navigation_request() and request.frame == self.page.main_frame:
            self._navigating = request

    def _on_request_done(self, request: Request) -> None:
        if request is self._navigating:
            self._navigating = None

    def _on_frame_navigated(self, frame: Frame) -> None:
        if frame == self.page.main_frame:  # committed: what is left of loading shows in readyState
            self._navigating = None

    def _still_loading(self) -> bool:
        if self._navigating is not None:
            return True
        try:
            return self.page.evaluate("document.readyState") != "complete"
        except Exception:  # the document went away mid-call: a navigation is under way
            return True

    def has(self, selector: str) -> bool:
        """Whether the page holds ``selector`` now, asked of its DOM (``document.querySelector``).

        Playwright's own engine (``query_selector``, ``content()``) first injects its script into each new
        document: 0.15 CPU second of Chromium a page, over an unchanged day's two pages a quarter of its cost
        (``bench/chromium_cost.py``).
        A selector only Playwright reads (``:has-text()``, ``>>``) still goes to it. Asked in the page's own
        world, its scripts could answer for it: a portal can hide its own pages this way (then PortalChanged),
        as it could by serving other HTML, and no more.
        """
        try:
            return bool(self.page.evaluate(f"document.querySelector({json.dumps(selector)}) !== null"))
        except Exception as error:  # noqa: BLE001
            if "is not a valid selector" not in str(error):
                return False  # the page is navigating: its context was destroyed mid-query
        try:
            return self.page.query_selector(selector) is not None
        except Exception:  # noqa: BLE001  navigating, as above
            return False

    def html(self) -> str:
        """The page's HTML as the browser holds it now (its DOM, scripts' changes included), without the
        cost of Playwright's ``content()`` (see :meth:`has`)."""
        try:
            return str(self.page.evaluate("document.documentElement.outerHTML"))
        except Exception:  # noqa: BLE001  mid-navigation: Playwright's own call waits for the new document
            return self.page.content()

    def page_path(self) -> str:
        return re.sub(r"^https?://[^/]+", "", self.page.url) or "/"


class Pagination:
    """Bounds a walk through a paginated list: a page seen before is PortalChanged, and at most
    ``max_pages`` pages are read in one walk.

    A "next" link back to an earlier page would otherwise hold a browser forever: that is a loop, and the
    portal changed. A page is "seen" by its address or by its rows (the same rows under another address
    is the same page). A list that simply goes on past ``max_pages`` pages is not a changed portal: the
    walk stops (:attr:`full`) and the listing says where it left the list, for the next run to go on.
    """

    def __init__(self, provider: str, max_pages: int) -> None:
        self.provider = provider
        self.max_pages = max_pages
        self.visited: list[str] = []
        self._seen: dict[str, str] = {}

    @property
    def full(self) -> bool:
        """True once ``max_pages`` pages were read: the walk reads no further page."""
        return len(self.visited) >= self.max_pages

    def visit(self, url: str, rows: list[RemoteDocument]) -> None:
        address = re.sub(r"^https?://[^/]+", "", url) or "/"
        fingerprint = hashlib.sha256(
            "\n".join(f"{r.reference}|{r.document_date}|{r.download_url}" for r in rows).encode()
        ).hexdigest()
        walked = " → ".join([*self.visited[-5:], address])  # the last pages say enough
        for key in (f"url:{address}", f"rows:{fingerprint}" if rows else None):
            if key is not None and key in self._seen:
                raise PortalChanged(
                    f"{self.provider}: the invoice list came back to a page already read ({address}, "
                    f"first seen at {self._seen[key]}); pages read: {walked}. Stopped instead of looping."
                )
        if self.full:
            raise RuntimeError(f"{self.provider}: a page read past the {self.max_pages}-page bound ({address})")
        self.visited.append(address)
        self._seen[f"url:{address}"] = address
        if rows:
            self._seen[f"rows:{fingerprint}"] = address


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now: a number of seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


@cache
def _tls_context() -> ssl.SSLContext:
    """The trust store downloads check a portal's certificate against (certifi's, as httpx's default with
    ``trust_env=False``), loaded once a process: loading it costs about 45 ms of CPU, which each download paid."""
    return httpx.create_ssl_context(trust_env=False)


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or {"http": 80, "https": 443}.get(scheme, 0)
    except ValueError:  # a port that is not a number: an origin nothing matches
        port = -1
    return scheme, (parts.hostname or "").lower(), port
