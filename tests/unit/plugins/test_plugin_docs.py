"""Every plugin of the collection documents itself: `ansible-doc` reads its DOCUMENTATION,
EXAMPLES and RETURN (a YAML error there leaves the plugin without docs, and ansible-lint only
logs it)."""

import json
import subprocess

import pytest

from conftest import REPO, VENV_BIN

KINDS = {"modules": "module", "filter": "filter", "strategy": "strategy", "action": None}


def plugins():
    for folder, kind in KINDS.items():
        for path in sorted((REPO / "plugins" / folder).glob("*.py")):
            if kind and not path.name.startswith("_"):
                yield kind, path.stem


@pytest.mark.parametrize("kind,name", [(k, n) for k, n in plugins() if k != "filter"])
def test_ansible_doc_reads_the_plugin(kind, name):
    proc = subprocess.run([str(VENV_BIN / "ansible-doc"), "-t", kind, "--json", f"pulse.infra.{name}"],
                          cwd=REPO, capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and "[ERROR]" not in proc.stderr, proc.stderr
    doc = json.loads(proc.stdout)[f"pulse.infra.{name}"]
    assert doc["doc"]["short_description"], name
    if kind == "module":
        assert doc["examples"].strip(), f"{name}: no EXAMPLES"
        assert doc["return"] is not None, f"{name}: no RETURN"
        for option, spec in doc["doc"].get("options", {}).items():
            assert spec.get("description"), f"{name}: option {option} has no description"


def test_every_filter_is_documented():
    proc = subprocess.run([str(VENV_BIN / "ansible-doc"), "-t", "filter", "--list", "--json", "pulse.infra"],
                          cwd=REPO, capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and "[ERROR]" not in proc.stderr, proc.stderr
    listed = json.loads(proc.stdout)
    assert listed, "no pulse.infra filter found"
    for name in listed:
        doc = subprocess.run([str(VENV_BIN / "ansible-doc"), "-t", "filter", "--json", name],
                             cwd=REPO, capture_output=True, text=True, check=False)
        assert doc.returncode == 0 and "[ERROR]" not in doc.stderr, f"{name}: {doc.stderr}"
