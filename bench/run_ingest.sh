#!/usr/bin/env bash
# Durable feedback ingestion (issues 5 and 22): `recloop serve --events` with an API key on the
# default 100K-item model of bench/run_http.sh (trained there if missing), retraining off. For
# each run, wrk posts batches of random events (uniform users and items) to /v1/feedback from C
# connections for SECONDS_PER_RUN seconds; every acknowledged event is in SQLite (WAL,
# synchronous=FULL) and its user is folded in again off the request path
# (serving/fold_queue.h). Each line of OUT_DIR/ingest.txt has:
#   - wrk's RESULT: requests/s, events/s posted, request p50/p99, errors (non-2xx included);
#   - stored: events in SQLite afterwards, and acked_events_per_s, stored over wrk's seconds
#     (every acknowledged event is stored once; a refused request stores nothing);
#   - refused: requests answered 503 overloaded (backpressure) during the run;
#   - drain_s: from the end of the load until the fold backlog is 0 (polled every 20 ms);
#   - freshness p50/p99: acknowledged -> folded in, the upper bounds of the /metrics histogram
#     buckets holding them; folds.
# A run written C:B@R paces the load at about R events/s in all (wrk waits between a
# connection's requests): freshness at a given rate rather than at saturation.
# Then, with READ_CONNECTIONS > 0, one more pair of runs: read p99 (GET recommendations, wrk's
# recommendations.lua, READ_CONNECTIONS connections) idle, then during ingestion (READ_INGEST, a
# run as in RUNS). Ingestion folds its users in again, which invalidates their cached lists
# (serving/ranked_cache.h): reads during it miss the cache far more often than idle reads.
# Usage: bench/run_ingest.sh [OUT_DIR (default /tmp/recloop-http)]
# Environment: SECONDS_PER_RUN (default 10), RUNS (connections:batch pairs, default
# "16:1 64:1 16:10 16:100 64:10@20000"), FOLD_THREADS (serve --fold-threads, default: serve's), READ_CONNECTIONS
# (default 4; 0 skips the read runs), READ_INGEST (default 64:10@20000), SERVE_FLAGS (more serve flags),
# PORT (default 18082), and those of bench/http/common.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/recloop-http}
seconds=${SECONDS_PER_RUN:-10}
runs=${RUNS:-16:1 64:1 16:10 16:100 64:10@20000}
port=${PORT:-18082}
read_conns=${READ_CONNECTIONS:-4}
read_ingest=${READ_INGEST:-64:10@20000}
key=bench-ingest-key
mkdir -p "$out"
out=$(cd "$out" && pwd)
source bench/http/common.sh
bench_prepare recloop
trap bench_stop_server EXIT

bench_machine_line
bench_model "$out" auto
echo "events on $(df -h "$out" | awk 'NR==2 {print $1}')"

printf '%s\n' "$key" >"$out/ingest.key"
chmod 600 "$out/ingest.key"

metric() {  # metric NAME: its value in /metrics (0 if absent)
  curl -fs "http://127.0.0.1:$port/metrics" | awk -v m="$1" '$1 == m { v = $2 } END { print v + 0 }'
}

start_server() {
  rm -f "$out"/events.db*
  # shellcheck disable=SC2086  # SERVE_FLAGS is a list of flags
  $recloop serve --models "$bench_model_dir" --port "$port" --events "$out/events.db" \
    --api-key-file "$out/ingest.key" --retrain-events 0 --retrain-minutes 0 \
    ${FOLD_THREADS:+--fold-threads "$FOLD_THREADS"} ${SERVE_FLAGS:-} \
    2>"$out/serve-ingest.log" &
  pid=$!
  bench_wait_ready "http://127.0.0.1:$port/readyz"
  # The ranked cache's warmer (nice 19) ranks the most active users after the model goes live:
  # measured after it finished, as bench/run_http.sh does.
  bench_wait_warm "http://127.0.0.1:$port"
}

post() {  # post CONNECTIONS BATCH [RATE]: wrk's RESULT line
  BATCH=$2 RATE=${3:-0} CONNECTIONS=$1 USERS=$bench_users ITEMS=$bench_items AUTH="Bearer $key" \
    wrk -t2 -c"$1" -d"${seconds}s" -s bench/http/feedback.lua "http://127.0.0.1:$port" |
    grep '^RESULT'
}

parse_run() {  # parse_run C:B[@R]: prints "C B R" (R 0: not paced)
  local conns=${1%%:*} batch=${1#*:} rate=0
  if [[ $batch == *@* ]]; then
    rate=${batch#*@}
    batch=${batch%@*}
  fi
  echo "$conns $batch $rate"
}

: >"$out/ingest.txt"
for run in $runs; do
  read -r conns batch rate < <(parse_run "$run")
  start_server
  line=$(post "$conns" "$batch" "$rate")
  start=$(date +%s.%N)
  for _ in $(seq 1 3000); do  # bounded: 60 s
    [[ "$(metric recloop_feedback_fold_backlog)" == 0 ]] && break
    sleep 0.02
  done
  drain=$(echo "$(date +%s.%N) - $start" | bc)
  stored=$(sqlite3 "$out/events.db" 'select count(*) from events' 2>/dev/null || echo "?")
  refused=$(curl -fs "http://127.0.0.1:$port/metrics" |
            awk '/^recloop_feedback_rejected_backpressure_total/ { n += $2 } END { print n + 0 }')
  fresh=$(curl -fs "http://127.0.0.1:$port/metrics" | awk '
    /^recloop_feedback_freshness_seconds_bucket/ { match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5); n++; les[n] = le; cum[n] = $2 }
    /^recloop_feedback_freshness_seconds_count/ { total = $2 }
    END { p50 = ""; p99 = "";
          for (i = 1; i <= n; i++) { if (p50 == "" && cum[i] >= 0.5 * total) p50 = les[i];
                                     if (p99 == "" && cum[i] >= 0.99 * total) p99 = les[i]; }
          printf "freshness_p50_le=%ss freshness_p99_le=%ss folds=%d", p50, p99, total }')
  wrk_seconds=$(sed -n 's/.* seconds=\([0-9.]*\).*/\1/p' <<<"$line")
  acked=$(echo "$stored / $wrk_seconds" | bc)
  printf 'c=%s batch=%s%s %s stored=%s acked_events_per_s=%s refused=%s drain_s=%.2f %s\n' \
    "$conns" "$batch" "$( ((rate > 0)) && echo " paced=${rate}/s")" "$line" "$stored" "$acked" "$refused" "$drain" "$fresh" |
    tee -a "$out/ingest.txt"
  bench_stop_server
done

if ((read_conns > 0)); then
  read_run() {  # read_run LABEL: reads for SECONDS_PER_RUN, one RESULT line
    USERS=$bench_users wrk -t1 -c"$read_conns" -d"${seconds}s" -s bench/http/recommendations.lua \
      "http://127.0.0.1:$port" | grep '^RESULT' | sed "s/^RESULT/reads $1/"
  }
  start_server
  read_run idle | tee -a "$out/ingest.txt"
  read -r ingest_conns ingest_batch ingest_rate < <(parse_run "$read_ingest")
  post "$ingest_conns" "$ingest_batch" "$ingest_rate" >"$out/ingest-during-reads.txt" &
  poster=$!
  sleep 1
  read_run "during ingestion ($read_ingest)" | tee -a "$out/ingest.txt"
  wait "$poster"
  echo "ingestion meanwhile: $(cat "$out/ingest-during-reads.txt")" | tee -a "$out/ingest.txt"
  bench_stop_server
fi
