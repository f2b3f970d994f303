# Copyright: Pulse infrastructure team
# Apache License 2.0 (see galaxy.yml)
"""IAM OpenID Connect provider helpers for pulse.infra.iam_openid_connect_provider.

Every boto3 call is retried with backoff. Kept apart from the module so that the comparison
logic can be unit tested with a plain boto3 client (moto or botocore's Stubber).
"""

from __future__ import annotations

import json
import re
from urllib.parse import unquote

from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.tagging import ansible_dict_to_boto3_tag_list
from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict

# IAM throttles with Throttling; AWSRetry retries it. A provider that was just created can
# answer NoSuchEntity for a moment (IAM is eventually consistent): retried for reads only.
_retry = AWSRetry.jittered_backoff(retries=10, delay=2, max_delay=30)
_retry_read = AWSRetry.jittered_backoff(retries=10, delay=2, max_delay=30, catch_extra_error_codes=["NoSuchEntity"])

THUMBPRINT_RE = re.compile(r"^[0-9a-fA-F]{40}$")


def provider_key(url):
    """The provider's identity in IAM: the URL without scheme and trailing slash.

    IAM names the provider arn:<partition>:iam::<account>:oidc-provider/<host>[/<path>] and
    compares URLs case-insensitively in the host part.
    """
    value = (url or "").strip()
    value = re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", "", value).rstrip("/")
    host, _sep, path = value.partition("/")
    return host.lower() + (("/" + path) if path else "")


def arn_key(arn):
    """The provider key of an ARN (the part after oidc-provider/)."""
    return provider_key(arn.split(":oidc-provider/", 1)[1]) if ":oidc-provider/" in arn else None


@_retry
def list_provider_arns(client):
    return [p["Arn"] for p in client.list_open_id_connect_providers().get("OpenIDConnectProviderList", [])]


@_retry_read
def get_provider(client, arn):
    return client.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)


def find_provider(client, url):
    """(arn, raw description) of the provider for url, or (None, None)."""
    key = provider_key(url)
    for arn in list_provider_arns(client):
        if arn_key(arn) == key:
            return arn, get_provider(client, arn)
    return None, None


@_retry
def create_provider(client, url, client_ids, thumbprints, tags):
    params = dict(Url=url, ClientIDList=list(client_ids or []))
    if thumbprints:
        params["ThumbprintList"] = list(thumbprints)
    if tags:
        params["Tags"] = ansible_dict_to_boto3_tag_list(tags)
    return client.create_open_id_connect_provider(**params)["OpenIDConnectProviderArn"]


@_retry
def add_client_id(client, arn, client_id):
    client.add_client_id_to_open_id_connect_provider(OpenIDConnectProviderArn=arn, ClientID=client_id)


@_retry
def remove_client_id(client, arn, client_id):
    client.remove_client_id_from_open_id_connect_provider(OpenIDConnectProviderArn=arn, ClientID=client_id)


@_retry
def update_thumbprints(client, arn, thumbprints):
    client.update_open_id_connect_provider_thumbprint(OpenIDConnectProviderArn=arn, ThumbprintList=list(thumbprints))


@_retry
def tag_provider(client, arn, tags):
    client.tag_open_id_connect_provider(OpenIDConnectProviderArn=arn, Tags=ansible_dict_to_boto3_tag_list(tags))


@_retry
def untag_provider(client, arn, keys):
    client.untag_open_id_connect_provider(OpenIDConnectProviderArn=arn, TagKeys=list(keys))


@_retry
def delete_provider(client, arn):
    client.delete_open_id_connect_provider(OpenIDConnectProviderArn=arn)


@_retry
def list_roles(client):
    return client.get_paginator("list_roles").paginate().build_full_result().get("Roles", [])


def policy_document(document):
    """A policy document as a dict (IAM returns it URL-encoded; boto3 usually decodes it)."""
    if isinstance(document, dict):
        return document
    if not document:
        return {}
    text = document
    if text.lstrip().startswith("%") or "%22" in text or "%7B" in text:
        text = unquote(text)
    return json.loads(text)


def _as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def trusts(document, provider_arn):
    """True when a trust policy lets principals federated by provider_arn assume the role."""
    for statement in _as_list(policy_document(document).get("Statement")):
        if statement.get("Effect") != "Allow":
            continue
        principal = statement.get("Principal") or {}
        if isinstance(principal, dict) and provider_arn in _as_list(principal.get("Federated")):
            return True
    return False


def roles_trusting(client, provider_arn):
    """Names of the IAM roles whose trust policy names the provider."""
    return sorted(r["RoleName"] for r in list_roles(client) if trusts(r.get("AssumeRolePolicyDocument"), provider_arn))


def summarize(arn, raw):
    """The provider as the module returns it (snake_case)."""
    if not raw:
        return {}
    created = raw.get("CreateDate")
    return dict(
        arn=arn,
        url=raw.get("Url"),
        client_id_list=sorted(raw.get("ClientIDList") or []),
        thumbprint_list=sorted(t.lower() for t in raw.get("ThumbprintList") or []),
        create_date=created.isoformat() if hasattr(created, "isoformat") else created,
        tags=boto3_tag_list_to_ansible_dict(raw.get("Tags") or []),
    )


def client_id_changes(current, wanted, purge):
    """(to_add, to_remove) client ids, keeping the wanted order for additions."""
    current = list(current or [])
    to_add = [c for c in dict.fromkeys(wanted or []) if c not in current]
    to_remove = [c for c in current if c not in (wanted or [])] if purge else []
    return to_add, to_remove


def thumbprints_differ(current, wanted):
    return sorted(t.lower() for t in current or []) != sorted({t.lower() for t in wanted or []})
