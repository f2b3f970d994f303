"""The lab itself: moto instances become systemd containers, reachable by the dynamic inventory."""

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO, VENV_BIN, ansible_env, aws, docker, labctl, run_playbook

pytestmark = pytest.mark.lab


def wait_for(predicate, timeout=60, interval=1.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def labtest_instances(states=("pending", "running")):
    reservations = aws("ec2").describe_instances(
        Filters=[{"Name": "tag:Env", "Values": ["labtest"]},
                 {"Name": "instance-state-name", "Values": list(states)}]
    )["Reservations"]
    return [i for r in reservations for i in r["Instances"]]


def container(iid):
    proc = docker("inspect", iid, check=False)
    return json.loads(proc.stdout)[0] if proc.returncode == 0 else None


def labtest_inventory(tmp_path):
    """The lab's inventory (aws_ec2 and group_vars: the SSH door), for the throwaway Env=labtest
    instead of Env=lab."""
    text = (REPO / "inventories/lab/aws_ec2.yml").read_text()
    assert "tag:Env: lab  #" in text
    inventory = tmp_path / "labtest"
    shutil.copytree(REPO / "inventories/lab/group_vars", inventory / "group_vars")  # links followed
    (inventory / "aws_ec2.yml").write_text(text.replace("tag:Env: lab  #", "tag:Env: labtest  #"))
    return inventory


@pytest.fixture(scope="module")
def two_instances(lab):
    result = run_playbook("tests/integration/playbooks/lab_instances.yml")
    assert result.rc == 0, result.output[-3000:]
    instances = wait_for(lambda: len(labtest_instances()) == 2 and labtest_instances(), what="2 instances")
    labctl("sync")
    return instances


def test_each_instance_is_a_systemd_container_at_its_private_ip(two_instances):
    for inst in two_instances:
        info = container(inst["InstanceId"])
        assert info is not None, f"no container for {inst['InstanceId']}"
        assert info["Config"]["Labels"]["pulse.lab.instance"] == inst["InstanceId"]
        ips = [n["IPAddress"] for n in info["NetworkSettings"]["Networks"].values()]
        assert ips == [inst["PrivateIpAddress"]]
        state = wait_for(
            lambda: docker("exec", inst["InstanceId"], "systemctl", "is-system-running", check=False)
            .stdout.strip() in ("running", "degraded")
            and docker("exec", inst["InstanceId"], "systemctl", "is-system-running", check=False).stdout.strip(),
            timeout=60, what="systemd to finish booting",
        )
        assert state == "running", docker("exec", inst["InstanceId"], "systemctl", "--failed", check=False).stdout


def test_each_data_volume_is_a_block_device_with_its_nitro_link(two_instances):
    for inst in two_instances:
        (mapping,) = [m for m in inst["BlockDeviceMappings"] if m["DeviceName"] == "/dev/sdf"]
        serial = mapping["Ebs"]["VolumeId"].replace("-", "")
        link = f"/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_{serial}"
        out = docker("exec", inst["InstanceId"], "sh", "-c", f"test -b /dev/nvme1n1 && readlink -f {link}").stdout
        assert out.strip() == "/dev/nvme1n1"


def test_subnets_of_one_vpc_reach_each_other(two_instances):
    a, b = two_instances
    assert a["SubnetId"] != b["SubnetId"]
    proc = docker("exec", a["InstanceId"], "python3", "-c",
                  f"import socket; s=socket.socket(); s.settimeout(3); print(s.connect_ex(('{b['PrivateIpAddress']}', 9)))")
    # 111 = connection refused: the packet reached the other instance (nothing listens on 9).
    assert proc.stdout.strip() == "111"


def test_instances_reach_moto_on_the_services_address(two_instances):
    proc = docker("exec", two_instances[0]["InstanceId"], "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                  "http://198.18.0.1:5000/moto-api/")
    assert proc.stdout == "200"


def test_dynamic_inventory_lists_and_reaches_them(two_instances, tmp_path):
    inventory = labtest_inventory(tmp_path)
    graph = subprocess.run([str(VENV_BIN / "ansible-inventory"), "-i", str(inventory), "--graph"],
                           cwd=REPO, env=ansible_env(), capture_output=True, text=True, check=True).stdout
    assert "pulse-labtest-1" in graph and "pulse-labtest-2" in graph
    assert "@pulse_labtest:" in graph
    ping = subprocess.run([str(VENV_BIN / "ansible"), "-i", str(inventory), "all", "-m", "ansible.builtin.ping"],
                          cwd=REPO, env=ansible_env(), capture_output=True, text=True, check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert ping.stdout.count("SUCCESS") == 2


def test_up_twice_changes_nothing(two_instances):
    before = docker("ps", "-q", "--filter", "label=pulse.lab").stdout.split()
    moto_pid = (REPO / ".lab" / "moto.pid").read_text()
    labctl("up")
    labctl("sync")
    assert docker("ps", "-q", "--filter", "label=pulse.lab").stdout.split() == before
    assert (REPO / ".lab" / "moto.pid").read_text() == moto_pid


def test_terminated_instance_loses_its_container_and_keeps_its_volume(two_instances):
    victim = two_instances[1]
    (mapping,) = [m for m in victim["BlockDeviceMappings"] if m["DeviceName"] == "/dev/sdf"]
    aws("ec2").terminate_instances(InstanceIds=[victim["InstanceId"]])
    labctl("sync")
    assert container(victim["InstanceId"]) is None
    assert container(two_instances[0]["InstanceId"]) is not None
    volume = aws("ec2").describe_volumes(VolumeIds=[mapping["Ebs"]["VolumeId"]])["Volumes"][0]
    assert volume["State"] == "available"
    assert (REPO / ".lab" / "volumes" / f"{volume['VolumeId']}.img").exists()


def test_missing_docker_engine_gives_a_clear_message():
    proc = subprocess.run(
        [str(VENV_BIN / "python"), str(REPO / "lab/labctl.py"), "up"],
        env=ansible_env(DOCKER_HOST="unix:///nonexistent/docker.sock"), capture_output=True, text=True,
        check=False, timeout=60,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "The Docker engine is not answering" in proc.stderr
    assert "dockerd" in proc.stderr  # says how to start it
