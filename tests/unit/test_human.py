"""Human in the loop without a Prefect server: the forms' schemas, answer checks, wording, expiry bookkeeping,
and input deletion that never fails silently."""

from __future__ import annotations

import logging
import socket
from datetime import timedelta

import pytest
from sqlmodel import select

from glaneur.db import session_scope
from glaneur.errors import UsageError
from glaneur.invoices import invitations
from glaneur.models import Binder, Channel, Notification, Organization, User, utcnow


def test_durations_read_in_plain_words():
    from tasks.human import duration

    assert duration(3) == "3 s"  # was "0 min"
    assert duration(59.6) == "1 min"
    assert duration(3600) == "1 h"
    assert duration(5400) == "1 h 30 min"


def test_the_invitation_form_masks_secrets_and_has_no_none_switch():
    from prefect.utilities.callables import create_v2_schema

    from flows.request_credentials import AccountCredentials

    model = AccountCredentials.with_initial_data(description="x")
    properties = create_v2_schema(model.__name__, model_base=model)["properties"]
    for name in ("password", "totp_seed"):
        assert properties[name]["format"] == "password" and properties[name]["type"] == "string", properties[name]
    assert "anyOf" not in properties["totp_seed"] and "default" not in properties["totp_seed"]


def test_a_16_character_seed_gives_the_codes_of_rfc_6238():
    # RFC 6238 appendix B's SHA-1 key, cut to 80 bits, checked against an independent HMAC computation.
    import base64
    import hashlib
    import hmac
    import struct

    from glaneur import totp

    seed = "GEZDGNBVGY3TQOJQ"  # base32 of "1234567890": 10 bytes, 80 bits
    moment = 59
    digest = hmac.new(base64.b32decode(seed), struct.pack(">Q", moment // 30), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    expected = (struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF) % 10**6
    assert totp.code(seed, for_time=moment) == f"{expected:06d}"


@pytest.fixture
def channel(glaneur_home):
    with session_scope() as session:
        org = Organization(slug="o", name="O")
        session.add(org)
        session.flush()
        owner = User(organization_id=org.id, email="owner@o.example", name="Owner")
        holder = User(organization_id=org.id, email="holder@o.example", name="Holder")
        binder = Binder(organization_id=org.id, slug="b", name="B")
        session.add_all([owner, holder, binder])
        session.flush()
        session.add(Channel(organization_id=org.id, slug="o-p", label="P", provider="papeterie-dupont",
                            binder_id=binder.id, recipient_user_id=owner.id))
    return "o-p"


def test_a_seed_the_vault_refuses_is_refused_when_the_holder_submits(channel):
    """The one check of a holder's answer (the Prefect UI's form and glaneur serve's alike)."""
    from glaneur.admin import check_answer

    with session_scope() as session:
        with pytest.raises(UsageError, match="too short") as refused:
            check_answer(session, channel, "acme", "JBSWY3DPEHPK")
        assert "JBSWY3DPEHPK" not in str(refused.value)
        # 16 characters (80 bits), the length most portals issue, is a usable seed.
        assert check_answer(session, channel, "acme", "jbsw y3dp ehpk 3pxp") == "JBSWY3DPEHPK3PXP"
        assert check_answer(session, channel, "acme") is None
        assert check_answer(session, channel, "acme", " ") is None
        assert check_answer(session, channel, "acme", "jbsw y3dp ehpk 3pxp jbsw y3dp") == "JBSWY3DPEHPK3PXPJBSWY3DP"
        with pytest.raises(UsageError, match="the login is empty"):
            check_answer(session, channel, "  ", "")


def test_an_expired_invitation_tells_the_owner_once(channel, glaneur_home):
    with session_scope() as session:
        invitation = invitations.open_invitation(session, channel, "holder@o.example", flow_run_id="r",
                                                 ttl=timedelta(hours=1))
        assert invitations.is_open(invitation)
        invitation.expires_at = utcnow() - timedelta(seconds=1)
        assert not invitations.is_open(invitation)
        assert invitations.expire_overdue(session) == 1
        assert invitations.expire(session, invitation) is False  # told once
        told = session.exec(select(Notification).where(Notification.kind == "invitation_expired")).all()
        assert [n.user_id for n in told] == [session.exec(select(User).where(User.email == "owner@o.example")).one().id]
        assert "glaneur channel invite o-p --invitee holder@o.example" in told[0].body
    assert len(list((glaneur_home / "outbox").glob("*.eml"))) == 1


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_failed_input_deletion_is_retried_logged_and_raised(caplog):
    from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    import tasks.human as human

    api = f"http://127.0.0.1:{_closed_port()}/api"
    with temporary_settings(updates={PREFECT_API_URL: api, PREFECT_CLIENT_MAX_RETRIES: 0}):
        with caplog.at_level(logging.WARNING, logger="tasks.human"):
            with pytest.raises(RuntimeError, match="failed 4 times; delete it by hand"):
                human.delete_input("suspended-invitation-1-response", "6f1c0b1e-0000-4000-8000-000000000001")
    warnings = [r for r in caplog.records if "deleting flow run input" in r.getMessage()]
    assert len(warnings) == human.DELETE_ATTEMPTS
