#!/usr/bin/env bash
# Runs the local AWS emulator (moto_server: S3 + SQS on one port) for tests and local use.
#
#   scripts/moto.sh up      start (no-op when this instance already answers)
#   scripts/moto.sh down    stop it and everything it spawned
#   scripts/moto.sh status  exit 0 when it answers, 3 when not running
#
# Environment:
#   MOTO_PORT           port (default 5000); clients use http://127.0.0.1:$MOTO_PORT
#   MOTO_HOME           state directory (default .local/moto/<MOTO_PORT>): pidfile and log
#   MOTO_START_TIMEOUT  seconds to wait until it answers (default 60)
#   MOTO_VENV           virtualenv holding moto[server] (default .venv)
#
# moto keeps everything in memory: `down` forgets every bucket and queue.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${MOTO_PORT:-5000}"
HOME_DIR="${MOTO_HOME:-$ROOT/.local/moto/$PORT}"
START_TIMEOUT="${MOTO_START_TIMEOUT:-60}"
VENV="${MOTO_VENV:-$ROOT/.venv}"
URL="http://127.0.0.1:$PORT"

WHERE=$URL
# shellcheck source=lib/service.sh
source "$ROOT/scripts/lib/service.sh"

# moto's own dashboard endpoint answers as soon as the server accepts requests.
ready() { curl -fsS --max-time 2 -o /dev/null "$URL/moto-api/" 2>/dev/null; }

cmd_up() {
  if already_up; then return 0; fi
  require_free_ports MOTO_PORT "$PORT"
  require_executable "$VENV/bin/moto_server" moto_server

  mkdir -p "$HOME_DIR"
  : >"$LOG"
  # setsid: moto leads its own process group, which catches any child (werkzeug reloader,
  # workers) even if the leader is gone.
  setsid "$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" </dev/null >>"$LOG" 2>&1 &
  pid=$!
  echo "$pid" >"$PIDFILE"
  log "starting (pid $pid), waiting up to ${START_TIMEOUT}s for $URL"
  wait_ready "$pid" "$START_TIMEOUT"
  log "up: $URL (CLIPSEARCH_S3_ENDPOINT=$URL)"
}

service_main "$@"
