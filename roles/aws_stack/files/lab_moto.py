#!/usr/bin/env python3
"""Lab only: give a moto load balancer the attributes AWS always returns.

moto's DescribeLoadBalancerAttributes lists only a few attributes of a new ALB
(idle_timeout.timeout_seconds, routing.http2.enabled, routing.http.drop_invalid_header_fields.enabled
... are missing), and amazon.aws.elb_application_lb then fails with a KeyError when it compares
them. This writes AWS's documented defaults for the missing keys only, so the module can
compare and set them as it does against AWS. Never used outside the lab (pulse_lab).

Usage: lab_seed_alb_attributes.py ENDPOINT_URL REGION LOAD_BALANCER_NAME
(credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY). Prints {"seeded": [...]}.
"""

import json
import sys

import boto3

AWS_DEFAULTS = {
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


def main(argv):
    endpoint, region, name = argv
    client = boto3.client("elbv2", region_name=region, endpoint_url=endpoint)
    arn = client.describe_load_balancers(Names=[name])["LoadBalancers"][0]["LoadBalancerArn"]
    present = {a["Key"] for a in client.describe_load_balancer_attributes(LoadBalancerArn=arn)["Attributes"]}
    missing = [{"Key": k, "Value": v} for k, v in AWS_DEFAULTS.items() if k not in present]
    if missing:
        client.modify_load_balancer_attributes(LoadBalancerArn=arn, Attributes=missing)
    print(json.dumps({"seeded": [m["Key"] for m in missing]}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
