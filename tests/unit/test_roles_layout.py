"""Every role has what a role of a production collection needs: defaults that match its
argument specs, a README naming every variable, tasks, meta, and a molecule scenario."""

import pytest
import yaml

from conftest import REPO

ROLES = sorted(p.name for p in (REPO / "roles").iterdir() if (p / "tasks").is_dir())
# aws_stack and the roles it is made of talk only to the AWS APIs: they are tested against moto by
# tests/integration/test_provision.py (amazon.aws integration-target style), not by molecule.
_STACK = "tested against moto by tests/integration/test_provision.py (through roles/aws_stack)"
NO_MOLECULE = {
    "aws_stack": "tested against moto by tests/integration/test_provision.py",
    **{role: _STACK for role in ("aws_network", "aws_storage_iam", "aws_compute", "aws_ingress", "aws_observability")},
    "ci_access": "tested against moto by tests/integration/test_ci_access.py (and its workflow by tests/unit/test_ci_workflow.py)",
    "pulse_rollout": "each entry point needs a load balancer and peers: the lab integration tests run them under traffic "
                     "(test_deploy, test_converge, test_replace, test_restore, test_retire, test_release)",
}


def load(path):
    return yaml.safe_load(path.read_text()) or {}


@pytest.mark.parametrize("role", ROLES)
def test_role_has_the_standard_files(role):
    base = REPO / "roles" / role
    for rel in ("defaults/main.yml", "meta/main.yml", "meta/argument_specs.yml", "tasks/main.yml", "README.md"):
        assert (base / rel).is_file(), f"roles/{role}/{rel} is missing"
    if role not in NO_MOLECULE:
        assert (REPO / "molecule" / role / "molecule.yml").is_file(), f"molecule/{role}/molecule.yml is missing"


@pytest.mark.parametrize("role", ROLES)
def test_defaults_and_argument_specs_describe_the_same_variables(role):
    base = REPO / "roles" / role
    defaults = set(load(base / "defaults/main.yml"))
    specs = load(base / "meta/argument_specs.yml")["argument_specs"]
    # every entry point's options (main, and task files such as teardown)
    options = {name: spec for entry in specs.values() for name, spec in (entry.get("options") or {}).items()}
    assert defaults - set(options) == set(), f"{role}: defaults without an argument spec"
    # environment variables (pulse_*) may come from the inventory without a role default
    optional_without_default = {o for o in set(options) - defaults
                                if not options[o].get("required") and not o.startswith("pulse_")}
    assert optional_without_default == set(), f"{role}: optional argument specs without a default"
    for name in defaults:
        assert name.startswith(f"{role}_") or name.startswith("pulse_"), f"{role}: {name} is not role-prefixed"


@pytest.mark.parametrize("role", ROLES)
def test_readme_names_every_variable(role):
    base = REPO / "roles" / role
    readme = (base / "README.md").read_text()
    options = load(base / "meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    missing = [o for o in options if f"`{o}`" not in readme]
    assert missing == [], f"roles/{role}/README.md does not name {missing}"
