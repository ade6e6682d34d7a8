"""Run the sandbox servers with uvicorn in background threads, for tests and the demo.

The servers are the supplier portals, the statement source (``statement-source``) and the partner
production tools (``partner-<slug>``). Each gets its own listening socket, bound here before
uvicorn starts, so that port 0 gives a free port whose number we know at once;
:func:`start_sandbox` returns only when every server answers HTTP.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from types import TracebackType

import uvicorn
from fastapi import FastAPI

from sandbox.partner import SANDBOX_PARTNER_SECRETS, create_partner_app
from sandbox.portals import APPS
from sandbox.statements_source import create_statement_source_app

DEFAULT_PORTS = {"papeterie-dupont": 8701, "energie-verte": 8702}  # the supplier portals
STATEMENT_SOURCE = "statement-source"
# The statement source and the partners; kept apart from DEFAULT_PORTS, which lists the supplier portals only.
STATEMENT_DEFAULT_PORTS = {STATEMENT_SOURCE: 8703, "partner-compta-express": 8704, "partner-tenue-plus": 8705}


@dataclass(frozen=True)
class _Server:
    make_app: Callable[[], FastAPI]
    probe: str  # a GET path that answers 200 once the app serves


SERVERS: dict[str, _Server] = {
    **{slug: _Server(make_app, "/_sandbox/accounts") for slug, make_app in APPS.items()},
    STATEMENT_SOURCE: _Server(create_statement_source_app, "/_sandbox/clock"),
    **{
        f"partner-{slug}": _Server(partial(create_partner_app, slug, secret), "/_sandbox/received")
        for slug, secret in SANDBOX_PARTNER_SECRETS.items()
    },
}


class SandboxError(RuntimeError):
    """The sandbox could not start (port taken, server not answering)."""


@dataclass
class _Running:
    server: uvicorn.Server
    thread: threading.Thread


@dataclass
class SandboxHandle:
    """The running servers: ``urls`` maps each portal's provider slug, ``statement-source`` and each
    ``partner-<slug>`` to its base URL."""

    urls: dict[str, str]
    _running: list[_Running] = field(default_factory=list, repr=False)

    def stop(self, timeout: float = 5.0) -> None:
        for running in self._running:
            running.server.should_exit = True
        for running in self._running:
            running.thread.join(timeout)
        self._running.clear()

    def __enter__(self) -> SandboxHandle:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


def start_sandbox(
    host: str = "127.0.0.1", ports: dict[str, int] | None = None, *, timeout: float = 15.0
) -> SandboxHandle:
    """Start every sandbox server; ``ports`` maps names (see :data:`SERVERS`) to ports (0 or missing: a free port)."""
    ports = dict(ports or {})
    unknown = sorted(set(ports) - set(SERVERS))
    if unknown:
        raise SandboxError(f"Unknown sandbox server(s) {', '.join(unknown)}; known: {', '.join(SERVERS)}.")
    handle = SandboxHandle(urls={})
    try:
        for slug, spec in SERVERS.items():
            _start(handle, slug, spec.make_app(), host, ports.get(slug, 0))
        for slug, url in handle.urls.items():
            _wait_until_answering(slug, url, SERVERS[slug].probe, timeout)
    except BaseException:
        handle.stop()
        raise
    return handle


def serve_app(
    app: FastAPI, name: str, probe: str, *, host: str = "127.0.0.1", port: int = 0, timeout: float = 15.0
) -> SandboxHandle:
    """Serve one app alone, as :func:`start_sandbox` serves each (tests that need a server with a state of their own).

    ``probe`` is a GET path answering 200 once the app serves; ``handle.urls[name]`` is its base URL.
    """
    handle = SandboxHandle(urls={})
    try:
        _start(handle, name, app, host, port)
        _wait_until_answering(name, handle.urls[name], probe, timeout)
    except BaseException:
        handle.stop()
        raise
    return handle


def startup_error(error: BaseException, what: str = "") -> int:
    """What the ``python -m sandbox…`` commands do when a server cannot start (a port taken): one line, exit 1."""
    print(f"error: {what}{error}", file=sys.stderr)
    return 1


def serve_until_interrupted(*handles: SandboxHandle) -> int:
    """Keep the servers of a ``python -m sandbox…`` command up in the foreground until Ctrl-C, then stop them."""
    with contextlib.ExitStack() as running:
        for handle in handles:
            running.enter_context(handle)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("\nStopping.")
    return 0


def _start(handle: SandboxHandle, slug: str, app: FastAPI, host: str, port: int) -> None:
    sock = _listen(host, port, slug)
    bound = sock.getsockname()[1]
    # log_config=None: leave the process's logging alone (pytest, the CLI) instead of uvicorn's dictConfig.
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"sandbox-{slug}", daemon=True)
    thread.start()
    handle._running.append(_Running(server, thread))
    handle.urls[slug] = f"http://{_url_host(host)}:{bound}"


def _listen(host: str, port: int, slug: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if not 0 <= port <= 65535:
        raise SandboxError(f"Port {port} for {slug} is not a TCP port (0 to 65535; 0 picks a free one).")
    try:
        sock = socket.create_server((host, port), family=family)
    except OSError as exc:  # includes names that do not resolve (socket.gaierror)
        raise SandboxError(
            f"Cannot listen on {host}:{port} for {slug}: {exc.strerror or exc}. Is another sandbox already running?"
        ) from exc
    # Linux hands this to every accepted connection. Without it Nagle's algorithm meets the client's
    # delayed ACK and each reused keep-alive connection answers ~42 ms late, which is the sandbox's
    # cost, not Glaneur's, in every figure measured against it.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _wait_until_answering(slug: str, url: str, probe: str, timeout: float) -> None:
    """Poll the control endpoint; a plain HTTP connection so that no proxy setting gets in the way."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    deadline = time.monotonic() + timeout
    while True:
        connection = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=1)
        try:
            connection.request("GET", probe)
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        if time.monotonic() > deadline:
            raise SandboxError(f"The {slug} sandbox at {url} did not answer within {timeout:.0f} s.")
        time.sleep(0.05)
