"""playbooks/provision.yml and playbooks/teardown.yml against the lab's moto (issue #4).

One module, tests in order, sharing moto with everyone else: everything looked at is scoped to
the lab environment (Env=lab, names pulse-lab-*). The module ENDS WITH THE STANDARD LAB
PROVISIONED (3 nodes + 1 builder, inventories/lab/group_vars/all/provision.yml): the node-role
tests that run after it expect exactly that.

Order: bad input (nothing created) -> empty the lab env -> check mode on empty -> provision
2 nodes -> again (no change) -> --check --diff (no change) -> properties (boto3) -> grow to 3
(only the new node, its alarms, the peers-lost alarms of a 3-node cluster) -> teardown refuses
-> teardown keeps data -> destroy_data -> again (harmless) -> provision the standard lab.

The alarms and the dashboard (issue #7) are checked on their definitions: moto stores them but
never evaluates an alarm. The ingress switch (issue #9) has its own throwaway environment
(test_ingress_switch.py).
"""

import json
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import REGION, aws, run_playbook

pytestmark = [pytest.mark.lab, pytest.mark.slow]

ENV = "lab"
PREFIX = "pulse-lab"
DOMAIN = "api.lab.pulse.example.com"
ZONE = "lab.pulse.example.com"
ARTIFACTS = "pulse-lab-artifacts-0001"
BACKUPS = "pulse-lab-backups-0001"
LOGS = "pulse-lab-logs-0001"
LOG_GROUP = "/pulse/lab/node"
DASHBOARD = f"{PREFIX}-overview"
DATA_DIR = "/opt/pulse/data"
PROVISION = "playbooks/provision.yml"
TEARDOWN = "playbooks/teardown.yml"

DURATIONS = {}


def timed(label, playbook, *args, **kwargs):
    start = time.monotonic()
    result = run_playbook(playbook, *args, **kwargs)
    DURATIONS[label] = time.monotonic() - start
    sys.stdout.write(f"\n[duration] {label}: {DURATIONS[label]:.1f} s (rc={result.rc}, changed={result.changed})\n")
    return result


def changed_tasks(result):
    """Names of the tasks that reported a change, in order (from the default callback output)."""
    names, task = [], None
    for line in result.output.splitlines():
        match = re.match(r"^TASK \[(?:pulse\.infra\.aws_[a-z_]+ : )?(.*?)\] \*+", line)
        if match:
            task = match.group(1)
        elif line.startswith("changed:") and task and (not names or names[-1] != task):
            names.append(task)
    return names


# --------------------------------------------------------------------------- what moto holds


def tags_of(resource, key="Tags"):
    return {t["Key"]: t["Value"] for t in resource.get(key) or []}


def lab_instances(states=("pending", "running", "stopping", "stopped")):
    reservations = aws("ec2").describe_instances(Filters=[
        {"Name": "tag:Project", "Values": ["pulse"]}, {"Name": "tag:Env", "Values": [ENV]},
        {"Name": "instance-state-name", "Values": list(states)},
    ])["Reservations"]
    return sorted((i for r in reservations for i in r["Instances"]), key=lambda i: tags_of(i).get("Name", ""))


def lab_volumes():
    return aws("ec2").describe_volumes(Filters=[
        {"Name": "tag:Project", "Values": ["pulse"]}, {"Name": "tag:Env", "Values": [ENV]}])["Volumes"]


def lab_vpcs():
    return aws("ec2").describe_vpcs(Filters=[
        {"Name": "tag:Project", "Values": ["pulse"]}, {"Name": "tag:Env", "Values": [ENV]}])["Vpcs"]


def lab_zone_id():
    zones = aws("route53").list_hosted_zones()["HostedZones"]
    ids = [z["Id"].split("/")[-1] for z in zones if z["Name"] == ZONE + "."]
    return ids[0] if ids else None


def lab_certificates():
    acm = aws("acm")
    out = []
    for summary in acm.list_certificates()["CertificateSummaryList"]:
        if summary["DomainName"] == DOMAIN:
            tags = tags_of(acm.list_tags_for_certificate(CertificateArn=summary["CertificateArn"]))
            if tags.get("Name") == f"{PREFIX}-api":
                out.append(summary["CertificateArn"])
    return out


def lab_target_groups():
    return [tg for tg in aws("elbv2").describe_target_groups()["TargetGroups"]
            if tg["TargetGroupName"] == f"{PREFIX}-node"]


def lab_albs():
    return [lb for lb in aws("elbv2").describe_load_balancers()["LoadBalancers"]
            if lb["LoadBalancerName"] == f"{PREFIX}-alb"]


def snapshot():
    """Every resource of the lab environment, by id (what must not change)."""
    ec2 = aws("ec2")
    vpc_ids = [v["VpcId"] for v in lab_vpcs()]
    targets = []
    for tg in lab_target_groups():
        targets += [t["Target"]["Id"] for t in
                    aws("elbv2").describe_target_health(TargetGroupArn=tg["TargetGroupArn"])["TargetHealthDescriptions"]]
    zone = lab_zone_id()
    records = []
    if zone:
        records = [(r["Name"], r["Type"]) for r in
                   aws("route53").list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]]
    return {
        "vpcs": sorted(vpc_ids),
        "subnets": sorted(s["SubnetId"] for s in ec2.describe_subnets(
            Filters=[{"Name": "vpc-id", "Values": vpc_ids}])["Subnets"]) if vpc_ids else [],
        "security_groups": sorted(g["GroupId"] for g in ec2.describe_security_groups(
            Filters=[{"Name": "group-name", "Values": [f"{PREFIX}-alb", f"{PREFIX}-node", f"{PREFIX}-builder"]}]
        )["SecurityGroups"]),
        "instances": [i["InstanceId"] for i in lab_instances()],
        "volumes": sorted(v["VolumeId"] for v in lab_volumes()),
        "roles": sorted(r["RoleName"] for r in aws("iam").list_roles()["Roles"] if r["RoleName"].startswith(PREFIX + "-")),
        "buckets": sorted(b["Name"] for b in aws("s3").list_buckets()["Buckets"] if b["Name"].startswith(PREFIX + "-")),
        "certificates": sorted(lab_certificates()),
        "zone": zone,
        "records": sorted(records),
        "target_groups": [tg["TargetGroupArn"] for tg in lab_target_groups()],
        "targets": sorted(targets),
        "albs": [lb["LoadBalancerArn"] for lb in lab_albs()],
        "alarms": sorted(a["AlarmName"] for a in aws("cloudwatch").describe_alarms(
            AlarmNamePrefix=PREFIX + "-")["MetricAlarms"]),
        "topics": sorted(t["TopicArn"] for t in aws("sns").list_topics()["Topics"]
                         if t["TopicArn"].endswith(f":{PREFIX}-alarms")),
        "log_groups": [g["logGroupName"] for g in aws("logs").describe_log_groups(
            logGroupNamePrefix=LOG_GROUP)["logGroups"]],
        "dashboards": lab_dashboards(),
    }


def lab_dashboards():
    return sorted(d["DashboardName"] for d in aws("cloudwatch").list_dashboards(
        DashboardNamePrefix=PREFIX + "-")["DashboardEntries"])


def dashboard_metrics():
    """(widget title, namespace, metric, dimensions, label) of every metric of the dashboard."""
    body = json.loads(aws("cloudwatch").get_dashboard(DashboardName=DASHBOARD)["DashboardBody"])
    out = []
    for widget in body["widgets"]:
        assert widget["type"] == "metric" and widget["properties"]["region"] == "us-east-2"
        for entry in widget["properties"]["metrics"]:
            items = [e for e in entry if not isinstance(e, dict)]
            options = ([e for e in entry if isinstance(e, dict)] + [{}])[0]
            out.append((widget["properties"]["title"], items[0], items[1],
                        dict(zip(items[2::2], items[3::2])), options.get("label")))
    return out


def is_empty(snap):
    return not any(v for k, v in snap.items() if k != "zone") and snap["zone"] is None


# --------------------------------------------------------------------------- 1. bad input

BAD_INPUTS = {
    "bad VPC CIDR": ({"pulse_vpc_cidr": "10.213.0.1/16"}, "pulse_vpc_cidr"),
    "bad subnet CIDR": ({"pulse_public_subnet_cidrs": ["10.213.1.0/24", "10.213.300.0/24"]}, "pulse_public_subnet_cidrs"),
    "subnet outside the VPC": ({"pulse_private_subnet_cidrs": ["10.213.11.0/24", "10.99.12.0/24"]},
                               "is not inside pulse_vpc_cidr"),
    "overlapping subnets": ({"pulse_private_subnet_cidrs": ["10.213.1.128/25", "10.213.12.0/24"]}, "overlap"),
    "bad domain": ({"pulse_domain": "api..lab.pulse.example.com"}, "pulse_domain"),
    "domain outside the zone": ({"pulse_domain": "api.example.org"}, "pulse_hosted_zone"),
    "zero nodes": ({"pulse_node_count": 0}, "pulse_node_count"),
    "not a number": ({"pulse_node_count": "three"}, "pulse_node_count"),
    "bad region": ({"pulse_aws_region": "us-east"}, "pulse_aws_region"),
    "bad instance type": ({"pulse_node_instance_type": "t3small"}, "pulse_node_instance_type"),
    "world-open SSH": ({"pulse_admin_cidrs": ["0.0.0.0/0"]}, "pulse_admin_cidrs"),
}


def test_bad_input_is_refused_before_any_api_call(lab):
    before = snapshot()
    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = {name: pool.submit(run_playbook, PROVISION, extra_vars=extra)
                   for name, (extra, _) in BAD_INPUTS.items()}
        results = {name: f.result() for name, f in futures.items()}
    for name, (extra, expected) in BAD_INPUTS.items():
        result = results[name]
        assert result.rc != 0, f"{name}: provisioning accepted {extra}"
        assert expected in result.output, f"{name}: the failure does not name {expected!r}:\n{result.output[-2500:]}"
        assert "Account | who am I" not in result.output, f"{name}: an AWS call ran before the check"
    assert snapshot() == before, "bad input created or changed something"


# --------------------------------------------------------------------------- 2. empty, check mode


@pytest.fixture(scope="module")
def empty_lab(lab):
    """The lab environment with nothing in it (tears down a previous lab stack, data included)."""
    if not is_empty(snapshot()):
        result = timed("teardown to empty", TEARDOWN, extra_vars={"confirm": ENV, "destroy_data": True})
        assert result.rc == 0, result.output[-4000:]
    snap = snapshot()
    assert is_empty(snap), snap
    return snap


def test_check_mode_on_empty_creates_nothing(empty_lab):
    result = timed("check mode on empty", PROVISION, check=True)
    assert result.rc == 0, result.output[-4000:]
    assert result.changed > 0, "check mode on an empty account should report what it would create"
    assert snapshot() == empty_lab


# --------------------------------------------------------------------------- 3. provision, idempotence


@pytest.fixture(scope="module")
def two_nodes(empty_lab):
    result = timed("provision from empty (2 nodes)", PROVISION, extra_vars={"pulse_node_count": 2})
    assert result.rc == 0, result.output[-5000:]
    return result


def test_provision_from_empty(two_nodes):
    names = [tags_of(i)["Name"] for i in lab_instances(("running",))]
    assert names == ["pulse-lab-builder-1", "pulse-lab-node-1", "pulse-lab-node-2"]
    for line in ("URL:        https://api.lab.pulse.example.com/", "ALB:        pulse-lab-alb",
                 f"artifacts {ARTIFACTS}, backups {BACKUPS}", "Instance:   pulse-lab-node-1"):
        assert line in two_nodes.output, f"outputs do not print {line!r}"


def test_second_run_changes_nothing(two_nodes):
    result = timed("provision again (2 nodes)", PROVISION, extra_vars={"pulse_node_count": 2})
    assert result.rc == 0, result.output[-4000:]
    assert result.changed == 0, f"not idempotent: {changed_tasks(result)}"


def test_check_diff_on_converged_stack_reports_no_change(two_nodes):
    before = snapshot()
    result = timed("check --diff on the converged stack", PROVISION, extra_vars={"pulse_node_count": 2}, check=True)
    assert result.rc == 0, result.output[-4000:]
    assert result.changed == 0, f"check mode reports changes: {changed_tasks(result)}"
    assert snapshot() == before


# --------------------------------------------------------------------------- 4. properties


def test_instances_imdsv2_tags_zones_and_profile(two_nodes):
    instances = {tags_of(i)["Name"]: i for i in lab_instances(("running",))}
    for name, inst in instances.items():
        assert inst["MetadataOptions"]["HttpTokens"] == "required", f"{name}: IMDSv1 allowed"
        tags = tags_of(inst)
        role = "builder" if "builder" in name else "node"
        assert tags["Project"] == "pulse" and tags["Env"] == ENV and tags["Role"] == role
        assert tags["OsFamily"] == "debian12" and tags["NodeIndex"] == name.rsplit("-", 1)[1]
        assert inst["IamInstanceProfile"]["Arn"].endswith(f"instance-profile/{PREFIX}-{role}")
        if role == "node":
            assert inst.get("PublicIpAddress"), f"{name}: nodes are public by default (P2P)"
        else:
            assert not inst.get("PublicIpAddress"), f"{name}: a builder gets no public address unless asked"
    assert instances["pulse-lab-node-1"]["Placement"]["AvailabilityZone"] == "us-east-2a"
    assert instances["pulse-lab-node-2"]["Placement"]["AvailabilityZone"] == "us-east-2b"
    assert instances["pulse-lab-builder-1"]["InstanceType"] == "t3.large"
    assert instances["pulse-lab-node-1"]["InstanceType"] == "t3.small"


def test_every_volume_is_encrypted_and_each_node_has_a_kept_data_volume(two_nodes):
    volumes = {v["VolumeId"]: v for v in lab_volumes()}
    assert volumes and all(v["Encrypted"] for v in volumes.values()), "an unencrypted volume"
    assert all(v["VolumeType"] == "gp3" for v in volumes.values())
    for inst in lab_instances(("running",)):
        name = tags_of(inst)["Name"]
        data = [m for m in inst["BlockDeviceMappings"] if m["DeviceName"] == "/dev/sdf"]
        if "builder" in name:
            assert not data, "builders have no data volume"
            continue
        (mapping,) = data
        assert mapping["Ebs"]["DeleteOnTermination"] is False
        vol = volumes[mapping["Ebs"]["VolumeId"]]
        assert vol["Size"] == 1
        tags = tags_of(vol)
        assert tags["Name"] == f"{name}-data" and tags["Role"] == "node-data"
        assert tags["NodeIndex"] == name.rsplit("-", 1)[1] and tags["Env"] == ENV


def _rules(perms):
    out = set()
    for p in perms:
        ports = (p.get("FromPort"), p.get("ToPort"))
        for r in p.get("IpRanges", []):
            out.add((p["IpProtocol"], ports, r["CidrIp"]))
        for r in p.get("Ipv6Ranges", []):
            out.add((p["IpProtocol"], ports, r["CidrIpv6"]))
        for g in p.get("UserIdGroupPairs", []):
            out.add((p["IpProtocol"], ports, g["GroupId"]))
    return out


def test_security_groups_are_least_privilege(two_nodes):
    groups = {g["GroupName"]: g for g in aws("ec2").describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [f"{PREFIX}-alb", f"{PREFIX}-node", f"{PREFIX}-builder"]}]
    )["SecurityGroups"]}
    alb, node, builder = groups[f"{PREFIX}-alb"], groups[f"{PREFIX}-node"], groups[f"{PREFIX}-builder"]
    assert _rules(alb["IpPermissions"]) == {("tcp", (80, 80), "0.0.0.0/0"), ("tcp", (443, 443), "0.0.0.0/0")}
    assert _rules(alb["IpPermissionsEgress"]) == {("tcp", (8080, 8080), node["GroupId"])}
    assert _rules(node["IpPermissions"]) == {
        ("tcp", (8080, 8080), alb["GroupId"]),
        ("tcp", (8080, 8080), node["GroupId"]),
        ("tcp", (4001, 4001), "0.0.0.0/0"),
    }
    assert _rules(builder["IpPermissions"]) == set(), "SSH must be closed without pulse_admin_cidrs"
    for group in groups.values():
        for proto, ports, source in _rules(group["IpPermissions"]):
            if source in ("0.0.0.0/0", "::/0"):
                assert ports not in ((8080, 8080), (22, 22)), f"{group['GroupName']} opens {ports} to the world"


def test_buckets_private_encrypted_versioned_tls_only(two_nodes):
    s3 = aws("s3")
    for bucket in (ARTIFACTS, BACKUPS):
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert block == {"BlockPublicAcls": True, "IgnorePublicAcls": True,
                         "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
        assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
        assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
        policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
        denies = {s["Sid"]: s for s in policy["Statement"] if s["Effect"] == "Deny"}
        assert set(denies) == {"DenyInsecureTransport", "DenyDeletingObjects"}
        deny = denies["DenyInsecureTransport"]
        assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        assert deny["Action"] in ("s3:*", ["s3:*"]) and deny["Principal"] in ("*", {"AWS": "*"})
        assert f"arn:aws:s3:::{bucket}/*" in deny["Resource"]
        # issue #13: nobody deletes releases or backups (no break-glass principal in the lab)
        delete = denies["DenyDeletingObjects"]
        assert delete["Action"] == ["s3:DeleteObject", "s3:DeleteObjectVersion"] and "Condition" not in delete
        assert delete["Resource"] == f"arn:aws:s3:::{bucket}/{'node/' if bucket == ARTIFACTS else 'backups/'}*"
    (rule,) = s3.get_bucket_lifecycle_configuration(Bucket=BACKUPS)["Rules"]
    assert rule["Status"] == "Enabled" and rule["Expiration"]["Days"] == 7
    assert rule.get("Prefix", rule.get("Filter", {}).get("Prefix")) == "backups/"


def test_alb_listeners_tls_policy_redirect_and_targets(two_nodes):
    elb = aws("elbv2")
    (lb,) = lab_albs()
    assert lb["Scheme"] == "internet-facing"
    attrs = {a["Key"]: a["Value"] for a in elb.describe_load_balancer_attributes(
        LoadBalancerArn=lb["LoadBalancerArn"])["Attributes"]}
    assert attrs["routing.http.drop_invalid_header_fields.enabled"] == "true"
    # issue #13: access logs to the log bucket; deletion protection off in the lab only
    assert (attrs["access_logs.s3.enabled"], attrs["access_logs.s3.bucket"], attrs["access_logs.s3.prefix"]) == (
        "true", LOGS, "alb")
    assert attrs["deletion_protection.enabled"] == "false"
    listeners = {li["Port"]: li for li in elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]}
    assert set(listeners) == {80, 443}
    https = listeners[443]
    assert https["Protocol"] == "HTTPS" and https["SslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    (cert_arn,) = lab_certificates()
    assert https["Certificates"][0]["CertificateArn"] == cert_arn
    assert aws("acm").describe_certificate(CertificateArn=cert_arn)["Certificate"]["Status"] == "ISSUED"
    (redirect,) = listeners[80]["DefaultActions"]
    assert redirect["Type"] == "redirect"
    assert redirect["RedirectConfig"]["Protocol"] == "HTTPS" and redirect["RedirectConfig"]["Port"] == "443"
    assert redirect["RedirectConfig"]["StatusCode"] == "HTTP_301"
    (tg,) = lab_target_groups()
    assert https["DefaultActions"][0]["TargetGroupArn"] == tg["TargetGroupArn"]
    assert (tg["Protocol"], tg["Port"], tg["HealthCheckPath"], tg["Matcher"]["HttpCode"]) == ("HTTP", 8080, "/health", "200")
    tg_attrs = {a["Key"]: a["Value"] for a in elb.describe_target_group_attributes(
        TargetGroupArn=tg["TargetGroupArn"])["Attributes"]}
    assert tg_attrs["deregistration_delay.timeout_seconds"] == "5"  # the lab's pulse_deregistration_delay
    targets = {t["Target"]["Id"] for t in elb.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])["TargetHealthDescriptions"]}
    # issue #18: a new node is registered by the converge once its gates pass (join.yml), never by
    # provisioning: until then it carries PulseJoining
    nodes = [i for i in lab_instances(("running",)) if tags_of(i)["Role"] == "node"]
    assert targets == set()
    assert all(tags_of(i).get("PulseJoining") == "true" for i in nodes), [tags_of(i) for i in nodes]


def test_dns_alias_and_validation_records(two_nodes):
    zone = lab_zone_id()
    records = aws("route53").list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    (alias,) = [r for r in records if r["Name"] == DOMAIN + "." and r["Type"] == "A"]
    (lb,) = lab_albs()
    assert alias["AliasTarget"]["DNSName"].rstrip(".").lower() == lb["DNSName"].lower()
    cnames = [r for r in records if r["Type"] == "CNAME" and r["Name"].endswith("." + DOMAIN + ".")]
    assert cnames and cnames[0]["ResourceRecords"][0]["Value"].endswith("acm-validations.aws.")
    # The lab is IPv4 only (moto cannot give subnets IPv6): no AAAA record there.
    assert not [r for r in records if r["Type"] == "AAAA"]


def test_alarms_notify_the_topic(two_nodes):
    (topic,) = [t["TopicArn"] for t in aws("sns").list_topics()["Topics"] if t["TopicArn"].endswith(f":{PREFIX}-alarms")]
    alarms = {a["AlarmName"]: a for a in aws("cloudwatch").describe_alarms(AlarmNamePrefix=PREFIX + "-")["MetricAlarms"]}
    no_healthy, unhealthy = alarms[f"{PREFIX}-alb-no-healthy-target"], alarms[f"{PREFIX}-alb-unhealthy-target"]
    assert (no_healthy["MetricName"], no_healthy["ComparisonOperator"], no_healthy["Threshold"]) == (
        "HealthyHostCount", "LessThanThreshold", 1.0)
    assert (unhealthy["MetricName"], unhealthy["ComparisonOperator"], unhealthy["Threshold"]) == (
        "UnHealthyHostCount", "GreaterThanThreshold", 0.0)
    for inst in lab_instances(("running",)):
        alarm = alarms[f"{tags_of(inst)['Name']}-status-check"]
        assert alarm["MetricName"] == "StatusCheckFailed"
        assert alarm["Dimensions"] == [{"Name": "InstanceId", "Value": inst["InstanceId"]}]
        # EC2 auto-recovery: the host's status check recovers the instance and tells the topic
        system = alarms[f"{tags_of(inst)['Name']}-system-check"]
        assert system["MetricName"] == "StatusCheckFailed_System" and system["Namespace"] == "AWS/EC2"
        assert system["Dimensions"] == [{"Name": "InstanceId", "Value": inst["InstanceId"]}]
        assert (system["Statistic"], system["ComparisonOperator"], system["Threshold"]) == (
            "Maximum", "GreaterThanOrEqualToThreshold", 1.0)
        assert system["AlarmActions"] == [f"arn:aws:automate:{REGION}:ec2:recover", topic]
        assert system["OKActions"] == [topic]
    for alarm in alarms.values():
        if alarm["AlarmName"].endswith("-system-check"):
            continue
        assert alarm["AlarmActions"] == [topic], alarm["AlarmName"]
        assert alarm["OKActions"] == [topic], alarm["AlarmName"]
    nodes = [i for i in lab_instances(("running",)) if tags_of(i)["Role"] == "node"]
    assert_node_alarms(alarms, nodes, topic)
    groups = aws("logs").describe_log_groups(logGroupNamePrefix=LOG_GROUP)["logGroups"]
    assert [(g["logGroupName"], g.get("retentionInDays")) for g in groups] == [(LOG_GROUP, 7)]


def assert_node_alarms(alarms, nodes, topic):
    """The Pulse alarms of each node (issue #7), for a cluster of len(nodes) nodes."""
    pulse = "Pulse"
    threshold = max(len(nodes) - 2, 0)
    for inst in nodes:
        name, iid = tags_of(inst)["Name"], inst["InstanceId"]
        dims = [{"Name": "Environment", "Value": ENV}, {"Name": "InstanceId", "Value": iid}]
        expected = {
            "chain-stalled": ("BlocksProduced", "Sum", "LessThanOrEqualToThreshold", 0.0, 10, "breaching", dims),
            "down": ("Up", "Minimum", "LessThanThreshold", 1.0, 2, "breaching", dims),
            "data-disk": ("disk_used_percent", "Maximum", "GreaterThanThreshold", 80.0, 2, "breaching",
                          dims + [{"Name": "path", "Value": DATA_DIR}]),
        }
        if threshold > 0:
            expected["peers-lost"] = ("PeerCount", "Maximum", "LessThanThreshold", float(threshold), 2,
                                      "notBreaching", dims)
        else:  # 1 or 2 nodes: "PeerCount < 0" could never fire
            assert f"{name}-peers-lost" not in alarms, f"{name}: a peers-lost alarm on a {len(nodes)}-node cluster"
        for kind, (metric, stat, comparison, value, periods, missing, dimensions) in expected.items():
            alarm = alarms[f"{name}-{kind}"]
            assert alarm["Namespace"] == pulse and alarm["MetricName"] == metric, alarm["AlarmName"]
            assert sorted(alarm["Dimensions"], key=lambda d: d["Name"]) == dimensions, alarm["AlarmName"]
            assert (alarm["Statistic"], alarm["ComparisonOperator"], alarm["Threshold"]) == (stat, comparison, value)
            assert (alarm["Period"], alarm["EvaluationPeriods"]) == (60, periods), alarm["AlarmName"]
            assert alarm["TreatMissingData"] == missing, alarm["AlarmName"]
            assert alarm["AlarmActions"] == [topic] and alarm["OKActions"] == [topic], alarm["AlarmName"]


def assert_dashboard(nodes):
    """One line per node in each node widget, and the load balancer's metrics."""
    metrics = dashboard_metrics()
    (lb,) = lab_albs()
    lb_dim = {"LoadBalancer": lb["LoadBalancerArn"].split(":loadbalancer/")[1]}
    by_title = {}
    for title, namespace, metric, dims, label in metrics:
        by_title.setdefault(title, []).append((namespace, metric, dims, label))
    for title, metric, extra in (("Chain height per node", "ChainHeight", {}),
                                 ("Blocks per minute", "BlocksProduced", {}),
                                 ("Peers per node", "PeerCount", {}),
                                 ("Up (1) / down (0)", "Up", {}),
                                 (f"Data disk used % ({DATA_DIR})", "disk_used_percent", {"path": DATA_DIR})):
        assert sorted(by_title[title], key=lambda m: m[3]) == [
            ("Pulse", metric, {"Environment": ENV, "InstanceId": i["InstanceId"], **extra},
             tags_of(i)["Name"].replace(PREFIX + "-", "")) for i in sorted(nodes, key=lambda i: tags_of(i)["Name"])
        ], title
    assert [(n, m, d) for n, m, d, _ in by_title["Load balancer requests"]] == [
        ("AWS/ApplicationELB", "RequestCount", lb_dim)]
    assert sorted(m for _, m, _, _ in by_title["Load balancer 5xx"]) == [
        "HTTPCode_ELB_5XX_Count", "HTTPCode_Target_5XX_Count"]
    assert {(m, tuple(d.items())) for _, m, d, _ in by_title["Target response time (s)"]} == {
        ("TargetResponseTime", tuple(lb_dim.items()))}
    assert len(by_title) == 8


def test_dashboard_shows_every_node_and_the_load_balancer(two_nodes):
    assert lab_dashboards() == [DASHBOARD]
    assert_dashboard([i for i in lab_instances(("running",)) if tags_of(i)["Role"] == "node"])


def test_iam_policies_are_limited_to_the_named_prefixes(two_nodes):
    iam = aws("iam")
    doc = iam.get_role_policy(RoleName=f"{PREFIX}-node", PolicyName=f"{PREFIX}-node")["PolicyDocument"]
    if isinstance(doc, str):
        doc = json.loads(doc)
    statements = {s["Sid"]: s for s in doc["Statement"]}
    assert statements["ReadNodeArtifacts"]["Action"] == "s3:GetObject"
    assert statements["ReadNodeArtifacts"]["Resource"] == f"arn:aws:s3:::{ARTIFACTS}/node/*"
    assert "WriteBackups" not in statements, "nodes may no longer write (or delete) any backup"
    assert statements["ListBackups"]["Condition"]["StringLike"]["s3:prefix"] == ["backups/lab/", "backups/lab/*"]
    backups = iam.get_role_policy(RoleName=f"{PREFIX}-node", PolicyName=f"{PREFIX}-node-backups")["PolicyDocument"]
    backups = json.loads(backups) if isinstance(backups, str) else backups
    nodes = {tags_of(i)["Name"]: i["InstanceId"] for i in lab_instances(("running",)) if tags_of(i)["Role"] == "node"}
    assert {s["Resource"]: s["Condition"]["ArnEquals"]["ec2:SourceInstanceARN"].rsplit("/", 1)[1]
            for s in backups["Statement"]} == {f"arn:aws:s3:::{BACKUPS}/backups/lab/{n}/*": i for n, i in nodes.items()}
    assert all(s["Action"] == ["s3:PutObject"] and s["Condition"]["Null"] == {"s3:if-none-match": "false"}
               for s in backups["Statement"])
    assert statements["PutPulseMetricsOnly"]["Condition"] == {"StringEquals": {"cloudwatch:namespace": "Pulse"}}
    assert all(":log-group:/pulse/lab/node" in r for r in statements["WriteNodeLogs"]["Resource"])
    assert all(":parameter/pulse/lab" in r for r in statements["ReadEnvironmentParameters"]["Resource"])
    assert statements["SnapshotOwnVolumes"]["Condition"]["StringEquals"]["aws:ResourceTag/Env"] == ENV
    for sid, statement in statements.items():
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert not any(a == "*" or a.endswith(":*") for a in actions), f"{sid}: wildcard action"
        if statement["Resource"] == "*":
            assert sid in ("PutPulseMetricsOnly", "DescribeIsNotResourceScoped"), f"{sid}: Resource *"
            assert "Condition" in statement or all(a.startswith("ec2:Describe") for a in actions)
    attached = [p["PolicyName"] for p in iam.list_attached_role_policies(RoleName=f"{PREFIX}-node")["AttachedPolicies"]]
    assert attached == [], "no AWS-managed policy (AmazonSSMManagedInstanceCore reads every parameter)"


# --------------------------------------------------------------------------- 5. grow


def test_growing_to_three_adds_exactly_one_node(two_nodes):
    before = snapshot()
    result = timed("grow to 3 nodes", PROVISION)  # the lab inventory says 3
    assert result.rc == 0, result.output[-4000:]
    after = snapshot()
    new_instances = set(after["instances"]) - set(before["instances"])
    assert len(new_instances) == 1 and set(before["instances"]) <= set(after["instances"])
    (new,) = [i for i in lab_instances() if i["InstanceId"] in new_instances]
    assert tags_of(new)["Name"] == "pulse-lab-node-3"
    assert after["targets"] == before["targets"]  # the new node joins through the converge (join.yml)
    assert tags_of(new).get("PulseJoining") == "true"
    # node-3's alarms, and the peers-lost alarms a 3-node cluster has (none with 2 nodes)
    assert set(after["alarms"]) - set(before["alarms"]) == {
        "pulse-lab-node-3-status-check", "pulse-lab-node-3-system-check", "pulse-lab-node-3-chain-stalled", "pulse-lab-node-3-down",
        "pulse-lab-node-3-data-disk", "pulse-lab-node-1-peers-lost", "pulse-lab-node-2-peers-lost",
        "pulse-lab-node-3-peers-lost"}
    assert set(before["alarms"]) <= set(after["alarms"])
    assert len(set(after["volumes"]) - set(before["volumes"])) == 2  # its root and data volumes
    for key in ("vpcs", "subnets", "security_groups", "roles", "buckets", "certificates", "zone",
                "records", "target_groups", "albs", "topics", "log_groups", "dashboards"):
        assert after[key] == before[key], f"{key} changed while growing"
    assert changed_tasks(result) == [
        "Instances | launch the missing ones",
        "Instances | tag each node's data volume so that it can be found again",
        "IAM | each node may append backups below its own prefix only",
        "Alarms | each instance's status check",
        "Alarms | each instance's system status check, which recovers the instance",
        "Alarms | each node's Pulse metrics (chain stalled, down, peers lost, data disk)",
        "Dashboard | pulse-lab-overview",
    ]
    assert result.changed == 7


# --------------------------------------------------------------------------- 6. teardown


def test_teardown_refuses_without_confirmation(two_nodes):
    before = snapshot()
    for extra in ({}, {"confirm": "production"}):
        result = timed(f"teardown refused {extra}", TEARDOWN, extra_vars=extra)
        assert result.rc != 0
        assert "Refusing to tear down" in result.output and "-e confirm=lab" in result.output
    assert snapshot() == before


@pytest.fixture(scope="module")
def torn_down(two_nodes):
    data_volumes = sorted(v["VolumeId"] for v in lab_volumes() if tags_of(v).get("Role") == "node-data")
    assert len(data_volumes) == 3
    result = timed("teardown (keep data)", TEARDOWN, extra_vars={"confirm": ENV})
    assert result.rc == 0, result.output[-5000:]
    return data_volumes


def test_teardown_keeps_only_the_data(torn_down):
    snap = snapshot()
    assert snap["volumes"] == torn_down
    assert all(v["State"] == "available" for v in lab_volumes()), "a kept data volume is still attached"
    assert snap["buckets"] == [BACKUPS, LOGS]
    assert snap["zone"] is not None, "the hosted zone is kept without destroy_data"
    assert [r for r in snap["records"] if r[1] not in ("NS", "SOA")] == []
    for key in ("vpcs", "subnets", "security_groups", "instances", "roles", "certificates", "target_groups",
                "targets", "albs", "alarms", "topics", "log_groups", "dashboards"):
        assert snap[key] == [], f"teardown left {key}: {snap[key]}"


def test_teardown_with_destroy_data_then_again_is_harmless(torn_down):
    result = timed("teardown destroy_data", TEARDOWN, extra_vars={"confirm": ENV, "destroy_data": True})
    assert result.rc == 0, result.output[-4000:]
    assert is_empty(snapshot()), snapshot()
    again = timed("teardown again", TEARDOWN, extra_vars={"confirm": ENV, "destroy_data": True})
    assert again.rc == 0, again.output[-4000:]
    assert again.changed == 0, changed_tasks(again)


# --------------------------------------------------------------------------- 7. leave the standard lab


def test_the_standard_lab_is_provisioned_at_the_end(torn_down):
    result = timed("provision the standard lab", PROVISION)
    assert result.rc == 0, result.output[-5000:]
    names = [tags_of(i)["Name"] for i in lab_instances(("running",))]
    assert names == ["pulse-lab-builder-1", "pulse-lab-node-1", "pulse-lab-node-2", "pulse-lab-node-3"]
    (tg,) = lab_target_groups()
    # the nodes are new: none registered until the converge lets each join after its gates
    assert aws("elbv2").describe_target_health(TargetGroupArn=tg["TargetGroupArn"])["TargetHealthDescriptions"] == []
    assert all(tags_of(i).get("PulseJoining") == "true" for i in lab_instances(("running",)) if tags_of(i)["Role"] == "node")
    (topic,) = [t["TopicArn"] for t in aws("sns").list_topics()["Topics"] if t["TopicArn"].endswith(f":{PREFIX}-alarms")]
    alarms = {a["AlarmName"]: a for a in aws("cloudwatch").describe_alarms(AlarmNamePrefix=PREFIX + "-")["MetricAlarms"]}
    nodes = [i for i in lab_instances(("running",)) if tags_of(i)["Role"] == "node"]
    assert_node_alarms(alarms, nodes, topic)  # 3 nodes: peers-lost below 1 peer
    assert len(alarms) == 2 + 2 * 4 + 3 * 4, sorted(alarms)  # load balancer, status and system checks, Pulse per node
    assert_dashboard(nodes)
    sys.stdout.write("\n[durations] " + ", ".join(f"{k}: {v:.0f} s" for k, v in DURATIONS.items()) + "\n")
