#!/usr/bin/python
# Copyright: Pulse infrastructure team
# Apache License 2.0 (see galaxy.yml)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cloudfront_origin_access_control
short_description: Create, update or delete a CloudFront origin access control (OAC)
version_added: 0.1.0
description:
  - Manages one CloudFront B(origin access control) by name. An origin access control lets a
    distribution sign its requests to a private origin (an S3 bucket whose policy admits only
    that distribution, with the condition C(AWS:SourceArn)); it replaces the legacy origin
    access identity (OAI).
  - Idempotent. The origin access control is found by O(name) (CloudFront keeps names unique in
    an account) and only written when its settings differ from the wanted ones, so a second run
    reports no change.
  - Use the returned RV(id) as the origin's C(origin_access_control_id) in
    M(community.aws.cloudfront_distribution) (with C(s3_origin_access_identity_enabled=false)).
  - Neither C(amazon.aws) nor C(community.aws) manages origin access controls (amazon.aws 10,
    community.aws 10); this module follows their conventions (connection options, retries with
    backoff, check mode, diff).
author:
  - Pulse infrastructure team (@pulse-infra)
options:
  name:
    description:
      - Name of the origin access control (at most 64 characters), unique in the account.
    type: str
    required: true
  description:
    description:
      - Its description (at most 256 characters).
    type: str
    default: ""
  origin_type:
    description:
      - The kind of origin it signs requests for.
    type: str
    choices: [s3, mediastore, mediapackagev2, lambda]
    default: s3
  signing_behavior:
    description:
      - V(always) signs every origin request (and replaces a viewer's C(Authorization) header);
        V(no-override) signs unless the viewer sent C(Authorization); V(never) does not sign.
    type: str
    choices: [always, never, no-override]
    default: always
  signing_protocol:
    description:
      - How requests are signed.
    type: str
    choices: [sigv4]
    default: sigv4
  state:
    description:
      - V(present) creates the origin access control, or updates it when its settings differ.
      - V(absent) deletes it (nothing happens when it does not exist). CloudFront refuses to delete
        one that a distribution still uses; the task then fails and says so.
    type: str
    choices: [present, absent]
    default: present
notes:
  - Supports check mode (nothing is written; C(changed) says whether it would be) and diff mode
    (the settings before and after).
  - CloudFront is a global service; the region of the connection does not matter.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Origin access control for the app bucket
  pulse.infra.cloudfront_origin_access_control:
    name: pulse-lab-app
    description: Pulse lab app bucket
  register: oac

- name: Distribution reading the bucket through it
  community.aws.cloudfront_distribution:
    caller_reference: pulse-lab-app
    origins:
      - id: app-bucket
        domain_name: pulse-lab-app-0001.s3.us-east-2.amazonaws.com
        s3_origin_access_identity_enabled: false
        origin_access_control_id: "{{ oac.id }}"
    state: present

- name: Delete it (after the distribution that used it)
  pulse.infra.cloudfront_origin_access_control:
    name: pulse-lab-app
    state: absent
"""

RETURN = r"""
id:
  description: Id of the origin access control (null when it does not exist, or would only be created in check mode).
  returned: always
  type: str
  sample: E2QWRUHAPOMQZL
exists:
  description: Whether it exists after the task (in check mode, whether it would).
  returned: always
  type: bool
origin_access_control:
  description: The origin access control after the task (empty dict when there is none).
  returned: always
  type: dict
  contains:
    id:
      description: Its id.
      type: str
    etag:
      description: Its current version (C(IfMatch) of updates and deletes).
      type: str
    name:
      description: Its name.
      type: str
    description:
      description: Its description.
      type: str
    origin_type:
      description: C(s3), C(mediastore), C(mediapackagev2) or C(lambda).
      type: str
    signing_behavior:
      description: C(always), C(never) or C(no-override).
      type: str
    signing_protocol:
      description: C(sigv4).
      type: str
"""

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.pulse.infra.plugins.module_utils import cloudfront_config as cfc
from ansible_collections.pulse.infra.plugins.module_utils.aws_module import BOTO_ERRORS, diff, run_by_state


def _diff(before, after):
    def show(oac):
        if not oac:
            return ""
        return "\n".join(f"{k}: {v}" for k, v in sorted(oac.items()) if k not in ("id", "etag")) + "\n"

    return diff(show(before), show(after), "origin access control")


def _find(module, client):
    try:
        return cfc.OAC.find(client, name=module.params["name"])
    except BOTO_ERRORS as e:
        module.fail_json_aws(e, msg=f"Failed to look up origin access control {module.params['name']}")


def _exit(module, changed, oac, etag, exists, before=None, wanted_summary=None):
    summary = cfc.OAC.summarize(oac, etag) if oac else (wanted_summary or {})
    result = dict(changed=changed, id=summary.get("id"), exists=exists, origin_access_control=summary)
    if module._diff and changed:
        result["diff"] = _diff(before, summary if exists else None)
    module.exit_json(**result)


def ensure_present(module, client):
    params = module.params
    wanted = cfc.oac_config(params["name"], params["description"], params["origin_type"],
                            params["signing_behavior"], params["signing_protocol"])
    oac, etag = _find(module, client)
    if oac is not None and cfc.same_oac_config(oac.get("OriginAccessControlConfig"), wanted):
        _exit(module, False, oac, etag, True)
    before = cfc.OAC.summarize(oac, etag) if oac else None
    if module.check_mode:
        wanted_summary = cfc.OAC.summarize({"Id": oac["Id"] if oac else None, "OriginAccessControlConfig": wanted}, etag)
        _exit(module, True, None, None, True, before=before, wanted_summary=wanted_summary)
    try:
        if oac is None:
            oac, etag = cfc.OAC.create(client, wanted)
        else:
            oac, etag = cfc.OAC.update(client, oac["Id"], etag, wanted)
    except is_boto3_error_code("OriginAccessControlAlreadyExists") as e:
        module.fail_json_aws(e, msg=f"An origin access control named {params['name']} already exists but could not "
                                    "be read: check the cloudfront:ListOriginAccessControls permission.")
    except BOTO_ERRORS as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to write origin access control {params['name']}")
    _exit(module, True, oac, etag, True, before=before)


def ensure_absent(module, client):
    name = module.params["name"]
    oac, etag = _find(module, client)
    if oac is None:
        _exit(module, False, None, None, False)
    before = cfc.OAC.summarize(oac, etag)
    if not module.check_mode:
        try:
            cfc.OAC.delete(client, oac["Id"], etag)
        except is_boto3_error_code("OriginAccessControlInUse") as e:
            module.fail_json_aws(
                e, msg=f"Origin access control {name} ({oac['Id']}) is still used by a distribution: remove it from "
                       "the distribution's origins (or delete the distribution) first, then run again.")
        except BOTO_ERRORS as e:  # pylint: disable=duplicate-except
            module.fail_json_aws(e, msg=f"Failed to delete origin access control {name}")
    result = dict(changed=True, id=oac["Id"], exists=False, origin_access_control=before)
    if module._diff:
        result["diff"] = _diff(before, None)
    module.exit_json(**result)


def main():
    argument_spec = dict(
        name=dict(type="str", required=True),
        description=dict(type="str", default=""),
        origin_type=dict(type="str", choices=cfc.OAC_ORIGIN_TYPES, default="s3"),
        signing_behavior=dict(type="str", choices=cfc.OAC_SIGNING_BEHAVIORS, default="always"),
        signing_protocol=dict(type="str", choices=cfc.OAC_SIGNING_PROTOCOLS, default="sigv4"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    name = module.params["name"]
    if not name or len(name) > 64:
        module.fail_json(msg=f"Origin access control name {name!r} is not valid: 1 to 64 characters.")
    if len(module.params["description"] or "") > 256:
        module.fail_json(msg="The description of an origin access control has at most 256 characters.")
    run_by_state(module, "cloudfront", ensure_present, ensure_absent)


if __name__ == "__main__":
    main()
