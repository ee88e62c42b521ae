# Sourced by the real-client checks (scripts/rc-client-test,
# scripts/rc-api-client-test): builds tokend and starts it for one client run.
#
# tokend_start builds the binary, copies it into a private temporary directory
# (so a concurrent build cannot swap it), starts it there on a free loopback
# port with a known admin and a throwaway embedded store (or MONGO_URL with
# RC_CLIENT_USE_MONGO=1), waits for /healthz and exports:
#
#   TOKEND_URL  TOKEND_ADMIN_USER  TOKEND_ADMIN_PASS  TOKEND_TOKEN_SECRET
#
# It installs an EXIT trap that stops tokend and removes the directory.
# tokend_log_tail prints the end of tokend's log (for a failure report).
# Needs: cargo, python3 (TUT_PY overrides the interpreter), a `say` function.

tut_work=""
tut_pid=""

tut_cleanup() {
  if [ -n "$tut_pid" ] && kill -0 "$tut_pid" 2>/dev/null; then
    kill -TERM "$tut_pid" 2>/dev/null || true
    wait "$tut_pid" 2>/dev/null || true
  fi
  [ -n "$tut_work" ] && rm -rf "$tut_work"
}

tokend_log_tail() {
  tail -n 40 "$tut_work/tokend.log" >&2
}

tokend_start() {
  local py=${TUT_PY:-python3}
  cargo build --locked --quiet --bin tokend
  local target_dir
  target_dir=$(cargo metadata --format-version 1 --no-deps \
    | "$py" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')

  tut_work=$(mktemp -d)
  trap tut_cleanup EXIT
  cp "$target_dir/debug/tokend" "$tut_work/tokend"

  local port secret admin_pass
  port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  secret=$("$py" -c 'import secrets; print(secrets.token_urlsafe(24))')
  admin_pass=$("$py" -c 'import secrets; print(secrets.token_urlsafe(18))')

  local env_vars=(
    PATH="$PATH" HOME="$HOME"
    BIND_IP=127.0.0.1 PORT="$port" LOG_FORMAT=json RUST_LOG=info
    ADMIN_USERNAME=rcadmin ADMIN_PASS="$admin_pass" ADMIN_EMAIL=rcadmin@example.org
    CREATE_TOKENS_FOR_USERS_SECRET="$secret"
  )
  if [ "${RC_CLIENT_USE_MONGO:-}" = 1 ] && [ -n "${MONGO_URL:-}" ]; then
    env_vars+=(MONGO_URL="$MONGO_URL")
    say "store: MongoDB (MONGO_URL)"
  else
    say "store: embedded"
  fi

  # Started from an empty directory, so no developer .env is read.
  (cd "$tut_work" && exec env -i "${env_vars[@]}" ./tokend >"$tut_work/tokend.log" 2>&1) &
  tut_pid=$!

  local url="http://127.0.0.1:$port"
  if ! "$py" - "$url" "$tut_pid" <<'PY'
import os, sys, time, urllib.request
url, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("tokend exited before it was healthy")
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.2)
sys.exit("tokend was not healthy within 60 s")
PY
  then
    say "tokend did not start; its log:"
    tokend_log_tail
    exit 1
  fi
  say "tokend healthy at $url"
  export TOKEND_URL="$url" TOKEND_ADMIN_USER=rcadmin TOKEND_ADMIN_PASS="$admin_pass" \
    TOKEND_TOKEN_SECRET="$secret"
}
