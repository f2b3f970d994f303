# Copyright: Pulse infrastructure team
# Apache License 2.0 (see galaxy.yml)
"""What pulse.infra's AnsibleAWSModule modules share: the botocore errors they catch, the diff
they show in diff mode, and ensure_present / ensure_absent run by the option state."""

from __future__ import annotations

try:
    from botocore.exceptions import BotoCoreError, ClientError

    BOTO_ERRORS = (ClientError, BotoCoreError)
except ImportError:
    BOTO_ERRORS = ()  # AnsibleAWSModule fails with advice when botocore is missing


def diff(before, after, what):
    """A result's diff: the texts before and after, headed "<what> (current)" and "<what> (wanted)"."""
    return dict(before=before, after=after, before_header=f"{what} (current)", after_header=f"{what} (wanted)")


def run_by_state(module, service, ensure_present, ensure_absent):
    """ensure_absent(module, client) when the option state is absent, else ensure_present(module, client);
    client is the module's boto3 client of service."""
    client = module.client(service)
    if module.params["state"] == "absent":
        ensure_absent(module, client)
    else:
        ensure_present(module, client)
