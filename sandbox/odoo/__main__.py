"""``python -m sandbox.odoo --supplier transports-girard --version 16.0 --port 8711``: one supplier's Odoo portal."""

from __future__ import annotations

import argparse
import sys

from sandbox.odoo import ODOO_SUPPLIERS, VERSIONS, create_odoo_app
from sandbox.server import SandboxError, serve_app, serve_until_interrupted, startup_error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.odoo", description=__doc__)
    parser.add_argument("--supplier", choices=sorted(ODOO_SUPPLIERS), default=next(iter(ODOO_SUPPLIERS)))
    parser.add_argument("--version", choices=VERSIONS, help="the Odoo version whose markup is served (default: the supplier's)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    args = parser.parse_args(argv)
    app = create_odoo_app(args.supplier, args.version)
    try:
        handle = serve_app(app, args.supplier, "/_sandbox/accounts", host=args.host, port=args.port)
    except SandboxError as exc:
        return startup_error(exc)
    print(app.state.portal.banner(handle.urls[args.supplier]), flush=True)
    return serve_until_interrupted(handle)


if __name__ == "__main__":
    sys.exit(main())
