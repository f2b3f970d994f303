#!/usr/bin/python
# Copyright: Pulse infrastructure team
# Apache License 2.0 (see galaxy.yml)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cloudfront_response_headers_policy
short_description: Create, update or delete a CloudFront response headers policy, idempotently
version_added: 0.1.0
description:
  - Manages one CloudFront B(response headers policy) by name, that is the security headers
    (C(Strict-Transport-Security), C(X-Content-Type-Options), C(X-Frame-Options),
    C(Referrer-Policy), C(Content-Security-Policy), C(X-XSS-Protection)), custom headers and
    headers to remove that CloudFront puts on every response of the cache behaviors using it.
  - Idempotent. The policy is found by O(name) (unique in an account) and only written when its
    settings differ from the wanted ones (the order of header lists and C(Quantity) fields do
    not count), so a second run reports no change.
  - M(community.aws.cloudfront_response_headers_policy) writes the policy at every run and
    reports a change whenever CloudFront's modification time is recent, i.e. at every run; this
    module compares first. CORS settings are not managed here.
author:
  - Pulse infrastructure team (@pulse-infra)
options:
  name:
    description:
      - Name of the policy (letters, digits, C(-) and C(_), at most 128 characters), unique in the account.
    type: str
    required: true
  comment:
    description:
      - Its comment.
    type: str
    default: ""
  security_headers:
    description:
      - The security headers. Leave a header out to not set it.
      - Each header's O(security_headers.strict_transport_security.override) (and the same
        suboption of the others) says whether CloudFront replaces a value the origin sent.
    type: dict
    default: {}
    suboptions:
      strict_transport_security:
        description: C(Strict-Transport-Security).
        type: dict
        suboptions:
          max_age:
            description: C(max-age) in seconds.
            type: int
            required: true
          include_subdomains:
            description: Add C(includeSubDomains).
            type: bool
            default: false
          preload:
            description: Add C(preload).
            type: bool
            default: false
          override:
            description: Replace the origin's value.
            type: bool
            default: true
      content_type_options:
        description: C(X-Content-Type-Options) (always C(nosniff)).
        type: dict
        suboptions:
          override:
            description: Replace the origin's value.
            type: bool
            default: true
      frame_options:
        description: C(X-Frame-Options).
        type: dict
        suboptions:
          frame_option:
            description: C(DENY) or C(SAMEORIGIN).
            type: str
            choices: [DENY, SAMEORIGIN]
            required: true
          override:
            description: Replace the origin's value.
            type: bool
            default: true
      referrer_policy:
        description: C(Referrer-Policy).
        type: dict
        suboptions:
          referrer_policy:
            description: The policy.
            type: str
            choices: [no-referrer, no-referrer-when-downgrade, origin, origin-when-cross-origin, same-origin,
                      strict-origin, strict-origin-when-cross-origin, unsafe-url]
            required: true
          override:
            description: Replace the origin's value.
            type: bool
            default: true
      content_security_policy:
        description: C(Content-Security-Policy).
        type: dict
        suboptions:
          content_security_policy:
            description: The policy's text (at most 1783 characters).
            type: str
            required: true
          override:
            description: Replace the origin's value.
            type: bool
            default: true
      xss_protection:
        description: C(X-XSS-Protection) (obsolete in current browsers; prefer a content security policy).
        type: dict
        suboptions:
          protection:
            description: C(1) (true) or C(0) (false).
            type: bool
            required: true
          mode_block:
            description: Add C(mode=block).
            type: bool
          report_uri:
            description: Add C(report=<uri>).
            type: str
          override:
            description: Replace the origin's value.
            type: bool
            default: true
  custom_headers:
    description:
      - Other headers to add to every response.
    type: list
    elements: dict
    default: []
    suboptions:
      header:
        description: Header name.
        type: str
        required: true
      value:
        description: Header value.
        type: str
        required: true
      override:
        description: Replace the origin's value.
        type: bool
        default: true
  remove_headers:
    description:
      - Headers of the origin's responses that CloudFront removes (for example C(Server)).
    type: list
    elements: str
    default: []
  state:
    description:
      - V(present) creates the policy, or updates it when its settings differ.
      - V(absent) deletes it (nothing happens when it does not exist). CloudFront refuses to delete
        a policy that a cache behavior still uses; the task then fails and says so.
    type: str
    choices: [present, absent]
    default: present
notes:
  - Supports check mode and diff mode.
  - CloudFront is a global service; the region of the connection does not matter.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Security headers of the app
  pulse.infra.cloudfront_response_headers_policy:
    name: pulse-lab-app-security-headers
    comment: Pulse lab app
    security_headers:
      strict_transport_security:
        max_age: 63072000
        include_subdomains: true
      content_type_options: {}
      frame_options:
        frame_option: DENY
      referrer_policy:
        referrer_policy: strict-origin-when-cross-origin
      content_security_policy:
        content_security_policy: "default-src 'self'; connect-src 'self' https://api.lab.pulse.example.com"
    custom_headers:
      - header: Permissions-Policy
        value: camera=(), microphone=(), geolocation=()
  register: headers

- name: Use it in the distribution's default cache behavior
  community.aws.cloudfront_distribution:
    caller_reference: pulse-lab-app
    default_cache_behavior:
      response_headers_policy_id: "{{ headers.id }}"
    state: present

- name: Delete it (after the distribution no longer uses it)
  pulse.infra.cloudfront_response_headers_policy:
    name: pulse-lab-app-security-headers
    state: absent
"""

RETURN = r"""
id:
  description: Id of the policy (null when it does not exist, or would only be created in check mode).
  returned: always
  type: str
  sample: 0f9ab0d6-3c64-4a85-a4d1-25b5e2a3bd37
exists:
  description: Whether the policy exists after the task (in check mode, whether it would).
  returned: always
  type: bool
response_headers_policy:
  description: The policy after the task (empty dict when there is none).
  returned: always
  type: dict
  contains:
    id:
      description: Its id.
      type: str
    etag:
      description: Its current version.
      type: str
    name:
      description: Its name.
      type: str
    comment:
      description: Its comment.
      type: str
    last_modified_time:
      description: When CloudFront last changed it.
      type: str
    config:
      description: The C(ResponseHeadersPolicyConfig) as CloudFront holds it (API field names).
      type: dict
"""

import json
import re

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.pulse.infra.plugins.module_utils import cloudfront_config as cfc
from ansible_collections.pulse.infra.plugins.module_utils.aws_module import BOTO_ERRORS, diff, run_by_state

NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
# The CloudFront quota of a content security policy's length.
MAX_CSP = 1783


def _diff(before, after):
    def show(config):
        return json.dumps(config, indent=2, sort_keys=True, default=str) + "\n" if config else ""

    return diff(show(before), show(after), "response headers policy")


def _find(module, client):
    try:
        return cfc.POLICY.find(client, name=module.params["name"])
    except BOTO_ERRORS as e:
        module.fail_json_aws(e, msg=f"Failed to look up response headers policy {module.params['name']}")


def _wanted(module):
    p = module.params
    return cfc.response_headers_policy_config(p["name"], p["comment"], p["security_headers"], p["custom_headers"],
                                              p["remove_headers"])


def ensure_present(module, client):
    name = module.params["name"]
    wanted = _wanted(module)
    policy, etag = _find(module, client)
    current = (policy or {}).get("ResponseHeadersPolicyConfig")
    if policy is not None and cfc.same_policy_config(current, wanted):
        module.exit_json(changed=False, id=policy["Id"], exists=True,
                         response_headers_policy=cfc.POLICY.summarize(policy, etag))
    if module.check_mode:
        summary = cfc.POLICY.summarize({"Id": policy["Id"] if policy else None, "ResponseHeadersPolicyConfig": wanted}, etag)
        result = dict(changed=True, id=summary["id"], exists=True, response_headers_policy=summary)
    else:
        try:
            if policy is None:
                policy, etag = cfc.POLICY.create(client, wanted)
            else:
                policy, etag = cfc.POLICY.update(client, policy["Id"], etag, wanted)
        except is_boto3_error_code(["InvalidArgument", "TooLongCSPInResponseHeadersPolicy",
                                    "TooManyCustomHeadersInResponseHeadersPolicy"]) as e:
            module.fail_json_aws(e, msg=f"CloudFront refused response headers policy {name}: check the headers' values.")
        except BOTO_ERRORS as e:  # pylint: disable=duplicate-except
            module.fail_json_aws(e, msg=f"Failed to write response headers policy {name}")
        result = dict(changed=True, id=policy["Id"], exists=True,
                      response_headers_policy=cfc.POLICY.summarize(policy, etag))
    if module._diff:
        result["diff"] = _diff(current, wanted)
    module.exit_json(**result)


def ensure_absent(module, client):
    name = module.params["name"]
    policy, etag = _find(module, client)
    if policy is None:
        module.exit_json(changed=False, id=None, exists=False, response_headers_policy={})
    if not module.check_mode:
        try:
            cfc.POLICY.delete(client, policy["Id"], etag)
        except is_boto3_error_code("ResponseHeadersPolicyInUse") as e:
            module.fail_json_aws(
                e, msg=f"Response headers policy {name} ({policy['Id']}) is still used by a distribution's cache "
                       "behavior: remove it there (or delete the distribution) first, then run again.")
        except BOTO_ERRORS as e:  # pylint: disable=duplicate-except
            module.fail_json_aws(e, msg=f"Failed to delete response headers policy {name}")
    result = dict(changed=True, id=policy["Id"], exists=False,
                  response_headers_policy=cfc.POLICY.summarize(policy, etag))
    if module._diff:
        result["diff"] = _diff(policy.get("ResponseHeadersPolicyConfig"), None)
    module.exit_json(**result)


def _override():
    return dict(type="bool", default=True)


def main():
    security = dict(
        strict_transport_security=dict(type="dict", options=dict(
            max_age=dict(type="int", required=True), include_subdomains=dict(type="bool", default=False),
            preload=dict(type="bool", default=False), override=_override())),
        content_type_options=dict(type="dict", options=dict(override=_override())),
        frame_options=dict(type="dict", options=dict(
            frame_option=dict(type="str", choices=cfc.FRAME_OPTIONS, required=True), override=_override())),
        referrer_policy=dict(type="dict", options=dict(
            referrer_policy=dict(type="str", choices=cfc.REFERRER_POLICIES, required=True), override=_override())),
        content_security_policy=dict(type="dict", options=dict(
            content_security_policy=dict(type="str", required=True), override=_override())),
        xss_protection=dict(type="dict", options=dict(
            protection=dict(type="bool", required=True), mode_block=dict(type="bool"),
            report_uri=dict(type="str"), override=_override())),
    )
    argument_spec = dict(
        name=dict(type="str", required=True),
        comment=dict(type="str", default=""),
        security_headers=dict(type="dict", default={}, options=security),
        custom_headers=dict(type="list", elements="dict", default=[], options=dict(
            header=dict(type="str", required=True), value=dict(type="str", required=True), override=_override())),
        remove_headers=dict(type="list", elements="str", default=[]),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    if not NAME_RE.match(module.params["name"]):
        module.fail_json(msg=f"Response headers policy name {module.params['name']!r} is not valid: use letters, "
                             "digits, '-' and '_' (at most 128 characters).")
    csp = ((module.params["security_headers"] or {}).get("content_security_policy") or {}).get("content_security_policy")
    if csp is not None and len(csp) > MAX_CSP:
        module.fail_json(msg=f"The content security policy has {len(csp)} characters; CloudFront takes at most {MAX_CSP}.")
    run_by_state(module, "cloudfront", ensure_present, ensure_absent)


if __name__ == "__main__":
    main()
