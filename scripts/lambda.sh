#!/usr/bin/env bash
# Runs the Lambda emulator (`cargo lambda watch --release`) serving every function of the
# workspace (ingest, search) for tests and local use.
#
#   scripts/lambda.sh up      build the functions, start the emulator, wait until it answers
#   scripts/lambda.sh down    stop it and every function process it started
#   scripts/lambda.sh status  exit 0 when it answers, 3 when not running
#
# Invoke:        POST http://127.0.0.1:$LAMBDA_PORT/2015-03-31/functions/<name>/invocations
# Function URLs: http://127.0.0.1:$LAMBDA_PORT/lambda-url/<name>/...
#
# The functions inherit this script's environment (MILVUS_URI, CLIPSEARCH_*, AWS_*, ...), so
# export their settings before `up`; LAMBDA_ENV_FILE adds KEY=VALUE lines on top.
#
# Environment:
#   LAMBDA_PORT           invoke port (default 9000)
#   LAMBDA_ADDRESS        address to listen on (default 127.0.0.1; 0.0.0.0 lets containers
#                         reach it, e.g. the MinIO webhook in docker-compose.yml)
#   LAMBDA_HOME           state directory (default .local/lambda/<LAMBDA_PORT>): pidfile, log
#   LAMBDA_START_TIMEOUT  seconds to wait for the build and the emulator (default 900: a cold
#                         release build on a small machine is slow)
#   LAMBDA_RELOAD         1 = rebuild and restart functions when sources change (default 0:
#                         stable for tests while others edit the tree)
#   LAMBDA_ENV_FILE       passed as --env-file when set
#   LAMBDA_CONCURRENCY    function instances per function the emulator may run at once
#                         (default 1; each loads its own model, so memory grows with it)
#   CARGO_LAMBDA          the cargo-lambda executable (default .venv/bin/cargo-lambda)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${LAMBDA_PORT:-9000}"
HOME_DIR="${LAMBDA_HOME:-$ROOT/.local/lambda/$PORT}"
START_TIMEOUT="${LAMBDA_START_TIMEOUT:-900}"
CARGO_LAMBDA="${CARGO_LAMBDA:-$ROOT/.venv/bin/cargo-lambda}"
URL="http://127.0.0.1:$PORT"

WHERE=$URL
# shellcheck source=lib/service.sh
source "$ROOT/scripts/lib/service.sh"

# Any HTTP status means the emulator's server is listening (an unknown path is a 404).
ready() { curl -sS --max-time 2 -o /dev/null "$URL/" 2>/dev/null; }

cmd_up() {
  if already_up; then return 0; fi
  require_free_ports LAMBDA_PORT "$PORT"
  require_executable "$CARGO_LAMBDA" cargo-lambda

  mkdir -p "$HOME_DIR"
  # Build first, in the foreground: the emulator would otherwise compile on the first
  # invocation, and that request would time out. The emulator runs `cargo run --release --bin
  # NAME`, one function at a time; the same selection here makes those runs no-ops (and the
  # dependency features are aligned so this matches `make setup`'s workspace build too).
  for fn in ingest search; do
    log "building $fn (cargo build --release --bin $fn)"
    (cd "$ROOT" && cargo build --release --quiet --bin "$fn")
  done

  local args=(lambda watch --release --quiet -P "$PORT" -A "${LAMBDA_ADDRESS:-127.0.0.1}"
    --concurrency "${LAMBDA_CONCURRENCY:-1}")
  [[ "${LAMBDA_RELOAD:-0}" == 1 ]] || args+=(--ignore-changes)
  [[ -n "${LAMBDA_ENV_FILE:-}" ]] && args+=(--env-file "$LAMBDA_ENV_FILE")
  : >"$LOG"
  (cd "$ROOT" && exec setsid "$CARGO_LAMBDA" "${args[@]}" </dev/null >>"$LOG" 2>&1) &
  pid=$!
  echo "$pid" >"$PIDFILE"
  log "starting (pid $pid), waiting up to ${START_TIMEOUT}s for $URL"
  wait_ready "$pid" "$START_TIMEOUT"
  log "up: $URL (invoke: POST $URL/2015-03-31/functions/<name>/invocations; log $LOG)"
}

service_main "$@"
