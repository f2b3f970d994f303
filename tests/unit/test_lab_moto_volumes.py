"""lab/moto_server.py: DescribeVolumes says SnapshotId "" for a volume made from no snapshot, as EC2
does (moto leaves it out, and amazon.aws.ec2_vol_info fails on that: playbooks/report.yml)."""

import boto3
from moto import mock_aws

from conftest import load_lab_module


def load():
    return load_lab_module("lab/moto_server.py", "lab_moto_server_volumes")


def test_a_volume_from_no_snapshot_says_so_and_one_from_a_snapshot_names_it():
    from moto.ec2.models import elastic_block_store

    original = elastic_block_store.Volume.__init__
    load().volumes_without_snapshot_say_so()
    try:
        with mock_aws():
            ec2 = boto3.client("ec2", region_name="us-east-2")
            plain = ec2.create_volume(AvailabilityZone="us-east-2a", Size=1)["VolumeId"]
            snap = ec2.create_snapshot(VolumeId=plain)["SnapshotId"]
            restored = ec2.create_volume(AvailabilityZone="us-east-2a", SnapshotId=snap)["VolumeId"]
            found = {v["VolumeId"]: v for v in ec2.describe_volumes()["Volumes"]}
            assert found[plain]["SnapshotId"] == ""
            assert found[restored]["SnapshotId"] == snap
    finally:
        elastic_block_store.Volume.__init__ = original
