"""Helpers for the pulse-node stand-in's black-box tests (imported by conftest.py
and the test modules; the module name is unique so it never clashes with
other directories' conftest modules)."""

import json
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CRATE = REPO / "lab" / "pulse-node"
HOST = "127.0.0.1"

# urllib honours *_proxy variables; loopback traffic must never go through a proxy
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_USED_PORTS = set()


def free_port():
    """A free TCP port on loopback, never handed out twice in this session."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        if port not in _USED_PORTS:
            _USED_PORTS.add(port)
            return port
    raise RuntimeError("no free port found")


def http(port, path, method="GET", body=None, timeout=5.0):
    """Request http://127.0.0.1:port/path; returns (status, parsed JSON body or None, headers)."""
    data = None
    headers = {}
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(f"http://{HOST}:{port}{path}", data=data, method=method, headers=headers)
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            raw = resp.read()
            status, hdrs = resp.status, dict(resp.headers)
    except urllib.error.HTTPError as err:
        raw = err.read()
        status, hdrs = err.code, dict(err.headers)
    return status, (json.loads(raw) if raw else None), hdrs


def wait_until(predicate, timeout, interval=0.3, what="condition"):
    """Poll predicate() (bounded by time and by count) until it returns a truthy value."""
    deadline = time.monotonic() + timeout
    last = None
    for _ in range(int(timeout / interval) + 2):
        try:
            last = predicate()
        except (OSError, ValueError) as err:  # node not up yet, connection reset...
            last = err
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            break
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


class StandinNode:
    """One pulse-node process."""

    def __init__(self, binary, workdir, name, port, p2p_port, data_dir, args, raw_args=None):
        self.binary = Path(binary)
        self.workdir = Path(workdir)
        self.name = name
        self.port = port
        self.p2p_port = p2p_port
        self.data_dir = data_dir
        self.args = list(args)
        self.raw_args = raw_args
        self.log_path = self.workdir / f"{name}.log"
        self.proc = None
        self._log = None

    @property
    def multiaddr(self):
        return f"/ip4/{HOST}/tcp/{self.p2p_port}"

    def command(self):
        if self.raw_args is not None:
            return [str(self.binary), *self.raw_args]
        return [str(self.binary), "--port", str(self.port), "--p2p-port", str(self.p2p_port),
                "--data-dir", str(self.data_dir), *self.args]

    def start(self, wait=True):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(), cwd=self.workdir, stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=10):
        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()}")
            status, _, _ = http(self.port, "/health", timeout=1)
            return status in (200, 503)
        wait_until(up, timeout, interval=0.1, what=f"{self.name} to answer /health")

    def kill(self, sig=signal.SIGKILL):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self):
        self.kill()
        return self.start()

    def get(self, path, **kw):
        return http(self.port, path, **kw)

    def data(self, path):
        status, body, _ = self.get(path)
        assert status == 200, (path, status, body)
        assert body["success"] is True
        return body["data"]

    def poll(self, path):
        """`data` for polling predicates: None instead of failing when the answer
        is not a success (e.g. 429 once the 120/min query budget is spent)."""
        status, body, _ = self.get(path)
        if status != 200 or not body or body.get("success") is not True:
            return None
        return body["data"]

    def chain(self):
        """(height, latest_hash), or None when rate-limited."""
        status, body, _ = self.get("/chain")
        if status != 200:
            return None
        return body["data"]["height"], body["data"]["latest_hash"]

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def __repr__(self):
        return f"<node {self.name} http={self.port} p2p={self.p2p_port}>"


def find_nulls(value, where="$"):
    """Paths of every JSON null inside a parsed body (the contract: a member
    without a value is left out, never sent as null)."""
    if value is None:
        return [where]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in find_nulls(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in find_nulls(v, f"{where}[{i}]")]
    return []


def assert_wrapper(status, body, what=""):
    """The contract's wrapper: {"success": true, "data": ...} for a success,
    {"success": false, "error": "..."} for a failure; no null anywhere."""
    assert isinstance(body, dict), (what, status, body)
    assert not find_nulls(body), (what, status, body, find_nulls(body))
    if body["success"] is True:
        assert status == 200 and set(body) == {"success", "data"}, (what, status, body)
    else:
        assert body["success"] is False and status >= 400, (what, status, body)
        assert set(body) == {"success", "error"} and isinstance(body["error"], str), (what, status, body)


def wait_converged(nodes, min_height=1, timeout=15):
    """All nodes report the same height (>= min_height) and latest hash."""
    def same():
        tips = [n.chain() for n in nodes]
        if None in tips or len(set(tips)) != 1 or tips[0][0] < min_height:
            return None
        return tips[0]
    return wait_until(same, timeout, interval=0.3, what=f"{nodes} to converge (min height {min_height})")
