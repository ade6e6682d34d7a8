#!/bin/sh
# Caddy, for the test of the shipped reverse proxy (infra/Caddyfile). Only its binary, taken out of
# Debian's package into the virtual environment's bin/: nothing installed system-wide, and no caddy
# service started on port 80 (which installing the package would do on a machine with systemd).
set -e
BIN="$(dirname "$PY")/caddy"
if [ -x "$BIN" ] || command -v caddy >/dev/null 2>&1; then exit 0; fi
if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
    echo "Caddy not found: the reverse-proxy test needs Caddy 2 on PATH (https://caddyserver.com/docs/install)." >&2
    exit 0
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
fetch() { (cd "$WORK" && apt-get download caddy >/dev/null 2>&1); }
if ! fetch; then
    # No package lists yet (a fresh machine): refresh them when allowed to, without ever prompting.
    if [ "$(id -u)" = 0 ]; then apt-get update -qq
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo -n apt-get update -qq
    fi
    if ! fetch; then
        echo "Could not download Debian's caddy package: the reverse-proxy test needs Caddy 2 on PATH." >&2
        exit 0
    fi
fi
dpkg-deb -x "$WORK"/caddy_*.deb "$WORK/root"
install -m 0755 "$WORK/root/usr/bin/caddy" "$BIN"
echo "Caddy $("$BIN" version | cut -d' ' -f1) put in $BIN"
