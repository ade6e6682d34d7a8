"""``python -m sandbox``: run the sandbox servers (supplier portals, statement source, partners, Powens, and
one supplier's Odoo portal) on their documented ports, in the foreground, until Ctrl-C."""

from __future__ import annotations

import argparse
import sys

from sandbox.data import SUPPLIERS, PortalState
from sandbox.odoo import create_odoo_app
from sandbox.server import (DEFAULT_PORTS, STATEMENT_DEFAULT_PORTS, SandboxError, serve_app, serve_until_interrupted,
                            start_sandbox, startup_error)

ODOO_SUPPLIER, ODOO_PORT = "infogerance-martin", 8708  # the demo's Odoo supplier (sandbox/demo.py)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    documented = {**DEFAULT_PORTS, **STATEMENT_DEFAULT_PORTS}
    for slug, port in documented.items():
        parser.add_argument(f"--{slug}-port", type=int, default=port, metavar="PORT", help=f"default: {port}")
    parser.add_argument("--odoo-port", type=int, default=ODOO_PORT, metavar="PORT",
                        help=f"{ODOO_SUPPLIER}'s Odoo portal (python -m sandbox.odoo for others); default: {ODOO_PORT}")
    parser.add_argument("--powens-port", type=int, default=8706, metavar="PORT", help="default: 8706")
    args = parser.parse_args(argv)
    ports = {slug: getattr(args, f"{slug.replace('-', '_')}_port") for slug in documented}
    odoo_app = create_odoo_app(ODOO_SUPPLIER)
    try:
        odoo = serve_app(odoo_app, ODOO_SUPPLIER, "/_sandbox/accounts", host=args.host, port=args.odoo_port)
    except SandboxError as exc:
        return startup_error(exc)
    try:
        handle = start_sandbox(args.host, ports)
    except SandboxError as exc:
        odoo.stop()
        return startup_error(exc)
    from sandbox.powens import SANDBOX_CLIENT_ID, PowensWorld, start_powens
    from sandbox.powens.state import PASSWORD, SMS_CODE

    try:  # the Powens sandbox (banks and billers), with a client known to the demo
        powens = start_powens(PowensWorld(SANDBOX_CLIENT_ID, "glaneur-sandbox-secret", decoupled_seconds=5.0),
                              host=args.host, port=args.powens_port)
    except Exception as exc:  # noqa: BLE001 - a port taken: one line
        odoo.stop()
        handle.stop()
        return startup_error(exc, "powens: ")
    url = powens.urls["powens"]
    print(f"\npowens: {url} (API {url}/2.0, webview {url}/connect). For Glaneur: GLANEUR_POWENS_API_URL={url} "
          f"GLANEUR_POWENS_WEBVIEW_URL={url} GLANEUR_POWENS_CLIENT_ID={SANDBOX_CLIENT_ID} "
          f"GLANEUR_POWENS_CLIENT_SECRET=glaneur-sandbox-secret. Test connector: password {PASSWORD}, login ok "
          f"(SMS code {SMS_CODE}), decoupled, or a connection state name.")
    print("\n" + odoo_app.state.portal.banner(odoo.urls[ODOO_SUPPLIER]))
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
    return serve_until_interrupted(odoo, handle, powens)


if __name__ == "__main__":
    sys.exit(main())
