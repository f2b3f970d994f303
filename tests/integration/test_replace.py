"""A lost node is replaced with its data (issue #18): node-2's instance is terminated under 20 req/s
through the lab load balancer, then `site.yml` launches node-2 again in the same zone, attaches the
data volume the old instance left `available`, and the node starts at the height it had and peers
with all; 0 failed requests from the loss to the end of the converge.

Needs 3 nodes (runs `site.yml` first when alone).
"""

import sys

import pytest

from conftest import REPO, aws, docker, get, run_playbook, wait_until

sys.path.insert(0, str(REPO / "lab"))
from traffic import Traffic  # noqa: E402  (lab/traffic.py)

pytestmark = [pytest.mark.lab, pytest.mark.slow]

RATE = 20
LOST = "pulse-lab-node-2"
DEVICE = "/dev/sdf"
MARK = "/opt/pulse/data/.written-before-the-loss"


def tag(resource, key):
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}.get(key, "")


def node_instances(states=("pending", "running", "stopping", "stopped")):
    reservations = aws("ec2").describe_instances(Filters=[
        {"Name": "tag:Project", "Values": ["pulse"]}, {"Name": "tag:Env", "Values": ["lab"]},
        {"Name": "tag:Role", "Values": ["node"]}, {"Name": "instance-state-name", "Values": list(states)},
    ])["Reservations"]
    return sorted((i for r in reservations for i in r["Instances"]), key=lambda i: int(tag(i, "NodeIndex")))


def data_volume(instance):
    (volume,) = [m["Ebs"]["VolumeId"] for m in instance["BlockDeviceMappings"] if m["DeviceName"] == DEVICE]
    return volume


@pytest.fixture(scope="module")
def three_nodes(lab):
    if [tag(i, "Name") for i in node_instances(("running",))] != [f"pulse-lab-node-{n}" for n in (1, 2, 3)]:
        result = run_playbook("site.yml", extra_vars={"pulse_node_count": 3})
        assert result.rc == 0, result.output[-6000:]
    return node_instances(("running",))


@pytest.fixture(scope="module")
def replaced(three_nodes):
    lost = three_nodes[1]
    assert tag(lost, "Name") == LOST
    before = {"id": lost["InstanceId"], "volume": data_volume(lost), "zone": lost["Placement"]["AvailabilityZone"],
              "height": get(lost["PrivateIpAddress"], "/chain")["height"]}
    # a file only the old node's data volume holds
    docker("exec", before["id"], "sh", "-c", f"date -u +%s > {MARK} && sync")
    with Traffic(RATE) as traffic:
        aws("ec2").terminate_instances(InstanceIds=[before["id"]])
        wait_until(lambda: aws("ec2").describe_volumes(VolumeIds=[before["volume"]])["Volumes"][0]["State"]
                   == "available", timeout=60, what=f"{LOST}'s data volume to be left available")
        result = run_playbook("site.yml")
    assert result.rc == 0, result.output[-6000:]
    (new,) = [i for i in node_instances(("running",)) if tag(i, "Name") == LOST]
    return {"before": before, "new": new, "result": result, "traffic": traffic, "nodes": node_instances(("running",))}


def test_the_replacement_took_the_same_data_volume_in_the_same_zone(replaced):
    before, new = replaced["before"], replaced["new"]
    assert new["InstanceId"] != before["id"]
    assert new["Placement"]["AvailabilityZone"] == before["zone"]
    assert data_volume(new) == before["volume"]
    (volume,) = aws("ec2").describe_volumes(VolumeIds=[before["volume"]])["Volumes"]
    assert volume["State"] == "in-use" and volume["Attachments"][0]["InstanceId"] == new["InstanceId"]
    # the same filesystem, not a copy synced from the peers
    assert docker("exec", new["InstanceId"], "test", "-s", MARK, check=False).returncode == 0
    assert f"takes back its data volume {before['volume']}" in replaced["result"].output
    # no second data volume was made for it
    left = aws("ec2").describe_volumes(Filters=[{"Name": "tag:Name", "Values": [f"{LOST}-data"]},
                                                {"Name": "status", "Values": ["available"]}])["Volumes"]
    assert left == []


def test_it_starts_at_the_height_it_had_and_peers_with_all(replaced):
    ip = replaced["new"]["PrivateIpAddress"]
    assert get(ip, "/chain")["height"] >= replaced["before"]["height"]
    for node in replaced["nodes"]:
        wait_until(lambda a=node["PrivateIpAddress"]: get(a, "/info")["peer_count"] == 2, timeout=90,
                   what=f"{tag(node, 'Name')} to peer with the two others")


def test_it_joined_the_load_balancer_only_through_its_gates(replaced):
    new = replaced["new"]
    out = replaced["result"].output
    # provisioning launched it with PulseJoining and did not register it; the converge's join gates did
    assert "TASK [Join gate: the chain is at most pulse_rollout_join_max_lag blocks behind the highest peer]" in out
    assert "PulseJoining" not in {t["Key"] for t in new.get("Tags", [])}
    elb = aws("elbv2")
    arn = elb.describe_target_groups(Names=["pulse-lab-node"])["TargetGroups"][0]["TargetGroupArn"]
    health = {t["Target"]["Id"]: t["TargetHealth"]["State"]
              for t in elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]}
    assert health.get(new["InstanceId"]) == "healthy"
    assert replaced["before"]["id"] not in health


def test_no_request_failed_from_the_loss_to_the_end_of_the_converge(replaced):
    summary = replaced["traffic"].summary()
    assert summary["failed"] == 0, replaced["traffic"].explain()
    assert summary["sent"] > 100
