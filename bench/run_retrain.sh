#!/usr/bin/env bash
# Recommendation latency while a background retrain runs (issue 5): `recloop serve --events` on
# the 100K-item model of bench/run_http.sh (trained there if missing), with EVENTS feedback events
# posted first. wrk at 16 connections asks for recommendations of random users for SECONDS_PER_RUN
# seconds with no retrain (idle), then again while POST /v1/admin/retrain runs (nice 19, one
# thread), REPEAT times each, alternating. Prints the p50/p99 of every run and the median p99
# ratio (during / idle); the aim is at most 2.
# Usage: bench/run_retrain.sh [OUT_DIR (default /tmp/recloop-http)]
# Environment: SECONDS_PER_RUN (default 15), REPEAT (default 3), EVENTS (default 20000),
#              PORT (default 18084), RETRAIN_ITERATIONS (default 2), and those of
#              bench/http/common.sh. OUT_DIR/retrain.txt has the RESULT line of every run and
#              the retrainer's status after each retrain.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/recloop-http}
seconds=${SECONDS_PER_RUN:-15}
repeat=${REPEAT:-3}
events=${EVENTS:-20000}
port=${PORT:-18084}
mkdir -p "$out"
out=$(cd "$out" && pwd)
source bench/http/common.sh
bench_prepare recloop
key=bench-key
url="http://127.0.0.1:$port"
trap bench_stop_server EXIT

bench_machine_line
bench_model "$out" hnsw
# A copy of the models directory: promotions add versions to it.
rm -rf "$out/models-retrain" "$out"/retrain-events.db*
mkdir -p "$out/models-retrain"
first=$(readlink "$out/models-hnsw/current")
cp -r "$out/models-hnsw/$first" "$out/models-retrain/"
ln -s "$first" "$out/models-retrain/current"

RECLOOP_API_KEY=$key $recloop serve --models "$out/models-retrain" --port "$port" \
  --events "$out/retrain-events.db" --retrain-events 0 --retrain-minutes 0 \
  --retrain-iterations "${RETRAIN_ITERATIONS:-2}" 2>"$out/serve-retrain.log" &
pid=$!
bench_wait_ready "$url/readyz"

# The new events a retrain learns from. wrk's threads stop after MAX_REQUESTS, but wrk itself
# runs for its whole -d, so it is stopped as soon as the events are stored.
BATCH=100 USERS=$bench_users ITEMS=$bench_items AUTH="Bearer $key" \
  MAX_REQUESTS=$((events / 100)) wrk -t2 -c8 -d60s -s bench/http/feedback.lua "$url" >/dev/null &
poster=$!
for _ in $(seq 1 600); do
  stored=$(sqlite3 "$out/retrain-events.db" 'select count(*) from events' 2>/dev/null || echo 0)
  if ((stored >= events)) || ! kill -0 "$poster" 2>/dev/null; then break; fi
  sleep 0.2
done
kill "$poster" 2>/dev/null || true
wait "$poster" 2>/dev/null || true
echo "events stored: $(sqlite3 "$out/retrain-events.db" 'select count(*) from events')"

recs() {  # one wrk run of recommendations; prints its RESULT line
  USERS=$bench_users wrk -t2 -c16 -d"${seconds}s" -s bench/http/recommendations.lua "$url" |
    grep '^RESULT'
}
running() { curl -fs -H "Authorization: Bearer $key" "$url/v1/admin/retrain" | grep -q '"running":true'; }

USERS=$bench_users wrk -t2 -c16 -d3s -s bench/http/recommendations.lua "$url" >/dev/null  # warm-up
: >"$out/retrain.txt"
for _ in $(seq 1 "$repeat"); do
  echo "idle $(recs)" | tee -a "$out/retrain.txt"
  curl -fs -X POST -H "Authorization: Bearer $key" "$url/v1/admin/retrain" >/dev/null
  sleep 1
  line=$(recs)
  if running; then state=running; else state=finished-early; fi
  echo "retraining($state) $line" | tee -a "$out/retrain.txt"
  for _ in $(seq 1 1200); do running || break; sleep 0.5; done  # bounded: 10 min
  { curl -fs -H "Authorization: Bearer $key" "$url/v1/admin/retrain"; echo; } |
    tee -a "$out/retrain.txt"
done
awk '
  { for (i = 1; i <= NF; i++) if ($i ~ /^p99_ms=/) { split($i, kv, "="); v = kv[2] } }
  /^idle/ { idle[++ni] = v } /^retraining/ { during[++nd] = v }
  function median(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
      if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t } return a[int((n + 1) / 2)] }
  END { mi = median(idle, ni); md = median(during, nd);
        printf "median p99: idle %.2f ms, during retrain %.2f ms, ratio %.2f\n", mi, md, md / mi }
' "$out/retrain.txt" | tee -a "$out/retrain.txt"
