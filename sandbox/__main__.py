"""``python -m sandbox``: run the sandbox servers (supplier portals, statement source, partners, and one
supplier's Odoo portal) on their documented ports, in the foreground, until Ctrl-C."""

from __future__ import annotations

import argparse
import sys
import threading

from sandbox.data import SUPPLIERS, PortalState
from sandbox.odoo import create_odoo_app
from sandbox.server import DEFAULT_PORTS, STATEMENT_DEFAULT_PORTS, SandboxError, serve_app, start_sandbox

ODOO_SUPPLIER, ODOO_PORT = "infogerance-martin", 8706  # the demo's Odoo supplier (sandbox/demo.py)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    documented = {**DEFAULT_PORTS, **STATEMENT_DEFAULT_PORTS}
    for slug, port in documented.items():
        parser.add_argument(f"--{slug}-port", type=int, default=port, metavar="PORT", help=f"default: {port}")
    parser.add_argument("--odoo-port", type=int, default=ODOO_PORT, metavar="PORT",
                        help=f"{ODOO_SUPPLIER}'s Odoo portal (python -m sandbox.odoo for others); default: {ODOO_PORT}")
    args = parser.parse_args(argv)
    ports = {slug: getattr(args, f"{slug.replace('-', '_')}_port") for slug in documented}
    odoo_app = create_odoo_app(ODOO_SUPPLIER)
    try:
        odoo = serve_app(odoo_app, ODOO_SUPPLIER, "/_sandbox/accounts", host=args.host, port=args.odoo_port)
    except SandboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        handle = start_sandbox(args.host, ports)
    except SandboxError as exc:
        odoo.stop()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    with odoo, handle:
        state = odoo_app.state.portal
        print(f"\n{state.odoo.supplier.name} (Odoo {state.version}, provider odoo): {odoo.urls[ODOO_SUPPLIER]}")
        for account in state.describe():
            print(f"  {account['login']:<26} {account['password']:<30} {account['description']}")
        for slug, url in handle.urls.items():
            if slug not in SUPPLIERS:  # the statement source and the partners
                print(f"\n{slug}: {url}")
                continue
            supplier = SUPPLIERS[slug]
            print(f"\n{supplier.name} ({slug}): {url}")
            for account in PortalState(supplier).describe():
                login, password, scenario = account["login"], account["password"], account["scenario"]
                print(f"  {login:<26} {password:<30} {scenario:<20} {account['description']}")
                if account["totp_seed"]:
                    print(f"  {'':<26} TOTP seed: {account['totp_seed']}")
        print(
            "\nControl: POST /_sandbox/reset, GET /_sandbox/accounts, POST /_sandbox/accounts/{login}/invoices, "
            "POST /_sandbox/rate-limit, GET /_sandbox/outbox/{login}, POST /_sandbox/approve/{login}, "
            "GET /_sandbox/sessions, POST /_sandbox/sessions/expire, POST /_sandbox/sessions/lifetime, "
            "POST /_sandbox/clock. Ctrl-C stops.",
            flush=True,
        )
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("\nStopping.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
