"""The converge (site.yml) after a deploy, under 20 req/s through the lab load balancer:
it keeps the release deploy_node.yml put on each node (one record in AWS), restarts only
through the drained path one node at a time, and gives a node added by scaling out the
environment's recorded release.

Starts from the lab cluster that site.yml brought up (test_site.py); builds v1.1.0 if it is
not published yet.
"""

import sys

import pytest

from conftest import REPO, aws, docker, get, run_playbook, wait_until

sys.path.insert(0, str(REPO / "lab"))
from traffic import TargetWatch, Traffic  # noqa: E402  (lab/traffic.py)

pytestmark = [pytest.mark.lab, pytest.mark.slow]

TARGET_GROUP = "pulse-lab-node"
PARAMETER = "/pulse/lab/release"
RATE = 20


def nodes():
    reservations = aws("ec2").describe_instances(Filters=[
        {"Name": "tag:Project", "Values": ["pulse"]}, {"Name": "tag:Env", "Values": ["lab"]},
        {"Name": "tag:Role", "Values": ["node"]}, {"Name": "instance-state-name", "Values": ["running"]},
    ])["Reservations"]
    found = [i for r in reservations for i in r["Instances"]]
    return sorted(found, key=lambda i: int(tag(i, "NodeIndex")))


def tag(instance, key):
    return {t["Key"]: t["Value"] for t in instance.get("Tags", [])}.get(key, "")


def versions():
    return {tag(n, "Name"): get(n["PrivateIpAddress"], "/info")["version"] for n in nodes()}


def main_pids():
    return {n["InstanceId"]: docker("exec", n["InstanceId"], "systemctl", "show", "-p", "MainPID", "--value",
                                    "pulse-node").stdout.strip() for n in nodes()}


def node_changes(result):
    return {h: r["changed"] for h, r in result.recap.items() if h.startswith("pulse-lab-node-") and r["changed"]}


def recorded_release():
    return aws("ssm").get_parameter(Name=PARAMETER)["Parameter"]["Value"]


def published(version):
    keys = aws("s3").list_objects_v2(Bucket="pulse-lab-artifacts-0001", Prefix=f"node/pulse-node-{version}")
    return any(o["Key"].endswith(".sha256") for o in keys.get("Contents", []))


@pytest.fixture(scope="module")
def deployed_v110(lab):
    """Every node on v1.1.0 by deploy_node.yml, under traffic: 0 failed requests."""
    assert len(nodes()) == 3, "test_site.py must have brought up the 3-node lab cluster"
    if not published("v1.1.0"):
        build = run_playbook("playbooks/build_node.yml", extra_vars={"version": "v1.1.0"})
        assert build.rc == 0, build.output[-4000:]
    with Traffic(RATE) as traffic, TargetWatch(TARGET_GROUP) as watch:
        result = run_playbook("deploy_node.yml", extra_vars={"version": "v1.1.0"})
    assert result.rc == 0, result.output[-6000:]
    assert set(versions().values()) == {"1.1.0"}
    assert traffic.summary()["failed"] == 0, traffic.summary()
    assert watch.max_out <= 1
    return result


def test_the_deploy_recorded_the_release_of_each_node_and_of_the_environment(deployed_v110):
    assert recorded_release() == "v1.1.0"
    for node in nodes():
        assert tag(node, "PulseRelease") == "v1.1.0", tag(node, "Name")


def test_a_converge_after_a_deploy_keeps_the_release_and_restarts_a_changed_node_drained(deployed_v110):
    """site.yml after deploy_node.yml, with one flag changed: every node keeps the deployed
    release, and each restarts for its new flag one at a time through the drained path."""
    interval = 2500  # the lab's is 2000; the scale-out test below converges back to it
    pids = main_pids()
    with Traffic(RATE) as traffic, TargetWatch(TARGET_GROUP) as watch:
        result = run_playbook("site.yml", extra_vars={"pulse_node_systemd_interval": interval})
    assert result.rc == 0, result.output[-6000:]
    after = main_pids()
    for node in nodes():
        iid = node["InstanceId"]
        assert after[iid] != pids[iid], f"{tag(node, 'Name')} was not restarted"
        env = docker("exec", iid, "cat", "/etc/pulse/pulse-node.env").stdout
        assert f"--interval {interval}" in env
        assert docker("exec", iid, "test", "-e", "/run/pulse-node.restart-pending", check=False).returncode == 1
    # one node at a time, each out of the target group while it restarted, and every request answered
    assert watch.max_out == 1, f"{watch.max_out} nodes out at once"
    assert len(watch.left) == 3 and all(s is not None for s in watch.out_seconds().values())
    # the converge after the deploy kept the deployed release, and said that the inventory differs
    assert set(versions().values()) == {"1.1.0"}, "the converge changed the release"
    assert "pulse_node_version is v1.2.0 in the inventory, but the environment runs v1.1.0" in result.output
    assert "ansible-playbook deploy_node.yml -e version=v1.2.0" in result.output
    assert recorded_release() == "v1.1.0"
    assert traffic.summary()["failed"] == 0, traffic.summary()


def test_a_node_added_by_scaling_out_gets_the_recorded_release_and_peers_with_all(deployed_v110):
    """Also converges the interval back to the lab's (2000): the three existing nodes restart,
    drained, one at a time, for their new peer and their flag."""
    with Traffic(RATE) as traffic, TargetWatch(TARGET_GROUP) as watch:
        result = run_playbook("site.yml", extra_vars={"pulse_node_count": 4})
    assert result.rc == 0, result.output[-6000:]
    for node in nodes():
        assert "--interval 2000" in docker("exec", node["InstanceId"], "cat", "/etc/pulse/pulse-node.env").stdout
    found = nodes()
    assert len(found) == 4
    assert versions() == {f"pulse-lab-node-{i}": "1.1.0" for i in range(1, 5)}
    assert tag(found[3], "PulseRelease") == "v1.1.0"
    for node in found:
        wait_until(lambda ip=node["PrivateIpAddress"]: get(ip, "/info")["peer_count"] >= 3, timeout=90,
                   what=f"{tag(node, 'Name')} to peer with the three others")
    assert watch.max_out <= 1, f"{watch.max_out} nodes out at once"
    assert traffic.summary()["failed"] == 0, traffic.summary()
