"""Signed links and webhook signatures of ``glaneur serve`` (:mod:`web.callbacks`).

The bank holder's links and the ``state`` POWENS hands back are signed with a key derived from the
POWENS client secret; Powens' webhooks with the webhook secret; the supplier account holder's
credentials link (and evidence links) with keys derived from the vault key, which every deployment
has. Pure functions: the flows sign links with them, the service checks them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime
from urllib.parse import urlencode

from glaneur import bank

LINK_TTL_SECONDS = 7 * 24 * 3600


def vault_derived_keys(settings, purpose: bytes) -> list[bytes]:
    """Keys derived from the vault key(s) for one ``purpose``: the first signs, any verifies (a key rotation
    keeps the links sent before it open). For links that must work without POWENS (evidence, invitations)."""
    from glaneur.vault import load_key

    return [hmac.new(key.strip().encode(), purpose, hashlib.sha256).digest()
            for key in load_key(settings).split(",") if key.strip()]


def credentials_link(settings, invitation_id: int, expires_at: datetime) -> str:
    """The account holder's link to the credentials form of ``glaneur serve`` (``GLANEUR_EVIDENCE_URL``), valid
    until the invitation expires: the holder needs no access to the Prefect UI."""
    expires = _timestamp(expires_at)
    signature = _credentials_signature(vault_derived_keys(settings, CREDENTIALS_PURPOSE)[0], invitation_id, expires)
    return f"{settings.evidence_url.rstrip('/')}/credentials/{invitation_id}?" + urlencode(
        {"exp": expires, "sig": signature})


def check_credentials_link(settings, invitation_id: int, expires: int, signature: str) -> bool:
    """Whether the link was signed for this invitation (its expiry is the invitation's own, checked by the caller)."""
    return any(hmac.compare_digest(signature, _credentials_signature(key, invitation_id, expires))
               for key in vault_derived_keys(settings, CREDENTIALS_PURPOSE))


CREDENTIALS_PURPOSE = b"glaneur credentials links"


def _credentials_signature(key: bytes, invitation_id: int, expires: int) -> str:
    return hmac.new(key, f"credentials:{invitation_id}:{expires}".encode(), hashlib.sha256).hexdigest()


def _timestamp(moment: datetime) -> int:
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())


def _key(settings: bank.PowensSettings) -> bytes:
    """The key signing links and ``state``: derived from the client secret, never sent anywhere."""
    _, _, secret = settings.require()
    return hmac.new(secret.encode(), b"glaneur links", hashlib.sha256).digest()


def sign(settings: bank.PowensSettings, text: str) -> str:
    return hmac.new(_key(settings), text.encode(), hashlib.sha256).hexdigest()


def reconnect_link(settings: bank.PowensSettings, channel: str, *, now: float | None = None) -> str:
    expires = int((now or time.time()) + LINK_TTL_SECONDS)
    return f"{settings.public_url.rstrip('/')}/bank/reconnect/{channel}?" + urlencode(
        {"exp": expires, "sig": sign(settings, f"reconnect:{channel}:{expires}")})


def invitation_link(settings: bank.PowensSettings, invitation_id: int, expires_at: datetime) -> str:
    """Option 2: the holder's link, valid until the invitation expires (the same link on every resend)."""
    expires = _timestamp(expires_at)
    return f"{settings.public_url.rstrip('/')}/bank/invitation/{invitation_id}?" + urlencode(
        {"exp": expires, "sig": sign(settings, f"invitation:{invitation_id}:{expires}")})


def webhook_signature(secret: str, method: str, path: str, date: str, body: bytes) -> str:
    message = f"{method.upper()}.{path}.{date}.".encode() + body
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()
