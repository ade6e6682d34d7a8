"""Second factors and remembered sessions in the sandbox portals, over HTTP (in-process TestClient).

TOTP (right, wrong, the neighbouring windows), a code read from the test outbox (wrong then
right, resent, expired), approval in the app, the pending login dropped after five wrong codes,
sessions that outlive a browser context and expire (by time or by the control endpoint), reset.
The portal's clock (``app.state.portal.clock``) is moved instead of waiting.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from sandbox.data import (
    CODE_VALIDITY,
    ENERGIE_VERTE,
    MAX_SECOND_FACTOR_ATTEMPTS,
    PAPETERIE_DUPONT,
    SESSION_LIFETIME,
    Supplier,
    accounts_of,
)
from sandbox.portals import energie_verte_app, papeterie_dupont_app


@dataclass(frozen=True)
class Portal:
    supplier: Supplier
    make_app: Callable[[], FastAPI]
    login_path: str
    fields: tuple[str, str, str]  # login, password, CSRF token of the login form
    second_factor_path: str
    second_factor_token: str  # CSRF field of the second-factor forms
    home: str
    session_cookie: str
    channel: str  # of the codes it sends

    def login_of(self, stem: str) -> str:
        return self.supplier.login_format.format(stem=stem)

    def client(self, same_portal_as: TestClient | None = None) -> TestClient:
        app = same_portal_as.app if same_portal_as is not None else self.make_app()
        return TestClient(app, follow_redirects=False)

    def post_login(self, client: TestClient, stem: str):
        login_field, password_field, token_field = self.fields
        page = client.get(self.login_path).text
        token = re.search(rf'name="{token_field}" value="([^"]+)"', page)[1]
        password = accounts_of(self.supplier)[self.login_of(stem)].password
        form = {login_field: self.login_of(stem), password_field: password, token_field: token}
        return client.post(self.login_path, data=form)

    def answer(self, client: TestClient, code: str | None):
        page = client.get(self.second_factor_path)
        assert page.status_code == 200, page.headers.get("location")
        token = re.search(rf'name="{self.second_factor_token}" value="([^"]+)"', page.text)[1]
        data = {self.second_factor_token: token} | ({"code": code} if code is not None else {})
        return client.post(self.second_factor_path, data=data)

    def resend(self, client: TestClient):
        token = re.search(
            rf'name="{self.second_factor_token}" value="([^"]+)"', client.get(self.second_factor_path).text
        )[1]
        return client.post(f"{self.second_factor_path}/renvoi", data={self.second_factor_token: token})


PD = Portal(
    PAPETERIE_DUPONT,
    papeterie_dupont_app,
    "/login",
    ("username", "password", "csrf_token"),
    "/double-authentification",
    "csrf_token",
    "/factures",
    "pd_session",
    "sms",
)
EV = Portal(
    ENERGIE_VERTE,
    energie_verte_app,
    "/connexion",
    ("email", "mot_de_passe", "csrf"),
    "/connexion/verification",
    "jeton",
    "/espace-client",
    "ev_session",
    "email",
)
both = pytest.mark.parametrize("portal", [PD, EV], ids=["papeterie-dupont", "energie-verte"])


def accounts(client: TestClient) -> dict[str, dict]:
    return {a["login"]: a for a in client.get("/_sandbox/accounts").json()["accounts"]}


def seed_of(portal: Portal, client: TestClient) -> str:
    return accounts(client)[portal.login_of("double-totp")]["totp_seed"]


def at_second_factor(portal: Portal, stem: str) -> TestClient:
    client = portal.client()
    response = portal.post_login(client, stem)
    assert response.status_code == 303 and response.headers["location"] == portal.second_factor_path
    return client


def logged_in(portal: Portal, client: TestClient) -> bool:
    return client.get(portal.home).status_code == 200


def wrong_totp(portal: Portal, client: TestClient) -> str:
    """A code that none of the accepted windows gives (with the portal's clock frozen, so that stays true)."""
    now = datetime.now(UTC)
    client.app.state.portal.clock = lambda: now
    totp = pyotp.TOTP(seed_of(portal, client))
    accepted = {totp.at(now, counter_offset=offset) for offset in (-1, 0, 1)}
    return next(code for code in (f"{n:06d}" for n in range(1_000_000)) if code not in accepted)


def move_clock(client: TestClient, by: timedelta) -> None:
    """From now on the portal believes it is ``by`` later than it is."""
    client.app.state.portal.clock = lambda: datetime.now(UTC) + by


# -- the accounts ----------------------------------------------------------------------------------


@both
def test_each_portal_has_one_account_per_second_factor_and_exposes_the_totp_seed(portal: Portal) -> None:
    client = portal.client()
    found = {a["login"]: a for a in accounts(client).values() if a["second_factor"]}

    assert {login: a["second_factor"] for login, a in found.items()} == {
        portal.login_of("double-totp"): "totp",
        portal.login_of("double-code"): "code",
        portal.login_of("double-appli"): "app",
    }
    seed = found[portal.login_of("double-totp")]["totp_seed"]
    assert len(seed) >= 32 and re.fullmatch(r"[A-Z2-7]+", seed)
    assert seed == seed_of(portal, portal.client())  # fixed: the same in every fresh portal
    assert all(a["totp_seed"] is None for login, a in found.items() if not login.startswith("double-totp"))
    assert all(a["invoices"] == 4 for a in found.values())
    assert accounts(client)[portal.login_of("acme")]["second_factor"] is None


def test_the_two_portals_have_different_seeds() -> None:
    assert seed_of(PD, PD.client()) != seed_of(EV, EV.client())


@both
def test_an_account_without_second_factor_logs_in_at_once(portal: Portal) -> None:
    client = portal.client()
    assert portal.post_login(client, "acme").headers["location"] == portal.home
    assert client.get(portal.second_factor_path).headers["location"] == portal.login_path


# -- TOTP ------------------------------------------------------------------------------------------


@both
def test_the_right_totp_logs_in(portal: Portal) -> None:
    client = at_second_factor(portal, "double-totp")
    page = client.get(portal.second_factor_path).text
    assert "application d&#x27;authentification" in page and 'name="code"' in page
    assert not logged_in(portal, client)  # the password alone is not enough

    response = portal.answer(client, pyotp.TOTP(seed_of(portal, client)).now())

    assert response.status_code == 303 and response.headers["location"] == portal.home
    assert logged_in(portal, client)
    assert client.get(portal.second_factor_path).headers["location"] == portal.login_path  # nothing pending


@both
def test_a_wrong_totp_shows_the_page_again_with_the_attempts_left(portal: Portal) -> None:
    client = at_second_factor(portal, "double-totp")
    totp = pyotp.TOTP(seed_of(portal, client))

    response = portal.answer(client, wrong_totp(portal, client))

    assert response.status_code == 200
    assert f"Code incorrect. Il vous reste {MAX_SECOND_FACTOR_ATTEMPTS - 1} essais." in response.text
    assert not logged_in(portal, client)
    right = totp.at(client.app.state.portal.clock())
    assert portal.answer(client, right).headers["location"] == portal.home  # then the right one works


@both
@pytest.mark.parametrize(("windows", "accepted"), [(-1, True), (1, True), (-3, False), (3, False)])
def test_the_neighbouring_totp_windows_are_accepted_and_no_further(
    portal: Portal, windows: int, accepted: bool
) -> None:
    client = at_second_factor(portal, "double-totp")
    now = datetime.now(UTC)
    client.app.state.portal.clock = lambda: now  # no window boundary between computing and checking
    code = pyotp.TOTP(seed_of(portal, client)).at(now, counter_offset=windows)

    response = portal.answer(client, code)

    assert (response.status_code == 303) is accepted
    assert logged_in(portal, client) is accepted


@both
def test_spaces_in_a_typed_code_are_ignored(portal: Portal) -> None:
    client = at_second_factor(portal, "double-totp")
    code = pyotp.TOTP(seed_of(portal, client)).now()
    assert portal.answer(client, f" {code[:3]} {code[3:]} ").status_code == 303


# -- a code sent by SMS or e-mail ---------------------------------------------------------------------


@both
def test_the_code_goes_to_the_test_outbox_only(portal: Portal) -> None:
    client = portal.client()
    login = portal.login_of("double-code")
    assert client.get(f"/_sandbox/outbox/{login}").json() == []

    portal.post_login(client, "double-code")
    outbox = client.get(f"/_sandbox/outbox/{login}").json()
    page = client.get(portal.second_factor_path).text

    assert len(outbox) == 1
    message = outbox[0]
    assert re.fullmatch(r"\d{6}", message["code"]) and message["channel"] == portal.channel
    assert abs(datetime.fromisoformat(message["sent_at"]) - datetime.now(UTC)) < timedelta(minutes=1)
    assert message["code"] in message["text"]
    assert message["code"] not in page  # the page says where it went, never the code
    destination = "par SMS au 06 •• •• •• 11" if portal.channel == "sms" else "par e-mail à do•••••••••@client.test"
    assert destination in page and "Renvoyer le code" in page
    assert portal.answer(client, message["code"]).headers["location"] == portal.home


@both
def test_a_wrong_code_then_the_right_one(portal: Portal) -> None:
    client = at_second_factor(portal, "double-code")
    code = client.get(f"/_sandbox/outbox/{portal.login_of('double-code')}").json()[-1]["code"]

    wrong = portal.answer(client, f"{(int(code) + 1) % 1_000_000:06d}")

    assert wrong.status_code == 200 and "Code incorrect" in wrong.text
    assert portal.answer(client, code).headers["location"] == portal.home
    assert logged_in(portal, client)


@both
def test_a_resent_code_replaces_the_previous_one(portal: Portal) -> None:
    client = at_second_factor(portal, "double-code")
    login = portal.login_of("double-code")
    first = client.get(f"/_sandbox/outbox/{login}").json()[-1]["code"]

    resent = portal.resend(client)
    outbox = client.get(f"/_sandbox/outbox/{login}").json()

    assert resent.headers["location"].startswith(portal.second_factor_path)
    assert "Un nouveau code vous a été envoyé" in client.get(resent.headers["location"]).text
    assert len(outbox) == 2 and outbox[0]["code"] == first  # in the order sent: the newest last
    if outbox[-1]["code"] != first:  # one chance in a million that the new code is the same
        assert portal.answer(client, first).status_code == 200
    assert portal.answer(client, outbox[-1]["code"]).headers["location"] == portal.home


@both
def test_a_code_expires_after_five_minutes_and_a_new_one_works(portal: Portal) -> None:
    client = at_second_factor(portal, "double-code")
    login = portal.login_of("double-code")
    code = client.get(f"/_sandbox/outbox/{login}").json()[-1]["code"]
    move_clock(client, CODE_VALIDITY + timedelta(seconds=1))

    expired = portal.answer(client, code)

    assert expired.status_code == 200 and "Ce code a expiré" in expired.text and "code-expire" in expired.text
    portal.resend(client)
    fresh = client.get(f"/_sandbox/outbox/{login}").json()[-1]["code"]
    assert portal.answer(client, fresh).headers["location"] == portal.home


# -- approval in the app ---------------------------------------------------------------------------


@both
def test_app_approval(portal: Portal) -> None:
    client = at_second_factor(portal, "double-appli")
    login = portal.login_of("double-appli")
    page = client.get(portal.second_factor_path).text
    assert "Validez la connexion dans l&#x27;application" in page and 'name="code"' not in page

    too_early = portal.answer(client, None)
    assert too_early.status_code == 200 and "pas encore été validée" in too_early.text
    assert client.post(f"/_sandbox/approve/{login}").json() == {"approved": 1}

    assert portal.answer(client, None).headers["location"] == portal.home
    assert logged_in(portal, client)
    assert client.post(f"/_sandbox/approve/{login}").status_code == 409  # nothing waits any more


@both
def test_approving_with_no_login_waiting_or_an_unknown_account_is_refused(portal: Portal) -> None:
    client = portal.client()
    assert client.post(f"/_sandbox/approve/{portal.login_of('double-appli')}").status_code == 409
    assert client.post("/_sandbox/approve/nobody").status_code == 404
    assert client.get("/_sandbox/outbox/nobody").status_code == 404


# -- limits ----------------------------------------------------------------------------------------


@both
def test_five_wrong_codes_drop_the_pending_login(portal: Portal) -> None:
    client = at_second_factor(portal, "double-totp")
    wrong = wrong_totp(portal, client)
    for left in range(MAX_SECOND_FACTOR_ATTEMPTS - 1, 0, -1):
        response = portal.answer(client, wrong)
        assert f"Il vous reste {left} essai" in response.text

    last = portal.answer(client, wrong)

    assert last.status_code == 303 and last.headers["location"].startswith(portal.login_path + "?")
    assert "Trop de codes erronés" in client.get(last.headers["location"]).text
    assert client.get(portal.second_factor_path).headers["location"] == portal.login_path
    assert portal.post_login(client, "double-totp").headers["location"] == portal.second_factor_path  # start again


@both
def test_the_second_factor_form_needs_its_token(portal: Portal) -> None:
    client = at_second_factor(portal, "double-totp")
    code = pyotp.TOTP(seed_of(portal, client)).now()
    response = client.post(portal.second_factor_path, data={"code": code, portal.second_factor_token: "forged"})
    assert response.status_code == 400 and not logged_in(portal, client)


# -- remembered sessions ---------------------------------------------------------------------------


def logged_in_with_totp(portal: Portal) -> TestClient:
    client = at_second_factor(portal, "double-totp")
    response = portal.answer(client, pyotp.TOTP(seed_of(portal, client)).now())
    assert response.headers["location"] == portal.home
    assert f"Max-Age={int(SESSION_LIFETIME.total_seconds())}" in response.headers["set-cookie"]
    return client


def same_cookie_elsewhere(portal: Portal, client: TestClient) -> TestClient:
    """Another browser context on the same portal, given the saved session cookie (as storage_state does)."""
    other = portal.client(same_portal_as=client)
    other.cookies.set(portal.session_cookie, client.cookies[portal.session_cookie])
    return other


@both
def test_a_session_is_reused_by_another_browser_until_it_expires(portal: Portal) -> None:
    client = logged_in_with_totp(portal)
    next_day = same_cookie_elsewhere(portal, client)
    move_clock(client, timedelta(days=1))

    assert logged_in(portal, next_day)  # no login, no second factor
    assert client.get("/_sandbox/sessions").json() == {"lifetime_seconds": SESSION_LIFETIME.total_seconds()}
    move_clock(client, SESSION_LIFETIME + timedelta(minutes=1))
    assert client.get(portal.home).headers["location"] == portal.login_path


@both
def test_the_session_lifetime_is_configurable(portal: Portal) -> None:
    client = portal.client()
    assert client.post("/_sandbox/sessions/lifetime", json={"seconds": 3600}).json() == {"lifetime_seconds": 3600}
    assert client.post("/_sandbox/sessions/lifetime", json={"seconds": 0}).status_code == 422
    portal.post_login(client, "acme")
    move_clock(client, timedelta(minutes=59))
    assert logged_in(portal, client)
    move_clock(client, timedelta(minutes=61))
    assert not logged_in(portal, client)


@both
def test_the_expire_endpoint_ends_one_accounts_sessions_or_all(portal: Portal) -> None:
    totp = logged_in_with_totp(portal)
    acme = portal.client(same_portal_as=totp)
    portal.post_login(acme, "acme")

    one = totp.post("/_sandbox/sessions/expire", json={"login": portal.login_of("double-totp")})

    assert one.json() == {"expired": portal.login_of("double-totp")}
    assert not logged_in(portal, totp) and logged_in(portal, acme)
    assert totp.post("/_sandbox/sessions/expire", json={"login": "nobody"}).status_code == 404
    assert totp.post("/_sandbox/sessions/expire").json() == {"expired": "all"}
    assert not logged_in(portal, acme)
    portal.post_login(acme, "acme")  # a new login after the expiry works
    assert logged_in(portal, acme)


@both
def test_reset_clears_outbox_approvals_pending_logins_and_sessions(portal: Portal) -> None:
    session = logged_in_with_totp(portal)
    client = portal.client(same_portal_as=session)
    portal.post_login(client, "double-code")
    app_login = portal.client(same_portal_as=session)
    portal.post_login(app_login, "double-appli")
    client.post(f"/_sandbox/approve/{portal.login_of('double-appli')}")
    client.post("/_sandbox/sessions/lifetime", json={"seconds": 60})

    assert client.post("/_sandbox/reset").status_code == 200

    assert client.get(f"/_sandbox/outbox/{portal.login_of('double-code')}").json() == []
    assert client.get(portal.second_factor_path).headers["location"] == portal.login_path
    assert app_login.get(portal.second_factor_path).headers["location"] == portal.login_path
    assert not logged_in(portal, session)
    assert client.get("/_sandbox/sessions").json() == {"lifetime_seconds": SESSION_LIFETIME.total_seconds()}
    portal.post_login(app_login, "double-appli")
    assert portal.answer(app_login, None).status_code == 200  # the approval went with the reset


@both
def test_the_clock_endpoint_moves_the_portals_time_until_reset(portal: Portal) -> None:
    client = logged_in_with_totp(portal)
    assert client.get("/_sandbox/clock").json()["offset_seconds"] == 0

    moved = client.post("/_sandbox/clock", json={"seconds": SESSION_LIFETIME.total_seconds() + 60}).json()

    assert moved["offset_seconds"] == SESSION_LIFETIME.total_seconds() + 60
    assert datetime.fromisoformat(moved["now"]) > datetime.now(UTC) + SESSION_LIFETIME
    assert not logged_in(portal, client)  # a week and a minute later
    again = portal.client(same_portal_as=client)
    assert portal.post_login(again, "double-totp").headers["location"] == portal.second_factor_path
    code = pyotp.TOTP(seed_of(portal, again)).now()  # the phone keeps the real time
    assert portal.answer(again, code).status_code == 303
    assert logged_in(portal, again)
    assert client.post("/_sandbox/clock", json={"seconds": -1}).status_code == 422
    client.post("/_sandbox/reset")
    assert client.get("/_sandbox/clock").json()["offset_seconds"] == 0


def test_the_outbox_keeps_the_latest_ten_codes_in_the_order_sent() -> None:
    client = at_second_factor(PD, "double-code")
    for _ in range(11):
        PD.resend(client)
    state = client.app.state.portal
    sent = [message.code for message in state.outbox]

    shown = [message["code"] for message in client.get("/_sandbox/outbox/double-code").json()]

    assert len(sent) == 12 and shown == sent[-10:]
    assert PD.answer(client, shown[-1]).headers["location"] == PD.home  # the last one shown is the one that works
