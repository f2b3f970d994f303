"""backup_cron: its entry points' options and literal defaults, restore through the node role's entry
points; the README has the runbook; the units and the script agree on the paths the README documents."""

import pytest
import yaml

from conftest import REPO

ROLE = REPO / "roles" / "backup_cron"

def load(path):
    return yaml.safe_load(path.read_text())


def options(entry="main"):
    return load(ROLE / "meta" / "argument_specs.yml")["argument_specs"][entry]["options"]


def defaults():
    return load(ROLE / "defaults" / "main.yml")


def readme():
    return (ROLE / "README.md").read_text()


def test_every_entry_point_validates_the_same_options():
    assert options("run") == options("main")
    restore = options("restore")
    assert {k: v for k, v in restore.items() if k in options()} == options()
    assert sorted(set(restore) - set(options())) == sorted(k for k in defaults() if k.startswith("backup_cron_restore_"))


def test_defaults_are_literals_but_the_host_specific_ones():
    computed = {name for name, value in defaults().items() if isinstance(value, str) and "{{" in value}
    assert computed == {"backup_cron_enabled", "backup_cron_node_name", "backup_cron_snapshot_volume_id"}


def test_restore_uses_the_node_roles_entry_points_not_its_internals():
    """The restore entry point stops and starts the node, gives it its data and checks it through
    pulse_node_systemd's entry points: it names none of that role's unit, user or release layout."""
    text = "".join(path.read_text() for path in sorted((ROLE / "tasks").glob("restore*.yml")))
    for internal in ("pulse-node.service", "owner: pulse", "/opt/pulse", "pulse_node_systemd_version", "tasks_from: verify"):
        assert internal not in text, internal
    for entry in ("stop", "start"):
        assert f"name: pulse.infra.pulse_node_systemd\n    tasks_from: {entry}" in text, entry
    playbook = (REPO / "playbooks" / "restore.yml").read_text()
    assert "tasks_from: restore" in playbook and len(yaml.safe_load(playbook)[0]["tasks"]) == 2


def test_no_credential_variable_the_instance_role_gives_them():
    assert not [name for name in options() if name.endswith(("_access_key", "_secret_key"))]


def test_readme_has_the_runbook():
    text = readme()
    runbook = text.split("## Backups and restore", 1)[1]
    for heading in ("What runs when", "List the backups", "Run a backup now", "Check a backup without restoring",
                    "Restore one node", "Restore onto a new node", "The EBS snapshot"):
        assert f"### {heading}" in runbook, heading
    for needle in ("playbooks/restore.yml -l", "verify_only=true", "backup_node=", "/dev/sdf",
                   "ebs_data keeps an existing filesystem", "Persistent=true", "/var/lib/pulse-backup/last_success"):
        assert needle in text, needle


def test_units_and_script_use_the_documented_paths():
    internal = load(ROLE / "vars" / "main.yml")
    service = (ROLE / "templates" / "pulse-backup.service.j2").read_text()
    timer = (ROLE / "templates" / "pulse-backup.timer.j2").read_text()
    script = (ROLE / "files" / "pulse_backup.py").read_text()
    assert internal["_backup_cron_state_dir"] == "/var/lib/pulse-backup"
    assert "StateDirectory=pulse-backup" in service and "RuntimeDirectory=pulse-backup" in service
    assert "ExecStopPost=" in service and "--recover" in service
    assert "Persistent=true" in timer
    assert 'RUNTIME_DIR = "/run/pulse-backup"' in script
    assert '"last_success"' in script
    for template in (service, timer):
        assert template.startswith("{{ ansible_managed | comment }}")


@pytest.mark.parametrize("os_vars", ["Debian.yml", "RedHat.yml"])
def test_os_vars_install_boto3_and_fsfreeze(os_vars):
    packages = load(ROLE / "vars" / os_vars)["_backup_cron_packages"]
    assert {"python3", "python3-boto3", "tar", "gzip", "util-linux"} <= set(packages)


def test_galaxy_platforms():
    platforms = {p["name"]: p["versions"] for p in load(ROLE / "meta" / "main.yml")["galaxy_info"]["platforms"]}
    assert platforms == {"Debian": ["bookworm"], "Amazon Linux": ["2023"]}
