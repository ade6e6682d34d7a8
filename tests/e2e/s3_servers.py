"""S3 servers for tests: moto's real HTTP server, and a thin proxy in front of it that ignores conditional writes.

Several S3-compatible servers ignore ``If-None-Match: *`` and overwrite silently. The proxy plays
one: it forwards every request to moto unchanged except that it drops the ``If-None-Match`` and
``If-Match`` headers of writes, so moto never gets the chance to answer 412.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

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
