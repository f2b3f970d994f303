"""backup_cron: meta/argument_specs.yml, defaults/main.yml and the README's variable table agree;
the README has the runbook; the units and the script agree on the paths the README documents."""

import re

import pytest
import yaml

from conftest import REPO, readme_cell as as_cell

ROLE = REPO / "roles" / "backup_cron"
ROW_RE = re.compile(r"^\|\s*`(?P<name>backup_cron_[a-z0-9_]+)`\s*\|\s*(?P<default>[^|]*?)\s*\|")
# What a computed default is computed from: the inventory names it reads (the internal
# designated-host helper is described by what it reads).
SOURCES_RE = re.compile(r"\b(pulse_[a-z_]+|block_device_mappings|inventory_hostname|backup_cron_[a-z_]+)\b")
INTERNAL_SOURCES = {"_backup_cron_designated_host": ["pulse_node_index", "backup_cron_node_group"]}


def load(path):
    return yaml.safe_load(path.read_text())


def options(entry="main"):
    return load(ROLE / "meta" / "argument_specs.yml")["argument_specs"][entry]["options"]


def defaults():
    return load(ROLE / "defaults" / "main.yml")


def readme():
    return (ROLE / "README.md").read_text()


def readme_rows():
    section = readme().split("## Variables", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = ROW_RE.match(line)
        if match:
            assert match["name"] not in rows, f"{match['name']} has two rows in the README table"
            rows[match["name"]] = match["default"]
    return rows


def test_argument_spec_and_readme_table_name_the_same_variables():
    assert sorted(options()) == sorted(readme_rows())


def test_every_entry_point_validates_the_same_options():
    assert options("run") == options("main")


@pytest.mark.parametrize("name", sorted(options()))
def test_readme_shows_the_default(name):
    value = defaults()[name]
    cell = readme_rows()[name]
    if isinstance(value, str) and "{{" in value:
        sources = set(SOURCES_RE.findall(value))
        for internal, words in INTERNAL_SOURCES.items():
            if internal in value:
                sources |= set(words)
        assert sources, name
        for source in sources:
            assert source in cell, f"{name}: the README cell should name {source}: {cell}"
    else:
        assert cell == as_cell(value), f"{name}: README says {cell}, defaults say {value!r}"


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
