#!/usr/bin/python
# Copyright: Pulse infrastructure team
# Apache License 2.0 (see galaxy.yml)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: iam_openid_connect_provider
short_description: Manage an IAM OpenID Connect (OIDC) identity provider
version_added: 0.1.0
description:
  - Creates, updates or deletes an IAM OpenID Connect identity provider, for example the one
    GitHub Actions uses (C(https://token.actions.githubusercontent.com), audience
    C(sts.amazonaws.com)), so that IAM roles can trust tokens it issues
    (C(sts:AssumeRoleWithWebIdentity)) instead of long-lived access keys.
  - The provider is identified by its O(url) (IAM allows one provider per URL in an account).
    An existing provider for the URL is adopted and brought to the wanted client IDs
    (audiences), thumbprints and tags.
  - Idempotent. Audiences are added and removed one by one
    (C(AddClientIDToOpenIDConnectProvider), C(RemoveClientIDFromOpenIDConnectProvider)),
    thumbprints replaced as a whole, tags added and removed.
  - With O(state=absent) the provider is deleted, unless an IAM role still trusts it
    (its trust policy names the provider as C(Federated) principal) and O(force=false);
    it is then kept, the module reports no change, warns and names the roles in RV(trusted_by).
  - Neither M(amazon.aws.iam_role) nor any other amazon.aws or community.aws module manages
    OIDC providers.
author:
  - Pulse infrastructure team (@pulse-infra)
options:
  state:
    description:
      - V(present) creates or updates the provider.
      - V(absent) deletes it (see O(force)).
    type: str
    choices: [present, absent]
    default: present
  url:
    description:
      - The issuer URL of the identity provider, starting with C(https://), for example
        C(https://token.actions.githubusercontent.com).
      - Compared without the scheme and a trailing slash, host case-insensitively, as IAM does.
    type: str
    required: true
  client_id_list:
    description:
      - The client IDs (audiences, the token's C(aud) claim) the provider accepts. For
        C(aws-actions/configure-aws-credentials) this is C(sts.amazonaws.com).
      - When not given, the audiences of an existing provider are left as they are, and a new
        provider gets none.
    type: list
    elements: str
    aliases: [audiences]
  purge_client_ids:
    description:
      - Remove the audiences of an existing provider that are not in O(client_id_list).
      - Set to V(false) to only add audiences to a provider that others use too.
    type: bool
    default: true
  thumbprint_list:
    description:
      - SHA-1 thumbprints (40 hexadecimal characters) of the provider's certificate chain
        (the top intermediate CA).
      - When given, the provider's thumbprints are exactly these. When not given, an existing
        provider's thumbprints are left as they are, and IAM picks them for a new provider.
      - For providers with certificates from a trusted root CA, GitHub's among them, AWS no longer
        uses the thumbprints to verify tokens; IAM still stores them.
    type: list
    elements: str
  force:
    description:
      - With O(state=absent), delete the provider even when IAM roles still trust it (their
        trust policies then no longer match any provider).
    type: bool
    default: false
notes:
  - Supports check mode and diff mode. In check mode nothing is created, changed or deleted;
    RV(open_id_connect_provider) shows the provider as it would be.
  - IAM is global; O(region) is only used to reach the IAM endpoint.
  - Needs C(iam:ListOpenIDConnectProviders), C(iam:GetOpenIDConnectProvider), and for changes
    C(iam:CreateOpenIDConnectProvider), C(iam:AddClientIDToOpenIDConnectProvider),
    C(iam:RemoveClientIDFromOpenIDConnectProvider),
    C(iam:UpdateOpenIDConnectProviderThumbprint), C(iam:TagOpenIDConnectProvider),
    C(iam:UntagOpenIDConnectProvider), C(iam:DeleteOpenIDConnectProvider); with
    O(state=absent) and O(force=false) also C(iam:ListRoles).
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.tags
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: GitHub Actions may exchange its OIDC tokens for AWS credentials
  pulse.infra.iam_openid_connect_provider:
    url: https://token.actions.githubusercontent.com
    client_id_list:
      - sts.amazonaws.com
    tags:
      Project: pulse
      ManagedBy: pulse.infra.ci_access
  register: github_oidc

- name: Add an audience to a provider other teams use too, removing nothing
  pulse.infra.iam_openid_connect_provider:
    url: https://token.actions.githubusercontent.com
    client_id_list: [sts.amazonaws.com]
    purge_client_ids: false
    tags:
      ManagedBy: pulse.infra.ci_access
    purge_tags: false

- name: Remove the provider unless a role still trusts it
  pulse.infra.iam_openid_connect_provider:
    url: https://token.actions.githubusercontent.com
    state: absent
  register: removed

- name: Say when it was kept
  ansible.builtin.debug:
    msg: "Kept: still trusted by {{ removed.trusted_by | join(', ') }}"
  when: removed.trusted_by | length > 0
"""

RETURN = r"""
arn:
  description: ARN of the provider (null in check mode before it exists, and after O(state=absent) when there was none).
  returned: always
  type: str
  sample: arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com
open_id_connect_provider:
  description: The provider as it is (or, in check mode, would be) after the task; empty dict when there is none.
  returned: always
  type: dict
  contains:
    arn:
      description: ARN of the provider.
      type: str
    url:
      description: The URL as IAM stores it (without the scheme).
      type: str
      sample: token.actions.githubusercontent.com
    client_id_list:
      description: The audiences, sorted.
      type: list
      elements: str
      sample: [sts.amazonaws.com]
    thumbprint_list:
      description: The thumbprints, lower case, sorted.
      type: list
      elements: str
    create_date:
      description: When the provider was created (ISO 8601).
      type: str
    tags:
      description: Tags of the provider.
      type: dict
trusted_by:
  description: With O(state=absent), the IAM roles whose trust policy names the provider (it is kept when this is not empty, unless O(force=true)).
  returned: when O(state=absent)
  type: list
  elements: str
  sample: [pulse-production-ci-deploy]
deleted:
  description: Whether the provider was (or, in check mode, would be) deleted.
  returned: when O(state=absent)
  type: bool
"""

try:
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import compare_aws_tags

from ansible_collections.pulse.infra.plugins.module_utils import iam_oidc
from ansible_collections.pulse.infra.plugins.module_utils.aws_module import run_by_state

ADVICE_DENIED = (
    "The caller may not manage IAM OIDC providers: it needs iam:ListOpenIDConnectProviders, "
    "iam:GetOpenIDConnectProvider, iam:CreateOpenIDConnectProvider, iam:AddClientIDToOpenIDConnectProvider, "
    "iam:RemoveClientIDFromOpenIDConnectProvider, iam:UpdateOpenIDConnectProviderThumbprint, "
    "iam:TagOpenIDConnectProvider, iam:UntagOpenIDConnectProvider and iam:DeleteOpenIDConnectProvider "
    "(and iam:ListRoles for state=absent). Run with an administrator's credentials (AWS_PROFILE)."
)


def _fail(module, error, msg):
    if _is_code(error, ("AccessDenied", "AccessDeniedException")):
        module.fail_json_aws(error, msg=f"{msg}. {ADVICE_DENIED}")
    module.fail_json_aws(error, msg=msg)


def _is_code(error, codes):
    response = getattr(error, "response", None) or {}
    return response.get("Error", {}).get("Code") in codes


def _validate(module):
    params = module.params
    url = params["url"].strip()
    if not url.lower().startswith("https://") or not iam_oidc.provider_key(url):
        module.fail_json(msg=f"url must be the provider's issuer URL starting with https://, got {url!r}.")
    for thumbprint in params["thumbprint_list"] or []:
        if not iam_oidc.THUMBPRINT_RE.match(thumbprint):
            module.fail_json(
                msg=(f"thumbprint_list: {thumbprint!r} is not a SHA-1 thumbprint (40 hexadecimal characters). "
                     "Omit thumbprint_list to let IAM pick the thumbprints.")
            )
    for client_id in params["client_id_list"] or []:
        if not 1 <= len(client_id) <= 255:
            module.fail_json(msg=f"client_id_list: {client_id!r} must be 1 to 255 characters long.")


def _find(module, client):
    """(arn, raw description) of the provider of the option url, or (None, None)."""
    url = module.params["url"]
    try:
        return iam_oidc.find_provider(client, url)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        _fail(module, e, f"Failed to look up the OIDC provider for {url}")


def ensure_absent(module, client):
    arn, raw = _find(module, client)
    if arn is None:
        module.exit_json(changed=False, arn=None, open_id_connect_provider={}, trusted_by=[], deleted=False)
    before = iam_oidc.summarize(arn, raw)
    try:
        trusted_by = iam_oidc.roles_trusting(client, arn)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        _fail(module, e, f"Failed to list the IAM roles that trust {arn}")
    if trusted_by and not module.params["force"]:
        module.warn(
            f"Kept the OIDC provider {arn}: the IAM roles {', '.join(trusted_by)} still trust it. "
            "Remove them first, or delete it anyway with force=true."
        )
        module.exit_json(changed=False, arn=arn, open_id_connect_provider=before, trusted_by=trusted_by, deleted=False)
    if not module.check_mode:
        try:
            iam_oidc.delete_provider(client, arn)
        except is_boto3_error_code("NoSuchEntity"):
            pass
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
            _fail(module, e, f"Failed to delete the OIDC provider {arn}")
    result = dict(changed=True, arn=arn, open_id_connect_provider={}, trusted_by=trusted_by, deleted=True)
    if module._diff:
        result["diff"] = dict(before=before, after={})
    module.exit_json(**result)


def _wanted_tags(module, current):
    """(to_add, to_remove) tags; nothing when tags is not given."""
    if module.params["tags"] is None:
        return {}, []
    return compare_aws_tags(current, module.params["tags"], purge_tags=module.params["purge_tags"])


def create(module, client):
    params = module.params
    client_ids = list(dict.fromkeys(params["client_id_list"] or []))
    thumbprints = [t.lower() for t in dict.fromkeys(params["thumbprint_list"] or [])]
    tags = params["tags"] or {}
    planned = dict(
        arn=None,
        url=iam_oidc.provider_key(params["url"]),
        client_id_list=sorted(client_ids),
        thumbprint_list=sorted(thumbprints),
        create_date=None,
        tags=dict(tags),
    )
    result = dict(changed=True)
    if module._diff:
        result["diff"] = dict(before={}, after=planned)
    if module.check_mode:
        module.exit_json(arn=None, open_id_connect_provider=planned, **result)
    try:
        arn = iam_oidc.create_provider(client, params["url"].strip(), client_ids, thumbprints, tags)
    except is_boto3_error_code("LimitExceeded") as e:
        module.fail_json_aws(
            e, msg="IAM refused to create the OIDC provider: the account's quota of OIDC providers (100) is reached. "
                   "Delete unused providers (aws iam list-open-id-connect-providers) and run again."
        )
    except is_boto3_error_code("EntityAlreadyExists") as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(
            e, msg=f"An OIDC provider for {params['url']} was created meanwhile (another run?). Run the task again: "
                   "it adopts the existing provider."
        )
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
        _fail(module, e, f"Failed to create the OIDC provider for {params['url']}")
    try:
        raw = iam_oidc.get_provider(client, arn)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        _fail(module, e, f"Created the OIDC provider {arn} but could not read it back")
    module.exit_json(arn=arn, open_id_connect_provider=iam_oidc.summarize(arn, raw), **result)


def update(module, client, arn, raw):
    params = module.params
    before = iam_oidc.summarize(arn, raw)
    after = dict(before)
    changes = []  # (description, callable)

    if params["client_id_list"] is not None:
        to_add, to_remove = iam_oidc.client_id_changes(raw.get("ClientIDList"), params["client_id_list"],
                                                       params["purge_client_ids"])
        for client_id in to_add:
            changes.append((f"add audience {client_id}", lambda c=client_id: iam_oidc.add_client_id(client, arn, c)))
        for client_id in to_remove:
            changes.append((f"remove audience {client_id}",
                            lambda c=client_id: iam_oidc.remove_client_id(client, arn, c)))
        after["client_id_list"] = sorted((set(before["client_id_list"]) - set(to_remove)) | set(to_add))

    if params["thumbprint_list"] is not None and iam_oidc.thumbprints_differ(raw.get("ThumbprintList"),
                                                                             params["thumbprint_list"]):
        wanted = sorted({t.lower() for t in params["thumbprint_list"]})
        changes.append(("replace thumbprints", lambda: iam_oidc.update_thumbprints(client, arn, wanted)))
        after["thumbprint_list"] = wanted

    tags_to_add, tags_to_remove = _wanted_tags(module, before["tags"])
    if tags_to_remove:
        changes.append(("remove tags", lambda: iam_oidc.untag_provider(client, arn, tags_to_remove)))
    if tags_to_add:
        changes.append(("add tags", lambda: iam_oidc.tag_provider(client, arn, tags_to_add)))
    if tags_to_add or tags_to_remove:
        after["tags"] = {k: v for k, v in before["tags"].items() if k not in tags_to_remove}
        after["tags"].update(tags_to_add)

    result = dict(changed=bool(changes), arn=arn)
    if module._diff and changes:
        result["diff"] = dict(before=before, after=after)
    if not changes or module.check_mode:
        module.exit_json(open_id_connect_provider=after, **result)
    for description, call in changes:
        try:
            call()
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            _fail(module, e, f"Failed to {description} of the OIDC provider {arn}")
    try:
        raw = iam_oidc.get_provider(client, arn)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        _fail(module, e, f"Updated the OIDC provider {arn} but could not read it back")
    module.exit_json(open_id_connect_provider=iam_oidc.summarize(arn, raw), **result)


def ensure_present(module, client):
    arn, raw = _find(module, client)
    if arn is None:
        create(module, client)
    update(module, client, arn, raw)


def main():
    argument_spec = dict(
        state=dict(type="str", choices=["present", "absent"], default="present"),
        url=dict(type="str", required=True),
        client_id_list=dict(type="list", elements="str", aliases=["audiences"]),
        purge_client_ids=dict(type="bool", default=True),
        thumbprint_list=dict(type="list", elements="str"),
        force=dict(type="bool", default=False),
        tags=dict(type="dict", aliases=["resource_tags"]),
        purge_tags=dict(type="bool", default=True),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    _validate(module)
    run_by_state(module, "iam", ensure_present, ensure_absent)


if __name__ == "__main__":
    main()
