#!/usr/bin/python
# Copyright: Pulse infrastructure team
# Apache License 2.0 (see galaxy.yml)
"""Documentation of the pulse.infra.entry_point action (plugins/action/entry_point.py)."""

DOCUMENTATION = r"""
module: entry_point
short_description: Check an entry point's extra variables before anything changes
version_added: 0.1.0
description:
  - Compares the extra variables of the run (C(-e)) with the parameters the entry point
    declares, the options of every role of pulse.infra (their argument specs) and the
    variables the inventories define.
  - Fails, naming the closest known name ("did you mean"), for an extra variable that looks like
    the entry point's own but is unknown - a misspelt parameter (C(verison)) or a variable with a
    prefix the collection owns (C(pulse_), C(<role>_)) that nothing defines
    (C(pulse_rollout_serail)). Other extra variables are left alone.
  - C(-e help=true) stops with the usage and the parameters.
  - Runs on the controller only; changes nothing, in check mode too.
options:
  name:
    description: The entry point, as users type it (for messages).
    type: str
    required: true
  usage:
    description: One line showing how to call it.
    type: str
  parameters:
    description: The entry point's own parameters, name to a short description.
    type: dict
    default: {}
  also_known:
    description: Further names to accept (variables a play defines itself).
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
    description: Changes nothing in any mode; it checks the parameters in check mode too.
  action:
    support: full
    description: An action plugin runs it on the controller (it reads the play's extra variables).
author: Pulse infrastructure team (@pulse-infra)
"""

EXAMPLES = r"""
- name: Check the parameters (nothing is changed here)
  pulse.infra.entry_point:
    name: deploy_node.yml
    usage: ansible-playbook deploy_node.yml -e version=v1.2.0 [-e force=true]
    parameters:
      version: release to deploy (v1.2.0, 1.2.0, or a series such as v1.2)
      force: deploy even when a node is unhealthy
  run_once: true
"""

RETURN = r"""
unknown:
  description: The extra variables refused.
  returned: failure
  type: list
  elements: str
parameters:
  description: The entry point's parameters, as declared.
  returned: always
  type: dict
"""
