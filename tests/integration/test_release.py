"""The lab's release pipeline (`make lab-release TAG=...`, lab/release.py; issue #14): a tag is
tested, built, published with bin/pulse-publish as the environment's CI publish role and rolled
out by deploy_node.yml, under 20 req/s through the lab load balancer; a tag whose tests fail
publishes nothing; and the deploy refuses a release built for another OS family.

Starts from whatever healthy cluster the earlier tests leave (test_converge.py: 4 nodes on
v1.1.0); needs no particular release.
"""

import json
import subprocess
import sys

import pytest

from conftest import REPO, ansible_env, aws, docker, get, run_playbook

sys.path.insert(0, str(REPO / "lab"))
from traffic import TargetWatch, Traffic  # noqa: E402  (lab/traffic.py)

pytestmark = [pytest.mark.lab, pytest.mark.slow]

BUCKET = "pulse-lab-artifacts-0001"
TARGET_GROUP = "pulse-lab-node"
RECORDS = "/pulse/lab/releases/"
RATE = 20


def nodes():
    reservations = aws("ec2").describe_instances(Filters=[
        {"Name": "tag:Project", "Values": ["pulse"]}, {"Name": "tag:Env", "Values": ["lab"]},
        {"Name": "tag:Role", "Values": ["node"]}, {"Name": "instance-state-name", "Values": ["running"]},
    ])["Reservations"]
    return [i for r in reservations for i in r["Instances"]]


def name(instance):
    return {t["Key"]: t["Value"] for t in instance.get("Tags", [])}.get("Name", "")


def versions():
    return {name(n): get(n["PrivateIpAddress"], "/info")["version"] for n in nodes()}


def main_pids():
    return {name(n): docker("exec", n["InstanceId"], "systemctl", "show", "-p", "MainPID", "--value",
                            "pulse-node").stdout.strip() for n in nodes()}


def published_keys(version):
    found = aws("s3").list_objects_v2(Bucket=BUCKET, Prefix=f"node/pulse-node-{version}")
    return sorted(o["Key"] for o in found.get("Contents", []))


def record(version):
    try:
        return json.loads(aws("ssm").get_parameter(Name=f"{RECORDS}{version}")["Parameter"]["Value"])
    except aws("ssm").exceptions.ParameterNotFound:
        return None


def tag_commit(tag):
    out = subprocess.run(["git", "ls-remote", "git://127.0.0.1/pulse", f"refs/tags/{tag}^{{}}"],
                         capture_output=True, text=True, check=True, timeout=30).stdout
    return out.split()[0]


def release(tag):
    """`make lab-release TAG=<tag>`, as the README says; returns (exit code, output)."""
    proc = subprocess.run(["make", "--no-print-directory", "lab-release", f"TAG={tag}"], cwd=REPO,
                          env=ansible_env(), text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=2400, check=False)
    sys.stdout.write(f"\n$ make lab-release TAG={tag}\n{proc.stdout[-20000:]}\n")
    return proc.returncode, proc.stdout


@pytest.fixture(scope="module")
def cluster(lab):
    found = nodes()
    assert len(found) >= 3, "the earlier lab tests leave a cluster of at least 3 nodes"
    for node in found:
        assert get(node["PrivateIpAddress"], "/health") is not None, f"{name(node)} is not healthy"
    return found


def test_bad_tags_are_refused_before_any_job_runs(cluster):
    for bad in ("", "v1.4", "1.4.0", "latest"):
        rc, out = release(bad)
        assert rc != 0
        assert "usage: make lab-release TAG=v1.4.0" in out
        assert "job " not in out


def test_a_tag_whose_tests_fail_publishes_nothing_and_deploys_nothing(cluster):
    before, pids = versions(), main_pids()
    rc, out = release("v1.4.1")
    assert rc != 0
    # it stopped at cargo test, in the build job, and said so
    assert "Run the crate's tests" in out and "build_mode::tests::release_self_check_passes ... FAILED" in out
    assert "job test, build, publish: FAILED" in out
    assert "v1.4.1 was not published and nothing was deployed" in out
    assert "job deploy" not in out
    assert published_keys("v1.4.1") == [] and record("v1.4.1") is None
    assert versions() == before and main_pids() == pids


@pytest.fixture(scope="module")
def released(cluster):
    """make lab-release TAG=v1.4.0 under 20 req/s through the load balancer."""
    with Traffic(RATE) as traffic, TargetWatch(TARGET_GROUP) as watch:
        rc, out = release("v1.4.0")
    return {"rc": rc, "out": out, "traffic": traffic, "watch": watch}


def test_a_new_tag_is_released_to_every_node_with_no_failed_request(released):
    assert released["rc"] == 0, released["out"][-6000:]
    assert "v1.4.0 tested, built, published as" in released["out"]
    assert set(versions().values()) == {"1.4.0"}
    assert aws("ssm").get_parameter(Name="/pulse/lab/release")["Parameter"]["Value"] == "v1.4.0"
    # one node out of the target group at a time, and every request answered
    assert released["watch"].max_out == 1
    summary = released["traffic"].summary()
    assert summary["failed"] == 0 and summary["sent"] > 0, released["traffic"].explain()


def test_the_release_was_tested_and_published_once_by_the_publish_role(released):
    assert released["rc"] == 0, released["out"][-6000:]
    assert published_keys("v1.4.0") == ["node/pulse-node-v1.4.0", "node/pulse-node-v1.4.0.json",
                                        "node/pulse-node-v1.4.0.sha256"]
    s3 = aws("s3")
    build = json.loads(s3.get_object(Bucket=BUCKET, Key="node/pulse-node-v1.4.0.json")["Body"].read())
    head = s3.head_object(Bucket=BUCKET, Key="node/pulse-node-v1.4.0")
    assert build["commit"] == tag_commit("v1.4.0")
    assert build["os_family"] == "debian12" and build["tests"] == "cargo test --locked passed"
    # written by bin/pulse-publish in a session of the CI publish role (sts:GetCallerIdentity)
    assert build["publisher"] == "pulse.infra bin/pulse-publish"
    assert ":assumed-role/pulse-lab-ci-publish/" in build["published_as"]
    # the release record the deploy trusts names exactly that object version and hash
    assert record("v1.4.0") == {"key": "node/pulse-node-v1.4.0", "release": "v1.4.0",
                                "sha256": build["sha256"], "version_id": head["VersionId"]}


def test_a_release_built_for_another_os_family_is_refused_before_any_node_changes(cluster, tmp_path):
    binary = tmp_path / "pulse-node"
    binary.write_bytes(b"\x7fELF built on Amazon Linux 2023 " * 100)
    publish = subprocess.run(
        [sys.executable, str(REPO / "bin/pulse-publish"), "--bucket", BUCKET, "--version", "v0.9.0",
         "--binary", str(binary), "--os-family", "al2023", "--built-by", "test_release",
         "--endpoint-url", "http://127.0.0.1:5000", "--region", "us-east-2"],
        env={**ansible_env(), "AWS_ACCESS_KEY_ID": "lab-not-a-secret", "AWS_SECRET_ACCESS_KEY": "lab-not-a-secret"},
        capture_output=True, text=True, check=False, timeout=120)
    # 3: published by an earlier run of this test on the same lab (releases are immutable)
    assert publish.returncode in (0, 3), publish.stderr
    build = json.loads(aws("s3").get_object(Bucket=BUCKET, Key="node/pulse-node-v0.9.0.json")["Body"].read())
    assert build["os_family"] == "al2023"
    before, pids = versions(), main_pids()
    result = run_playbook("deploy_node.yml", extra_vars={"version": "v0.9.0"})
    assert result.rc != 0
    assert "v0.9.0 was built for OS family al2023, and this environment's nodes run debian12" in result.output
    assert "No node was changed." in result.output
    assert versions() == before and main_pids() == pids
