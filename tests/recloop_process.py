"""A `recloop serve` (or `recloop demo --serve`) child process for the Python tests under tests/
(api, ops, browser): started on 127.0.0.1 with its output in a log file, its port read from the
"listening on" line it prints once the socket accepts connections, stopped with SIGTERM (then
SIGKILL). Every wait is bounded."""
import re
import subprocess
import time


class RecloopProcess:
    def __init__(self, argv, log_path, timeout):
        """Starts `argv` and waits at most `timeout` seconds for its listening line. Raises
        RuntimeError with the process's output if it exits or never listens."""
        self.log = open(log_path, "w+")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)
        self.port = None
        deadline = time.monotonic() + timeout
        while self.port is None and time.monotonic() < deadline and self.proc.poll() is None:
            self.log.seek(0)
            match = re.search(r"listening on http://127\.0\.0\.1:(\d+)/", self.log.read())
            if match:
                self.port = int(match.group(1))
            else:
                time.sleep(0.1)
        if self.port is None:
            self.log.seek(0)
            output = self.log.read()
            self.stop()
            raise RuntimeError(f"{' '.join(argv[:2])} did not start listening:\n{output}")
        self.base = f"http://127.0.0.1:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
