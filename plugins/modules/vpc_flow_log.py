#!/usr/bin/python
# Copyright: Pulse infrastructure team
# Apache License 2.0 (see galaxy.yml)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: vpc_flow_log
short_description: Create or delete the flow log of a VPC delivered to CloudWatch Logs
version_added: 0.1.0
description:
  - Manages the flow log of one VPC that delivers to one CloudWatch Logs log group, found by
    the VPC id and the log group name (never by a remembered flow log id).
  - Idempotent. A flow log with another traffic type or delivery role is replaced (flow logs
    cannot be modified).
  - Neither C(amazon.aws) 10 nor C(community.aws) 10 has a flow log module.
author:
  - Pulse infrastructure team (@pulse-infra)
options:
  vpc_id:
    description: The VPC.
    type: str
    required: true
  log_group_name:
    description: The CloudWatch Logs log group the flow log delivers to.
    type: str
    required: true
  deliver_logs_permission_arn:
    description: ARN of the IAM role the flow log service assumes to write the log group. Required when O(state=present).
    type: str
  traffic_type:
    description: Which flows are logged.
    type: str
    choices: [ACCEPT, REJECT, ALL]
    default: ALL
  max_aggregation_interval:
    description: Seconds over which a flow is aggregated into one record (60 or 600).
    type: int
    choices: [60, 600]
    default: 600
  tags:
    description: Tags of a new flow log.
    type: dict
    default: {}
  state:
    description: V(present) or V(absent).
    type: str
    choices: [present, absent]
    default: present
notes:
  - Supports check mode.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Flow logs of the VPC
  pulse.infra.vpc_flow_log:
    vpc_id: vpc-0123456789abcdef0
    log_group_name: /pulse/lab/vpc-flow-logs
    deliver_logs_permission_arn: arn:aws:iam::123456789012:role/pulse-lab-flow-logs
    tags: {Name: pulse-lab-vpc}
"""

RETURN = r"""
flow_log_ids:
  description: The flow logs of the VPC to the log group after the task.
  returned: always
  type: list
  elements: str
"""

try:
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule


def _find(client, vpc_id, log_group):
    answer = client.describe_flow_logs(Filters=[{"Name": "resource-id", "Values": [vpc_id]}])
    return [f for f in answer.get("FlowLogs", []) if f.get("LogGroupName") == log_group
            and f.get("LogDestinationType", "cloud-watch-logs") == "cloud-watch-logs"]


def _matches(flow, params):
    return (flow.get("TrafficType") == params["traffic_type"]
            and flow.get("DeliverLogsPermissionArn") == params["deliver_logs_permission_arn"]
            and int(flow.get("MaxAggregationInterval", 600)) == params["max_aggregation_interval"])


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            vpc_id=dict(type="str", required=True),
            log_group_name=dict(type="str", required=True),
            deliver_logs_permission_arn=dict(type="str"),
            traffic_type=dict(type="str", choices=["ACCEPT", "REJECT", "ALL"], default="ALL"),
            max_aggregation_interval=dict(type="int", choices=[60, 600], default=600),
            tags=dict(type="dict", default={}),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
        supports_check_mode=True,
        required_if=[("state", "present", ["deliver_logs_permission_arn"])],
    )
    params = module.params
    client = module.client("ec2")
    try:
        found = _find(client, params["vpc_id"], params["log_group_name"])
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        module.fail_json_aws(e, msg=f"Failed to list the flow logs of {params['vpc_id']}")
    keep = [f for f in found if params["state"] == "present" and _matches(f, params)][:1]
    doomed = [f["FlowLogId"] for f in found if f not in keep]
    create = params["state"] == "present" and not keep
    changed = bool(doomed) or create
    ids = [f["FlowLogId"] for f in keep]
    if changed and not module.check_mode:
        try:
            if doomed:
                client.delete_flow_logs(FlowLogIds=doomed)
            if create:
                kwargs = dict(ResourceIds=[params["vpc_id"]], ResourceType="VPC",
                              TrafficType=params["traffic_type"], LogDestinationType="cloud-watch-logs",
                              LogGroupName=params["log_group_name"],
                              DeliverLogsPermissionArn=params["deliver_logs_permission_arn"],
                              MaxAggregationInterval=params["max_aggregation_interval"])
                if params["tags"]:
                    kwargs["TagSpecifications"] = [{"ResourceType": "vpc-flow-log", "Tags": [
                        {"Key": k, "Value": str(v)} for k, v in params["tags"].items()]}]
                answer = client.create_flow_logs(**kwargs)
                if answer.get("Unsuccessful"):
                    module.fail_json(msg=f"Could not create the flow log: {answer['Unsuccessful']}")
                ids = answer.get("FlowLogIds", [])
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            module.fail_json_aws(e, msg=f"Failed to change the flow logs of {params['vpc_id']}")
    module.exit_json(changed=changed, flow_log_ids=ids)


if __name__ == "__main__":
    main()
