"""A sandbox following Powens' public API documentation (REST API 2.0 and its webview).

:func:`start_powens` serves it on a free port (tests) or a given one (the demo, 8706 by default).
"""

from __future__ import annotations

from sandbox.powens.app import create_powens_app
from sandbox.powens.state import PowensWorld

DEFAULT_PORT = 8706
SANDBOX_CLIENT_ID = "glaneur-sandbox"


def start_powens(world: PowensWorld, *, host: str = "127.0.0.1", port: int = 0):
    """Serve ``world`` in a background thread; ``handle.urls["powens"]`` is its base URL (``/2.0`` is the API)."""
    from sandbox.server import serve_app

    return serve_app(create_powens_app(world), "powens", "/_sandbox/clock", host=host, port=port)


__all__ = ["DEFAULT_PORT", "SANDBOX_CLIENT_ID", "PowensWorld", "create_powens_app", "start_powens"]
