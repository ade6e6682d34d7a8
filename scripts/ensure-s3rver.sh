#!/bin/sh
# s3rver, the second S3 server of tests/e2e/test_storage_s3.py: an implementation written apart from moto
# (Node.js), which ignores conditional writes as several S3-compatible stores do. npm installs the version
# that tests/s3rver/package-lock.json pins into tests/s3rver/node_modules; nothing system-wide.
set -e
DIR="$(cd "$(dirname "$0")/../tests/s3rver" && pwd)"
if [ -d "$DIR/node_modules/s3rver" ]; then exit 0; fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "Node.js and npm not found: the s3rver half of tests/e2e/test_storage_s3.py needs them" \
         "(Debian: apt-get install nodejs npm)." >&2
    exit 0
fi
npm ci --prefix "$DIR" --no-audit --no-fund --loglevel=error >/dev/null
echo "s3rver $(node -p "require('$DIR/node_modules/s3rver/package.json').version") put in $DIR/node_modules"
