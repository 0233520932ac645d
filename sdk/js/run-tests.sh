#!/bin/sh
# The SDK's suite, as scripts/test.sh runs it: compile src/ with the pinned
# tsc, then every test file under node's built-in runner. Offline once
# `scripts/deps.sh js` has installed Node.js 20 and node_modules.
set -eu
cd "$(dirname "$0")"
if [ ! -x node_modules/.bin/tsc ]; then
    echo "sdk (js): node_modules is missing: run scripts/deps.sh js (npm ci from package-lock.json)" >&2
    exit 1
fi
node_modules/.bin/tsc -p tsconfig.json
exec node --test test/*.test.mjs
