"""The collections the `ansible` bundle installs satisfy collections/requirements.yml."""

import json
import subprocess

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from conftest import REPO, VENV_BIN, ansible_env


def installed_collections():
    out = subprocess.run(
        [str(VENV_BIN / "ansible-galaxy"), "collection", "list", "--format", "json"],
        cwd=REPO, env=ansible_env(), capture_output=True, text=True, check=True,
    ).stdout
    found = {}
    for path_entries in json.loads(out).values():
        for name, info in path_entries.items():
            found.setdefault(name, info["version"])  # first path wins, as in ansible
    return found


REQUIRED = yaml.safe_load((REPO / "collections/requirements.yml").read_text())["collections"]


@pytest.mark.parametrize("req", REQUIRED, ids=[r["name"] for r in REQUIRED])
def test_installed_collection_satisfies_requirements(req):
    installed = installed_collections()
    assert req["name"] in installed, f"{req['name']} is not installed"
    assert Version(installed[req["name"]]) in SpecifierSet(req["version"]), (
        f"{req['name']} {installed[req['name']]} does not satisfy {req['version']}"
    )


def test_galaxy_dependencies_match_requirements():
    galaxy = yaml.safe_load((REPO / "galaxy.yml").read_text())
    assert galaxy["namespace"] == "pulse" and galaxy["name"] == "infra"
    lab_only = {"community.docker", "community.crypto"}  # the lab's (molecule, lab/playbooks/), not the collection's
    assert galaxy["dependencies"] == {r["name"]: r["version"] for r in REQUIRED if r["name"] not in lab_only}
    for name in lab_only:  # nothing the collection ships uses them
        for path in [*REPO.glob("roles/**/*.yml"), *REPO.glob("playbooks/**/*.yml"), *REPO.glob("plugins/**/*.py")]:
            assert f"{name}." not in path.read_text(), (name, path)


def test_this_clone_is_the_collection_pulse_infra():
    assert "pulse.infra" in installed_collections()
    link = REPO / "collections/ansible_collections/pulse/infra"
    assert link.is_symlink() and link.resolve() == REPO
