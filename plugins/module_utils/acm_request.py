# Copyright: Pulse infrastructure team
# Apache License 2.0 (see galaxy.yml)
"""ACM helpers for pulse.infra.acm_certificate_request: every boto3 call retried with backoff.

Kept apart from the module so that the search/selection logic can be unit tested with a
plain boto3 client (moto or botocore's Stubber).
"""

from __future__ import annotations

import time

from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.tagging import ansible_dict_to_boto3_tag_list
from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict

# Statuses a certificate can still become or be usable from.
USABLE_STATUSES = ["PENDING_VALIDATION", "ISSUED"]
# Statuses that end a wait with a failure.
FAILED_STATUSES = ["FAILED", "VALIDATION_TIMED_OUT", "REVOKED", "EXPIRED", "INACTIVE"]

# ACM throttles with ThrottlingException, which AWSRetry does not retry by default.
_retry = AWSRetry.jittered_backoff(
    retries=10, delay=3, max_delay=30, catch_extra_error_codes=["ThrottlingException", "RequestInProgressException"]
)


@_retry
def list_certificates(client, statuses=None):
    """Summaries of the certificates of the account/region (all pages)."""
    params = {}
    if statuses:
        params["CertificateStatuses"] = list(statuses)
    paginator = client.get_paginator("list_certificates")
    return paginator.paginate(**params).build_full_result().get("CertificateSummaryList", [])


@_retry
def describe_certificate(client, arn):
    return client.describe_certificate(CertificateArn=arn)["Certificate"]


@_retry
def list_tags(client, arn):
    return boto3_tag_list_to_ansible_dict(client.list_tags_for_certificate(CertificateArn=arn).get("Tags", []))


@_retry
def request_certificate(client, domain_name, subject_alternative_names, tags, key_algorithm, idempotency_token):
    params = dict(
        DomainName=domain_name,
        ValidationMethod="DNS",
        IdempotencyToken=idempotency_token,
        KeyAlgorithm=key_algorithm,
    )
    if subject_alternative_names:
        params["SubjectAlternativeNames"] = list(subject_alternative_names)
    if tags:
        params["Tags"] = ansible_dict_to_boto3_tag_list(tags)
    return client.request_certificate(**params)["CertificateArn"]


@_retry
def add_tags(client, arn, tags):
    client.add_tags_to_certificate(CertificateArn=arn, Tags=ansible_dict_to_boto3_tag_list(tags))


@_retry
def remove_tags(client, arn, keys):
    client.remove_tags_from_certificate(CertificateArn=arn, Tags=[{"Key": k} for k in keys])


@_retry
def delete_certificate(client, arn):
    client.delete_certificate(CertificateArn=arn)


def wanted_names(domain_name, subject_alternative_names):
    """The full set of names a certificate must cover (the domain is always one of them)."""
    return sorted({n.lower().rstrip(".") for n in [domain_name, *(subject_alternative_names or [])]})


def certificate_names(cert):
    names = [cert.get("DomainName", "")] + list(cert.get("SubjectAlternativeNames") or [])
    return sorted({n.lower().rstrip(".") for n in names if n})


def find_certificates(client, domain_name=None, name_tag=None, statuses=None, arn=None):
    """Amazon-issued certificates matching arn, or domain_name (and the Name tag when given).

    Returns a list of (certificate, tags), ISSUED first then newest first.
    Imported and private certificates are never matched: this module only requests public ones.
    """
    if arn:
        try:
            cert = describe_certificate(client, arn)
        except client.exceptions.ResourceNotFoundException:
            return []
        return [(cert, list_tags(client, arn))]
    found = []
    wanted_domain = (domain_name or "").lower().rstrip(".")
    for summary in list_certificates(client, statuses):
        if wanted_domain and summary.get("DomainName", "").lower().rstrip(".") != wanted_domain:
            continue
        try:
            cert = describe_certificate(client, summary["CertificateArn"])
        except client.exceptions.ResourceNotFoundException:
            continue  # deleted between list and describe
        if cert.get("Type") != "AMAZON_ISSUED":
            continue
        tags = list_tags(client, cert["CertificateArn"])
        if name_tag is not None and tags.get("Name") != name_tag:
            continue
        found.append((cert, tags))
    found.sort(key=lambda ct: (ct[0].get("Status") != "ISSUED", -_epoch(ct[0].get("CreatedAt"))))
    return found


def _epoch(value):
    if value is None:
        return 0
    if hasattr(value, "timestamp"):
        return value.timestamp()
    return float(value)


def select_certificate(matches, domain_name, subject_alternative_names):
    """The first usable match covering exactly the wanted names, or None."""
    wanted = wanted_names(domain_name, subject_alternative_names)
    for cert, tags in matches:
        if cert.get("Status") in USABLE_STATUSES and certificate_names(cert) == wanted:
            return cert, tags
    return None


def validation_records(cert):
    """The DNS records ACM asks for, one per distinct record name."""
    records, seen = [], set()
    for option in cert.get("DomainValidationOptions") or []:
        record = option.get("ResourceRecord")
        if not record:
            continue
        key = (record["Name"], record["Type"])
        if key in seen:
            continue
        seen.add(key)
        records.append(
            dict(
                domain_name=option.get("DomainName"),
                name=record["Name"],
                type=record["Type"],
                value=record["Value"],
                validation_status=option.get("ValidationStatus"),
            )
        )
    return records


def records_complete(cert):
    """True when ACM has published a validation record for every name (DNS validation)."""
    options = cert.get("DomainValidationOptions") or []
    return bool(options) and all(o.get("ResourceRecord") for o in options)


def wait_for(client, arn, predicate, timeout, sleep=5, clock=time.monotonic, pause=time.sleep):
    """Describe arn until predicate(cert) is true or timeout seconds pass; returns (cert, ok)."""
    deadline = clock() + timeout
    cert = describe_certificate(client, arn)
    while not predicate(cert):
        if cert.get("Status") in FAILED_STATUSES or clock() >= deadline:
            return cert, False
        pause(min(sleep, max(0.0, deadline - clock())) or 0.1)
        cert = describe_certificate(client, arn)
    return cert, True


def summarize(cert, tags):
    """The certificate as the module returns it (snake_case)."""
    return dict(
        arn=cert.get("CertificateArn"),
        domain_name=cert.get("DomainName"),
        subject_alternative_names=list(cert.get("SubjectAlternativeNames") or []),
        status=cert.get("Status"),
        type=cert.get("Type"),
        key_algorithm=cert.get("KeyAlgorithm"),
        in_use_by=list(cert.get("InUseBy") or []),
        not_after=str(cert["NotAfter"]) if cert.get("NotAfter") is not None else None,
        validation_records=validation_records(cert),
        tags=tags,
    )
