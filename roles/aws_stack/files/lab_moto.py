#!/usr/bin/env python3
"""Lab only: work around gaps of moto that break amazon.aws modules. Never used outside
the lab (the tasks that call it are guarded by pulse_lab).

seed-alb-attributes NAME
    moto's DescribeLoadBalancerAttributes lists only a few attributes of a new ALB
    (idle_timeout.timeout_seconds, routing.http2.enabled, routing.http.drop_invalid_header_fields.enabled
    ... are missing) and amazon.aws.elb_application_lb fails with a KeyError when it compares
    them. Writes AWS's documented defaults for the missing keys only, so that the module can
    compare and set them as it does against AWS. Prints {"seeded": [keys]}.

upsert-record ZONE_ID RECORD_SET_JSON
    moto refuses to CREATE a record set identical to one created (and deleted) before in the
    same zone ("... but it already exists": its journal check matches every record listed from
    that name on), and amazon.aws.route53 then reports "ok" without creating anything, e.g. the
    alias records when pulse_ingress goes back to alb. UPSERTs the record set (a Route53
    ResourceRecordSet, CamelCase) unless an equal one exists. Prints {"upserted": bool}.

Usage: lab_moto.py ENDPOINT_URL REGION COMMAND ARGS... (credentials from AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY).
"""

import json
import sys

import boto3

AWS_ALB_DEFAULTS = {
    "access_logs.s3.enabled": "false",
    "idle_timeout.timeout_seconds": "60",
    "routing.http2.enabled": "true",
    "routing.http.desync_mitigation_mode": "defensive",
    "routing.http.drop_invalid_header_fields.enabled": "false",
    "routing.http.preserve_host_header.enabled": "false",
    "routing.http.x_amzn_tls_version_and_cipher_suite.enabled": "false",
    "routing.http.xff_client_port.enabled": "false",
    "routing.http.xff_header_processing.mode": "append",
    "waf.fail_open.enabled": "false",
}


def seed_alb_attributes(session, name):
    client = session.client("elbv2")
    arn = client.describe_load_balancers(Names=[name])["LoadBalancers"][0]["LoadBalancerArn"]
    present = {a["Key"] for a in client.describe_load_balancer_attributes(LoadBalancerArn=arn)["Attributes"]}
    missing = [{"Key": k, "Value": v} for k, v in AWS_ALB_DEFAULTS.items() if k not in present]
    if missing:
        client.modify_load_balancer_attributes(LoadBalancerArn=arn, Attributes=missing)
    return {"seeded": [m["Key"] for m in missing]}


def _normal(record_set):
    out = dict(record_set)
    out["Name"] = out["Name"].rstrip(".").lower() + "."
    if "AliasTarget" in out:
        alias = dict(out["AliasTarget"])
        alias["DNSName"] = alias["DNSName"].rstrip(".").lower()
        out["AliasTarget"] = alias
    if "ResourceRecords" in out:
        out["ResourceRecords"] = sorted(r["Value"] for r in out["ResourceRecords"])
    return out


def upsert_record(session, zone_id, record_set_json):
    client = session.client("route53")
    wanted = json.loads(record_set_json)
    existing = client.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    if any(_normal(r) == _normal(wanted) for r in existing):
        return {"upserted": False}
    client.change_resource_record_sets(
        HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": wanted}]})
    return {"upserted": True}


COMMANDS = {"seed-alb-attributes": seed_alb_attributes,
            "upsert-record": upsert_record}


def main(argv):
    endpoint, region, command, *args = argv
    session = boto3.session.Session(region_name=region)

    class _Session:  # every client at the lab endpoint
        @staticmethod
        def client(service):
            return session.client(service, endpoint_url=endpoint)

    print(json.dumps(COMMANDS[command](_Session, *args)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
