"""glaneur.notify on a fresh migrated database, mails through a real SMTP peer (aiosmtpd)."""

from __future__ import annotations

import email
import socket
from email import policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlmodel import Session, select

from glaneur.db import get_engine
from glaneur.errors import UsageError
from glaneur.models import Binder, Channel, Notification, Organization, User
from glaneur.notify import configured_run_link, list_notifications, mark_read, notify_channel_status, notify_user
from glaneur.settings import Settings, get_settings, reset_settings
from glaneur.statuses import Status, describe

RUN_ID = "8d4c2b1e-0000-4000-8000-000000000001"
LINK = f"http://127.0.0.1:4200/v2/runs/flow-run/{RUN_ID}"  # the UI that masks password fields


class Collector:
    def __init__(self) -> None:
        self.envelopes = []
        self.refuse: set[str] = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self) -> list[email.message.EmailMessage]:
        return [
            email.message_from_bytes(e.original_content or e.content, policy=policy.default) for e in self.envelopes
        ]


@pytest.fixture
def smtp_peer(glaneur_home, monkeypatch):
    """A real SMTP server on a free port of 127.0.0.1, and Glaneur's settings pointed at it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    collector = Collector()
    controller = Controller(collector, hostname="127.0.0.1", port=port, server_hostname="mail.test")
    controller.start()
    monkeypatch.setenv("GLANEUR_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("GLANEUR_SMTP_PORT", str(port))
    monkeypatch.setenv("GLANEUR_MAIL_FROM", "Glaneur <glaneur@cabinet-exemple.fr>")
    reset_settings()
    yield collector
    controller.stop()
    reset_settings()


@pytest.fixture
def session(glaneur_home):
    with Session(get_engine(), expire_on_commit=False) as session:
        yield session


@pytest.fixture
def world(session):
    """An organisation with an owner, a recipient, a binder and a supplier channel set up by the owner."""
    org = Organization(slug="acme", name="ACME SARL")
    session.add(org)
    session.flush()
    owner = User(organization_id=org.id, email="claire@acme.fr", name="Claire Martin")
    recipient = User(organization_id=org.id, email="compta@acme.fr", name="Compta")
    binder = Binder(organization_id=org.id, slug="achats", name="Achats")
    session.add_all([owner, recipient, binder])
    session.flush()
    channel = Channel(
        organization_id=org.id,
        slug="acme-papeterie-dupont",
        label="Papeterie Dupont",
        provider="papeterie-dupont",
        binder_id=binder.id,
        recipient_user_id=recipient.id,
        owner_user_id=owner.id,
    )
    session.add(channel)
    session.commit()
    return {"org": org, "owner": owner, "recipient": recipient, "channel": channel}


def daily_run(session: Session, channel: Channel, status: Status, message: str | None = None) -> bool:
    """What the collection flow does after a run: record the status, notify, commit."""
    channel.status = status
    channel.status_message = describe(status).message if message is None else message
    session.add(channel)
    session.flush()
    sent = notify_channel_status(session, channel.id, link=LINK)
    session.commit()
    return sent


def test_the_owner_gets_one_mail_per_change_of_state_not_one_a_day(session, world, smtp_peer):
    channel = world["channel"]
    advice = "Le portail a refusé l'identifiant 'claire@acme.fr'. " + describe(Status.WRONG_CREDENTIALS).message

    assert daily_run(session, channel, Status.WRONG_CREDENTIALS, advice) is True
    [message] = smtp_peer.messages()
    assert message["To"].addresses[0].addr_spec == "claire@acme.fr"
    assert str(message["Subject"]) == "[Glaneur] Papeterie Dupont: identifiants refusés / wrong credentials"
    body = message.get_content()
    assert "Papeterie Dupont" in body
    assert "wrong_credentials" in body
    assert advice in body
    assert LINK in body.splitlines()
    session.refresh(channel)
    assert channel.notified_status == Status.WRONG_CREDENTIALS

    assert daily_run(session, channel, Status.WRONG_CREDENTIALS, advice) is False, "same state the next day"
    assert len(smtp_peer.envelopes) == 1

    assert daily_run(session, channel, Status.PORTAL_CHANGED) is True
    assert len(smtp_peer.envelopes) == 2
    assert str(smtp_peer.messages()[1]["Subject"]) == (
        "[Glaneur] Papeterie Dupont: interface fournisseur modifiée / portal changed"
    )

    assert daily_run(session, channel, Status.OK) is False
    assert len(smtp_peer.envelopes) == 2
    session.refresh(channel)
    assert channel.notified_status is None

    assert daily_run(session, channel, Status.WRONG_CREDENTIALS) is True, "a later failure is told again"
    assert len(smtp_peer.envelopes) == 3

    notifications = list_notifications(session, world["owner"])
    assert [n.subject.split(": ")[1] for n in notifications] == [
        "identifiants refusés / wrong credentials",
        "interface fournisseur modifiée / portal changed",
        "identifiants refusés / wrong credentials",
    ]
    assert all(n.kind == "channel_status" and n.link == LINK for n in notifications)
    assert list_notifications(session, world["recipient"]) == []


def test_a_transient_failure_between_two_same_states_does_not_repeat_the_mail(session, world, smtp_peer):
    channel = world["channel"]
    assert daily_run(session, channel, Status.ACTION_NEEDED) is True
    assert daily_run(session, channel, Status.PORTAL_UNAVAILABLE) is False  # retried by Glaneur, needs nobody
    assert daily_run(session, channel, Status.ACTION_NEEDED) is False  # still the same unsolved problem
    assert len(smtp_peer.envelopes) == 1
    session.refresh(channel)
    assert channel.notified_status == Status.ACTION_NEEDED


def test_without_an_owner_the_recipient_is_told(session, world, smtp_peer):
    channel = world["channel"]
    channel.owner_user_id = None
    assert daily_run(session, channel, Status.ACCOUNT_LOCKED) is True
    [envelope] = smtp_peer.envelopes
    assert envelope.rcpt_tos == ["compta@acme.fr"]
    assert [n.kind for n in list_notifications(session, world["recipient"])] == ["channel_status"]


def test_statuses_that_need_nobody_send_nothing(session, world, smtp_peer):
    channel = world["channel"]
    for status in Status:
        if not describe(status).needs_person:
            assert daily_run(session, channel, status) is False
    assert smtp_peer.envelopes == []
    assert list_notifications(session, world["owner"]) == []


def test_a_refused_address_leaves_the_bell_and_is_not_retried_every_day(session, world, smtp_peer):
    smtp_peer.refuse.add("claire@acme.fr")
    channel = world["channel"]

    assert daily_run(session, channel, Status.CREDENTIALS_EXPIRED) is False  # no mail went out
    assert [n.subject for n in list_notifications(session, world["owner"])] == [
        "[Glaneur] Papeterie Dupont: identifiants expirés / credentials expired"
    ]
    assert daily_run(session, channel, Status.CREDENTIALS_EXPIRED) is False
    assert len(list_notifications(session, world["owner"])) == 1, "one bell entry per change of state"


def test_a_deleted_channel_is_not_told(session, world, smtp_peer):
    from glaneur.models import utcnow

    channel = world["channel"]
    channel.deleted_at = utcnow()
    assert daily_run(session, channel, Status.WRONG_CREDENTIALS) is False
    assert smtp_peer.envelopes == []


def test_notify_user_adds_to_the_bell_and_mails(session, world, smtp_peer):
    owner = world["owner"]
    delivery = notify_user(
        session, owner.id, kind="invitation", subject="Saisissez vos identifiants", body="Bonjour Claire,", link=LINK
    )
    session.commit()
    assert delivery.delivered and delivery.where.startswith("smtp://127.0.0.1:")
    [message] = smtp_peer.messages()
    assert message.get_content().splitlines() == ["Bonjour Claire,", "", LINK]
    [notification] = list_notifications(session, owner)
    assert (notification.kind, notification.subject, notification.body, notification.link) == (
        "invitation",
        "Saisissez vos identifiants",
        "Bonjour Claire,",
        LINK,
    )


def test_notify_user_without_smtp_writes_to_the_outbox(session, world, glaneur_home):
    delivery = notify_user(
        session, world["owner"], kind="connector_shipped", subject="Collecteur disponible", body="Oui"
    )
    assert delivery.delivered
    assert Path(delivery.where).parent == glaneur_home / "outbox"
    assert email.message_from_bytes(Path(delivery.where).read_bytes(), policy=policy.default)["To"] == "claire@acme.fr"


def test_a_malformed_address_in_a_profile_is_a_failed_delivery_not_a_crash(session, world, smtp_peer):
    owner = world["owner"]
    owner.email = "claire.acme.fr"
    delivery = notify_user(session, owner, kind="invitation", subject="Invitation", body="Bonjour")
    assert delivery.delivered is False
    assert "claire.acme.fr" in delivery.error and "profile" in delivery.error
    assert len(list_notifications(session, owner)) == 1
    assert smtp_peer.envelopes == []


def test_header_injection_through_notify_user_is_refused_before_anything_is_recorded(session, world, smtp_peer):
    with pytest.raises(UsageError, match="line break"):
        notify_user(session, world["owner"], kind="x", subject="Hello\r\nBcc: victim@example.com", body="Body")
    assert list_notifications(session, world["owner"]) == []
    assert smtp_peer.envelopes == []


def test_notifications_are_listed_newest_first_and_marked_read(session, world, smtp_peer):
    owner, recipient = world["owner"], world["recipient"]
    for subject in ("first", "second", "third"):
        notify_user(session, owner, kind="test", subject=subject, body=subject)
    other = notify_user(session, recipient, kind="test", subject="not yours", body="")
    session.commit()
    assert other.delivered

    listed = list_notifications(session, owner)
    assert [n.subject for n in listed] == ["third", "second", "first"]
    [not_yours] = list_notifications(session, recipient)

    assert mark_read(session, owner, [listed[1].id, not_yours.id]) == 1
    assert [n.subject for n in list_notifications(session, owner, unread_only=True)] == ["third", "first"]
    assert list_notifications(session, recipient, unread_only=True) == [not_yours], "other users' ids are ignored"
    assert mark_read(session, owner, []) == 0
    assert mark_read(session, owner.id) == 2
    assert mark_read(session, owner) == 0
    session.commit()
    assert list_notifications(session, owner, unread_only=True) == []
    assert all(
        n.read_at is not None for n in session.exec(select(Notification).where(Notification.user_id == owner.id))
    )


def test_unknown_user_or_channel_is_a_usage_error(session, world):
    with pytest.raises(UsageError, match="no user with id 999"):
        list_notifications(session, 999)
    with pytest.raises(UsageError, match="no channel with id 999"):
        notify_channel_status(session, 999)


def test_configured_run_link(glaneur_home, monkeypatch):
    assert configured_run_link(RUN_ID) is None  # no Prefect UI configured
    monkeypatch.setenv("GLANEUR_PREFECT_UI_URL", "http://127.0.0.1:4200/")
    reset_settings()
    assert configured_run_link(RUN_ID) == LINK
    assert configured_run_link(None) is None
    assert configured_run_link(RUN_ID, Settings(prefect_ui_url="https://prefect.example.com")) == (
        f"https://prefect.example.com/v2/runs/flow-run/{RUN_ID}"
    )
    assert get_settings().prefect_ui_url == "http://127.0.0.1:4200/"
