"""Every role's molecule scenario: create, prepare, check (fresh host), converge,
idempotence, verify, destroy."""

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, VENV_BIN, ansible_env

SCENARIOS = sorted(p.parent.name for p in (REPO / "molecule").glob("*/molecule.yml"))

pytestmark = pytest.mark.lab


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_scenario(scenario, lab):
    proc = subprocess.run(
        [str(VENV_BIN / "molecule"), "test", "-s", scenario],
        cwd=REPO, env=ansible_env(), text=True, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, check=False, timeout=1800,
    )
    sys.stdout.write(proc.stdout[-30000:])
    assert proc.returncode == 0, proc.stdout[-6000:]
