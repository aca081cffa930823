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
# and prints flow's time, DuckDB's, and their ratio per step; then how the whole workflow
# grew from the smallest size to the largest.
#
# Each size's outputs (every file the run wrote but the report page, with the run's id and the
# generation time blanked) are fingerprinted into target/bench-segmentation/LINES/outputs.sha256. The first fingerprint
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

  # Fingerprint of the outputs, against the baseline.
  # The run's id (in message ids and the summary) and the summary's generation time differ from
  # run to run by design; they are blanked before hashing.
  python3 - "$work/out" "$work/run.json" >"$work/outputs.sha256" <<'PY'
import hashlib, json, os, re, sys
out, run = sys.argv[1], json.load(open(sys.argv[2]))
for root, _, files in sorted(os.walk(out)):
    for name in sorted(files):
        if name.startswith("report."):
            continue
        path = os.path.join(root, name)
        data = open(path, "rb").read().replace(run["run"]["id"].encode(), b"RUN")
        data = re.sub(rb'"generated_at": *"[^"]*"', b'"generated_at": ""', data)
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

  $py - "$work/data/transactions.csv" "$work/run.json" "$lines" "$wall" "$rss" "$summary" <<'PY'
import json, sys, time
import duckdb

path, run_json, lines, wall, rss, summary = sys.argv[1:]
run = json.load(open(run_json))
node_ms = {n["node_id"]: (n.get("duration_ms") or 0) for n in run["nodes"]}
flow = {"extract": node_ms["transactions"] / 1000, "metrics": node_ms["metrics"] / 1000}
flow["extract+metrics"] = flow["extract"] + flow["metrics"]
print("  slowest nodes: " + ", ".join(
    f"{k} {v / 1000:.2f} s" for k, v in sorted(node_ms.items(), key=lambda kv: -kv[1])[:6]))

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

def best(sql, fetch):
    times = []
    for _ in range(3):
        start = time.perf_counter()
        cur = con.execute(sql)
        if fetch:
            cur.fetchall()
        times.append(time.perf_counter() - start)
    return min(times)

duck = {}
for threads in (1, 2):
    con.execute(f"PRAGMA threads={threads}")
    e = best(extract, False)
    m = best(metrics, True)
    duck[threads] = {"extract": e, "metrics": m, "extract+metrics": e + m}
print(f"  {'step':<16} {'flow':>8} {'duckdb 1t':>10} {'ratio':>6} {'duckdb 2t':>10} {'ratio':>6}   (duckdb {duckdb.__version__}, best of 3)")
for step in ("extract", "metrics", "extract+metrics"):
    f, d1, d2 = flow[step], duck[1][step], duck[2][step]
    print(f"  {step:<16} {f:>7.2f}s {d1:>9.2f}s {f / d1:>5.2f}x {d2:>9.2f}s {f / d2:>5.2f}x")
with open(summary, "a") as out:
    out.write(f"{lines} {wall} {rss} {flow['extract+metrics']} {duck[2]['extract+metrics']}\n")
PY
done

if [ "${#sizes[@]}" -gt 1 ]; then
  echo "== growth from the smallest size to the largest"
  sort -n "$summary" | awk 'NR == 1 { l0 = $1; w0 = $2; f0 = $4; d0 = $5 } { l = $1; w = $2; r = $3; f = $4; d = $5 }
    END { printf "  %.0fx the lines: whole workflow %.2fx the time (peak RSS %.0f MB at the largest), extract+metrics %.2fx (DuckDB 2 threads %.2fx)\n", l / l0, w / w0, r / 1024, f / f0, d / d0 }'
fi
