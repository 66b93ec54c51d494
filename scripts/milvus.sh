#!/usr/bin/env bash
# Runs a real Milvus (standalone engine from `pip install milvus==2.3.5`) for tests and local use.
#
#   scripts/milvus.sh up      start (no-op when this instance is already healthy)
#   scripts/milvus.sh down    stop it and everything it spawned
#   scripts/milvus.sh status  exit 0 when healthy, 3 when not running
#
# Environment:
#   MILVUS_PORT           gRPC port clients use (default 19530)
#   MILVUS_HEALTH_PORT    HTTP port of /healthz (default 9091)
#   MILVUS_HOME           state directory (default .local/milvus/<MILVUS_PORT>): data, logs,
#                         pidfile; one per port so a test instance never shares data with yours
#   MILVUS_START_TIMEOUT  seconds to wait for health (default 180; the first start unpacks the
#                         engine's binaries, which takes a while on a small machine)
#   MILVUS_VENV           Python virtualenv holding the `milvus` package (default .venv)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${MILVUS_PORT:-19530}"
HEALTH_PORT="${MILVUS_HEALTH_PORT:-9091}"
HOME_DIR="${MILVUS_HOME:-$ROOT/.local/milvus/$PORT}"
START_TIMEOUT="${MILVUS_START_TIMEOUT:-180}"
VENV="${MILVUS_VENV:-$ROOT/.venv}"
PIDFILE="$HOME_DIR/milvus.pid"
LOG="$HOME_DIR/wrapper.log"
HEALTH_URL="http://127.0.0.1:$HEALTH_PORT/healthz"

log() { printf 'milvus.sh: %s\n' "$*" >&2; }

# The pid recorded by `up`, if that process still exists.
running_pid() {
  [[ -f "$PIDFILE" ]] || return 1
  local pid
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

healthy() { curl -fsS --max-time 2 "$HEALTH_URL" 2>/dev/null | grep -q OK; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

show_logs() {
  local f
  for f in "$LOG" "$HOME_DIR/logs/milvus-stderr.log" "$HOME_DIR/logs/milvus-stdout.log"; do
    if [[ -s "$f" ]]; then
      log "---- last lines of $f ----"
      tail -n 40 "$f" >&2 || true
    fi
  done
}

# Every process `up` started shares one process group (the wrapper is its leader), so the
# group catches the engine even if the wrapper died without reaping it.
group_alive() { kill -0 -- "-$1" 2>/dev/null; }

stop_group() {
  local pgid="$1" i
  # SIGINT is the wrapper's own shutdown path: it terminates the engine, then exits.
  kill -INT "$pgid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do
    group_alive "$pgid" || return 0
    # Once the wrapper is gone, anything left in the group is an orphaned engine.
    if ! kill -0 "$pgid" 2>/dev/null; then kill -TERM -- "-$pgid" 2>/dev/null || true; fi
    sleep 0.1
  done
  log "process group $pgid still alive after 15 s; sending SIGKILL"
  kill -KILL -- "-$pgid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    group_alive "$pgid" || return 0
    sleep 0.1
  done
  log "could not stop process group $pgid"
  return 1
}

cmd_up() {
  if pid="$(running_pid)"; then
    if healthy; then
      log "already up (pid $pid, grpc 127.0.0.1:$PORT, health $HEALTH_URL)"
      return 0
    fi
    log "pid $pid is running but not healthy; restarting it"
    stop_group "$pid"
  elif [[ -f "$PIDFILE" ]]; then
    # A stale pidfile: the wrapper died; make sure no engine of that group lingers.
    stale="$(cat "$PIDFILE" 2>/dev/null || true)"
    if [[ "$stale" =~ ^[0-9]+$ ]] && group_alive "$stale"; then stop_group "$stale"; fi
    rm -f "$PIDFILE"
  fi

  # The wrapper silently moves to the next free port when one is taken, which would make a
  # test talk to someone else's Milvus; refuse instead.
  for p in "$PORT" "$HEALTH_PORT"; do
    if port_in_use "$p"; then
      log "port $p is already in use by another process; choose MILVUS_PORT / MILVUS_HEALTH_PORT"
      return 1
    fi
  done
  if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import milvus' 2>/dev/null; then
    log "the milvus package is not installed in $VENV (run: make setup, or $VENV/bin/pip install milvus==2.3.5)"
    return 1
  fi

  mkdir -p "$HOME_DIR"
  : >"$LOG"
  # Same as `.venv/bin/milvus-server`, except that the health (metrics) port is settable:
  # the wrapper hard-codes 9091 as its starting point.
  setsid "$VENV/bin/python" -c '
import sys, milvus
milvus.default_server.webservice_port = int(sys.argv.pop(1))
sys.argv[0] = "milvus-server"
milvus.main()
' "$HEALTH_PORT" --data "$HOME_DIR" --proxy-port "$PORT" </dev/null >>"$LOG" 2>&1 &
  pid=$!
  echo "$pid" >"$PIDFILE"
  log "starting (pid $pid, data $HOME_DIR), waiting up to ${START_TIMEOUT}s for $HEALTH_URL"

  deadline=$((SECONDS + START_TIMEOUT))
  until healthy && port_in_use "$PORT"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "the server exited during startup"
      show_logs
      group_alive "$pid" && stop_group "$pid"
      rm -f "$PIDFILE"
      return 1
    fi
    if ((SECONDS >= deadline)); then
      log "not healthy after ${START_TIMEOUT}s"
      show_logs
      stop_group "$pid" || true
      rm -f "$PIDFILE"
      return 1
    fi
    sleep 0.5
  done
  log "up: grpc 127.0.0.1:$PORT (MILVUS_URI=http://127.0.0.1:$PORT), health $HEALTH_URL"
}

cmd_down() {
  if [[ ! -f "$PIDFILE" ]]; then
    log "not running (no $PIDFILE)"
    return 0
  fi
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  if [[ "$pid" =~ ^[0-9]+$ ]] && group_alive "$pid"; then
    stop_group "$pid"
    log "stopped (pid $pid)"
  else
    log "not running (stale pidfile)"
  fi
  rm -f "$PIDFILE"
}

cmd_status() {
  if pid="$(running_pid)" && healthy; then
    log "up (pid $pid, grpc 127.0.0.1:$PORT, health $HEALTH_URL)"
    return 0
  fi
  if pid="$(running_pid)"; then
    log "process $pid exists but $HEALTH_URL is not healthy"
    return 1
  fi
  log "not running"
  return 3
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
