#!/usr/bin/env bash
# Runs Milvus Lite (the newest Milvus engine reachable here, `milvus-lite` from PyPI) as a server
# on loopback TCP, so the same gRPC client code runs on it as on the Milvus 2.3.5 standalone
# engine of scripts/milvus.sh. `make test` runs the store's tests on both (docs/engines.md).
#
#   scripts/milvus-lite.sh up [--fresh]   start (no-op when this instance already answers);
#                                         --fresh: on empty data
#   scripts/milvus-lite.sh down           stop it
#   scripts/milvus-lite.sh status         exit 0 when it answers, 3 when not running
#
# Environment:
#   MILVUS_LITE_PORT    gRPC port clients use (default 19650)
#   MILVUS_LITE_HOME    state directory (default .local/milvus-lite/<port>): data/, pidfile, log
#   MILVUS_LITE_VENV    virtualenv holding milvus-lite (default .venv-milvus-lite, make setup)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${MILVUS_LITE_PORT:-19650}"
HOME_DIR="${MILVUS_LITE_HOME:-$ROOT/.local/milvus-lite/$PORT}"
VENV="${MILVUS_LITE_VENV:-$ROOT/.venv-milvus-lite}"
USAGE="up [--fresh]|down|status"
WHERE="grpc 127.0.0.1:$PORT"
# shellcheck source=lib/service.sh
source "$ROOT/scripts/lib/service.sh"

# The server prints this line once its gRPC port accepts calls.
ready() { port_in_use "$PORT" && grep -qs "gRPC server listening" "$LOG"; }

cmd_up() {
  local fresh="${1:-}"
  fresh_option_only "$fresh" || return 2
  if already_up; then return 0; fi
  require_free_ports MILVUS_LITE_PORT "$PORT"
  require_executable "$VENV/bin/milvus-lite" milvus-lite
  mkdir -p "$HOME_DIR"
  [[ "$fresh" == "--fresh" ]] && rm -rf "$HOME_DIR/data"
  : >"$LOG"
  PYTHONUNBUFFERED=1 setsid "$VENV/bin/milvus-lite" server --data-dir "$HOME_DIR/data" \
    --host 127.0.0.1 --port "$PORT" </dev/null >>"$LOG" 2>&1 &
  pid=$!
  echo "$pid" >"$PIDFILE"
  log "starting (pid $pid, data $HOME_DIR/data)"
  wait_ready "$pid" 60
  log "up: grpc 127.0.0.1:$PORT (MILVUS_URI=http://127.0.0.1:$PORT)"
}

service_main "$@"
