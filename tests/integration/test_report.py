"""playbooks/report.yml (issue #18, the orphan report) against the lab: a planted unattached data
volume, a snapshot of an instance that is gone and a backup older than the retention are listed
with a monthly estimate; the environment's own instances and attached volumes are not; nothing
is changed. Read only: runs on whatever cluster the earlier tests leave.
"""

import json

import pytest

from conftest import aws, run_playbook

pytestmark = [pytest.mark.lab]

PROJECT, ENV = "pulse", "lab"
BACKUPS = "pulse-lab-backups-0001"
OLD_BACKUP = "backups/lab/pulse-lab-node-9/20200101T000000Z/"
TAGS = [{"Key": "Project", "Value": PROJECT}, {"Key": "Env", "Value": ENV}]


def node_instances():
    reservations = aws("ec2").describe_instances(Filters=[
        {"Name": "tag:Project", "Values": [PROJECT]}, {"Name": "tag:Env", "Values": [ENV]},
        {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
    ])["Reservations"]
    return [i for r in reservations for i in r["Instances"]]


def count(role):
    return sum(1 for i in node_instances() if {t["Key"]: t["Value"] for t in i["Tags"]}.get("Role") == role)


@pytest.fixture(scope="module")
def planted(lab):
    ec2 = aws("ec2")
    volume = ec2.create_volume(AvailabilityZone="us-east-2a", Size=3, VolumeType="gp3", TagSpecifications=[{
        "ResourceType": "volume", "Tags": TAGS + [{"Key": "Name", "Value": "pulse-lab-node-9-data"},
                                                  {"Key": "Role", "Value": "node-data"}]}])["VolumeId"]
    snapshot = ec2.create_snapshot(VolumeId=volume, TagSpecifications=[{
        "ResourceType": "snapshot", "Tags": TAGS + [
            {"Key": "Node", "Value": "pulse-lab-node-9"},
            {"Key": "SourceInstance", "Value": "arn:aws:ec2:us-east-2:123456789012:instance/i-0123456789abcdef0"}]}])
    manifest = {"size_bytes": 5 * 1024 ** 2, "node": "pulse-lab-node-9"}
    aws("s3").put_object(Bucket=BACKUPS, Key=OLD_BACKUP + "manifest.json", Body=json.dumps(manifest).encode())
    yield {"volume": volume, "snapshot": snapshot["SnapshotId"]}
    ec2.delete_snapshot(SnapshotId=snapshot["SnapshotId"])
    ec2.delete_volume(VolumeId=volume)


@pytest.fixture(scope="module")
def report(planted, tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "orphans.json"
    # the plan is what runs now (earlier tests may have grown the cluster beyond the inventory's count)
    result = run_playbook("playbooks/report.yml", extra_vars={
        "report_file": str(path), "pulse_node_count": count("node"), "pulse_builder_count": count("builder")})
    assert result.rc == 0, result.output[-6000:]
    return {"result": result, "json": json.loads(path.read_text())}


def test_the_report_lists_what_was_planted_with_a_monthly_estimate(planted, report):
    rows = {item["id"]: item for item in report["json"]["items"]}
    volume = rows[planted["volume"]]
    assert volume["kind"] == "unattached volume" and "the kept data of pulse-lab-node-9" in volume["detail"]
    assert volume["monthly_usd"] == pytest.approx(3 * 0.08, abs=0.01)
    snapshot = rows[planted["snapshot"]]
    assert snapshot["kind"] == "snapshot of a gone instance" and snapshot["name"] == "pulse-lab-node-9"
    backup = rows[OLD_BACKUP]
    assert backup["kind"] == "backup beyond retention" and "5.0 MiB" in backup["detail"]
    assert report["json"]["prices_date"] == "2026-12-01"
    # and the screen says the same
    for item in (volume, snapshot, backup):
        assert item["line"] in report["result"].output
    assert "per month, prices of 2026-12-01 (playbooks/vars/prices.yml)" in report["result"].output


def test_the_environments_own_resources_are_not_orphans(report):
    kinds = {item["kind"] for item in report["json"]["items"]}
    assert "instance outside the plan" not in kinds
    attached = {v["VolumeId"] for v in aws("ec2").describe_volumes(Filters=[
        {"Name": "status", "Values": ["in-use"]}])["Volumes"]}
    assert not attached & {item["id"] for item in report["json"]["items"]}
    # read only: the one change is the JSON file on the controller (-e report_file)
    changed, task = [], None
    for line in report["result"].output.splitlines():
        if line.startswith("TASK ["):
            task = line[len("TASK ["):line.index("]")]
        elif line.startswith("changed:"):
            changed.append(task)
    assert changed == ["Write the report as JSON"]


def test_a_node_beyond_the_count_is_an_instance_outside_the_plan(planted):
    nodes = count("node")
    result = run_playbook("playbooks/report.yml", extra_vars={"pulse_node_count": nodes - 1,
                                                              "pulse_builder_count": count("builder")})
    assert result.rc == 0, result.output[-4000:]
    assert "instance outside the plan: " in result.output
    assert f"pulse-lab-node-{nodes} (t3.small, running): 15.18 USD/month" in result.output
