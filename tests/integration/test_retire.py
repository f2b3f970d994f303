"""playbooks/retire_node.yml (issue #18): node-4 of 4 is retired under 20 req/s through the lab load
balancer — drained, stopped, a final snapshot of its data volume, instance terminated, volume kept
— then the three others lose it from their --peers through drained restarts, one at a time, and
its alarms are gone; 0 failed requests. Then -e destroy_data=true deletes the kept volume.

Starts from the 4-node cluster that test_converge.py and test_release.py leave (grows to 4 first
when run alone).
"""

import sys

import pytest

from conftest import REPO, aws, docker, get, lab_nodes as node_instances, run_playbook, tag, wait_until

sys.path.insert(0, str(REPO / "lab"))
from traffic import TargetWatch, Traffic  # noqa: E402  (lab/traffic.py)

pytestmark = [pytest.mark.lab, pytest.mark.slow]

TARGET_GROUP = "pulse-lab-node"
RATE = 20
RETIRED = "pulse-lab-node-4"


def alarm_names():
    pages = aws("cloudwatch").get_paginator("describe_alarms").paginate()
    return [a["AlarmName"] for page in pages for a in page["MetricAlarms"]]


@pytest.fixture(scope="module")
def four_nodes(lab):
    if len(node_instances()) < 4:
        grown = run_playbook("site.yml", extra_vars={"pulse_node_count": 4})
        assert grown.rc == 0, grown.output[-6000:]
    found = node_instances()
    assert [tag(i, "Name") for i in found] == [f"pulse-lab-node-{n}" for n in range(1, 5)]
    return found


def test_without_confirm_it_only_says_what_would_go(four_nodes):
    result = run_playbook("playbooks/retire_node.yml", extra_vars={"pulse_node_count": 3})
    assert result.rc == 0, result.output[-4000:]
    assert f"Would retire (add -e confirm=lab to do it): {RETIRED}. Their data volumes are kept." in result.output
    assert result.changed == 0, result.changed_hosts()
    assert len(node_instances(("running",))) == 4


@pytest.mark.parametrize("extra,said", [
    ({"pulse_node_count": 4, "confirm": "lab", "nodes": RETIRED}, "is node 4 of the plan (pulse_node_count=4)"),
    ({"pulse_node_count": 3, "confirm": "lab", "nodes": "pulse-lab-node-2"}, "is node 2 of the plan"),
    ({"pulse_node_count": 3, "confirm": "lab", "nodes": "pulse-lab-node-7"}, "is not a running node of lab"),
])
def test_a_node_inside_the_plan_or_unknown_is_refused_before_anything_changes(four_nodes, extra, said):
    result = run_playbook("playbooks/retire_node.yml", extra_vars=extra)
    assert result.rc != 0
    assert said in result.output and "Nothing was changed." in result.output
    assert result.changed == 0, result.changed_hosts()
    assert len(node_instances(("running",))) == 4


def test_a_limit_is_refused(four_nodes):
    result = run_playbook("playbooks/retire_node.yml", "-l", RETIRED,
                          extra_vars={"pulse_node_count": 3, "confirm": "lab"})
    assert result.rc != 0 and "Name the nodes with -e nodes=" in result.output
    assert len(node_instances(("running",))) == 4


@pytest.fixture(scope="module")
def retired(four_nodes):
    node4 = four_nodes[3]
    (volume,) = [m["Ebs"]["VolumeId"] for m in node4["BlockDeviceMappings"] if m["DeviceName"] == "/dev/sdf"]
    pids = {i["InstanceId"]: docker("exec", i["InstanceId"], "systemctl", "show", "-p", "MainPID", "--value",
                                    "pulse-node").stdout.strip() for i in four_nodes[:3]}
    with Traffic(RATE) as traffic, TargetWatch(TARGET_GROUP, leaving=[node4["InstanceId"]]) as watch:
        result = run_playbook("playbooks/retire_node.yml",
                              extra_vars={"pulse_node_count": 3, "confirm": "lab", "nodes": RETIRED})
    assert result.rc == 0, result.output[-6000:]
    return {"result": result, "node4": node4, "volume": volume, "others": four_nodes[:3], "pids": pids,
            "traffic": traffic, "watch": watch}


def test_the_retired_instance_is_gone_and_its_data_volume_kept_with_a_final_snapshot(retired):
    state = aws("ec2").describe_instances(InstanceIds=[retired["node4"]["InstanceId"]])
    assert state["Reservations"][0]["Instances"][0]["State"]["Name"] == "terminated"
    (volume,) = aws("ec2").describe_volumes(VolumeIds=[retired["volume"]])["Volumes"]
    assert volume["State"] == "available" and tag(volume, "Name") == f"{RETIRED}-data"
    snapshots = aws("ec2").describe_snapshots(Filters=[{"Name": "tag:Node", "Values": [RETIRED]},
                                                       {"Name": "tag:Purpose", "Values": ["retirement"]}])["Snapshots"]
    assert retired["volume"] in [s["VolumeId"] for s in snapshots]  # (an earlier retirement of a node-4 may have one too)
    kept = [line for line in retired["result"].output.splitlines() if '"msg": "Kept: ' in line]
    assert kept and f"{RETIRED}-data {retired['volume']}" in kept[0], kept


def test_no_request_failed_and_one_node_at_a_time_was_out(retired):
    assert retired["traffic"].summary()["failed"] == 0, retired["traffic"].explain()
    # the retired node left for good; of the others, one at a time
    assert retired["watch"].max_out == 1, f"{retired['watch'].max_out} of the remaining nodes out at once"
    assert retired["node4"]["InstanceId"] in retired["watch"].left
    assert retired["watch"].out_seconds()[retired["node4"]["InstanceId"]] is None


def test_the_others_lost_it_from_their_peers_through_drained_restarts(retired):
    node4_ip = retired["node4"]["PrivateIpAddress"]
    for node in retired["others"]:
        iid = node["InstanceId"]
        env = docker("exec", iid, "cat", "/etc/pulse/pulse-node.env").stdout
        assert node4_ip not in env, f"{tag(node, 'Name')} still peers with {RETIRED}"
        pid = docker("exec", iid, "systemctl", "show", "-p", "MainPID", "--value", "pulse-node").stdout.strip()
        assert pid != retired["pids"][iid], f"{tag(node, 'Name')} was not restarted"
        wait_until(lambda ip=node["PrivateIpAddress"]: get(ip, "/info")["peer_count"] == 2, timeout=90,
                   what=f"{tag(node, 'Name')} to peer with the two others")
    # each of them left the target group once (drained), and came back
    assert {i["InstanceId"] for i in retired["others"]} <= set(retired["watch"].left)


def test_its_alarms_are_gone(retired):
    names = alarm_names()
    assert names, "no alarm at all: provisioning did not run"
    assert not [n for n in names if RETIRED in n]
    assert [n for n in names if "pulse-lab-node-3" in n]


def test_destroy_data_deletes_the_kept_volume_and_nothing_else(retired):
    result = run_playbook("playbooks/retire_node.yml",
                          extra_vars={"pulse_node_count": 3, "confirm": "lab", "destroy_data": True})
    assert result.rc == 0, result.output[-6000:]
    left = aws("ec2").describe_volumes(Filters=[{"Name": "volume-id", "Values": [retired["volume"]]}])["Volumes"]
    assert left == []
    assert len(node_instances(("running",))) == 3
    # nothing retired in this run: no provisioning, no converge; the one change is the deletion
    assert result.changed == 1, result.changed_hosts()
