"""One way to send a mail: SMTP when ``GLANEUR_SMTP_HOST`` is set, else an ``.eml`` file in the outbox.

Delivery problems (server unreachable, address refused, login refused) never raise: they come back
as a :class:`Delivery` whose ``error`` says what to fix, so that a failed mail never breaks the
collection that wanted to send it. Only input that is not a mail at all (an address that is not an
address, a header with a line break) raises :class:`~glaneur.errors.UsageError`.

Callers pass plain texts only; no secret ever goes into a mail.
"""

from __future__ import annotations

import hashlib
import os
import re
import smtplib
import ssl
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formataddr, formatdate, getaddresses, make_msgid, parseaddr
from pathlib import Path

from glaneur.errors import ConfigurationError, UsageError
from glaneur.settings import Settings, get_settings

SMTP_TIMEOUT_SECONDS = 30.0

# local@domain.tld, ASCII: what a mail server accepts without SMTPUTF8.
ADDRESS_RE = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)
_LINE_BREAKS = re.compile(r"[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")


@dataclass
class Mail:
    to: str  # "name@example.com" or "Name <name@example.com>"
    subject: str
    body: str  # plain text
    link: str | None = None  # put on its own line after the body


@dataclass
class Delivery:
    delivered: bool
    where: str  # the .eml path, or smtp://host:port
    error: str = ""  # what went wrong and what to fix; never a secret


def parse_address(text: str) -> tuple[str, str]:
    """``(display name, address)`` of one recipient; raises :class:`UsageError` unless it is one address."""
    if not isinstance(text, str) or _LINE_BREAKS.search(text):
        raise UsageError(f"invalid e-mail address {text!r}: it contains a line break.")
    candidates = [pair for pair in getaddresses([text]) if any(pair)]
    name, address = parseaddr(text)
    if len(candidates) != 1 or candidates[0] != (name, address):
        raise UsageError(f"invalid e-mail address {text.strip()!r}: give exactly one address, like name@example.com.")
    # parseaddr repairs what it cannot read ("a@b c.fr" becomes "a@b.c.fr"): the address must be there as typed
    literal = text.strip() == address or text.strip().endswith(f"<{address}>")
    if not literal or len(address) > 254 or not ADDRESS_RE.fullmatch(address):
        raise UsageError(f"invalid e-mail address {text.strip()!r}: expected something like name@example.com.")
    return name, address


def check_one_line(value: str, what: str) -> str:
    """``value`` unchanged; raises :class:`UsageError` if it holds a line break (header injection)."""
    if _LINE_BREAKS.search(value or ""):
        raise UsageError(f"the mail {what} contains a line break: give it on one line.")
    return value


def send(mail: Mail, settings: Settings | None = None) -> Delivery:
    """Send ``mail`` by SMTP, or write it to the outbox when no SMTP server is configured."""
    settings = settings or get_settings()
    message, sender, recipient = _build(mail, settings)
    if settings.smtp_host:
        return _send_smtp(message, sender, recipient, settings)
    return _write_outbox(message, settings.outbox_path)


def _build(mail: Mail, settings: Settings) -> tuple[EmailMessage, str, str]:
    name, recipient = parse_address(mail.to)
    sender_name, sender = _sender(settings.mail_from)
    check_one_line(mail.subject, "subject")
    check_one_line(mail.link or "", "link")
    if not mail.subject.strip():
        raise UsageError("the mail subject is empty: give a subject.")

    message = EmailMessage()
    message["From"] = formataddr((sender_name, sender))
    message["To"] = formataddr((name, recipient))
    message["Subject"] = mail.subject.strip()
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: mailboxes do not answer with auto-replies
    text = mail.body.rstrip("\n")
    if mail.link:
        text = f"{text}\n\n{mail.link.strip()}" if text else mail.link.strip()
    # quoted-printable: accents survive servers that do not announce 8BITMIME
    message.set_content(text + "\n", charset="utf-8", cte="quoted-printable")
    return message, sender, recipient


def _sender(mail_from: str) -> tuple[str, str]:
    """The configured sender; ``glaneur@localhost`` is fine here, it is ours, not a user's."""
    name, address = parseaddr(mail_from or "")
    local, at, domain = address.rpartition("@")
    if _LINE_BREAKS.search(mail_from or "") or not (local and at and domain) or any(c.isspace() for c in address):
        raise ConfigurationError(
            f"GLANEUR_MAIL_FROM {mail_from!r} is not an e-mail address: set it to the address mails are sent from."
        )
    return name, address


def _send_smtp(message: EmailMessage, sender: str, recipient: str, settings: Settings) -> Delivery:
    host, port = settings.smtp_host, settings.smtp_port
    where = f"smtp://{host}:{port}"
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""

    def failed(error: str) -> Delivery:
        if password:
            error = error.replace(password, "***")  # a server echoing what it got must not leak it
        return Delivery(False, where, error)

    try:
        context = ssl.create_default_context()
        if settings.smtp_ssl:
            client: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=SMTP_TIMEOUT_SECONDS, context=context)
        else:
            client = smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT_SECONDS)
        with client:
            if settings.smtp_starttls and not settings.smtp_ssl:
                client.starttls(context=context)
            if settings.smtp_user:
                client.login(settings.smtp_user, password)
            client.send_message(message, from_addr=sender, to_addrs=[recipient])
    except smtplib.SMTPRecipientsRefused as refused:
        code, reply = refused.recipients.get(recipient, (0, b""))
        return failed(
            f"the address {recipient} was refused by the mail server: check the e-mail address in the user's "
            f"profile (server reply: {code} {_text(reply)})"
        )
    except smtplib.SMTPAuthenticationError as error:
        return failed(
            f"the mail server {host}:{port} refused the login of '{settings.smtp_user}' "
            f"({error.smtp_code} {_text(error.smtp_error)}): check GLANEUR_SMTP_USER and GLANEUR_SMTP_PASSWORD"
        )
    except smtplib.SMTPSenderRefused as error:
        return failed(
            f"the mail server {host}:{port} refused the sender {sender} ({error.smtp_code} "
            f"{_text(error.smtp_error)}): check GLANEUR_MAIL_FROM"
        )
    except smtplib.SMTPNotSupportedError as error:
        return failed(
            f"the mail server {host}:{port} does not support what was asked ({error}): check GLANEUR_SMTP_STARTTLS, "
            "GLANEUR_SMTP_SSL and GLANEUR_SMTP_USER"
        )
    except smtplib.SMTPResponseException as error:
        return failed(
            f"the mail server {host}:{port} rejected the mail ({error.smtp_code} {_text(error.smtp_error)}); "
            "try again later or ask the mail server's administrator"
        )
    except ssl.SSLError as error:
        return failed(
            f"TLS with the mail server {host}:{port} failed ({error.reason or error}): check GLANEUR_SMTP_SSL, "
            "GLANEUR_SMTP_STARTTLS and the server's certificate"
        )
    except (OSError, smtplib.SMTPException) as error:
        return failed(
            f"could not reach the mail server {host}:{port} ({error.__class__.__name__}: {error}): check "
            "GLANEUR_SMTP_HOST and GLANEUR_SMTP_PORT, and that the server is running"
        )
    return Delivery(True, where)


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def _write_outbox(message: EmailMessage, outbox: Path) -> Delivery:
    """Write the message as ``{UTC timestamp}-{sha prefix}.eml``, whole or not at all."""
    content = message.as_bytes()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = outbox / f"{stamp}-{hashlib.sha256(content).hexdigest()[:12]}.eml"
    try:
        outbox.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=outbox, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temp, 0o644)
            os.replace(temp, path)  # readers of the outbox never see half a message
        except BaseException:
            try:
                os.unlink(temp)
            except OSError:
                pass
            raise
    except OSError as error:
        return Delivery(
            False,
            str(path),
            f"could not write the mail to the outbox {outbox} ({error.strerror or error}): check that GLANEUR_HOME "
            "is writable, or set GLANEUR_SMTP_HOST",
        )
    return Delivery(True, str(path))
