"""lab/moto_server.py: DescribeInstances never shows an instance that RunInstances is still
building (moto registers the reservation before the block devices; the backer, polling from
another thread, once backed an instance without its data volume)."""

import threading

import boto3
from moto import mock_aws

from conftest import load_lab_module

NAMES = ("run_instances", "describe_instances", "get_reservations_by_instance_ids",
         "all_instances", "all_reservations")


def load():
    return load_lab_module("lab/moto_server.py", "lab_moto_server_instances")


def described_while_a_run_adds_its_volume(patched):
    """Start a RunInstances with a data volume, hold it inside add_block_device, and describe the
    instances from this thread meanwhile: what does the describe see?"""
    from moto.ec2.models import instances

    saved = {name: getattr(instances.InstanceBackend, name) for name in NAMES}
    saved_add = instances.Instance.add_block_device
    inside, seen = threading.Event(), {}

    def add_block_device(self, *args, **kwargs):
        inside.set()
        threading.Event().wait(0.5)  # the window the backer fell into
        return saved_add(self, *args, **kwargs)

    instances.Instance.add_block_device = add_block_device
    if patched:
        load().instances_appear_whole()
    try:
        with mock_aws():
            ec2 = boto3.client("ec2", region_name="us-east-2")
            image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]

            def run():
                ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, BlockDeviceMappings=[
                    {"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 1}}])

            runner = threading.Thread(target=run)
            runner.start()
            assert inside.wait(30), "RunInstances never reached add_block_device"
            reservations = ec2.describe_instances()["Reservations"]
            runner.join(30)
            seen["instances"] = [i for r in reservations for i in r["Instances"]]
    finally:
        instances.Instance.add_block_device = saved_add
        for name, method in saved.items():
            setattr(instances.InstanceBackend, name, method)
    return seen["instances"]


def test_an_instance_is_described_with_its_data_volume_or_not_at_all():
    described = described_while_a_run_adds_its_volume(patched=True)
    assert len(described) == 1
    assert [m["DeviceName"] for m in described[0]["BlockDeviceMappings"]] == ["/dev/sdf"]


def test_without_the_lock_moto_shows_the_half_built_instance():
    """The race the lock closes is real in the moto pinned here (if moto fixes it, this fails
    and the patch can go)."""
    described = described_while_a_run_adds_its_volume(patched=False)
    assert len(described) == 1
    assert "/dev/sdf" not in [m["DeviceName"] for m in described[0]["BlockDeviceMappings"]]

