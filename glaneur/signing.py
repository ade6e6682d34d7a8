"""Signed links and webhook signatures of the bank callback service (:mod:`web.callbacks`).

The link sent to an account holder and the ``state`` POWENS hands back are signed with a key derived
from the POWENS client secret; Powens' webhooks are signed with the webhook secret. Pure functions:
the flows sign links with them, the callback service checks them.
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
    moment = expires_at if expires_at.tzinfo else expires_at.replace(tzinfo=UTC)
    expires = int(moment.timestamp())
    return f"{settings.public_url.rstrip('/')}/bank/invitation/{invitation_id}?" + urlencode(
        {"exp": expires, "sig": sign(settings, f"invitation:{invitation_id}:{expires}")})


def webhook_signature(secret: str, method: str, path: str, date: str, body: bytes) -> str:
    message = f"{method.upper()}.{path}.{date}.".encode() + body
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()
