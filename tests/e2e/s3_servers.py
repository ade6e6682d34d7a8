"""S3 servers for tests: moto's real HTTP server, s3rver (another implementation, in Node.js), and thin
proxies in front of moto: one that ignores conditional writes, one that goes down.

Several S3-compatible servers ignore ``If-None-Match: *`` and overwrite silently; s3rver is one, and
the proxy plays one in front of moto: it forwards every request unchanged except that it drops the
``If-None-Match`` and ``If-Match`` headers of writes, so moto never gets the chance to answer 412.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.local_http import serving

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host", "expect"}
_CONDITIONS = {"if-none-match", "if-match"}


@contextmanager
def moto_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)  # port 0: a free port
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


S3RVER = Path(__file__).resolve().parents[1] / "s3rver"


@contextmanager
def s3rver_server(access_key: str, secret_key: str) -> Iterator[str]:
    """s3rver (tests/s3rver, installed by ``make test``) on a free loopback port, checking signatures
    against ``access_key``/``secret_key``; yields its base URL."""
    if not (S3RVER / "node_modules" / "s3rver").is_dir():
        message = "s3rver is not installed: run `make test` (scripts/ensure-s3rver.sh, needs Node.js and npm)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with tempfile.TemporaryDirectory(prefix="glaneur-s3rver-") as directory:
        environment = {**os.environ, "S3_ACCESS_KEY_ID": access_key, "S3_SECRET_ACCESS_KEY": secret_key}
        process = subprocess.Popen(
            ["node", str(S3RVER / "serve.js"), directory],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            line = process.stdout.readline()  # the port, once it listens; empty if it failed to start
            if not line:
                process.wait(10)
                raise RuntimeError(f"s3rver did not start: {process.stderr.read()[-2000:]}")
            yield f"http://127.0.0.1:{json.loads(line)['port']}"
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def store_ignoring_conditional_writes(upstream: str) -> Iterator[str]:
    """A proxy to ``upstream`` that drops conditional-write headers; yields its base URL."""
    target = urlsplit(upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # quiet
            pass

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {}
            for name, value in self.headers.items():
                if name.lower() in _HOP_BY_HOP:
                    continue
                if name.lower() in _CONDITIONS and self.command in ("PUT", "POST"):
                    continue
                headers[name] = value
            connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            try:
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
                self.send_response(response.status, response.reason)
                for name, value in response.getheaders():
                    if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                length_header = response.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length_header or str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
            finally:
                connection.close()

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

    with serving(Handler, name="lax-s3-proxy") as url:
        yield url


@contextmanager
def store_that_goes_down(upstream: str) -> Iterator[dict]:
    """A proxy to ``upstream`` that stops answering (connections closed unanswered, as a dead server's)
    once ``control["writes_left"]`` object writes went through; ``control["down"] = False`` brings it back.

    Yields ``control``: ``url``, ``writes_left`` (None: never goes down), ``down``, ``refused`` (requests
    dropped while down).
    """
    target = urlsplit(upstream)
    control: dict = {"writes_left": None, "down": False, "refused": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # quiet
            pass

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            with lock:
                if control["down"]:
                    control["refused"] += 1
                    self.close_connection = True
                    return  # nothing written back: the client sees the connection drop
                if self.command == "PUT" and control["writes_left"] is not None:
                    control["writes_left"] -= 1
                    control["down"] = control["writes_left"] <= 0
            headers = {name: value for name, value in self.headers.items() if name.lower() not in _HOP_BY_HOP}
            connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            try:
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
                self.send_response(response.status, response.reason)
                for name, value in response.getheaders():
                    if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                length_header = response.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length_header or str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
            finally:
                connection.close()

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="s3-going-down", daemon=True)
    thread.start()
    control["url"] = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield control
    finally:
        server.shutdown()
        server.server_close()
