"""The lab and production use the same aws_ec2 inventory; only the marked lab lines differ."""

import yaml

from conftest import REPO

LAB = REPO / "inventories/lab/aws_ec2.yml"
PROD = REPO / "inventories/production/aws_ec2.yml"
# compose keys that say how to connect: containers in the lab, SSH in production.
CONNECTION_KEYS = {"ansible_connection", "ansible_host", "ansible_user"}


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


def test_same_compose_apart_from_the_connection():
    lab, prod = load(LAB)["compose"], load(PROD)["compose"]
    assert {k: v for k, v in lab.items() if k not in CONNECTION_KEYS} == {
        k: v for k, v in prod.items() if k not in CONNECTION_KEYS
    }
    assert lab["ansible_connection"] == "'community.docker.docker'"


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
