# Copyright: (c) 2026, pulse.infra contributors
# Apache License 2.0 (see LICENSE)
"""The strategy of the converge plays on the instances."""

from __future__ import annotations

DOCUMENTATION = r"""
name: nodes
short_description: linear over SSH, with Mitogen's persistent interpreters when Mitogen is installed
version_added: 0.1.0
description:
  - >-
    For the converge play on the nodes (C(playbooks/configure_nodes.yml), run by C(site.yml)):
    about 190 tasks per node, most of which change nothing on a second run, and what each one
    costs is an SSH round trip and a new Python on the node. With Mitogen
    (U(https://mitogen.networkgenomics.com/ansible_detailed.html)) one Python per instance (and
    one under C(sudo)) stays up for the play and runs every task.
  - >-
    Both doors of the inventories are the C(ssh) connection (C(pulse_ssh_via=ssm) is SSH with
    Session Manager as its C(ProxyCommand)), which Mitogen drives with the same arguments, key
    and known-hosts file. Mitogen checks host keys strictly (C(StrictHostKeyChecking yes)): a
    play with this strategy must come after a linear play that has reached every host
    (C(ansible.builtin.wait_for_connection)), which also pins a new instance's key when
    C(pulse_ssh_host_key_checking=accept-new). That order is needed anyway: Mitogen's own
    C(wait_for_connection) fails (U(https://github.com/mitogen-hq/mitogen/issues/822)).
  - >-
    The other plays on the instances stay linear: the rolling ones (deploy, restart, restore)
    spend their time in health checks and drains (a restart of 3 nodes took 81 s linear, 73 s
    with Mitogen), the build in cargo, the backup play is short.
  - >-
    Without Mitogen installed, or with the environment variable E(PULSE_MITOGEN=0), this is
    ansible.builtin.linear.
author: Pulse infrastructure team (@pulse-infra)
"""

from ansible_collections.pulse.infra.plugins.strategy.controller import StrategyModule as _Controller


class StrategyModule(_Controller):
    pass
