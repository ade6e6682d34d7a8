"""Second factors through the connectors, in real Chromium against the sandbox portals.

For each portal and each kind: login returns the challenge and leaves the browser on the
second-factor page; the answer (a TOTP from the seed, the code read from the portal's test
outbox, or an approval played by the sandbox's phone endpoint then ``None``) logs in, and the
listing works. Wrong answers raise WrongSecondFactor and leave the page ready for another one.
A context's ``storage_state()`` loaded into a new context is logged in without login or second
factor, until the portal expires its sessions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import httpx
import pyotp
import pytest
from playwright.sync_api import Browser

from connectors.base import PortalConnector
from connectors.catalog import connector_class
from glaneur.contract import Credentials, SecondFactorChallenge, SecondFactorKind
from glaneur.errors import AwaitingSecondFactor, WrongSecondFactor
from glaneur.settings import get_settings
from sandbox.data import CODE_VALIDITY, MAX_SECOND_FACTOR_ATTEMPTS
from sandbox.server import SandboxHandle
from tasks.browser import launch_browser

pytestmark = pytest.mark.slow

SLUGS = ["papeterie-dupont", "energie-verte"]
both = pytest.mark.parametrize("slug", SLUGS)
STEMS = {
    SecondFactorKind.TOTP: "double-totp",
    SecondFactorKind.CODE: "double-code",
    SecondFactorKind.APP: "double-appli",
}
SECOND_FACTOR_PAGE = {"papeterie-dupont": "/double-authentification", "energie-verte": "/connexion/verification"}
OpenConnector = Callable[..., PortalConnector]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch_browser(get_settings()) as browser:
        yield browser


@pytest.fixture(autouse=True)
def fresh_portals(sandbox: SandboxHandle) -> None:
    for url in sandbox.urls.values():
        httpx.post(f"{url}/_sandbox/reset", trust_env=False).raise_for_status()


@pytest.fixture
def open_connector(sandbox: SandboxHandle, browser: Browser) -> Iterator[OpenConnector]:
    """A connector on a page of its own browser context; ``storage_state`` restores a saved session."""
    contexts = []

    def open_one(slug: str, storage_state: dict | None = None) -> PortalConnector:
        context = browser.new_context(locale="fr-FR", storage_state=storage_state)
        context.set_default_timeout(20_000)
        contexts.append(context)
        return connector_class(slug)(context.new_page(), sandbox.urls[slug])

    yield open_one
    for context in contexts:
        context.close()


def control(sandbox: SandboxHandle, slug: str, method: str, path: str, **kwargs: object) -> httpx.Response:
    response = httpx.request(method, f"{sandbox.urls[slug]}/_sandbox{path}", trust_env=False, **kwargs)
    response.raise_for_status()
    return response


def account(sandbox: SandboxHandle, slug: str, kind: SecondFactorKind) -> dict:
    accounts = control(sandbox, slug, "GET", "/accounts").json()["accounts"]
    return next(a for a in accounts if a["login"].split("@")[0] == STEMS[kind])


def credentials(sandbox: SandboxHandle, slug: str, kind: SecondFactorKind) -> Credentials:
    found = account(sandbox, slug, kind)
    return Credentials(found["login"], found["password"], found["totp_seed"])


def latest_code(sandbox: SandboxHandle, slug: str, login: str) -> str:
    return control(sandbox, slug, "GET", f"/outbox/{login}").json()[-1]["code"]  # the newest is last


def answer_for(sandbox: SandboxHandle, slug: str, kind: SecondFactorKind) -> str | None:
    """What the approver (or the vault's seed) would give: the TOTP, the code received, or None once approved."""
    found = account(sandbox, slug, kind)
    if kind is SecondFactorKind.TOTP:
        return pyotp.TOTP(found["totp_seed"]).now()
    if kind is SecondFactorKind.CODE:
        return latest_code(sandbox, slug, found["login"])
    control(sandbox, slug, "POST", f"/approve/{found['login']}")  # the account holder's phone
    return None


def wrong_totp(seed: str) -> str:
    """A code no accepted window gives, whatever second it is checked in."""
    totp, now = pyotp.TOTP(seed), datetime.now(UTC)
    accepted = {totp.at(now, counter_offset=offset) for offset in range(-2, 3)}
    return next(code for code in (f"{n:06d}" for n in range(1_000_000)) if code not in accepted)


def on_second_factor_page(connector: PortalConnector, slug: str) -> bool:
    return connector.page_path().split("?")[0] == SECOND_FACTOR_PAGE[slug]


def logged_in_with(open_connector: OpenConnector, sandbox: SandboxHandle, slug: str, kind: SecondFactorKind):
    connector = open_connector(slug)
    challenge = connector.login(credentials(sandbox, slug, kind))
    assert challenge is not None
    assert connector.answer_second_factor(challenge, answer_for(sandbox, slug, kind)) is None
    return connector


# -- each kind, end to end ---------------------------------------------------------------------------------


@both
@pytest.mark.parametrize("kind", list(SecondFactorKind))
def test_login_challenge_answer_then_the_invoices(
    slug: str, kind: SecondFactorKind, sandbox: SandboxHandle, open_connector: OpenConnector
) -> None:
    connector = open_connector(slug)
    assert kind in connector.provider.second_factor_kinds

    challenge = connector.login(credentials(sandbox, slug, kind))

    assert isinstance(challenge, SecondFactorChallenge) and challenge.kind is kind
    assert on_second_factor_page(connector, slug)  # the browser waits there for the answer
    if kind is SecondFactorKind.APP:
        assert "Validez la connexion dans l'application" in challenge.prompt
    elif kind is SecondFactorKind.CODE:
        code = latest_code(sandbox, slug, credentials(sandbox, slug, kind).login)
        assert ("SMS au 06 •• •• •• 11" if slug == "papeterie-dupont" else "e-mail à do•••") in challenge.prompt
        assert code not in challenge.prompt
    else:
        assert "application d'authentification" in challenge.prompt

    assert connector.answer_second_factor(challenge, answer_for(sandbox, slug, kind)) is None

    documents = connector.list_documents(None)
    assert len(documents) == 4
    assert connector.fetch(documents[0]).content.startswith(b"%PDF-")


def test_an_account_without_second_factor_still_logs_in_with_none(
    sandbox: SandboxHandle, open_connector: OpenConnector
) -> None:
    for slug in SLUGS:
        accounts = control(sandbox, slug, "GET", "/accounts").json()["accounts"]
        acme = next(a for a in accounts if a["login"].split("@")[0] == "acme")
        assert open_connector(slug).login(Credentials(acme["login"], acme["password"])) is None


# -- refused answers ------------------------------------------------------------------------------------------


@both
def test_a_wrong_totp_raises_then_the_right_one_works(
    slug: str, sandbox: SandboxHandle, open_connector: OpenConnector
) -> None:
    connector = open_connector(slug)
    creds = credentials(sandbox, slug, SecondFactorKind.TOTP)
    challenge = connector.login(creds)

    with pytest.raises(WrongSecondFactor, match=f"Il vous reste {MAX_SECOND_FACTOR_ATTEMPTS - 1} essais"):
        connector.answer_second_factor(challenge, wrong_totp(creds.totp_seed))

    assert on_second_factor_page(connector, slug)
    assert connector.answer_second_factor(challenge, pyotp.TOTP(creds.totp_seed).now()) is None
    assert len(connector.list_documents(None)) == 4


@both
def test_a_wrong_code_raises_then_the_code_received_works(
    slug: str, sandbox: SandboxHandle, open_connector: OpenConnector
) -> None:
    connector = open_connector(slug)
    creds = credentials(sandbox, slug, SecondFactorKind.CODE)
    challenge = connector.login(creds)
    code = latest_code(sandbox, slug, creds.login)

    with pytest.raises(WrongSecondFactor, match="refused the code: Code incorrect"):
        connector.answer_second_factor(challenge, f"{(int(code) + 1) % 1_000_000:06d}")
    with pytest.raises(WrongSecondFactor, match="empty"):
        connector.answer_second_factor(challenge, "  ")  # not sent: no portal attempt used

    assert connector.answer_second_factor(challenge, f"{code[:3]} {code[3:]}") is None
    assert len(connector.list_documents(None)) == 4


@both
def test_an_app_not_approved_yet_raises_then_the_approval_logs_in(
    slug: str, sandbox: SandboxHandle, open_connector: OpenConnector
) -> None:
    connector = open_connector(slug)
    creds = credentials(sandbox, slug, SecondFactorKind.APP)
    challenge = connector.login(creds)

    with pytest.raises(WrongSecondFactor, match="not approved yet"):
        connector.answer_second_factor(challenge, None)

    assert on_second_factor_page(connector, slug)
    control(sandbox, slug, "POST", f"/approve/{creds.login}")
    assert connector.answer_second_factor(challenge, None) is None
    assert len(connector.list_documents(None)) == 4


@both
def test_an_expired_code_raises_and_the_portal_sends_a_new_one(
    slug: str, sandbox: SandboxHandle, open_connector: OpenConnector
) -> None:
    connector = open_connector(slug)
    creds = credentials(sandbox, slug, SecondFactorKind.CODE)
    challenge = connector.login(creds)
    first = latest_code(sandbox, slug, creds.login)
    control(sandbox, slug, "POST", "/clock", json={"seconds": CODE_VALIDITY.total_seconds() + 1})

    with pytest.raises(WrongSecondFactor, match="expired; the portal sent a new one"):
        connector.answer_second_factor(challenge, first)

    outbox = control(sandbox, slug, "GET", f"/outbox/{creds.login}").json()
    assert len(outbox) == 2 and on_second_factor_page(connector, slug)
    assert connector.answer_second_factor(challenge, outbox[-1]["code"]) is None


@both
def test_too_many_wrong_codes_is_awaiting_second_factor_not_another_try(
    slug: str, sandbox: SandboxHandle, open_connector: OpenConnector
) -> None:
    connector = open_connector(slug)
    creds = credentials(sandbox, slug, SecondFactorKind.TOTP)
    challenge = connector.login(creds)
    wrong = wrong_totp(creds.totp_seed)
    for _ in range(MAX_SECOND_FACTOR_ATTEMPTS - 1):
        with pytest.raises(WrongSecondFactor):
            connector.answer_second_factor(challenge, wrong)

    with pytest.raises(AwaitingSecondFactor, match="too many wrong codes") as dropped:
        connector.answer_second_factor(challenge, wrong)

    assert not isinstance(dropped.value, WrongSecondFactor)
    assert open_connector(slug).login(creds) is not None  # the next run starts again from the password


# -- remembered sessions -------------------------------------------------------------------------------------


@both
def test_a_saved_storage_state_is_logged_in_without_login_until_the_portal_expires_it(
    slug: str, sandbox: SandboxHandle, open_connector: OpenConnector
) -> None:
    first = logged_in_with(open_connector, sandbox, slug, SecondFactorKind.TOTP)
    saved = first.page.context.storage_state()
    first.page.context.close()  # the run that logged in is over
    login_requests: list[str] = []

    next_day = open_connector(slug, storage_state=saved)
    next_day.page.on("request", lambda request: request.method == "POST" and login_requests.append(request.url))

    assert next_day.is_logged_in() is True
    assert login_requests == []  # no login form, no second factor
    assert len(next_day.list_documents(None)) == 4
    assert open_connector(slug).is_logged_in() is False  # a context without the saved state

    login = credentials(sandbox, slug, SecondFactorKind.TOTP).login
    control(sandbox, slug, "POST", "/sessions/expire", json={"login": login})

    assert open_connector(slug, storage_state=saved).is_logged_in() is False  # back to a normal login
    again = open_connector(slug)
    assert again.login(credentials(sandbox, slug, SecondFactorKind.TOTP)) is not None  # which asks the factor again


@both
def test_a_remembered_session_outlives_a_day_but_not_the_session_lifetime(
    slug: str, sandbox: SandboxHandle, open_connector: OpenConnector
) -> None:
    saved = logged_in_with(open_connector, sandbox, slug, SecondFactorKind.CODE).page.context.storage_state()
    lifetime = control(sandbox, slug, "GET", "/sessions").json()["lifetime_seconds"]

    control(sandbox, slug, "POST", "/clock", json={"seconds": 86_400})
    assert open_connector(slug, storage_state=saved).is_logged_in() is True
    control(sandbox, slug, "POST", "/clock", json={"seconds": lifetime})
    assert open_connector(slug, storage_state=saved).is_logged_in() is False
