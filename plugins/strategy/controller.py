# Copyright: (c) 2026, pulse.infra contributors
# Apache License 2.0 (see LICENSE)
"""The strategy of the plays that run on the controller only (hosts: localhost)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: controller
short_description: linear, with Mitogen's persistent interpreters when Mitogen is installed
version_added: 0.1.0
description:
  - >-
    For the plays that run on the controller only (C(hosts=localhost), C(connection=local)):
    provisioning, the web app's hosting, the lab certificates, the CI access, the teardown.
    Each of their tasks is an AWS API call whose cost on the controller is mostly starting
    Python and importing boto3; with Mitogen (U(https://mitogen.networkgenomics.com/ansible_detailed.html))
    the interpreter and its imports are kept between tasks, which makes such a play about
    twice as fast.
  - >-
    The same in the lab and in AWS (the controller is the same machine). The plays that reach
    the instances keep the linear strategy: Mitogen does not support the C(aws_ssm) connection
    (production's default door), and its C(wait_for_connection) fails
    (U(https://github.com/mitogen-hq/mitogen/issues/822)).
  - >-
    Without Mitogen installed, or with the environment variable E(PULSE_MITOGEN=0), this is
    ansible.builtin.linear.
author: Pulse infrastructure team (@pulse-infra)
"""

import os

from ansible.plugins.strategy.linear import StrategyModule as _Linear
from ansible.utils.display import Display

display = Display()

try:
    if os.environ.get("PULSE_MITOGEN", "1") in ("0", "false", "no"):
        raise ImportError("PULSE_MITOGEN=0")
    import ansible_mitogen.loaders  # noqa: F401  (mitogen_linear does the same first)
    import ansible_mitogen.strategy
except ImportError as exc:  # not installed, or turned off: plain linear
    display.vvv(f"pulse.infra.controller: linear without Mitogen ({exc})")

    class StrategyModule(_Linear):
        pass

else:

    class StrategyModule(ansible_mitogen.strategy.StrategyMixin, _Linear):
        pass
