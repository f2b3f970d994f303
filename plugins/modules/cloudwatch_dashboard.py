#!/usr/bin/python
# Copyright: Pulse infrastructure team
# Apache License 2.0 (see galaxy.yml)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cloudwatch_dashboard
short_description: Create, update or delete a CloudWatch dashboard
version_added: 0.1.0
description:
  - Manages one Amazon CloudWatch dashboard by name with C(PutDashboard) / C(DeleteDashboards).
  - Idempotent. The dashboard is only written when its current body differs from O(body) as a
    JSON document (whitespace and key order do not count), so a second run reports no change.
  - Neither C(amazon.aws) nor C(community.aws) has a dashboard module (amazon.aws 10,
    community.aws 10); this one follows their conventions (connection options, retries with
    backoff, check mode, diff).
author:
  - Pulse infrastructure team (@pulse-infra)
options:
  name:
    description:
      - Name of the dashboard (letters, digits, C(-) and C(_), at most 255 characters).
    type: str
    required: true
    aliases: [dashboard_name]
  body:
    description:
      - The dashboard body, as a dict or a JSON string, with a C(widgets) list. See
        U(https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/CloudWatch-Dashboard-Body-Structure.html).
      - Required when O(state=present).
    type: raw
  state:
    description:
      - V(present) creates the dashboard or replaces its body when it differs.
      - V(absent) deletes it (nothing happens when it does not exist).
    type: str
    choices: [present, absent]
    default: present
notes:
  - Supports check mode (nothing is written; C(changed) says whether it would be) and diff mode
    (the bodies before and after).
  - CloudWatch checks the body when it is written; a body it refuses fails the task with its
    validation messages. Warnings it returns for an accepted body are in RV(validation_messages).
  - Dashboards are global to the account in the console but are stored per region; the module
    acts on the region of the connection.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: The environment's dashboard
  pulse.infra.cloudwatch_dashboard:
    name: pulse-lab-overview
    body:
      widgets:
        - type: metric
          x: 0
          y: 0
          width: 12
          height: 6
          properties:
            title: Chain height
            region: us-east-2
            stat: Maximum
            period: 60
            view: timeSeries
            metrics:
              - [Pulse, ChainHeight, Environment, lab, InstanceId, i-0123456789abcdef0, {label: node-1}]

- name: From a template
  pulse.infra.cloudwatch_dashboard:
    name: pulse-lab-overview
    body: "{{ lookup('ansible.builtin.template', 'dashboard.json.j2') }}"

- name: Delete it
  pulse.infra.cloudwatch_dashboard:
    name: pulse-lab-overview
    state: absent
"""

RETURN = r"""
name:
  description: Name of the dashboard.
  returned: always
  type: str
  sample: pulse-lab-overview
arn:
  description: ARN of the dashboard (null when it does not exist, or would only be created in check mode).
  returned: always
  type: str
  sample: arn:aws:cloudwatch::123456789012:dashboard/pulse-lab-overview
exists:
  description: Whether the dashboard exists after the task (in check mode, whether it would).
  returned: always
  type: bool
body:
  description: The dashboard body after the task (parsed), empty dict when it does not exist.
  returned: always
  type: dict
validation_messages:
  description: Warnings CloudWatch returned for an accepted body.
  returned: always
  type: list
  elements: dict
  sample: []
"""

try:
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.pulse.infra.plugins.module_utils import cloudwatch_dashboard as cwd
from ansible_collections.pulse.infra.plugins.module_utils.aws_module import diff, run_by_state

ADVICE_INVALID = (
    "CloudWatch refused the dashboard body. Check the widget properties (every metric widget needs "
    "'metrics' and 'region'; metric arrays are [namespace, metric name, dimension name, value, ..., "
    "{options}]) against the dashboard body structure reference."
)


def _current(module, client, name):
    try:
        answer = cwd.get_dashboard(client, name)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        module.fail_json_aws(e, msg=f"Failed to read dashboard {name}")
    if answer is None:
        return None, None
    try:
        body = cwd.parse_body(answer.get("DashboardBody") or "{}")
    except ValueError:
        body = {"unparsable": answer.get("DashboardBody")}
    return body, answer.get("DashboardArn")


def _diff(before, after):
    def show(body):
        return cwd.dump_body(body) + "\n" if body is not None else ""

    return diff(show(before), show(after), "dashboard")


def ensure_present(module, client):
    name = module.params["name"]
    try:
        wanted = cwd.parse_body(module.params["body"])
    except ValueError as e:
        module.fail_json(msg=f"Dashboard {name}: {e}.")
    if len(cwd.dump_body(wanted).encode("utf-8")) > cwd.MAX_BODY_BYTES:
        module.fail_json(msg=f"Dashboard {name}: the body is larger than CloudWatch's 1 MiB limit; split the dashboard.")
    current, arn = _current(module, client, name)
    if current is not None and cwd.same_body(current, wanted):
        module.exit_json(changed=False, name=name, arn=arn, exists=True, body=current, validation_messages=[])
    messages = []
    if not module.check_mode:
        try:
            messages = cwd.put_dashboard(client, name, wanted)
        except is_boto3_error_code(["InvalidParameterInput", "DashboardInvalidInputError"]) as e:
            details = getattr(e, "response", {}).get("DashboardValidationMessages") or []
            module.fail_json_aws(e, msg=f"Dashboard {name}: {ADVICE_INVALID}", validation_messages=details)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
            module.fail_json_aws(e, msg=f"Failed to write dashboard {name}")
        _body, arn = _current(module, client, name)
    result = dict(changed=True, name=name, arn=arn, exists=True, body=wanted, validation_messages=messages)
    if module._diff:
        result["diff"] = _diff(current, wanted)
    module.exit_json(**result)


def ensure_absent(module, client):
    name = module.params["name"]
    current, arn = _current(module, client, name)
    if current is None:
        module.exit_json(changed=False, name=name, arn=None, exists=False, body={}, validation_messages=[])
    if not module.check_mode:
        try:
            cwd.delete_dashboard(client, name)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            module.fail_json_aws(e, msg=f"Failed to delete dashboard {name}")
    result = dict(changed=True, name=name, arn=arn, exists=False, body={}, validation_messages=[])
    if module._diff:
        result["diff"] = _diff(current, None)
    module.exit_json(**result)


def main():
    argument_spec = dict(
        name=dict(type="str", required=True, aliases=["dashboard_name"]),
        body=dict(type="raw"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )
    module = AnsibleAWSModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_if=[("state", "present", ["body"])],
    )
    if not cwd.NAME_RE.match(module.params["name"]):
        module.fail_json(
            msg=f"Dashboard name {module.params['name']!r} is not valid: use letters, digits, '-' and '_' "
                "(at most 255 characters)."
        )
    run_by_state(module, "cloudwatch", ensure_present, ensure_absent)


if __name__ == "__main__":
    main()
