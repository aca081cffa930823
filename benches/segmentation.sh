#!/usr/bin/env bash
# Benchmark of the default workflow at scale, and of its metrics step against DuckDB.
#
#   benches/segmentation.sh [LINES] [CUSTOMERS] [PRODUCTS]     (default 1000000 100000 5000)
#
# Generates data with `flow sample-data`, runs workflows/segmentation.yaml on it with
# /usr/bin/time (wall time, peak memory), prints each node's time, then times DuckDB computing
# the same per-customer aggregates (orders, purchase days, spend, first/last purchase, AOV) from the
# same CSV. Installs DuckDB's Python package into a venv under target/ if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

lines=${1:-1000000}
customers=${2:-100000}
products=${3:-5000}
work=target/bench-segmentation/$lines
mkdir -p "$work"

cargo build --release --quiet
flow=$PWD/target/release/flow

if [ ! -f "$work/data/transactions.csv" ]; then
  "$flow" sample-data --customers "$customers" --products "$products" --lines "$lines" \
    --seed 7 --out "$work/data"
fi
# The shipped workflow, but messages go to one CSV per segment instead of one .eml file per
# customer: at this scale that is tens of thousands of small files, which measures the disk.
sed -e 's/messages: eml/messages: csv/' workflows/segmentation.yaml > "$work/segmentation.yaml"
rm -rf "$work/.flow" "$work/out"

echo "== flow run ($lines lines, $customers customers, $products products)"
/usr/bin/time -f "wall %e s, peak RSS %M KB, user %U s, sys %S s" \
  "$flow" --state "$work/.flow" run "$work/segmentation.yaml" > "$work/run.txt" 2> "$work/run.err" \
  || { cat "$work/run.err"; exit 1; }
tail -n 1 "$work/run.err"
"$flow" --state "$work/.flow" runs show last --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
for n in sorted(d["nodes"], key=lambda n: -(n.get("duration_ms") or 0))[:6]:
    print("  %-20s %6d ms %9d rows" % (n["node_id"], n.get("duration_ms") or 0, n["rows_out"]))
'

echo "== DuckDB: the same per-customer aggregates from the same CSV"
py=python3
if ! $py -c 'import duckdb' 2>/dev/null; then
  if [ ! -x target/bench-venv/bin/python ]; then
    python3 -m venv target/bench-venv
    target/bench-venv/bin/pip install --quiet duckdb
  fi
  py=target/bench-venv/bin/python
fi
$py - "$work/data/transactions.csv" <<'PY'
import sys, time, duckdb
path = sys.argv[1]
con = duckdb.connect()
query = f"""
  SELECT customer_id,
         count(DISTINCT order_id) AS orders,
         count(DISTINCT CAST(date AS DATE)) AS purchase_days,
         sum(amount) AS total_spend,
         min(CAST(date AS DATE)) AS first_purchase,
         max(CAST(date AS DATE)) AS last_purchase,
         sum(amount) / count(DISTINCT order_id) AS avg_order_value
  FROM read_csv('{path}', header = true, ignore_errors = true)
  GROUP BY customer_id
"""
for threads in (1, 2):
    con.execute(f"PRAGMA threads={threads}")
    best = None
    for _ in range(3):
        t = time.perf_counter()
        rows = con.execute(query).fetchall()
        elapsed = time.perf_counter() - t
        best = elapsed if best is None else min(best, elapsed)
    print(f"  duckdb {duckdb.__version__}, {threads} thread(s): {best*1000:.0f} ms for {len(rows)} customers (CSV read included, best of 3)")
PY
echo "(flow's transactions + metrics nodes above are the comparable steps: CSV parse + per-customer aggregates, plus RFM, BG/NBD and Gamma-Gamma fits)"
