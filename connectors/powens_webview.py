"""Drive the Powens webview for the user (option 1: "vous avez les identifiants bancaires").

The webview's steps, each recognised by what it shows (a table of page checks, as the supplier
connectors do): choose the bank, the consent screen, the bank's login form, the bank's second
factor (a code, or an approval in the bank's app), then the redirect to ``redirect_uri`` with
``connection_id`` or with ``error``. The redirect is caught in the browser (no server needs to answer it).
Anything else is :class:`~glaneur.errors.PortalChanged`.

The selectors are those of the webview the project's sandbox serves; the real webview
(webview.powens.com) is a single-page application whose selectors must be checked against it
before option 1 is driven in production (option 2, where the holder uses the webview in their
own browser, does not depend on them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from glaneur.bank import NOT_IN_POWENS, name_key
from glaneur.errors import (
    GlaneurError,
    NotCompatible,
    PortalChanged,
    SecondFactorTimeout,
    WrongCredentials,
    WrongSecondFactor,
)
from glaneur.statuses import Status

MAX_CODE_ATTEMPTS = 3


class ConsentRefused(GlaneurError):
    """The holder refused the consent screen, or left the webview: nothing was connected."""

    status = Status.AWAITING_CREDENTIALS


@dataclass(frozen=True)
class WebviewOutcome:
    connection_id: int


def _redirected(url: str) -> WebviewOutcome:
    query = parse_qs(urlsplit(url).query)
    if "connection_id" in query:
        try:
            return WebviewOutcome(int(query["connection_id"][0]))
        except ValueError:
            raise PortalChanged("The webview came back with a connection id that is not a number.") from None
    error = (query.get("error") or ["unknown"])[0]
    description = (query.get("error_description") or [""])[0]
    raise ConsentRefused(f"The webview came back without a connection ({error}: {description}). Nothing was connected.")


def open_webview(page, url: str, *, redirect_uri: str) -> list[str]:
    """Open the webview at ``url``, catching the redirect to ``redirect_uri`` in the browser: the list it fills."""
    landed: list[str] = []

    def catch(route) -> None:
        landed.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<p id=glaneur-done>Connexion terminée.</p>")

    prefix = redirect_uri.split("?", 1)[0]
    page.route(lambda u: u.startswith(prefix), catch)
    # A redirect hop is not routed (Playwright routes the original request only): watch requests too.
    page.on("request", lambda request: landed.append(request.url) if request.url.startswith(prefix) else None)
    page.goto(url)
    return landed


def drive(page, url: str, *, redirect_uri: str, bank_name: str, login: str, password: str,
          ask_code: Callable[[str], str], holder_consents: bool = True, decoupled_timeout: float = 300.0) -> WebviewOutcome:
    """Connect ``bank_name`` in the webview at ``url``; returns the connection id the webview redirected with."""
    landed = open_webview(page, url, redirect_uri=redirect_uri)
    return steps(page, landed, redirect_uri=redirect_uri, bank_name=bank_name, login=login, password=password,
                 ask_code=ask_code, holder_consents=holder_consents, decoupled_timeout=decoupled_timeout)


def steps(page, landed: list[str], *, redirect_uri: str, bank_name: str, login: str, password: str,
          ask_code: Callable[[str], str], holder_consents: bool = True, decoupled_timeout: float = 300.0,
          code_attempts: int = 0, not_listed: str = NOT_IN_POWENS) -> WebviewOutcome:
    """The webview's steps from the page it shows now until the redirect (``ask_code`` may raise to stop there)."""
    prefix = redirect_uri.split("?", 1)[0]
    for _ in range(20):  # steps: bank, consent, credentials, codes...
        if landed:
            return _redirected(landed[0])
        if page.locator("#banks").count():
            wanted = name_key(bank_name)
            buttons = page.locator("button.bank")
            for i in range(buttons.count()):
                if name_key(buttons.nth(i).get_attribute("data-name") or "") == wanted:
                    buttons.nth(i).click()
                    break
            else:
                raise NotCompatible(f"'{bank_name}' does not appear in the POWENS list. {not_listed}")
        elif page.locator("#consent-text").count():
            page.locator("#accept" if holder_consents else "#refuse").click()
        elif page.locator("#login").count():
            if page.locator("#error").count():
                raise WrongCredentials("The bank refused the login or password typed in the POWENS webview.")
            page.fill("#login", login)
            page.fill("#password", password)
            page.click("#submit")
        elif page.locator("#sca").count():
            if code_attempts >= MAX_CODE_ATTEMPTS:
                raise WrongSecondFactor(f"The bank refused {MAX_CODE_ATTEMPTS} codes.")
            prompt = page.locator("#sca").inner_text().strip()
            if page.locator("#error").count():
                prompt = f"{page.locator('#error').inner_text().strip()} {prompt}"
            code_attempts += 1
            page.fill("#code", ask_code(prompt))
            page.click("#submit")
        elif page.locator("#decoupled").count():
            try:
                page.wait_for_url(lambda u: u.startswith(prefix), timeout=decoupled_timeout * 1000)
            except Exception:  # noqa: BLE001 - Playwright's timeout: nobody approved in the bank's app
                if not landed:
                    raise SecondFactorTimeout(
                        f"Nobody approved the login in the bank's app within {decoupled_timeout:.0f} s.") from None
        else:
            error = page.locator("#error")
            said = error.inner_text().strip() if error.count() else page.title()
            raise PortalChanged(f"The POWENS webview showed an unexpected page: {said}")
        page.wait_for_load_state()
    raise PortalChanged("The POWENS webview did not finish in the expected number of steps.")
