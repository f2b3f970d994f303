"""Unit tests for the entry point parameter check (plugins/action/entry_point.py)."""

import pytest

from ansible_collections.pulse.infra.plugins.action import entry_point as ep
from conftest import REPO

DEPLOY = {"version": "release", "force": "deploy anyway", "pulse_rollout_serial": "batch"}
KNOWN = ep.argument_spec_names(REPO / "roles") | ep.inventory_names([str(REPO / "inventories/lab")])
PREFIXES = ep.role_prefixes(REPO / "roles")


@pytest.mark.parametrize("extra, expected", [
    ({"pulse_rollout_serail": 2}, [("pulse_rollout_serail", "pulse_rollout_serial")]),
    ({"verison": "v1.2.0"}, [("verison", "version")]),
    ({"forse": True}, [("forse", "force")]),
    ({"pulse_node_cuont": 4}, [("pulse_node_cuont", "pulse_node_count")]),
    ({"ebs_data_mount_pth": "/x"}, [("ebs_data_mount_pth", "ebs_data_mount_path")]),
    ({"pulse_zzzz_qqqq": 1}, [("pulse_zzzz_qqqq", None)]),
])
def test_misspelt_names_are_refused_with_the_closest_known_name(extra, expected):
    assert ep.check(extra, DEPLOY, KNOWN, PREFIXES) == expected


@pytest.mark.parametrize("extra", [
    {"version": "v1.2", "force": True, "pulse_rollout_serial": "20%"},
    {"pulse_node_count": 4, "pulse_node_systemd_interval": 2500},  # inventory and role variables
    {"ansible_python_interpreter": "/usr/bin/python3"},
    {"my_own_thing": 1},  # unrelated to this entry point: left alone
])
def test_known_and_unrelated_names_pass(extra):
    assert ep.check(extra, DEPLOY, KNOWN, PREFIXES) == []


def test_the_known_names_come_from_argument_specs_and_inventories():
    assert {"pulse_node_systemd_restart_mode", "rust_build_user", "pulse_node_count",
            "pulse_release_parameter", "pulse_ssh_via"} <= KNOWN
    assert {"pulse_", "pulse_node_systemd_", "backup_cron_"} <= PREFIXES


def test_usage_lists_every_parameter():
    text = ep.usage_text("deploy_node.yml", "ansible-playbook deploy_node.yml -e version=v1.2.0", DEPLOY)
    assert text.splitlines()[0] == "Usage: ansible-playbook deploy_node.yml -e version=v1.2.0"
    for name in DEPLOY:
        assert f"  {name}" in text
    assert "none of its own" in ep.usage_text("site.yml", "", {})


def test_every_entry_point_checks_its_parameters_first():
    """The playbooks users type each call pulse.infra.entry_point in their first play."""
    import yaml

    for path in ["site.yml", "playbooks/deploy_node.yml", "playbooks/build_node.yml", "playbooks/restart.yml",
                 "playbooks/backup.yml", "playbooks/restore.yml", "playbooks/teardown.yml",
                 "playbooks/provision.yml", "playbooks/configure_nodes.yml", "playbooks/ingress_tunnel.yml"]:
        first = yaml.safe_load((REPO / path).read_text())[0]
        tasks = first.get("pre_tasks") or first.get("tasks") or []
        assert "pulse.infra.entry_point" in tasks[0], f"{path}: the first task is not the parameter check"
