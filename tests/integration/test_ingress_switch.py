"""pulse_ingress: alb | cloudflare_tunnel (issue #9) against the lab's moto, back and forth.

A throwaway environment of its own (project "ptest", env "ingress", VPC 10.241.0.0/16, zone
ingress.ptest.example.com, two nodes then one), so that the standard lab stack (Env=lab) that the other
integration tests use is never touched; the last test checks that it was not, and the module
always ends with the throwaway environment torn down (data included).

Order: provision with alb (2 nodes) -> switch to cloudflare_tunnel, shrinking to 1 node in the
same run (no load balancer, target group, listeners, certificate, alias or validation records,
load balancer alarms or widgets; the node group opens only P2P to the world; node-2 keeps
running but loses its alarms) -> again (no change) -> back to alb (everything back) -> again
(no change) -> teardown. playbooks/ingress_tunnel.yml does nothing with alb.
"""

import json
import re
import sys
import time

import pytest

from conftest import aws, run_playbook

pytestmark = [pytest.mark.lab, pytest.mark.slow]

PROJECT = "ptest"
ENV = "ingress"
PREFIX = f"{PROJECT}-{ENV}"
ZONE = f"{ENV}.{PROJECT}.example.com"
DOMAIN = f"api.{ZONE}"
PROVISION = "playbooks/provision.yml"
TEARDOWN = "playbooks/teardown.yml"
STACK = {
    "pulse_project": PROJECT,
    "pulse_env": ENV,
    "pulse_vpc_cidr": "10.241.0.0/16",
    "pulse_public_subnet_cidrs": ["10.241.1.0/24", "10.241.2.0/24"],
    "pulse_private_subnet_cidrs": ["10.241.11.0/24", "10.241.12.0/24"],
    "pulse_domain": DOMAIN,
    "pulse_hosted_zone": ZONE,
    "pulse_hosted_zone_create": True,
    "pulse_node_count": 1,
    "pulse_builder_count": 0,
}
ALB_ALARMS = [f"{PREFIX}-alb-no-healthy-target", f"{PREFIX}-alb-unhealthy-target"]
ALB_WIDGETS = {"Load balancer requests", "Load balancer 5xx", "Target response time (s)"}
DURATIONS = {}


def timed(label, playbook, **extra):
    start = time.monotonic()
    result = run_playbook(playbook, extra_vars={**STACK, **extra})
    DURATIONS[label] = time.monotonic() - start
    sys.stdout.write(f"\n[duration] {label}: {DURATIONS[label]:.1f} s (rc={result.rc}, changed={result.changed})\n")
    return result


def tags_of(resource):
    return {t["Key"]: t["Value"] for t in resource.get("Tags") or []}


# --------------------------------------------------------------------------- what moto holds


def zone_id():
    ids = [z["Id"].split("/")[-1] for z in aws("route53").list_hosted_zones()["HostedZones"] if z["Name"] == ZONE + "."]
    return ids[0] if ids else None


def vpc_ids():
    return [v["VpcId"] for v in aws("ec2").describe_vpcs(Filters=[
        {"Name": "tag:Project", "Values": [PROJECT]}, {"Name": "tag:Env", "Values": [ENV]}])["Vpcs"]]


def groups():
    return {g["GroupName"]: g for g in aws("ec2").describe_security_groups(Filters=[
        {"Name": "group-name", "Values": [f"{PREFIX}-alb", f"{PREFIX}-node"]}])["SecurityGroups"]}


def rules(perms):
    out = set()
    for p in perms:
        ports = (p.get("FromPort"), p.get("ToPort"))
        out |= {(p["IpProtocol"], ports, r["CidrIp"]) for r in p.get("IpRanges", [])}
        out |= {(p["IpProtocol"], ports, r["CidrIpv6"]) for r in p.get("Ipv6Ranges", [])}
        out |= {(p["IpProtocol"], ports, g["GroupId"]) for g in p.get("UserIdGroupPairs", [])}
    return out


def alarms():
    return {a["AlarmName"]: a for a in aws("cloudwatch").describe_alarms(AlarmNamePrefix=PREFIX + "-")["MetricAlarms"]}


def dashboard_widgets():
    names = [d["DashboardName"] for d in aws("cloudwatch").list_dashboards(DashboardNamePrefix=PREFIX)["DashboardEntries"]]
    assert names == [f"{PREFIX}-overview"], names
    body = json.loads(aws("cloudwatch").get_dashboard(DashboardName=f"{PREFIX}-overview")["DashboardBody"])
    return {w["properties"]["title"]: w["properties"]["metrics"] for w in body["widgets"]}


def load_balancer_side():
    """Everything pulse_ingress=alb adds, by name (empty lists: none of it exists)."""
    elb = aws("elbv2")
    albs = [lb for lb in elb.describe_load_balancers()["LoadBalancers"] if lb["LoadBalancerName"] == f"{PREFIX}-alb"]
    listeners = []
    for lb in albs:
        listeners += [(li["Port"], li["Protocol"]) for li in elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]]
    acm = aws("acm")
    certificates = [c["CertificateArn"] for c in acm.list_certificates()["CertificateSummaryList"]
                    if c["DomainName"] == DOMAIN
                    and tags_of(acm.list_tags_for_certificate(CertificateArn=c["CertificateArn"])).get("Name") == f"{PREFIX}-api"]
    records = aws("route53").list_resource_record_sets(HostedZoneId=zone_id())["ResourceRecordSets"] if zone_id() else []
    return {
        "albs": [lb["LoadBalancerName"] for lb in albs],
        "listeners": sorted(listeners),
        "target_groups": [tg["TargetGroupName"] for tg in elb.describe_target_groups()["TargetGroups"]
                          if tg["TargetGroupName"] == f"{PREFIX}-node"],
        "certificates": certificates,
        "alias_records": sorted((r["Name"], r["Type"], r["AliasTarget"]["DNSName"].rstrip(".").lower())
                                for r in records if "AliasTarget" in r),
        "validation_records": sorted(r["Name"] for r in records
                                     if r["Type"] == "CNAME" and r["Name"].endswith("." + DOMAIN + ".")),
        "alb_alarms": sorted(a for a in alarms() if a in ALB_ALARMS),
        "alb_security_group": [name for name in groups() if name == f"{PREFIX}-alb"],
    }


def lab_stack():
    """The standard lab stack's ids (Env=lab): this module must not change them."""
    ec2 = aws("ec2")
    reservations = ec2.describe_instances(Filters=[{"Name": "tag:Env", "Values": ["lab"]}])["Reservations"]
    return {
        "instances": sorted(i["InstanceId"] for r in reservations for i in r["Instances"]),
        "albs": sorted(lb["LoadBalancerArn"] for lb in aws("elbv2").describe_load_balancers()["LoadBalancers"]
                       if lb["LoadBalancerName"].startswith("pulse-lab-")),
        "alarms": sorted(alarms_with_prefix("pulse-lab-")),
        "security_groups": sorted((g["GroupId"], json.dumps(g["IpPermissions"], sort_keys=True))
                                  for g in ec2.describe_security_groups()["SecurityGroups"]
                                  if g["GroupName"].startswith("pulse-lab-")),
    }


def alarms_with_prefix(prefix):
    return [a["AlarmName"] for a in aws("cloudwatch").describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"]]


def node_alarms(index):
    return {a for a in alarms() if a.startswith(f"{PREFIX}-node-{index}-")}


def running_nodes():
    reservations = aws("ec2").describe_instances(Filters=[
        {"Name": "tag:Project", "Values": [PROJECT]}, {"Name": "tag:Env", "Values": [ENV]},
        {"Name": "instance-state-name", "Values": ["running"]}])["Reservations"]
    return sorted(tags_of(i)["Name"] for r in reservations for i in r["Instances"])


def teardown_if_present(label):
    if vpc_ids() or zone_id() or alarms():
        result = timed(label, TEARDOWN, confirm=ENV, destroy_data=True)
        assert result.rc == 0, result.output[-4000:]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def lab_before(lab):
    """The lab stack as it was; the throwaway environment empty before and after the module."""
    before = lab_stack()
    teardown_if_present("teardown leftovers")
    yield before
    teardown_if_present("teardown (cleanup)")


def assert_alb_ingress(node_group_id=None):
    side = load_balancer_side()
    assert side["albs"] == [f"{PREFIX}-alb"]
    assert side["listeners"] == [(80, "HTTP"), (443, "HTTPS")]
    assert side["target_groups"] == [f"{PREFIX}-node"]
    assert len(side["certificates"]) == 1
    assert [(n, t) for n, t, _ in side["alias_records"]] == [(DOMAIN + ".", "A")]
    assert side["alias_records"][0][2].startswith(f"{PREFIX}-alb")
    assert len(side["validation_records"]) == 1
    assert side["alb_alarms"] == ALB_ALARMS
    assert side["alb_security_group"] == [f"{PREFIX}-alb"]
    sgs = groups()
    alb, node = sgs[f"{PREFIX}-alb"], sgs[f"{PREFIX}-node"]
    assert rules(node["IpPermissions"]) == {
        ("tcp", (8080, 8080), alb["GroupId"]), ("tcp", (8080, 8080), node["GroupId"]), ("tcp", (4001, 4001), "0.0.0.0/0")}
    if node_group_id:
        assert node["GroupId"] == node_group_id, "the node group was replaced"
    assert ALB_WIDGETS <= set(dashboard_widgets())


def assert_tunnel_ingress(node_group_id):
    side = load_balancer_side()
    assert side == {key: [] for key in side}, f"left from the load balancer ingress: {side}"
    (node,) = groups().values()
    assert node["GroupName"] == f"{PREFIX}-node" and node["GroupId"] == node_group_id
    assert rules(node["IpPermissions"]) == {("tcp", (8080, 8080), node_group_id), ("tcp", (4001, 4001), "0.0.0.0/0")}
    world = {r for r in rules(node["IpPermissions"]) if r[2] in ("0.0.0.0/0", "::/0")}
    assert world == {("tcp", (4001, 4001), "0.0.0.0/0")}, "only P2P may be open to the world"
    assert zone_id(), "the hosted zone stays"
    widgets = dashboard_widgets()
    assert not ALB_WIDGETS & set(widgets) and "Chain height per node" in widgets
    assert set(alarms()) == {f"{PREFIX}-node-1-{kind}" for kind in ("status-check", "system-check", "chain-stalled", "down",
                                                                          "data-disk")}


# --------------------------------------------------------------------------- the switch


@pytest.fixture(scope="module")
def with_alb(lab_before):
    result = timed("provision with alb (2 nodes)", PROVISION, pulse_ingress="alb", pulse_node_count=2)
    assert result.rc == 0, result.output[-5000:]
    return groups()[f"{PREFIX}-node"]["GroupId"]


def test_alb_ingress_builds_the_load_balancer_side(with_alb):
    assert_alb_ingress()
    kinds = {"status-check", "system-check", "chain-stalled", "down", "data-disk"}  # no peers-lost with 2 nodes
    for index in (1, 2):
        assert node_alarms(index) == {f"{PREFIX}-node-{index}-{kind}" for kind in kinds}


@pytest.fixture(scope="module")
def tunnel(with_alb):
    # pulse_node_count goes back to STACK's 1: node-2 is beyond the plan from now on.
    result = timed("switch to cloudflare_tunnel (and 1 node)", PROVISION, pulse_ingress="cloudflare_tunnel")
    assert result.rc == 0, result.output[-5000:]
    assert "Ingress:    Cloudflare Tunnel" in result.output
    return result


def test_tunnel_removes_the_load_balancer_side_and_closes_the_api(with_alb, tunnel):
    assert_tunnel_ingress(with_alb)


def test_a_node_beyond_the_count_keeps_running_without_alarms(tunnel):
    assert running_nodes() == [f"{PREFIX}-node-1", f"{PREFIX}-node-2"], "provisioning never terminates"
    assert node_alarms(2) == set()
    assert f"{PREFIX}-node-2 exist(s) but is not in the plan" in tunnel.output


def test_tunnel_second_run_changes_nothing(with_alb, tunnel):
    result = timed("cloudflare_tunnel again", PROVISION, pulse_ingress="cloudflare_tunnel")
    assert result.rc == 0, result.output[-4000:]
    assert result.changed == 0, result.output[-4000:]
    assert_tunnel_ingress(with_alb)


@pytest.fixture(scope="module")
def back_to_alb(with_alb, tunnel):
    result = timed("switch back to alb", PROVISION, pulse_ingress="alb")
    assert result.rc == 0, result.output[-5000:]
    return result


def test_back_to_alb_rebuilds_everything(with_alb, back_to_alb):
    assert_alb_ingress(node_group_id=with_alb)


def test_alb_second_run_changes_nothing(with_alb, back_to_alb):
    result = timed("alb again", PROVISION, pulse_ingress="alb")
    assert result.rc == 0, result.output[-4000:]
    assert result.changed == 0, result.output[-4000:]


def test_ingress_tunnel_playbook_does_nothing_with_alb(lab):
    # The lab inventory (pulse_ingress: alb): no task runs, no node is contacted.
    result = run_playbook("playbooks/ingress_tunnel.yml")
    assert result.rc == 0, result.output[-3000:]
    assert result.changed == 0
    # Only the parameter check and the end of the play ran (both on the controller: no
    # connection to a node); the tunnel's tasks were not even listed.
    assert re.findall(r"^TASK \[(.*?)\]", result.output, re.M) == [
        "Check the parameters (nothing is changed here)",
        "Stop here unless the ingress is the tunnel (pulse_ingress is cloudflare_tunnel)"]
    assert sum(r["ok"] for r in result.recap.values()) == 1, result.recap
    assert sum(r["skipped"] for r in result.recap.values()) == 0, result.recap
    assert all(r["failed"] == 0 and r["unreachable"] == 0 for r in result.recap.values()), result.recap


def test_teardown_leaves_nothing_and_the_lab_untouched(lab_before, back_to_alb):
    result = timed("teardown", TEARDOWN, confirm=ENV, destroy_data=True)
    assert result.rc == 0, result.output[-4000:]
    assert not vpc_ids() and not zone_id() and not alarms()
    assert not aws("cloudwatch").list_dashboards(DashboardNamePrefix=PREFIX)["DashboardEntries"]
    assert lab_stack() == lab_before, "the standard lab stack changed"
    sys.stdout.write("\n[durations] " + ", ".join(f"{k}: {v:.0f} s" for k, v in DURATIONS.items()) + "\n")
