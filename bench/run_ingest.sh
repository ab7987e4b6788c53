#!/usr/bin/env bash
# Durable feedback ingestion (issue 5): `recloop serve --events` on the 100K-item model of
# bench/run_http.sh (trained there if missing), 16 concurrent wrk connections posting batches of
# 1, 10 and 100 events to /v1/feedback, then a light load. Every answered event is in SQLite
# (WAL, synchronous=FULL); its user is folded in again after the answer (serving/fold_queue.h).
# Prints events/s, request latency and the freshness lag (acknowledged -> visible, upper bounds
# of the /metrics histogram buckets holding p50 and p99).
# Usage: bench/run_ingest.sh [OUT_DIR (default /tmp/recloop-http)]
# OUT_DIR/ingest.txt has one line per run.
# Environment: SECONDS_PER_RUN (default 10), RUNS (connections:batch pairs, default
# "16:1 16:10 16:100 2:10"), PORT (default 18082), and those of bench/http/common.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/recloop-http}
seconds=${SECONDS_PER_RUN:-10}
runs=${RUNS:-16:1 16:10 16:100 2:10}
port=${PORT:-18082}
mkdir -p "$out"
out=$(cd "$out" && pwd)
source bench/http/common.sh
bench_prepare recloop
trap bench_stop_server EXIT

bench_machine_line
bench_model "$out" hnsw
echo "events on $(df -h "$out" | awk 'NR==2 {print $1}')"

: >"$out/ingest.txt"
# connections:batch. The last run has 2 connections, to show whether fewer clients leave the
# folder thread room to keep up (with batches of 10 they do not: see BENCHMARKS.md).
for run in $runs; do
  conns=${run%%:*}
  batch=${run##*:}
  rm -f "$out"/events.db*
  $recloop serve --models "$out/models-hnsw" --port "$port" --events "$out/events.db" \
    --retrain-events 0 --retrain-minutes 0 \
    2>"$out/serve-ingest.log" &
  pid=$!
  bench_wait_ready "http://127.0.0.1:$port/readyz"
  line=$(BATCH=$batch USERS=$bench_users ITEMS=$bench_items wrk -t2 -c"$conns" -d"${seconds}s" \
    -s bench/http/feedback.lua "http://127.0.0.1:$port" | grep '^RESULT')
  stored=$(sqlite3 "$out/events.db" 'select count(*) from events' 2>/dev/null ||
           echo "?")
  fresh=$(curl -fs "http://127.0.0.1:$port/metrics" | awk '
    /^recloop_feedback_freshness_seconds_bucket/ { match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5); n++; les[n] = le; cum[n] = $2 }
    /^recloop_feedback_freshness_seconds_count/ { total = $2 }
    /^recloop_feedback_fold_backlog/ { backlog = $2 }
    END { p50 = ""; p99 = "";
          for (i = 1; i <= n; i++) { if (p50 == "" && cum[i] >= 0.5 * total) p50 = les[i];
                                     if (p99 == "" && cum[i] >= 0.99 * total) p99 = les[i]; }
          printf "freshness_p50_le=%ss freshness_p99_le=%ss folds=%d fold_backlog=%d", p50, p99, total, backlog }')
  echo "c=$conns batch=$batch $line stored=$stored $fresh" | tee -a "$out/ingest.txt"
  bench_stop_server
done
