#!/usr/bin/python3
"""The Grafana dashboard (docker/grafana/recloop.json) against a real server's /metrics, and the
compose file's monitoring profile (docker/compose.yaml, docker/prometheus, docker/grafana).

Starts `recloop serve` for real on 127.0.0.1 (a free port, an API key, an event store, a model
trained in a temporary folder), sends it the traffic that makes every family of /metrics carry
samples (lists, feedback with duplicates and attributions, a 401, a 404, 429s of the
per-connection limit, a retrain whose gate compares the models), then parses the text
exposition format and checks that every metric a panel's PromQL (or a template variable's query)
names is exported -- a name ending in _bucket needs a histogram family, _sum and _count a
histogram or summary, and a histogram or summary is never named bare -- and that every label of
a selector, a `by (...)` / `without (...)` clause and a legend exists on those metrics (`job` and
`instance` are added by Prometheus). The checker itself is shown to refuse a dashboard that
names a missing metric, label or bare histogram. Also checks the dashboard's structure (panels
with targets, unique ids, every data source through the DS_PROMETHEUS variable) and the compose
file: valid YAML, the monitoring services, every file they mount present, Prometheus scraping
the server's service and port, Grafana provisioned with that Prometheus and this dashboard.

Usage: dashboard_test.py RECLOOP_BINARY SOURCE_DIR
Needs Debian's python3-yaml (scripts/setup installs it).
"""
import copy
import http.client
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import unittest
import urllib.error
import urllib.request

import yaml

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from recloop_process import RecloopProcess  # noqa: E402  (tests/recloop_process.py)

RECLOOP = ""
SOURCE = ""
TIMEOUT = 60  # seconds: every wait and request below is bounded by it
SCRAPE_LABELS = {"job", "instance"}  # target labels Prometheus adds to every series

# ---- the Prometheus text exposition format (version 0.0.4) ----

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+\S+(\s+-?\d+)?$")
LABEL_PAIR = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)')


def parse_exposition(text):
    """{family or sample name: type} from # TYPE lines, and {sample name: set of label names}."""
    types, labels = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(None, 3)
            types[name] = kind.strip()
            continue
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            raise ValueError(f"not an exposition line: {line!r}")
        names = set()
        body = m.group(3) or ""
        pos = 0
        while pos < len(body):
            pair = LABEL_PAIR.match(body, pos)
            if not pair:
                raise ValueError(f"bad label set in {line!r}")
            names.add(pair.group(1))
            pos = pair.end()
        labels.setdefault(m.group(1), set()).update(names)
    return types, labels


# ---- PromQL: the metric names, selector labels and grouping labels of an expression ----

AGGREGATORS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
               "bottomk", "topk", "quantile"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
            "unless", "offset", "inf", "nan"}
TOKEN = re.compile(r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)'
                   r'|(?P<number>\d+(?:\.\d*)?(?:e[+-]?\d+)?)|(?P<var>\$[a-zA-Z0-9_]+)'
                   r'|(?P<punct>=~|!~|!=|==|<=|>=|[(){}\[\],=<>+\-*/%^]))')


def tokenize(expr):
    tokens, pos = [], 0
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if not m:
            if expr[pos:].strip() == "":
                break
            raise ValueError(f"cannot read PromQL at {expr[pos:]!r}")
        kind = m.lastgroup
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    return tokens


def matching(tokens, i):
    """Index of the bracket closing the one at tokens[i]."""
    pairs = {"(": ")", "{": "}", "[": "]"}
    opener, closer, depth = tokens[i][1], pairs[tokens[i][1]], 0
    for j in range(i, len(tokens)):
        if tokens[j][1] == opener:
            depth += 1
        elif tokens[j][1] == closer:
            depth -= 1
            if depth == 0:
                return j
    raise ValueError("unbalanced brackets")


def label_list(tokens, i):
    """The label names of a `(a, b)` list starting at tokens[i], and the index after it."""
    end = matching(tokens, i)
    return [v for k, v in tokens[i + 1:end] if k == "ident"], end + 1


def analyse(expr):
    """What an expression refers to: (metrics, selectors, groupings), where metrics is the list
    of metric names, selectors [(metric, [label, ...])] the labels each selector matches on, and
    groupings [(labels, [metric, ...])] each by/without/on/ignoring clause with the metrics it
    applies to."""
    tokens = tokenize(expr)
    metrics, selectors, groupings = [], [], []
    metric_at = {}  # token index -> metric name
    i = 0
    while i < len(tokens):
        kind, value = tokens[i]
        nxt = tokens[i + 1][1] if i + 1 < len(tokens) else None
        if value == "[":  # a range such as [$__rate_interval] or [5m]
            i = matching(tokens, i) + 1
            continue
        if value == "{":  # a selector's label matchers, after its metric name
            end = matching(tokens, i)
            names = [tokens[j][1] for j in range(i + 1, end)
                     if tokens[j][0] == "ident" and tokens[j + 1][1] in ("=", "!=", "=~", "!~")]
            owner = metric_at.get(i - 1)
            if owner is None:
                raise ValueError(f"a selector without a metric name in {expr!r}")
            selectors.append((owner, names))
            i = end + 1
            continue
        if kind == "ident" and value in ("by", "without", "on", "ignoring", "group_left",
                                         "group_right") and nxt == "(":
            i = matching(tokens, i + 1) + 1  # a list of labels, not metrics
            continue
        if (kind == "ident" and value not in KEYWORDS and nxt != "("
                and not (value in AGGREGATORS and nxt in ("by", "without"))):
            metric_at[i] = value
            metrics.append(value)
        i += 1
    # Grouping clauses: `agg by (l) (args)`, `agg (args) by (l)`, and `on (l)` / `ignoring (l)`
    # of a binary operation (applied to every metric of the expression).
    for i, (kind, value) in enumerate(tokens):
        if kind == "ident" and value in AGGREGATORS and i + 1 < len(tokens):
            j = i + 1
            labels = None
            if tokens[j][1] in ("by", "without"):
                labels, j = label_list(tokens, j + 1)
            if j >= len(tokens) or tokens[j][1] != "(":
                raise ValueError(f"{value} without its arguments in {expr!r}")
            end = matching(tokens, j)
            if labels is None and end + 1 < len(tokens) and tokens[end + 1][1] in ("by", "without"):
                labels, _ = label_list(tokens, end + 2)
            if labels is not None:
                inside = [metric_at[k] for k in range(j, end) if k in metric_at]
                groupings.append((labels, inside))
        elif kind == "ident" and value in ("on", "ignoring"):
            labels, _ = label_list(tokens, i + 1)
            groupings.append((labels, list(metric_at.values())))
    return metrics, selectors, groupings


class Exported:
    """What a server's /metrics exports, answering for the names a query may use."""

    def __init__(self, text):
        self.types, self.labels = parse_exposition(text)

    def labels_of(self, name):
        """The label names of metric `name` as a query names it, or raise with why not."""
        kind = self.types.get(name)
        if kind in ("histogram", "summary"):
            raise ValueError(f"{name} is a {kind}: name its _bucket, _sum or _count series")
        if kind is None:
            base, _, suffix = name.rpartition("_")
            base_kind = self.types.get(base)
            if suffix == "bucket" and base_kind == "histogram":
                pass
            elif suffix in ("sum", "count") and base_kind in ("histogram", "summary"):
                pass
            elif suffix == "bucket" and base_kind is not None:
                raise ValueError(f"{name}: {base} is a {base_kind}, not a histogram")
            else:
                raise ValueError(f"{name} is not exported by /metrics")
        if name not in self.labels:
            raise ValueError(f"{name} is declared but has no sample to check its labels on")
        return self.labels[name] | SCRAPE_LABELS

    def problems(self, expr, legend=""):
        """Every reason `expr` (with its legend format) does not fit these metrics."""
        try:
            metrics, selectors, groupings = analyse(expr)
        except ValueError as e:
            return [str(e)]
        out, known = [], {}
        for name in metrics:
            try:
                known[name] = self.labels_of(name)
            except ValueError as e:
                out.append(str(e))
        if not metrics:
            out.append(f"no metric in {expr!r}")
        for name, labels in selectors:
            for label in labels:
                if name in known and label not in known[name]:
                    out.append(f"{name} has no label {label!r} (selector)")
        grouped = set()
        for labels, names in groupings:
            grouped.update(labels)
            for name in names:
                for label in labels:
                    if name in known and label not in known[name]:
                        out.append(f"{name} has no label {label!r} (by/on clause)")
        # A legend's {{label}} must survive the query: a grouping label, or (without
        # aggregation) a label of the metrics themselves.
        available = grouped if groupings else set().union(*known.values()) if known else set()
        for label in re.findall(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}", legend):
            if label not in available:
                out.append(f"legend label {label!r} is not in the result of {expr!r}")
        return out


# ---- the dashboard ----

def panels_of(dashboard):
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # a collapsed row keeps its panels


def queries_of(dashboard):
    """(where, expr, legend) for every PromQL query of the dashboard."""
    for panel in panels_of(dashboard):
        for target in panel.get("targets", []):
            yield (f"panel {panel.get('id')} {panel.get('title')!r} {target.get('refId')}",
                   target.get("expr", ""), target.get("legendFormat", ""))
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            m = re.fullmatch(r"label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)", query)
            if not m:
                yield (f"variable {var['name']}", query, "")
            else:  # label_values(SELECTOR, LABEL): LABEL must be on the selector's metric
                yield (f"variable {var['name']}", m.group(1), "{{" + m.group(2) + "}}")


def dashboard_problems(dashboard, exported):
    return [f"{where}: {p}" for where, expr, legend in queries_of(dashboard)
            for p in exported.problems(expr, legend)]


def load_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)


class DashboardTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(os.path.join(SOURCE, "docker/grafana/recloop.json")) as f:
            cls.dashboard = json.load(f)
        cls.tmp = tempfile.mkdtemp(prefix="recloop-dashboard-")
        cls.server = None
        try:
            cls.start_server()
            cls.send_traffic()
            cls.metrics_text = cls.get("/metrics", auth=False)[1]
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.server is not None:
            cls.server.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # ---- the server ----
    @classmethod
    def run_recloop(cls, *args):
        proc = subprocess.run([RECLOOP, "--threads", "2", *args], capture_output=True, text=True,
                              timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"recloop {' '.join(args)} failed: {proc.stderr}")

    @classmethod
    def start_server(cls):
        data = os.path.join(cls.tmp, "data.csv")
        cls.run_recloop("generate", "--feedback", "implicit", "--users", "300", "--items", "120",
                        "--interactions", "9000", "--seed", "7", "--out", data)
        with open(data) as f:
            rows = [line.strip().split(",") for line in f if line.strip()]
        cls.pairs = [(r[0], r[1]) for r in rows if not r[0].startswith("user")]
        cls.run_recloop("train", "--data", data, "--feedback", "implicit", "--factors", "8",
                        "--iterations", "3", "--quiet", "--out", os.path.join(cls.tmp, "models"))
        cls.key = secrets.token_hex(24)
        key_file = os.path.join(cls.tmp, "api-key")
        with open(os.open(key_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(cls.key + "\n")
        cls.server = RecloopProcess(
            [RECLOOP, "--threads", "2", "serve", "--models", os.path.join(cls.tmp, "models"),
             "--events", os.path.join(cls.tmp, "events.db"), "--api-key-file", key_file,
             "--host", "127.0.0.1", "--port", "0", "--io-threads", "2", "--retrain-threads", "1",
             "--rate-limit", "20"],
            os.path.join(cls.tmp, "server.log"), TIMEOUT)
        cls.port = cls.server.port

    @classmethod
    def request(cls, method, path, body=None, auth=True):
        """(status, body text) of one request on a new connection."""
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = "Bearer " + cls.key
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{cls.port}{path}", data=data,
                                     headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT * 3) as res:
                return res.status, res.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    @classmethod
    def get(cls, path, auth=True):
        return cls.request("GET", path, auth=auth)

    @classmethod
    def send_traffic(cls):
        users = sorted({u for u, _ in cls.pairs})[:40]
        items = sorted({i for _, i in cls.pairs})[:5]
        events, lists = [], []
        for user in users:
            status, body = cls.get(f"/v1/users/{user}/recommendations?n=5")
            assert status == 200, (status, body)
            lists.append((user, json.loads(body)))
        for item in items:
            assert cls.get(f"/v1/items/{item}/similar?n=5")[0] == 200
        assert cls.get("/v1/popular?n=5")[0] == 200
        assert cls.get("/v1/no-such-route")[0] == 404
        assert cls.request("POST", "/v1/feedback", [], auth=False)[0] == 401
        # Purchases of items from the users' history, one click naming an unknown list
        # (unmatched), then clicks on the lists served (credited to them). Those come last: they
        # are the newest events, which the retrain holds out, and new to their users, so that
        # the gate has something to rank.
        history = [p for p in cls.pairs if p[0] in set(users)]
        for n, (user, item) in enumerate(history[:150]):
            events.append({"user": user, "item": item, "type": "purchase", "id": f"hist-{n}"})
        events.append({"user": users[0], "item": items[0], "type": "click",
                       "recommendation_id": "0" * 32, "id": "unmatched"})
        for n, (user, answer) in enumerate(lists):
            for pos, entry in enumerate(answer["items"]):
                events.append({"user": user, "item": entry["item"], "type": "click",
                               "recommendation_id": answer["recommendation_id"],
                               "id": f"rec-{n}-{pos}"})
        for start in range(0, len(events), 100):
            status, body = cls.request("POST", "/v1/feedback", events[start:start + 100])
            assert status == 200, (status, body)
            if start == 0:
                # A retried batch: its events are duplicates, stored once. Not last: a duplicate
                # still uses up a seq of the store, and the retrain holds out the newest seqs.
                status, body = cls.request("POST", "/v1/feedback", events[:50])
                assert status == 200 and json.loads(body)["duplicates"] == 50, (status, body)
        # A list after feedback waits for the user's fold: the freshness histogram has samples.
        assert cls.get(f"/v1/users/{users[0]}/recommendations?n=5")[0] == 200
        # The per-connection limit (--rate-limit 20): one keep-alive connection past it.
        conn = http.client.HTTPConnection("127.0.0.1", cls.port, timeout=TIMEOUT)
        statuses = []
        for _ in range(60):
            conn.request("GET", "/healthz")
            res = conn.getresponse()
            res.read()
            statuses.append(res.status)
            if res.status == 429:
                break
        conn.close()
        assert 429 in statuses, statuses
        # A retrain whose gate compares candidate and live model on the held-out new events.
        status, body = cls.request("POST", "/v1/admin/retrain?wait=true")
        assert status == 200, (status, body)
        cls.retrain = json.loads(body)

    # ---- the tests ----
    def test_every_metric_and_label_of_the_dashboard_is_exported(self):
        exported = Exported(self.metrics_text)
        problems = dashboard_problems(self.dashboard, exported)
        self.assertEqual(problems, [], "\n".join(problems) + f"\nretrain: {self.retrain}")
        # The topics the dashboard is for, each shown by some query.
        named = {m for _, expr, _ in queries_of(self.dashboard) for m in analyse(expr)[0]}
        for metric in ("recloop_http_requests_total", "recloop_http_request_duration_seconds_bucket",
                       "recloop_feedback_freshness_seconds_bucket", "recloop_feedback_fold_backlog",
                       "recloop_feedback_events_total", "recloop_feedback_rejected_backpressure_total",
                       "recloop_event_store_write_queue", "recloop_retrain_total",
                       "recloop_retrain_gate_metric", "recloop_model_info",
                       "recloop_ranked_cache_hits_total"):
            self.assertIn(metric, named)

    def test_the_check_refuses_what_is_not_exported(self):
        exported = Exported(self.metrics_text)
        # The freshness buckets reach a minute, as the panel's description says.
        self.assertIn('recloop_feedback_freshness_seconds_bucket{le="60"}', self.metrics_text)
        cases = {
            "recloop_no_such_metric_total": "not exported",
            "recloop_http_request_duration_seconds": "is a histogram",
            "recloop_feedback_events_total_bucket": "not a histogram",
            'recloop_http_requests_total{code="500"}': "no label 'code'",
            "sum by (model) (recloop_feedback_fold_backlog)": "no label 'model'",
            "rate(recloop_http_requests_total[$__rate_interval]) / on (le) "
            "rate(recloop_http_requests_total[5m])": "no label 'le'",
        }
        for expr, why in cases.items():
            problems = exported.problems(expr)
            self.assertTrue(any(why in p for p in problems), f"{expr}: {problems}")
        self.assertTrue(exported.problems("sum(recloop_http_connections)", "{{route}}"))
        self.assertEqual(exported.problems(
            'histogram_quantile(0.99, sum by (route, le) (rate('
            'recloop_http_request_duration_seconds_bucket{instance=~"$instance"}[5m])))',
            "{{route}}"), [])
        # The same dashboard with one panel naming a metric that does not exist fails.
        broken = copy.deepcopy(self.dashboard)
        target = next(p for p in broken["panels"] if p.get("targets"))["targets"][0]
        target["expr"] = target["expr"].replace("recloop_http_requests_total",
                                                "recloop_http_requests_served_total")
        self.assertTrue(dashboard_problems(broken, exported))

    def test_dashboard_structure(self):
        d = self.dashboard
        self.assertTrue(d.get("title") and d.get("uid"))
        variables = {v["name"]: v for v in d["templating"]["list"]}
        self.assertEqual(variables["DS_PROMETHEUS"]["type"], "datasource")
        self.assertEqual(variables["DS_PROMETHEUS"]["query"], "prometheus")
        ids = [p["id"] for p in panels_of(d)]
        self.assertEqual(len(ids), len(set(ids)), f"panel ids repeat: {ids}")
        shown = [p for p in panels_of(d) if p["type"] != "row"]
        self.assertGreaterEqual(len(shown), 10)
        for panel in shown:
            self.assertTrue(panel.get("targets"), f"panel {panel['id']} has no targets")
            self.assertEqual(panel["datasource"]["uid"], "${DS_PROMETHEUS}", panel["title"])
            refs = [t["refId"] for t in panel["targets"]]
            self.assertEqual(len(refs), len(set(refs)), panel["title"])
            for t in panel["targets"]:
                self.assertTrue(t["expr"].strip(), panel["title"])
                self.assertEqual(t["datasource"]["uid"], "${DS_PROMETHEUS}", panel["title"])
            self.assertTrue({"h", "w", "x", "y"} <= set(panel["gridPos"]), panel["title"])
        # No data source by a fixed uid anywhere: the dashboard imports into any Grafana.
        fixed = re.findall(r'"uid":\s*"(?!\$\{DS_PROMETHEUS\}|-- Grafana --)([^"]*)"',
                           json.dumps(d))
        self.assertEqual(sorted(set(fixed)), [d["uid"]])

    def test_compose_monitoring_profile(self):
        docker = os.path.join(SOURCE, "docker")
        compose = load_yaml(os.path.join(docker, "compose.yaml"))
        services = compose["services"]
        for name, image in (("prometheus", "prom/prometheus"), ("grafana", "grafana/grafana")):
            self.assertIn("monitoring", services[name].get("profiles", []), name)
            self.assertTrue(services[name]["image"].startswith(image + ":"), name)
        mounts = {}
        for name, service in services.items():
            for volume in service.get("volumes", []):
                source, target = volume.split(":")[:2]
                if source.startswith("."):  # a bind mount, relative to the compose file
                    path = os.path.normpath(os.path.join(docker, source))
                    self.assertTrue(os.path.exists(path), f"{name} mounts missing {source}")
                    mounts[target] = path
                else:
                    self.assertIn(source, compose.get("volumes", {}), f"{name}: volume {source}")
        # Prometheus reads its default config path, and scrapes the server's service and port.
        prometheus = load_yaml(mounts["/etc/prometheus/prometheus.yml"])
        job = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "recloop")
        self.assertEqual(job.get("metrics_path", "/metrics"), "/metrics")
        targets = [t for c in job["static_configs"] for t in c["targets"]]
        server_port = services["server"]["ports"][0].split(":")[-1]
        self.assertEqual(targets, [f"server:{server_port}"])
        # Grafana: provisioning from the mounted folder, the data source at the Prometheus
        # service, the dashboard provider's folder where recloop.json is mounted.
        provisioning = mounts["/etc/grafana/provisioning"]
        sources = [s for f in sorted(os.listdir(os.path.join(provisioning, "datasources")))
                   for s in load_yaml(os.path.join(provisioning, "datasources", f))["datasources"]]
        self.assertEqual([s["url"] for s in sources if s["type"] == "prometheus"],
                         ["http://prometheus:9090"])
        self.assertTrue(any(s.get("isDefault") for s in sources))
        providers = [p for f in sorted(os.listdir(os.path.join(provisioning, "dashboards")))
                     for p in load_yaml(os.path.join(provisioning, "dashboards", f))["providers"]]
        dashboard_target = next(t for t, p in mounts.items() if p.endswith("grafana/recloop.json"))
        self.assertIn(os.path.dirname(dashboard_target), [p["options"]["path"] for p in providers])
        self.assertEqual(os.path.realpath(mounts[dashboard_target]),
                         os.path.realpath(os.path.join(docker, "grafana/recloop.json")))
        with open(os.path.join(docker, "compose.yaml")) as f:
            self.assertIn("docker compose -f docker/compose.yaml --profile monitoring up -d",
                          f.read())


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    RECLOOP, SOURCE = sys.argv[1], sys.argv[2]
    unittest.main(argv=sys.argv[:1] + sys.argv[3:], verbosity=2)
