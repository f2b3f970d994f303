# Copyright: Pulse infrastructure team
# Apache License 2.0 (see galaxy.yml)
"""The SSH door to the instances, rendered once for every inventory (lab and production).

The filter's ansible-doc documentation is its sidecar file plugins/filter/ssh_common_args.yml.
"""

from __future__ import annotations

import re
import shlex

from ansible.errors import AnsibleFilterError

DOORS = ("ssm", "direct")
HOST_KEY_CHECKING = ("yes", "accept-new")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]$")
_SAFE = re.compile(r"^[A-Za-z0-9_.@:/~+-]*$")


def _safe(name, value):
    if not _SAFE.match(value or ""):
        raise AnsibleFilterError(f"ssh_common_args: {name}={value!r} has characters a shell would interpret")
    return value


def ssm_proxy_command(region, profile=""):
    """The ProxyCommand of AWS's documented 'SSH through Session Manager' setup."""
    if not _REGION.match(region or ""):
        raise AnsibleFilterError(f"ssh_common_args: via=ssm needs an AWS region, got {region!r}")
    cmd = ["aws", "ssm", "start-session", "--target", "%h", "--document-name", "AWS-StartSSHSession",
           "--parameters", "portNumber=%p", "--region", region]
    if profile:
        cmd += ["--profile", _safe("profile", profile)]
    return " ".join(cmd)


def ssh_common_args(via, known_hosts, region="", host_key_checking="accept-new", profile="", bastion=""):
    """ansible_ssh_common_args for the door `via` (see plugins/filter/ssh_common_args.yml)."""
    if via not in DOORS:
        raise AnsibleFilterError(f"pulse_ssh_via must be one of {', '.join(DOORS)}; got {via!r}")
    if host_key_checking not in HOST_KEY_CHECKING:
        raise AnsibleFilterError(
            f"pulse_ssh_host_key_checking must be one of {', '.join(HOST_KEY_CHECKING)}; got {host_key_checking!r}"
        )
    if not known_hosts:
        raise AnsibleFilterError("ssh_common_args: a known_hosts file is needed (pulse_ssh_known_hosts_file)")
    opts = [
        "-o", f"UserKnownHostsFile={_safe('known_hosts', known_hosts)}",
        "-o", f"StrictHostKeyChecking={host_key_checking}",
        # Only the key named by ansible_ssh_private_key_file, never whatever an agent offers.
        "-o", "IdentitiesOnly=yes",
    ]
    if via == "ssm":
        if bastion:
            raise AnsibleFilterError("ssh_common_args: a bastion is for via=direct; Session Manager needs none")
        opts += ["-o", f"ProxyCommand={ssm_proxy_command(region, profile)}"]
    elif bastion:
        opts += ["-J", _safe("bastion", bastion)]
    return " ".join(shlex.quote(o) for o in opts)


class FilterModule:
    """pulse.infra SSH filters."""

    def filters(self):
        return {"ssh_common_args": ssh_common_args}
