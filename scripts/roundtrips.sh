#!/usr/bin/env bash
# Measures tokend on MongoDB: MongoDB commands per HTTP request, counted from
# the emulator's --log-commands log (handshake/monitoring noise -- hello,
# isMaster, ping, endSessions, buildInfo, getParameter -- excluded), and 200
# concurrent users.createToken for one user (correctness + wall time).
# The round-trip test runs its own emulator (port 27320); the concurrent mint
# uses MONGO_URL, or an emulator started here (port 27321).
set -euo pipefail
cd "$(dirname "$0")/.."

emu=${MONGO_EMULATOR_DIR:-../shared/tools/mongo-emulator}
if [ -z "${MONGO_URL:-}" ]; then
  port=${ROUNDTRIPS_MONGO_PORT:-27321}
  uri=$("$emu/start" "$port")
  trap '"$emu/stop" "$port" >/dev/null 2>&1 || true' EXIT
  export MONGO_URL="$uri/tokend_roundtrips"
fi

cargo test --locked --test api -- --nocapture --test-threads=1 mongo_roundtrips:: concurrent_mint:: 2>&1 \
  | grep -E 'MongoDB commands|^  (GET|POST) |concurrent users.createToken|test result|error|panicked' \
  | sed -E 's/^test [^ ]+ \.\.\. //'
