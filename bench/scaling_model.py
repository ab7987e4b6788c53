#!/usr/bin/env python3
"""The scaling model of docs/scaling.md, from the figures bench/run_distributed.sh measured.

Usage: bench/scaling_model.py OUT_DIR [--bandwidth-gbit 25] [--cores 32]
  OUT_DIR holds als_bench_k128.json, distributed-*.json and the generated CSV that
  bench/run_distributed.sh wrote.

1. Compute: an ALS iteration costs a per-interaction and a per-row part. Both are fitted from
   the two als_bench sizes at K = 128 (same rows, 5M and 20M interactions) on this machine's 2
   cores, then scaled to C cores per node (linearly: an assumption, stated in the document).
2. Volume: with rows placed on processes by hash, a row of degree d is needed by each other
   process with probability 1 - (1 - 1/P)^d, so the block exchange sends
   K * 4 * (P - 1) * (1 - (1 - 1/P)^d) bytes for it per half-step (allgather: K * 4 * (P - 1)).
   The formula is checked against the bytes measured on the generated 20M set at P = 2 and 4,
   then applied to 100M users x 10M items x 10B interactions, with the generated set's degree
   distributions rescaled to the target mean degrees (100 per user, 1000 per item).
3. Time per iteration = compute + volume / bandwidth (no overlap: the trainer does not overlap
   them). Memory per node: interactions (32 bytes each as the trainer holds them: by user and by
   item, global and compacted columns), own factor rows, fetched rows (implicit: received into
   the matrix itself; explicit adds a buffer for the biases), and the packed send buffer (a copy
   of each own row per process that needs it).
"""
import argparse
import collections
import glob
import json
import math
import os
import statistics
import sys

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("--bandwidth-gbit", type=float, default=25.0)
p.add_argument("--cores", type=int, default=32)
p.add_argument("--measured-factors", type=int, default=64, help="K of the distributed runs")
args = p.parse_args()
out = args.out
K = 128
LOCAL_CORES = 2

# --- 1. compute cost per interaction and per row (als_bench, K = 128).
bench = json.load(open(os.path.join(out, "als_bench_k128.json")))
median = {}
for b in bench["benchmarks"]:
    if b.get("aggregate_name") != "median":
        continue
    name = b["run_name"]  # BM_ImplicitAlsIteration/Minteractions:5/K:128/...
    kind = "implicit" if "Implicit" in name else "explicit"
    size = int(name.split("Minteractions:")[1].split("/")[0])
    scale = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}[b["time_unit"]]
    median[(kind, size)] = b["real_time"] * scale
ROWS_BENCH = 138_000 + 27_000
cost = {}
for kind in ("implicit", "explicit"):
    t5, t20 = median[(kind, 5)], median[(kind, 20)]
    per_interaction = (t20 - t5) / 15e6  # seconds on 2 cores
    per_row = (t5 - per_interaction * 5e6) / ROWS_BENCH
    cost[kind] = (per_interaction, per_row)
    print(f"{kind}: {t5:.2f} s at 5M, {t20:.2f} s at 20M (K = 128, 2 cores): "
          f"{per_interaction * 1e9:.1f} ns per interaction, {per_row * 1e6:.2f} us per row")

# --- degrees of the generated sets
def degrees(path):
    user_deg, item_deg = collections.Counter(), collections.Counter()
    with open(path) as f:
        next(f)
        for line in f:
            u, i, _ = line.split(",", 2)
            user_deg[u] += 1
            item_deg[i] += 1
    return list(user_deg.values()), list(item_deg.values())


users, items = degrees(os.path.join(out, "recloop-ml20m-shape-20000000.csv"))


def block_bytes(degrees, ranks, row_bytes):
    """Expected factor bytes sent for one side in one half-step, all processes together."""
    return sum(row_bytes * (ranks - 1) * (1 - (1 - 1 / ranks) ** d) for d in degrees)


# --- 2. check the volume formula against the measured runs (their K)
print("\nvolume per rank per iteration, generated sets: formula against measured")
print("| data | feedback | P | exchange | formula MB | measured MB (mean) |")
print("|---|---|---|---|---|---|")
runs = [(p, "20M", users, items) for p in
        sorted(glob.glob(os.path.join(out, "distributed-*-[0-9]*-*.json")))]
small = os.path.join(out, "recloop-ml20m-shape-1000000.csv")
if os.path.exists(small):
    small_users, small_items = degrees(small)
    runs += [(p, "1M", small_users, small_items) for p in
             sorted(glob.glob(os.path.join(out, "volume-*.json")))]
for path, data, users_d, items_d in runs:
    j = json.load(open(path))
    d = j["distributed"]
    P, ex = d["ranks"], d["exchange"]
    row_bytes = (args.measured_factors + (1 if "explicit" in path else 0)) * 4  # + bias
    if ex == "block":
        predicted = (block_bytes(users_d, P, row_bytes) + block_bytes(items_d, P, row_bytes)) / P
    else:
        predicted = (len(users_d) + len(items_d)) * row_bytes * (P - 1) / P
    measured = statistics.median(it["mean_bytes_sent"] for it in d["iterations"])
    feedback = "explicit" if "explicit" in path else "implicit"
    print(f"| {data} | {feedback} | {P} | {ex} | {predicted / 1e6:.1f} | {measured / 1e6:.1f} |")

# --- 3. the target
U, I, N = 100e6, 10e6, 10e9
K4 = K * 4
mean_u, mean_i = sum(users) / len(users), sum(items) / len(items)
# 2,000-row samples of each distribution, rescaled to the target means.
def sample(deg, target_mean):
    deg = sorted(deg)
    step = max(1, len(deg) // 2000)
    picked = deg[::step]
    factor = target_mean / (sum(deg) / len(deg))
    return [d * factor for d in picked]
su, si = sample(users, N / U), sample(items, N / I)
bandwidth = args.bandwidth_gbit * 1e9 / 8
print(f"\ntarget: {U:.0e} users x {I:.0e} items x {N:.0e} interactions, K = {K}, "
      f"{args.cores} cores per node, {args.bandwidth_gbit:g} Gbit/s per node")
print("| nodes | compute s | block: sent GB / node | block: network s | allgather: GB / node "
      "| allgather s | s / iteration (block) | memory GB / node (block) |")
print("|---|---|---|---|---|---|---|---|")
for n in (16, 64, 256):
    a, b = cost["implicit"]
    compute = (a * N / n + b * (U + I) / n) * LOCAL_CORES / args.cores
    frac_u = sum(1 - (1 - 1 / n) ** d for d in su) / len(su)  # share of users a node needs
    frac_i = sum(1 - (1 - 1 / n) ** d for d in si) / len(si)
    # per node per iteration: its rows to every other node that needs them (both sides)
    sent_block = (U * frac_u + I * frac_i) * K4 * (n - 1) / n
    sent_all = (U + I) * K4 * (n - 1) / n
    net_block, net_all = sent_block / bandwidth, sent_all / bandwidth
    interactions = N / n * 32
    own = (U + I) / n * K4
    fetched = max(U * frac_u, I * frac_i) * K4  # implicit: rows arrive in the matrix itself
    # The packed send buffer of the larger half-step: a copy of each own row per receiver.
    send = U * frac_u * K4 * (n - 1) / n
    mem = (interactions + own + fetched + send) / 1e9
    print(f"| {n} | {compute:.1f} | {sent_block / 1e9:.1f} | {net_block:.1f} | "
          f"{sent_all / 1e9:.1f} | {net_all:.1f} | {compute + net_block:.1f} | {mem:.0f} "
          f"({interactions / 1e9:.0f} interactions + {own / 1e9:.1f} own + "
          f"{fetched / 1e9:.0f} fetched + {send / 1e9:.0f} send buffer) |")
