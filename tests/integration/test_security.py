"""Issue #13 on the created resources: every control is read back from the lab's moto and the
IAM documents are evaluated with a policy evaluator (tests/iam_eval.py; moto does not enforce
IAM). Read-only and fast: it provisions nothing and looks at the standard lab stack that
test_provision.py leaves (PULSE_SECURITY_PROJECT / PULSE_SECURITY_ENV name another stack, e.g. a
throwaway one provisioned by hand).
"""

import hashlib
import json
import os

import pytest

from conftest import aws
from iam_eval import allowed, instance_context

pytestmark = [pytest.mark.lab]

PROJECT = os.environ.get("PULSE_SECURITY_PROJECT", "pulse")
ENV = os.environ.get("PULSE_SECURITY_ENV", "lab")
PREFIX = f"{PROJECT}-{ENV}"
SUFFIX = "-0001"
ARTIFACTS, BACKUPS, LOGS = (f"{PREFIX}-{what}{SUFFIX}" for what in ("artifacts", "backups", "logs"))
REGION = "us-east-2"


def tags_of(resource):
    return {t["Key"]: t["Value"] for t in resource.get("Tags") or []}


def doc(value):
    return json.loads(value) if isinstance(value, str) else value


@pytest.fixture(scope="module")
def stack(lab):
    ec2 = aws("ec2")
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [f"{PREFIX}-vpc"]},
                                      {"Name": "tag:Env", "Values": [ENV]}])["Vpcs"]
    if not vpcs:
        pytest.skip(f"no {PREFIX} stack in the lab (test_provision.py leaves one)")
    reservations = ec2.describe_instances(Filters=[
        {"Name": "tag:Project", "Values": [PROJECT]}, {"Name": "tag:Env", "Values": [ENV]},
        {"Name": "instance-state-name", "Values": ["running"]}])["Reservations"]
    instances = {tags_of(i)["Name"]: i for r in reservations for i in r["Instances"]}
    account = aws("sts").get_caller_identity()["Account"]
    return {"vpc": vpcs[0]["VpcId"], "instances": instances, "account": account}


def role_docs(role):
    iam = aws("iam")
    names = iam.list_role_policies(RoleName=role)["PolicyNames"]
    return {n: doc(iam.get_role_policy(RoleName=role, PolicyName=n)["PolicyDocument"]) for n in names}


def bucket_policy(name):
    return doc(aws("s3").get_bucket_policy(Bucket=name)["Policy"])


def instance_arn(stack, name):
    return f"arn:aws:ec2:{REGION}:{stack['account']}:instance/{stack['instances'][name]['InstanceId']}"


def nodes(stack):
    return sorted(n for n in stack["instances"] if "-node-" in n)


# ---------------------------------------------------------------- IAM

@pytest.mark.parametrize("kind", ["node", "builder"])
def test_instance_roles_carry_only_the_projects_own_policies(stack, kind):
    role = f"{PREFIX}-{kind}"
    if kind == "builder" and not any("-builder-" in n for n in stack["instances"]):
        pytest.skip("no builder")
    attached = aws("iam").list_attached_role_policies(RoleName=role)["AttachedPolicies"]
    assert attached == [], "an AWS-managed (or any attached) policy: its GetParameter(s) on * is gone"
    docs = role_docs(role)
    expected = {role, f"{role}-session-manager"} | ({f"{role}-backups"} if kind == "node" else set())
    assert set(docs) == expected
    for name, document in docs.items():
        for statement in document["Statement"]:
            acts = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if statement["Effect"] == "Allow" and any(a.startswith("ssm:GetParameter") for a in acts):
                assert statement["Resource"] != "*", (name, statement)


def test_a_node_may_append_only_to_its_own_backups(stack):
    docs = list(role_docs(f"{PREFIX}-node").values())
    policy = [bucket_policy(BACKUPS)]
    first, second = nodes(stack)[:2]
    role = f"arn:aws:iam::{stack['account']}:role/{PREFIX}-node"
    mine = f"arn:aws:s3:::{BACKUPS}/backups/{ENV}/{first}/20260101T000000Z/data.tar.gz"
    theirs = f"arn:aws:s3:::{BACKUPS}/backups/{ENV}/{second}/20260101T000000Z/data.tar.gz"
    put = instance_context(instance_arn(stack, first), role, **{"s3:if-none-match": "*"})
    assert allowed(docs, "s3:PutObject", mine, put, policy)
    assert not allowed(docs, "s3:PutObject", theirs, put, policy), "node-1 may write node-2's backups"
    assert not allowed(docs, "s3:PutObject", mine, instance_context(instance_arn(stack, first), role), policy), \
        "an overwrite (no If-None-Match) is allowed"
    for action in ("s3:DeleteObject", "s3:DeleteObjectVersion", "s3:GetObject"):
        for key in (mine, theirs):
            assert not allowed(docs, action, key, put, policy), (action, key)


def test_nodes_read_only_their_environments_parameters(stack):
    docs = list(role_docs(f"{PREFIX}-node").values())
    context = instance_context(instance_arn(stack, nodes(stack)[0]), f"arn:aws:iam::{stack['account']}:role/{PREFIX}-node")
    arn = f"arn:aws:ssm:{REGION}:{stack['account']}:parameter"
    assert allowed(docs, "ssm:GetParameter", f"{arn}/{PROJECT}/{ENV}/release", context)
    for resource in (f"{arn}/{PROJECT}/other/x", f"{arn}/{PROJECT}/other/cloudflared/credentials", f"{arn}/x"):
        for action in ("ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"):
            assert not allowed(docs, action, resource, context), (action, resource)
    assert not allowed(docs, "ssm:PutParameter", f"{arn}/{PROJECT}/{ENV}/releases/v1.2.0", context)


def test_the_builder_may_not_write_or_delete_a_release(stack):
    builders = [n for n in stack["instances"] if "-builder-" in n]
    if not builders:
        pytest.skip("no builder")
    docs = list(role_docs(f"{PREFIX}-builder").values())
    context = instance_context(instance_arn(stack, builders[0]), f"arn:aws:iam::{stack['account']}:role/{PREFIX}-builder",
                               **{"s3:if-none-match": "*"})
    for key in ("node/pulse-node-v1.2.0", "node/pulse-node-v1.2.0.sha256", "node/pulse-node-v9.9.9"):
        for action in ("s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"):
            assert not allowed(docs, action, f"arn:aws:s3:::{ARTIFACTS}/{key}", context, [bucket_policy(ARTIFACTS)])
    assert not allowed(docs, "ssm:PutParameter",
                       f"arn:aws:ssm:{REGION}:{stack['account']}:parameter/{PROJECT}/{ENV}/releases/v1.2.0", context)


@pytest.mark.parametrize("name, key", [(ARTIFACTS, "node/pulse-node-v1.2.0"), (BACKUPS, f"backups/{ENV}/x/y"),
                                       (LOGS, "alb/AWSLogs/x")])
def test_bucket_policies_deny_deleting_history_even_to_an_administrator(stack, name, key):
    admin = [{"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}]
    context = {"aws:PrincipalArn": f"arn:aws:iam::{stack['account']}:role/admin", "aws:SecureTransport": "true"}
    policy = [bucket_policy(name)]
    assert not allowed(admin, "s3:DeleteObject", f"arn:aws:s3:::{name}/{key}", context, policy)
    assert not allowed(admin, "s3:GetObject", f"arn:aws:s3:::{name}/{key}", {**context, "aws:SecureTransport": "false"},
                       policy)


# ---------------------------------------------------------------- S3 settings

@pytest.mark.parametrize("name", [ARTIFACTS, BACKUPS, LOGS])
def test_buckets_are_versioned_encrypted_private(stack, name):
    s3 = aws("s3")
    assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
    rule = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    block = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
    assert all(block.values()), block


def test_lifecycle_rules(stack):
    s3 = aws("s3")
    rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=ARTIFACTS)["Rules"]}
    replaced = rules["expire-replaced-artifacts"]
    assert replaced["Status"] == "Enabled" and replaced["NoncurrentVersionExpiration"]["NoncurrentDays"] >= 1
    assert not any("Expiration" in r for r in rules.values()), "a rule expires CURRENT releases"
    backups = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=BACKUPS)["Rules"]}["expire-backups"]
    assert backups["Expiration"]["Days"] >= 1 and backups["NoncurrentVersionExpiration"]["NoncurrentDays"] >= 1
    logs = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=LOGS)["Rules"]}["expire-access-logs"]
    assert logs["Expiration"]["Days"] >= 1


@pytest.mark.parametrize("name", [ARTIFACTS, BACKUPS])
def test_server_access_logs_go_to_the_log_bucket(stack, name):
    enabled = aws("s3").get_bucket_logging(Bucket=name)["LoggingEnabled"]
    assert enabled == {"TargetBucket": LOGS, "TargetPrefix": f"s3/{name}/"} or (
        enabled["TargetBucket"] == LOGS and enabled["TargetPrefix"] == f"s3/{name}/")


# ---------------------------------------------------------------- network, load balancer, logs

def test_the_vpc_logs_every_flow(stack):
    flows = aws("ec2").describe_flow_logs(Filters=[{"Name": "resource-id", "Values": [stack["vpc"]]}])["FlowLogs"]
    assert len(flows) == 1, flows
    (flow,) = flows
    assert (flow["TrafficType"], flow["LogDestinationType"], flow["LogGroupName"]) == (
        "ALL", "cloud-watch-logs", f"/{PROJECT}/{ENV}/vpc-flow-logs")
    assert flow["DeliverLogsPermissionArn"].endswith(f":role/{PREFIX}-flow-logs")
    (group,) = aws("logs").describe_log_groups(logGroupNamePrefix=f"/{PROJECT}/{ENV}/vpc-flow-logs")["logGroups"]
    assert group.get("retentionInDays")


def test_the_default_security_group_has_no_rule(stack):
    (group,) = aws("ec2").describe_security_groups(Filters=[
        {"Name": "vpc-id", "Values": [stack["vpc"]]}, {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"]
    assert group["IpPermissions"] == [] and group["IpPermissionsEgress"] == []


def test_no_subnet_assigns_public_addresses(stack):
    subnets = aws("ec2").describe_subnets(Filters=[{"Name": "vpc-id", "Values": [stack["vpc"]]}])["Subnets"]
    assert len(subnets) == 4
    assert not any(s["MapPublicIpOnLaunch"] for s in subnets)


def test_the_load_balancer_logs_its_requests(stack):
    elb = aws("elbv2")
    albs = [lb for lb in elb.describe_load_balancers()["LoadBalancers"] if lb["LoadBalancerName"] == f"{PREFIX}-alb"]
    if not albs:
        pytest.skip("no load balancer (cloudflare_tunnel ingress)")
    attributes = {a["Key"]: a["Value"] for a in
                  elb.describe_load_balancer_attributes(LoadBalancerArn=albs[0]["LoadBalancerArn"])["Attributes"]}
    assert attributes["access_logs.s3.enabled"] == "true"
    assert attributes["access_logs.s3.bucket"] == LOGS and attributes["access_logs.s3.prefix"] == "alb"
    # the lab inventory turns deletion protection off (its tests tear stacks down); the role's
    # default is on (tests/unit/test_security_documents.py)
    assert attributes["deletion_protection.enabled"] == "false"


# ---------------------------------------------------------------- release records

def test_each_release_record_pins_an_existing_object_version_and_its_hash(stack):
    ssm, s3 = aws("ssm"), aws("s3")
    path = f"/{PROJECT}/{ENV}/releases/"
    records = ssm.get_parameters_by_path(Path=path)["Parameters"]
    if not records:
        pytest.skip(f"no release recorded under {path} yet")
    for record in records:
        value = json.loads(record["Value"])
        assert record["Version"] == 1, f"{record['Name']} was rewritten"
        assert record["Name"] == path + value["release"]
        body = s3.get_object(Bucket=ARTIFACTS, Key=value["key"], VersionId=value["version_id"])["Body"].read()
        assert hashlib.sha256(body).hexdigest() == value["sha256"], record["Name"]


def test_a_published_release_cannot_be_overwritten_by_a_conditional_write(stack):
    keys = [o["Key"] for o in aws("s3").list_objects_v2(Bucket=ARTIFACTS, Prefix="node/pulse-node-").get("Contents", [])]
    if not keys:
        pytest.skip("nothing published")
    with pytest.raises(Exception, match="PreconditionFailed"):
        aws("s3").put_object(Bucket=ARTIFACTS, Key=keys[0], Body=b"junk", IfNoneMatch="*")
