# Shared by scripts/milvus.sh, scripts/moto.sh and scripts/lambda.sh (sourced, not run).
#
# A local service is one process group, started with setsid and remembered in a pidfile, so that
# stopping the group catches every child (engine, workers, function processes) even when the
# leader died without reaping them: no orphans, whatever happened.
#
# The sourcing script sets HOME_DIR (its state directory) and WHERE (how to reach it, for
# messages), may set SERVICE (log prefix; default the script's name), PIDFILE and LOG (default
# HOME_DIR/<name>.pid and .log), defines `ready` (exit 0 when the service answers) and `cmd_up`, ends with
# `service_main "$@"`, and may set USAGE (the usage line's commands) and
#   STOP_LEADER_SIGNAL  signal for the leader alone (its own clean shutdown path); the rest of the
#                       group gets SIGTERM once the leader is gone. Default: SIGTERM to the group.
#   STOP_GRACE_SECS     wait before SIGKILL (default 10)

SERVICE="${SERVICE:-$(basename "$0")}"
PIDFILE="${PIDFILE:-$HOME_DIR/${SERVICE%.sh}.pid}"
LOG="${LOG:-$HOME_DIR/${SERVICE%.sh}.log}"

log() { printf '%s: %s\n' "$SERVICE" "$*" >&2; }

# The pid recorded by `up`, if that process still exists.
running_pid() {
  [[ -f "$PIDFILE" ]] || return 1
  local pid
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Exit 1, saying how to get it, when the executable PATH (what WHAT names) is missing.
require_executable() {
  [[ -x "$1" ]] && return 0
  log "$2 is not installed at $1 (run: make setup)"
  return 1
}

# Exit 1 (with a message naming the variables to change) when any of the ports is taken.
require_free_ports() {
  local vars="$1" p
  shift
  for p in "$@"; do
    if port_in_use "$p"; then
      log "port $p is already in use by another process; choose $vars"
      return 1
    fi
  done
}

# For `up [--fresh]`: fails, saying so, on any other argument.
fresh_option_only() {
  if [[ -n "${1:-}" && "$1" != "--fresh" ]]; then
    log "unknown option $1 (expected --fresh)"
    return 2
  fi
}

group_alive() { kill -0 -- "-$1" 2>/dev/null; }

stop_group() {
  local pgid="$1" grace=$((${STOP_GRACE_SECS:-10} * 10)) i
  if [[ -n "${STOP_LEADER_SIGNAL:-}" ]]; then
    kill "-$STOP_LEADER_SIGNAL" "$pgid" 2>/dev/null || true
  else
    kill -TERM -- "-$pgid" 2>/dev/null || true
  fi
  for ((i = 0; i < grace; i++)); do
    group_alive "$pgid" || return 0
    if [[ -n "${STOP_LEADER_SIGNAL:-}" ]] && ! kill -0 "$pgid" 2>/dev/null; then
      kill -TERM -- "-$pgid" 2>/dev/null || true
    fi
    sleep 0.1
  done
  log "process group $pgid still alive after ${STOP_GRACE_SECS:-10} s; sending SIGKILL"
  kill -KILL -- "-$pgid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    group_alive "$pgid" || return 0
    sleep 0.1
  done
  log "could not stop process group $pgid"
  return 1
}

# For `up`: exit 0 when this instance is already up and answering. Otherwise clears what an
# earlier run left (a running but unresponsive group, a stale pidfile's group) and exits 1.
already_up() {
  local pid stale
  if pid="$(running_pid)"; then
    if ready; then
      log "already up (pid $pid, $WHERE)"
      return 0
    fi
    log "pid $pid is running but does not answer; restarting it"
    stop_group "$pid" || true
  elif [[ -f "$PIDFILE" ]]; then
    stale="$(cat "$PIDFILE" 2>/dev/null || true)"
    if [[ "$stale" =~ ^[0-9]+$ ]] && group_alive "$stale"; then stop_group "$stale" || true; fi
  fi
  rm -f "$PIDFILE"
  return 1
}

# Waits until `ready`, for at most $2 seconds, for the group led by $1. On failure it shows the
# log, stops the group and removes the pidfile.
wait_ready() {
  local pid="$1" timeout="$2" deadline
  deadline=$((SECONDS + timeout))
  until ready; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "it exited during startup; last lines of $LOG:"
      tail -n 40 "$LOG" >&2 || true
      if group_alive "$pid"; then stop_group "$pid" || true; fi
      rm -f "$PIDFILE"
      return 1
    fi
    if ((SECONDS >= deadline)); then
      log "no answer after ${timeout}s; last lines of $LOG:"
      tail -n 40 "$LOG" >&2 || true
      stop_group "$pid" || true
      rm -f "$PIDFILE"
      return 1
    fi
    sleep 0.3
  done
}

cmd_down() {
  local pid
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
  local pid
  if pid="$(running_pid)" && ready; then
    log "up (pid $pid, $WHERE)"
    return 0
  fi
  if pid="$(running_pid)"; then
    log "process $pid exists but does not answer ($WHERE)"
    return 1
  fi
  log "not running"
  return 3
}

# The command line every service script takes: up [ARGS] | down | status.
service_main() {
  local command="${1:-}"
  shift || true
  case "$command" in
    up) cmd_up "$@" ;;
    down) cmd_down ;;
    status) cmd_status ;;
    *)
      echo "usage: $0 ${USAGE:-up|down|status}" >&2
      exit 2
      ;;
  esac
}
