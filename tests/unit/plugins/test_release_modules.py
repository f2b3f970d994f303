"""Unit tests for the write-once modules of the release record (issue #13), on moto's mock_aws:
pulse.infra.s3_object_once (PutObject with If-None-Match, never over an existing key) and
pulse.infra.ssm_parameter_once (a parameter written once), and pulse.infra.vpc_flow_log."""

import hashlib
import json

import boto3
import pytest

moto = pytest.importorskip("moto")
from moto import mock_aws  # noqa: E402

from ansible.module_utils.testing import patch_module_args  # noqa: E402

from ansible_collections.pulse.infra.plugins.modules import s3_object_once  # noqa: E402
from ansible_collections.pulse.infra.plugins.modules import ssm_parameter_once  # noqa: E402
from ansible_collections.pulse.infra.plugins.modules import vpc_flow_log  # noqa: E402

REGION = "us-east-2"
BUCKET = "pulse-unit-artifacts"


@pytest.fixture(autouse=True)
def aws(monkeypatch):
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        yield s3


def run(module, capsys, check=False, **args):
    args.setdefault("region", REGION)
    if check:
        args["_ansible_check_mode"] = True
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exc:
            module.main()
    return exc.value.code, json.loads(capsys.readouterr().out)


def test_an_object_is_written_once_and_the_same_content_again_is_accepted(aws, capsys, tmp_path):
    src = tmp_path / "pulse-node-v1.2.0"
    src.write_bytes(b"release bytes")
    sha = hashlib.sha256(b"release bytes").hexdigest()
    rc, out = run(s3_object_once, capsys, bucket=BUCKET, key="node/pulse-node-v1.2.0", src=str(src))
    assert rc == 0 and out["changed"] and not out["existed"] and out["sha256"] == sha
    head = aws.head_object(Bucket=BUCKET, Key="node/pulse-node-v1.2.0")
    assert head["VersionId"] == out["version_id"] and head["Metadata"]["sha256"] == sha
    rc, again = run(s3_object_once, capsys, bucket=BUCKET, key="node/pulse-node-v1.2.0", src=str(src))
    assert rc == 0 and not again["changed"] and again["existed"] and again["version_id"] == out["version_id"]


def test_other_content_is_refused_and_the_object_is_untouched(aws, capsys, tmp_path):
    aws.put_object(Bucket=BUCKET, Key="node/pulse-node-v1.2.0", Body=b"the published one")
    src = tmp_path / "rebuilt"
    src.write_bytes(b"something else")
    rc, out = run(s3_object_once, capsys, bucket=BUCKET, key="node/pulse-node-v1.2.0", src=str(src))
    assert rc == 1 and "Refusing to overwrite" in out["msg"]
    assert hashlib.sha256(b"the published one").hexdigest() in out["msg"]
    versions = aws.list_object_versions(Bucket=BUCKET)["Versions"]
    assert len(versions) == 1
    assert aws.get_object(Bucket=BUCKET, Key="node/pulse-node-v1.2.0")["Body"].read() == b"the published one"


def test_check_mode_writes_nothing(aws, capsys, tmp_path):
    src = tmp_path / "f"
    src.write_bytes(b"x")
    rc, out = run(s3_object_once, capsys, check=True, bucket=BUCKET, key="node/x", src=str(src))
    assert rc == 0 and out["changed"] and "Contents" not in aws.list_objects_v2(Bucket=BUCKET)


def test_without_src_the_existing_object_is_verified(aws, capsys):
    vid = aws.put_object(Bucket=BUCKET, Key="node/old", Body=b"old release")["VersionId"]
    sha = hashlib.sha256(b"old release").hexdigest()
    rc, out = run(s3_object_once, capsys, bucket=BUCKET, key="node/old", sha256=sha)
    assert rc == 0 and not out["changed"] and out["version_id"] == vid and out["sha256"] == sha
    rc, out = run(s3_object_once, capsys, bucket=BUCKET, key="node/old", sha256="0" * 64)
    assert rc == 1 and "Refusing" in out["msg"]
    rc, out = run(s3_object_once, capsys, bucket=BUCKET, key="node/missing", sha256=sha)
    assert rc == 1 and "does not exist" in out["msg"]


def test_a_parameter_is_written_once(capsys):
    name = "/pulse/unit/releases/v1.2.0"
    value = {"release": "v1.2.0", "sha256": "a" * 64, "version_id": "v1"}
    rc, out = run(ssm_parameter_once, capsys, name=name)
    assert rc == 0 and not out["exists"] and not out["changed"]
    rc, out = run(ssm_parameter_once, capsys, name=name, value=value)
    assert rc == 0 and out["changed"] and out["version"] == 1
    rc, out = run(ssm_parameter_once, capsys, name=name, value=dict(reversed(list(value.items()))))
    assert rc == 0 and not out["changed"]
    rc, out = run(ssm_parameter_once, capsys, name=name, value={**value, "sha256": "b" * 64})
    assert rc == 1 and "written once" in out["msg"]
    stored = boto3.client("ssm", region_name=REGION).get_parameter(Name=name)["Parameter"]
    assert json.loads(stored["Value"]) == value and stored["Version"] == 1
    rc, out = run(ssm_parameter_once, capsys, name=name)
    assert rc == 0 and out["exists"] and json.loads(out["value"]) == value


def test_the_flow_log_of_a_vpc(capsys):
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    boto3.client("logs", region_name=REGION).create_log_group(logGroupName="/pulse/unit/vpc-flow-logs")
    args = dict(vpc_id=vpc, log_group_name="/pulse/unit/vpc-flow-logs",
                deliver_logs_permission_arn="arn:aws:iam::123456789012:role/pulse-unit-flow-logs", tags={"Name": "x"})
    rc, out = run(vpc_flow_log, capsys, check=True, **args)
    assert rc == 0 and out["changed"] and ec2.describe_flow_logs()["FlowLogs"] == []
    rc, out = run(vpc_flow_log, capsys, **args)
    assert rc == 0 and out["changed"] and len(out["flow_log_ids"]) == 1
    rc, again = run(vpc_flow_log, capsys, **args)
    assert rc == 0 and not again["changed"] and again["flow_log_ids"] == out["flow_log_ids"]
    (flow,) = ec2.describe_flow_logs()["FlowLogs"]
    assert (flow["TrafficType"], flow["ResourceId"]) == ("ALL", vpc)
    rc, out = run(vpc_flow_log, capsys, vpc_id=vpc, log_group_name="/pulse/unit/vpc-flow-logs", state="absent")
    assert rc == 0 and out["changed"] and ec2.describe_flow_logs()["FlowLogs"] == []
