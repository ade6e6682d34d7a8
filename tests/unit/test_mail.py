"""glaneur.mail against a real SMTP peer (aiosmtpd on 127.0.0.1) and the outbox; no mock of smtplib."""

from __future__ import annotations

import email
import re
import socket
import ssl
from email import policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from glaneur.errors import ConfigurationError, UsageError
from glaneur.mail import Delivery, Mail, parse_address, send
from glaneur.settings import Settings
from tests.local_http import self_signed_certificate, tls_server_context

LINK = "http://127.0.0.1:4200/runs/flow-run/8d4c2b1e-0000-4000-8000-000000000001"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Collector:
    """An SMTP handler that keeps what it receives and refuses the recipients in ``refuse``."""

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


class Peer:
    def __init__(self, controller: Controller, collector: Collector) -> None:
        self.controller, self.collector = controller, collector
        self.host, self.port = controller.hostname, controller.port


def start_peer(**smtp_parameters) -> Peer:
    collector = Collector()
    controller = Controller(
        collector, hostname="127.0.0.1", port=free_port(), server_hostname="mail.test", **smtp_parameters
    )
    controller.start()
    return Peer(controller, collector)


@pytest.fixture
def smtp_peer():
    peer = start_peer()
    yield peer
    peer.controller.stop()


def smtp_settings(tmp_path: Path, peer: Peer, **extra) -> Settings:
    return Settings(home=tmp_path / "var", smtp_host=peer.host, smtp_port=peer.port, **extra)


def test_a_mail_reaches_the_smtp_peer_with_its_headers_body_and_link(tmp_path, smtp_peer):
    settings = smtp_settings(tmp_path, smtp_peer, mail_from="Glaneur <glaneur@cabinet-exemple.fr>")
    mail = Mail(
        to="Élodie Garçon <elodie@papeterie-dupont.fr>",
        subject="[Glaneur] Papeterie Dupont: identifiants refusés / wrong credentials",
        body="Le portail a refusé l'identifiant.\nMettez à jour les identifiants avec « Modifier ».",
        link=LINK,
    )

    delivery = send(mail, settings)

    assert delivery == Delivery(True, f"smtp://127.0.0.1:{smtp_peer.port}")
    [envelope] = smtp_peer.collector.envelopes
    assert envelope.mail_from == "glaneur@cabinet-exemple.fr"
    assert envelope.rcpt_tos == ["elodie@papeterie-dupont.fr"]
    [message] = smtp_peer.collector.messages()
    assert message["From"].addresses[0].addr_spec == "glaneur@cabinet-exemple.fr"
    assert message["To"].addresses[0].addr_spec == "elodie@papeterie-dupont.fr"
    assert message["To"].addresses[0].display_name == "Élodie Garçon"
    assert str(message["Subject"]) == "[Glaneur] Papeterie Dupont: identifiants refusés / wrong credentials"
    assert message["Date"].datetime.tzinfo is not None
    assert re.fullmatch(r"<[^@<>]+@cabinet-exemple\.fr>", message["Message-ID"])
    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"
    body = message.get_content()
    assert "Mettez à jour les identifiants avec « Modifier »." in body
    assert LINK in body.splitlines(), "the link stands on its own line"
    # nothing but ASCII on the wire: headers are encoded words, the body quoted-printable
    (envelope.original_content or envelope.content).decode("ascii")


def test_a_refused_recipient_is_a_failed_delivery_that_says_what_to_fix(tmp_path, smtp_peer):
    smtp_peer.collector.refuse.add("nobody@papeterie-dupont.fr")

    delivery = send(Mail("nobody@papeterie-dupont.fr", "Invitation", "Bonjour"), smtp_settings(tmp_path, smtp_peer))

    assert delivery.delivered is False
    assert delivery.error.startswith(
        "the address nobody@papeterie-dupont.fr was refused by the mail server: "
        "check the e-mail address in the user's profile"
    )
    assert "550" in delivery.error
    assert smtp_peer.collector.envelopes == []


def test_an_unreachable_server_is_a_failed_delivery_naming_host_and_port(tmp_path):
    port = free_port()  # nobody listens there
    settings = Settings(
        home=tmp_path / "var", smtp_host="127.0.0.1", smtp_port=port, smtp_user="glaneur", smtp_password="hunter2-pw"
    )

    delivery = send(Mail("elodie@papeterie-dupont.fr", "Invitation", "Bonjour"), settings)

    assert delivery.delivered is False
    assert f"127.0.0.1:{port}" in delivery.error
    assert "GLANEUR_SMTP_HOST" in delivery.error
    assert "hunter2-pw" not in delivery.error


def test_without_smtp_host_the_mail_is_written_to_the_outbox_as_a_parseable_eml(tmp_path):
    settings = Settings(home=tmp_path / "var", smtp_host=None)

    delivery = send(Mail("elodie@papeterie-dupont.fr", "Accès refusé", "Vérifiez le mot de passe.", LINK), settings)

    assert delivery.delivered and delivery.error == ""
    path = Path(delivery.where)
    assert path.parent == settings.outbox_path
    assert re.fullmatch(r"\d{8}T\d{12}Z-[0-9a-f]{12}\.eml", path.name)
    assert [p.name for p in settings.outbox_path.iterdir()] == [path.name], "no temporary file left behind"
    message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert message["From"].addresses[0].addr_spec == "glaneur@localhost"
    assert message["To"].addresses[0].addr_spec == "elodie@papeterie-dupont.fr"
    assert str(message["Subject"]) == "Accès refusé"
    assert message["Message-ID"] and message["Date"]
    assert message.get_content().splitlines() == ["Vérifiez le mot de passe.", "", LINK]


def test_two_mails_make_two_outbox_files(tmp_path):
    settings = Settings(home=tmp_path / "var")
    first = send(Mail("a@example.com", "Same", "Same"), settings)
    second = send(Mail("a@example.com", "Same", "Same"), settings)
    assert first.where != second.where
    assert len(list(settings.outbox_path.glob("*.eml"))) == 2


def test_an_unwritable_outbox_is_a_failed_delivery(tmp_path):
    (tmp_path / "var").write_text("a file where the home folder should be")
    delivery = send(Mail("a@example.com", "Hello", "Body"), Settings(home=tmp_path / "var"))
    assert delivery.delivered is False
    assert "outbox" in delivery.error


@pytest.mark.parametrize(
    "address",
    [
        "",
        "   ",
        "elodie",
        "elodie@",
        "@papeterie-dupont.fr",
        "elodie@localhost",
        "elodie@papeterie dupont.fr",
        "elodie@@papeterie-dupont.fr",
        "a@example.com, b@example.com",
        "a@example.com b@example.com",
        "élodie@papeterie-dupont.fr",
    ],
)
def test_an_address_that_is_not_an_address_is_a_usage_error(tmp_path, address):
    settings = Settings(home=tmp_path / "var")
    with pytest.raises(UsageError, match="invalid e-mail address"):
        send(Mail(address, "Subject", "Body"), settings)
    assert not settings.outbox_path.exists()


@pytest.mark.parametrize(
    "mail",
    [
        Mail("a@example.com", "Hello\r\nBcc: victim@example.com", "Body"),
        Mail("a@example.com", "Hello\nX-Injected: yes", "Body"),
        Mail("a@example.com\r\nBcc: victim@example.com", "Hello", "Body"),
        Mail("Name\n <a@example.com>", "Hello", "Body"),
        Mail("a@example.com", "Hello", "Body", link="http://x.test/\r\nBcc: victim@example.com"),
    ],
)
def test_line_breaks_in_headers_are_refused(tmp_path, smtp_peer, mail):
    with pytest.raises(UsageError, match="line break"):
        send(mail, smtp_settings(tmp_path, smtp_peer))
    assert smtp_peer.collector.envelopes == []


def test_parse_address_keeps_the_display_name():
    assert parse_address("Élodie <elodie@papeterie-dupont.fr>") == ("Élodie", "elodie@papeterie-dupont.fr")
    assert parse_address(" elodie@papeterie-dupont.fr ") == ("", "elodie@papeterie-dupont.fr")


def test_a_sender_that_is_not_an_address_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigurationError, match="GLANEUR_MAIL_FROM"):
        send(Mail("a@example.com", "Hello", "Body"), Settings(home=tmp_path / "var", mail_from="glaneur"))


# --- TLS and login, against the same kind of peer with a self-signed certificate ---------------


@pytest.fixture
def tls(tmp_path, monkeypatch) -> ssl.SSLContext:
    """A server context for 127.0.0.1 whose certificate the client trusts (through SSL_CERT_FILE)."""
    cert_file, key_file = self_signed_certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    return tls_server_context(cert_file, key_file)


def authenticator(server, session, envelope, mechanism, auth_data):
    good = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"glaneur", b"s3cret-pw")
    if good:
        return AuthResult(success=True)
    password = auth_data.password.decode() if isinstance(auth_data, LoginPassword) else ""
    # a careless server that echoes what it got: the error must still not show the password
    return AuthResult(success=False, handled=False, message=f"535 5.7.8 bad credentials for {password}")


@pytest.fixture
def starttls_peer(tls):
    peer = start_peer(tls_context=tls, require_starttls=True, authenticator=authenticator, auth_require_tls=True)
    yield peer
    peer.controller.stop()


def test_starttls_and_login(tmp_path, starttls_peer):
    settings = smtp_settings(
        tmp_path, starttls_peer, smtp_starttls=True, smtp_user="glaneur", smtp_password="s3cret-pw"
    )
    delivery = send(Mail("elodie@papeterie-dupont.fr", "Invitation", "Bonjour"), settings)
    assert delivery.delivered, delivery.error
    assert [e.rcpt_tos for e in starttls_peer.collector.envelopes] == [["elodie@papeterie-dupont.fr"]]


def test_a_refused_login_names_the_settings_and_never_the_password(tmp_path, starttls_peer):
    settings = smtp_settings(
        tmp_path, starttls_peer, smtp_starttls=True, smtp_user="glaneur", smtp_password="wrong-pw-123"
    )
    delivery = send(Mail("elodie@papeterie-dupont.fr", "Invitation", "Bonjour"), settings)
    assert delivery.delivered is False
    assert f"127.0.0.1:{starttls_peer.port}" in delivery.error
    assert "GLANEUR_SMTP_PASSWORD" in delivery.error
    assert "wrong-pw-123" not in delivery.error
    assert starttls_peer.collector.envelopes == []


def test_a_server_requiring_starttls_without_it_is_a_failed_delivery(tmp_path, starttls_peer):
    delivery = send(Mail("elodie@papeterie-dupont.fr", "Invitation", "Bonjour"), smtp_settings(tmp_path, starttls_peer))
    assert delivery.delivered is False
    assert f"127.0.0.1:{starttls_peer.port}" in delivery.error


def test_implicit_tls(tmp_path, tls):
    peer = start_peer(ssl_context=tls)
    try:
        delivery = send(
            Mail("elodie@papeterie-dupont.fr", "Facture", "Reçue"), smtp_settings(tmp_path, peer, smtp_ssl=True)
        )
        assert delivery.delivered, delivery.error
        [message] = peer.collector.messages()
        assert message.get_content().strip() == "Reçue"
    finally:
        peer.controller.stop()
