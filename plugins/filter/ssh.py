# Copyright: Pulse infrastructure team
# Apache License 2.0 (see galaxy.yml)
"""The SSH door to the instances, rendered once for every inventory (lab and production).

DOCUMENTATION and EXAMPLES below follow ansible-doc's layout for each filter.
"""

from __future__ import annotations

import re
import shlex

from ansible.errors import AnsibleFilterError

DOCUMENTATION_SSH_COMMON_ARGS = r"""
name: ssh_common_args
short_description: SSH options for the way the controller reaches the instances
description:
  - Renders C(ansible_ssh_common_args) for one of the two supported doors.
  - C(ssm) - SSH through AWS Systems Manager Session Manager (C(ProxyCommand) with the
    C(AWS-StartSSHSession) document; C(ansible_host) is the instance id). No inbound port,
    no public address; needs the AWS CLI and the session-manager-plugin on the controller and
    the SSM agent on the instance.
  - C(direct) - plain SSH to the instance's address (from a VPN or a bastion in
    C(pulse_admin_cidrs)).
  - Either way the host keys are kept in I(known_hosts) and checked with I(host_key_checking).
options:
  _input:
    description: The door, C(ssm) or C(direct).
    type: str
    required: true
  region:
    description: AWS region of the instances (C(ssm) only).
    type: str
  known_hosts:
    description: The known_hosts file the host keys are pinned in.
    type: path
    required: true
  host_key_checking:
    description: C(yes) (only pinned keys), C(accept-new) (trust on first use, refuse a changed key).
    type: str
    default: accept-new
  profile:
    description: AWS CLI profile for the Session Manager command (C(ssm) only; empty for the default chain).
    type: str
    default: ''
  bastion:
    description: C(user@host) of a bastion to jump through (C(direct) only; empty for none).
    type: str
    default: ''
"""

EXAMPLES_SSH_COMMON_ARGS = r"""
ansible_ssh_common_args: >-
  {{ pulse_ssh_via | pulse.infra.ssh_common_args(region=pulse_aws_region,
     known_hosts=pulse_ssh_known_hosts_file, host_key_checking=pulse_ssh_host_key_checking) }}
"""

RETURN_SSH_COMMON_ARGS = r"""
_value:
  description: The options, one string (Ansible splits it like a shell).
  type: str
"""

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
    """ansible_ssh_common_args for the door `via` (see DOCUMENTATION_SSH_COMMON_ARGS)."""
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
