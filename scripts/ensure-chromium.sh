#!/bin/sh
# A Chromium for Playwright: Playwright's own where it can download it, else Debian's package.
# glaneur.settings auto-detects which one to use (GLANEUR_CHROMIUM_PATH overrides).
# Installs the minimum (no recommended packages: a plain `apt-get install chromium` pulls in over a
# hundred, systemd upgrades included) and never waits at a password prompt.
set -e
if [ -n "${GLANEUR_CHROMIUM_PATH:-}" ] && [ -x "$GLANEUR_CHROMIUM_PATH" ]; then exit 0; fi
if ls "${PLAYWRIGHT_BROWSERS_PATH:-$HOME/.cache/ms-playwright}"/chromium-*/chrome-linux*/chrome >/dev/null 2>&1; then exit 0; fi
for name in chromium chromium-browser google-chrome; do
    if command -v "$name" >/dev/null 2>&1; then exit 0; fi
done
echo "No Chromium found: trying Playwright's download, then Debian's package." >&2
if timeout 120 "$PY" -m playwright install chromium >/dev/null 2>&1; then exit 0; fi
PACKAGES="chromium fonts-liberation"  # fonts: screenshots and evidence show readable text
if command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        SUDO=""
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"  # -n: fail instead of prompting, so `make` never stops at a password prompt
    else
        echo "Chromium is missing and installing it needs root. Run, as root:" >&2
        echo "    apt-get update && apt-get install -y --no-install-recommends $PACKAGES" >&2
        echo "or point GLANEUR_CHROMIUM_PATH at a Chromium you have, then run make again." >&2
        exit 1
    fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null
    command -v chromium >/dev/null 2>&1 && exit 0
fi
echo "Could not install a Chromium. Install one (e.g. 'apt-get install --no-install-recommends chromium') or set GLANEUR_CHROMIUM_PATH." >&2
exit 1
