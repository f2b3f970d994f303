"""Issue #13: the IAM and bucket policy documents of roles/aws_storage_iam and roles/aws_network, rendered without AWS
(tests/unit/playbooks/render_stack_documents.yml) and evaluated with a policy evaluator
(tests/iam_eval.py): what a node, the builder and anyone else may and may not do. The same
properties are checked on the documents read back from the lab by tests/integration/test_security.py.
"""

import json
import subprocess

import pytest
import yaml

from conftest import REPO, VENV_BIN, ansible_env
from iam_eval import allowed, instance_context

ACCOUNT = "123456789012"
NODE1 = f"arn:aws:ec2:us-east-2:{ACCOUNT}:instance/i-00000000000000001"
NODE2 = f"arn:aws:ec2:us-east-2:{ACCOUNT}:instance/i-00000000000000002"
BUILDER = f"arn:aws:ec2:us-east-2:{ACCOUNT}:instance/i-0000000000000000b"
NODE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/pulse-unit-node"
BUILDER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/pulse-unit-builder"
ADMIN = f"arn:aws:iam::{ACCOUNT}:role/admin"
BREAK_GLASS = f"arn:aws:iam::{ACCOUNT}:role/break-glass"
ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}

# AWS's managed AmazonSSMManagedInstanceCore (policy version v14): the project's Session Manager
# policy is this without ssm:GetParameter and ssm:GetParameters (granted there on "*").
SSM_CORE_ACTIONS = {
    "ssm:DescribeAssociation", "ssm:GetDeployablePatchSnapshotForInstance", "ssm:GetDocument",
    "ssm:DescribeDocument", "ssm:GetManifest", "ssm:GetParameter", "ssm:GetParameters",
    "ssm:ListAssociations", "ssm:ListInstanceAssociations", "ssm:PutInventory", "ssm:PutComplianceItems",
    "ssm:PutConfigurePackageResult", "ssm:UpdateAssociationStatus", "ssm:UpdateInstanceAssociationStatus",
    "ssm:UpdateInstanceInformation", "ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel", "ec2messages:AcknowledgeMessage",
    "ec2messages:DeleteMessage", "ec2messages:FailMessage", "ec2messages:GetEndpoint",
    "ec2messages:GetMessages", "ec2messages:SendReply",
}


def render(tmp_path_factory, **extra):
    out = tmp_path_factory.mktemp("docs") / "docs.json"
    cmd = [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "tests/unit/playbooks/render_stack_documents.yml",
           "-e", json.dumps({"out": str(out), "ansible_python_interpreter": str(VENV_BIN / "python"), **extra})]
    proc = subprocess.run(cmd, cwd=REPO, env=ansible_env(), capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def docs(tmp_path_factory):
    return render(tmp_path_factory)


@pytest.fixture(scope="module")
def node(docs):
    return [docs["node"], docs["node_backups"], docs["session_manager"]]


@pytest.fixture(scope="module")
def builder(docs):
    return [docs["builder"], docs["session_manager"]]


def bucket(docs, purpose):
    return docs["names"][purpose]


def obj(docs, purpose, key):
    return f"arn:aws:s3:::{bucket(docs, purpose)}/{key}"


def actions(doc):
    out = set()
    for statement in doc["Statement"]:
        out |= set([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    return out


# ---------------------------------------------------------------- Session Manager, parameters

def test_the_session_manager_policy_is_the_managed_one_without_getparameter(docs):
    assert actions(docs["session_manager"]) == SSM_CORE_ACTIONS - {"ssm:GetParameter", "ssm:GetParameters"}
    assert all(s["Effect"] == "Allow" for s in docs["session_manager"]["Statement"])


def test_no_aws_managed_policy_and_no_lab_stand_in():
    files = ["roles/aws_storage_iam/tasks/iam.yml", "roles/aws_network/tasks/flow_logs.yml"]
    tasks = [task for name in files for task in yaml.safe_load((REPO / name).read_text())]
    text = "".join((REPO / name).read_text() for name in files + ["roles/aws_storage_iam/vars/main.yml",
                                                                  "roles/aws_network/vars/main.yml"])
    assert "policy/AmazonSSMManagedInstanceCore" not in text and "iam::aws:policy" not in text
    assert "lab-stand-in" not in text and "ssm_core_standin_policy" not in text
    for task in tasks:
        role = task.get("amazon.aws.iam_role")
        if role is not None:
            assert role["managed_policies"] == [] and role["purge_policies"] is True, task["name"]
        assert "pulse_lab" not in json.dumps(task), task["name"]


@pytest.mark.parametrize("who", ["node", "builder"])
def test_instances_read_only_their_environments_parameters(who, node, builder):
    docs = node if who == "node" else builder
    context = instance_context(NODE1 if who == "node" else BUILDER, NODE_ROLE if who == "node" else BUILDER_ROLE)
    arn = f"arn:aws:ssm:us-east-2:{ACCOUNT}:parameter"
    for action in ("ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"):
        assert allowed(docs, action, f"{arn}/pulse/unit/release", context)
        assert not allowed(docs, action, f"{arn}/pulse/other/x", context), action
        assert not allowed(docs, action, f"{arn}/pulse/unitx/x", context), action
        assert not allowed(docs, action, f"{arn}/other/cloudflared/credentials", context), action
    for action in ("ssm:PutParameter", "ssm:DeleteParameter", "ssm:LabelParameterVersion"):
        assert not allowed(docs, action, f"{arn}/pulse/unit/releases/v1.2.0", context), action


# ---------------------------------------------------------------- backups: append-only

def test_a_node_appends_backups_only_below_its_own_prefix(docs, node):
    mine = obj(docs, "backups", "backups/unit/pulse-unit-node-1/20260101T000000Z/data.tar.gz")
    other = obj(docs, "backups", "backups/unit/pulse-unit-node-2/20260101T000000Z/data.tar.gz")
    put = instance_context(NODE1, NODE_ROLE, **{"s3:if-none-match": "*"})
    assert allowed(node, "s3:PutObject", mine, put, [docs["buckets"]["backups"]])
    assert not allowed(node, "s3:PutObject", other, put, [docs["buckets"]["backups"]])
    assert not allowed(node, "s3:PutObject", obj(docs, "backups", "backups/other-env/pulse-unit-node-1/x"), put)
    # node-2's credentials cannot write node-1's prefix, and node-2 writes its own
    put2 = instance_context(NODE2, NODE_ROLE, **{"s3:if-none-match": "*"})
    assert not allowed(node, "s3:PutObject", mine, put2)
    assert allowed(node, "s3:PutObject", other, put2)


def test_a_node_never_overwrites_a_backup(docs, node):
    mine = obj(docs, "backups", "backups/unit/pulse-unit-node-1/20260101T000000Z/manifest.json")
    assert not allowed(node, "s3:PutObject", mine, instance_context(NODE1, NODE_ROLE))  # no If-None-Match


@pytest.mark.parametrize("action", ["s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutLifecycleConfiguration",
                                    "s3:PutBucketVersioning", "s3:PutBucketPolicy", "s3:BypassGovernanceRetention",
                                    "s3:PutObjectRetention", "s3:GetObject"])
@pytest.mark.parametrize("key", ["backups/unit/pulse-unit-node-1/x", "backups/unit/pulse-unit-node-2/x"])
def test_a_node_can_neither_delete_nor_read_nor_weaken_backups(docs, node, action, key):
    context = instance_context(NODE1, NODE_ROLE, **{"s3:if-none-match": "*"})
    assert not allowed(node, action, obj(docs, "backups", key), context, [docs["buckets"]["backups"]])
    assert not allowed(node, action, f"arn:aws:s3:::{bucket(docs, 'backups')}", context)


def test_a_node_deletes_only_the_snapshots_it_created(node):
    snapshot = "arn:aws:ec2:us-east-2::snapshot/snap-0123"
    own = instance_context(NODE1, NODE_ROLE, **{"aws:ResourceTag/Project": "pulse", "aws:ResourceTag/Env": "unit",
                                                "aws:ResourceTag/SourceInstance": NODE1})
    assert allowed(node, "ec2:DeleteSnapshot", snapshot, own)
    assert not allowed(node, "ec2:DeleteSnapshot", snapshot, {**own, "aws:ResourceTag/SourceInstance": NODE2})
    assert not allowed(node, "ec2:DeleteSnapshot", snapshot, {k: v for k, v in own.items() if "SourceInstance" not in k})
    create = instance_context(NODE1, NODE_ROLE, **{"aws:RequestTag/Project": "pulse", "aws:RequestTag/Env": "unit",
                                                   "aws:RequestTag/SourceInstance": NODE1})
    assert allowed(node, "ec2:CreateSnapshot", snapshot, create)
    assert not allowed(node, "ec2:CreateSnapshot", snapshot, {**create, "aws:RequestTag/SourceInstance": NODE2})


# ---------------------------------------------------------------- releases: immutable

@pytest.mark.parametrize("key", ["node/pulse-node-v1.2.0", "node/pulse-node-v1.2.0.sha256", "node/pulse-node-v9.9.9"])
@pytest.mark.parametrize("action", ["s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectRetention"])
def test_neither_builder_nor_node_may_write_or_delete_a_release(docs, node, builder, key, action):
    for who, docs_, instance, role in (("node", node, NODE1, NODE_ROLE), ("builder", builder, BUILDER, BUILDER_ROLE)):
        for header in ({}, {"s3:if-none-match": "*"}):
            context = instance_context(instance, role, **header)
            assert not allowed(docs_, action, obj(docs, "artifacts", key), context, [docs["buckets"]["artifacts"]]), who


def test_both_may_read_releases(docs, node, builder):
    key = obj(docs, "artifacts", "node/pulse-node-v1.2.0")
    assert allowed(node, "s3:GetObject", key, instance_context(NODE1, NODE_ROLE))
    assert allowed(builder, "s3:GetObject", key, instance_context(BUILDER, BUILDER_ROLE))


@pytest.mark.parametrize("purpose, key", [("artifacts", "node/pulse-node-v1.2.0"),
                                          ("backups", "backups/unit/pulse-unit-node-1/x/data.tar.gz"),
                                          ("logs", "alb/AWSLogs/123456789012/x.log.gz")])
def test_even_an_administrator_cannot_delete_history_without_changing_the_bucket_policy(docs, purpose, key, tmp_path_factory):
    context = {"aws:PrincipalArn": ADMIN, "aws:SecureTransport": "true"}
    for action in ("s3:DeleteObject", "s3:DeleteObjectVersion"):
        assert not allowed([ADMIN_POLICY], action, obj(docs, purpose, key), context, [docs["buckets"][purpose]])
    assert allowed([ADMIN_POLICY], "s3:GetObject", obj(docs, purpose, key), context, [docs["buckets"][purpose]])


def test_the_break_glass_principal_may_delete(tmp_path_factory):
    docs = render(tmp_path_factory, pulse_break_glass_principal_arns=[BREAK_GLASS])
    key = obj(docs, "artifacts", "node/pulse-node-v1.2.0")
    policy = [docs["buckets"]["artifacts"]]
    assert allowed([ADMIN_POLICY], "s3:DeleteObject", key, {"aws:PrincipalArn": BREAK_GLASS}, policy)
    assert not allowed([ADMIN_POLICY], "s3:DeleteObject", key, {"aws:PrincipalArn": ADMIN}, policy)


def test_every_bucket_refuses_plain_http(docs):
    for purpose in ("artifacts", "backups", "logs"):
        key = obj(docs, purpose, "x")
        assert not allowed([ADMIN_POLICY], "s3:GetObject", key, {"aws:SecureTransport": "false"}, [docs["buckets"][purpose]])


def test_the_log_bucket_admits_the_log_deliveries_below_their_prefixes(docs):
    statements = {s["Sid"]: s for s in docs["buckets"]["logs"]["Statement"]}
    assert statements["AlbAccessLogs"]["Principal"] == {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"}
    assert statements["AlbAccessLogsRegionalAccount"]["Principal"] == {"AWS": "arn:aws:iam::033677994240:root"}
    assert statements["AlbAccessLogs"]["Resource"].endswith(f"/alb/AWSLogs/{ACCOUNT}/*")
    logging = [s for s in statements.values() if s["Principal"] == {"Service": "logging.s3.amazonaws.com"}]
    assert sorted(s["Resource"].split(":::")[1] for s in logging) == sorted(
        f"{bucket(docs, 'logs')}/s3/{bucket(docs, p)}/*" for p in ("artifacts", "backups"))


# ---------------------------------------------------------------- shape

def test_no_wildcard_actions_and_resource_star_only_where_iam_has_no_resource(docs):
    star_ok = {"PutPulseMetricsOnly", "DescribeIsNotResourceScoped", "SsmAgentCore", "SessionManagerChannels",
               "RunCommandMessages"}
    for name in ("node", "node_backups", "builder", "session_manager", "flow_logs"):
        for statement in docs[name]["Statement"]:
            acts = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
            assert not any(a == "*" or a.endswith(":*") for a in acts), (name, statement["Sid"])
            if statement["Effect"] == "Allow" and statement["Resource"] == "*":
                assert statement["Sid"] in star_ok, (name, statement["Sid"])


def test_the_flow_log_role_writes_only_its_log_group(docs):
    (statement,) = docs["flow_logs"]["Statement"]
    assert all(":log-group:/pulse/unit/vpc-flow-logs" in r for r in statement["Resource"])
    trust = docs["flow_logs_trust"]["Statement"][0]
    assert trust["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}


def test_deletion_protection_is_on_by_default_and_off_only_in_the_lab():
    defaults = yaml.safe_load((REPO / "roles/aws_stack/defaults/main.yml").read_text())
    assert defaults["pulse_alb_deletion_protection"] is True
    assert defaults["pulse_builder_public_ip"] is False
    lab = yaml.safe_load((REPO / "inventories/lab/group_vars/all/provision.yml").read_text())
    assert lab["pulse_alb_deletion_protection"] is False
    production = yaml.safe_load((REPO / "inventories/production/group_vars/all/provision.yml").read_text())
    assert production.get("pulse_alb_deletion_protection", True) is True
