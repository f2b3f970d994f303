"""The lab and production use the same aws_ec2 inventory; only the marked lab lines differ."""

import yaml

from conftest import REPO

LAB = REPO / "inventories/lab/aws_ec2.yml"
PROD = REPO / "inventories/production/aws_ec2.yml"
LAB_SSH = REPO / "inventories/lab/group_vars/all/ssh.yml"
PROD_SSH = REPO / "inventories/production/group_vars/all/ssh.yml"
# How a host is reached, derived from the door settings (group_vars/all/ssh.yml) alone.
LAB_CONNECTION = REPO / "inventories/lab/group_vars/aws_ec2/connection.yml"
PROD_CONNECTION = REPO / "inventories/production/group_vars/aws_ec2/connection.yml"


def load(path):
    return yaml.safe_load(path.read_text())


def test_same_plugin_groups_hostnames_and_filters():
    lab, prod = load(LAB), load(PROD)
    assert lab["plugin"] == prod["plugin"] == "amazon.aws.aws_ec2"
    assert lab["keyed_groups"] == prod["keyed_groups"]
    assert lab["hostnames"] == prod["hostnames"]
    assert lab["regions"] == prod["regions"]
    assert {k: v for k, v in lab["filters"].items() if k != "tag:Env"} == {
        k: v for k, v in prod["filters"].items() if k != "tag:Env"
    }
    assert lab["filters"]["tag:Env"] == "lab" and prod["filters"]["tag:Env"] == "production"


def test_same_compose_and_the_same_door():
    """No container connection in the lab: the same compose (the AMI's user), SSH for both."""
    lab, prod = load(LAB)["compose"], load(PROD)["compose"]
    assert lab == prod
    assert "ansible_connection" not in lab
    assert "admin" in lab["ansible_user"] and "ec2-user" in lab["ansible_user"]
    for path in (LAB, PROD, LAB_SSH, PROD_SSH):
        assert "community.docker" not in path.read_text(), path


def test_the_door_is_derived_the_same_way_and_only_marked_lab_lines_differ():
    lab, prod = load(LAB_SSH), load(PROD_SSH)
    assert set(lab) == set(prod)
    assert LAB_CONNECTION.is_symlink() and LAB_CONNECTION.resolve() == PROD_CONNECTION.resolve()
    assert set(load(PROD_CONNECTION)) == {"ansible_host", "ansible_ssh_private_key_file", "ansible_ssh_common_args"}
    assert prod["pulse_ssh_via"] == "ssm" and lab["pulse_ssh_via"] == "direct"
    assert lab["pulse_ssh_address"] == prod["pulse_ssh_address"] == "private"
    assert lab["pulse_ssh_host_key_checking"] == prod["pulse_ssh_host_key_checking"] == "accept-new"
    for line in LAB_SSH.read_text().splitlines():
        key = line.split(":", 1)[0]
        if key in lab and lab[key] != prod[key] and key != "pulse_ssh_public_key":
            assert "# lab:" in line, f"unmarked lab-only line: {line}"


def test_nobody_connects_as_root():
    """ansible.cfg checks host keys and names no remote user; no inventory or play says root."""
    cfg = (REPO / "ansible.cfg").read_text()
    assert "host_key_checking = True" in cfg
    assert "remote_user" not in cfg
    for path in list((REPO / "inventories").rglob("*.yml")) + list((REPO / "playbooks").glob("*.yml")):
        text = path.read_text()
        for key in ("ansible_user", "remote_user", "ansible_ssh_user"):
            assert f"{key}: root" not in text, f"{path}: {key}: root"


def test_only_the_lab_talks_to_moto_with_dummy_keys():
    lab, prod = load(LAB), load(PROD)
    assert lab["endpoint_url"].startswith("http://127.0.0.1:")
    assert "endpoint_url" not in prod and "aws_access_key" not in prod and "aws_secret_key" not in prod
    extra = set(lab) - set(prod)
    assert extra == {"endpoint_url", "aws_access_key", "aws_secret_key"}
    for line in LAB.read_text().splitlines():
        if any(line.strip().startswith(k + ":") for k in extra):
            assert "# lab:" in line, f"unmarked lab-only line: {line}"


def test_lab_constants_agree_with_labctl():
    import importlib.util

    spec = importlib.util.spec_from_file_location("labctl", REPO / "lab/labctl.py")
    labctl = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(labctl)
    env = yaml.safe_load((REPO / "inventories/lab/group_vars/all/env.yml").read_text())
    assert env["pulse_aws_endpoint_url"] == load(LAB)["endpoint_url"] == f"http://127.0.0.1:{labctl.MOTO_PORT}"
    assert env["pulse_aws_instance_endpoint_url"] == f"http://{labctl.SERVICES_IP}:{labctl.MOTO_PORT}"
    assert env["pulse_aws_region"] == labctl.REGION == load(LAB)["regions"][0]
