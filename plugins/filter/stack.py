# Copyright: Pulse infrastructure team
# Apache License 2.0 (see galaxy.yml)
"""The plans of the roles roles/aws_stack is made of: the subnets and the security group rules
opened to CIDR lists (aws_network), the instances (aws_compute), the alarms (aws_observability),
the nodes' append-only backup policy and the bucket policies (aws_storage_iam).

Resource names are all <project>-<env>-<what> (the prefix), so a stack is found again by name and
tags alone: provisioning and teardown never depend on ids kept somewhere else.

Each filter returns what the Jinja plan of the same name in roles/aws_stack/vars/main.yml returned
before the split (key for key, type for type, in the same order; compared when they moved).

The filters' ansible-doc documentation is in their sidecar files plugins/filter/subnet_plan.yml,
plugins/filter/instance_plan.yml, plugins/filter/cidr_rules.yml, plugins/filter/alarm_names.yml,
plugins/filter/node_alarms.yml, plugins/filter/backup_writers_policy.yml and
plugins/filter/bucket_policy.yml.
"""

from __future__ import annotations

import ipaddress
import math

from ansible.errors import AnsibleFilterError

_POLICY_VERSION = "2012-10-17"

# The account of Elastic Load Balancing in each region that predates the ALB log delivery service
# principal: the log bucket grants it too, or the load balancer of such a region cannot write its
# access logs (a region missing here relies on logdelivery.elasticloadbalancing.amazonaws.com alone).
ELB_ACCOUNT_IDS = {
    "us-east-1": "127311923021",
    "us-east-2": "033677994240",
    "us-west-1": "027434742980",
    "us-west-2": "797873946194",
    "af-south-1": "098369216593",
    "ap-east-1": "754344448648",
    "ap-south-1": "718504428378",
    "ap-northeast-1": "582318560864",
    "ap-northeast-2": "600734575887",
    "ap-northeast-3": "383597477331",
    "ap-southeast-1": "114774131450",
    "ap-southeast-2": "783225319266",
    "ca-central-1": "985666609251",
    "eu-central-1": "054676820928",
    "eu-west-1": "156460612806",
    "eu-west-2": "652711504416",
    "eu-west-3": "009996457667",
    "eu-south-1": "635631232127",
    "eu-north-1": "897822967062",
    "me-south-1": "076674570225",
    "sa-east-1": "507241528517",
    "us-gov-west-1": "048591011584",
    "us-gov-east-1": "190560391635",
}

_BUCKET_PURPOSES = ("artifacts", "backups", "logs")
_BOOL_TRUE = ("yes", "on", "true", "1")
_BOOL_FALSE = ("no", "off", "false", "0")


# ------------------------------------------------------------------------------ argument checks

def _whole(value, what, where, minimum=0, maximum=None):
    """value as an int (an int, a float without fraction or a string of digits), within bounds."""
    number = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = int(value)
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            number = None
    if number is None:
        raise AnsibleFilterError(f"{where}: {what} must be a whole number, got {value!r}")
    if number < minimum:
        raise AnsibleFilterError(f"{where}: {what} must be at least {minimum}, got {number}")
    if maximum is not None and number > maximum:
        raise AnsibleFilterError(f"{where}: {what} must be at most {maximum}, got {number}")
    return number


def _number(value, what, where, minimum, maximum):
    """value as a float (an int, a float or a numeric string), within bounds."""
    number = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or math.isnan(number):
        raise AnsibleFilterError(f"{where}: {what} must be a number, got {value!r}")
    if not minimum <= number <= maximum:
        raise AnsibleFilterError(f"{where}: {what} must be between {minimum} and {maximum}, got {value!r}")
    return number


def _flag(value, what, where):
    """value as a bool, read as Ansible's bool filter reads it (true/yes/on/1, false/no/off/0)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (str, int)):
        text = str(value).lower()
        if text in _BOOL_TRUE:
            return True
        if text in _BOOL_FALSE:
            return False
    raise AnsibleFilterError(f"{where}: {what} must be a boolean (true/false, yes/no, on/off, 1/0), got {value!r}")


def _text(value, what, where, empty=False):
    if not isinstance(value, str) or (not empty and not value):
        kind = "a string" if empty else "a non-empty string"
        raise AnsibleFilterError(f"{where}: {what} must be {kind}, got {value!r}")
    return value


def _list(value, what, where):
    if not isinstance(value, (list, tuple)):
        raise AnsibleFilterError(f"{where}: {what} must be a list, got {type(value).__name__}")
    return list(value)


def _records(value, what, where, keys):
    """A list of dicts, each with the given keys."""
    records = _list(value, what, where)
    for position, record in enumerate(records):
        if not isinstance(record, dict):
            raise AnsibleFilterError(f"{where}: {what}[{position}] must be a dict, got {type(record).__name__}")
        missing = [key for key in keys if key not in record]
        if missing:
            raise AnsibleFilterError(f"{where}: {what}[{position}] has no {', '.join(missing)} "
                                     f"(each entry needs {', '.join(keys)}): {record!r}")
    return records


def _peers_lost_threshold(node_count, where):
    """Peers lost: a node of N expects N-1 peers and may miss one (a rolling restart), so it
    alarms below N-2 peers. With 1 or 2 nodes that threshold is 0 and "PeerCount < 0" can never
    fire: no peers-lost alarm then (a 2-node cluster losing its only peer shows as chain stalled /
    down)."""
    return max(_whole(node_count, "node_count", where) - 2, 0)


# ------------------------------------------------------------------------------------- the plans

def subnet_plan(prefix, zones, public_cidrs, private_cidrs):
    """The subnets: the public ones, then the private ones, subnet i of each tier in availability
    zone i, each named <prefix>-<tier>-<last letter of its zone>."""
    where = "subnet_plan"
    _text(prefix, "the prefix", where)
    zones = _list(zones, "zones", where)
    for position, zone in enumerate(zones):
        _text(zone, f"zones[{position}]", where)
    plan = []
    for tier, cidrs in (("public", public_cidrs), ("private", private_cidrs)):
        cidrs = _list(cidrs, f"{tier}_cidrs", where)
        if len(cidrs) > len(zones):
            raise AnsibleFilterError(f"{where}: {len(cidrs)} {tier} subnet CIDRs but only {len(zones)} availability "
                                     f"zones ({', '.join(zones) or 'none'}): subnet i of each tier goes to zone i")
        for index, cidr in enumerate(cidrs):
            zone = zones[index]
            plan.append({"tier": tier, "index": index, "cidr": cidr, "zone": zone,
                         "name": f"{prefix}-{tier}-{zone[-1:]}"})
    return plan


def instance_plan(prefix, node_count, builder_count, node_instance_type, builder_instance_type,
                  node_root_gib, builder_root_gib):
    """The instances, each created by its own name: <prefix>-node-1..N, <prefix>-builder-1..M.
    Nodes alternate between the two zones (index modulo 2); builders too. Only nodes get a data
    volume."""
    where = "instance_plan"
    _text(prefix, "the prefix", where)
    plan = []
    for role, count, instance_type, root_gib, data_volume in (
            ("node", node_count, node_instance_type, node_root_gib, True),
            ("builder", builder_count, builder_instance_type, builder_root_gib, False)):
        count = _whole(count, f"{role}_count", where)
        if count == 0:  # the type and size of a role without instances are not used
            continue
        _text(instance_type, f"{role}_instance_type", where)
        root_size = _whole(root_gib, f"{role}_root_gib", where, minimum=1)
        for i in range(1, count + 1):
            plan.append({"name": f"{prefix}-{role}-{i}", "role": role, "index": i, "zone_index": (i - 1) % 2,
                         "instance_type": instance_type, "root_size": root_size, "data_volume": data_volume})
    return plan


def _cidr_family(values, version):
    """The valid networks of one IP version (host bits zero), as given: what the filter
    pulse.infra.cidr_family (plugins/filter/network.py) returns."""
    found = []
    for value in values:
        if not isinstance(value, str) or "/" not in value:
            continue
        try:
            net = ipaddress.ip_network(value.strip(), strict=True)
        except ValueError:
            continue
        if net.version == version:
            found.append(value)
    return found


def cidr_rules(cidrs, port, description):
    """Security group rules (amazon.aws.ec2_security_group) opening one TCP port to a CIDR list:
    IPv4 and IPv6 entries go to different fields, so one rule per family that has entries.
    Entries that are not valid networks are left out (preflight reports them)."""
    where = "cidr_rules"
    cidrs = _list(cidrs, "the CIDRs", where)
    port = _whole(port, "port", where, minimum=1, maximum=65535)
    _text(description, "description", where)
    rules = []
    v4 = _cidr_family(cidrs, 4)
    v6 = _cidr_family(cidrs, 6)
    if v4:
        rules.append({"proto": "tcp", "ports": [port], "cidr_ip": v4, "rule_desc": description})
    if v6:
        rules.append({"proto": "tcp", "ports": [port], "cidr_ipv6": v6, "rule_desc": description + " (IPv6)"})
    return rules


def alarm_names(plan, prefix, alb, auto_recovery, node_count):
    """The names of the alarms the plan wants (by name: an instance not found yet keeps its alarms).

    Every alarm roles/aws_observability manages has a name matching _aws_observability_alarm_name_regex, so that the
    ones no longer wanted (a node beyond pulse_node_count, peers-lost on a cluster of 1-2 nodes, the
    load balancer's with pulse_ingress=cloudflare_tunnel) are found and removed, and teardown
    removes them all. Per instance: <prefix>-<node|builder>-<i>-<kind>.
    """
    where = "alarm_names"
    plan = _records(plan, "the plan", where, ("name", "role"))
    _text(prefix, "the prefix", where)
    alb = _flag(alb, "alb", where)
    auto_recovery = _flag(auto_recovery, "auto_recovery", where)
    threshold = _peers_lost_threshold(node_count, where)
    names = []
    if alb:
        names.extend([f"{prefix}-alb-no-healthy-target", f"{prefix}-alb-unhealthy-target"])
    for planned in plan:
        name = str(planned["name"])
        names.append(name + "-status-check")
        if auto_recovery:
            names.append(name + "-system-check")
        if planned["role"] == "node":
            names.extend([name + "-chain-stalled", name + "-down", name + "-data-disk"])
            if threshold > 0:
                names.append(name + "-peers-lost")
    return names


def node_alarms(instances, env, data_dir, chain_stalled_minutes, evaluation_periods, disk_used_percent, node_count):
    """The Pulse alarms of each node (metrics of the node metrics collector and the CloudWatch
    agent roles: namespace pulse_metrics_namespace, dimensions Environment + InstanceId, + path for
    the disk): chain stalled, down, peers lost (from 3 nodes on) and data disk.

    The descriptions quote chain_stalled_minutes and disk_used_percent as given (10, '10' or 80.5).
    """
    where = "node_alarms"
    instances = _records(instances, "instances", where, ("role",))
    _text(env, "env", where)
    _text(data_dir, "data_dir", where)
    stalled_periods = _whole(chain_stalled_minutes, "chain_stalled_minutes", where, minimum=1)
    periods = _whole(evaluation_periods, "evaluation_periods", where, minimum=1)
    disk_threshold = _number(disk_used_percent, "disk_used_percent", where, 0, 100)
    peers_threshold = _peers_lost_threshold(node_count, where)
    peers = _whole(node_count, "node_count", where) - 1
    nodes = [i for i in instances if i["role"] == "node"]
    _records(nodes, "instances (nodes)", where, ("name", "id"))
    alarms = []
    for node in nodes:
        name, node_id = node["name"], node["id"]
        seen = f"{name} ({node_id})"
        dims = {"Environment": env, "InstanceId": node_id}
        alarms.append({"name": f"{name}-chain-stalled", "metric": "BlocksProduced", "dimensions": dict(dims),
                       "statistic": "Sum", "comparison": "LessThanOrEqualToThreshold", "threshold": 0.0,
                       "periods": stalled_periods, "missing": "breaching",
                       "description": f"Chain stalled: {seen} saw no new block for {chain_stalled_minutes} minutes ({env})"})
        alarms.append({"name": f"{name}-down", "metric": "Up", "dimensions": dict(dims),
                       "statistic": "Minimum", "comparison": "LessThanThreshold", "threshold": 1.0,
                       "periods": periods, "missing": "breaching",
                       "description": f"Node down: {seen} fails /health or publishes no metrics ({env})"})
        if peers_threshold > 0:
            alarms.append({"name": f"{name}-peers-lost", "metric": "PeerCount", "dimensions": dict(dims),
                           "statistic": "Maximum", "comparison": "LessThanThreshold", "threshold": float(peers_threshold),
                           "periods": periods, "missing": "notBreaching",
                           "description": f"Peers lost: {seen} has fewer than {peers_threshold} of its {peers} peers ({env})"})
        alarms.append({"name": f"{name}-data-disk", "metric": "disk_used_percent", "dimensions": {**dims, "path": data_dir},
                       "statistic": "Maximum", "comparison": "GreaterThanThreshold", "threshold": disk_threshold,
                       "periods": periods, "missing": "breaching",
                       "description": f"Data disk: {data_dir} on {seen} is more than {disk_used_percent}% full, "
                                      f"or not reported (not mounted, no agent) ({env})"})
    return alarms


def backup_writers_policy(instances, bucket_arn, backups_prefix, env, instance_arn_prefix):
    """The nodes' backup writes, one statement per node (an IAM policy document).

    Backups are append-only from a node: node <name> may create NEW objects (PutObject with
    If-None-Match: *, i.e. never over an existing key) below <backups prefix><env>/<name>/ only,
    and only from its own instance (ec2:SourceInstanceARN, which EC2 sets on every request signed
    with the instance role's credentials and which no tag or key of the request can change).
    Written once the instances exist (their ids are in it).
    """
    where = "backup_writers_policy"
    instances = _records(instances, "instances", where, ("role",))
    _text(bucket_arn, "bucket_arn", where)
    _text(backups_prefix, "backups_prefix", where, empty=True)
    _text(env, "env", where)
    _text(instance_arn_prefix, "instance_arn_prefix", where)
    nodes = _records([i for i in instances if i["role"] == "node"], "instances (nodes)", where, ("name", "id", "index"))
    statements = []
    for node in nodes:
        statements.append({"Sid": f"AppendBackupsNode{node['index']}", "Effect": "Allow",
                           "Action": ["s3:PutObject"],
                           "Resource": f"{bucket_arn}/{backups_prefix}{env}/{node['name']}/*",
                           "Condition": {"ArnEquals": {"ec2:SourceInstanceARN": f"{instance_arn_prefix}{node['id']}"},
                                         "Null": {"s3:if-none-match": "false"}}})
    return {"Version": _POLICY_VERSION, "Statement": statements}


def bucket_policy(name, purpose, partition, account_id, region, artifacts_bucket, backups_bucket,
                  artifacts_prefix, backups_prefix, break_glass_arns=None, alb_log_prefix="alb", s3_log_prefix="s3/"):
    """The policy of one of the three buckets (purpose: artifacts, backups or logs).

    Every bucket refuses requests without TLS. Deleting an object or an object version below the
    protected prefix (releases in the artifacts bucket, backups, access logs: the whole log
    bucket) is denied to every principal but break_glass_arns (none by default: an operator must
    first change the bucket policy, which needs s3:PutBucketPolicy and is recorded by CloudTrail;
    teardown does exactly that). Lifecycle expiry is not a request and is not affected.

    The log bucket also lets S3 server access logging (below <s3_log_prefix><source bucket>/) and
    the ELB log delivery (below <alb_log_prefix>/AWSLogs/<account>/) write. Write-once uploads
    (If-None-Match) are required by the instance roles, not here: see README "Security", and the
    lab's moto, which evaluates bucket-policy statements without their conditions.
    """
    where = "bucket_policy"
    _text(name, "the bucket name", where)
    if purpose not in _BUCKET_PURPOSES:
        raise AnsibleFilterError(f"{where}: purpose must be one of {', '.join(_BUCKET_PURPOSES)}, got {purpose!r}")
    _text(partition, "partition", where)
    if not isinstance(account_id, str) or len(account_id) != 12 or not account_id.isdigit():
        raise AnsibleFilterError(f"{where}: account_id must be the 12 digits of an AWS account id (a string), got {account_id!r}")
    _text(region, "region", where)
    _text(artifacts_bucket, "artifacts_bucket", where)
    _text(backups_bucket, "backups_bucket", where)
    _text(artifacts_prefix, "artifacts_prefix", where, empty=True)
    _text(backups_prefix, "backups_prefix", where, empty=True)
    break_glass_arns = _list([] if break_glass_arns is None else break_glass_arns, "break_glass_arns", where)
    for position, arn in enumerate(break_glass_arns):
        _text(arn, f"break_glass_arns[{position}]", where)
    _text(alb_log_prefix, "alb_log_prefix", where, empty=True)
    _text(s3_log_prefix, "s3_log_prefix", where, empty=True)

    arn = f"arn:{partition}:s3:::{name}"
    statements = []
    if purpose == "logs":
        # The statements for S3 server access logging come first, one per source bucket with its
        # exact prefix: moto's PutBucketLogging check only reads statements up to the first
        # "Principal": "*" (the lab would refuse the buckets' logging otherwise).
        for number, source in enumerate((artifacts_bucket, backups_bucket), start=1):
            statements.append({"Sid": f"S3ServerAccessLogs{number}", "Effect": "Allow",
                               "Principal": {"Service": "logging.s3.amazonaws.com"}, "Action": "s3:PutObject",
                               "Resource": f"{arn}/{s3_log_prefix}{source}/*",
                               "Condition": {"StringEquals": {"aws:SourceAccount": account_id},
                                             "ArnLike": {"aws:SourceArn": f"arn:{partition}:s3:::{source}"}}})
        alb_logs = f"{arn}/{alb_log_prefix}/AWSLogs/{account_id}/*"
        statements.append({"Sid": "AlbAccessLogs", "Effect": "Allow",
                           "Principal": {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"},
                           "Action": "s3:PutObject", "Resource": alb_logs})
        if region in ELB_ACCOUNT_IDS:
            statements.append({"Sid": "AlbAccessLogsRegionalAccount", "Effect": "Allow",
                               "Principal": {"AWS": f"arn:{partition}:iam::{ELB_ACCOUNT_IDS[region]}:root"},
                               "Action": "s3:PutObject", "Resource": alb_logs})
    statements.append({"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                       "Resource": [arn, f"{arn}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}})
    protected = {"artifacts": artifacts_prefix, "backups": backups_prefix, "logs": ""}[purpose]
    deny = {"Sid": "DenyDeletingObjects", "Effect": "Deny", "Principal": "*",
            "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"], "Resource": f"{arn}/{protected}*"}
    # Break glass: the principals allowed to delete anyway (an explicit Deny wins over any Allow,
    # so they are exempted from the Deny itself).
    if break_glass_arns:
        deny["Condition"] = {"ArnNotLike": {"aws:PrincipalArn": break_glass_arns}}
    statements.append(deny)
    return {"Version": _POLICY_VERSION, "Statement": statements}


class FilterModule:
    """pulse.infra plan filters of the AWS stack roles."""

    def filters(self):
        return {"subnet_plan": subnet_plan, "instance_plan": instance_plan, "cidr_rules": cidr_rules,
                "alarm_names": alarm_names, "node_alarms": node_alarms,
                "backup_writers_policy": backup_writers_policy, "bucket_policy": bucket_policy}
