"""execution-environment.yml is a valid ansible-builder 3 definition whose pins are
requirements.txt's. `ansible-builder create` writes the build context only: no network, and no
container engine (stand-ins for podman and docker on PATH record any call)."""

import os
import re
import subprocess

import pytest
import yaml

from conftest import REPO, VENV_BIN

EE = yaml.safe_load((REPO / "execution-environment.yml").read_text())


def requirements_pins():
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)$", line.strip())
        if m:
            pins[m[1].lower()] = m[2]
    return pins


def pin(spec):
    name, _, version = spec.partition("==")
    assert version, f"{spec} in execution-environment.yml is not pinned"
    return name.lower(), version


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ee")
    fake_bin = tmp / "bin"
    fake_bin.mkdir()
    for engine in ("podman", "docker"):
        (fake_bin / engine).write_text(f'#!/bin/sh\necho "{engine} $*" >> "{tmp}/engine-calls"\nexit 1\n')
        (fake_bin / engine).chmod(0o755)
    env = dict(os.environ, PATH=f"{fake_bin}:{VENV_BIN}:{os.environ.get('PATH', '')}")
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-builder"), "create", "-f", "execution-environment.yml",
         "-c", str(tmp / "context"), "--output-filename", "Containerfile"],
        cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (tmp / "engine-calls").exists(), (tmp / "engine-calls").read_text()
    return tmp / "context"


def test_definition_is_version_3():
    assert EE["version"] == 3


def test_ansible_pins_are_requirements_txt():
    pins = requirements_pins()
    deps = EE["dependencies"]
    name, version = pin(deps["ansible_core"]["package_pip"])
    assert name == "ansible-core" and version == pins["ansible-core"]
    name, version = pin(deps["ansible_runner"]["package_pip"])
    assert name == "ansible-runner"


def test_python_pins_are_requirements_txt():
    pins = requirements_pins()
    python = dict(pin(spec) for spec in EE["dependencies"]["python"])
    assert set(python) == {"boto3", "botocore"}
    assert python == {name: pins[name] for name in python}


def test_collections_are_the_collection_requirements():
    assert EE["dependencies"]["galaxy"] == "collections/requirements.yml"


def test_context_has_the_containerfile_and_the_requirements(context):
    containerfile = (context / "Containerfile").read_text()
    assert f'ARG EE_BASE_IMAGE="{EE["images"]["base_image"]["name"]}"' in containerfile
    core, runner = (EE["dependencies"][k]["package_pip"] for k in ("ansible_core", "ansible_runner"))
    assert f'ARG ANSIBLE_INSTALL_REFS="{core} {runner}"' in containerfile
    assert "ansible-galaxy collection install" in containerfile
    assert (context / "_build/requirements.yml").read_text() == (REPO / "collections/requirements.yml").read_text()
    assert (context / "_build/requirements.txt").read_text().split() == EE["dependencies"]["python"]
    assert "openssh-clients" in (context / "_build/bindep.txt").read_text()
