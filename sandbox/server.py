"""Run the sandbox portals with uvicorn in background threads, for tests and the demo.

Each portal gets its own listening socket, bound here before uvicorn starts, so that port 0
gives a free port whose number we know at once; :func:`start_sandbox` returns only when every
portal answers HTTP.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

import uvicorn

from sandbox.portals import APPS

DEFAULT_PORTS = {"papeterie-dupont": 8701, "energie-verte": 8702}


class SandboxError(RuntimeError):
    """The sandbox could not start (port taken, portal not answering)."""


@dataclass
class _Running:
    server: uvicorn.Server
    thread: threading.Thread


@dataclass
class SandboxHandle:
    """The running portals: ``urls`` maps each provider slug to its base URL."""

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
    """Start every sandbox portal; ``ports`` maps slugs to ports (0 or missing: a free port)."""
    ports = dict(ports or {})
    unknown = sorted(set(ports) - set(APPS))
    if unknown:
        raise SandboxError(f"Unknown sandbox portal(s) {', '.join(unknown)}; known: {', '.join(APPS)}.")
    handle = SandboxHandle(urls={})
    try:
        for slug, make_app in APPS.items():
            sock = _listen(host, ports.get(slug, 0), slug)
            port = sock.getsockname()[1]
            # log_config=None: leave the process's logging alone (pytest, the CLI) instead of uvicorn's dictConfig.
            config = uvicorn.Config(make_app(), log_config=None, access_log=False, lifespan="off")
            server = uvicorn.Server(config)
            thread = threading.Thread(
                target=server.run, kwargs={"sockets": [sock]}, name=f"sandbox-{slug}", daemon=True
            )
            thread.start()
            handle._running.append(_Running(server, thread))
            handle.urls[slug] = f"http://{_url_host(host)}:{port}"
        for slug, url in handle.urls.items():
            _wait_until_answering(slug, url, timeout)
    except BaseException:
        handle.stop()
        raise
    return handle


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
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _wait_until_answering(slug: str, url: str, timeout: float) -> None:
    """Poll the control endpoint; a plain HTTP connection so that no proxy setting gets in the way."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    deadline = time.monotonic() + timeout
    while True:
        connection = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=1)
        try:
            connection.request("GET", "/_sandbox/accounts")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        if time.monotonic() > deadline:
            raise SandboxError(f"The {slug} sandbox at {url} did not answer within {timeout:.0f} s.")
        time.sleep(0.05)
