#!/usr/bin/env bash
# Throughput of `flow worker` processes on a PostgreSQL store, measured in one sitting:
#   1. a fan-out of CPU-bound nodes (each ~0.1 s of shell arithmetic) on 1, 2 and 4 worker
#      processes of one node at a time each: how throughput scales with worker processes;
#   2. a fan-out of trivial nodes: the cost per node of going through the queue, beside the
#      same run in one process on PostgreSQL and on sled;
#   3. scheduler failover: two `flow serve` on a schedule firing every second, the leading one
#      SIGKILLed; the time from the kill to the standby's first firing (3 trials).
# Prints the figures and the ratios. Usage: benches/workers.sh [CPU_NODES] [TRIVIAL_NODES]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cpu_nodes="${1:-40}"
trivial_nodes="${2:-200}"
cd "$root"
cargo build --release --quiet
bin="$root/target/release/flow"
server="$(scripts/postgres)"
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

fanout() { # NAME COUNT COMMAND
  {
    echo "name: $1"
    echo "nodes:"
    echo "  - { id: go, kind: trigger, type: manual }"
    for i in $(seq 1 "$2"); do
      echo "  - { id: n$i, kind: action, type: core.shell, needs: [go], with: { command: '$3' } }"
    done
  } >"$work/$1.yaml"
}
fanout cpu "$cpu_nodes" 'i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; echo $i'
fanout trivial "$trivial_nodes" 'echo 1'

database() { # NAME: a fresh database, its URL
  PGOPTIONS='-c client_min_messages=warning' psql -q "$server" -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" >/dev/null
  echo "${server%/*}/$1"
}

seconds() { # COMMAND...: wall seconds
  local start end
  start=$(date +%s.%N)
  "$@" >/dev/null 2>&1
  end=$(date +%s.%N)
  echo "$end - $start" | bc -l
}

with_workers() { # N CONCURRENCY WORKFLOW: seconds of `flow run --workers`
  local url
  url="$(database "bench_workers_$1_$2")"
  pids=()
  for w in $(seq 1 "$1"); do
    FLOW_STORE="$url" "$bin" --state "$work/state-$w" worker --concurrency "$2" --name "w$w" >/dev/null 2>&1 &
    pids+=($!)
  done
  sleep 0.5
  FLOW_STORE="$url" seconds "$bin" --state "$work/state" run --workers --concurrency 64 "$work/$3.yaml"
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
}

echo "== $cpu_nodes CPU-bound nodes on worker processes of one node at a time ($(nproc) cores)"
base=""
for n in 1 2 4; do
  t=$(with_workers "$n" 1 cpu)
  [ -z "$base" ] && base=$t
  printf '%d worker(s): %6.2f s  %5.2f nodes/s  speed-up %.2fx\n' "$n" "$t" "$(echo "$cpu_nodes / $t" | bc -l)" "$(echo "$base / $t" | bc -l)"
done

echo "== $trivial_nodes trivial nodes: cost per node"
url="$(database bench_workers_local)"
t_sled=$(seconds "$bin" --state "$work/sled" run --concurrency 64 "$work/trivial.yaml")
t_pg=$(FLOW_STORE="$url" seconds "$bin" --state "$work/pg" run --concurrency 64 "$work/trivial.yaml")
t_w=$(with_workers 4 8 trivial)
for row in "in one process, sled:$t_sled" "in one process, PostgreSQL:$t_pg" "on 4 workers (8 at once each):$t_w"; do
  t="${row##*:}"
  printf '%-34s %6.2f s  %6.2f ms/node  %5.2fx sled\n' "${row%:*}" "$t" "$(echo "$t * 1000 / $trivial_nodes" | bc -l)" "$(echo "$t / $t_sled" | bc -l)"
done

echo "== scheduler failover: two flow serve, the leader SIGKILLed"
cat >"$work/ticker.yaml" <<'YAML'
name: ticker
nodes:
  - { id: tick, kind: trigger, type: schedule, with: { cron: "* * * * * *" } }
  - { id: work, kind: action, type: core.noop, needs: [tick] }
YAML
latest_firing() { # URL: the latest scheduled run's start, in epoch seconds (0 when none)
  FLOW_STORE="$1" "$bin" --state "$work/cli" runs --json 2>/dev/null | python3 -c '
import json, sys
from datetime import datetime
runs = [r for r in json.load(sys.stdin) if r["trigger"]["fired_by"] == "schedule"]
print(max((datetime.fromisoformat(r["trigger"]["time"].replace("Z", "+00:00")).timestamp() for r in runs), default=0))'
}
for trial in 1 2 3; do
  url="$(database "bench_failover_$trial")"
  FLOW_STORE="$url" "$bin" --state "$work/serve-a" serve "$work/ticker.yaml" >/dev/null 2>&1 &
  leader=$!
  pids=("$leader")
  sleep 2
  FLOW_STORE="$url" "$bin" --state "$work/serve-b" serve "$work/ticker.yaml" >/dev/null 2>&1 &
  pids+=($!)
  sleep 3
  killed=$(date +%s.%N)
  { kill -9 "$leader"; wait "$leader"; } 2>/dev/null || true
  after=0
  for _ in $(seq 1 300); do
    sleep 0.1
    latest=$(latest_firing "$url")
    if (($(echo "$latest > $killed" | bc -l))); then
      after=$(echo "$latest - $killed" | bc -l)
      break
    fi
  done
  printf 'trial %d: first firing %.2f s after the kill\n' "$trial" "$after"
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
done
