"""The converge (site.yml) after a deploy, under 20 req/s through the lab load balancer:
it keeps the release deploy_node.yml put on each node (one record in AWS), restarts only
through the drained path one node at a time, and gives a node added by scaling out the
environment's recorded release.

Starts from the 3-node lab cluster on v1.1.0 that test_deploy.py leaves (deploys v1.1.0 under
traffic first when the nodes run something else; builds it if it is not published yet).
One converge does both changes an operator makes (a flag, one more node): each costs a
whole site.yml run in the lab, and together they show that a restart for a flag and a
new node's first start go through the same drained, one-at-a-time path.
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
INTERVAL = 2500  # the lab's is 2000


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
    """Every node on v1.1.0 by deploy_node.yml (under traffic, 0 failed requests), unless
    test_deploy.py left them there."""
    assert len(nodes()) == 3, "test_site.py must have brought up the 3-node lab cluster"
    if set(versions().values()) == {"1.1.0"} and recorded_release() == "v1.1.0":
        return None
    if not published("v1.1.0"):
        build = run_playbook("playbooks/build_node.yml", extra_vars={"version": "v1.1.0"})
        assert build.rc == 0, build.output[-4000:]
    with Traffic(RATE) as traffic, TargetWatch(TARGET_GROUP) as watch:
        result = run_playbook("deploy_node.yml", extra_vars={"version": "v1.1.0"})
    assert result.rc == 0, result.output[-6000:]
    assert set(versions().values()) == {"1.1.0"}
    assert traffic.summary()["failed"] == 0, traffic.explain()
    assert watch.max_out <= 1
    return result


def test_the_deploy_recorded_the_release_of_each_node_and_of_the_environment(deployed_v110):
    assert recorded_release() == "v1.1.0"
    for node in nodes():
        assert tag(node, "PulseRelease") == "v1.1.0", tag(node, "Name")


@pytest.fixture(scope="module")
def converged(deployed_v110):
    """site.yml after the deploy, with one flag changed and one node more, under traffic."""
    before = {n["InstanceId"] for n in nodes()}
    pids = main_pids()
    with Traffic(RATE) as traffic, TargetWatch(TARGET_GROUP) as watch:
        result = run_playbook("site.yml", extra_vars={"pulse_node_systemd_interval": INTERVAL,
                                                      "pulse_node_count": 4})
    assert result.rc == 0, result.output[-6000:]
    return {"result": result, "before": before, "pids": pids, "traffic": traffic, "watch": watch}


def test_a_converge_after_a_deploy_keeps_the_release_and_restarts_a_changed_node_drained(converged):
    """Every node keeps the deployed release, and each restarts for its new flag (and its new
    peer) one at a time through the drained path."""
    result, watch = converged["result"], converged["watch"]
    after = main_pids()
    for node in nodes():
        iid = node["InstanceId"]
        if iid in converged["before"]:
            assert after[iid] != converged["pids"][iid], f"{tag(node, 'Name')} was not restarted"
        env = docker("exec", iid, "cat", "/etc/pulse/pulse-node.env").stdout
        assert f"--interval {INTERVAL}" in env
        assert docker("exec", iid, "test", "-e", "/run/pulse-node.restart-pending", check=False).returncode == 1
    # one node at a time, each out of the target group while it restarted, and every request answered
    assert watch.max_out == 1, f"{watch.max_out} nodes out at once"
    assert set(watch.left) == converged["before"] and all(s is not None for s in watch.out_seconds().values())
    # the converge after the deploy kept the deployed release, and said that the inventory differs
    assert versions() == {f"pulse-lab-node-{i}": "1.1.0" for i in range(1, 5)}, "the converge changed the release"
    assert "pulse_node_version is v1.2.0 in the inventory, but the environment runs v1.1.0" in result.output
    assert "ansible-playbook deploy_node.yml -e version=v1.2.0" in result.output
    assert recorded_release() == "v1.1.0"
    assert converged["traffic"].summary()["failed"] == 0, converged["traffic"].explain()


def test_a_node_added_by_scaling_out_gets_the_recorded_release_and_peers_with_all(converged):
    found = nodes()
    assert len(found) == 4
    new = [n for n in found if n["InstanceId"] not in converged["before"]]
    assert [tag(n, "Name") for n in new] == ["pulse-lab-node-4"]
    assert tag(new[0], "PulseRelease") == "v1.1.0"
    assert get(new[0]["PrivateIpAddress"], "/info")["version"] == "1.1.0"
    for node in found:
        wait_until(lambda ip=node["PrivateIpAddress"]: get(ip, "/info")["peer_count"] >= 3, timeout=90,
                   what=f"{tag(node, 'Name')} to peer with the three others")
