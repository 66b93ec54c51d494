#!/usr/bin/env bash
# Runs a real Milvus (standalone engine from `pip install milvus==2.3.5`) for tests and local use.
#
#   scripts/milvus.sh up      start; returns once it serves a create/insert/search round trip
#                             (no-op when this instance is already healthy)
#   scripts/milvus.sh up --fresh   start on empty data (tests: nothing left from earlier runs)
#   scripts/milvus.sh down    stop it and everything it spawned
#   scripts/milvus.sh status  exit 0 when healthy, 3 when not running
#
# Environment:
#   MILVUS_PORT           gRPC port clients use (default 19530); the engine also takes the
#                         next 8 ports, so instances need MILVUS_PORT values at least 10 apart
#   MILVUS_HEALTH_PORT    HTTP port of /healthz (default 9091)
#   MILVUS_ETCD_PORT      client port of the embedded etcd (default MILVUS_PORT+10000; its peer
#                         port is the next one). The engine's default 2379/2380 would make a
#                         second instance on this machine fail.
#   MILVUS_HOME           state directory (default .local/milvus/<MILVUS_PORT>): data, logs,
#                         pidfile; one per port so a test instance never shares data with yours
#   MILVUS_START_TIMEOUT  seconds to wait for health in all (default 300; the first start
#                         unpacks the engine's binaries, which takes a while on a small machine)
#   MILVUS_STALL_TIMEOUT  seconds a started engine may stay unhealthy, and then fail to serve
#                         a create/insert/search round trip, before it is restarted (up to 3
#                         attempts; default 60)
#   MILVUS_TIME_TICK_MS   the proxy's time tick, which Strong reads wait for (default 50; the
#                         engine's own default is 200)
#   MILVUS_VENV           Python virtualenv holding the `milvus` package (default .venv)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${MILVUS_PORT:-19530}"
HEALTH_PORT="${MILVUS_HEALTH_PORT:-9091}"
ETCD_PORT="${MILVUS_ETCD_PORT:-$((PORT + 10000))}"
ETCD_PEER_PORT=$((ETCD_PORT + 1))
HOME_DIR="${MILVUS_HOME:-$ROOT/.local/milvus/$PORT}"
START_TIMEOUT="${MILVUS_START_TIMEOUT:-300}"
STALL_TIMEOUT="${MILVUS_STALL_TIMEOUT:-}"
VENV="${MILVUS_VENV:-$ROOT/.venv}"
PIDFILE="$HOME_DIR/milvus.pid"
LOG="$HOME_DIR/wrapper.log"
HEALTH_URL="http://127.0.0.1:$HEALTH_PORT/healthz"

SERVICE=milvus.sh
USAGE="up [--fresh]|down|status"
WHERE="grpc 127.0.0.1:$PORT, health $HEALTH_URL"
# The wrapper leads the process group of everything `up` starts; SIGINT is its own shutdown
# path (it terminates the engine, then exits). SIGTERM would leave the engine running.
STOP_LEADER_SIGNAL=INT
STOP_GRACE_SECS=15
# Each engine component holds an etcd session; the wrapper SIGKILLs the engine one second after
# its SIGTERM, before the components revoke them (nor do they on a crash), and a start on kept
# data waits for those leases to expire before its first create_collection (19-27 s with the
# default 30 s lifetime). A lifetime of 10 s bounds that wait; the sessions' keep-alives run
# every few seconds, so a busy machine does not lose a live one.
SESSION_TTL_SECS=10
# Strong-consistency reads (ingest decides each write on one) wait for the proxy's next time
# tick: every 200 ms by default, so each such read cost ~100-200 ms of waiting. 50 ms ticks make
# a local backfill ~1.5x faster (100 new images at -j 4: 7.5 -> 11 images/s) for a little CPU;
# a cluster or Zilliz Cloud keeps its own setting.
TIME_TICK_MS=${MILVUS_TIME_TICK_MS:-50}
# shellcheck source=lib/service.sh
source "$ROOT/scripts/lib/service.sh"

healthy() { curl -fsS --max-time 2 "$HEALTH_URL" 2>/dev/null | grep -q OK; }
ready() { healthy; }

show_logs() {
  local f
  for f in "$LOG" "$HOME_DIR/logs/milvus-stderr.log" "$HOME_DIR/logs/milvus-stdout.log"; do
    if [[ -s "$f" ]]; then
      log "---- last lines of $f ----"
      tail -n 40 "$f" >&2 || true
    fi
  done
}

cmd_up() {
  local fresh="${1:-}"
  fresh_option_only "$fresh" || return 2
  if already_up; then return 0; fi

  # The wrapper silently moves to the next free port when one is taken, which would make a
  # test talk to someone else's Milvus; refuse instead.
  require_free_ports "MILVUS_PORT / MILVUS_HEALTH_PORT / MILVUS_ETCD_PORT" \
    "$PORT" "$HEALTH_PORT" "$ETCD_PORT" "$ETCD_PEER_PORT" $(seq $((PORT + 1)) $((PORT + 8)))
  if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import milvus' 2>/dev/null; then
    log "the milvus package is not installed in $VENV (run: make setup, or $VENV/bin/pip install milvus==2.3.5)"
    return 1
  fi

  mkdir -p "$HOME_DIR"
  if [[ "$fresh" == "--fresh" ]]; then
    # Only the data: the unpacked engine binaries in bin/ are reused.
    rm -rf "$HOME_DIR/data"
    log "starting on empty data (--fresh)"
  fi
  STALL_TIMEOUT=${STALL_TIMEOUT:-60}
  deadline=$((SECONDS + START_TIMEOUT))
  for attempt in 1 2 3; do
    launch
    log "starting (pid $pid, data $HOME_DIR), waiting up to ${START_TIMEOUT}s for $HEALTH_URL"
    set +e
    wait_up
    status=$?
    set -e
    case "$status" in
      0)
        log "up: grpc 127.0.0.1:$PORT (MILVUS_URI=http://127.0.0.1:$PORT), health $HEALTH_URL"
        return 0
        ;;
      2)
        log "attempt $attempt stalled for ${STALL_TIMEOUT}s after the engine started; restarting it"
        stop_group "$pid" || true
        rm -f "$PIDFILE"
        ;;
      *)
        show_logs
        stop_group "$pid" || true
        rm -f "$PIDFILE"
        return 1
        ;;
    esac
  done
  log "not healthy after 3 attempts"
  show_logs
  return 1
}

# Starts the wrapper in its own process group; sets $pid and the pidfile.
launch() {
  : >"$LOG"
  # Milvus reads ETCD_CONFIG_PATH (= etcd.config.path) for its embedded etcd; the wrapper's
  # template has no such setting.
  cat >"$HOME_DIR/embedEtcd.yaml" <<YAML
listen-client-urls: http://127.0.0.1:$ETCD_PORT
advertise-client-urls: http://127.0.0.1:$ETCD_PORT
listen-peer-urls: http://127.0.0.1:$ETCD_PEER_PORT
initial-advertise-peer-urls: http://127.0.0.1:$ETCD_PEER_PORT
initial-cluster: default=http://127.0.0.1:$ETCD_PEER_PORT
YAML
  # Rotate the engine's logs so that startup checks below only see this run.
  rm -f "$HOME_DIR/logs/milvus-stdout.log" "$HOME_DIR/logs/milvus-stderr.log"
  # Same as `.venv/bin/milvus-server`, except that the health (metrics) port is settable:
  # the wrapper hard-codes 9091 as its starting point. The engine's internal components get
  # MILVUS_PORT+1..+8 instead of the fixed defaults every instance would compete for.
  # The wrapper probes each port with a bind() lacking SO_REUSEADDR, which fails while the last
  # run's connections linger in TIME_WAIT: it then moved the health port to the next one, and
  # a restart on kept data waited for a /healthz that was never coming (the engine, a Go
  # program, binds with SO_REUSEADDR and was serving all along). Probing as the engine binds
  # keeps every port where we asked; a port another process listens on still fails the bind.
  ETCD_CONFIG_PATH="$HOME_DIR/embedEtcd.yaml" setsid "$VENV/bin/python" -c '
import socket, sys, milvus
def try_bind_port(self, port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        return sock
    except OSError:
        sock.close()
        return None
milvus.MilvusServerConfig.try_bind_port = try_bind_port
milvus.default_server.webservice_port = int(sys.argv.pop(1))
sys.argv[0] = "milvus-server"
milvus.main()
' "$HEALTH_PORT" --data "$HOME_DIR" --proxy-port "$PORT" \
    --proxy-internal-port $((PORT + 1)) --root-coord-port $((PORT + 2)) \
    --query-coord-port $((PORT + 3)) --query-node-port $((PORT + 4)) \
    --index-coord-port $((PORT + 5)) --index-node-port $((PORT + 6)) \
    --data-coord-port $((PORT + 7)) --data-node-port $((PORT + 8)) \
    --extra-config common.session.ttl=$SESSION_TTL_SECS --extra-config proxy.timeTickInterval=$TIME_TICK_MS \
    </dev/null >>"$LOG" 2>&1 &
  pid=$!
  echo "$pid" >"$PIDFILE"
}

# 0 = serving, 1 = failed (give up), 2 = stalled (worth a restart). The engine sometimes never
# becomes healthy: its embedded etcd answers the first session registration with "leader
# changed" and a component never retries. A restart gets past it.
wait_up() {
  local engine_log="$HOME_DIR/logs/milvus-stdout.log" engine_started=""
  until healthy && port_in_use "$PORT"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "the server exited during startup"
      return 1
    fi
    # A port taken between our check and the engine's bind makes it hang, not exit.
    if grep -qs "address already in use" "$engine_log"; then
      log "the engine could not bind a port"
      return 1
    fi
    if ((SECONDS >= deadline)); then
      log "not healthy after ${START_TIMEOUT}s"
      return 1
    fi
    if [[ -z "$engine_started" && -s "$engine_log" ]]; then engine_started=$SECONDS; fi
    if [[ -n "$engine_started" ]] && ((SECONDS - engine_started >= STALL_TIMEOUT)); then
      return 2
    fi
    sleep 0.5
  done
  # Healthy is not serving: until the last run's sessions expire, the first create_collection
  # waits. Return only once a create/insert/search round trip works.
  local left=$((deadline - SECONDS))
  ((left > 0)) || return 1
  if ! python3 "$ROOT/scripts/lib/milvus-probe.py" "http://127.0.0.1:$PORT" "$((left < STALL_TIMEOUT ? left : STALL_TIMEOUT))"; then
    return 2
  fi
  return 0
}

service_main "$@"
