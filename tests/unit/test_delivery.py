"""Signing and delivering statements to a partner: HMAC round trips, and the real sandbox partner over HTTP."""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from glaneur.statements.delivery import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    Acknowledgement,
    DeliveryError,
    PartnerRefused,
    PartnerUnavailable,
    SignatureError,
    deliver,
    sign,
    verify,
)
from sandbox.partner import SANDBOX_PARTNER_SECRETS, create_partner_app
from sandbox.server import SandboxHandle, serve_app

SECRET = "s3cr3t-shared-with-the-partner-0123456789"
BODY = b'<?xml version="1.0"?><Document>statement</Document>'
T = 1_795_000_000
IBAN = "FR7630004012340001029384732"
HEADERS = {
    IDEMPOTENCY_HEADER: "stmt-1",
    "X-Glaneur-Firm": "cabinet-demo",
    "X-Glaneur-IBAN": IBAN,
    "X-Glaneur-Statement-Sha256": hashlib.sha256(BODY).hexdigest(),
}


# -- sign and verify ----------------------------------------------------------------------------


def test_sign_then_verify_round_trip() -> None:
    header = sign(SECRET, BODY, headers=HEADERS, timestamp=T)

    assert header.startswith(f"t={T},v2=") and len(header.split("v2=")[1]) == 64
    verify(SECRET, header, BODY, headers=HEADERS, now=T)
    verify(SECRET.encode(), header, BODY, headers=HEADERS, now=T + 299)  # bytes or str secret: the same key
    verify(SECRET, sign(SECRET, BODY, headers=HEADERS), BODY, headers=HEADERS)  # now by default


def test_the_signature_is_the_documented_hmac() -> None:
    import hmac

    text = "\n".join(["glaneur-v2", str(T), "stmt-1", "cabinet-demo", IBAN, hashlib.sha256(BODY).hexdigest(),
                      hashlib.sha256(BODY).hexdigest()])
    expected = hmac.new(SECRET.encode(), text.encode(), hashlib.sha256).hexdigest()
    assert sign(SECRET, BODY, headers=HEADERS, timestamp=T) == f"t={T},v2={expected}"


@pytest.mark.parametrize(
    "changed",
    [{IDEMPOTENCY_HEADER: "stmt-2"}, {"X-Glaneur-IBAN": "FR7630004000000001234567846"},
     {"X-Glaneur-Firm": "another-firm"}, {"X-Glaneur-Statement-Sha256": "0" * 64}],
    ids=["new idempotency key", "another IBAN", "another firm", "another sha256"],
)
def test_a_changed_routing_header_breaks_the_signature(changed: dict[str, str]) -> None:
    header = sign(SECRET, BODY, headers=HEADERS, timestamp=T)
    with pytest.raises(SignatureError, match="does not match"):
        verify(SECRET, header, BODY, headers={**HEADERS, **changed}, now=T)
    # Header names are case-insensitive, and HTTP drops surrounding spaces: neither breaks it.
    received = {name.lower(): f" {value} " for name, value in HEADERS.items()}
    verify(SECRET, header, BODY, headers=received, now=T)


def test_a_v1_signature_of_the_body_alone_is_no_longer_accepted() -> None:
    import hmac

    old = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    with pytest.raises(SignatureError, match="Malformed"):
        verify(SECRET, f"t={T},v1={old}", BODY, headers=HEADERS, now=T)


@pytest.mark.parametrize(
    ("secret", "body"),
    [(SECRET, BODY + b" "), (SECRET, b""), ("another-secret", BODY), (SECRET[:-1], BODY)],
    ids=["tampered body", "emptied body", "wrong secret", "truncated secret"],
)
def test_a_tampered_body_or_a_wrong_secret_is_refused(secret: str, body: bytes) -> None:
    header = sign(SECRET, BODY, headers=HEADERS, timestamp=T)
    with pytest.raises(SignatureError, match="does not match"):
        verify(secret, header, body, headers=HEADERS, now=T)


def test_a_changed_timestamp_breaks_the_signature() -> None:
    digest = sign(SECRET, BODY, headers=HEADERS, timestamp=T).split("v2=")[1]
    with pytest.raises(SignatureError, match="does not match"):
        verify(SECRET, f"t={T + 1},v2={digest}", BODY, headers=HEADERS, now=T)


def test_stale_and_future_timestamps_are_refused() -> None:
    header = sign(SECRET, BODY, headers=HEADERS, timestamp=T)

    with pytest.raises(SignatureError, match="too old"):
        verify(SECRET, header, BODY, headers=HEADERS, now=T + 301)
    with pytest.raises(SignatureError, match="future"):
        verify(SECRET, header, BODY, headers=HEADERS, now=T - 301)
    with pytest.raises(SignatureError, match="too old"):
        verify(SECRET, header, BODY, headers=HEADERS, now=T + 61, tolerance_seconds=60)
    verify(SECRET, header, BODY, headers=HEADERS, now=T + 300)
    verify(SECRET, header, BODY, headers=HEADERS, now=T - 300)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "   ",
        "garbage",
        f"t={T}",
        "v2=" + "a" * 64,
        f"t=abc,v2={'a' * 64}",
        f"t=-5,v2={'a' * 64}",
        f"t={T},v2=xyz",
        f"t={T},v2={'A' * 64}",
        f"t={T},v2={'a' * 63}",
        f"t={T},t={T},v2={'a' * 64}",
        f"t={T};v2={'a' * 64}",
        f"t=١٢٣,v2={'a' * 64}",  # Arabic-Indic digits: isdigit() but not a timestamp
        f"t={T},v2={'a' * 64}," + "x=y," * 1000,
    ],
)
def test_malformed_headers_are_refused(header: str) -> None:
    with pytest.raises(SignatureError, match="Malformed|missing"):
        verify(SECRET, header, BODY, headers=HEADERS, now=T)


def test_one_matching_v2_among_several_suffices_and_unknown_schemes_are_ignored() -> None:
    good = sign(SECRET, BODY, headers=HEADERS, timestamp=T).split("v2=")[1]
    verify(SECRET, f"t={T},v0=whatever,v2={'0' * 64},v2={good}", BODY, headers=HEADERS, now=T)


def test_an_empty_secret_neither_signs_nor_verifies() -> None:
    with pytest.raises(ValueError, match="empty"):
        sign("", BODY, headers=HEADERS)
    with pytest.raises(SignatureError, match="empty"):
        verify(b"", sign(SECRET, BODY, headers=HEADERS, timestamp=T), BODY, headers=HEADERS, now=T)


def test_signature_errors_never_show_the_secret() -> None:
    for header, now in [(sign(SECRET, BODY, headers=HEADERS, timestamp=T), T + 999), ("t=1,v2=" + "b" * 64, T), ("junk", T)]:
        with pytest.raises(SignatureError) as error:
            verify(SECRET, header, BODY, headers=HEADERS, now=now)
        assert SECRET not in str(error.value)


# -- deliver, against the real sandbox partner ------------------------------------------------


@pytest.fixture(scope="module")
def partner_server() -> Iterator[SandboxHandle]:
    app = create_partner_app("compta-express", SECRET)
    with serve_app(app, "partner", "/_sandbox/received") as handle:
        yield handle


@pytest.fixture
def partner(partner_server: SandboxHandle) -> str:
    """The partner's base URL, reset."""
    url = partner_server.urls["partner"]
    control("post", url, "/reset")
    return url


def control(method: str, url: str, path: str, **kwargs: object) -> httpx.Response:
    response = httpx.request(method, f"{url}/_sandbox{path}", trust_env=False, **kwargs)
    response.raise_for_status()
    return response


def send(
    url: str, body: bytes = BODY, *, key: str = "stmt-1", secret: str = SECRET, **kwargs: object
) -> Acknowledgement:
    return deliver(
        f"{url}/api/statements",
        secret,
        body,
        idempotency_key=key,
        content_type="application/xml",
        headers={
            "X-Glaneur-IBAN": "FR7630004012340001029384732",
            "X-Glaneur-Statement-Sha256": hashlib.sha256(body).hexdigest(),
        },
        **kwargs,
    )


def test_first_delivery_is_accepted_and_a_repeat_is_a_duplicate_stored_once(partner: str) -> None:
    first = send(partner)
    again = send(partner)

    assert first == Acknowledgement(receipt="compta-express-1", duplicate=False)
    assert again == Acknowledgement(receipt="compta-express-1", duplicate=True)
    [received] = control("get", partner, "/received").json()
    assert received["receipt"] == "compta-express-1" and received["times_received"] == 2
    assert received["idempotency_key"] == "stmt-1" and received["content_type"] == "application/xml"
    assert received["sha256"] == hashlib.sha256(BODY).hexdigest() and received["size"] == len(BODY)
    assert received["headers"]["x-glaneur-iban"] == "FR7630004012340001029384732"
    assert "x-glaneur-signature" not in received["headers"]
    assert control("get", partner, "/received/compta-express-1").content == BODY


def test_another_key_is_another_statement(partner: str) -> None:
    assert send(partner, key="a").receipt == "compta-express-1"
    assert send(partner, BODY + b"\n", key="b").receipt == "compta-express-2"
    assert len(control("get", partner, "/received").json()) == 2


def test_a_key_reused_for_another_body_is_refused(partner: str) -> None:
    send(partner, key="same")
    with pytest.raises(PartnerRefused, match="HTTP 422.*already used") as error:
        send(partner, b"<other/>", key="same")
    assert error.value.status == 422


def test_a_wrong_secret_is_refused_and_the_message_names_the_status_not_the_secret(partner: str) -> None:
    wrong = "not-the-partners-secret-987654321"
    with pytest.raises(PartnerRefused) as error:
        send(partner, secret=wrong)

    message = str(error.value)
    assert "HTTP 401" in message and "does not match" in message
    assert wrong not in message and SECRET not in message and error.value.status == 401
    assert control("get", partner, "/received").json() == []


def test_a_missing_or_stale_signature_is_refused_by_the_partner(partner: str) -> None:
    url = f"{partner}/api/statements"
    bare = httpx.post(url, content=BODY, headers={IDEMPOTENCY_HEADER: "k"}, trust_env=False)
    stale = httpx.post(
        url,
        content=BODY,
        headers={IDEMPOTENCY_HEADER: "k", SIGNATURE_HEADER: sign(SECRET, BODY, headers={IDEMPOTENCY_HEADER: "k"},
                                                         timestamp=int(time.time()) - 3600)},
        trust_env=False,
    )
    no_key = httpx.post(url, content=BODY, headers={SIGNATURE_HEADER: sign(SECRET, BODY, headers={})}, trust_env=False)

    assert bare.status_code == 401 and "missing" in bare.json()["reason"]
    assert stale.status_code == 401 and "too old" in stale.json()["reason"]
    assert no_key.status_code == 400 and IDEMPOTENCY_HEADER in no_key.json()["reason"]


def test_an_outage_is_transient_and_the_statement_goes_through_after_it(partner: str) -> None:
    control("post", partner, "/outage", json={"fail_next": 2, "status": 503, "retry_after": 7})

    for _ in range(2):
        with pytest.raises(PartnerUnavailable, match="HTTP 503") as error:
            send(partner)
        assert error.value.status == 503 and error.value.retry_after == 7.0

    assert send(partner) == Acknowledgement("compta-express-1", duplicate=False)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 504])
def test_transient_statuses_are_unavailable(partner: str, status: int) -> None:
    control("post", partner, "/outage", json={"fail_next": 1, "status": status})
    with pytest.raises(PartnerUnavailable, match=f"HTTP {status}"):
        send(partner)


@pytest.mark.parametrize("status", [403, 404, 413, 422])
def test_other_client_errors_are_refused(partner: str, status: int) -> None:
    control("post", partner, "/outage", json={"fail_next": 1, "status": status})
    with pytest.raises(PartnerRefused, match=f"HTTP {status}.*temporarily unavailable"):
        send(partner)


def test_a_partner_down_until_told_otherwise(partner: str) -> None:
    control("post", partner, "/outage", json={"down": True})
    for _ in range(3):
        with pytest.raises(PartnerUnavailable):
            send(partner)
    control("post", partner, "/outage", json={"down": False})
    assert send(partner).receipt == "compta-express-1"


def test_a_late_acknowledgement_times_out_then_the_retry_is_a_duplicate(partner: str) -> None:
    control("post", partner, "/slow", json={"seconds": 1.0})
    with pytest.raises(PartnerUnavailable, match="did not answer within 0.2 s"):
        send(partner, timeout=0.2)

    control("post", partner, "/slow", json={"seconds": 0})
    assert send(partner) == Acknowledgement("compta-express-1", duplicate=True)  # stored once, acknowledged now
    assert [r["times_received"] for r in control("get", partner, "/received").json()] == [2]


def test_a_closed_port_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(PartnerUnavailable, match="could not be reached") as error:
        send(f"http://127.0.0.1:{port}")
    assert SECRET not in str(error.value) and error.value.status is None


def test_a_shared_client_is_used_and_left_open(partner: str) -> None:
    with httpx.Client(trust_env=False) as client:
        assert send(partner, key="x", client=client).receipt == "compta-express-1"
        assert not client.is_closed


# -- deliver, against answers the sandbox partner never gives ------------------------------------


def scripted(response: httpx.Response) -> httpx.Client:
    """A client whose transport answers ``response`` and records the request it got."""

    def handler(request: httpx.Request) -> httpx.Response:
        scripted.requests.append(request)  # type: ignore[attr-defined]
        return response

    scripted.requests = []  # type: ignore[attr-defined]
    return httpx.Client(transport=httpx.MockTransport(handler))


def test_the_request_carries_signature_key_content_type_and_extra_headers() -> None:
    client = scripted(httpx.Response(202, json={"receipt": "r-9"}))
    ack = deliver(
        "https://partner.example/api/statements",
        SECRET,
        BODY,
        idempotency_key="key-42",
        content_type="text/plain",
        headers={"X-Glaneur-Firm": "cabinet-demo", "Content-Type": "ignored/override"},
        client=client,
    )

    [request] = scripted.requests  # type: ignore[attr-defined]
    assert ack == Acknowledgement("r-9", duplicate=False)
    assert request.method == "POST" and request.content == BODY
    assert request.headers["Content-Type"] == "text/plain" and request.headers[IDEMPOTENCY_HEADER] == "key-42"
    assert request.headers["X-Glaneur-Firm"] == "cabinet-demo"
    verify(SECRET, request.headers[SIGNATURE_HEADER], BODY, headers=request.headers)


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(202, text="accepted"),
        httpx.Response(202, json={"receipt": ""}),
        httpx.Response(200, json={"receipt": 12}),
        httpx.Response(200, json=["receipt"]),
        httpx.Response(204),
        httpx.Response(201, json={"id": "x"}),
    ],
    ids=["not json", "empty receipt", "numeric receipt", "json list", "204", "201 without receipt"],
)
def test_a_success_status_without_a_receipt_is_not_an_acknowledgement(response: httpx.Response) -> None:
    with pytest.raises(PartnerUnavailable):
        deliver(
            "http://partner.test/in",
            SECRET,
            BODY,
            idempotency_key="k",
            content_type="text/plain",
            client=scripted(response),
        )


def test_a_redirect_is_refused_not_followed() -> None:
    response = httpx.Response(307, headers={"Location": "https://user:pw@elsewhere.example/in?token=abc"})
    with pytest.raises(PartnerRefused, match="redirects") as error:
        deliver(
            "http://partner.test/in",
            SECRET,
            BODY,
            idempotency_key="k",
            content_type="text/plain",
            client=scripted(response),
        )
    assert "pw" not in str(error.value) and "token=abc" not in str(error.value)
    assert len(scripted.requests) == 1  # type: ignore[attr-defined]


def test_the_partners_reason_is_short_and_an_echoed_secret_is_hidden() -> None:
    response = httpx.Response(400, json={"detail": f"bad key {SECRET} " + "x" * 500})
    with pytest.raises(PartnerRefused) as error:
        deliver(
            "http://partner.test/in",
            SECRET,
            BODY,
            idempotency_key="k",
            content_type="text/plain",
            client=scripted(response),
        )
    assert SECRET not in str(error.value) and "[secret]" in error.value.reason
    assert len(error.value.reason) <= 200 and "HTTP 400" in str(error.value)


def test_unusable_urls_and_keys() -> None:
    for url in ["ftp://partner.example/in", "not a url", "http:///nohost"]:
        with pytest.raises(PartnerRefused, match="URL"):
            deliver(url, SECRET, BODY, idempotency_key="k", content_type="text/plain")
    with pytest.raises(PartnerRefused) as error:
        deliver("ftp://user:hunter2@partner.example/in", SECRET, BODY, idempotency_key="k", content_type="text/plain")
    assert "hunter2" not in str(error.value)
    for secret in ["", b""]:
        with pytest.raises(PartnerRefused, match="No signing secret"):
            deliver("http://partner.test/in", secret, BODY, idempotency_key="k", content_type="text/plain")
    for key in ["", "has space", "é", "x" * 256, "line\nbreak"]:
        with pytest.raises(ValueError, match="idempotency key"):
            deliver("http://partner.test/in", SECRET, BODY, idempotency_key=key, content_type="text/plain")
    with pytest.raises(ValueError, match="ASCII"):
        deliver(
            "http://partner.test/in",
            SECRET,
            BODY,
            idempotency_key="k",
            content_type="text/plain",
            headers={"X-Glaneur-Firm": "Cabinet Lefèvre"},
        )


def test_every_delivery_error_is_a_delivery_error() -> None:
    assert issubclass(PartnerUnavailable, DeliveryError) and issubclass(PartnerRefused, DeliveryError)
    assert issubclass(SignatureError, ValueError)


# -- the partners start_sandbox runs ---------------------------------------------------------------


def test_start_sandbox_runs_both_partners_with_their_default_secrets(sandbox: SandboxHandle) -> None:
    for slug, secret in SANDBOX_PARTNER_SECRETS.items():
        url = sandbox.urls[f"partner-{slug}"]
        control("post", url, "/reset")
        ack = send(url, secret=secret, key=f"{slug}-demo")
        assert ack == Acknowledgement(f"{slug}-1", duplicate=False)
        control("post", url, "/reset")
