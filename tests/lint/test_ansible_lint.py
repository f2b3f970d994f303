"""ansible-lint with the production profile passes on the whole collection."""

import subprocess

from conftest import REPO, VENV_BIN, ansible_env


def test_ansible_lint_production_profile():
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-lint"), "--offline", "--profile", "production", "--nocolor"],
        cwd=REPO, env=ansible_env(), capture_output=True, text=True, check=False, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-4000:]
