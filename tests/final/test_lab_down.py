"""The very last test: `labctl down` leaves nothing of the lab behind, twice.

It runs on its own after the rest of the suite (`make test` calls it last), because the
molecule scenarios run in parallel with the lab tests and use the lab's moto and network.
"""

import subprocess

import pytest

from conftest import REPO, docker, labctl

pytestmark = pytest.mark.teardown


def test_down_leaves_nothing_and_is_idempotent():
    labctl("up")
    labctl("down")
    labctl("down")
    assert docker("ps", "-aq", "--filter", "label=pulse.lab").stdout.split() == []
    assert docker("network", "ls", "-q", "--filter", "label=pulse.lab").stdout.split() == []
    assert not (REPO / ".lab" / "moto.pid").exists()
    assert subprocess.run(["pgrep", "-f", "lab/moto_server.py"], capture_output=True).returncode == 1
    assert subprocess.run(["pgrep", "-f", "git daemon.*pulse"], capture_output=True).returncode == 1
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    assert str(REPO / ".lab" / "volumes") not in loops
    rules = subprocess.run(["iptables", "-S"], capture_output=True, text=True).stdout
    assert "pulse-lab" not in rules
