#!/usr/bin/python3
"""Writes BENCHMARKS.md's generated section and the plots from the results of bench/run-all.

    /usr/bin/python3 bench/report/generate.py --results DIR --markdown FILE --png-dir DIR
        [--total-seconds N]

DIR is bench/run-all's output directory: machine.txt, stages.tsv, logs/STAGE.log and each
stage's raw results (Google Benchmark JSON, wrk RESULT lines from bench/http/report.lua,
load_bench's report). The section replaces what stands between the markers
<!-- run-all:begin --> and <!-- run-all:end --> in FILE, or goes right after FILE's intro
paragraph when they are missing; the rest of FILE is kept as it is. The plots are drawn by
gnuplot from bench/report/*.gp into --png-dir. Only the standard library of Debian's python3.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import textwrap

BEGIN = "<!-- run-all:begin -->"
END = "<!-- run-all:end -->"
HERE = os.path.dirname(os.path.abspath(__file__))


# --- reading the results -------------------------------------------------------------------------

def read(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return ""


def key_values(text):
    """{key: value} of every key=value token in text (wrk RESULT lines, machine.txt)."""
    return dict(re.findall(r"([\w@]+)=(\S+)", text))


def load_stages(results):
    stages = {}
    for line in read(os.path.join(results, "stages.tsv")).splitlines():
        parts = line.split("\t")
        if len(parts) == 4:
            stages[parts[0]] = {"status": parts[1], "seconds": int(parts[2]), "began": parts[3]}
    return stages


def load_benchmarks(path):
    """Google Benchmark JSON -> {run_name: entry}, the median where repetitions were aggregated."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    runs = {}
    for b in data.get("benchmarks", []):
        name = b.get("run_name", b["name"])
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                runs[name] = b
        else:
            runs.setdefault(name, b)
    return runs


def matching(runs, pattern):
    """(match, entry) for every benchmark run whose name matches pattern, in name order."""
    for name, b in sorted(runs.items()):
        m = re.match(pattern, name)
        if m:
            yield m, b


def wrk_lines(path, pattern):
    """The RESULT lines of path whose prefix matches pattern, as (match, {key: value})."""
    rows = []
    for line in read(path).splitlines():
        m = re.match(pattern, line)
        if m and "RESULT" in line:
            rows.append((m, key_values(line)))
    return rows


# --- formatting -----------------------------------------------------------------------------------

def num(x, digits=0):
    return f"{x:,.{digits}f}"


def sig(x, digits=3):
    """x to `digits` significant figures, thousands separated."""
    if x == 0:
        return "0"
    places = max(0, digits - 1 - int(f"{abs(x):e}".split("e")[1]))
    return f"{x:,.{places}f}"


def ms(x):
    return f"{x:.2f} ms"


def table(header, rows, align):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


class Report:
    def __init__(self, results, png_dir, markdown, total_seconds):
        self.results = results
        self.png_dir = png_dir
        self.markdown = markdown
        self.total_seconds = total_seconds
        self.machine = dict(line.split("=", 1) for line in
                            read(os.path.join(results, "machine.txt")).splitlines() if "=" in line)
        self.stages = load_stages(results)
        self.data_dir = os.path.join(results, "report")
        os.makedirs(self.data_dir, exist_ok=True)
        os.makedirs(png_dir, exist_ok=True)
        self.plots_failed = []

    def path(self, *parts):
        return os.path.join(self.results, *parts)

    def machine_words(self):
        m = self.machine
        ram = int(m.get("ram_kib", "0")) / 1024 / 1024
        mhz = float(m.get("mhz", "0") or 0)
        cpu = m.get("cpu", "unknown CPU") + (f", {mhz:,.0f} MHz" if mhz else "")
        return f"{m.get('cores', '?')} cores ({cpu}), {ram:.1f} GiB RAM"

    def stamp(self, stage, command):
        """The line above every table: machine, date and command."""
        began = self.stages.get(stage, {}).get("began", self.machine.get("date", "?"))
        return (f"_Machine: {self.machine_words()}. Measured {began} by `bench/run-all` "
                f"({command})._")

    def opening(self, title, stage, results, what, command, level=3):
        """A section's first lines: its heading (when TITLE), then the stamp line of STAGE's
        COMMAND, or instead a note when STAGE did not finish or left no RESULTS (falsy) of WHAT.
        Returns (lines, whether the section has figures to show)."""
        out = [f"{'#' * level} {title}", ""] if title else []
        s = self.stages.get(stage)
        if s is None:
            note = f"_Stage `{stage}` did not run._"
        elif s["status"] == "skipped":
            note = f"_Stage `{stage}` was skipped: it no longer fitted in the time budget._"
        elif s["status"] != "ok":
            why = {"stopped": "was stopped when the time budget ran out"}.get(s["status"], "failed")
            note = f"_Stage `{stage}` {why}: see `logs/{stage}.log` of the run's output directory._"
        elif not results:
            note = f"_This run left no {what}._"
        else:
            return out + [self.stamp(stage, command), ""], True
        return out + [note, ""], False

    def plot(self, name, script, data, settings=None):
        """Writes data files {suffix: rows} and draws bench/report/SCRIPT into PNG_DIR/NAME.png
        (with gnuplot variables SETTINGS, {name: number}); returns the Markdown image line (or a
        note if gnuplot failed)."""
        args = [f"{k}={v}" for k, v in (settings or {}).items()]
        for suffix, rows in data.items():
            path = os.path.join(self.data_dir, f"{name}-{suffix}.dat")
            with open(path, "w", encoding="utf-8") as f:
                for row in rows:
                    f.write(" ".join(str(c) for c in row) + "\n")
            args.append(f"{suffix}='{path}'")
        png = os.path.join(self.png_dir, name + ".png")
        args.append(f"out='{png}'")
        try:
            subprocess.run(["gnuplot", "-e", "; ".join(args), os.path.join(HERE, script)],
                           check=True, capture_output=True, text=True)
        except (OSError, subprocess.CalledProcessError) as e:
            self.plots_failed.append(name)
            detail = getattr(e, "stderr", "") or str(e)
            print(f"generate: gnuplot {script}: {detail.strip()}", file=sys.stderr)
            return f"_(plot {name}.png not drawn: gnuplot failed)_"
        rel = os.path.relpath(png, os.path.dirname(os.path.abspath(self.markdown)))
        return f"![{name}]({rel})"

    # --- sections -------------------------------------------------------------------------------

    def training(self):
        runs = load_benchmarks(self.path("training", "als_bench.json"))
        out, ok = self.opening("Training: one ALS iteration (or BPMF sweep) against data size",
                               "training", runs,
                               "als_bench results",
                               f"`build/bench/als_bench {self.machine.get('als_flags', '')}`")
        if not ok:
            return out
        rows, curves = [], {"implicit": [], "explicit": []}
        parsed = []
        pattern = (r"BM_(Implicit|Explicit|Bpmf)(?:AlsIteration|Sweep)(Cholesky)?"
                   r"/Minteractions:(\d+)/K:(\d+)")
        for m, b in matching(runs, pattern):
            kind = m.group(1).lower()
            label = {"implicit": "implicit, CG (3 steps)", "explicit": "explicit with biases",
                     "bpmf": "BPMF, one Gibbs sweep (explicit)"}[kind]
            if m.group(2):
                label = "implicit, exact Cholesky (in-run baseline)"
            parsed.append((m.group(2) is not None, kind, int(m.group(3)), int(m.group(4)), label,
                           b))
        order = {"implicit": 0, "explicit": 1, "bpmf": 2}
        parsed.sort(key=lambda p: (p[0], order[p[1]], p[3], p[2]))
        reps = 1
        for baseline, kind, size, k, label, b in parsed:
            seconds = b["real_time"]  # the unit is s (als_bench sets it)
            reps = max(reps, b.get("repetitions", 1))
            rows.append([label, f"{size}M", k, f"**{seconds:.3g}**" if not baseline else
                         f"{seconds:.3g}", f"{seconds / size:.3g}", f"{b.get('GFLOP/s', 0):.1f}"])
            if not baseline and k == parsed[0][3] and kind in curves:
                curves[kind].append((size, seconds))
        out.append("Generated stores of the MovieLens-20M shape (138K users, 27K items, 20 planted "
                   "taste clusters) built in memory; each repetition times one full iteration "
                   "(both half-steps) after an untimed warm-up iteration; "
                   + (f"median of {reps}. " if reps > 1 else "one repetition. ")
                   + "A BPMF sweep is the median of three sweeps after the first of a short "
                   "chain (all users, all items, hyper-parameters and noise). "
                   + "GFLOP/s counts the algorithm's arithmetic (formulas in "
                   "`bench/als_bench.cc`).")
        out.append("")
        out += table(["model", "interactions", "K", "s / iteration", "s per 1M interactions",
                      "GFLOP/s"], rows, ["---", "---:", "---:", "---:", "---:", "---:"])
        out.append("")
        growth, slower = [], []
        for kind in ("implicit", "explicit"):
            c = sorted(curves[kind])
            if len(c) >= 2 and c[0][1] > 0:
                ratio = c[-1][1] / c[0][1]
                growth.append(f"{kind} {ratio:.1f}x")
                if ratio < 0.8 * c[-1][0] / c[0][0]:
                    slower.append(kind)
        if growth:
            c = sorted(curves["implicit"] or curves["explicit"])
            text = (f"From {c[0][0]}M to {c[-1][0]}M interactions ({c[-1][0] / c[0][0]:.0f}x the "
                    f"data) an iteration costs {' and '.join(growth)} as much.")
            if slower:
                text += (f" The {' and the '.join(slower)} cost grows less than in proportion: "
                         "part of each iteration is per user and item row (165K rows, one K x K "
                         "solve each), not per interaction.")
            out += [text, ""]
        out.append(self.plot("training", "training.gp",
                             {"implicit": sorted(curves["implicit"]),
                              "explicit": sorted(curves["explicit"])}, {"k": parsed[0][3]}))
        out.append("")
        return out

    def loading(self):
        text = read(self.path("training", "load_bench.txt"))
        reps = len(re.findall(r"^rep \d+", text, re.M))
        out, ok = self.opening("Loading and memory", "training", "median read" in text,
                               "load_bench results", f"`build/bench/load_bench FILE {reps}`")
        if ok:
            def grab(pattern):
                m = re.search(pattern, text)
                return [float(g) for g in m.groups()] if m else [float("nan")] * 2
            nnz = int(grab(r"interactions (\d+)")[0])
            read_s = grab(r"median read ([\d.]+) s")[0]
            csr_s = grab(r"median csr ([\d.]+) s")[0]
            csr = grab(r"csr bytes \(both ways\) ([\d.]+) MB = ([\d.]+) bytes")
            rss = grab(r"rss once loaded .*? ([\d.]+) MB = ([\d.]+) bytes")
            peak = grab(r"peak rss ([\d.]+) MB = ([\d.]+) bytes")
            log = read(self.path("logs", "training.log"))
            gen = re.search(r"wrote \S+: \d+ interactions.*\(([\d.]+) s\)", log)
            csv = self.path("training", "recloop-ml20m-shape.csv")
            size = os.path.getsize(csv) / 1e6 if os.path.exists(csv) else 0
            out.append(f"The file: {nnz / 1e6:g}M rows of `user,item,value,timestamp` "
                       f"({size:,.0f} MB), the MovieLens-20M shape.")
            out.append("")
            rows = [["read + parse + ID maps + deduplicate (`ReadInteractions`)",
                     f"{read_s:.2f} s"],
                    ["build CSR by user and by item", f"{csr_s:.2f} s"]]
            if gen:
                rows.append(["generate and write the file (`recloop generate`, one run)",
                             f"{float(gen.group(1)):.2f} s"])
            out += table(["step", f"median of {reps}"], rows, ["---", "---:"])
            out.append("")
            out += table(["memory", "MB", "bytes per interaction"],
                         [["the two CSR matrices (both ways)", num(csr[0]), f"**{csr[1]:.1f}**"],
                          ["resident once loaded (list dropped, both CSRs kept)", num(rss[0]),
                           f"{rss[1]:.1f}"],
                          ["peak resident during the read (includes the memory-mapped file)",
                           num(peak[0]), f"{peak[1]:.1f}"]],
                         ["---", "---:", "---:"])
            out.append("")
        out += self.model_load()
        return out

    def model_info(self):
        text = read(self.path("serving", "model-hnsw.txt"))
        info = key_values(text.splitlines()[0]) if text else {}
        m = re.search(r"trained als in ([\d.]+) s", text)
        info["train_s"] = float(m.group(1)) if m else None
        m = re.search(r"built the hnsw item index of (\d+) items in ([\d.]+) s", text)
        info["index_s"] = float(m.group(2)) if m else None
        info["index_items"] = int(m.group(1)) if m else None
        return info

    def model_load(self):
        log = read(self.path("logs", "index.log"))
        model = re.search(r"model \S+: (\d+) users, (\d+) items, K = (\d+); load ([\d.]+) s, "
                          r"\+(\d+) MB resident", log)
        index = re.search(r"saved index \S+ \((\w+)\): load ([\d.]+) s, \+(\d+) MB resident", log)
        info = self.model_info()
        out, ok = self.opening("The serving model: training, index build, load", "index", model,
                               "model load figures",
                               "`recloop train`, then `build/bench/index_bench --model=DIR`",
                               level=4)
        if not ok:
            return out
        users, items, k = model.group(1), model.group(2), model.group(3)
        out.append(f"The serving model of the later stages: `recloop generate --users "
                   f"{info.get('users', '?')} --items {info.get('items', '?')} --interactions "
                   f"{info.get('interactions', '?')} --feedback implicit --seed 7`, trained "
                   f"with K = {k}, 10 iterations, `--index hnsw` (M 16): {int(users):,} users, "
                   f"{int(items):,} items.")
        out.append("")
        rows = []
        if info["train_s"] is not None:
            rows.append(["train (10 ALS iterations, both cores)", f"{info['train_s']:.1f} s", ""])
        if info["index_s"] is not None:
            rows.append(["build the HNSW index (scores and cosine graphs)",
                         f"{info['index_s']:.1f} s", ""])
        rows.append(["load the model version (mmap, verify checksums, copy)",
                     f"{float(model.group(4)):.2f} s", f"+{model.group(5)} MB"])
        if index:
            rows.append([f"load `items.faiss` ({index.group(1)})", f"{float(index.group(2)):.2f} s",
                         f"+{index.group(3)} MB"])
        out += table(["step", "seconds", "resident"], rows, ["---", "---:", "---:"])
        out.append("")
        return out

    def queries(self):
        runs = load_benchmarks(self.path("index", "index_bench.json"))
        out, ok = self.opening("Query latency: exact against HNSW, with recall", "index", runs,
                               "index_bench results", "`build/bench/index_bench --model=DIR`")
        if not ok:
            return out
        search = {(int(m.group(1)), int(m.group(2))): b
                  for m, b in matching(runs, r"BM_Search/ef:(\d+)/native_loop:(\d)")}
        items = int(next(iter(search.values())).get("items", 0)) if search else 0
        out.append(f"The serving model above ({items:,} items, K = "
                   f"{self.model_info().get('factors', '?')}). One query at a time on one thread, "
                   "n = 10, no filters; the queries are the factor vectors of up to 2,000 of the "
                   "model's users; recall@10 against the exact index's top 10. The FAISS columns "
                   "walk the same graph with FAISS 1.7.3's own search loop (the in-run baseline).")
        out.append("")
        rows, curve, exact = [], [], []
        for ef in sorted({e for e, _ in search}):
            b = search.get((ef, 1))
            if b is None:
                continue
            faiss = search.get((ef, 0))
            label = "exact" if ef == 0 else "HNSW"
            ef_text = "" if ef == 0 else (f"{ef} (default)" if ef == 128 else str(ef))
            rows.append([label, ef_text, sig(b["p50_us"]), sig(b["p99_us"]),
                         f"{b['recall@10']:.3f}" if ef else "1",
                         f"{sig(faiss['p50_us'])} / {sig(faiss['p99_us'])}" if faiss else ""])
            (exact if ef == 0 else curve).append((b["p50_us"], b["recall@10"], ef, b["p99_us"]))
        out += table(["index", "efSearch", "p50 µs", "p99 µs", "recall@10",
                      "FAISS loop p50 / p99 µs"], rows,
                     ["---", "---:", "---:", "---:", "---:", "---:"])
        out.append("")
        parts = [f"{'HNSW' if m.group(1) == '1' else 'exact'} p50 {sig(b['p50_us'])} µs / p99 "
                 f"{sig(b['p99_us'])} µs"
                 for m, b in matching(runs, r"BM_RecommendExcludeSeen/hnsw:(\d)")]
        if parts:
            out.append("Through the Recommender with the user's seen items excluded "
                       "(`BM_RecommendExcludeSeen`): " + "; ".join(parts) + ".")
            out.append("")
        parts = []
        for m, b in matching(runs, r"BM_ConcurrentOmp/omp_threads:(\d+)"):
            what = "one OpenMP thread per query (recloop's setting)" if m.group(1) == "1" else \
                "OpenMP's default"
            parts.append(f"{what} {num(b.get('items_per_second', 0))} queries/s, p99 "
                         f"{sig(b['p99_us'])} µs")
        if parts:
            out.append("Two threads querying HNSW at once (efSearch 64, `BM_ConcurrentOmp`): "
                       + "; ".join(parts) + ".")
            out.append("")
        out.append(self.plot("recall", "recall.gp",
                             {"hnsw": sorted(curve), "exact": exact}))
        out.append("")
        return out

    def foldin(self):
        runs = load_benchmarks(self.path("foldin", "query_bench.json"))
        out, ok = self.opening("Fold-in", "foldin", runs, "query_bench results",
                               "`build/bench/query_bench --benchmark_filter=BM_FoldIn`")
        if not ok:
            return out
        out.append("One user's ALS half-step against fixed item factors (K = 64, 27K items), "
                   "as the server does for a user with new feedback: explicit with biases; "
                   "implicit by Cholesky; implicit by CG from the previous vector (the server's "
                   "default) and from zero. p50 µs.")
        out.append("")
        kinds = ["explicit", "implicit, Cholesky", "implicit, CG warm", "implicit, CG cold"]
        by_history = {}
        for m, b in matching(runs, r"BM_FoldIn/history:(\d+)/kind:(\d)"):
            by_history.setdefault(int(m.group(1)), {})[int(m.group(2))] = b
        rows = [[f"{n:,} interactions"] +
                [sig(by_history[n][k]["p50_us"]) if k in by_history[n] else "" for k in range(4)]
                for n in sorted(by_history)]
        out += table(["history"] + kinds, rows, ["---"] + ["---:"] * 4)
        out.append("")
        return out

    def http(self):
        lines = wrk_lines(self.path("serving", "results.txt"), r"(recloop|nginx) c=(\d+) ")
        out, ok = self.opening("HTTP load against the nginx ceiling", "http", lines,
                               "HTTP results", "`bench/run_http.sh`")
        if not ok:
            return out
        res = {(m.group(1), int(m.group(2))): kv for m, kv in lines}
        log = read(self.path("logs", "http.log"))
        body = re.search(r"response body: (\d+) bytes", log)
        seconds = float(next(iter(res.values()))["seconds"])
        out.append("`recloop serve` (2 I/O threads) on the serving model above (HNSW, efSearch "
                   "128); wrk on the same 2 cores asks each request for a uniformly random "
                   "user's top 10 (seen items excluded), so every request is a fresh index "
                   "search. nginx (2 workers) serves a static copy of one response"
                   + (f" ({body.group(1)} bytes)" if body else "")
                   + f", the ceiling of an HTTP server on this machine. A short warm-up, then "
                   f"{seconds:.0f} s measured per row; percentiles from wrk's histogram.")
        out.append("")
        rows, curve, errors = [], [], 0
        for c in sorted({c for _, c in res}):
            r, n = res.get(("recloop", c)), res.get(("nginx", c))
            if r is None:
                continue
            errors += int(r["errors"]) + (int(n["errors"]) if n else 0)
            rr, p50, p90, p99 = (float(r[k]) for k in ("rps", "p50_ms", "p90_ms", "p99_ms"))
            row = [c, num(rr), ms(p50), ms(p90), ms(p99)]
            if n:
                row += [num(float(n["rps"])), ms(float(n["p99_ms"])),
                        f"{rr / float(n['rps']):.2f}"]
            else:
                row += ["", "", ""]
            rows.append(row)
            curve.append((c, p50, p90, p99, float(n["p99_ms"]) if n else "NaN"))
        out += table(["concurrency", "recloop req/s", "p50", "p90", "p99", "nginx req/s",
                      "nginx p99", "recloop / nginx"], rows, ["---:"] * 8)
        out.append("")
        out.append("No run had an error or a non-2xx answer." if errors == 0 else
                   f"**{errors} errors or non-2xx answers** across the runs (see "
                   "`serving/results.txt`).")
        out.append("")
        out.append(self.plot("latency", "latency.gp", {"data": curve}))
        out.append("")
        return out

    def ingest(self):
        lines = wrk_lines(self.path("serving", "ingest.txt"), r"c=(\d+) batch=(\d+) ")
        out, ok = self.opening("Feedback ingestion and freshness lag", "ingest", lines,
                               "ingestion results", "`bench/run_ingest.sh`")
        if not ok:
            return out
        seconds = float(lines[0][1]["seconds"])
        out.append("`recloop serve --events` on the serving model, a fresh event store per row "
                   "(SQLite, WAL, `synchronous=FULL`, group commit; retraining off); wrk posts "
                   "batches of random events (uniform users and items) to `/v1/feedback` for "
                   f"{seconds:.0f} s. An answer means the batch is durable; the batch's users are "
                   "then folded in again on one folder thread. Freshness (acknowledged → "
                   "visible) "
                   "is the `/metrics` histogram bucket holding p50 / p99; backlog is the users "
                   "still waiting for a fold when the run ended.")
        out.append("")

        def bound(le):
            le = le.rstrip("s")
            if le in ("+Inf", "Inf", ""):
                return "unbounded"
            return f"≤ {sig(float(le) * 1000, 2)} ms"

        rows = []
        for m, kv in lines:
            fresh = (f"{bound(kv.get('freshness_p50_le', ''))} / "
                     f"{bound(kv.get('freshness_p99_le', ''))}")
            if int(kv.get("fold_backlog", 0)) > 0:
                fresh += " (backlog grows)"
            rows.append([m.group(1), m.group(2), f"**{num(float(kv['events_per_s']))}**",
                         ms(float(kv["p50_ms"])), ms(float(kv["p99_ms"])), fresh,
                         f"{num(int(kv.get('folds', 0)))} / {num(int(kv.get('fold_backlog', 0)))}"])
        out += table(["connections", "batch", "events/s", "request p50", "request p99",
                      "freshness p50 / p99", "folds done / backlog"], rows,
                     ["---:", "---:", "---:", "---:", "---:", "---", "---"])
        out.append("")
        return out

    def retrain(self):
        text = read(self.path("serving", "retrain.txt"))
        out, ok = self.opening("Recommendation latency during a retrain", "retrain",
                               "RESULT" in text, "retrain results", "`bench/run_retrain.sh`")
        if not ok:
            return out
        idle, during, outcomes = [], [], []
        for line in text.splitlines():
            if line.startswith("idle "):
                idle.append(key_values(line))
            elif line.startswith("retraining"):
                during.append((key_values(line), "finished-early" in line))
            elif line.startswith("{"):
                try:  # raw_decode: files of earlier runs have more text after the object
                    outcomes.append(json.JSONDecoder().raw_decode(line)[0].get("last") or {})
                except ValueError:
                    outcomes.append({})
        log = read(self.path("logs", "retrain.log"))
        events = re.search(r"events stored: (\d+)", log)
        seconds = float(idle[0]["seconds"]) if idle else 0
        out.append("`recloop serve --events` on a copy of the serving model"
                   + (f", with {int(events.group(1)):,} random events posted first" if events
                      else "")
                   + "; wrk (2 threads, 16 connections) asks for random users' recommendations for "
                   f"{seconds:.0f} s with no retrain (idle), then for {seconds:.0f} s while "
                   "`POST /v1/admin/retrain` runs (nice 19, one thread, 2 warm-started "
                   "iterations, the gate, the index build and the swap).")
        out.append("")
        rows = []
        for i, kv in enumerate(idle):
            d, early = during[i] if i < len(during) else ({}, False)
            o = outcomes[i] if i < len(outcomes) else {}
            retrain = f"{o['seconds']:.0f} s, {o.get('outcome', '?')}" if "seconds" in o else "?"
            rows.append([i + 1, ms(float(kv["p99_ms"])),
                         ms(float(d["p99_ms"])) + (" (retrain ended early)" if early else "")
                         if d else "", num(float(kv["rps"])),
                         num(float(d["rps"])) if d else "", retrain])
        ratio = ""
        if idle and during:
            mi = statistics.median(float(kv["p99_ms"]) for kv in idle)
            md = statistics.median(float(d["p99_ms"]) for d, _ in during)
            ratio = f"ratio **{md / mi:.2f}** (aim ≤ 2)"
            if len(idle) > 1:
                rows.append(["**median**", f"**{ms(mi)}**", f"**{ms(md)}**", "", "", ""])
        out += table(["run", "idle p99", "during retrain p99", "idle req/s", "during req/s",
                      "retrain took, outcome"], rows, ["---:"] * 5 + ["---"])
        out.append("")
        if ratio:
            out.append(f"Recommendation p99 during a retrain against idle: {ratio}.")
            out.append("")
        return out

    def stage_table(self):
        out = ["### Stages of this run", ""]
        rows = []
        for name, s in self.stages.items():
            rows.append([name, s["status"], f"{s['seconds']:,}", s["began"]])
        if self.total_seconds:
            rows.append(["**whole run**", "", f"**{self.total_seconds:,}**", ""])
        out += table(["stage", "outcome", "seconds", "started"], rows,
                     ["---", "---", "---:", "---"])
        out.append("")
        return out

    def section(self):
        m = self.machine
        quick = m.get("mode") == "quick"
        total = self.total_seconds
        commit = m.get("commit", "?")
        if m.get("dirty", "0") not in ("", "0"):
            commit += " with uncommitted changes"
        lines = [BEGIN, "## Every benchmark in one run (`bench/run-all`) — "
                 + m.get("date", "?")[:10], ""]
        if quick:
            lines += ["**A quick run (`bench/run-all --quick`): every size shrunk for a smoke "
                      "test. These are not the project's figures.**", ""]
        lines += [f"Generated by `bench/run-all{' --quick' if quick else ''}` on "
                  f"{m.get('date', '?')} (commit {commit}): {self.machine_words()}, Linux "
                  f"{m.get('kernel', '?')}"
                  + (f"; the whole run took {total // 60} min {total % 60} s" if total else "")
                  + ". Do not edit this section by hand: the next run replaces it. Each table "
                  "names the stage that measured it and when; `bench/run-all --help` lists the "
                  "sizes, and the raw results (Google Benchmark JSON, wrk RESULT lines) are in "
                  "its output directory. The machine is shared, so expect ±20% between runs.", ""]
        for part in (self.training, self.loading, self.queries, self.foldin, self.http,
                     self.ingest, self.retrain, self.stage_table):
            lines += part()
        lines.append(END)
        # Prose wrapped at 100 columns like the rest of the file; tables, headings and images not.
        wrapped = []
        for line in lines:
            if len(line) > 100 and not line.startswith(("|", "#", "![", "<!--")):
                wrapped += textwrap.wrap(line, 100, break_long_words=False, break_on_hyphens=False)
            else:
                wrapped.append(line)
        return "\n".join(wrapped) + "\n"


def splice(document, section):
    """document with the generated section replaced, or inserted after the intro paragraph."""
    begin, end = document.find(BEGIN), document.find(END)
    if begin >= 0 and end > begin:
        rest = document[end + len(END):].lstrip("\n")
        return document[:begin] + section + ("\n" + rest if rest else "")
    lines = document.split("\n")
    i = 0
    while i < len(lines) and not lines[i].startswith("# "):
        i += 1
    i += 1
    while i < len(lines) and not lines[i].strip():
        i += 1
    while i < len(lines) and lines[i].strip():
        i += 1
    head, tail = "\n".join(lines[:i]), "\n".join(lines[i:]).lstrip("\n")
    return head + "\n\n" + section + "\n" + tail


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", required=True, help="bench/run-all's output directory")
    p.add_argument("--markdown", required=True, help="the file to write the section into")
    p.add_argument("--png-dir", required=True, help="where the plots go")
    p.add_argument("--total-seconds", type=int, default=0, help="the run's wall time")
    args = p.parse_args()
    report = Report(args.results, args.png_dir, args.markdown, args.total_seconds)
    section = report.section()
    with open(args.markdown, encoding="utf-8") as f:
        document = f.read()
    with open(args.markdown, "w", encoding="utf-8") as f:
        f.write(splice(document, section))
    with open(os.path.join(args.results, "report", "section.md"), "w", encoding="utf-8") as f:
        f.write(section)
    if report.plots_failed:
        print(f"generate: plots not drawn: {', '.join(report.plots_failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
