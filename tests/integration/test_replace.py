"""Lost nodes are replaced with their data (issue #18), under 20 req/s through the lab load balancer:
- node-2's instance is terminated: `site.yml` launches node-2 again in the same zone and attaches
  the data volume the old instance left `available`; it starts at the height it had;
- node-3's instance is terminated and its data volume deleted: its new data volume is made from
  its newest snapshot (tagged Node=pulse-lab-node-3, as backup_cron's), so it starts at the
  snapshot's height.
Both join the load balancer through their gates and peer with all; 0 failed requests from the
loss to the end of the converge.

Needs 3 nodes (runs `site.yml` first when alone).
"""

import sys

import pytest

from conftest import REPO, aws, docker, get, lab_nodes as node_instances, run_playbook, tag, wait_until

sys.path.insert(0, str(REPO / "lab"))
from traffic import Traffic  # noqa: E402  (lab/traffic.py)

pytestmark = [pytest.mark.lab, pytest.mark.slow]

RATE = 20
LOST = "pulse-lab-node-2"
GONE = "pulse-lab-node-3"
DEVICE = "/dev/sdf"
MARK = "/opt/pulse/data/.written-before-the-loss"


def data_volume(instance):
    (volume,) = [m["Ebs"]["VolumeId"] for m in instance["BlockDeviceMappings"] if m["DeviceName"] == DEVICE]
    return volume


@pytest.fixture(scope="module")
def three_nodes(lab):
    if [tag(i, "Name") for i in node_instances(("running",))] != [f"pulse-lab-node-{n}" for n in (1, 2, 3)]:
        result = run_playbook("site.yml", extra_vars={"pulse_node_count": 3})
        assert result.rc == 0, result.output[-6000:]
    return node_instances(("running",))


def snapshot_of(instance):
    """A snapshot of the node's data volume, tagged as backup_cron tags its own."""
    ec2 = aws("ec2")
    snap = ec2.create_snapshot(VolumeId=data_volume(instance), Description="test_replace", TagSpecifications=[{
        "ResourceType": "snapshot", "Tags": [{"Key": "Project", "Value": "pulse"}, {"Key": "Env", "Value": "lab"},
                                             {"Key": "Node", "Value": tag(instance, "Name")}]}])["SnapshotId"]
    # the lab copies the volume's data into the snapshot within a pass of the backer
    wait_until(lambda: (REPO / ".lab" / "snapshots" / f"{snap}.img").exists(), timeout=30,
               what=f"the lab to copy {snap}")
    return snap


@pytest.fixture(scope="module")
def replaced(three_nodes):
    lost, gone = three_nodes[1], three_nodes[2]
    assert (tag(lost, "Name"), tag(gone, "Name")) == (LOST, GONE)
    before = {"id": lost["InstanceId"], "volume": data_volume(lost), "zone": lost["Placement"]["AvailabilityZone"],
              "height": get(lost["PrivateIpAddress"], "/chain")["height"]}
    # a file only the old nodes' data volumes hold
    for node in (lost, gone):
        docker("exec", node["InstanceId"], "sh", "-c", f"date -u +%s > {MARK} && sync")
    gone_before = {"id": gone["InstanceId"], "volume": data_volume(gone),
                   "height": get(gone["PrivateIpAddress"], "/chain")["height"]}
    gone_before["snapshot"] = snapshot_of(gone)
    ec2 = aws("ec2")
    with Traffic(RATE) as traffic:
        ec2.terminate_instances(InstanceIds=[before["id"], gone_before["id"]])
        for volume in (before["volume"], gone_before["volume"]):
            wait_until(lambda v=volume: ec2.describe_volumes(VolumeIds=[v])["Volumes"][0]["State"] == "available",
                       timeout=60, what=f"{volume} to be left available")
        ec2.delete_volume(VolumeId=gone_before["volume"])
        result = run_playbook("site.yml")
    assert result.rc == 0, result.output[-6000:]
    running = node_instances(("running",))
    (new,) = [i for i in running if tag(i, "Name") == LOST]
    (new_gone,) = [i for i in running if tag(i, "Name") == GONE]
    return {"before": before, "new": new, "gone_before": gone_before, "new_gone": new_gone, "result": result,
            "traffic": traffic, "nodes": running}


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


def test_a_node_whose_volume_is_gone_starts_from_its_newest_snapshot(replaced):
    gone, new = replaced["gone_before"], replaced["new_gone"]
    volume_id = data_volume(new)
    assert volume_id != gone["volume"]
    (volume,) = aws("ec2").describe_volumes(VolumeIds=[volume_id])["Volumes"]
    assert volume["SnapshotId"] == gone["snapshot"]
    assert docker("exec", new["InstanceId"], "test", "-s", MARK, check=False).returncode == 0
    assert f"its new data volume is made from its newest snapshot {gone['snapshot']}" in replaced["result"].output
    assert get(new["PrivateIpAddress"], "/chain")["height"] >= gone["height"]


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
    assert "pulse_rollout : Join gate: the chain is at most pulse_rollout_join_max_lag blocks behind the highest peer]" in out
    assert "PulseJoining" not in {t["Key"] for t in new.get("Tags", [])}
    assert "PulseJoining" not in {t["Key"] for t in replaced["new_gone"].get("Tags", [])}
    elb = aws("elbv2")
    arn = elb.describe_target_groups(Names=["pulse-lab-node"])["TargetGroups"][0]["TargetGroupArn"]
    health = {t["Target"]["Id"]: t["TargetHealth"]["State"]
              for t in elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]}
    assert health.get(new["InstanceId"]) == health.get(replaced["new_gone"]["InstanceId"]) == "healthy"
    assert replaced["before"]["id"] not in health


def test_no_request_failed_from_the_loss_to_the_end_of_the_converge(replaced):
    summary = replaced["traffic"].summary()
    assert summary["failed"] == 0, replaced["traffic"].explain()
    assert summary["sent"] > 100
