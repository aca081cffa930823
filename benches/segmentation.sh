#!/usr/bin/env bash
# The default workflow at scale, beside DuckDB, in one sitting.
#
#   benches/segmentation.sh [LINES...]        (default: 1000000 10000000)
#
# For each size: generates data with `flow sample-data` (customers = lines / 10, 5,000
# products, seed 7), runs workflows/segmentation.yaml on it under /usr/bin/time (wall time,
# CPU time, peak memory) and reads each node's time from the run record; then DuckDB computes
# the same steps from the same CSV, with 1 and with 2 threads (best of 3):
#   extract  = reading the CSV into a table       (flow: `transactions`, pos.extract)
#   metrics  = the per-customer aggregates         (flow: `metrics`, which also fits RFM,
#              orders, purchase days, spend,         BG/NBD and Gamma-Gamma on them)
#              first/last purchase, AOV
# flow's steps are timed in a workflow of just those nodes (the shipped workflow cut after
# `metrics`), best of 3 like DuckDB's, so that no other node shares the cores; the wait between
# the two nodes (the checkpoint of `transactions`) is printed too. flow's and DuckDB's runs
# alternate, three rounds of each, so that a slow minute on the machine does not fall on one
# side only. It prints flow's time,
# DuckDB's, and their ratio per step; then how long a resume takes after the last node (deploy)
# failed, against that node's own time and the whole run; then how the whole workflow grew from
# the smallest size to the largest.
#
# Each size's outputs (every file the run wrote but the report page, with the run's id, the
# generation time and the dates that follow from the day of the run blanked) are fingerprinted into target/bench-segmentation/LINES/outputs.sha256. The first fingerprint
# is kept as the baseline (outputs.baseline); later runs say whether they are byte-identical to
# it. `BASELINE=reset benches/segmentation.sh` starts the baselines over.
#
# Installs DuckDB's Python package into a venv under target/ when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

sizes=("$@")
[ ${#sizes[@]} -eq 0 ] && sizes=(1000000 10000000)

cargo build --release --quiet
flow=$PWD/target/release/flow

py=python3
if ! $py -c 'import duckdb' 2>/dev/null; then
  if [ ! -x target/bench-venv/bin/python ] || ! target/bench-venv/bin/python -c 'import duckdb' 2>/dev/null; then
    python3 -m venv target/bench-venv
    target/bench-venv/bin/pip install --quiet duckdb
  fi
  py=target/bench-venv/bin/python
fi

summary=$(mktemp)
trap 'rm -f "$summary"' EXIT

for lines in "${sizes[@]}"; do
  customers=$((lines / 10))
  products=5000
  work=target/bench-segmentation/$lines
  mkdir -p "$work"
  if [ ! -f "$work/data/transactions.csv" ]; then
    "$flow" sample-data --customers "$customers" --products "$products" --lines "$lines" \
      --seed 7 --out "$work/data" >/dev/null
  fi
  # The shipped workflow, but messages go to one CSV per segment instead of one .eml file per
  # customer: at this scale that is tens of thousands of small files, which measures the disk.
  sed -e 's/messages: eml/messages: csv/' workflows/segmentation.yaml >"$work/segmentation.yaml"
  rm -rf "$work/.flow" "$work/out"

  echo "== flow run: $lines lines, $customers customers, $products products"
  /usr/bin/time -f "%e %U %S %M" -o "$work/time.txt" \
    "$flow" --state "$work/.flow" run "$work/segmentation.yaml" >"$work/run.txt" 2>"$work/run.err" \
    || { cat "$work/run.err"; exit 1; }
  read -r wall user sys rss <"$work/time.txt"
  printf '  whole workflow: %.2f s wall, %.2f s CPU (%.2f cores busy), peak RSS %.0f MB\n' \
    "$wall" "$(echo "$user + $sys" | bc -l)" "$(echo "($user + $sys) / $wall" | bc -l)" "$(echo "$rss / 1024" | bc -l)"
  "$flow" --state "$work/.flow" runs show last --json >"$work/run.json"

  # extract + metrics alone: a workflow of just those nodes, run beside DuckDB below.
  python3 - "$work/segmentation.yaml" "$work/steps.yaml" <<'PY'
import re, sys
head, nodes = open(sys.argv[1]).read().split("\nnodes:\n", 1)
keep = [n for n in re.split(r"\n(?=  - id: )", nodes)
        if re.match(r"\s*- id: (daily|transactions|metrics)\b", n)]
open(sys.argv[2], "w").write(head + "\nnodes:\n" + "\n".join(keep) + "\n")
PY

  # Resume after the last node failed: deploy cannot write into a file where its directory
  # should be; the file is removed and the run resumed.
  blocked=$PWD/$work/blocked
  rm -rf "$blocked" && : >"$blocked"
  if "$flow" --state "$work/.flow" run "$work/segmentation.yaml" --param "out_dir=$blocked" >/dev/null 2>&1; then
    echo "  resume: the run meant to fail at deploy succeeded" >&2
    exit 1
  fi
  rm -f "$blocked"
  /usr/bin/time -f "%e" -o "$work/resume.time" "$flow" --state "$work/.flow" resume last >/dev/null 2>&1
  "$flow" --state "$work/.flow" runs show last --json >"$work/resume.json"
  rm -rf "$blocked"

  # Fingerprint of the outputs, against the baseline.
  # The run's id (in message ids and the summary), the summary's generation time and the dates
  # that follow from the day of the run (the output folder's name, the sends' dates and their
  # attribution windows) differ from run to run by design; they are blanked before hashing.
  python3 - "$work/out" "$work/run.json" >"$work/outputs.sha256" <<'PY'
import hashlib, json, os, re, sys
out, run = sys.argv[1], json.load(open(sys.argv[2]))
for root, _, files in sorted(os.walk(out)):
    for name in sorted(files):
        if name.startswith("report."):
            continue
        path = os.path.join(root, name)
        day = os.path.relpath(path, out).split(os.sep, 1)[0].encode()
        data = open(path, "rb").read().replace(run["run"]["id"].encode(), b"RUN")
        data = re.sub(rb'"generated_at": *"[^"]*"', b'"generated_at": ""', data)
        data = re.sub(rb'("(?:sent_on|window_end)": *"|window opens )[0-9-]{10}', rb"\1DATE", data)
        data = data.replace(day, b"DAY")
        print(hashlib.sha256(data).hexdigest(), os.path.relpath(path, out).split(os.sep, 1)[-1])
PY
  if [ "${BASELINE:-}" = reset ] || [ ! -f "$work/outputs.baseline" ]; then
    cp "$work/outputs.sha256" "$work/outputs.baseline"
    outputs="baseline recorded ($(wc -l <"$work/outputs.sha256") files)"
  elif cmp -s "$work/outputs.sha256" "$work/outputs.baseline"; then
    outputs="byte-identical to the baseline ($(wc -l <"$work/outputs.sha256") files)"
  else
    outputs="DIFFERENT from the baseline: $(diff "$work/outputs.baseline" "$work/outputs.sha256" | grep -c '^>' || true) files changed"
  fi
  echo "  outputs: $outputs"

  $py - "$work/data/transactions.csv" "$work/run.json" "$lines" "$wall" "$rss" "$summary" "$work" "$(cat "$work/resume.time")" "$flow" <<'PY'
import datetime, json, shutil, subprocess, sys, time
import duckdb

path, run_json, lines, wall, rss, summary, work, resume_wall, flow_bin = sys.argv[1:]
run = json.load(open(run_json))
node_ms = {n["node_id"]: (n.get("duration_ms") or 0) for n in run["nodes"]}
print("  slowest nodes: " + ", ".join(
    f"{k} {v / 1000:.2f} s" for k, v in sorted(node_ms.items(), key=lambda kv: -kv[1])[:6]))

def at(s):
    return datetime.datetime.fromisoformat(s[:26].rstrip("Z"))

resumed = json.load(open(f"{work}/resume.json"))
deploy = next(n for n in resumed["nodes"] if n["node_id"] == "deploy")
deploy_s = (deploy.get("duration_ms") or 0) / 1000
overhead = float(resume_wall) - deploy_s
print(f"  resume after deploy failed: {float(resume_wall):.2f} s wall, deploy itself {deploy_s:.2f} s,"
      f" the rest {overhead:.2f} s = {100 * overhead / float(wall):.1f}% of the whole run (target: at most 5%)")

con = duckdb.connect()
# Typed as flow reads them; rows that do not parse are skipped (flow: on_bad_rows: skip).
extract = f"""CREATE OR REPLACE TABLE t AS SELECT * FROM read_csv('{path}', header = true,
  ignore_errors = true, columns = {{'order_id': 'VARCHAR', 'customer_id': 'VARCHAR',
  'date': 'TIMESTAMP', 'product_id': 'VARCHAR', 'category': 'VARCHAR', 'quantity': 'DOUBLE',
  'unit_price': 'DOUBLE', 'amount': 'DOUBLE'}})"""
metrics = """
  SELECT customer_id,
         count(DISTINCT order_id) AS orders,
         count(DISTINCT CAST(date AS DATE)) AS purchase_days,
         sum(amount) AS total_spend,
         min(CAST(date AS DATE)) AS first_purchase,
         max(CAST(date AS DATE)) AS last_purchase,
         sum(amount) / count(DISTINCT order_id) AS avg_order_value
  FROM t GROUP BY customer_id
"""

def timed(sql, fetch):
    start = time.perf_counter()
    cur = con.execute(sql)
    if fetch:
        cur.fetchall()
    return time.perf_counter() - start

def flow_steps():
    state = f"{work}/.flow-steps"
    shutil.rmtree(state, ignore_errors=True)
    subprocess.run([flow_bin, "--state", state, "run", f"{work}/steps.yaml"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    shown = subprocess.run([flow_bin, "--state", state, "runs", "show", "last", "--json"],
                           capture_output=True, check=True).stdout
    shutil.rmtree(state, ignore_errors=True)
    nodes = {n["node_id"]: n for n in json.loads(shown)["nodes"]}
    t, m = nodes["transactions"], nodes["metrics"]
    return {
        "extract": (at(t["finished_at"]) - at(t["started_at"])).total_seconds(),
        "checkpoint": (at(m["started_at"]) - at(t["finished_at"])).total_seconds(),
        "metrics": (at(m["finished_at"]) - at(m["started_at"])).total_seconds(),
    }

# Three rounds, each running flow's two steps, then DuckDB's with 1 and with 2 threads: the
# machine's speed drifts from minute to minute, and alternating keeps a slow minute from
# falling on one side only. Each figure is the best of its three.
rounds = {"flow": [], 1: [], 2: []}
for _ in range(3):
    rounds["flow"].append(flow_steps())
    for threads in (1, 2):
        con.execute(f"PRAGMA threads={threads}")
        rounds[threads].append({"extract": timed(extract, False), "metrics": timed(metrics, True)})

def best(runs, keys):
    b = {k: min(r[k] for r in runs) for k in keys}
    b["extract+metrics"] = b["extract"] + b["metrics"]
    return b

flow = best(rounds["flow"], ("extract", "checkpoint", "metrics"))
duck = {threads: best(rounds[threads], ("extract", "metrics")) for threads in (1, 2)}
print(f"  {'step':<16} {'flow':>8} {'duckdb 1t':>10} {'ratio':>6} {'duckdb 2t':>10} {'ratio':>6}   (duckdb {duckdb.__version__}; both best of 3)")
for step in ("extract", "metrics", "extract+metrics"):
    f, d1, d2 = flow[step], duck[1][step], duck[2][step]
    print(f"  {step:<16} {f:>7.2f}s {d1:>9.2f}s {f / d1:>5.2f}x {d2:>9.2f}s {f / d2:>5.2f}x")
print(f"  (flow waits {flow['checkpoint']:.2f} s between the two for the checkpoint of `transactions`)")
with open(summary, "a") as out:
    out.write(f"{lines} {wall} {rss} {flow['extract+metrics']} {duck[2]['extract+metrics']}\n")
PY
done

if [ "${#sizes[@]}" -gt 1 ]; then
  echo "== growth from the smallest size to the largest"
  sort -n "$summary" | awk 'NR == 1 { l0 = $1; w0 = $2; f0 = $4; d0 = $5 } { l = $1; w = $2; r = $3; f = $4; d = $5 }
    END { printf "  %.0fx the lines: whole workflow %.2fx the time (peak RSS %.0f MB at the largest), extract+metrics %.2fx (DuckDB 2 threads %.2fx)\n", l / l0, w / w0, r / 1024, f / f0, d / d0 }'
fi
