"""lab/moto_server.py LabInstanceMetadata: the lab instances' metadata service (IMDSv2), found by
the caller's private address, with the instance role's credentials only for an instance with a
profile, as on EC2."""

import json

import boto3
import pytest
from moto import mock_aws

from conftest import load_lab_module

REGION = "us-east-2"


def load():
    return load_lab_module("lab/moto_server.py", "lab_moto_server_imds")


@pytest.fixture
def lab():
    with mock_aws():
        iam = boto3.client("iam", region_name=REGION)
        iam.create_role(RoleName="pulse-lab-node", AssumeRolePolicyDocument="{}")
        iam.create_instance_profile(InstanceProfileName="pulse-lab-node")
        iam.add_role_to_instance_profile(InstanceProfileName="pulse-lab-node", RoleName="pulse-lab-node")
        ec2 = boto3.client("ec2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24", AvailabilityZone=f"{REGION}b")["Subnet"]["SubnetId"]
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        with_role, without = (ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, SubnetId=subnet, **extra)["Instances"][0]
                              for extra in ({"IamInstanceProfile": {"Name": "pulse-lab-node"}}, {}))
        yield {"imds": load().LabInstanceMetadata(), "with_role": with_role, "without": without, "ec2": ec2}


def get(lab, instance, path, token=None):
    imds = lab["imds"]
    if token is None:
        token = imds.answer("PUT", "/latest/api/token", instance["PrivateIpAddress"], None)[2]
    return imds.answer("GET", path, instance["PrivateIpAddress"], token)


def test_the_instance_finds_itself_by_its_address(lab):
    node = lab["with_role"]
    assert get(lab, node, "/latest/meta-data/instance-id") == (200, "text/plain", node["InstanceId"])
    assert get(lab, node, "/latest/meta-data/placement/availability-zone")[2] == f"{REGION}b"
    assert get(lab, node, "/latest/meta-data/placement/region")[2] == REGION
    document = json.loads(get(lab, node, "/latest/dynamic/instance-identity/document")[2])
    assert (document["instanceId"], document["region"]) == (node["InstanceId"], REGION)


def test_the_instance_role_gives_credentials_and_no_profile_gives_none(lab):
    node = lab["with_role"]
    assert get(lab, node, "/latest/meta-data/iam/security-credentials/") == (200, "text/plain", "pulse-lab-node")
    status, _, body = get(lab, node, "/latest/meta-data/iam/security-credentials/pulse-lab-node")
    credentials = json.loads(body)
    assert status == 200 and credentials["Code"] == "Success" and credentials["AccessKeyId"] and credentials["Token"]
    assert get(lab, node, "/latest/meta-data/iam/security-credentials/another-role")[0] == 404
    assert get(lab, lab["without"], "/latest/meta-data/iam/security-credentials/")[0] == 404
    assert get(lab, lab["without"], "/latest/meta-data/instance-id")[0] == 200


def test_imdsv2_only_and_strangers_get_nothing(lab):
    node = lab["with_role"]
    assert get(lab, node, "/latest/meta-data/instance-id", token="")[0] == 401
    assert get(lab, node, "/latest/meta-data/instance-id", token="forged")[0] == 401
    stranger = {"PrivateIpAddress": "172.17.0.9"}
    assert get(lab, stranger, "/latest/meta-data/instance-id")[0] == 404
    assert get(lab, stranger, "/latest/meta-data/iam/security-credentials/")[0] == 404


def test_a_terminated_instance_is_no_longer_found(lab):
    node = lab["with_role"]
    lab["ec2"].terminate_instances(InstanceIds=[node["InstanceId"]])
    assert get(lab, node, "/latest/meta-data/instance-id")[0] == 404


def test_boto3_on_the_instance_takes_the_instance_roles_path(lab, monkeypatch):
    """botocore's own IMDS credential fetcher, served by the WSGI app: the path a node's boto3 takes."""
    from botocore.utils import InstanceMetadataFetcher
    from werkzeug.test import Client

    node = lab["with_role"]
    client = Client(lab["imds"].wsgi(lambda environ, start_response: [b"moto"]))

    class Response:
        def __init__(self, answer):
            self.status_code, self.text, self.content = answer.status_code, answer.get_data(as_text=True), answer.get_data()

    def send(self, request):
        headers = dict(request.headers)
        answer = client.open(request.url.replace("http://169.254.169.254", ""), method=request.method, headers={
            **headers, "Host": "169.254.169.254"}, environ_base={"REMOTE_ADDR": node["PrivateIpAddress"]})
        return Response(answer)

    monkeypatch.setattr("botocore.httpsession.URLLib3Session.send", send)
    credentials = InstanceMetadataFetcher(timeout=1, num_attempts=1).retrieve_iam_role_credentials()
    assert credentials["role_name"] == "pulse-lab-node"
    assert credentials["access_key"] == "lab-not-a-secret" and credentials["token"]
