#!/usr/bin/python
# Copyright: Pulse infrastructure team
# Apache License 2.0 (see galaxy.yml)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ssm_parameter_once
short_description: Write an SSM parameter once, never over an existing value
version_added: 0.1.0
description:
  - Creates a String parameter with C(PutParameter) and C(Overwrite=false). When it exists with
    the same value nothing changes; with another value the task fails (a record is written once).
  - M(community.aws.ssm_parameter) with C(overwrite_value=never) keeps an existing different
    value silently; a release record must not.
  - Without O(value), only reads the parameter (RV(exists), RV(value)); nothing is written.
author:
  - Pulse infrastructure team (@pulse-infra)
options:
  name:
    description: The parameter name (a path such as C(/pulse/lab/releases/v1.2.0)).
    type: str
    required: true
  value:
    description: The value; a dict or list is stored as compact JSON with sorted keys. Omitted - read only.
    type: raw
  description:
    description: Description of a new parameter.
    type: str
    default: ""
notes:
  - Supports check mode.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Record a release
  pulse.infra.ssm_parameter_once:
    name: /pulse/lab/releases/v1.2.0
    value: {sha256: "...", version_id: "..."}
"""

RETURN = r"""
exists:
  description: Whether the parameter exists after the task (in check mode, whether it would).
  returned: always
  type: bool
value:
  description: The stored value.
  returned: always
  type: str
version:
  description: The parameter's version (1 for a record written once).
  returned: always
  type: int
"""

import json

try:
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule


def render(value):
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def same(a, b):
    try:
        return json.loads(a) == json.loads(b)
    except ValueError:
        return a == b


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(name=dict(type="str", required=True), value=dict(type="raw"),
                           description=dict(type="str", default="")),
        supports_check_mode=True,
    )
    name = module.params["name"]
    value = None if module.params["value"] is None else render(module.params["value"])
    client = module.client("ssm")

    def existing():
        try:
            return client.get_parameter(Name=name)["Parameter"]
        except is_boto3_error_code("ParameterNotFound"):
            return None

    def accept(found):
        if value is None:
            module.exit_json(changed=False, exists=True, value=found["Value"], version=found.get("Version", 0))
        if not same(found["Value"], value):
            module.fail_json(msg=f"{name} is recorded already with another value ({found['Value']}); a record is "
                                 f"written once and never changed (wanted {value}).", value=found["Value"],
                             exists=True, version=found.get("Version", 0))
        module.exit_json(changed=False, exists=True, value=found["Value"], version=found.get("Version", 0))

    try:
        found = existing()
        if found is not None:
            accept(found)
        if value is None:
            module.exit_json(changed=False, exists=False, value="", version=0)
        if module.check_mode:
            module.exit_json(changed=True, exists=True, value=value, version=0)
        try:
            answer = client.put_parameter(Name=name, Value=value, Type="String", Overwrite=False,
                                          Description=module.params["description"])
        except is_boto3_error_code("ParameterAlreadyExists"):
            accept(existing())
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to record {name}")
    module.exit_json(changed=True, exists=True, value=value, version=answer.get("Version", 1))


if __name__ == "__main__":
    main()
