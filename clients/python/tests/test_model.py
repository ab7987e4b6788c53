#!/usr/bin/python3
"""The notebook side of the Python client: load_model against a model trained by `recloop train`
and served by a real `recloop serve` (its factors reproduce the server's list), the metadata
against `recloop model info --json` and engine/model.proto, read_events against the training
file, and the package installed into a temporary venv (offline) and used from there.

Usage: test_model.py RECLOOP_BINARY [unittest arguments]
"""
import array
import json
import math
import os
import re
import shutil
import struct
import sys
import tempfile
import unittest

import support
from recloop_client import Client, ModelFormatError, load_model, read_events
from recloop_client.model_file import SCHEMA

try:
    import numpy
except ImportError:
    numpy = None


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


class ModelTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = support.Server()
        cls.client = Client(cls.server.base, api_key=support.ADMIN_KEY, timeout=30)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_factors_reproduce_the_servers_lists(self):
        self.assertIsNotNone(numpy, "python3-numpy (scripts/setup) is needed for this test")
        model = load_model(self.server.models)
        info = self.client.model()
        self.assertTrue(model.numpy)
        self.assertEqual(model.version, info["model_version"])
        self.assertEqual(model.version, "v000001")
        self.assertEqual(len(model.user_ids), int(info["users"]))
        self.assertEqual(len(model.item_ids), int(info["items"]))
        self.assertEqual(len(model.user_ids), 80)
        self.assertEqual(model.factors, info["params"]["factors"])
        self.assertEqual(model.user_factors.shape, (80, 8))
        self.assertEqual(model.item_factors.shape, (60, 8))
        self.assertEqual(model.user_factors.dtype, numpy.float32)
        self.assertIsNone(model.user_bias)  # implicit ALS has none
        self.assertEqual(len(model.seen_indptr), 81)
        self.assertEqual(int(model.seen_indptr[-1]), len(self.server.rows))
        self.assertEqual(sorted(model.seen("u3")),
                         sorted(i for u, i, _, _ in self.server.rows if u == "u3"))
        # The dot products rank as the server does, with the server's scores (float32).
        for user in ("u0", "u3", "u10", "u41"):
            served = self.client.recommendations(user, n=10)
            mine = model.recommend(user, n=10)
            self.assertEqual([i for i, _ in mine], served.item_ids, user)
            for (_, score), r in zip(mine, served):
                self.assertAlmostEqual(score, r.score, delta=1e-4 * max(1.0, abs(r.score)))
        # Without numpy: the same numbers in array.array.
        plain = load_model(self.server.models, use_numpy=False)
        self.assertIsInstance(plain.user_factors, array.array)
        self.assertEqual(len(plain.user_factors), 80 * 8)
        self.assertEqual(list(plain.user_factors), [float(x) for x in model.user_factors.ravel()])
        plain_top, numpy_top = plain.recommend("u3", n=10), model.recommend("u3", n=10)
        self.assertEqual([i for i, _ in plain_top], [i for i, _ in numpy_top])
        for (_, a), (_, b) in zip(plain_top, numpy_top):
            self.assertAlmostEqual(a, b, delta=1e-5)  # sums in double against float32

    def test_a_version_dir_and_the_models_root_are_both_accepted(self):
        root = load_model(self.server.models, use_numpy=False)
        version = load_model(os.path.join(self.server.models, "v000001"), use_numpy=False)
        self.assertEqual(root.path, version.path)
        self.assertEqual(root.item_ids, version.item_ids)
        with self.assertRaises(ModelFormatError):
            load_model(self.server.dir)  # neither

    def test_metadata_matches_recloop_model_info(self):
        printed = json.loads(support.run([self.server.binary, "model", "info", "--json",
                                          self.server.models]).stdout)
        meta = load_model(self.server.models, use_numpy=False).metadata
        self.assertEqual(meta["params"]["algorithm"], "als")
        self.assertEqual(len(meta["files"]), len(printed["files"]))
        self.assert_same(printed, meta, "metadata")

    def assert_same(self, printed, mine, where):
        """proto3 JSON (int64 as strings, float32 printed shortest) against decoded values."""
        if isinstance(printed, dict):
            self.assertIsInstance(mine, dict, where)
            for key, value in printed.items():
                self.assertIn(key, mine, where)
                self.assert_same(value, mine[key], f"{where}.{key}")
        elif isinstance(printed, list):
            self.assertEqual(len(printed), len(mine), where)
            for i, (a, b) in enumerate(zip(printed, mine)):
                self.assert_same(a, b, f"{where}[{i}]")
        elif isinstance(printed, bool) or isinstance(mine, str):
            self.assertEqual(printed, mine, where)
        elif isinstance(printed, str):  # int64, uint64 and fixed64 are strings in proto3 JSON
            self.assertEqual(int(printed), mine, where)
        elif isinstance(mine, float):
            self.assertTrue(math.isclose(printed, mine, rel_tol=1e-6) or
                            f32(printed) == f32(mine), f"{where}: {printed} != {mine}")
        else:
            self.assertEqual(printed, mine, where)

    def test_the_schema_matches_engine_model_proto(self):
        with open(os.path.join(support.REPO_ROOT, "engine", "model.proto")) as f:
            proto = f.read()
        declared = {}
        for name, body in re.findall(r"message (\w+) \{(.*?)\n\}", proto, re.S):
            fields = {}
            for line in body.splitlines():
                line = line.split("//")[0].strip()
                m = re.match(r"(repeated\s+)?(map<\w+,\s*\w+>|\w+)\s+(\w+)\s*=\s*(\d+);", line)
                if m:
                    fields[int(m.group(4))] = (m.group(3), m.group(2).replace(" ", ""),
                                               bool(m.group(1)))
            declared[name] = fields
        self.assertEqual(declared, SCHEMA)

    def test_corruption_is_detected(self):
        import recloop_client.model as model_module
        self.assertIsNotNone(model_module._xxhash, "python3-xxhash (scripts/setup) is needed")
        copy = os.path.join(tempfile.mkdtemp(prefix="recloop-corrupt-"), "v000001")
        try:
            shutil.copytree(os.path.join(self.server.models, "v000001"), copy)
            path = os.path.join(copy, "item_factors.f32")
            with open(path, "r+b") as f:
                f.seek(12)
                byte = f.read(1)
                f.seek(12)
                f.write(bytes([byte[0] ^ 1]))
            with self.assertRaisesRegex(ModelFormatError, "checksum"):
                load_model(copy)
            load_model(copy, verify=False)  # the caller's choice
            with open(path, "ab") as f:
                f.write(b"\0")
            with self.assertRaisesRegex(ModelFormatError, "bytes"):
                load_model(copy, verify=False)
        finally:
            shutil.rmtree(os.path.dirname(copy), ignore_errors=True)

    def test_read_events_reads_the_training_file(self):
        rows = read_events(self.server.data)
        self.assertEqual([(r.user, r.item, r.value, r.timestamp) for r in rows], self.server.rows)
        tmp = tempfile.mkdtemp(prefix="recloop-events-")
        try:
            path = os.path.join(tmp, "events.tsv")
            with open(path, "w") as f:
                f.write("customer\tproduct\tevent\ttime\nc1\tp1\tpurchase\t2026-01-02T03:04:05Z\n"
                        "c1\tp2\tview\t\n")
            rows = read_events(path)
            self.assertEqual([(r.user, r.item, r.type, r.value, r.timestamp) for r in rows],
                             [("c1", "p1", "purchase", 5.0, 1767323045), ("c1", "p2", "view",
                                                                         1.0, 0)])
            with open(path, "w") as f:
                f.write("1::10::4::978300760\n2::20::3.5::978300761\n")
            self.assertEqual([(r.user, r.item, r.value) for r in read_events(path)],
                             [("1", "10", 4.0), ("2", "20", 3.5)])
            with open(path, "w") as f:
                f.write("user,item,value\nu1,i1,abc\n")
            with self.assertRaisesRegex(ValueError, "events.tsv:2"):
                read_events(path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class InstallTest(unittest.TestCase):
    """`pip install` of clients/python into a fresh venv, offline, as the README says."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="recloop-venv-")
        # A copy: pip builds in the source tree and would leave build/ there.
        self.source = os.path.join(self.tmp, "python")
        shutil.copytree(support.PACKAGE_ROOT, self.source,
                        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        self.venv = os.path.join(self.tmp, "venv")
        support.run([sys.executable, "-m", "venv", "--system-site-packages", self.venv])
        self.python = os.path.join(self.venv, "bin", "python")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def check_installed(self):
        # From another directory, so the import cannot come from the source tree.
        out = support.run([self.python, "-c", "import recloop_client, sys; "
                           "print(recloop_client.__file__); print(recloop_client.__version__)"],
                          cwd=self.tmp).stdout.split()
        self.assertTrue(out[0].startswith(os.path.join(self.venv, "lib")), out)
        self.assertEqual(out[1], "0.1.0")
        self.assertTrue(os.path.isfile(os.path.join(os.path.dirname(out[0]), "py.typed")))

    def test_install_without_build_isolation(self):
        # python3-venv and python3-setuptools (scripts/setup): no index is needed.
        support.run([self.python, "-m", "pip", "install", "--no-index", "--no-build-isolation",
                     self.source], env=self.pip_env())
        self.check_installed()

    def test_install_with_build_isolation_from_debians_wheels(self):
        # pip's default isolated build fetches setuptools and wheel: Debian's
        # python3-setuptools-whl and python3-wheel-whl have them in /usr/share/python-wheels.
        support.run([self.python, "-m", "pip", "install", "--no-index", "--find-links",
                     "/usr/share/python-wheels", self.source], env=self.pip_env())
        self.check_installed()

    def pip_env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
        env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
        return env


if __name__ == "__main__":
    unittest.main(argv=support.unittest_argv(), verbosity=2)
