"""The collection artifact (`ansible-galaxy collection build`) holds the collection only: no
lab, no tests but ansible-test's sanity ignore file, no molecule, no binaries, no caches."""

import subprocess
import tarfile

import pytest

from conftest import REPO

VENV_BIN = REPO / ".venv" / "bin"


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    subprocess.run([str(VENV_BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(out), str(REPO)],
                   check=True, capture_output=True, text=True)
    (tarball,) = out.glob("pulse-infra-*.tar.gz")
    with tarfile.open(tarball) as archive:
        return {m.name: archive.extractfile(m).read(4) if m.isfile() else b"" for m in archive.getmembers()}


def test_it_ships_the_collection(members):
    for needed in ("MANIFEST.json", "FILES.json", "README.md", "LICENSE", "meta/runtime.yml",
                   "roles/pulse_node_systemd/tasks/main.yml", "plugins/filter/release.py", "site.yml",
                   "changelogs/changelog.yaml", "tests/sanity/ignore-2.19.txt"):
        assert needed in members, needed


def test_no_lab_no_tests_no_molecule_no_cache(members):
    for name in members:
        top = name.split("/")[0]
        assert top not in {"lab", "molecule", "benchmarks", "collections", ".lab", ".venv", ".ci", ".config"}, name
        assert not name.startswith("tests/") or name == "tests/sanity" or name.startswith("tests/sanity/ignore-"), name
        assert ".cache" not in name and "__pycache__" not in name, name


def test_no_binaries(members):
    assert [n for n, head in members.items() if head == b"\x7fELF"] == []
