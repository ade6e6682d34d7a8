#!/bin/sh
# A Chromium for Playwright: Playwright's own where it can download it, else Debian's package.
# glaneur.settings auto-detects which one to use (GLANEUR_CHROMIUM_PATH overrides).
set -e
if ls "${PLAYWRIGHT_BROWSERS_PATH:-$HOME/.cache/ms-playwright}"/chromium-*/chrome-linux*/chrome >/dev/null 2>&1; then exit 0; fi
for name in chromium chromium-browser google-chrome; do
    if command -v "$name" >/dev/null 2>&1; then exit 0; fi
done
echo "No Chromium found: trying Playwright's download, then Debian's package." >&2
if timeout 120 "$PY" -m playwright install chromium >/dev/null 2>&1; then exit 0; fi
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
if command -v apt-get >/dev/null 2>&1; then
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
    command -v chromium >/dev/null 2>&1 && exit 0
fi
echo "Could not install a Chromium. Install one (e.g. 'apt-get install chromium') or set GLANEUR_CHROMIUM_PATH." >&2
exit 1
