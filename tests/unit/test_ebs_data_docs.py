"""ebs_data: meta/argument_specs.yml, defaults/main.yml and the README's variable table agree.

Every option of the argument spec has a default in defaults/main.yml (the same value) and a
row in the README table, and vice versa; the per-OS vars cover every fstype choice.
"""

import re

import pytest
import yaml

from conftest import REPO, readme_cell as as_cell

ROLE = REPO / "roles" / "ebs_data"
ROW_RE = re.compile(r"^\|\s*`(?P<name>ebs_data_[a-z0-9_]+)`\s*\|\s*(?P<default>[^|]*?)\s*\|")


def load(path):
    return yaml.safe_load(path.read_text())


def options():
    return load(ROLE / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]


def defaults():
    return load(ROLE / "defaults" / "main.yml")


def readme_rows():
    text = (ROLE / "README.md").read_text()
    section = text.split("## Variables", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = ROW_RE.match(line)
        if match:
            assert match["name"] not in rows, f"{match['name']} has two rows in the README table"
            rows[match["name"]] = match["default"]
    return rows


def test_argument_spec_and_readme_table_name_the_same_variables():
    assert sorted(options()) == sorted(readme_rows())


@pytest.mark.parametrize("name", sorted(options()))
def test_readme_shows_the_default(name):
    value = defaults()[name]
    cell = readme_rows()[name]
    if isinstance(value, str) and "{{" in value:
        # A computed default is described in words, naming what it is computed from.
        assert "block_device_mappings" in cell, cell
    else:
        assert cell == as_cell(value), f"{name}: README says {cell}, defaults say {value!r}"


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
