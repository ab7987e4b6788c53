#!/usr/bin/env bash
# HTTP load benchmark (issue 4): `recloop serve` on a generated catalogue (100K items, K = 64,
# HNSW index) driven by wrk at concurrency 1, 16 and 64, each request for a random user's top 10;
# then, in the same run and with the same load generator, nginx serving a static JSON file of the
# same size, the ceiling of an HTTP server on this machine. Prints throughput and p50/p90/p99 per
# concurrency and our throughput as a fraction of nginx's; OUT_DIR/results.txt has one RESULT line
# per run (bench/http/report.lua).
# Usage: bench/run_http.sh [OUT_DIR (default /tmp/recloop-http)]
# Environment: SECONDS_PER_RUN (default 15), WARMUP_SECONDS (default 2), CONCURRENCY (default
# "1 16 64"), INDEX (auto|hnsw|exact, default auto: the model `recloop train` makes by default),
# EF_SEARCH (the server's --ef-search; default 0 = the index's own, 128), SERVE_FLAGS (more flags
# for `recloop serve`, e.g. "--cache-candidates 0" to measure without the ranked cache),
# WARM_WAIT_SECONDS (default 600: how long to wait for the ranked cache's warmer to finish before
# measuring; /metrics recloop_ranked_cache_warm_passes_total 1), PORT (default 18080; nginx uses
# PORT+1), and those of bench/http/common.sh (the model's shape and kind: BENCH_ALGORITHM,
# BENCH_FEEDBACK, BENCH_TRAIN_FLAGS; BENCH_NO_BUILD).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/recloop-http}
seconds=${SECONDS_PER_RUN:-15}
warmup=${WARMUP_SECONDS:-2}
concurrency=${CONCURRENCY:-1 16 64}
index=${INDEX:-auto}
port=${PORT:-18080}
nginx_port=$((port + 1))
mkdir -p "$out"
out=$(cd "$out" && pwd)
source bench/http/common.sh
bench_prepare recloop

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

bench_machine_line
bench_model "$out" "$index"
$recloop model info "$bench_model_dir" | grep -E '^model_version|^  factors' || true

# shellcheck disable=SC2086  # SERVE_FLAGS is a list of flags
$recloop serve --models "$bench_model_dir" --port "$port" --ef-search "${EF_SEARCH:-0}" \
  ${SERVE_FLAGS:-} 2>"$out/serve.log" &
pids+=($!)
bench_wait_ready "http://127.0.0.1:$port/readyz"
# The ranked cache's warmer ranks the most active users after the model goes live: measure the
# server as it runs, warm (bounded wait; a server without the cache reports nothing to wait for).
warm_start=$(date +%s)
for _ in $(seq 1 $((${WARM_WAIT_SECONDS:-600} * 2))); do
  passes=$(curl -fs "http://127.0.0.1:$port/metrics" |
    sed -n 's/^recloop_ranked_cache_warm_passes_total //p')
  if [[ -z "$passes" || "$passes" != 0 ]]; then break; fi
  sleep 0.5
done
pending=${passes:+done}
echo "ranked cache warm after $(( $(date +%s) - warm_start )) s" \
  "(${pending:-no cache}, $(curl -fs "http://127.0.0.1:$port/metrics" |
    sed -n 's/^recloop_ranked_cache_users //p') users cached)"

# The static file for nginx: a real response, so the bytes on the wire match.
mkdir -p "$out/www"
chmod 755 "$out" "$out/www"
curl -fs "http://127.0.0.1:$port/v1/users/u1/recommendations?n=10" >"$out/www/rec.json"
chmod 644 "$out/www/rec.json"
echo "response body: $(wc -c <"$out/www/rec.json") bytes"
sed -e "s|@DIR@|$out|g" -e "s|@PORT@|$nginx_port|g" bench/http/nginx.conf.in >"$out/nginx.conf"
nginx -c "$out/nginx.conf" -e "$out/nginx-error.log" &
pids+=($!)
bench_wait_ready "http://127.0.0.1:$nginx_port/rec.json"

run() {  # run NAME URL CONCURRENCY [FIXED_PATH]
  local threads=$(( $3 < 2 ? 1 : 2 ))
  # A short warm-up (page cache, connection setup), then the measured run.
  USERS=$bench_users FIXED_PATH=${4:-} wrk -t"$threads" -c"$3" -d"${warmup}s" \
    -s bench/http/recommendations.lua "$2" >/dev/null
  local line
  line=$(USERS=$bench_users FIXED_PATH=${4:-} wrk -t"$threads" -c"$3" -d"${seconds}s" \
    -s bench/http/recommendations.lua "$2" | grep '^RESULT')
  echo "$1 c=$3 $line" | tee -a "$out/results.txt"
}

: >"$out/results.txt"
for c in $concurrency; do
  run recloop "http://127.0.0.1:$port" "$c"
  run nginx "http://127.0.0.1:$nginx_port" "$c" /rec.json
done

echo
echo "| concurrency | recloop req/s | p50 ms | p90 ms | p99 ms | nginx req/s | nginx p99 ms | recloop/nginx | p99/nginx p99 |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for c in $concurrency; do
  r=$(grep "^recloop c=$c " "$out/results.txt")
  n=$(grep "^nginx c=$c " "$out/results.txt")
  get() { sed -E "s/.* $1=([^ ]+).*/\1/" <<<"$2"; }
  awk -v c="$c" -v rr="$(get rps "$r")" -v p50="$(get p50_ms "$r")" -v p90="$(get p90_ms "$r")" \
      -v p99="$(get p99_ms "$r")" -v nr="$(get rps "$n")" -v np99="$(get p99_ms "$n")" \
      'BEGIN { printf "| %d | %d | %.2f | %.2f | %.2f | %d | %.2f | %.2f | %.2f |\n", c, rr, p50, p90, p99, nr, np99, rr / nr, p99 / np99 }'
done
errors=$(grep -o 'errors=[0-9]*' "$out/results.txt" | grep -v 'errors=0' || true)
if [[ -n "$errors" ]]; then echo "run_http: some runs had errors: $errors" >&2; fi
