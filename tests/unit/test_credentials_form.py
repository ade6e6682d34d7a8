"""The account holder's credentials form at ``glaneur serve`` (``/credentials/ID``) without a Prefect server:
its link is signed for one invitation, a closed invitation's link is dead, what it refuses is said on the
form and reaches nothing, and Prefect out of reach stores nothing anywhere. The answer reaching the waiting
run is tested end to end in ``tests/e2e/test_invitation.py``."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from sqlmodel import select

from glaneur.db import session_scope
from glaneur.invoices import invitations as invites
from glaneur.models import Account, Invitation, InvitationState, VaultEntry
from glaneur.settings import get_settings
from glaneur.signing import credentials_link
from tests import factories

HOLDER = "holder@org.example"


@pytest.fixture
def invitation(glaneur_home, monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")  # no Prefect server answers there
    factories.collection_channel("org-papeterie", holders=[HOLDER],
                                 accounts=[("one", "pass-one"), ("two", "pass-two")])  # fmt: skip
    with session_scope() as session:
        opened = invites.open_invitation(session, "org-papeterie", HOLDER, flow_run_id="flow-run-1",
                                         ttl=timedelta(hours=1))
        return opened.id, credentials_link(get_settings(), opened.id, opened.expires_at)


@pytest.fixture
def client():
    from fastapi.testclient import TestClient

    from web.callbacks import create_callback_app

    return TestClient(create_callback_app())


def _path(link: str) -> str:
    split = urlsplit(link)
    return f"{split.path}?{split.query}"


def _post(client, link: str, **fields):
    query = dict(part.split("=", 1) for part in urlsplit(link).query.split("&"))
    return client.post(urlsplit(link).path, data={"exp": query["exp"], "sig": query["sig"], **fields})


def _stored() -> tuple[int, int]:
    with session_scope() as session:
        return len(session.exec(select(Account)).all()), len(session.exec(select(VaultEntry)).all())


def test_the_link_opens_the_form_of_its_invitation_only(invitation, client):
    invitation_id, link = invitation
    page = client.get(_path(link))
    assert page.status_code == 200
    assert "Papeterie Dupont" in page.text and HOLDER in page.text and page.text.count("type=password") == 2
    assert client.get(_path(link).replace("sig=", "sig=0")).status_code == 403
    other = _path(link).replace(f"/credentials/{invitation_id}?", f"/credentials/{invitation_id + 1}?")
    assert client.get(other).status_code == 403  # signed for another invitation
    longer = _path(link).replace("exp=", "exp=1")
    assert client.get(longer).status_code == 403  # an expiry of one's own choosing


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"login": " ", "password": "secret-1"}, "the login is empty"),
        ({"login": "one", "password": ""}, "the password is empty"),
        ({"login": "one", "password": "secret-1", "totp_seed": "not a seed!"}, "TOTP"),
        ({"login": "three", "password": "secret-1"}, "already holds its 2 accounts"),
    ],
)  # fmt: skip
def test_what_the_form_refuses_is_said_there_and_reaches_nothing(invitation, client, fields, said):
    _, link = invitation
    before = _stored()
    refused = _post(client, link, **fields)
    assert refused.status_code == 400 and said in refused.text and "n'a pas été enregistrée" in refused.text
    assert fields["password"] == "" or fields["password"] not in refused.text  # never echoed
    assert _stored() == before


def test_prefect_out_of_reach_stores_nothing_and_says_to_try_again(invitation, client):
    _, link = invitation
    before = _stored()
    page = _post(client, link, login="one", password="new-secret-1")
    assert page.status_code == 503 and "enregistrés nulle part" in page.text
    assert "new-secret-1" not in page.text and _stored() == before


@pytest.mark.parametrize("state", [InvitationState.ANSWERED, InvitationState.EXPIRED, InvitationState.CANCELLED])
def test_a_closed_invitations_link_is_dead(invitation, client, state):
    invitation_id, link = invitation
    with session_scope() as session:
        invites.mark(session, session.get(Invitation, invitation_id), state)
    page = client.get(_path(link))
    assert page.status_code == 410
    assert ("déjà été enregistrés" if state == InvitationState.ANSWERED else "expiré ou a été annulée") in page.text
    assert _post(client, link, login="one", password="new-secret-1").status_code == 410
