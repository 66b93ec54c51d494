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
PIDFILE="$HOME_DIR/moto.pid"
LOG="$HOME_DIR/moto.log"
URL="http://127.0.0.1:$PORT"

log() { printf 'moto.sh: %s\n' "$*" >&2; }

running_pid() {
  [[ -f "$PIDFILE" ]] || return 1
  local pid
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

# moto's own dashboard endpoint answers as soon as the server accepts requests.
answers() { curl -fsS --max-time 2 -o /dev/null "$URL/moto-api/" 2>/dev/null; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# `up` starts moto with setsid, so it leads its own process group: the group catches any
# child (werkzeug reloader, workers) even if the leader is gone.
group_alive() { kill -0 -- "-$1" 2>/dev/null; }

stop_group() {
  local pgid="$1" i
  kill -TERM -- "-$pgid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    group_alive "$pgid" || return 0
    sleep 0.1
  done
  log "process group $pgid still alive after 10 s; sending SIGKILL"
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
    if answers; then
      log "already up (pid $pid, $URL)"
      return 0
    fi
    log "pid $pid is running but does not answer; restarting it"
    stop_group "$pid"
  elif [[ -f "$PIDFILE" ]]; then
    stale="$(cat "$PIDFILE" 2>/dev/null || true)"
    if [[ "$stale" =~ ^[0-9]+$ ]] && group_alive "$stale"; then stop_group "$stale"; fi
    rm -f "$PIDFILE"
  fi
  if port_in_use "$PORT"; then
    log "port $PORT is already in use by another process; choose MOTO_PORT"
    return 1
  fi
  if [[ ! -x "$VENV/bin/moto_server" ]]; then
    log "moto_server is not installed in $VENV (run: make setup)"
    return 1
  fi

  mkdir -p "$HOME_DIR"
  : >"$LOG"
  setsid "$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" </dev/null >>"$LOG" 2>&1 &
  pid=$!
  echo "$pid" >"$PIDFILE"
  log "starting (pid $pid), waiting up to ${START_TIMEOUT}s for $URL"
  deadline=$((SECONDS + START_TIMEOUT))
  until answers; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "moto_server exited during startup; last lines of $LOG:"
      tail -n 40 "$LOG" >&2 || true
      group_alive "$pid" && stop_group "$pid"
      rm -f "$PIDFILE"
      return 1
    fi
    if ((SECONDS >= deadline)); then
      log "no answer after ${START_TIMEOUT}s; last lines of $LOG:"
      tail -n 40 "$LOG" >&2 || true
      stop_group "$pid" || true
      rm -f "$PIDFILE"
      return 1
    fi
    sleep 0.2
  done
  log "up: $URL (CLIPSEARCH_S3_ENDPOINT=$URL)"
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
  if pid="$(running_pid)" && answers; then
    log "up (pid $pid, $URL)"
    return 0
  fi
  if pid="$(running_pid)"; then
    log "process $pid exists but $URL does not answer"
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
