"""ebs_data: the per-OS vars cover every fstype choice, and the owner is the account
pulse_node_systemd creates. (The README's variable table is generated from the argument specs,
tests/unit/test_role_tables.py; defaults and specs agree, tests/unit/test_role_docs.py.)
"""

import pytest
import yaml

from conftest import REPO

ROLE = REPO / "roles" / "ebs_data"


def load(path):
    return yaml.safe_load(path.read_text())


def options():
    return load(ROLE / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]


def defaults():
    return load(ROLE / "defaults" / "main.yml")


@pytest.mark.parametrize("os_vars", ["Debian.yml", "RedHat.yml"])
def test_os_vars_list_packages_for_every_fstype(os_vars):
    packages = load(ROLE / "vars" / os_vars)["_ebs_data_packages"]
    assert set(packages) == {"common", *options()["ebs_data_fstype"]["choices"]}
    assert all(packages[key] for key in packages)


def test_owner_attributes_are_the_agreed_ones():
    """pulse_node_systemd creates the same account; both must agree or they flip-flop."""
    internal = load(ROLE / "vars" / "main.yml")
    assert internal["_ebs_data_owner_home"] == "/opt/pulse"
    assert internal["_ebs_data_owner_shell"] == "/usr/sbin/nologin"
    assert internal["_ebs_data_owner_comment"] == "Pulse node"
    tasks = {t["name"]: t for t in load(ROLE / "tasks" / "owner.yml")}
    user = tasks["Create the owner as a system account"]["ansible.builtin.user"]
    assert user["system"] is True and user["create_home"] is False
    group = tasks["Create the owner's group as a system group"]["ansible.builtin.group"]
    assert group["system"] is True
