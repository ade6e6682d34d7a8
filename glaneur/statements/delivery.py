"""Delivering a statement to a partner connector: an HTTP POST signed with HMAC, acknowledged once.

The signature (scheme ``v2``, described for partners in the README, "Partner delivery") covers
everything that says where a statement belongs, not only its body: the header
``X-Glaneur-Signature: t=<unix seconds>,v2=<hex HMAC-SHA256(secret, signed text)>`` where the signed
text is, one per line (``\n``): ``glaneur-v2``, ``t``, the ``Idempotency-Key``, ``X-Glaneur-Firm``,
``X-Glaneur-IBAN`` and ``X-Glaneur-Statement-Sha256`` header values, and the hex SHA-256 of the body.
The receiver refuses a timestamp outside its tolerance. A delivery captured on the wire therefore
cannot be replayed as another statement: a new ``Idempotency-Key`` or another IBAN breaks the
signature. (Scheme ``v1`` signed the body alone; it is neither sent nor accepted any more.)
Several ``v2=`` values may be sent while a secret is being rotated; one match suffices.

The ``Idempotency-Key`` header makes retries safe: a partner that already has the key answers
200 with the receipt it gave the first time (202), and keeps the statement once. So the caller
retries :class:`PartnerUnavailable` (nothing was acknowledged) with the same key until a receipt
comes back, and asks a person to act on :class:`PartnerRefused`.

Domain code: no Prefect, no database. No message of this module contains the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

SIGNATURE_HEADER = "X-Glaneur-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SIGNATURE_SCHEME = "v2"
SIGNED_TEXT_TAG = "glaneur-v2"  # first line of the signed text: a signature of another scheme never matches
FIRM_HEADER = "X-Glaneur-Firm"
IBAN_HEADER = "X-Glaneur-IBAN"
STATEMENT_SHA256_HEADER = "X-Glaneur-Statement-Sha256"
# What routes a statement, signed in this order after the timestamp; an absent header is signed as "".
SIGNED_HEADERS = (IDEMPOTENCY_HEADER, FIRM_HEADER, IBAN_HEADER, STATEMENT_SHA256_HEADER)
REASON_MAX_CHARS = 200
_MAX_HEADER_CHARS = 2048
_MAX_RESPONSE_BYTES = 64 * 1024  # a receipt or a reason; a partner cannot make us read more
_IDEMPOTENCY_KEY = re.compile(r"[!-~]{1,255}")  # visible ASCII, no spaces: safe in a header
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


class SignatureError(ValueError):
    """The signature header is missing, malformed, stale, from the future, or does not match the body."""


class DeliveryError(Exception):
    """A statement was not acknowledged by the partner. ``status`` is the HTTP status, if one came back."""

    def __init__(self, message: str, *, status: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class PartnerUnavailable(DeliveryError):
    """Transient (unreachable, timeout, 408, 429, 5xx, no receipt): retry later with the same idempotency key.

    ``retry_after`` is the delay in seconds the partner asked for (``Retry-After``), if any.
    """

    def __init__(
        self, message: str, *, status: int | None = None, reason: str = "", retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status, reason=reason)
        self.retry_after = retry_after


class PartnerRefused(DeliveryError):
    """Permanent (other 4xx, a redirect, an unusable URL, no secret): retrying changes nothing, a person must act."""


@dataclass(frozen=True)
class Acknowledgement:
    receipt: str  # the partner's receipt id
    duplicate: bool  # the partner already had this idempotency key (200 instead of 202)


# -- signing ------------------------------------------------------------------------------------


def sign(secret: bytes | str, body: bytes, *, headers: Mapping[str, str], timestamp: int | None = None) -> str:
    """The ``X-Glaneur-Signature`` value for ``body`` and its routing ``headers``, signed now or at ``timestamp``."""
    moment = int(time.time()) if timestamp is None else timestamp
    if moment < 0:
        raise ValueError("A signature timestamp is a positive number of unix seconds.")
    return f"t={moment},{SIGNATURE_SCHEME}={_digest(_key(secret), moment, headers, body)}"


def verify(
    secret: bytes | str,
    header: str,
    body: bytes,
    *,
    headers: Mapping[str, str],
    tolerance_seconds: int = 300,
    now: int | None = None,
) -> None:
    """Accept ``body`` and its routing ``headers`` (as received) signed with ``secret`` within
    ``tolerance_seconds`` of ``now``, or raise :class:`SignatureError`."""
    key = _key(secret, error=SignatureError)
    timestamp, signatures = _parse(header)
    expected = _digest(key, timestamp, headers, body)
    # Every candidate is compared, in constant time each, so that timing tells nothing about which one failed.
    matched = False
    for signature in signatures:
        matched |= hmac.compare_digest(expected, signature)
    if not matched:
        raise SignatureError(
            "The signature does not match the body and routing headers (wrong secret, or an altered body, "
            f"{', '.join(SIGNED_HEADERS)})."
        )
    current = int(time.time()) if now is None else now
    if timestamp < current - tolerance_seconds:
        raise SignatureError(f"The signature is too old ({current - timestamp} s; at most {tolerance_seconds} s).")
    if timestamp > current + tolerance_seconds:
        raise SignatureError(f"The signature is dated {timestamp - current} s in the future.")


def signed_text(timestamp: int, headers: Mapping[str, str], body: bytes) -> bytes:
    """What is signed: the scheme tag, the timestamp, each of :data:`SIGNED_HEADERS`, the body's SHA-256; one per line.

    Header values are taken as HTTP delivers them (surrounding spaces removed); they cannot hold a line
    break, so no two deliveries share a signed text.
    """
    by_name = {name.lower(): value for name, value in headers.items()}
    values = [str(by_name.get(name.lower(), "")).strip() for name in SIGNED_HEADERS]
    lines = [SIGNED_TEXT_TAG, str(timestamp), *values, hashlib.sha256(body).hexdigest()]
    return "\n".join(lines).encode("utf-8")


def _key(secret: bytes | str, *, error: type[Exception] = ValueError) -> bytes:
    key = secret.encode() if isinstance(secret, str) else bytes(secret)
    if not key:
        raise error("The signing secret is empty.")
    return key


def _digest(key: bytes, timestamp: int, headers: Mapping[str, str], body: bytes) -> str:
    return hmac.new(key, signed_text(timestamp, headers, body), hashlib.sha256).hexdigest()


def _parse(header: str) -> tuple[int, list[str]]:
    if not isinstance(header, str) or not header.strip():
        raise SignatureError(f"The {SIGNATURE_HEADER} header is missing.")
    if len(header) > _MAX_HEADER_CHARS:
        raise SignatureError(f"Malformed {SIGNATURE_HEADER} header: longer than {_MAX_HEADER_CHARS} characters.")
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        name, separator, value = item.strip().partition("=")
        if not separator:
            raise SignatureError(f"Malformed {SIGNATURE_HEADER} header: expected t=<seconds>,{SIGNATURE_SCHEME}=<hex>.")
        if name == "t":
            if timestamp is not None or not value.isascii() or not value.isdigit() or len(value) > 12:
                raise SignatureError(f"Malformed {SIGNATURE_HEADER} header: t must be one unix time in seconds.")
            timestamp = int(value)
        elif name == SIGNATURE_SCHEME:
            if not _HEX_DIGEST.fullmatch(value):
                raise SignatureError(
                    f"Malformed {SIGNATURE_HEADER} header: {SIGNATURE_SCHEME} must be 64 lowercase hex digits."
                )
            signatures.append(value)
        # Other schemes are ignored, as Stripe does, so that a new one can be added without breaking receivers;
        # v1 (the body alone) among them: a header with only v1 is refused below.
    if timestamp is None or not signatures:
        raise SignatureError(f"Malformed {SIGNATURE_HEADER} header: it needs both t= and {SIGNATURE_SCHEME}=.")
    return timestamp, signatures


# -- delivering ---------------------------------------------------------------------------------


def deliver(
    url: str,
    secret: bytes | str,
    body: bytes,
    *,
    idempotency_key: str,
    content_type: str,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
    client: httpx.Client | None = None,
) -> Acknowledgement:
    """POST ``body`` to the partner at ``url``, signed; the partner's receipt, or :class:`DeliveryError`.

    202 or 200 with ``{"receipt": "..."}`` acknowledges (200: the partner already had the key).
    Redirects are not followed: a signed statement goes only where it was configured to go.
    """
    if not _IDEMPOTENCY_KEY.fullmatch(idempotency_key):
        raise ValueError("The idempotency key is 1 to 255 visible ASCII characters.")
    where = _display(url)
    if not secret:  # configuration, not a bug of the caller: a person sets the partner's secret
        raise PartnerRefused(f"No signing secret is set for the partner at {where}; nothing was sent.")
    try:
        target = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise PartnerRefused(f"The partner URL {where!r} is not a valid URL; fix the connector's URL.") from exc
    if target.scheme not in ("http", "https") or not target.host:
        raise PartnerRefused(f"The partner URL {where!r} is not an http(s) URL; fix the connector's URL.")
    request_headers = dict(headers or {})
    for name, value in request_headers.items():
        if not (name.isascii() and value.isascii()) or any(c in name + value for c in "\r\n\0"):
            raise ValueError(f"Header {name!r} must be ASCII on one line (encode other text, e.g. percent-encoding).")
    controlled = {"content-type", IDEMPOTENCY_HEADER.lower(), SIGNATURE_HEADER.lower()}
    request_headers = {name: value for name, value in request_headers.items() if name.lower() not in controlled}
    if len({name.lower() for name in request_headers}) != len(request_headers):
        raise ValueError("A header is given twice (names are case-insensitive).")
    request_headers.update({"Content-Type": content_type, IDEMPOTENCY_HEADER: idempotency_key})
    request_headers[SIGNATURE_HEADER] = sign(secret, body, headers=request_headers)
    owned = client is None
    http = httpx.Client() if owned else client
    try:
        with http.stream(
            "POST", target, content=body, headers=request_headers, timeout=timeout, follow_redirects=False
        ) as response:
            payload = _read_capped(response)
    except httpx.TimeoutException as exc:
        raise PartnerUnavailable(f"The partner at {where} did not answer within {timeout:g} s.") from exc
    except httpx.TransportError as exc:
        detail = _redact(str(exc) or type(exc).__name__, secret)
        raise PartnerUnavailable(f"The partner at {where} could not be reached: {detail}.") from exc
    finally:
        if owned:
            http.close()
    return _acknowledgement(response, payload, where, secret)


def _acknowledgement(response: httpx.Response, payload: bytes, where: str, secret: bytes | str) -> Acknowledgement:
    status = response.status_code
    reason = _redact(_short_reason(payload), secret)
    said = f": {reason}" if reason else ""
    if 200 <= status < 300:
        receipt = _receipt(payload) if status in (200, 202) else None
        if receipt is None:
            raise PartnerUnavailable(
                f"The partner at {where} answered HTTP {status} without a receipt; not acknowledged, to retry.",
                status=status,
                reason=reason,
            )
        return Acknowledgement(receipt=receipt, duplicate=status == 200)
    if status in (408, 429) or status >= 500:
        raise PartnerUnavailable(
            f"The partner at {where} is unavailable (HTTP {status}){said}.",
            status=status,
            reason=reason,
            retry_after=_retry_after(response.headers.get("Retry-After")),
        )
    if 300 <= status < 400:
        location = _display(response.headers.get("Location", ""))
        raise PartnerRefused(
            f"The partner at {where} redirects (HTTP {status}) to {location or 'elsewhere'}; fix the connector's URL.",
            status=status,
            reason=reason,
        )
    raise PartnerRefused(
        f"The partner at {where} refused the statement (HTTP {status}){said}.", status=status, reason=reason
    )


def _read_capped(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= _MAX_RESPONSE_BYTES:
            break
    return b"".join(chunks)[:_MAX_RESPONSE_BYTES]


def _receipt(payload: bytes) -> str | None:
    try:
        document = json.loads(payload)
    except ValueError:
        return None
    receipt = document.get("receipt") if isinstance(document, dict) else None
    return receipt if isinstance(receipt, str) and receipt.strip() else None


def _short_reason(payload: bytes) -> str:
    """The partner's reason in one line: a JSON ``detail``/``reason``/``error``/``message``, or the text itself."""
    text = payload.decode("utf-8", "replace")
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if isinstance(document, dict):
        for name in ("reason", "detail", "error", "message"):
            if document.get(name):
                value = document[name]
                text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
                break
    text = " ".join(text.split())
    return text if len(text) <= REASON_MAX_CHARS else text[: REASON_MAX_CHARS - 1] + "…"


def _retry_after(value: str | None) -> float | None:
    """Only the delay-seconds form; an HTTP date is rare from an API and gets the caller's own backoff."""
    if value and value.strip().isdigit():
        return float(value.strip())
    return None


def _redact(text: str, secret: bytes | str) -> str:
    plain = secret.decode("utf-8", "replace") if isinstance(secret, bytes) else secret
    return text.replace(plain, "[secret]") if plain else text


def _display(url: str) -> str:
    """The URL without user info, query or fragment: what a message may show."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "<invalid URL>"
    if not parsed.host:
        return str(url)[:100] if "@" not in str(url) else "<invalid URL>"
    port = f":{parsed.port}" if parsed.port else ""
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    return f"{parsed.scheme}://{host}{port}{parsed.path}"
