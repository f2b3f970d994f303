"""plugins/filter/stack.py: the plans of roles/aws_stack (subnets, instances, security group rules, alarms,
the nodes' backup policy, the bucket policies), exact outputs for small inputs and refusals of bad ones."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.pulse.infra.plugins.filter import stack

ZONES = ["us-east-2a", "us-east-2b"]
INSTANCES = [
    {"name": "pulse-prod-node-1", "role": "node", "index": 1, "id": "i-01"},
    {"name": "pulse-prod-builder-1", "role": "builder", "index": 1, "id": "i-b1"},
    {"name": "pulse-prod-node-3", "role": "node", "index": 3, "id": "i-03"},
]


# ------------------------------------------------------------------------------------ subnet_plan

def test_subnet_plan_puts_subnet_i_of_each_tier_in_zone_i_public_first():
    assert stack.subnet_plan("pulse-prod", ZONES, ["10.0.0.0/24", "10.0.1.0/24"], ["10.0.10.0/24"]) == [
        {"tier": "public", "index": 0, "cidr": "10.0.0.0/24", "zone": "us-east-2a", "name": "pulse-prod-public-a"},
        {"tier": "public", "index": 1, "cidr": "10.0.1.0/24", "zone": "us-east-2b", "name": "pulse-prod-public-b"},
        {"tier": "private", "index": 0, "cidr": "10.0.10.0/24", "zone": "us-east-2a", "name": "pulse-prod-private-a"},
    ]
    assert stack.subnet_plan("p-e", ZONES, [], []) == []


def test_subnet_plan_keys_come_in_the_plans_order():
    assert list(stack.subnet_plan("p-e", ZONES, ["10.0.0.0/24"], [])[0]) == ["tier", "index", "cidr", "zone", "name"]


@pytest.mark.parametrize("args, said", [
    (("p-e", ZONES, ["10.0.0.0/24"] * 3, []), r"3 public subnet CIDRs but only 2 availability zones \(us-east-2a, us-east-2b\)"),
    (("p-e", ZONES, [], ["10.0.0.0/24"] * 3), "3 private subnet CIDRs but only 2"),
    (("p-e", [], ["10.0.0.0/24"], []), r"1 public subnet CIDRs but only 0 availability zones \(none\)"),
    (("p-e", "us-east-2a", [], []), "zones must be a list, got str"),
    (("p-e", ZONES, "10.0.0.0/24", []), "public_cidrs must be a list, got str"),
    (("p-e", ZONES, [], None), "private_cidrs must be a list, got NoneType"),
    (("p-e", ["us-east-2a", ""], [], []), r"zones\[1\] must be a non-empty string"),
    (("", ZONES, [], []), "the prefix must be a non-empty string"),
])
def test_subnet_plan_refuses_bad_input(args, said):
    with pytest.raises(AnsibleFilterError, match="subnet_plan: " + said):
        stack.subnet_plan(*args)


# ---------------------------------------------------------------------------------- instance_plan

def test_instance_plan_is_the_nodes_then_the_builders_alternating_zones():
    assert stack.instance_plan("pulse-prod", 3, 1, "t3.small", "c6i.xlarge", 16, 40) == [
        {"name": "pulse-prod-node-1", "role": "node", "index": 1, "zone_index": 0, "instance_type": "t3.small",
         "root_size": 16, "data_volume": True},
        {"name": "pulse-prod-node-2", "role": "node", "index": 2, "zone_index": 1, "instance_type": "t3.small",
         "root_size": 16, "data_volume": True},
        {"name": "pulse-prod-node-3", "role": "node", "index": 3, "zone_index": 0, "instance_type": "t3.small",
         "root_size": 16, "data_volume": True},
        {"name": "pulse-prod-builder-1", "role": "builder", "index": 1, "zone_index": 0, "instance_type": "c6i.xlarge",
         "root_size": 40, "data_volume": False},
    ]


def test_instance_plan_takes_counts_and_sizes_as_strings_and_returns_ints():
    plan = stack.instance_plan("p-e", "2", "0", "t3.small", "c6i.xlarge", "20", "40")
    assert [(p["name"], p["root_size"]) for p in plan] == [("p-e-node-1", 20), ("p-e-node-2", 20)]
    assert all(type(p["root_size"]) is int and type(p["index"]) is int for p in plan)
    assert stack.instance_plan("p-e", 0, 0, "", "", None, None) == []  # type and size of an empty role: unused


@pytest.mark.parametrize("args, said", [
    (("p-e", -1, 0, "t3.small", "c6i.xlarge", 16, 40), "node_count must be at least 0, got -1"),
    (("p-e", 1, -2, "t3.small", "c6i.xlarge", 16, 40), "builder_count must be at least 0, got -2"),
    (("p-e", "three", 0, "t3.small", "c6i.xlarge", 16, 40), "node_count must be a whole number, got 'three'"),
    (("p-e", 1.5, 0, "t3.small", "c6i.xlarge", 16, 40), "node_count must be a whole number, got 1.5"),
    (("p-e", True, 0, "t3.small", "c6i.xlarge", 16, 40), "node_count must be a whole number, got True"),
    (("p-e", 1, 1, "t3.small", "c6i.xlarge", 16, "big"), "builder_root_gib must be a whole number, got 'big'"),
    (("p-e", 1, 0, "t3.small", "c6i.xlarge", 0, 40), "node_root_gib must be at least 1, got 0"),
    (("p-e", 1, 0, "", "c6i.xlarge", 16, 40), "node_instance_type must be a non-empty string"),
    ((None, 1, 0, "t3.small", "c6i.xlarge", 16, 40), "the prefix must be a non-empty string, got None"),
])
def test_instance_plan_refuses_bad_input(args, said):
    with pytest.raises(AnsibleFilterError, match="instance_plan: " + said):
        stack.instance_plan(*args)


# ------------------------------------------------------------------------------------- cidr_rules

def test_cidr_rules_one_rule_per_family_ipv4_first():
    assert stack.cidr_rules(["2001:db8::/32", "10.0.0.0/16", "192.0.2.0/24"], "4001", "P2P") == [
        {"proto": "tcp", "ports": [4001], "cidr_ip": ["10.0.0.0/16", "192.0.2.0/24"], "rule_desc": "P2P"},
        {"proto": "tcp", "ports": [4001], "cidr_ipv6": ["2001:db8::/32"], "rule_desc": "P2P (IPv6)"},
    ]


def test_cidr_rules_for_a_single_family_or_none():
    assert stack.cidr_rules(["203.0.113.0/24"], 22, "SSH from admin networks") == [
        {"proto": "tcp", "ports": [22], "cidr_ip": ["203.0.113.0/24"], "rule_desc": "SSH from admin networks"}]
    assert stack.cidr_rules(["2001:db8:1::/48"], 22, "SSH from admin networks") == [
        {"proto": "tcp", "ports": [22], "cidr_ipv6": ["2001:db8:1::/48"], "rule_desc": "SSH from admin networks (IPv6)"}]
    assert stack.cidr_rules([], 22, "SSH") == []


def test_cidr_rules_leave_out_what_cidr_family_leaves_out():
    """The same split as pulse.infra.cidr_family: invalid entries, host bits set and non-strings are dropped,
    entries are kept as written."""
    from ansible_collections.pulse.infra.plugins.filter import network

    cidrs = ["10.0.0.0/8", "10.0.0.1/8", "nope", "10.0.0.0", 42, " 192.0.2.0/24", "fd00::/8", "fd00::1/8", "::/0"]
    rules = stack.cidr_rules(cidrs, 22, "SSH")
    assert rules[0]["cidr_ip"] == network.cidr_family(cidrs, 4) == ["10.0.0.0/8", " 192.0.2.0/24"]
    assert rules[1]["cidr_ipv6"] == network.cidr_family(cidrs, 6) == ["fd00::/8", "::/0"]


@pytest.mark.parametrize("args, said", [
    (("10.0.0.0/8", 22, "SSH"), "the CIDRs must be a list, got str"),
    ((["10.0.0.0/8"], "ssh", "SSH"), "port must be a whole number, got 'ssh'"),
    ((["10.0.0.0/8"], 0, "SSH"), "port must be at least 1, got 0"),
    ((["10.0.0.0/8"], 70000, "SSH"), "port must be at most 65535, got 70000"),
    ((["10.0.0.0/8"], 22, ""), "description must be a non-empty string"),
])
def test_cidr_rules_refuse_bad_input(args, said):
    with pytest.raises(AnsibleFilterError, match="cidr_rules: " + said):
        stack.cidr_rules(*args)


# ------------------------------------------------------------------------------------ alarm_names

PLAN = stack.instance_plan("pulse-prod", 3, 1, "t3.small", "c6i.xlarge", 16, 40)


def test_alarm_names_with_a_load_balancer_and_auto_recovery_on_three_nodes():
    names = stack.alarm_names(PLAN, "pulse-prod", True, True, 3)
    assert names[:2] == ["pulse-prod-alb-no-healthy-target", "pulse-prod-alb-unhealthy-target"]
    assert names[2:8] == ["pulse-prod-node-1-status-check", "pulse-prod-node-1-system-check",
                          "pulse-prod-node-1-chain-stalled", "pulse-prod-node-1-down", "pulse-prod-node-1-data-disk",
                          "pulse-prod-node-1-peers-lost"]
    assert names[-2:] == ["pulse-prod-builder-1-status-check", "pulse-prod-builder-1-system-check"]
    assert len(names) == 2 + 3 * 6 + 2


def test_alarm_names_without_load_balancer_recovery_or_peers_lost():
    plan = stack.instance_plan("p-e", 2, 1, "t3.small", "c6i.xlarge", 16, 40)
    assert stack.alarm_names(plan, "p-e", False, "no", "2") == [
        "p-e-node-1-status-check", "p-e-node-1-chain-stalled", "p-e-node-1-down", "p-e-node-1-data-disk",
        "p-e-node-2-status-check", "p-e-node-2-chain-stalled", "p-e-node-2-down", "p-e-node-2-data-disk",
        "p-e-builder-1-status-check"]


@pytest.mark.parametrize("node_count, peers_lost", [(0, False), (1, False), (2, False), (3, True), ("10", True)])
def test_peers_lost_only_from_three_nodes_on(node_count, peers_lost):
    names = stack.alarm_names(PLAN[:1], "pulse-prod", False, False, node_count)
    assert ("pulse-prod-node-1-peers-lost" in names) is peers_lost


@pytest.mark.parametrize("args, said", [
    (("nope", "p-e", True, True, 1), "the plan must be a list, got str"),
    (([{"name": "p-e-node-1"}], "p-e", True, True, 1), r"the plan\[0\] has no role"),
    ((PLAN, "", True, True, 1), "the prefix must be a non-empty string"),
    ((PLAN, "p-e", "maybe", True, 1), "alb must be a boolean"),
    ((PLAN, "p-e", True, None, 1), "auto_recovery must be a boolean"),
    ((PLAN, "p-e", True, True, -1), "node_count must be at least 0"),
])
def test_alarm_names_refuse_bad_input(args, said):
    with pytest.raises(AnsibleFilterError, match="alarm_names: " + said):
        stack.alarm_names(*args)


# ------------------------------------------------------------------------------------ node_alarms

def test_node_alarms_of_one_node_exactly():
    dims = {"Environment": "prod", "InstanceId": "i-01"}
    assert stack.node_alarms(INSTANCES[:2], "prod", "/opt/pulse/data", 10, 2, 80, 1) == [
        {"name": "pulse-prod-node-1-chain-stalled", "metric": "BlocksProduced", "dimensions": dims,
         "statistic": "Sum", "comparison": "LessThanOrEqualToThreshold", "threshold": 0.0, "periods": 10,
         "missing": "breaching",
         "description": "Chain stalled: pulse-prod-node-1 (i-01) saw no new block for 10 minutes (prod)"},
        {"name": "pulse-prod-node-1-down", "metric": "Up", "dimensions": dims,
         "statistic": "Minimum", "comparison": "LessThanThreshold", "threshold": 1.0, "periods": 2,
         "missing": "breaching",
         "description": "Node down: pulse-prod-node-1 (i-01) fails /health or publishes no metrics (prod)"},
        {"name": "pulse-prod-node-1-data-disk", "metric": "disk_used_percent",
         "dimensions": {**dims, "path": "/opt/pulse/data"},
         "statistic": "Maximum", "comparison": "GreaterThanThreshold", "threshold": 80.0, "periods": 2,
         "missing": "breaching",
         "description": "Data disk: /opt/pulse/data on pulse-prod-node-1 (i-01) is more than 80% full, "
                        "or not reported (not mounted, no agent) (prod)"},
    ]


def test_node_alarms_peers_lost_from_three_nodes_on_and_types():
    alarms = stack.node_alarms(INSTANCES, "prod", "/data", "15", "3", "85.5", 5)
    assert [a["name"] for a in alarms] == [
        f"pulse-prod-node-{i}-{kind}" for i in (1, 3) for kind in ("chain-stalled", "down", "peers-lost", "data-disk")]
    peers = alarms[2]
    assert peers == {"name": "pulse-prod-node-1-peers-lost", "metric": "PeerCount",
                     "dimensions": {"Environment": "prod", "InstanceId": "i-01"},
                     "statistic": "Maximum", "comparison": "LessThanThreshold", "threshold": 3.0, "periods": 3,
                     "missing": "notBreaching",
                     "description": "Peers lost: pulse-prod-node-1 (i-01) has fewer than 3 of its 4 peers (prod)"}
    assert [type(a["threshold"]) for a in alarms] == [float] * 8
    assert [type(a["periods"]) for a in alarms] == [int] * 8
    # the descriptions quote the settings as given
    assert "for 15 minutes" in alarms[0]["description"] and "more than 85.5% full" in alarms[3]["description"]
    assert list(alarms[0]) == ["name", "metric", "dimensions", "statistic", "comparison", "threshold", "periods",
                               "missing", "description"]
    assert list(alarms[3]["dimensions"]) == ["Environment", "InstanceId", "path"]


def test_node_alarms_dimensions_are_not_shared_between_alarms():
    alarms = stack.node_alarms(INSTANCES[:1], "prod", "/data", 10, 2, 80, 3)
    alarms[0]["dimensions"]["X"] = 1
    assert "X" not in alarms[1]["dimensions"]


def test_node_alarms_of_builders_only_is_empty():
    assert stack.node_alarms(INSTANCES[1:2], "prod", "/data", 10, 2, 80, 0) == []


@pytest.mark.parametrize("args, said", [
    (({},), "instances must be a list, got dict"),
    (([{"name": "n", "id": "i"}],), r"instances\[0\] has no role"),
    (([{"role": "node", "name": "n"}],), r"instances \(nodes\)\[0\] has no id"),
    (([], ""), "env must be a non-empty string"),
    (([], "prod", "/data", 0), "chain_stalled_minutes must be at least 1, got 0"),
    (([], "prod", "/data", 10, "two"), "evaluation_periods must be a whole number, got 'two'"),
    (([], "prod", "/data", 10, 2, "full"), "disk_used_percent must be a number, got 'full'"),
    (([], "prod", "/data", 10, 2, 101), "disk_used_percent must be between 0 and 100, got 101"),
    (([], "prod", "/data", 10, 2, 80, "many"), "node_count must be a whole number"),
])
def test_node_alarms_refuse_bad_input(args, said):
    full = list(args) + list(([], "prod", "/data", 10, 2, 80, 3)[len(args):])
    with pytest.raises(AnsibleFilterError, match="node_alarms: " + said):
        stack.node_alarms(*full)


# -------------------------------------------------------------------------- backup_writers_policy

BACKUPS_ARN = "arn:aws:s3:::pulse-prod-backups"
INSTANCE_ARN = "arn:aws:ec2:us-east-2:123456789012:instance/"


def test_backup_writers_policy_one_append_only_statement_per_node():
    assert stack.backup_writers_policy(INSTANCES, BACKUPS_ARN, "backups/", "prod", INSTANCE_ARN) == {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "AppendBackupsNode1", "Effect": "Allow", "Action": ["s3:PutObject"],
             "Resource": "arn:aws:s3:::pulse-prod-backups/backups/prod/pulse-prod-node-1/*",
             "Condition": {"ArnEquals": {"ec2:SourceInstanceARN": INSTANCE_ARN + "i-01"},
                           "Null": {"s3:if-none-match": "false"}}},
            {"Sid": "AppendBackupsNode3", "Effect": "Allow", "Action": ["s3:PutObject"],
             "Resource": "arn:aws:s3:::pulse-prod-backups/backups/prod/pulse-prod-node-3/*",
             "Condition": {"ArnEquals": {"ec2:SourceInstanceARN": INSTANCE_ARN + "i-03"},
                           "Null": {"s3:if-none-match": "false"}}},
        ]}


def test_backup_writers_policy_without_nodes_has_no_statement():
    assert stack.backup_writers_policy([], BACKUPS_ARN, "", "prod", INSTANCE_ARN) == {"Version": "2012-10-17",
                                                                                       "Statement": []}


@pytest.mark.parametrize("args, said", [
    ((None, BACKUPS_ARN, "backups/", "prod", INSTANCE_ARN), "instances must be a list, got NoneType"),
    (([{"role": "node", "name": "n", "id": "i"}], BACKUPS_ARN, "backups/", "prod", INSTANCE_ARN),
     r"instances \(nodes\)\[0\] has no index"),
    (([], "", "backups/", "prod", INSTANCE_ARN), "bucket_arn must be a non-empty string"),
    (([], BACKUPS_ARN, None, "prod", INSTANCE_ARN), "backups_prefix must be a string"),
    (([], BACKUPS_ARN, "backups/", "prod", ""), "instance_arn_prefix must be a non-empty string"),
])
def test_backup_writers_policy_refuses_bad_input(args, said):
    with pytest.raises(AnsibleFilterError, match="backup_writers_policy: " + said):
        stack.backup_writers_policy(*args)


# ---------------------------------------------------------------------------------- bucket_policy

ACCOUNT = "123456789012"
BUCKETS = dict(artifacts_bucket="p-artifacts", backups_bucket="p-backups", artifacts_prefix="node/", backups_prefix="backups/")


def policy(name, purpose, region="us-east-2", partition="aws", **more):
    return stack.bucket_policy(name, purpose, partition, ACCOUNT, region, **{**BUCKETS, **more})


def test_artifacts_bucket_refuses_plain_http_and_deleting_releases():
    assert policy("p-artifacts", "artifacts") == {"Version": "2012-10-17", "Statement": [
        {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
         "Resource": ["arn:aws:s3:::p-artifacts", "arn:aws:s3:::p-artifacts/*"],
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        {"Sid": "DenyDeletingObjects", "Effect": "Deny", "Principal": "*",
         "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"], "Resource": "arn:aws:s3:::p-artifacts/node/*"}]}


def test_backups_bucket_protects_its_prefix_with_break_glass():
    deny = policy("p-backups", "backups", break_glass_arns=["arn:aws:iam::123456789012:role/BreakGlass"])["Statement"][-1]
    assert deny == {"Sid": "DenyDeletingObjects", "Effect": "Deny", "Principal": "*",
                    "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"], "Resource": "arn:aws:s3:::p-backups/backups/*",
                    "Condition": {"ArnNotLike": {"aws:PrincipalArn": ["arn:aws:iam::123456789012:role/BreakGlass"]}}}


def test_log_bucket_lets_s3_logging_then_elb_write_first_and_protects_everything():
    statements = policy("p-logs", "logs")["Statement"]
    assert [s["Sid"] for s in statements] == ["S3ServerAccessLogs1", "S3ServerAccessLogs2", "AlbAccessLogs",
                                              "AlbAccessLogsRegionalAccount", "DenyInsecureTransport",
                                              "DenyDeletingObjects"]
    assert statements[0] == {
        "Sid": "S3ServerAccessLogs1", "Effect": "Allow", "Principal": {"Service": "logging.s3.amazonaws.com"},
        "Action": "s3:PutObject", "Resource": "arn:aws:s3:::p-logs/s3/p-artifacts/*",
        "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}, "ArnLike": {"aws:SourceArn": "arn:aws:s3:::p-artifacts"}}}
    assert statements[1]["Resource"] == "arn:aws:s3:::p-logs/s3/p-backups/*"
    assert statements[2] == {"Sid": "AlbAccessLogs", "Effect": "Allow",
                             "Principal": {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"},
                             "Action": "s3:PutObject", "Resource": "arn:aws:s3:::p-logs/alb/AWSLogs/123456789012/*"}
    assert statements[3] == {"Sid": "AlbAccessLogsRegionalAccount", "Effect": "Allow",
                             "Principal": {"AWS": "arn:aws:iam::033677994240:root"},
                             "Action": "s3:PutObject", "Resource": "arn:aws:s3:::p-logs/alb/AWSLogs/123456789012/*"}
    assert statements[-1]["Resource"] == "arn:aws:s3:::p-logs/*"
    assert "Condition" not in statements[-1]


def test_log_bucket_of_a_region_without_elb_account_and_other_prefixes_and_partition():
    statements = policy("p-logs", "logs", region="eu-central-2", partition="aws-cn",
                        alb_log_prefix="lb", s3_log_prefix="access/")["Statement"]
    assert [s["Sid"] for s in statements] == ["S3ServerAccessLogs1", "S3ServerAccessLogs2", "AlbAccessLogs",
                                              "DenyInsecureTransport", "DenyDeletingObjects"]
    assert statements[0]["Resource"] == "arn:aws-cn:s3:::p-logs/access/p-artifacts/*"
    assert statements[2]["Resource"] == "arn:aws-cn:s3:::p-logs/lb/AWSLogs/123456789012/*"


def test_the_elb_account_table_is_the_one_from_the_role():
    assert len(stack.ELB_ACCOUNT_IDS) == 23
    assert stack.ELB_ACCOUNT_IDS["us-gov-west-1"] == "048591011584"
    assert all(len(v) == 12 and v.isdigit() for v in stack.ELB_ACCOUNT_IDS.values())


@pytest.mark.parametrize("args, more, said", [
    (("b", "secrets", "aws", ACCOUNT, "us-east-2"), {}, "purpose must be one of artifacts, backups, logs, got 'secrets'"),
    (("", "logs", "aws", ACCOUNT, "us-east-2"), {}, "the bucket name must be a non-empty string"),
    (("b", "logs", "aws", 123456789012, "us-east-2"), {}, "account_id must be the 12 digits"),
    (("b", "logs", "aws", "1234", "us-east-2"), {}, "account_id must be the 12 digits"),
    (("b", "logs", "aws", ACCOUNT, "us-east-2"), {"break_glass_arns": "arn:aws:iam::1:root"},
     "break_glass_arns must be a list, got str"),
    (("b", "logs", "aws", ACCOUNT, "us-east-2"), {"break_glass_arns": [""]}, r"break_glass_arns\[0\] must be a non-empty"),
])
def test_bucket_policy_refuses_bad_input(args, more, said):
    with pytest.raises(AnsibleFilterError, match="bucket_policy: " + said):
        stack.bucket_policy(*args, **{**BUCKETS, **more})


def test_registered_under_their_names():
    assert stack.FilterModule().filters() == {
        "subnet_plan": stack.subnet_plan, "instance_plan": stack.instance_plan, "cidr_rules": stack.cidr_rules,
        "alarm_names": stack.alarm_names, "node_alarms": stack.node_alarms,
        "backup_writers_policy": stack.backup_writers_policy, "bucket_policy": stack.bucket_policy}
