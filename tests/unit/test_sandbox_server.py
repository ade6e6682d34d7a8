"""The sandbox servers: documented ports, and sockets that answer at loopback speed."""

from __future__ import annotations

import socket
import subprocess
import sys

import httpx
import pytest

from sandbox.__main__ import ODOO_PORT
from sandbox.server import DEFAULT_PORTS, STATEMENT_DEFAULT_PORTS, _listen, start_sandbox


def test_listening_sockets_disable_nagle_so_keep_alive_answers_are_not_delayed():
    sock = _listen("127.0.0.1", 0, "probe")
    try:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        sock.close()


def test_accepted_connections_inherit_no_delay():
    with start_sandbox() as handle:
        url = handle.urls["papeterie-dupont"]
        with httpx.Client() as client:
            assert client.get(f"{url}/_sandbox/accounts").status_code == 200
        # The server side of a connection is not reachable from here; its listening socket is what
        # Linux copies TCP_NODELAY from, so check that every server's socket carries it.
        for running in handle._running:
            for server in running.server.servers:
                for sock in server.sockets:
                    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def _free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.skipif(
    not all(_free(p) for p in {**DEFAULT_PORTS, **STATEMENT_DEFAULT_PORTS, "odoo": ODOO_PORT}.values()),
    reason="a sandbox (the demo's) already holds the documented ports 8701-8708",
)
def test_python_m_sandbox_serves_every_server_on_its_documented_port():
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "sandbox"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines = []
    try:
        for line in process.stdout:  # the listing ends with the control endpoints, once every server answers
            lines.append(line)
            if "Ctrl-C stops." in line:
                break
        for name, port in {**DEFAULT_PORTS, **STATEMENT_DEFAULT_PORTS}.items():
            assert not _free(port), f"{name} is not listening on {port}"
    finally:
        process.terminate()
        process.wait(timeout=20)
    output = "".join(lines)
    for name, port in STATEMENT_DEFAULT_PORTS.items():
        assert f"{name}: http://127.0.0.1:{port}" in output, output
    assert f"(Odoo 17.0, provider odoo): http://127.0.0.1:{ODOO_PORT}" in output, output
