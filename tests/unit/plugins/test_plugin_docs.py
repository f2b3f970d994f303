"""Every plugin of the collection documents itself: `ansible-doc` reads its DOCUMENTATION,
EXAMPLES and RETURN (a YAML error there leaves the plugin without docs, and ansible-lint only
logs it)."""

import functools
import importlib
import json
import subprocess

import pytest

from conftest import REPO, VENV_BIN

# plugins/action/entry_point.py is the action side of the module of that name (documented there).
KINDS = {"modules": "module", "filter": "filter", "strategy": "strategy", "callback": "callback"}


def plugins():
    for folder, kind in KINDS.items():
        for path in sorted((REPO / "plugins" / folder).glob("*.py")):
            if not path.name.startswith("_"):
                yield kind, path.stem


@functools.cache
def ansible_doc(kind, *names):
    """`ansible-doc -t kind --json names...` (one run for many plugins): the parsed answer."""
    proc = subprocess.run([str(VENV_BIN / "ansible-doc"), "-t", kind, "--json", *names],
                          cwd=REPO, capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and "[ERROR]" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout)


def documented(kind):
    """ansible-doc's answer for every plugin of kind, read in one run."""
    return ansible_doc(kind, *sorted(f"pulse.infra.{n}" for k, n in plugins() if k == kind))


@pytest.mark.parametrize("kind,name", [(k, n) for k, n in plugins() if k != "filter"])
def test_ansible_doc_reads_the_plugin(kind, name):
    doc = documented(kind).get(f"pulse.infra.{name}")
    assert doc, f"ansible-doc has no documentation of pulse.infra.{name}"
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
    docs = ansible_doc("filter", *sorted(listed))
    for name in listed:
        assert docs.get(name), f"ansible-doc has no documentation of {name}"
        assert docs[name]["doc"]["short_description"], name


SIDECARS = sorted((REPO / "plugins" / "filter").glob("*.yml"))


@pytest.mark.parametrize("path", SIDECARS, ids=[p.stem for p in SIDECARS])
def test_each_filter_sidecar_documents_its_filter(path):
    """DOCUMENTATION names the filter, its input and every positional argument; EXAMPLES use
    it; RETURN describes _value."""
    import yaml

    docs = yaml.safe_load(path.read_text())
    assert set(docs) == {"DOCUMENTATION", "EXAMPLES", "RETURN"}, path.name
    doc = docs["DOCUMENTATION"]
    assert doc["name"] == path.stem
    assert doc["short_description"] and doc["description"] and doc["author"]
    assert "_input" in doc["options"]
    assert doc.get("positional", "_input").startswith("_input")
    for option in doc.get("positional", "_input").split(", "):
        assert option in doc["options"], f"{path.stem}: positional {option} is not an option"
    assert f"pulse.infra.{path.stem}" in docs["EXAMPLES"] or path.stem in docs["EXAMPLES"]
    assert "_value" in docs["RETURN"]


def test_every_filter_has_a_sidecar():
    names = set()
    for path in (REPO / "plugins" / "filter").glob("*.py"):
        module = importlib.import_module(f"ansible_collections.pulse.infra.plugins.filter.{path.stem}")
        names |= set(module.FilterModule().filters())
    assert names and names == {p.stem for p in SIDECARS}
