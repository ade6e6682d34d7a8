#!/bin/sh
# A Chromium for Playwright: Playwright's own where it can download it, else Debian's packages: the
# headless shell (what collections run: what Playwright itself runs headless, at about 40% of the CPU of
# the full Chromium) and the full Chromium (a visible browser, GLANEUR_BROWSER_HEADLESS=false).
# glaneur.settings auto-detects which one to use (GLANEUR_CHROMIUM_PATH overrides).
# Installs the minimum (no recommended packages: a plain `apt-get install chromium` pulls in over a
# hundred, systemd upgrades included) and never waits at a password prompt.
set -e
if [ -n "${GLANEUR_CHROMIUM_PATH:-}" ] && [ -x "$GLANEUR_CHROMIUM_PATH" ]; then exit 0; fi
if ls "${PLAYWRIGHT_BROWSERS_PATH:-$HOME/.cache/ms-playwright}"/chromium-*/chrome-linux*/chrome >/dev/null 2>&1; then exit 0; fi
FULL=""
for name in chromium chromium-browser google-chrome; do
    if command -v "$name" >/dev/null 2>&1; then FULL="$name"; break; fi
done
if [ -n "$FULL" ] && command -v chromium-headless-shell >/dev/null 2>&1; then exit 0; fi
if [ -z "$FULL" ]; then
    echo "No Chromium found: trying Playwright's download, then Debian's packages." >&2
    if timeout 120 "$PY" -m playwright install chromium >/dev/null 2>&1; then exit 0; fi
fi
PACKAGES="chromium chromium-headless-shell fonts-liberation"  # fonts: screenshots and evidence show readable text
SUDO=none
if command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        SUDO=""
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"  # -n: fail instead of prompting, so `make` never stops at a password prompt
    fi
fi
if [ "$SUDO" != none ]; then
    $SUDO apt-get update -qq || true
    # A distribution without the headless shell package still gets the full Chromium.
    for set in "$PACKAGES" "chromium fonts-liberation"; do
        if DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $set >/dev/null 2>&1; then
            FULL=chromium
            break
        fi
    done
fi
if command -v chromium-headless-shell >/dev/null 2>&1 && [ -n "$FULL" ]; then exit 0; fi
if [ -n "$FULL" ]; then  # works without the headless shell, at a higher CPU cost per collection
    echo "Note: Debian's chromium-headless-shell is not installed; collections run in $FULL, which costs them" >&2
    echo "about 2.5 times the CPU. Install it (as root: apt-get install --no-install-recommends chromium-headless-shell)." >&2
    exit 0
fi
echo "Chromium is missing and installing it needs root. Run, as root:" >&2
echo "    apt-get update && apt-get install -y --no-install-recommends $PACKAGES" >&2
echo "or point GLANEUR_CHROMIUM_PATH at a Chromium you have, then run make again." >&2
exit 1
