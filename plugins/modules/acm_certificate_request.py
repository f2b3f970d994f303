#!/usr/bin/python
# Copyright: Pulse infrastructure team
# Apache License 2.0 (see galaxy.yml)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: acm_certificate_request
short_description: Request (or find) a public ACM certificate validated by DNS
version_added: 0.1.0
description:
  - Requests a public certificate from AWS Certificate Manager (ACM) for O(domain_name)
    (and O(subject_alternative_names)) with DNS validation, and returns the DNS records ACM
    asks for, so that a following task can create them (for example with M(amazon.aws.route53)).
  - Idempotent. An existing Amazon-issued certificate for the same names, in status
    C(PENDING_VALIDATION) or C(ISSUED), whose C(Name) tag equals O(name_tag) (when given), is
    reused instead of requesting a new one. When several match, an C(ISSUED) one wins, then the
    newest.
  - With O(wait=true) the module waits, at most O(wait_timeout) seconds, until the certificate
    is C(ISSUED), and fails with advice when it is not.
  - With O(state=absent) the matching certificates are deleted. A certificate still attached
    to a load balancer cannot be deleted; the module then fails and names the users.
  - M(community.aws.acm_certificate) only imports certificates; this module requests them.
author:
  - Pulse infrastructure team (@pulse-infra)
options:
  state:
    description:
      - V(present) requests the certificate when no matching one exists.
      - V(absent) deletes every matching certificate.
    type: str
    choices: [present, absent]
    default: present
  domain_name:
    description:
      - The fully qualified domain name the certificate is for, for example C(api.example.com).
      - Required unless O(state=absent) and O(certificate_arn) is given.
    type: str
  subject_alternative_names:
    description:
      - Additional names the certificate covers. O(domain_name) is always covered.
      - A certificate is only reused when it covers exactly these names.
    type: list
    elements: str
    default: []
  name_tag:
    description:
      - The value of the C(Name) tag that identifies the certificate. It is set on a new
        certificate and, when given, only certificates carrying it are reused or deleted.
    type: str
  certificate_arn:
    description:
      - Use exactly this certificate (to delete it, or to wait for it).
    type: str
  key_algorithm:
    description:
      - Key algorithm of a new certificate.
    type: str
    choices: [RSA_2048, EC_prime256v1, EC_secp384r1]
    default: RSA_2048
  wait:
    description:
      - Wait until the certificate is C(ISSUED). Not done in check mode for a certificate that
        does not exist yet.
    type: bool
    default: false
  wait_timeout:
    description:
      - How many seconds to wait at most for C(ISSUED) (O(wait=true)), and for ACM to publish
        the validation records after a request.
    type: int
    default: 600
notes:
  - Supports check mode. In check mode no certificate is requested, tagged or deleted; when no
    certificate exists yet, RV(certificate_arn) is null and RV(validation_records) empty.
  - Only DNS validation is supported. Create the records of RV(validation_records) in the
    public hosted zone of the domain; ACM issues the certificate once it sees them.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.tags
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Request the API certificate (returns the validation records at once)
  pulse.infra.acm_certificate_request:
    domain_name: api.lab.pulse.example.com
    name_tag: pulse-lab-api
    tags:
      Project: pulse
      Env: lab
  register: cert

- name: Create the validation records
  amazon.aws.route53:
    state: present
    zone: lab.pulse.example.com
    record: "{{ item.name }}"
    type: "{{ item.type }}"
    value: "{{ item.value }}"
    ttl: 300
    overwrite: true
  loop: "{{ cert.validation_records }}"

- name: Wait until ACM has issued it
  pulse.infra.acm_certificate_request:
    domain_name: api.lab.pulse.example.com
    name_tag: pulse-lab-api
    wait: true
    wait_timeout: 900

- name: Delete it (after the load balancer that used it is gone)
  pulse.infra.acm_certificate_request:
    state: absent
    domain_name: api.lab.pulse.example.com
    name_tag: pulse-lab-api
"""

RETURN = r"""
certificate_arn:
  description: ARN of the certificate (null in check mode before it exists; after O(state=absent) the first deleted one).
  returned: always
  type: str
  sample: arn:aws:acm:us-east-2:123456789012:certificate/0f5e3a4b-1c2d-4e5f-8a9b-0c1d2e3f4a5b
status:
  description: ACM status of the certificate (C(PENDING_VALIDATION), C(ISSUED), ...), null when there is none.
  returned: always
  type: str
  sample: ISSUED
validation_records:
  description: The DNS records to create for validation, one per distinct record name.
  returned: always
  type: list
  elements: dict
  contains:
    domain_name:
      description: The name this record validates.
      type: str
      sample: api.lab.pulse.example.com
    name:
      description: Record name (fully qualified, with the trailing dot).
      type: str
      sample: _d930b28be6c5927595552b219965053e.api.lab.pulse.example.com.
    type:
      description: Record type.
      type: str
      sample: CNAME
    value:
      description: Record value.
      type: str
      sample: _c9edd76ee4a0e2a74388032f3861cc50.ykybfrwcxw.acm-validations.aws.
    validation_status:
      description: ACM's validation status for this name.
      type: str
      sample: PENDING_VALIDATION
certificate:
  description: The certificate found, requested or deleted (empty dict when there is none).
  returned: always
  type: dict
  contains:
    arn:
      description: Certificate ARN.
      type: str
    domain_name:
      description: Primary name.
      type: str
    subject_alternative_names:
      description: Every name the certificate covers.
      type: list
      elements: str
    status:
      description: ACM status.
      type: str
    type:
      description: C(AMAZON_ISSUED).
      type: str
    key_algorithm:
      description: Key algorithm.
      type: str
    in_use_by:
      description: ARNs of the load balancers using it.
      type: list
      elements: str
    not_after:
      description: Expiry time.
      type: str
    validation_records:
      description: Same as RV(validation_records).
      type: list
      elements: dict
    tags:
      description: Tags of the certificate.
      type: dict
deleted_arns:
  description: ARNs deleted (or that would be deleted in check mode) with O(state=absent).
  returned: when O(state=absent)
  type: list
  elements: str
"""

import uuid

try:
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import compare_aws_tags

from ansible_collections.pulse.infra.plugins.module_utils import acm_request as acm

ADVICE_PENDING = (
    "ACM issues a DNS-validated certificate once it can resolve the validation CNAME records: "
    "check that every record of validation_records exists in the PUBLIC hosted zone of the domain, "
    "and that the zone is delegated (the NS records at the parent zone or registrar must list the "
    "zone's name servers). Validation usually takes a few minutes; raise wait_timeout or re-run later."
)


def _result(cert=None, tags=None, changed=False, **extra):
    if cert is None:
        summary = {}
        arn = status = None
        records = []
    else:
        summary = acm.summarize(cert, tags or {})
        arn, status, records = summary["arn"], summary["status"], summary["validation_records"]
    return dict(changed=changed, certificate=summary, certificate_arn=arn, status=status,
                validation_records=records, **extra)


def ensure_absent(module, client):
    params = module.params
    matches = acm.find_certificates(
        client,
        domain_name=params["domain_name"],
        name_tag=params["name_tag"],
        arn=params["certificate_arn"],
    )
    deleted = []
    for cert, _tags in matches:
        arn = cert["CertificateArn"]
        deleted.append(arn)
        if module.check_mode:
            continue
        try:
            acm.delete_certificate(client, arn)
        except is_boto3_error_code("ResourceNotFoundException"):
            continue
        except is_boto3_error_code("ResourceInUseException") as e:  # pylint: disable=duplicate-except
            module.fail_json_aws(
                e,
                msg=(
                    f"Certificate {arn} is still in use by {cert.get('InUseBy') or 'a load balancer'}: "
                    "delete the HTTPS listener or load balancer that uses it first, then run again."
                ),
            )
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
            module.fail_json_aws(e, msg=f"Failed to delete certificate {arn}")
    first = matches[0] if matches else (None, None)
    result = _result(first[0], first[1], changed=bool(deleted), deleted_arns=deleted)
    module.exit_json(**result)


def ensure_tags(module, client, cert, tags):
    """Bring the certificate's tags to the wanted ones; returns (changed, tags)."""
    wanted = dict(module.params["tags"] or {})
    if module.params["name_tag"] is not None:
        wanted["Name"] = module.params["name_tag"]
    if module.params["tags"] is None and module.params["name_tag"] is None:
        return False, tags
    # Without tags, only the Name tag is managed: never purge then.
    purge = module.params["purge_tags"] and module.params["tags"] is not None
    to_add, to_remove = compare_aws_tags(tags, wanted, purge_tags=purge)
    if not (to_add or to_remove):
        return False, tags
    new_tags = {k: v for k, v in tags.items() if k not in to_remove}
    new_tags.update(to_add)
    if not module.check_mode:
        arn = cert["CertificateArn"]
        try:
            if to_remove:
                acm.remove_tags(client, arn, to_remove)
            if to_add:
                acm.add_tags(client, arn, to_add)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            module.fail_json_aws(e, msg=f"Failed to update the tags of certificate {arn}")
    return True, new_tags


def ensure_present(module, client):
    params = module.params
    domain, sans = params["domain_name"], params["subject_alternative_names"]
    if params["certificate_arn"]:
        matches = acm.find_certificates(client, arn=params["certificate_arn"])
        if not matches:
            module.fail_json(msg=f"Certificate {params['certificate_arn']} does not exist in this region.")
        selected = matches[0]
    else:
        matches = acm.find_certificates(
            client, domain_name=domain, name_tag=params["name_tag"], statuses=acm.USABLE_STATUSES
        )
        selected = acm.select_certificate(matches, domain, sans)

    changed = False
    if selected is None:
        if module.check_mode:
            module.exit_json(**_result(changed=True, msg=f"Would request a certificate for {domain}."))
        tags = dict(params["tags"] or {})
        if params["name_tag"] is not None:
            tags["Name"] = params["name_tag"]
        extra_sans = [n for n in acm.wanted_names(domain, sans) if n != domain.lower().rstrip(".")]
        try:
            arn = acm.request_certificate(
                client, domain, extra_sans, tags,
                params["key_algorithm"], uuid.uuid4().hex,
            )
        except is_boto3_error_code("LimitExceededException") as e:
            module.fail_json_aws(
                e, msg="ACM refused the request: the account's certificate quota is reached. Delete unused "
                       "certificates or ask AWS for a higher ACM quota."
            )
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
            module.fail_json_aws(e, msg=f"Failed to request a certificate for {domain}")
        changed = True
        # ACM publishes the validation records a few seconds after the request.
        cert, ok = acm.wait_for(client, arn, acm.records_complete, timeout=min(params["wait_timeout"], 120), sleep=2)
        if not ok:
            module.fail_json(
                msg=(
                    f"Requested certificate {arn} for {domain}, but ACM did not publish its DNS "
                    "validation records in time. Run the task again: the certificate is reused."
                ),
                **_result(cert, tags, changed=True),
            )
        selected = (cert, tags)
    else:
        cert, tags = selected
        tag_changed, tags = ensure_tags(module, client, cert, tags)
        changed = changed or tag_changed
        selected = (cert, tags)

    cert, tags = selected
    if params["wait"] and cert.get("Status") != "ISSUED":
        cert, ok = acm.wait_for(
            client, cert["CertificateArn"], lambda c: c.get("Status") == "ISSUED", timeout=params["wait_timeout"]
        )
        if not ok:
            module.fail_json(
                msg=(
                    f"Certificate {cert['CertificateArn']} for {domain} is {cert.get('Status')} after "
                    f"waiting {params['wait_timeout']} s, not ISSUED. {ADVICE_PENDING}"
                ),
                **_result(cert, tags, changed=changed),
            )
    module.exit_json(**_result(cert, tags, changed=changed))


def main():
    argument_spec = dict(
        state=dict(type="str", choices=["present", "absent"], default="present"),
        domain_name=dict(type="str"),
        subject_alternative_names=dict(type="list", elements="str", default=[]),
        name_tag=dict(type="str"),
        certificate_arn=dict(type="str"),
        key_algorithm=dict(type="str", choices=["RSA_2048", "EC_prime256v1", "EC_secp384r1"], default="RSA_2048"),
        tags=dict(type="dict", aliases=["resource_tags"]),
        purge_tags=dict(type="bool", default=True),
        wait=dict(type="bool", default=False),
        wait_timeout=dict(type="int", default=600),
    )
    module = AnsibleAWSModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_if=[("state", "present", ["domain_name"])],
        required_one_of=[("domain_name", "certificate_arn")],
    )
    if module.params["wait_timeout"] < 0:
        module.fail_json(msg="wait_timeout must be 0 or more seconds.")
    client = module.client("acm")
    try:
        if module.params["state"] == "absent":
            ensure_absent(module, client)
        else:
            ensure_present(module, client)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        module.fail_json_aws(e, msg="ACM call failed")


if __name__ == "__main__":
    main()
