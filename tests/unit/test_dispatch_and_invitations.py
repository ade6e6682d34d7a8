"""Daily dispatch time slots and invitation bookkeeping (no Prefect server needed)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from flows.dispatch import slot_time
from glaneur.db import session_scope
from glaneur.errors import UsageError
from glaneur.invoices import invitations
from glaneur.models import Binder, Channel, InvitationState, Organization, User, utcnow
from glaneur.statuses import Status


def test_slot_time_is_in_the_organisations_time_zone():
    moment = slot_time(date(2026, 11, 23), "06:30", "Europe/Paris")
    assert moment.isoformat() == "2026-11-23T06:30:00+01:00"
    assert slot_time(date(2026, 7, 1), "06:30", "Europe/Paris").utcoffset() == timedelta(hours=2)


@pytest.fixture
def channel(glaneur_home):
    with session_scope() as session:
        org = Organization(slug="o", name="O")
        session.add(org)
        session.flush()
        user = User(organization_id=org.id, email="holder@o.example", name="Holder")
        binder = Binder(organization_id=org.id, slug="b", name="B")
        session.add_all([user, binder])
        session.flush()
        session.add(Channel(organization_id=org.id, slug="o-p", label="P", provider="papeterie-dupont",
                            binder_id=binder.id, recipient_user_id=user.id))
    return "o-p"


def test_an_invitation_is_created_once_per_flow_run_and_expires(channel):
    with session_scope() as session:
        first = invitations.open_invitation(session, channel, "Holder@o.example", flow_run_id="run-1", ttl=timedelta(hours=1))
        again = invitations.open_invitation(session, channel, "holder@o.example", flow_run_id="run-1", ttl=timedelta(hours=1))
        assert first.id == again.id
        assert session.get(Channel, first.channel_id).status == Status.AWAITING_CREDENTIALS
        assert 3500 < invitations.seconds_left(first) <= 3600
        invitations.record_sent(session, first, delivered=False, error="address refused")
        assert first.state == InvitationState.UNDELIVERABLE and first.delivery_error == "address refused"
        invitations.record_sent(session, first, delivered=True)
        assert first.state == InvitationState.PENDING and first.sent_count == 2
        first.expires_at = utcnow() - timedelta(minutes=1)
        assert invitations.expire_overdue(session) == 1
        assert first.state == InvitationState.EXPIRED


def test_an_invitation_sent_again_goes_to_the_corrected_address(channel):
    from glaneur import admin
    from glaneur.doctor import _invitation

    with session_scope() as session:
        invitation = invitations.open_invitation(session, channel, "holder@o.example", flow_run_id="r", ttl=timedelta(hours=1))
        invitations.record_sent(session, invitation, delivered=False, error="address refused")
        fix = _invitation(session, invitation, utcnow()).fix
        assert "glaneur user update o holder@o.example --email ADDRESS" in fix
        assert "glaneur channel resend-invitation o-p" in fix
        holder = admin.get_user(session, "o", "holder@o.example")
        admin.update_user(session, "o", "holder@o.example", new_email="holder@right.example", actor=holder)
        assert "glaneur user update o holder@right.example --email" in _invitation(session, invitation, utcnow()).fix
        invitations.record_sent(session, invitation, delivered=True)
        assert (invitation.email, invitation.state, invitation.sent_count) == ("holder@right.example", InvitationState.PENDING, 2)
        assert _invitation(session, invitation, utcnow()).detail.startswith("pending, sent 2 time(s) to holder@right.example")


def test_an_invitation_to_a_stranger_or_an_unknown_channel_is_refused(channel):
    with session_scope() as session:
        with pytest.raises(UsageError, match="not a user of the channel's organisation"):
            invitations.open_invitation(session, channel, "who@else.example", flow_run_id="r", ttl=timedelta(hours=1))
        with pytest.raises(UsageError, match="unknown or deleted channel"):
            invitations.open_invitation(session, "nope", "holder@o.example", flow_run_id="r", ttl=timedelta(hours=1))
