# Copyright: (c) 2026, pulse.infra contributors
# Apache License 2.0 (see LICENSE)
"""ansible-core's default screen output, with each task error printed once."""

from __future__ import annotations

DOCUMENTATION = r"""
name: operator
type: stdout
short_description: the default screen output, each task error printed once
version_added: 0.1.0
description:
  - >-
    ansible-core's C(ansible.builtin.default) output with one change: when a task fails,
    ansible-core 2.19 prints the error twice, as C([ERROR]: Task failed: ... <message>) with
    the task's origin (file and line), then as C(fatal: [host]: FAILED! => ...) with the same
    C(msg) in the result. This callback keeps the first (the message and where it comes from)
    and leaves C(msg) out of the second, which still shows the rest of the result (rc,
    stdout, stderr, ...).
  - >-
    Failures of loop items, and results whose C(msg) is not the error printed above it, are
    shown exactly as C(ansible.builtin.default) shows them.
  - Set in C(ansible.cfg) as C(stdout_callback = pulse.infra.operator).
extends_documentation_fragment:
  - default_callback
  - result_format_callback
requirements:
  - set as stdout in configuration
author: Pulse infrastructure team (@pulse-infra)
"""

from ansible.plugins.callback.default import CallbackModule as _Default


class CallbackModule(_Default):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "pulse.infra.operator"

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if not (self._prints_error_summary(result) and not result.task.loop and "msg" in result.result):
            super().v2_runner_on_failed(result, ignore_errors)
            return
        # the [ERROR] line above the fatal one already says it, with the task's origin; the msg is
        # put back afterwards, for the other callbacks that read the same result
        msg = result.result.pop("msg")
        try:
            super().v2_runner_on_failed(result, ignore_errors)
        finally:
            result.result["msg"] = msg

    def _prints_error_summary(self, result):
        """The default's _handle_exception will print an [ERROR] summary of this failure."""
        current = getattr(self, "_current_task_result", None)
        return bool(result.result.get("exception")) and getattr(current, "exception", None) is not None
