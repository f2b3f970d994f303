"""The restore drill, in the lab, on the standard stack that tests/integration/test_site.py
leaves (3 nodes running v1.2.0, the backups bucket pulse_backups_bucket):

* playbooks/backup.yml installs the backup timer on the designated node only and, with
  -e backup_now=true, runs a backup whose manifest matches the node;
* the designated node's data dir is wiped, playbooks/restore.yml brings it back: at least the
  backup's height, the same hash at that height, caught up with its peers, registered again,
  the wiped-then-restarted contents kept aside;
* another node's backup restored onto a node does not take the other node's identity (peer id);
* a tampered archive, a missing backup, a run without -l are refused before anything is
  stopped (pulse-node's InvocationID and ActiveEnterTimestamp unchanged);
* the cluster is left healthy and registered.

Development only: PULSE_DRILL_INVENTORY / PULSE_DRILL_ENV point the drill at a throwaway copy
of the lab inventory (another Env tag); the default is the standard lab.
"""

import hashlib
import json
import os
import time

import pytest

from conftest import aws, docker, get, run_playbook, wait_until
from docs_commands import commands

pytestmark = pytest.mark.lab

ENV = os.environ.get("PULSE_DRILL_ENV", "lab")
INVENTORY = os.environ.get("PULSE_DRILL_INVENTORY")
BUCKET = f"pulse-{ENV}-backups-0001"
TARGET_GROUP = f"pulse-{ENV}-node"
DATA_DIR = "/opt/pulse/data"
TIMINGS = {}


def playbook(path, *args, extra_vars=None):
    inventory = ["-i", INVENTORY] if INVENTORY else []
    return run_playbook(path, *inventory, *args, extra_vars=extra_vars)


def lab_nodes():
    reservations = aws("ec2").describe_instances(Filters=[
        {"Name": "tag:Project", "Values": ["pulse"]},
        {"Name": "tag:Env", "Values": [ENV]},
        {"Name": "tag:Role", "Values": ["node"]},
        {"Name": "instance-state-name", "Values": ["running"]},
    ])["Reservations"]
    nodes = []
    for reservation in reservations:
        for inst in reservation["Instances"]:
            tags = {t["Key"]: t["Value"] for t in inst["Tags"]}
            nodes.append({"name": tags["Name"], "index": int(tags.get("NodeIndex", 0)),
                          "id": inst["InstanceId"], "ip": inst["PrivateIpAddress"]})
    return sorted(nodes, key=lambda n: n["index"])
def sh(node, script, check=True):
    return docker("exec", node["id"], "sh", "-c", script, check=check)


def unit(node):
    out = sh(node, "systemctl show pulse-node.service -p InvocationID -p ActiveEnterTimestamp -p ActiveState").stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def registered(node):
    elb = aws("elbv2")
    arn = elb.describe_target_groups(Names=[TARGET_GROUP])["TargetGroups"][0]["TargetGroupArn"]
    health = elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    return any(t["Target"]["Id"] == node["id"] and t["TargetHealth"]["State"] == "healthy" for t in health)


def backups(node_name):
    s3 = aws("s3")
    prefix = f"backups/{ENV}/{node_name}/"
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
            for o in page.get("Contents", [])]
    return sorted({k[len(prefix):].split("/")[0] for k in keys if k.endswith("/manifest.json")})


def manifest(node_name, stamp):
    body = aws("s3").get_object(Bucket=BUCKET, Key=f"backups/{ENV}/{node_name}/{stamp}/manifest.json")["Body"]
    return json.loads(body.read())


def cluster_agrees(nodes, slack=3):
    heights = [get(n["ip"], "/chain", timeout=3)["height"] for n in nodes]
    return heights if max(heights) - min(heights) <= slack else None


@pytest.fixture(scope="module")
def nodes(lab):
    found = lab_nodes()
    assert len(found) == 3, f"the drill needs the standard lab stack (site.yml): {found}"
    for node in found:
        assert get(node["ip"], "/health") == "Pulse node is alive"
    return found


@pytest.fixture(scope="module")
def backup(nodes):
    """backup.yml -e backup_now=true: one backup of the designated node (the lowest index)."""
    designated = nodes[0]
    before = set(backups(designated["name"]))
    start = time.time()
    result = playbook("playbooks/backup.yml", extra_vars={"backup_now": True})
    TIMINGS["backup.yml -e backup_now=true"] = time.time() - start
    assert result.rc == 0, result.output[-6000:]
    made = sorted(set(backups(designated["name"])) - before)
    assert len(made) == 1, made
    return {"node": designated, "stamp": made[0], "manifest": manifest(designated["name"], made[0])}


def test_the_timer_runs_on_the_designated_node_only(nodes, backup):
    first, others = nodes[0], nodes[1:]
    assert sh(first, "systemctl is-enabled pulse-backup.timer").stdout.strip() == "enabled"
    assert sh(first, "systemctl show -p Persistent --value pulse-backup.timer").stdout.strip() == "yes"
    for node in others:
        assert sh(node, "test -e /etc/systemd/system/pulse-backup.timer", check=False).returncode == 1, node["name"]


def test_the_backup_matches_the_node(nodes, backup):
    node, man = backup["node"], backup["manifest"]
    assert man["node"] == node["name"] and man["environment"] == ENV
    assert man["node_version"] == get(node["ip"], "/info")["version"]
    assert get(node["ip"], "/chain")["height"] >= man["chain_height"]
    assert get(node["ip"], f"/block/{man['chain_height']}")["block_hash"] == man["latest_hash"]
    archive = aws("s3").get_object(Bucket=BUCKET, Key=f"backups/{ENV}/{node['name']}/{backup['stamp']}/{man['archive']}")
    data = archive["Body"].read()
    assert hashlib.sha256(data).hexdigest() == man["sha256"] and len(data) == man["size_bytes"]
    assert sh(node, "test -s /var/lib/pulse-backup/last_success").returncode == 0
    assert man["stopped_seconds"] < 10


def test_a_run_without_limit_is_refused(nodes, backup):
    before = [unit(n) for n in nodes]
    result = playbook("playbooks/restore.yml")
    assert result.rc != 0
    assert "ONE node at a time" in result.output
    assert [unit(n) for n in nodes] == before


def test_a_missing_backup_is_refused_with_the_list_of_available_ones(nodes, backup):
    node = nodes[1]
    before = unit(node)
    result = playbook("playbooks/restore.yml", "-l", node["name"],
                      extra_vars={"backup": "20000101T000000Z", "backup_node": backup["node"]["name"]})
    assert result.rc != 0
    assert "does not exist" in result.output and backup["stamp"] in result.output
    assert unit(node) == before
    assert registered(node)


def test_a_tampered_archive_is_refused_and_nothing_is_stopped(nodes, backup):
    node, source = nodes[1], backup["node"]
    key = f"backups/{ENV}/{source['name']}/{backup['stamp']}/{backup['manifest']['archive']}"
    s3 = aws("s3")
    original = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    before = unit(node)
    aside_before = aside_dirs(node)
    assert before["ActiveState"] == "active"
    try:
        s3.put_object(Bucket=BUCKET, Key=key, Body=original[:-64] + b"\0" * 64)
        result = playbook("playbooks/restore.yml", "-l", node["name"],
                          extra_vars={"backup_node": source["name"], "backup": backup["stamp"]})
    finally:
        s3.put_object(Bucket=BUCKET, Key=key, Body=original)
    assert result.rc != 0
    assert "REFUSING backup" in result.output and "tampered" in result.output
    after = unit(node)
    assert after == before, (before, after)
    assert get(node["ip"], "/health") == "Pulse node is alive"
    assert registered(node)
    assert aside_dirs(node) == aside_before


def test_without_confirm_a_restore_only_checks_the_backup(nodes, backup):
    node = nodes[1]
    before = unit(node)
    result = playbook("playbooks/restore.yml", "-l", node["name"], extra_vars={"backup_node": backup["node"]["name"]})
    assert result.rc == 0, result.output[-4000:]
    assert f"Backup {backup['stamp']} of {backup['node']['name']} is good" in result.output
    assert (f"To restore it: ansible-playbook playbooks/restore.yml -l {node['name']} -e confirm={node['name']} "
            f"-e backup={backup['stamp']} -e backup_node={backup['node']['name']}") in " ".join(result.output.split())
    assert unit(node) == before
    assert registered(node)


def test_a_confirm_naming_another_node_is_refused(nodes, backup):
    node = nodes[1]
    before = unit(node)
    result = playbook("playbooks/restore.yml", "-l", node["name"], extra_vars={"confirm": nodes[2]["name"]})
    assert result.rc != 0
    assert f"-e confirm must name the node of -l ({node['name']})" in " ".join(result.output.split())
    assert unit(node) == before


@pytest.fixture(scope="module")
def wiped_and_restored(nodes, backup):
    """Wipe the designated node's data dir (stop, rm, start), then restore.yml -l <node>."""
    node = backup["node"]
    sh(node, f"systemctl stop pulse-node && find {DATA_DIR} -mindepth 1 -maxdepth 1 ! -name lost+found "
             f"-exec rm -rf {{}} + && systemctl start pulse-node")
    wait_until(lambda: get(node["ip"], "/health", timeout=2), timeout=60, what="the wiped node to answer")
    # A mark of what the data dir held before the restore, to be found moved aside.
    marker = f"drill-marker-{int(time.time())}"
    sh(node, f"echo wiped > {DATA_DIR}/{marker} && chown pulse:pulse {DATA_DIR}/{marker}")
    aside_before = set(aside_dirs(node))
    start = time.time()
    result = playbook("playbooks/restore.yml", "-l", node["name"], extra_vars={"confirm": node["name"]})
    TIMINGS["restore.yml (wiped node)"] = time.time() - start
    assert result.rc == 0, result.output[-8000:]
    return {**node, "marker": marker, "aside": sorted(set(aside_dirs(node)) - aside_before)}


def aside_dirs(node):
    return sh(node, f"ls -d {DATA_DIR}.before-restore-* 2>/dev/null", check=False).stdout.split()


def test_the_restored_node_has_the_backup_and_catches_up(nodes, backup, wiped_and_restored):
    node, man = wiped_and_restored, backup["manifest"]
    assert get(node["ip"], "/chain")["height"] >= man["chain_height"]
    assert get(node["ip"], f"/block/{man['chain_height']}")["block_hash"] == man["latest_hash"]
    wait_until(lambda: cluster_agrees(nodes), timeout=120, what="the restored node to be within 3 blocks of its peers")
    assert registered(node)
    assert sh(node, "systemctl is-active pulse-backup.timer").stdout.strip() == "active"


def test_the_previous_data_was_moved_aside_not_deleted(backup, wiped_and_restored):
    node, marker, aside = wiped_and_restored, wiped_and_restored["marker"], wiped_and_restored["aside"]
    assert len(aside) == 1, aside
    assert sh(node, f"cat {aside[0]}/{marker}").stdout.strip() == "wiped"
    assert sh(node, f"test -s {aside[0]}/chain.jsonl").returncode == 0
    assert sh(node, f"test -e {DATA_DIR}/{marker}", check=False).returncode == 1
    owners = sh(node, f"find {DATA_DIR} -mindepth 1 ! -path '{DATA_DIR}/lost+found*' -printf '%u\\n' | sort -u").stdout.split()
    assert owners == ["pulse"], owners


def runbook_way_back():
    """The commands of roles/backup_cron/README.md's "go back by hand" block, as shown there."""
    found = [(line, command) for doc, line, command, _, _ in commands()
             if doc.name == "README.md" and doc.parent.name == "backup_cron"]
    block = next(line for line, command in found if "data.failed-restore" in command)
    return [command for line, command in found if line == block]


def test_the_way_back_by_hand_works_as_the_runbook_says(wiped_and_restored):
    """roles/backup_cron/README.md: after a restore, put the previous data back by hand on the
    node (stop, move the restored data aside, move the previous data back, start), then
    playbooks/restart.yml -l <node>: the node runs on its previous data again, drained and
    registered back."""
    node, marker, aside = wiped_and_restored, wiped_and_restored["marker"], wiped_and_restored["aside"]
    steps = runbook_way_back()
    assert [s.split()[0] for s in steps] == ["systemctl", "mkdir", "find", "systemctl"], steps
    stamp = aside[0].rsplit(".before-restore-", 1)[1]
    for step in steps:
        sh(node, step.replace("<time>", stamp))
    assert sh(node, f"cat {DATA_DIR}/{marker}").stdout.strip() == "wiped"
    assert sh(node, f"test -s {DATA_DIR}.failed-restore/chain.jsonl").returncode == 0
    result = playbook("playbooks/restart.yml", "-l", node["name"])
    assert result.rc == 0, result.output[-6000:]
    assert registered(node)
    assert sh(node, f"find {DATA_DIR}.before-restore-{stamp} -mindepth 1", check=False).stdout.strip() == ""
    sh(node, f"rm -rf {DATA_DIR}.failed-restore {DATA_DIR}.before-restore-{stamp}")  # the README's last step


def test_another_nodes_backup_keeps_this_nodes_identity(nodes, backup, wiped_and_restored):
    """The node's identity is not in its data: pulse-node makes a new peer id at every start
    (pulse-node-contract.md), so a restored node never takes the source node's identity."""
    node, source, man = nodes[2], backup["node"], backup["manifest"]
    start = time.time()
    result = playbook("playbooks/restore.yml", "-l", node["name"],
                      extra_vars={"backup_node": source["name"], "confirm": node["name"]})
    TIMINGS["restore.yml -e backup_node (other node)"] = time.time() - start
    assert result.rc == 0, result.output[-8000:]
    assert get(node["ip"], "/info")["peer_id"] != get(source["ip"], "/info")["peer_id"]
    assert get(node["ip"], f"/block/{man['chain_height']}")["block_hash"] == man["latest_hash"]
    assert registered(node)


def test_the_cluster_is_left_healthy_and_registered(nodes, wiped_and_restored):
    for node in nodes:
        assert get(node["ip"], "/health") == "Pulse node is alive"
        assert registered(node), node["name"]
    ids = {n["ip"]: get(n["ip"], "/info")["peer_id"] for n in nodes}
    assert len(set(ids.values())) == 3, ids
    wait_until(lambda: cluster_agrees(nodes), timeout=120, what="the three nodes to agree")
    print("\nrestore drill wall times: " + ", ".join(f"{k} {v:.0f} s" for k, v in TIMINGS.items()))
