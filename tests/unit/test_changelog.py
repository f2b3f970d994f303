"""The changelog is antsibull-changelog's: the fragments and changelogs/changelog.yaml pass its
linters, the latest release is galaxy.yml's version, and CHANGELOG.md is what `generate` writes.

Release steps (README, Layout): add fragments to changelogs/fragments/, then
`PATH=.venv/bin:$PATH antsibull-changelog release` (it runs ansible-doc to list new plugins).
"""

import shutil
import subprocess

import pytest
import yaml

from conftest import REPO, VENV_BIN

TOOL = str(VENV_BIN / "antsibull-changelog")


def run(*args, cwd=REPO):
    return subprocess.run([TOOL, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60)


def collection_copy(tmp_path):
    """What `generate` and `lint` read: galaxy.yml and changelogs/ (config, changelog.yaml)."""
    root = tmp_path / "collection"
    root.mkdir()
    shutil.copy(REPO / "galaxy.yml", root)
    (root / "changelogs" / "fragments").mkdir(parents=True)
    for name in ("config.yaml", "changelog.yaml"):
        shutil.copy(REPO / "changelogs" / name, root / "changelogs")
    return root


def test_fragments_lint():
    proc = run("lint")
    assert proc.returncode == 0 and proc.stdout == "", proc.stdout + proc.stderr


def test_changelog_yaml_lints():
    proc = run("lint-changelog-yaml", "changelogs/changelog.yaml")
    assert proc.returncode == 0 and proc.stdout == "", proc.stdout + proc.stderr


def test_latest_release_is_the_galaxy_version():
    version = yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]
    releases = yaml.safe_load((REPO / "changelogs/changelog.yaml").read_text())["releases"]
    assert version in releases, f"changelogs/changelog.yaml has no release {version} (galaxy.yml's version)"


def test_changelog_md_is_generated(tmp_path):
    config = yaml.safe_load((REPO / "changelogs/config.yaml").read_text())
    assert config["output"] == [{"file": "CHANGELOG.md", "format": "md"}]
    root = collection_copy(tmp_path)
    proc = run("generate", cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (root / "CHANGELOG.md").read_text() == (REPO / "CHANGELOG.md").read_text(), (
        "CHANGELOG.md differs from what antsibull-changelog generates from changelogs/changelog.yaml: "
        "run `antsibull-changelog generate` and do not edit CHANGELOG.md by hand"
    )


@pytest.mark.parametrize("fragment, message", [
    ("new_features:\n  - a section antsibull-changelog does not know\n", "invalid section"),
    ("bugfixes: a string instead of a list\n", "list"),
])
def test_lint_refuses_a_bad_fragment(tmp_path, fragment, message):
    root = collection_copy(tmp_path)
    (root / "changelogs/fragments/bad.yml").write_text("---\n" + fragment)
    proc = run("lint", cwd=root)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "bad.yml" in proc.stdout and message in proc.stdout, proc.stdout
