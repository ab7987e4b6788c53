#!/usr/bin/python3
"""The OpenAPI contract (docs/openapi.yaml) checked against a running `recloop serve`, both ways.

Runs with Debian's interpreter and its python3-yaml and python3-jsonschema (Draft 2020-12: an
OpenAPI 3.1 schema is a JSON Schema 2020-12 schema). Debian 12 packages no OpenAPI validator, so
the document's own checks are done here:

- the document: OpenAPI 3.1.0, every operation has responses with descriptions and a unique
  operationId, every $ref resolves, every schema passes the 2020-12 metaschema (check_schema),
  every path template parameter is declared (and every declared path parameter is in the
  template), every security requirement names a scheme, every example validates against the
  schema it illustrates;
- the server: a real `recloop serve` on 127.0.0.1 (a free port) over a demo model with two
  versions, a catalogue, an event store, an A/B test and two scoped keys. Every example request
  of the spec (its path and query parameter examples, and each of its request body examples) is
  sent; the answer must be a 2xx documented for that operation, and its body must validate
  against the documented schema of that status and content type (documented headers too).
  Then error cases (an unknown parameter, a bad value, a missing key, a key without the scope,
  malformed JSON, a non-JSON body, unknown items, a wrong method, an unknown route) must answer
  a documented status with the error envelope and the expected code;
- the routes: `recloop serve --list-routes` (the router's table) and the spec's operations must
  be the same set of (method, path), with the same scope (x-recloop-scope, and a security
  requirement that matches it); and GET /openapi.yaml must serve this very file.

Every failure names the route, the status and the validation error.
Usage: openapi_test.py RECLOOP_BINARY SPEC_PATH
"""
import copy
import datetime
import hashlib
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
import urllib.parse

import jsonschema
import yaml

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from recloop_process import RecloopProcess  # noqa: E402  (tests/recloop_process.py)

RECLOOP = ""
SPEC_PATH = ""
TIMEOUT_SECONDS = 60  # every request and wait below is bounded
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
FULL_SECRET = "contract-test-full-key-0123456789abcdef"
READER_SECRET = "contract-test-read-only-key-0123456789"


def format_checker():
    """Draft 2020-12's format checker, with date-time (RFC 3339) checked too: jsonschema checks
    it only with the rfc3339-validator module, which Debian 12 does not package."""
    checker = copy.deepcopy(jsonschema.Draft202012Validator.FORMAT_CHECKER)

    @checker.checks("date-time", raises=ValueError)
    def is_date_time(value):
        if not isinstance(value, str):
            return True
        if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", value):
            raise ValueError(f"{value!r} is not an RFC 3339 date-time")
        datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        return True

    return checker


FORMATS = format_checker()


def load_spec(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def resolve(spec, node):
    """`node` with its $ref (a local JSON pointer) followed, repeatedly."""
    seen = 0
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            raise KeyError(f"non-local $ref {ref}")
        node = spec
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            node = node[part]
        seen += 1
        if seen > 20:
            raise KeyError(f"$ref loop at {ref}")
    return node


def validator(spec, schema):
    """A 2020-12 validator of `schema`, whose #/components/... refs resolve in `spec`."""
    resolver = jsonschema.RefResolver(base_uri="", referrer=spec)
    return jsonschema.Draft202012Validator(schema, resolver=resolver, format_checker=FORMATS)


def validation_errors(spec, schema, instance):
    """Every way `instance` fails `schema`, one line each ('' when it validates)."""
    errors = sorted(validator(spec, schema).iter_errors(instance), key=lambda e: list(e.path))
    return "; ".join(f"at /{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def operations(spec):
    """(path, method, operation, path-level parameters) of every operation of the spec."""
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method], item.get("parameters", [])


def parameters_of(spec, op, path_params):
    """The operation's parameters, path-level ones included, with $refs followed."""
    by_key = {}
    for p in list(path_params) + list(op.get("parameters", [])):
        p = resolve(spec, p)
        by_key[(p["name"], p["in"])] = p
    return list(by_key.values())


def schemas_in(node, where="#"):
    """Every schema object of the document (under a "schema" key or components/schemas)."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{where}/{key}"
            if key == "schema" and isinstance(value, dict):
                yield here, value
            elif key == "schemas" and where == "#/components":
                for name, schema in value.items():
                    yield f"{here}/{name}", schema
            else:
                yield from schemas_in(value, here)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from schemas_in(value, f"{where}/{i}")


def refs_in(node, where="#"):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield where, value
            else:
                yield from refs_in(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from refs_in(value, f"{where}/{i}")


def media_examples(spec, media):
    """(name, value) of a media type object's examples."""
    if "example" in media:
        yield "example", media["example"]
    for name, example in media.get("examples", {}).items():
        example = resolve(spec, example)
        if "value" in example:
            yield name, example["value"]


def param_value(param):
    """A parameter's example as it goes on the wire (form style), or None without one."""
    if "example" in param:
        value = param["example"]
    elif param.get("examples"):
        value = next(iter(param["examples"].values()))["value"]
    else:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return [str(v) for v in value]
    return str(value)


def build_target(path, params):
    """The request target of the operation's parameter examples, or raises KeyError naming a
    path parameter without one."""
    query = []
    target = path
    for p in params:
        value = param_value(p)
        if p["in"] == "path":
            if value is None:
                raise KeyError(f"path parameter {p['name']} has no example")
            target = target.replace("{" + p["name"] + "}", urllib.parse.quote(value, safe=""))
        elif p["in"] == "query" and value is not None:
            if isinstance(value, list):
                if p.get("explode", p.get("style", "form") == "form"):
                    query.extend((p["name"], v) for v in value)
                else:
                    query.append((p["name"], ",".join(value)))
            else:
                query.append((p["name"], value))
    if query:
        target += "?" + urllib.parse.urlencode(query)
    return target


class Server:
    """`recloop serve` on 127.0.0.1 over a demo model directory, with keys and an A/B test."""

    def __init__(self, tmp):
        models = os.path.join(tmp, "models")
        # Two demo runs: two versions in the directory, so a rollback has one to go back to.
        for seed in ("7", "8"):
            subprocess.run([RECLOOP, "demo", "--quiet", "--users", "500", "--items", "200",
                            "--interactions", "15000", "--seed", seed, "--models", models],
                           check=True, stdout=subprocess.DEVNULL, timeout=TIMEOUT_SECONDS * 3)
        keys = os.path.join(tmp, "keys.txt")
        with open(keys, "w") as f:
            for name, scopes, secret in (("full", "read,feedback,catalog,erase,admin", FULL_SECRET),
                                         ("reader", "read", READER_SECRET)):
                f.write(f"{name} {scopes} {hashlib.sha256(secret.encode()).hexdigest()}\n")
        experiment = os.path.join(tmp, "ab.toml")
        with open(experiment, "w") as f:
            f.write('name = "beam-width"\nsalt = "contract"\n'
                    '[[variant]]\nname = "control"\nshare = 50\n'
                    '[[variant]]\nname = "narrow-beam"\nshare = 50\nef_search = 16\nn = 7\n')
        self.server = RecloopProcess(
            [RECLOOP, "serve", "--models", models, "--events", os.path.join(tmp, "events.db"),
             "--key-file", keys, "--experiment", experiment, "--host", "127.0.0.1",
             "--port", "0", "--retrain-iterations", "2",
             # Retrains only when asked (POST /v1/admin/retrain), never beside one: no 409.
             "--retrain-events", "0", "--retrain-minutes", "0"],
            os.path.join(tmp, "server.log"), TIMEOUT_SECONDS)
        self.port = self.server.port

    def request(self, method, target, body=None, headers=None):
        """(status, lowercased headers, body bytes) of one request on a new connection."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT_SECONDS)
        try:
            conn.request(method, target, body=body, headers=headers or {})
            response = conn.getresponse()
            return (response.status, {k.lower(): v for k, v in response.getheaders()},
                    response.read())
        finally:
            conn.close()

    def stop(self):
        self.server.stop()


SPEC = None
SERVER = None
TMP = None


def setUpModule():
    global SPEC, SERVER, TMP
    SPEC = load_spec(SPEC_PATH)
    TMP = tempfile.mkdtemp(prefix="recloop-openapi-")
    SERVER = Server(TMP)


def tearDownModule():
    if SERVER is not None:
        SERVER.stop()
    shutil.rmtree(TMP, ignore_errors=True)


def check_response(spec, op, label, status, headers, body):
    """What is wrong with an answer to `op` (a list of strings naming route, status and why)."""
    responses = op["responses"]
    if str(status) not in responses:
        return [f"{label}: status {status} is not documented "
                f"(documented: {', '.join(responses)}); body {body[:300]!r}"]
    response = resolve(spec, responses[str(status)])
    problems = []
    for name, header in response.get("headers", {}).items():
        header = resolve(spec, header)
        value = headers.get(name.lower())
        if value is None:
            if header.get("required"):
                problems.append(f"{label}: status {status}: required header {name} missing")
            continue
        instance = int(value) if header.get("schema", {}).get("type") == "integer" and \
            re.fullmatch(r"-?\d+", value) else value
        if (why := validation_errors(spec, header.get("schema", {}), instance)):
            problems.append(f"{label}: status {status}: header {name}: {why}")
    content = response.get("content")
    if not content:
        if body:
            problems.append(f"{label}: status {status}: documented without a body, got {body[:200]!r}")
        return problems
    media_type = headers.get("content-type", "").split(";")[0].strip()
    if media_type not in content:
        return problems + [f"{label}: status {status}: content type {media_type!r} is not "
                           f"documented ({', '.join(content)})"]
    schema = content[media_type].get("schema", {})
    text = body.decode("utf-8")
    if media_type == "application/json":
        try:
            instance = json.loads(text)
        except ValueError as e:
            return problems + [f"{label}: status {status}: body is not JSON ({e}): {text[:300]!r}"]
    else:
        instance = text
    if (why := validation_errors(spec, schema, instance)):
        problems.append(f"{label}: status {status}: body does not match the schema: {why}; "
                        f"body {text[:600]}")
    return problems


def example_order(entry):
    """Writes that feed the reads first, then reads, then admin calls, then deletions."""
    path, method = entry[0], entry[1]
    if method in ("put", "post") and not path.startswith("/v1/admin"):
        return 0
    return {"get": 1, "post": 2, "delete": 3}.get(method, 4)


def auth_for(op, spec):
    """The Authorization header the example requests send: none where the operation may be
    called without a key ({} among its security alternatives), else the full key."""
    security = op.get("security", spec.get("security", []))
    if security == [] or {} in security:
        return {}
    return {"Authorization": f"Bearer {FULL_SECRET}"}


class SpecDocumentTest(unittest.TestCase):
    """The document itself is well-formed OpenAPI 3.1, as far as checked here."""

    def test_header(self):
        self.assertEqual(SPEC.get("openapi"), "3.1.0")
        self.assertTrue(SPEC["info"].get("title") and SPEC["info"].get("version"))
        self.assertTrue(SPEC.get("paths"))

    def test_every_ref_resolves(self):
        problems = []
        for where, ref in refs_in(SPEC):
            try:
                resolve(SPEC, {"$ref": ref})
            except (KeyError, IndexError, TypeError) as e:
                problems.append(f"{where}: $ref {ref} does not resolve ({e})")
        self.assertFalse(problems, "\n".join(problems))

    def test_every_schema_is_a_2020_12_schema(self):
        problems = []
        count = 0
        for where, schema in schemas_in(SPEC):
            count += 1
            try:
                jsonschema.Draft202012Validator.check_schema(schema)
            except jsonschema.SchemaError as e:
                problems.append(f"{where}: {e.message}")
        self.assertGreater(count, 30)
        self.assertFalse(problems, "\n".join(problems))

    def test_operations(self):
        problems = []
        ids = set()
        schemes = SPEC.get("components", {}).get("securitySchemes", {})
        for path, method, op, path_params in operations(SPEC):
            label = f"{method.upper()} {path}"
            op_id = op.get("operationId")
            if not op_id or op_id in ids:
                problems.append(f"{label}: operationId {op_id!r} missing or not unique")
            ids.add(op_id)
            if not op.get("responses"):
                problems.append(f"{label}: no responses")
            for status, response in op.get("responses", {}).items():
                if not re.fullmatch(r"[1-5]\d\d|[1-5]XX|default", str(status)):
                    problems.append(f"{label}: response key {status!r} is not a status")
                response = resolve(SPEC, response)
                if not response.get("description"):
                    problems.append(f"{label}: response {status} has no description")
                # Every error answer is the shared envelope.
                error_schema = response.get("content", {}).get("application/json", {}).get(
                    "schema")
                if str(status)[0] in "45" and error_schema != {"$ref": "#/components/schemas/Error"}:
                    problems.append(f"{label}: response {status} is not the Error envelope")
            params = parameters_of(SPEC, op, path_params)
            template = set(re.findall(r"\{([^}]+)\}", path))
            declared = {p["name"] for p in params if p["in"] == "path"}
            for name in template - declared:
                problems.append(f"{label}: path parameter {{{name}}} is not declared")
            for name in declared - template:
                problems.append(f"{label}: path parameter {name} is not in the template")
            for p in params:
                if p["in"] == "path" and p.get("required") is not True:
                    problems.append(f"{label}: path parameter {p['name']} must be required")
                if "schema" not in p and "content" not in p:
                    problems.append(f"{label}: parameter {p['name']} has no schema")
            for requirement in op.get("security", SPEC.get("security", [])):
                for scheme in requirement:
                    if scheme not in schemes:
                        problems.append(f"{label}: security scheme {scheme} is not defined")
        self.assertFalse(problems, "\n".join(problems))

    def test_examples_match_their_schemas(self):
        problems = []
        checked = 0
        for path, method, op, path_params in operations(SPEC):
            label = f"{method.upper()} {path}"
            for p in parameters_of(SPEC, op, path_params):
                if "example" in p:
                    checked += 1
                    if (why := validation_errors(SPEC, p["schema"], p["example"])):
                        problems.append(f"{label}: parameter {p['name']} example: {why}")
            bodies = [("request", resolve(SPEC, op.get("requestBody", {})))]
            bodies += [(f"status {s}", resolve(SPEC, r)) for s, r in op["responses"].items()]
            for what, holder in bodies:
                for media_type, media in holder.get("content", {}).items():
                    for name, value in media_examples(SPEC, media):
                        checked += 1
                        if (why := validation_errors(SPEC, media.get("schema", {}), value)):
                            problems.append(f"{label}: {what} {media_type} example {name}: {why}")
        self.assertGreater(checked, 40)
        self.assertFalse(problems, "\n".join(problems))


class ServerContractTest(unittest.TestCase):
    """The spec's examples sent to the real server, and its answers validated."""

    def test_every_example_request(self):
        problems = []
        sent = 0
        entries = sorted(operations(SPEC), key=example_order)
        for path, method, op, path_params in entries:
            try:
                target = build_target(path, parameters_of(SPEC, op, path_params))
            except KeyError as e:
                problems.append(f"{method.upper()} {path}: {e}")
                continue
            headers = auth_for(op, SPEC)
            bodies = [(None, None)]
            if "requestBody" in op:
                content = resolve(SPEC, op["requestBody"])["content"]["application/json"]
                bodies = [(name, json.dumps(value).encode())
                          for name, value in media_examples(SPEC, content)]
                if not bodies:
                    problems.append(f"{method.upper()} {path}: the request body has no example")
            for name, body in bodies:
                request_headers = dict(headers)
                if body is not None:
                    request_headers["Content-Type"] = "application/json"
                label = f"{method.upper()} {target}" + (f" (body example {name})" if name else "")
                status, got_headers, got = SERVER.request(method.upper(), target, body,
                                                          request_headers)
                sent += 1
                if not 200 <= status < 300:
                    problems.append(f"{label}: an example request must succeed, got status "
                                    f"{status}: {got[:300]!r}")
                problems += check_response(SPEC, op, label, status, got_headers, got)
        self.assertGreaterEqual(sent, len(list(operations(SPEC))))
        self.assertFalse(problems, "\n".join(problems))

    def test_error_cases(self):
        key = {"Authorization": f"Bearer {FULL_SECRET}"}
        reader = {"Authorization": f"Bearer {READER_SECRET}"}
        json_type = {"Content-Type": "application/json"}
        # (spec path, method, target, body, headers, expected status, expected code)
        cases = [
            ("/v1/popular", "get", "/v1/popular?size=3", None, {}, 400, "unknown_parameter"),
            ("/v1/users/{user}/recommendations", "get", "/v1/users/u42/recommendations?n=0",
             None, {}, 400, "bad_parameter"),
            ("/v1/users/{user}/recommendations", "get",
             "/v1/users/u42/recommendations?explain=maybe", None, {}, 400, "bad_parameter"),
            ("/v1/model", "get", "/v1/model?verbose=1", None, {}, 400, "unknown_parameter"),
            ("/v1/users", "get", "/v1/users?category=x", None, {}, 400, "unknown_parameter"),
            ("/v1/feedback", "post", "/v1/feedback", b"[]", json_type, 401, "unauthorized"),
            ("/v1/feedback", "post", "/v1/feedback", b"[]", {**json_type, **reader}, 403,
             "forbidden"),
            ("/v1/feedback", "post", "/v1/feedback", b'[{"user":', {**json_type, **key}, 400,
             "bad_body"),
            ("/v1/feedback", "post", "/v1/feedback", b'{"user":"u1"}', {**json_type, **key},
             400, "bad_body"),
            ("/v1/feedback", "post", "/v1/feedback", b"user=u1",
             {"Content-Type": "application/x-www-form-urlencoded", **key}, 415,
             "unsupported_media_type"),
            ("/v1/items/{item}", "put", "/v1/items/i5", b'{"available":"yes"}',
             {**json_type, **key}, 400, "bad_body"),
            ("/v1/items/{item}", "put", "/v1/items/i5", b"{}", json_type, 401, "unauthorized"),
            ("/v1/items/{item}", "get", "/v1/items/no-such-item", None, {}, 404, "unknown_item"),
            ("/v1/items/{item}/similar", "get", "/v1/items/no-such-item/similar", None, {}, 404,
             "unknown_item"),
            ("/v1/users/{user}", "delete", "/v1/users/u7", None, reader, 403, "forbidden"),
            ("/v1/admin/retrain", "get", "/v1/admin/retrain", None, {}, 401, "unauthorized"),
            ("/v1/admin/retrain", "get", "/v1/admin/retrain", None, reader, 403, "forbidden"),
            ("/v1/admin/retrain", "post", "/v1/admin/retrain?wait=soon", None, key, 400,
             "bad_parameter"),
            ("/v1/users/{user}/feedback", "get", "/v1/users/u42/feedback?limit=0", None, {},
             400, "bad_parameter"),
        ]
        problems = []
        for path, method, target, body, headers, expected, code in cases:
            op = SPEC["paths"].get(path, {}).get(method)
            label = f"{method.upper()} {target}"
            if op is None:
                problems.append(f"{label}: the spec has no {method.upper()} {path}")
                continue
            status, got_headers, got = SERVER.request(method.upper(), target, body, headers)
            problems += check_response(SPEC, op, label, status, got_headers, got)
            problems += self.expect_error(label, status, got, expected, code)
        # Answers of no operation: a method the path does not answer, a path no route has.
        error_schema = {"$ref": "#/components/schemas/Error"}
        for method, target, expected, code in (("DELETE", "/v1/popular", 405,
                                                "method_not_allowed"),
                                               ("GET", "/v1/no-such-route", 404, "not_found")):
            status, got_headers, got = SERVER.request(method, target)
            label = f"{method} {target}"
            problems += self.expect_error(label, status, got, expected, code)
            if (why := validation_errors(SPEC, error_schema, json.loads(got or b"null"))):
                problems.append(f"{label}: status {status}: not the error envelope: {why}")
            if expected == 405 and "allow" not in got_headers:
                problems.append(f"{label}: status 405 without Allow")
        self.assertFalse(problems, "\n".join(problems))

    @staticmethod
    def expect_error(label, status, body, expected, code):
        if status != expected:
            return [f"{label}: expected status {expected}, got {status}: {body[:300]!r}"]
        try:
            got_code = json.loads(body)["error"]["code"]
        except (ValueError, KeyError, TypeError):
            return [f"{label}: status {status}: no error code in {body[:300]!r}"]
        if got_code != code:
            return [f"{label}: status {status}: expected code {code}, got {got_code}"]
        return []

    def test_served_document_is_this_file(self):
        status, headers, body = SERVER.request("GET", "/openapi.yaml")
        self.assertEqual(status, 200)
        self.assertEqual(headers.get("content-type"), "application/yaml")
        with open(SPEC_PATH, "rb") as f:
            self.assertEqual(body, f.read(), "GET /openapi.yaml differs from docs/openapi.yaml: "
                             "rebuild the binary")


class RoutesTest(unittest.TestCase):
    """The router's table and the spec's operations, both ways."""

    def test_routes_match_operations(self):
        out = subprocess.run([RECLOOP, "serve", "--list-routes"], check=True,
                             capture_output=True, text=True, timeout=TIMEOUT_SECONDS).stdout
        router = {}
        for line in out.splitlines():
            method, pattern, scope = line.split()
            router[(method, pattern)] = scope
        self.assertGreater(len(router), 15, out)
        spec = {(m.upper(), p): op for p, m, op, _ in operations(SPEC)}
        problems = [f"{m} {p}: the router has this route, the spec does not"
                    for m, p in sorted(set(router) - set(spec))]
        problems += [f"{m} {p}: the spec has this operation, the router does not"
                     for m, p in sorted(set(spec) - set(router))]
        for route in sorted(set(router) & set(spec)):
            label = f"{route[0]} {route[1]}"
            scope, op = router[route], spec[route]
            if op.get("x-recloop-scope") != scope:
                problems.append(f"{label}: x-recloop-scope {op.get('x-recloop-scope')!r}, the "
                                f"router's scope is {scope!r}")
            security = op.get("security", SPEC.get("security", []))
            if scope == "public":
                wanted = []
            elif scope == "read":
                wanted = [{}, {"bearerKey": ["read"]}]
            else:
                wanted = [{"bearerKey": [scope]}]
            if security != wanted:
                problems.append(f"{label}: security {security}, for scope {scope} expected "
                                f"{wanted}")
        self.assertFalse(problems, "\n".join(problems))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    RECLOOP, SPEC_PATH = sys.argv[1], sys.argv[2]
    unittest.main(argv=sys.argv[:1], verbosity=2)
