# Copyright: Pulse infrastructure team
# Apache License 2.0 (see galaxy.yml)
"""CloudWatch dashboard helpers for pulse.infra.cloudwatch_dashboard: every boto3 call retried.

Kept apart from the module so that the comparison logic can be unit tested with a plain boto3
client (moto).
"""

from __future__ import annotations

import json
import re

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

# CloudWatch answers a missing dashboard with ResourceNotFound (DashboardNotFoundError in the
# API reference); both codes are accepted.
NOT_FOUND_CODES = ["ResourceNotFound", "DashboardNotFoundError", "ResourceNotFoundException"]
# Dashboard names: letters, digits, "-" and "_", at most 255 characters.
NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
# The API limit of a dashboard body.
MAX_BODY_BYTES = 1024 * 1024

_retry = AWSRetry.jittered_backoff(retries=10, delay=3, max_delay=30, catch_extra_error_codes=["Throttling"])


def parse_body(body):
    """The body as Python data: a dict/list is taken as is, a string is parsed as JSON.

    Raises ValueError with a readable message when it is not a JSON object with "widgets".
    """
    if isinstance(body, (bytes, bytearray)):
        body = body.decode("utf-8")
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError as e:
            raise ValueError(f"body is not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object (a dict with a 'widgets' list)")
    if not isinstance(body.get("widgets"), list):
        raise ValueError("body must have a 'widgets' list (see the CloudWatch dashboard body structure)")
    return body


def dump_body(body):
    """The body as CloudWatch stores it: compact JSON with stable key order."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def same_body(current, wanted):
    """True when two bodies are the same JSON document (whitespace and key order do not count)."""
    try:
        return parse_body(current) == parse_body(wanted)
    except ValueError:
        return False


@_retry
def get_dashboard(client, name):
    """The dashboard as GetDashboard returns it, or None when it does not exist."""
    try:
        return client.get_dashboard(DashboardName=name)
    except is_boto3_error_code(NOT_FOUND_CODES):
        return None


@_retry
def put_dashboard(client, name, body):
    """Creates or replaces the dashboard; returns CloudWatch's validation messages."""
    answer = client.put_dashboard(DashboardName=name, DashboardBody=dump_body(body))
    return answer.get("DashboardValidationMessages") or []


@_retry
def delete_dashboard(client, name):
    """Deletes the dashboard; returns False when it did not exist."""
    try:
        client.delete_dashboards(DashboardNames=[name])
    except is_boto3_error_code(NOT_FOUND_CODES):
        return False
    return True


def widget_metrics(body):
    """Every metric named in the body's metric widgets, as (namespace, metric name, dimensions dict).

    Follows CloudWatch's shorthand: "." repeats the value at the same position of the previous
    metric array; a trailing dict holds rendering options (label, stat...). Expressions
    ({"expression": ...}) are skipped.
    """
    found = []
    for widget in parse_body(body)["widgets"]:
        if widget.get("type") != "metric":
            continue
        previous = []
        for entry in widget.get("properties", {}).get("metrics", []):
            items = [e for e in entry if not isinstance(e, dict)]
            if not items:
                continue
            items = [previous[i] if item == "." and i < len(previous) else item for i, item in enumerate(items)]
            previous = items
            namespace, metric, rest = items[0], items[1], items[2:]
            found.append((namespace, metric, dict(zip(rest[0::2], rest[1::2]))))
    return found
