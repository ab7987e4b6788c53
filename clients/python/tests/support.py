"""What the client's tests share: a real `recloop serve` on 127.0.0.1 (a free port) over a model
trained in a temporary directory, and a loopback TCP proxy that can lose an answer.

The recloop binary is argv[1] of the test (CTest passes $<TARGET_FILE:recloop>) or
$RECLOOP_BINARY. Every wait is bounded.
"""
from __future__ import annotations

import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_ROOT = os.path.dirname(HERE)  # clients/python
REPO_ROOT = os.path.dirname(os.path.dirname(PACKAGE_ROOT))
sys.path.insert(0, PACKAGE_ROOT)

START_SECONDS = 60  # a server must listen within this
ADMIN_KEY = "py-client-admin-0123456789abcdef"
READ_KEY = "py-client-reader-0123456789abcdef"


def recloop_binary() -> str:
    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    path = args[0] if args else os.environ.get("RECLOOP_BINARY", "")
    if not path or not os.access(path, os.X_OK):
        raise SystemExit("usage: test_*.py RECLOOP_BINARY [unittest args] (or $RECLOOP_BINARY)")
    return path


def unittest_argv() -> List[str]:
    """sys.argv without the binary, for unittest.main."""
    binary = recloop_binary()
    return [sys.argv[0]] + [a for a in sys.argv[1:] if a != binary]


def run(args: List[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=True, capture_output=True, text=True, timeout=300, **kwargs)


def write_training_csv(path: str, users: int = 80, items: int = 60, seed: int = 7) -> List[tuple]:
    """Implicit events with structure: two halves of the users prefer two halves of the items.
    Returns the rows written (user, item, value, timestamp)."""
    rng = random.Random(seed)
    rows = []
    for u in range(users):
        taste = u % 2
        chosen = set()
        while len(chosen) < 12:
            half = taste if rng.random() < 0.85 else 1 - taste
            chosen.add(rng.randrange(items // 2) + half * (items // 2))
        for i in sorted(chosen):
            rows.append((f"u{u}", f"i{i}", float(rng.randint(1, 5)), 1_700_000_000 + len(rows)))
    with open(path, "w") as f:
        f.write("user,item,value,timestamp\n")
        for r in rows:
            f.write("%s,%s,%g,%d\n" % r)
    return rows


class Server:
    """`recloop serve` with an event store, an admin key and a read-only key over a model
    trained here (implicit ALS), on 127.0.0.1 and a free port."""

    def __init__(self, extra_args: Optional[List[str]] = None, experiment: bool = False,
                 model: bool = True):
        self.binary = recloop_binary()
        self.dir = tempfile.mkdtemp(prefix="recloop-pyclient-")
        self.data = os.path.join(self.dir, "data.csv")
        self.models = os.path.join(self.dir, "models")
        self.rows = write_training_csv(self.data)
        if model:  # else the server starts with no model (503 no_model until one is trained)
            self.train()
        keys = os.path.join(self.dir, "keys.txt")
        with open(keys, "w") as f:
            for name, secret, scopes in (("admin", ADMIN_KEY, "read,feedback,catalog,erase,admin"),
                                         ("reader", READ_KEY, "read")):
                line = run([self.binary, "keys", "hash", "--name", name, "--scopes", scopes],
                           input=secret).stdout.strip()
                f.write(line + "\n")
        args = [self.binary, "serve", "--models", self.models, "--host", "127.0.0.1", "--port",
                "0", "--events", os.path.join(self.dir, "events.db"), "--key-file", keys]
        if experiment:
            path = os.path.join(self.dir, "ab.toml")
            with open(path, "w") as f:
                f.write('name = "py-client"\nsalt = "s1"\n[[variant]]\nname = "control"\n'
                        'share = 50\n[[variant]]\nname = "narrow"\nshare = 50\nef_search = 16\n')
            args += ["--experiment", path]
        self.log = open(os.path.join(self.dir, "server.log"), "w+")
        self.process = subprocess.Popen(args + (extra_args or []), stdout=self.log,
                                        stderr=subprocess.STDOUT)
        self.base = None
        deadline = time.monotonic() + START_SECONDS
        while self.base is None and time.monotonic() < deadline and self.process.poll() is None:
            self.log.seek(0)
            match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", self.log.read())
            if match:
                self.base = match.group(1)
            else:
                time.sleep(0.05)
        if self.base is None:
            output = self.output()
            self.stop()
            raise RuntimeError("recloop serve did not start listening:\n" + output)
        self.port = int(self.base.rsplit(":", 1)[1])

    def train(self) -> None:
        """Trains the model on the training file into the models directory."""
        run([self.binary, "train", "--data", self.data, "--out", self.models, "--feedback",
             "implicit", "--algorithm", "als", "--factors", "8", "--iterations", "8",
             "--cholesky", "--quiet"])

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _read_response(sock: socket.socket, deadline: float) -> bytes:
    """One whole HTTP response (headers and Content-Length body) from `sock`."""
    data = b""
    while b"\r\n\r\n" not in data:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    match = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
    length = int(match.group(1)) if match else 0
    while len(body) < length:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


class LossyProxy:
    """A loopback TCP proxy to `port`. Its first `drop` connections (or those numbered in
    `drop_only`) are forwarded to the server, whose whole answer is read and then thrown away:
    the client's connection is closed without it, as when a network fails after the server
    acted. Other connections are relayed both ways.
    `connections` counts the connections accepted, `dropped` the answers thrown away."""

    def __init__(self, port: int, drop: int = 1, drop_only: Optional[set] = None):
        self.upstream = port
        # Connections (numbered from 1) whose answer is lost: the first `drop`, or `drop_only`.
        self.drop = set(drop_only) if drop_only is not None else set(range(1, drop + 1))
        self.connections = 0
        self.dropped: List[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stopping:
            try:
                client, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            drop = self.connections in self.drop
            threading.Thread(target=self._serve, args=(client, drop), daemon=True).start()

    def _serve(self, client: socket.socket, drop: bool) -> None:
        deadline = time.monotonic() + 30
        with client, socket.create_connection(("127.0.0.1", self.upstream), timeout=30) as up:
            if drop:
                request = _read_request(client, deadline)
                up.sendall(request)
                self.dropped.append(_read_response(up, deadline))
                return  # both closed: the client never sees the answer
            pumps = [threading.Thread(target=_pump, args=(client, up, deadline)),
                     threading.Thread(target=_pump, args=(up, client, deadline))]
            for p in pumps:
                p.start()
            for p in pumps:
                p.join(timeout=35)

    def close(self) -> None:
        self.stopping = True
        self.listener.close()
        self.thread.join(timeout=5)


def _read_request(sock: socket.socket, deadline: float) -> bytes:
    """One whole HTTP request (headers and Content-Length body)."""
    return _read_response(sock, deadline)  # the same framing


def _pump(src: socket.socket, dst: socket.socket, deadline: float) -> None:
    try:
        while time.monotonic() < deadline:
            src.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = src.recv(65536)
            if not chunk:
                dst.shutdown(socket.SHUT_WR)
                return
            dst.sendall(chunk)
    except OSError:
        pass


def free_port() -> int:
    """A port nothing listens on (bound and closed again)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
