"""lab/moto_server.py closes moto's gaps in the lab's moto, so that the roles run the calls they
run against AWS with no lab-only task: the official images, a new load balancer's attributes,
a record set created again, and the lab's own limit on overlapping subnets."""

import boto3
import botocore.exceptions
import pytest
from moto import mock_aws

from conftest import REPO, load_lab_module

REGION = "us-east-2"


def load():
    return load_lab_module("lab/moto_server.py", "lab_moto_server_gaps")


@pytest.fixture
def patched():
    """Every patch of this file installed, and undone after the test."""
    from moto.ec2.models import amis, subnets
    from moto.elbv2 import models as elbv2
    from moto.route53 import models as route53

    saved = (list(amis.AMIS), elbv2.FakeLoadBalancer.__init__,
             route53.Route53Backend.change_resource_record_sets, subnets.SubnetBackend.create_subnet)
    module = load()
    module.official_images()
    module.load_balancers_have_aws_default_attributes()
    module.record_sets_can_be_created_again()
    module.subnets_of_two_vpcs_never_overlap()
    try:
        with mock_aws():
            yield module
    finally:
        amis.AMIS[:] = saved[0]
        (elbv2.FakeLoadBalancer.__init__, route53.Route53Backend.change_resource_record_sets,
         subnets.SubnetBackend.create_subnet) = saved[1:]


@pytest.mark.parametrize("owner, pattern", [("136693071363", "debian-12-amd64-*"),
                                            ("137112412989", "al2023-ami-2023*-x86_64")])
def test_the_official_image_is_found_by_its_owner_and_name_pattern(patched, owner, pattern):
    ec2 = boto3.client("ec2", region_name=REGION)
    images = ec2.describe_images(Owners=[owner], Filters=[{"Name": "name", "Values": [pattern]},
                                                          {"Name": "state", "Values": ["available"]}])["Images"]
    assert images, "the role's lookup would find no image"
    assert {i["Architecture"] for i in images} == {"x86_64"}


def test_the_catalog_of_the_role_names_the_images_the_lab_serves(patched):
    import fnmatch

    import yaml

    catalog = yaml.safe_load((REPO / "roles/aws_compute/vars/main.yml").read_text())["_aws_compute_ami_catalog"]
    for family, entry in catalog.items():
        ec2 = boto3.client("ec2", region_name=REGION)
        found = ec2.describe_images(Owners=[entry["owner"]], Filters=[{"Name": "name", "Values": [entry["name"]]}])["Images"]
        assert all(fnmatch.fnmatch(i["Name"], entry["name"]) for i in found) and found, family


def network(ec2, cidr):
    vpc = ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
    return vpc


def test_a_new_load_balancer_lists_aws_default_attributes(patched):
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = network(ec2, "10.0.0.0/16")
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{n}.0/24", AvailabilityZone=f"{REGION}{z}")["Subnet"]["SubnetId"]
               for n, z in ((1, "a"), (2, "b"))]
    elb = boto3.client("elbv2", region_name=REGION)
    arn = elb.create_load_balancer(Name="lb", Subnets=subnets)["LoadBalancers"][0]["LoadBalancerArn"]
    attributes = {a["Key"]: a["Value"] for a in elb.describe_load_balancer_attributes(LoadBalancerArn=arn)["Attributes"]}
    assert {k: attributes.get(k) for k in patched.ALB_DEFAULT_ATTRIBUTES} == patched.ALB_DEFAULT_ATTRIBUTES
    assert attributes["deletion_protection.enabled"] == "false"  # moto's own are kept


def alias(name, target):
    return {"Name": name, "Type": "A", "AliasTarget": {"HostedZoneId": "Z2P70J7EXAMPLE", "DNSName": target,
                                                       "EvaluateTargetHealth": True}}


def test_a_record_set_deleted_can_be_created_again_and_an_existing_one_cannot(patched):
    r53 = boto3.client("route53", region_name=REGION)
    zone = r53.create_hosted_zone(Name="lab.example.com", CallerReference="1")["HostedZone"]["Id"]
    record = alias("api.lab.example.com.", "lb.example.com")
    later = {"Name": "zz.lab.example.com.", "Type": "TXT", "TTL": 60, "ResourceRecords": [{"Value": '"x"'}]}

    def change(action, rrset):
        r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [{"Action": action, "ResourceRecordSet": rrset}]})

    change("CREATE", later)
    change("CREATE", record)
    change("DELETE", record)
    change("CREATE", record)  # moto alone: "... but it already exists"
    names = [r["Name"] for r in r53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]]
    assert "api.lab.example.com." in names
    with pytest.raises(botocore.exceptions.ClientError, match="already exists"):
        change("CREATE", record)


def test_a_subnet_overlapping_one_of_another_vpc_is_refused_and_says_why(patched):
    ec2 = boto3.client("ec2", region_name=REGION)
    first, second = network(ec2, "10.0.0.0/16"), network(ec2, "10.0.0.0/16")
    ec2.create_subnet(VpcId=first, CidrBlock="10.0.1.0/24")
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        ec2.create_subnet(VpcId=second, CidrBlock="10.0.1.0/25")
    assert refused.value.response["Error"]["Code"] == "InvalidSubnet.Conflict"
    assert "Docker refuses overlapping ranges" in refused.value.response["Error"]["Message"]
    # another range of the second VPC, and more subnets in the first, are fine
    ec2.create_subnet(VpcId=second, CidrBlock="10.0.2.0/24")
    ec2.create_subnet(VpcId=first, CidrBlock="10.0.3.0/24")
