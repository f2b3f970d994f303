"""playbooks/ci_access.yml and its teardown against the lab's moto (issue #14, part A).

A throwaway environment of its own (project "ptest", env "ci", GitHub environment
"ptest-ci-approval", repository pulse-test/pulse, bucket ptest-ci-artifacts-0001): the lab's
resources are never touched (the last test checks it) and the module ends with everything it made
removed. GitHub's OIDC provider is one per account: it is shared with whoever else uses the lab's
moto, so the tests look only at what trusts it and never delete it while another role does.

moto enforces no IAM, so what the roles may do is shown by evaluating the documents read back
from moto with tests/iam_policy_eval.py (which follows AWS's evaluation rules and has its own
tests), and what S3 itself refuses (a conditional overwrite) by moto's S3.

Order: bad input (nothing created) -> check mode -> provision -> again (no change) -> check mode
(no change) -> provider, trust conditions, evaluations -> publish for real with bin/pulse-publish
-> teardown refuses -> teardown keeps the provider while another role trusts it -> teardown
removes it -> again (no change) -> the lab is untouched.
"""

import json
import subprocess
import sys

import pytest

from conftest import MOTO, REGION, REPO, aws, run_playbook
from iam_policy_eval import ALLOW, DENY, IMPLICIT_DENY, evaluate

pytestmark = [pytest.mark.lab]

PROJECT, ENV = "ptest", "ci"
PREFIX = f"{PROJECT}-{ENV}"
GITHUB_ENV = "ptest-ci-approval"
REPOSITORY = "pulse-test/pulse"
BUCKET = f"{PREFIX}-artifacts-0001"
PUBLISH, DEPLOY = f"{PREFIX}-ci-publish", f"{PREFIX}-ci-deploy"
OTHER_TEAM = f"{PREFIX}-other-team"
STACK = {
    "pulse_project": PROJECT,
    "pulse_env": ENV,
    "pulse_ci_environment": GITHUB_ENV,
    "pulse_ci_repository": REPOSITORY,
    "pulse_artifacts_bucket": BUCKET,
}
PLAYBOOK = "playbooks/ci_access.yml"
TEARDOWN = "playbooks/teardown.yml"
HOST = "token.actions.githubusercontent.com"
ACCOUNT = "123456789012"
PROVIDER_ARN = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{HOST}"
RELEASES = f"arn:aws:s3:::{BUCKET}/node/pulse-node-v1.4.0"
INSTANCE = f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/i-0123456789abcdef0"


def run(playbook, *args, check=False, **extra):
    return run_playbook(playbook, *args, extra_vars={**STACK, **extra}, check=check)


def role(name):
    try:
        return aws("iam").get_role(RoleName=name)["Role"]
    except aws("iam").exceptions.NoSuchEntityException:
        return None


def inline_policies(name):
    iam = aws("iam")
    return [iam.get_role_policy(RoleName=name, PolicyName=p)["PolicyDocument"]
            for p in iam.list_role_policies(RoleName=name)["PolicyNames"]]


def providers():
    return [p["Arn"] for p in aws("iam").list_open_id_connect_providers()["OpenIDConnectProviderList"]]


def trusting(arn):
    """Roles whose trust policy names the provider."""
    out = []
    for r in aws("iam").get_paginator("list_roles").paginate().build_full_result()["Roles"]:
        doc = r["AssumeRolePolicyDocument"]
        doc = json.loads(doc) if isinstance(doc, str) else doc
        for s in doc.get("Statement", []):
            fed = (s.get("Principal") or {}).get("Federated")
            if arn in ([fed] if isinstance(fed, str) else fed or []):
                out.append(r["RoleName"])
    return sorted(set(out))


def lab_iam_snapshot():
    iam = aws("iam")
    roles = [r for r in iam.list_roles()["Roles"] if r["RoleName"].startswith("pulse-lab-")]
    return {r["RoleName"]: (json.dumps(r["AssumeRolePolicyDocument"], sort_keys=True),
                            [json.dumps(d, sort_keys=True) for d in inline_policies(r["RoleName"])]) for r in roles}


def assume(trust, sub, aud="sts.amazonaws.com", provider=PROVIDER_ARN):
    return evaluate(trust, "sts:AssumeRoleWithWebIdentity", None,
                    {f"{HOST}:aud": aud, f"{HOST}:sub": sub}, {"Federated": provider})


@pytest.fixture(scope="module")
def lab_before(lab):
    return lab_iam_snapshot()


@pytest.fixture(scope="module")
def bucket(lab):
    s3 = aws("s3")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    yield BUCKET
    versions = s3.list_object_versions(Bucket=BUCKET)
    for v in versions.get("Versions", []) + versions.get("DeleteMarkers", []):
        s3.delete_object(Bucket=BUCKET, Key=v["Key"], VersionId=v["VersionId"])
    s3.delete_bucket(Bucket=BUCKET)
    try:
        aws("ssm").delete_parameter(Name=f"/{PROJECT}/{ENV}/releases/v1.4.0")
    except aws("ssm").exceptions.ParameterNotFound:
        pass


@pytest.fixture(scope="module", autouse=True)
def cleanup(lab):
    """Whatever happens, leave no throwaway role behind (the provider only when nothing else trusts it)."""
    yield
    iam = aws("iam")
    for name in (PUBLISH, DEPLOY, OTHER_TEAM):
        if role(name):
            for p in iam.list_role_policies(RoleName=name)["PolicyNames"]:
                iam.delete_role_policy(RoleName=name, PolicyName=p)
            iam.delete_role(RoleName=name)


# --------------------------------------------------------------------------- provisioning


def test_bad_repository_is_refused_before_any_call(lab_before):
    result = run(PLAYBOOK, pulse_ci_repository="pulse test/pulse")
    assert result.rc != 0
    assert "pulse_ci_repository must name the GitHub repository" in result.output
    assert role(PUBLISH) is None and role(DEPLOY) is None


def test_check_mode_creates_nothing():
    before = providers()
    result = run(PLAYBOOK, check=True)
    assert result.rc == 0, result.output[-3000:]
    assert role(PUBLISH) is None and role(DEPLOY) is None
    assert providers() == before


def test_provision():
    result = run(PLAYBOOK)
    assert result.rc == 0, result.output[-3000:]
    assert result.changed > 0
    assert PROVIDER_ARN in providers()
    assert role(PUBLISH) and role(DEPLOY)
    assert f"repository variable PULSE_PUBLISH_ROLE_ARN = arn:aws:iam::{ACCOUNT}:role/{PUBLISH}" in result.output
    assert f"environment variable PULSE_DEPLOY_ROLE_ARN = arn:aws:iam::{ACCOUNT}:role/{DEPLOY}" in result.output


def test_second_run_and_check_mode_change_nothing():
    again = run(PLAYBOOK)
    assert again.rc == 0 and again.changed == 0, again.changed_hosts()
    checked = run(PLAYBOOK, check=True)
    assert checked.rc == 0 and checked.changed == 0, checked.output[-3000:]


def test_the_provider():
    provider = aws("iam").get_open_id_connect_provider(OpenIDConnectProviderArn=PROVIDER_ARN)
    assert provider["Url"] == HOST
    assert "sts.amazonaws.com" in provider["ClientIDList"]
    tags = {t["Key"]: t["Value"] for t in provider["Tags"]}
    assert tags.get("ManagedBy") == "pulse.infra.ci_access"
    assert "Env" not in tags, "the provider is shared by every environment"


def test_the_roles_settings():
    for name in (PUBLISH, DEPLOY):
        r = role(name)
        assert r["MaxSessionDuration"] == 3600
        tags = {t["Key"]: t["Value"] for t in r["Tags"]}
        assert tags == {"Project": PROJECT, "Env": ENV, "ManagedBy": "pulse.infra.ci_access", "Name": name}
        assert aws("iam").list_attached_role_policies(RoleName=name)["AttachedPolicies"] == []
        assert len(inline_policies(name)) == 1
        assert aws("iam").list_instance_profiles_for_role(RoleName=name)["InstanceProfiles"] == []


def test_exactly_these_trust_conditions():
    publish = role(PUBLISH)["AssumeRolePolicyDocument"]
    deploy = role(DEPLOY)["AssumeRolePolicyDocument"]
    [p] = publish["Statement"]
    [d] = deploy["Statement"]
    for s in (p, d):
        assert s["Effect"] == "Allow" and s["Action"] == "sts:AssumeRoleWithWebIdentity"
        assert s["Principal"] == {"Federated": PROVIDER_ARN}
    assert p["Condition"] == {
        "StringEquals": {f"{HOST}:aud": "sts.amazonaws.com"},
        "StringLike": {f"{HOST}:sub": f"repo:{REPOSITORY}:ref:refs/tags/v*"},
    }
    assert d["Condition"] == {
        "StringEquals": {f"{HOST}:aud": "sts.amazonaws.com", f"{HOST}:sub": f"repo:{REPOSITORY}:environment:{GITHUB_ENV}"},
    }


# --------------------------------------------------------------------------- who may assume what


def test_a_tag_ref_may_publish_a_branch_ref_may_not():
    trust = role(PUBLISH)["AssumeRolePolicyDocument"]
    assert assume(trust, f"repo:{REPOSITORY}:ref:refs/tags/v1.4.0") == ALLOW
    assert assume(trust, f"repo:{REPOSITORY}:ref:refs/tags/v2.0.0-rc.1") == ALLOW
    for sub in (f"repo:{REPOSITORY}:ref:refs/heads/main",
                f"repo:{REPOSITORY}:ref:refs/heads/v1.4.0",
                f"repo:{REPOSITORY}:ref:refs/tags/release-1",
                f"repo:{REPOSITORY}:pull_request",
                f"repo:{REPOSITORY}:environment:{GITHUB_ENV}",
                f"repo:someone/pulse:ref:refs/tags/v1.4.0",
                f"repo:{REPOSITORY}-fork:ref:refs/tags/v1.4.0"):
        assert assume(trust, sub) == IMPLICIT_DENY, sub
    assert assume(trust, f"repo:{REPOSITORY}:ref:refs/tags/v1.4.0", aud="https://github.com/pulse-test") == IMPLICIT_DENY
    other = f"arn:aws:iam::{ACCOUNT}:oidc-provider/oidc.example.com"
    assert assume(trust, f"repo:{REPOSITORY}:ref:refs/tags/v1.4.0", provider=other) == IMPLICIT_DENY


def test_only_the_github_environment_may_deploy():
    trust = role(DEPLOY)["AssumeRolePolicyDocument"]
    assert assume(trust, f"repo:{REPOSITORY}:environment:{GITHUB_ENV}") == ALLOW
    for sub in (f"repo:{REPOSITORY}:ref:refs/tags/v1.4.0",
                f"repo:{REPOSITORY}:environment:{GITHUB_ENV}-x",
                f"repo:{REPOSITORY}:environment:lab",
                f"repo:{REPOSITORY}:ref:refs/heads/main",
                f"repo:someone/pulse:environment:{GITHUB_ENV}"):
        assert assume(trust, sub) == IMPLICIT_DENY, sub


# --------------------------------------------------------------------------- what each role may do


def test_publish_may_only_add_new_releases():
    policy = inline_policies(PUBLISH)
    new = {"s3:if-none-match": "*"}
    for key in ("pulse-node-v1.4.0", "pulse-node-v1.4.0.sha256", "pulse-node-v1.4.0.json"):
        arn = f"arn:aws:s3:::{BUCKET}/node/{key}"
        assert evaluate(policy, "s3:PutObject", arn, new) == ALLOW, key
        assert evaluate(policy, "s3:PutObject", arn, {}) == DENY, f"{key}: an unconditional write (overwrite)"
        assert evaluate(policy, "s3:PutObject", arn, {"s3:if-none-match": "etag"}) == DENY
        for action in ("s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectAcl", "s3:PutObjectRetention",
                       "s3:BypassGovernanceRetention"):
            assert evaluate(policy, action, arn, new) == DENY, action
    assert evaluate(policy, "s3:GetObject", RELEASES) == ALLOW  # the look before the write
    # nothing outside the releases
    for arn in (f"arn:aws:s3:::{BUCKET}/node/other", f"arn:aws:s3:::{BUCKET}/web/index.html",
                f"arn:aws:s3:::pulse-lab-artifacts-0001/node/pulse-node-v9.9.9",
                f"arn:aws:s3:::{PREFIX}-backups-0001/node/pulse-node-v1.4.0"):
        assert evaluate(policy, "s3:PutObject", arn, new) != ALLOW, arn
    for action, arn in (("s3:ListBucket", f"arn:aws:s3:::{BUCKET}"), ("ec2:DescribeInstances", "*"),
                        ("iam:PassRole", "*"), ("ssm:PutParameter", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/ptest/ci/release")):
        assert evaluate(policy, action, arn, {}) == IMPLICIT_DENY, action
    # the release record: created once, never overwritten or deleted
    record = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/{PROJECT}/{ENV}/releases/v1.4.0"
    assert evaluate(policy, "ssm:PutParameter", record, {}) == ALLOW
    assert evaluate(policy, "ssm:PutParameter", record, {"ssm:Overwrite": "false"}) == ALLOW
    assert evaluate(policy, "ssm:PutParameter", record, {"ssm:Overwrite": "true"}) == DENY
    assert evaluate(policy, "ssm:DeleteParameter", record, {}) == DENY
    assert evaluate(policy, "ssm:PutParameter", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/pulse/lab/releases/v1.4.0",
                    {}) == IMPLICIT_DENY


def test_deploy_may_not_write_releases_and_stays_in_its_environment():
    policy = inline_policies(DEPLOY)

    def may(action, resource="*", **context):
        return evaluate(policy, action, resource, context, None) == ALLOW

    # releases: read, never write
    assert may("s3:GetObject", RELEASES)
    assert may("s3:ListBucket", f"arn:aws:s3:::{BUCKET}", **{"s3:prefix": "node/pulse-node-"})
    assert may("s3:ListBucket", f"arn:aws:s3:::{BUCKET}")  # HeadBucket: no prefix
    assert not may("s3:ListBucket", f"arn:aws:s3:::{BUCKET}", **{"s3:prefix": "web/"})
    for action in ("s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectAcl"):
        assert not may(action, RELEASES, **{"s3:if-none-match": "*"}), action
    assert not may("s3:GetObject", f"arn:aws:s3:::{PREFIX}-backups-0001/node/x")
    # the target group of this environment only
    tg = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/{PREFIX}-node/0123456789abcdef"
    lab_tg = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/pulse-lab-node/0123456789abcdef"
    assert may("elasticloadbalancing:DeregisterTargets", tg) and may("elasticloadbalancing:RegisterTargets", tg)
    assert not may("elasticloadbalancing:DeregisterTargets", lab_tg)
    assert not may("elasticloadbalancing:DeleteTargetGroup", tg)
    assert may("elasticloadbalancing:DescribeTargetHealth") and may("ec2:DescribeInstances")
    # the environment's release record only
    param = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/{PROJECT}/{ENV}/release"
    assert may("ssm:PutParameter", param) and may("ssm:GetParameter", param)
    assert not may("ssm:PutParameter", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/pulse/lab/release")
    assert not may("ssm:GetParameter", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/{PROJECT}/{ENV}/cloudflared/credentials")
    assert not may("ssm:DeleteParameter", param)
    record = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/{PROJECT}/{ENV}/releases/v1.4.0"
    assert may("ssm:GetParameter", record) and not may("ssm:PutParameter", record)
    assert may("s3:GetObjectVersion", RELEASES)
    # PulseRelease tags on this environment's instances only
    mine = {"aws:ResourceTag/Project": PROJECT, "aws:ResourceTag/Env": ENV}
    assert may("ec2:CreateTags", INSTANCE, **mine, **{"aws:TagKeys": ["PulseRelease"]})
    assert not may("ec2:CreateTags", INSTANCE, **mine, **{"aws:TagKeys": ["PulseRelease", "Env"]})
    assert not may("ec2:CreateTags", INSTANCE, **mine, **{"aws:TagKeys": ["Role"]})
    assert not may("ec2:CreateTags", INSTANCE, **{"aws:ResourceTag/Project": "pulse", "aws:ResourceTag/Env": "lab",
                                                 "aws:TagKeys": ["PulseRelease"]})
    assert not may("ec2:DeleteTags", INSTANCE, **mine, **{"aws:TagKeys": ["PulseRelease"]})
    assert not may("ec2:TerminateInstances", INSTANCE, **mine)
    # Session Manager: SSH sessions to this environment's instances only
    session_tags = {"ssm:resourceTag/Project": PROJECT, "ssm:resourceTag/Env": ENV}
    ssh_doc = f"arn:aws:ssm:{REGION}::document/AWS-StartSSHSession"
    assert may("ssm:StartSession", INSTANCE, **session_tags, **{"ssm:SessionDocumentAccessCheck": "true"})
    assert may("ssm:StartSession", ssh_doc, **{"ssm:SessionDocumentAccessCheck": "true"})
    assert not may("ssm:StartSession", INSTANCE, **{"ssm:resourceTag/Project": "pulse", "ssm:resourceTag/Env": "lab"})
    assert not may("ssm:StartSession", f"arn:aws:ssm:{REGION}::document/SSM-SessionManagerRunShell")
    assert not may("ssm:StartSession", f"arn:aws:ssm:{REGION}::document/AWS-StartPortForwardingSession")
    assert not may("ssm:SendCommand", INSTANCE, **session_tags)
    me = {"aws:userid": "AROAEXAMPLE:pulse-deploy-42"}
    assert may("ssm:TerminateSession", f"arn:aws:ssm:{REGION}:{ACCOUNT}:session/AROAEXAMPLE:pulse-deploy-42-0abc", **me)
    assert not may("ssm:TerminateSession", f"arn:aws:ssm:{REGION}:{ACCOUNT}:session/AROAOTHER:someone-0abc", **me)
    # and nothing of IAM
    assert not may("iam:PassRole") and not may("sts:AssumeRole")


def test_publishing_for_real_adds_a_release_once(bucket, tmp_path):
    """bin/pulse-publish against moto; a second publication of the version is refused, and S3
    itself refuses the conditional overwrite the publish role's policy requires."""
    binary = tmp_path / "pulse-node"
    binary.write_bytes(b"\x7fELF lab build " * 100)
    cmd = [sys.executable, str(REPO / "bin/pulse-publish"), "--bucket", bucket, "--version", "v1.4.0",
           "--binary", str(binary), "--os-family", "debian12", "--endpoint-url", MOTO, "--region", REGION,
           "--built-by", "test_ci_access", "--record-parameter", f"/{PROJECT}/{ENV}/releases/v1.4.0"]
    env = {"AWS_ACCESS_KEY_ID": "lab-not-a-secret", "AWS_SECRET_ACCESS_KEY": "lab-not-a-secret", "PATH": "/usr/bin:/bin"}
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr
    s3 = aws("s3")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == ["node/pulse-node-v1.4.0", "node/pulse-node-v1.4.0.json", "node/pulse-node-v1.4.0.sha256"]
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    assert second.returncode == 3 and "already published" in second.stderr
    with pytest.raises(s3.exceptions.ClientError) as refused:
        s3.put_object(Bucket=bucket, Key="node/pulse-node-v1.4.0", Body=b"evil", IfNoneMatch="*")
    assert refused.value.response["Error"]["Code"] == "PreconditionFailed"
    assert s3.get_object(Bucket=bucket, Key="node/pulse-node-v1.4.0")["Body"].read() == binary.read_bytes()
    recorded = json.loads(aws("ssm").get_parameter(Name=f"/{PROJECT}/{ENV}/releases/v1.4.0")["Parameter"]["Value"])
    head = s3.head_object(Bucket=bucket, Key="node/pulse-node-v1.4.0")
    assert recorded["version_id"] == head["VersionId"] and recorded["key"] == "node/pulse-node-v1.4.0"


# --------------------------------------------------------------------------- teardown


def test_teardown_refuses_without_the_environments_name():
    result = run(TEARDOWN, "--tags", "ci_access", confirm="lab")
    assert result.rc != 0 and "confirm with -e confirm=ci" in result.output
    assert role(PUBLISH) and role(DEPLOY)


def test_teardown_keeps_the_provider_while_another_role_trusts_it():
    aws("iam").create_role(RoleName=OTHER_TEAM, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Federated": PROVIDER_ARN},
                                                "Action": "sts:AssumeRoleWithWebIdentity"}]}))
    result = run(TEARDOWN, "--tags", "ci_access", confirm=ENV)
    assert result.rc == 0, result.output[-3000:]
    assert role(PUBLISH) is None and role(DEPLOY) is None
    assert PROVIDER_ARN in providers()
    assert "Kept the OIDC provider" in result.output and OTHER_TEAM in result.output
    aws("iam").delete_role(RoleName=OTHER_TEAM)


def test_teardown_removes_the_provider_once_nothing_trusts_it():
    others = trusting(PROVIDER_ARN)  # roles of other environments sharing the lab's moto, if any
    result = run(TEARDOWN, "--tags", "ci_access", confirm=ENV)
    assert result.rc == 0, result.output[-3000:]
    if others:
        assert PROVIDER_ARN in providers(), f"kept for {others}"
    else:
        assert PROVIDER_ARN not in providers()
    again = run(TEARDOWN, "--tags", "ci_access", confirm=ENV)
    assert again.rc == 0 and again.changed == 0, again.changed_hosts()


def test_the_lab_is_untouched(lab_before):
    assert lab_iam_snapshot() == lab_before
