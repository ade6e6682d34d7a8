"""Reading an account's credentials for a collection: an unreadable secret fails that account alone."""

from __future__ import annotations

import pytest
from sqlmodel import select

from glaneur.db import session_scope
from glaneur.errors import SecretUnreadable
from glaneur.invoices import collection
from glaneur.models import Account, VaultEntry
from glaneur.statuses import Status
from tests import factories

SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


@pytest.fixture
def channel(glaneur_home, monkeypatch):
    for name in ("GLANEUR_VAULT_KEY", "GLANEUR_VAULT_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    with session_scope() as session:
        owner = factories.organization(session, "acme", "Acme", owner="owner@acme.example")
        factories.channel(session, owner, "acme-papeterie", accounts=[("one", "first-Pa55"), ("two", "second-Pa55", SEED)])
    return "acme-papeterie"


def accounts_by_login() -> dict[str, Account]:
    with session_scope() as session:
        return {a.login: a for a in session.exec(select(Account)).all()}


def damage(entry_id: int) -> None:
    with session_scope() as session:
        entry = session.get(VaultEntry, entry_id)
        ciphertext = bytearray(entry.ciphertext)
        ciphertext[len(ciphertext) // 2] ^= 0x01
        entry.ciphertext = bytes(ciphertext)
        session.add(entry)


@pytest.mark.parametrize("which", ["secret_ref", "totp_ref"])
def test_an_unreadable_secret_fails_its_account_alone(channel, which):
    accounts = accounts_by_login()
    damage(getattr(accounts["two"], which))

    with session_scope() as session:
        with pytest.raises(SecretUnreadable) as caught:
            collection.read_credentials(session, accounts["two"].id)
        assert collection.read_credentials(session, accounts["one"].id).password == "first-Pa55"

    error = caught.value
    assert error.status == Status.SECRET_UNREADABLE and not error.retried
    assert f"glaneur channel update-credentials {channel} --login two" in error.user_message
    assert "second-Pa55" not in error.user_message and SEED not in error.user_message
