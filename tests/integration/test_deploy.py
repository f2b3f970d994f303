"""deploy_node.yml and restart.yml against the lab cluster that site.yml brought up
(3 nodes on v1.2.0 behind the lab load balancer). A plain site.yml right after the deploy
changes nothing (the run's idempotence check as well). Leaves every node on v1.1.0, the
release that test_converge.py starts from."""

import json
import re
import ssl
import sys
import urllib.request

import pytest

from conftest import REPO, aws, docker, run_playbook

sys.path.insert(0, str(REPO / "lab"))
from traffic import TargetWatch, Traffic  # noqa: E402  (lab/traffic.py)

pytestmark = pytest.mark.lab

DOMAIN = "api.lab.pulse.example.com"
TARGET_GROUP = "pulse-lab-node"


def nodes():
    reservations = aws("ec2").describe_instances(Filters=[
        {"Name": "tag:Project", "Values": ["pulse"]}, {"Name": "tag:Env", "Values": ["lab"]},
        {"Name": "tag:Role", "Values": ["node"]}, {"Name": "instance-state-name", "Values": ["running"]},
    ])["Reservations"]
    return sorted((i for r in reservations for i in r["Instances"]), key=lambda i: i["PrivateIpAddress"])


def get(ip, path):
    with urllib.request.urlopen(f"http://{ip}:8080{path}", timeout=5) as resp:
        return json.loads(resp.read())["data"]


def versions():
    return {n["InstanceId"]: get(n["PrivateIpAddress"], "/info")["version"] for n in nodes()}


def registered_targets():
    elb = aws("elbv2")
    arn = elb.describe_target_groups(Names=[TARGET_GROUP])["TargetGroups"][0]["TargetGroupArn"]
    health = elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    return {t["Target"]["Id"]: t["TargetHealth"]["State"] for t in health}


def releases(iid):
    return docker("exec", iid, "ls", "/opt/pulse/releases").stdout.split()


def through_the_load_balancer(path="/health"):
    """HTTPS through the lab load balancer on loopback, checked against the lab CA
    (its certificate names the domain and 127.0.0.1)."""
    context = ssl.create_default_context(cafile=str(REPO / ".lab/ca/ca.crt"))
    request = urllib.request.Request(f"https://127.0.0.1:8443{path}", headers={"Host": DOMAIN})
    with urllib.request.urlopen(request, context=context, timeout=5) as resp:
        return resp.status, json.loads(resp.read())


def published_listed(output):
    """The versions a refused deploy lists ("Published versions: v1.1.0, v1.2.0."): at least
    the one test_site.py built; a lab used before may hold more."""
    match = re.search(r"Published versions: ((?:v\d+\.\d+\.\d+(?:, )?)+)", " ".join(output.split()))
    assert match, output[-3000:]
    return match.group(1).split(", ")


def build(version):
    result = run_playbook("playbooks/build_node.yml", extra_vars={"version": version})
    assert result.rc == 0, result.output[-4000:]


@pytest.fixture(scope="module")
def cluster(lab):
    """3 nodes on v1.2.0: what site.yml leaves (test_site.py); run alone after another test, the
    fixture gets there first (retirement or a converge to 3 nodes, a deploy of v1.2.0)."""
    if len(nodes()) > 3:
        retired = run_playbook("playbooks/retire_node.yml", extra_vars={"pulse_node_count": 3, "confirm": "lab"})
        assert retired.rc == 0, retired.output[-4000:]
    if len(nodes()) < 3:
        grown = run_playbook("site.yml", extra_vars={"pulse_node_count": 3})
        assert grown.rc == 0, grown.output[-4000:]
    if set(versions().values()) != {"1.2.0"}:
        build("v1.2.0")
        back = run_playbook("deploy_node.yml", extra_vars={"version": "v1.2.0"})
        assert back.rc == 0, back.output[-4000:]
    assert len(nodes()) == 3 and set(versions().values()) == {"1.2.0"}
    return nodes()


def test_unpublished_version_fails_in_preflight_and_touches_nothing(cluster):
    before = {n["InstanceId"]: releases(n["InstanceId"]) for n in cluster}
    targets = registered_targets()
    result = run_playbook("deploy_node.yml", extra_vars={"version": "v9.9.9"})
    assert result.rc != 0
    assert "v9.9.9 is not published" in result.output
    assert "v1.2.0" in published_listed(result.output)
    assert {n["InstanceId"]: releases(n["InstanceId"]) for n in cluster} == before
    assert registered_targets() == targets
    assert all(h["changed"] == 0 for h in result.recap.values())


def test_missing_or_malformed_version_is_refused(cluster):
    for extra in ({}, {"version": "latest"}, {"version": "v1.2.x"}):
        result = run_playbook("deploy_node.yml", extra_vars=extra)
        assert result.rc != 0
        assert "-e version=v1.2.0" in result.output
        assert all(h["changed"] == 0 for h in result.recap.values())


def test_a_series_that_matches_nothing_fails_before_anything_changes(cluster):
    before = {n["InstanceId"]: releases(n["InstanceId"]) for n in cluster}
    result = run_playbook("deploy_node.yml", extra_vars={"version": "v7"})
    assert result.rc != 0
    assert "v7 is not published" in result.output and "v1.2.0" in published_listed(result.output)
    assert {n["InstanceId"]: releases(n["InstanceId"]) for n in cluster} == before
    assert all(h["changed"] == 0 for h in result.recap.values())


def test_the_version_forms_users_type(cluster):
    """v1.2 is the newest published v1.2.x and the run says what it picked (1.2.0, v1 and the
    other forms are resolved by the same filter: tests/unit/plugins/test_filter_release.py)."""
    for typed in ("v1.2",):
        result = run_playbook("deploy_node.yml", extra_vars={"version": typed})
        assert result.rc == 0, result.output[-4000:]
        assert f"version={typed} resolves to v1.2.0" in result.output
        assert result.changed == 0, result.changed_hosts()  # every node already runs it
    assert set(versions().values()) == {"1.2.0"}


def test_deploying_the_other_good_tag_moves_every_node(cluster):
    build("v1.1.0")
    # under 20 req/s through the lab load balancer: one node out at a time, nothing lost
    with Traffic(20) as traffic, TargetWatch(TARGET_GROUP) as watch:
        result = run_playbook("deploy_node.yml", extra_vars={"version": "v1.1.0"})
    assert result.rc == 0, result.output[-6000:]
    assert set(versions().values()) == {"1.1.0"}
    assert traffic.summary()["failed"] == 0, traffic.explain()
    assert watch.max_out == 1 and len(watch.left) == 3, (watch.max_out, watch.left)
    assert set(registered_targets()) == {n["InstanceId"] for n in cluster}
    assert result.unexpected_warnings() == []  # conftest.KNOWN_DEPRECATIONS
    status, body = through_the_load_balancer()
    assert status == 200 and body["data"] == "Pulse node is alive"


def test_deploying_the_same_version_again_changes_nothing(cluster):
    result = run_playbook("deploy_node.yml", extra_vars={"version": "v1.1.0"})
    assert result.rc == 0, result.output[-4000:]
    assert result.changed == 0, result.changed_hosts()


def main_pids():
    return {n["InstanceId"]: docker("exec", n["InstanceId"], "systemctl", "show", "-p", "MainPID", "--value",
                                    "pulse-node").stdout.strip() for n in nodes()}


def test_a_plain_converge_after_the_deploy_changes_nothing_anywhere(cluster):
    """site.yml right after deploy_node.yml, under traffic: the nodes keep the deployed release
    (the inventory's pulse_node_version is v1.2.0), nothing changes on any host (this is also
    the second site.yml of the run: test_site.py ran the first), nothing restarts, no target
    leaves the load balancer, no request fails."""
    pids = main_pids()
    with Traffic(20) as traffic, TargetWatch(TARGET_GROUP) as watch:
        result = run_playbook("site.yml")
    assert result.rc == 0, result.output[-6000:]
    assert result.changed == 0, result.changed_hosts()
    assert main_pids() == pids
    assert set(versions().values()) == {"1.1.0"}
    assert aws("ssm").get_parameter(Name="/pulse/lab/release")["Parameter"]["Value"] == "v1.1.0"
    assert watch.max_out == 0 and not watch.left, watch.left
    assert traffic.summary()["failed"] == 0, traffic.explain()
    assert result.unexpected_warnings() == []  # conftest.KNOWN_DEPRECATIONS


def test_broken_release_is_rolled_back_and_the_rollout_stops(cluster):
    build("v1.3.0")
    result = run_playbook("deploy_node.yml", extra_vars={"version": "v1.3.0"})
    assert result.rc != 0
    assert "Deploy of v1.3.0 STOPPED at pulse-lab-node-" in result.output
    assert "was rolled back to v1.1.0" in result.output
    assert "Assert the node answers /health" in result.output  # the gate that failed
    assert set(versions().values()) == {"1.1.0"}
    # every node healthy and registered; the cluster still serves through the load balancer
    for node in nodes():
        assert get(node["PrivateIpAddress"], "/health") == "Pulse node is alive"
    assert set(registered_targets()) == {n["InstanceId"] for n in cluster}
    status, _ = through_the_load_balancer("/chain")
    assert status == 200
    # only the first node was touched: the others never got the broken release
    touched = [n for n in cluster if "v1.3.0" in releases(n["InstanceId"])]
    assert len(touched) == 1


def test_rolling_restart_keeps_every_node_healthy_registered_and_its_height(cluster):
    heights = {n["InstanceId"]: get(n["PrivateIpAddress"], "/chain")["height"] for n in cluster}
    pids = {n["InstanceId"]: docker("exec", n["InstanceId"], "systemctl", "show", "-p", "MainPID",
                                   "--value", "pulse-node").stdout.strip() for n in cluster}
    result = run_playbook("playbooks/restart.yml")
    assert result.rc == 0, result.output[-6000:]
    for node in nodes():
        iid = node["InstanceId"]
        assert get(node["PrivateIpAddress"], "/chain")["height"] >= heights[iid]
        new_pid = docker("exec", iid, "systemctl", "show", "-p", "MainPID", "--value", "pulse-node").stdout.strip()
        assert new_pid != pids[iid], f"{iid} was not restarted"
    assert set(registered_targets()) == {n["InstanceId"] for n in cluster}
