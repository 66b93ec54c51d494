# Restart of the local Milvus on kept data (issue 17): BENCH_RESTART_ROUNDS (default 5) times
# `scripts/milvus.sh down` then `up`, and as many times SIGKILL of the whole engine then `up`,
# on its own ports and state directory. `up` returns once a create/insert/search round trip
# works (scripts/lib/milvus-probe.py); after each start every one of BENCH_RESTART_ROWS rows
# (default 5000) must still be there. Prints each time and the medians.
bench_milvus_restart() (
  local home port=19720 rounds=${BENCH_RESTART_ROUNDS:-5} rows=${BENCH_RESTART_ROWS:-5000}
  home=$(mktemp -d "${TMPDIR:-/tmp}/milvus-restart.XXXXXX")
  local -a env=(MILVUS_PORT=$port MILVUS_HEALTH_PORT=9120 MILVUS_ETCD_PORT=29720 MILVUS_HOME=$home)
  local rest=http://127.0.0.1:$port/v1/vector times_clean=() times_kill=() t0 how pgid
  # A subshell: its own EXIT trap stops this engine whatever happens (the caller's set -e too).
  trap 'env "${env[@]}" bash scripts/milvus.sh down >/dev/null 2>&1 || true; rm -rf "$home"' EXIT
  trap 'exit 143' TERM
  env "${env[@]}" bash scripts/milvus.sh up --fresh >/dev/null
  "$PY" - "$rest" "$rows" fill <<'PY' || return 1
import json, random, sys, urllib.request
rest, rows = sys.argv[1], int(sys.argv[2])
def call(path, body):
    req = urllib.request.Request(f"{rest}/{path}", json.dumps(body).encode(), {"Content-Type": "application/json"})
    reply = json.load(urllib.request.urlopen(req, timeout=120))
    assert reply["code"] == 200, reply
    return reply["data"]
call("collections/create", {"collectionName": "kept", "dimension": 8})
for start in range(0, rows, 1000):
    n = min(1000, rows - start)
    call("insert", {"collectionName": "kept", "data": [{"vector": [random.random() for _ in range(8)]} for _ in range(n)]})
PY
  for how in clean kill; do
    for ((i = 1; i <= rounds; i++)); do
      if [ "$how" = clean ]; then
        env "${env[@]}" bash scripts/milvus.sh down >/dev/null 2>&1
      else
        pgid=$(cat "$home/milvus.pid")
        kill -KILL -- "-$pgid"
        while kill -0 -- "-$pgid" 2>/dev/null; do sleep 0.1; done
      fi
      t0=$(date +%s.%N)
      env "${env[@]}" bash scripts/milvus.sh up >/dev/null 2>&1 || { echo "up failed after $how stop" >&2; return 1; }
      local took
      took=$(echo "$(date +%s.%N) - $t0" | bc)
      "$PY" - "$rest" "$rows" check <<'PY' || return 1
import json, sys, urllib.request
rest, rows = sys.argv[1], int(sys.argv[2])
req = urllib.request.Request(f"{rest}/query", json.dumps(
    {"collectionName": "kept", "filter": "id > 0", "outputFields": ["id"], "limit": 16384}).encode(),
    {"Content-Type": "application/json"})
reply = json.load(urllib.request.urlopen(req, timeout=120))
found = len(reply.get("data") or [])
if found != rows:
    sys.exit(f"after the restart {found} of {rows} rows are there: {str(reply)[:200]}")
PY
      echo "$how $i: up in ${took} s, all $rows rows there" >&2
      if [ "$how" = clean ]; then times_clean+=("$took"); else times_kill+=("$took"); fi
    done
  done
  "$PY" - "$rows" "${times_clean[*]}" "${times_kill[*]}" <<'PY'
import statistics, sys
rows, clean, kill = sys.argv[1], [float(x) for x in sys.argv[2].split()], [float(x) for x in sys.argv[3].split()]
print(f"\n| stop before the start | runs | median s | min s | max s | rows after each start |")
print("|---|---:|---:|---:|---:|---|")
for name, t in (("`scripts/milvus.sh down`", clean), ("SIGKILL of the whole engine", kill)):
    print(f"| {name} | {len(t)} | {statistics.median(t):.1f} | {min(t):.1f} | {max(t):.1f} | all {rows} |")
PY
)
