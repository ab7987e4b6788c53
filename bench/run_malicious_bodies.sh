#!/usr/bin/env bash
# Peak memory of `recloop serve` under hostile JSON bodies at the body limit (issue 23, "limits
# that hold against real clients"): VmHWM (/proc/PID/status) of a fresh server per case after
# the case's body was sent REPEAT times, against the same server's idle peak. Cases: 1 MiB of
# `[[[[...` and 1 MiB of `[0,0,0,...` to POST /v1/feedback and PUT /v1/items/{item}, 1 MiB of
# tiny feedback events (over the events cap), and the largest batch the caps let through
# (--max-feedback-events tiny events, stored). Each case runs twice: with the default caps
# (the JSON shape is scanned before parsing) and with them lifted (what a parsed DOM costs).
# Usage: bench/run_malicious_bodies.sh [OUT_DIR (default /tmp/recloop-malicious)]
# Environment: REPEAT (default 5), PORT (default 18090), and those of bench/http/common.sh (the
# model defaults to a small one here: 5000 users, 2000 items, 100000 interactions, K = 32).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/recloop-malicious}
repeat=${REPEAT:-5}
port=${PORT:-18090}
export BENCH_USERS=${BENCH_USERS:-5000} BENCH_ITEMS=${BENCH_ITEMS:-2000}
export BENCH_INTERACTIONS=${BENCH_INTERACTIONS:-100000} BENCH_FACTORS=${BENCH_FACTORS:-32}
mkdir -p "$out"
out=$(cd "$out" && pwd)
source bench/http/common.sh
bench_prepare recloop
trap bench_stop_server EXIT
bench_machine_line
bench_model "$out" hnsw >/dev/null

limit=1048576  # --max-body-bytes' default
python3 - "$out" "$limit" <<'PY'
import sys
out, limit = sys.argv[1], int(sys.argv[2])
def write(name, text):
    assert len(text) <= limit, name
    open(f"{out}/{name}.json", "w").write(text)
write("deep", "[" * limit)
zeros = "[" + ",".join(["0"] * ((limit - 2) // 2)) + "]"
write("zeros", zeros)
event = '{"user":"u1","item":"1","type":"view"}'
write("tiny-events", "[" + ",".join([event] * ((limit - 2) // (len(event) + 1))) + "]")
write("capped-events", "[" + ",".join([event] * 10000) + "]")
PY

hwm() { awk '/^VmHWM/ {print $2}' "/proc/$pid/status"; }

# run NAME METHOD TARGET BODY FLAGS...: a fresh server; the body REPEAT times; VmHWM in KiB.
run() {
  local name=$1 method=$2 target=$3 body=$4
  shift 4
  rm -f "$out"/events.db*
  $recloop serve --models "$out/models-hnsw" --port "$port" --events "$out/events.db" \
    --retrain-events 0 --retrain-minutes 0 "$@" 2>"$out/serve-$name.log" &
  pid=$!
  bench_wait_ready "http://127.0.0.1:$port/readyz"
  curl -fs -o /dev/null "http://127.0.0.1:$port/v1/popular?n=10"
  local idle status=""
  idle=$(hwm)
  if [[ -n "$body" ]]; then
    for _ in $(seq 1 "$repeat"); do
      status=$(curl -s -o "$out/answer-$name.json" -w '%{http_code}' -X "$method" \
        -H 'Content-Type: application/json' --data-binary "@$out/$body.json" \
        "http://127.0.0.1:$port$target")
    done
  fi
  local code
  code=$(grep -o '"code":"[a-z_]*"' "$out/answer-$name.json" 2>/dev/null | head -1 || true)
  echo "$name: idle_hwm_kib=$idle peak_hwm_kib=$(hwm) status=${status:--} ${code:-}" |
    tee -a "$out/malicious.txt"
  bench_stop_server
}

lifted=(--max-json-depth 63 --max-json-elements 100000000 --max-feedback-events 1000000)
: >"$out/malicious.txt"
run idle GET / ""
for caps in default lifted; do
  flags=()
  if [[ $caps == lifted ]]; then flags=("${lifted[@]}"); fi
  run "$caps-deep-feedback" POST /v1/feedback deep "${flags[@]}"
  run "$caps-deep-put" PUT /v1/items/i1 deep "${flags[@]}"
  run "$caps-zeros-feedback" POST /v1/feedback zeros "${flags[@]}"
  run "$caps-zeros-put" PUT /v1/items/i1 zeros "${flags[@]}"
  run "$caps-tiny-events" POST /v1/feedback tiny-events "${flags[@]}"
done
run capped-events POST /v1/feedback capped-events
