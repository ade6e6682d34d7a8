"""A partner that receives a statement and then answers 500 (issue 19 item 1, the case ``test_route_statements``
does not stage: there the partner fails before reading the body).

A proxy in front of the sandbox partner forwards each delivery whole, so the partner stores it, then
answers Glaneur 500 as a partner whose database commit succeeded but whose response failed would. The
next routing delivers again with the same Idempotency-Key: the partner keeps one statement, Glaneur
records it delivered once, and the history never said "delivered" before it was acknowledged.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import httpx
import pytest

from glaneur.models import DeliveryState, StatementRoute
from sandbox.firm_setup import create_sandbox_firm
from tests.e2e.test_route_statements import MARTIN, received, route, statements_of

pytestmark = pytest.mark.slow


@contextmanager
def answers_500_after_forwarding(upstream: str) -> Iterator[dict]:
    """A proxy to ``upstream``; while ``control["lossy"]`` it forwards each request, then answers 500 itself."""
    target = urlsplit(upstream)
    control = {"lossy": True, "forwarded": 0, "lost_answers": 0}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
            try:
                connection.request("POST", self.path, body=body, headers=headers)
                response = connection.getresponse()
                answer, status, kind = response.read(), response.status, response.getheader("Content-Type", "")
            finally:
                connection.close()
            control["forwarded"] += 1
            if control["lossy"]:
                control["lost_answers"] += 1
                answer, status, kind = b'{"reason": "internal error"}', 500, "application/json"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    control["url"] = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield control
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def lossy_world(glaneur_home, prefect_server, sandbox, monkeypatch):
    """The sandbox firm, its partner compta-express behind the lossy proxy."""
    from glaneur.db import session_scope

    for key, url in sandbox.urls.items():
        if key == "statement-source" or key.startswith("partner-"):
            httpx.post(f"{url}/_sandbox/reset").raise_for_status()
    monkeypatch.delenv("GLANEUR_ACTING_USER", raising=False)
    with answers_500_after_forwarding(sandbox.urls["partner-compta-express"]) as proxy:
        with session_scope() as s:
            assert create_sandbox_firm(s, {**sandbox.urls, "partner-compta-express": proxy["url"]})
        yield sandbox, proxy


def test_a_partner_that_answers_500_after_receiving_keeps_each_statement_once(lossy_world):
    world, proxy = lossy_world

    state, summary = route()

    assert proxy["lost_answers"] >= 1
    assert state.is_failed() and summary["not_delivered"] == 1, summary
    (martin,) = statements_of(MARTIN)
    assert martin.route == StatementRoute.PARTNER
    assert martin.delivery_receipt is None and martin.delivery_state != DeliveryState.DELIVERED  # never said delivered
    assert "500" in martin.last_delivery_error and martin.global_date is None
    (kept,) = received(world, "compta-express")  # the partner has it already, once

    proxy["lossy"] = False
    state, summary = route(date(2026, 11, 21))

    assert state.is_completed(), state.message
    (martin,) = statements_of(MARTIN)
    assert martin.delivery_state == DeliveryState.DELIVERED and martin.delivery_receipt == kept["receipt"]
    (again,) = received(world, "compta-express")  # delivered again with the same key: still one statement
    assert again["receipt"] == kept["receipt"] and again["times_received"] == proxy["forwarded"]
    assert again["sha256"] == kept["sha256"]

    _, summary = route(date(2026, 11, 22))  # nothing left to deliver
    assert [item["times_received"] for item in received(world, "compta-express")] == [proxy["forwarded"]]
