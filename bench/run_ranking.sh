#!/usr/bin/env bash
# Ranking benchmark (issue 20): NDCG@10, recall@10 and coverage@10 of the served list of every
# ranking model beside the popularity baseline on the same split, and training time, on
#   - ML-100K u1.base -> u1.test (ratings),
#   - Steam plays, seeded random 80/20 splits of the rows (hours; SEEDS, median reported),
#   - a generated implicit store of >= 1M interactions (the chosen model against the implicit
#     ALS defaults before issue 20: linear confidence, alpha 0.5, lambda 20).
# Every run is `recloop train ... --json` with the defaults unless the row names flags.
# Usage: bench/run_ranking.sh [OUT_DIR (default /tmp/recloop-ranking)]
# Environment: RECLOOP_DATASETS (default ../shared/datasets), SEEDS (default "1 2 3"),
# GENERATED_INTERACTIONS (default 1000000), BENCH_NO_BUILD=1 to use build/ as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/recloop-ranking}
datasets=${RECLOOP_DATASETS:-$(pwd)/../shared/datasets}
seeds=${SEEDS:-1 2 3}
mkdir -p "$out"
[[ ${BENCH_NO_BUILD:-0} == 1 ]] || scripts/build release --target recloop >/dev/null
recloop=build/tools/recloop

# One training run: NAME, then train's flags. Appends a JSON line {"name", "result"} to
# OUT/results.jsonl and prints one table row.
run() {
  local name=$1
  shift
  local json
  json=$($recloop train "$@" --json 2>"$out/last.err" | tail -n 1)
  printf '{"name": "%s", "result": %s}\n' "$name" "$json" >>"$out/results.jsonl"
  python3 - "$name" "$json" <<'EOF'
import json, sys
name, j = sys.argv[1], json.loads(sys.argv[2])
b = j["baseline"]
print(f"| {name} | {j['algorithm']} | {j['ndcg@10']:.4f} | {j['recall@10']:.4f} | "
      f"{j['coverage@10']:.3f} | {b['ndcg@10']:.4f} | {j['ndcg@10'] / b['ndcg@10']:.2f}x | "
      f"{j['train_seconds']:.1f} s |")
EOF
}

: >"$out/results.jsonl"
echo "| run | model | NDCG@10 | recall@10 | coverage@10 | popularity NDCG@10 | ratio | train time |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
ml="$datasets/ml-100k"
if [[ -f $ml/u1.base ]]; then
  run "ML-100K u1, defaults" --data "$ml/u1.base" --test "$ml/u1.test"
  run "ML-100K u1, als (ratings as interactions: --feedback implicit)" --data "$ml/u1.base" --test "$ml/u1.test" --algorithm als --feedback implicit
  for l in 100 1000; do
    run "ML-100K u1, ease λ$l (ratings as preferences)" --data "$ml/u1.base" --test "$ml/u1.test" \
      --algorithm ease --ease-regularization "$l"
  done
else
  echo "ml-100k not found under $datasets: skipped" >&2
fi
steam="$datasets/steam-plays/plays.csv"
if [[ -f $steam ]]; then
  for seed in $seeds; do
    run "Steam seed $seed, defaults" --data "$steam" --split random:0.2 --seed "$seed"
    run "Steam seed $seed, als" --data "$steam" --split random:0.2 --seed "$seed" --algorithm als
    run "Steam seed $seed, ease λ100" --data "$steam" --split random:0.2 --seed "$seed" \
      --algorithm ease --ease-regularization 100
  done
else
  echo "steam-plays not found under $datasets: skipped" >&2
fi
gen="$out/generated.csv"
[[ -f $gen ]] || $recloop generate --feedback implicit --interactions "${GENERATED_INTERACTIONS:-1000000}" \
  --out "$gen" 2>/dev/null
run "generated implicit, defaults" --data "$gen" --split random:0.2 --seed 1
run "generated implicit, pre-issue-20 default (als linear α0.5 λ20)" --data "$gen" \
  --split random:0.2 --seed 1 --algorithm als --confidence linear --alpha 0.5 --regularization 20

# Medians of the Steam seeds.
python3 - "$out/results.jsonl" <<'EOF'
import json, statistics, sys, collections
rows = [json.loads(l) for l in open(sys.argv[1])]
by = collections.defaultdict(list)
for r in rows:
    if r["name"].startswith("Steam seed"):
        by[r["name"].split(", ", 1)[1]].append(r["result"])
for name, rs in by.items():
    m = statistics.median(x["ndcg@10"] for x in rs)
    p = statistics.median(x["baseline"]["ndcg@10"] for x in rs)
    ratio = statistics.median(x["ndcg@10"] / x["baseline"]["ndcg@10"] for x in rs)
    print(f"Steam median over {len(rs)} seeds, {name}: NDCG@10 {m:.4f}, popularity {p:.4f}, "
          f"ratio {ratio:.2f}x")
EOF
