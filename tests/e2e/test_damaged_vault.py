"""A damaged vault entry fails its own account only, and a damaged canary stops nothing (issue 14, item 6)."""

from __future__ import annotations

import pytest
from sqlmodel import select

from glaneur.db import session_scope
from glaneur.models import Account, VaultEntry
from tests.e2e.test_collect_channel import channel_state, filed_documents, make_channel, run, runs

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]


def damage(*, purpose: str | None = None, entry_id: int | None = None) -> None:
    with session_scope() as session:
        query = select(VaultEntry).where(VaultEntry.purpose == purpose) if purpose else None
        entry = session.exec(query).one() if query is not None else session.get(VaultEntry, entry_id)
        ciphertext = bytearray(entry.ciphertext)
        ciphertext[len(ciphertext) // 2] ^= 0x01
        entry.ciphertext = bytes(ciphertext)
        session.add(entry)


def test_an_unreadable_secret_fails_its_account_alone_and_a_damaged_canary_is_rewritten(glaneur_home, portals):
    slug = make_channel("papeterie-dupont", ("acme", None), ("acme-bis", None))
    with session_scope() as session:
        acme = session.exec(select(Account).where(Account.login == "acme")).one()
    damage(entry_id=acme.secret_ref)
    damage(purpose="canary")

    summary = run(slug)

    by_login = {account["login"]: account for account in summary["accounts"]}
    assert by_login["acme-bis"]["status"] == "ok" and by_login["acme-bis"]["new"] == 5
    assert by_login["acme"]["status"] == "secret_unreadable"
    assert f"glaneur channel update-credentials {slug} --login acme" in by_login["acme"]["message"]
    assert [r.status for r in runs()] == ["secret_unreadable", "ok"]
    assert len(filed_documents()) == 5
    assert channel_state(slug).status == "secret_unreadable"
    with session_scope() as session:
        assert session.exec(select(Account).where(Account.login == "acme")).one().status == "secret_unreadable"
