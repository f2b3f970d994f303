#!/usr/bin/python
# Copyright: Pulse infrastructure team
# Apache License 2.0 (see galaxy.yml)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sns_topic_encryption
short_description: Set or remove the KMS key of an SNS topic
version_added: 0.1.0
description:
  - Sets the topic attribute C(KmsMasterKeyId) (server-side encryption) when it differs;
    M(community.aws.sns_topic) 10 has no option for it.
author:
  - Pulse infrastructure team (@pulse-infra)
options:
  topic_arn:
    description: The topic.
    type: str
    required: true
  kms_key_id:
    description: Key id, ARN or alias; empty removes the encryption.
    type: str
    default: ""
notes:
  - Supports check mode (nothing is written; C(changed) says whether the key would change).
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Encrypt the alarm topic with the environment's key
  pulse.infra.sns_topic_encryption:
    topic_arn: arn:aws:sns:us-east-2:123456789012:pulse-lab-alarms
    kms_key_id: arn:aws:kms:us-east-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab
"""

RETURN = r"""
kms_key_id:
  description: The topic's key after the task (empty when not encrypted).
  returned: always
  type: str
"""

try:
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(topic_arn=dict(type="str", required=True), kms_key_id=dict(type="str", default="")),
        supports_check_mode=True,
    )
    client = module.client("sns")
    arn, wanted = module.params["topic_arn"], module.params["kms_key_id"] or ""
    try:
        current = client.get_topic_attributes(TopicArn=arn)["Attributes"].get("KmsMasterKeyId", "") or ""
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        module.fail_json_aws(e, msg=f"Failed to read the attributes of {arn}")
    changed = current != wanted
    if changed and not module.check_mode:
        try:
            client.set_topic_attributes(TopicArn=arn, AttributeName="KmsMasterKeyId", AttributeValue=wanted)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            module.fail_json_aws(e, msg=f"Failed to set the KMS key of {arn}")
    module.exit_json(changed=changed, kms_key_id=wanted)


if __name__ == "__main__":
    main()
