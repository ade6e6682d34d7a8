"""``python -m sandbox.powens --port PORT --client-id ID --client-secret SECRET``: the Powens sandbox, until Ctrl-C."""

from __future__ import annotations

import argparse
import sys

from sandbox.powens import DEFAULT_PORT, PowensWorld, start_powens
from sandbox.powens.state import PASSWORD, SMS_CODE
from sandbox.server import serve_until_interrupted, startup_error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.powens", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="default: %(default)s")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--rate-limit", type=int, default=None, metavar="N",
                        help="answer 429 past N calls a minute (Powens' sandbox: 30); off by default")
    parser.add_argument("--first-movements-delay", type=float, default=0.0, metavar="SECONDS",
                        help="no movements until this long after a connection (the bank's 48-72 h, compressed)")
    parser.add_argument("--decoupled-seconds", type=float, default=5.0, metavar="SECONDS",
                        help="a decoupled login is approved in the bank's app after this long")
    args = parser.parse_args(argv)
    world = PowensWorld(args.client_id, args.client_secret, rate_limit=args.rate_limit,
                        first_movements_delay=args.first_movements_delay, decoupled_seconds=args.decoupled_seconds)
    try:
        handle = start_powens(world, host=args.host, port=args.port)
    except Exception as exc:  # noqa: BLE001 - a port taken: one line, not a traceback
        return startup_error(exc)
    url = handle.urls["powens"]
    print(f"Powens sandbox: API {url}/2.0, webview {url}/connect")
    print(f"Test connector: any bank; password {PASSWORD}; the login chooses the scenario: ok (SMS code "
          f"{SMS_CODE}), decoupled, or a state name (wrongpass, SCARequired, websiteUnavailable, ...). "
          f"{', '.join(c.name for c in world.connectors if c.restricted)}: listed, but restricted (no new "
          "connection).", flush=True)
    return serve_until_interrupted(handle)

if __name__ == "__main__":
    sys.exit(main())
