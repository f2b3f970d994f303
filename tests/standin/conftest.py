"""Fixtures for the black-box tests of the pulse-node stand-in (lab/pulse-node).

The binary is built once per session with whatever `cargo` is first on PATH
(`cargo build --release --locked --offline`). Nodes run on free loopback
ports with data dirs under the test's tmp_path; every process started here is
killed in teardown. Only 127.0.0.1 is used. Helpers live in standin_helpers.py.
"""

import os
import shutil
import subprocess

import pytest

from standin_helpers import CRATE, StandinNode, free_port


@pytest.fixture(scope="session")
def standin_binary():
    """Build the stand-in once per session with the cargo on PATH."""
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.fail("cargo is not on PATH")
    proc = subprocess.run([cargo, "build", "--release", "--locked", "--offline"], cwd=CRATE,
                          capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, f"cargo build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    binary = CRATE / "target" / "release" / "pulse-node"
    assert binary.is_file()
    return binary


@pytest.fixture
def nodes(standin_binary, tmp_path):
    """Factory: nodes.start(*args, name=..., data_dir=..., raw_args=...) -> StandinNode.

    Ports are free loopback ports; the data dir defaults to tmp_path/<name>/data.
    All nodes are killed (SIGKILL) in teardown.
    """
    started = []

    class Factory:
        binary = standin_binary

        @staticmethod
        def make(*args, name=None, data_dir=None, raw_args=None, binary=None, port=None, p2p_port=None):
            name = name or f"node{len(started) + 1}"
            workdir = tmp_path / name
            workdir.mkdir(exist_ok=True)
            node = StandinNode(binary or standin_binary, workdir, name, port or free_port(),
                               p2p_port or free_port(), data_dir or (workdir / "data"), args, raw_args)
            started.append(node)
            return node

        @classmethod
        def start(cls, *args, wait=True, **kw):
            return cls.make(*args, **kw).start(wait=wait)

    yield Factory
    for node in started:
        node.kill()
    if os.environ.get("STANDIN_KEEP_LOGS") is None:
        return
    for node in started:  # debugging aid: STANDIN_KEEP_LOGS=1 pytest -s ...
        print(f"--- {node.name} ---\n{node.log()[-4000:]}")
