"""plugins/callback/operator.py (ansible.cfg's stdout_callback): a failed task's message is
printed once, in ansible-core's [ERROR] summary with the task's origin; the `fatal:` line keeps
the rest of the result. Runs real ansible-playbook on localhost."""

import os
import subprocess

import pytest

from conftest import REPO, VENV_BIN

MESSAGE = "Say which version to deploy: -e version=v1.2.0"
PLAYBOOK = f"""
- name: Errors
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: A refusal
      ansible.builtin.fail:
        msg: "{MESSAGE}"
      ignore_errors: "{{{{ ignore | default(false) }}}}"

    - name: A loop item that fails
      ansible.builtin.command: "sh -c 'echo to-stdout-{{{{ item }}}}; exit 3'"
      loop: [one]
      changed_when: false
"""


@pytest.fixture
def run(tmp_path):
    playbook = tmp_path / "errors.yml"
    playbook.write_text(PLAYBOOK)

    def run(callback, *args):
        env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK=callback,
                   ANSIBLE_PYTHON_INTERPRETER=str(VENV_BIN / "python"), ANSIBLE_NOCOLOR="1")
        proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", str(playbook), *args],
                              cwd=REPO, env=env, capture_output=True, text=True, check=False)
        return proc.stdout + proc.stderr

    return run


def test_the_project_uses_it():
    assert "\nstdout_callback = pulse.infra.operator\n" in (REPO / "ansible.cfg").read_text()


def test_a_failed_task_says_its_message_once_with_its_origin(run):
    default, operator = run("ansible.builtin.default"), run("pulse.infra.operator")
    assert default.count(MESSAGE) == 2, default  # what ansible-core 2.19 prints on its own
    assert operator.count(MESSAGE) == 1, operator
    error = next(line for line in operator.splitlines() if MESSAGE in line)
    assert error.startswith("[ERROR]: Task failed: ") and "Origin: " in operator
    fatal = next(line for line in operator.splitlines() if line.startswith("fatal: [localhost]: FAILED!"))
    assert '"msg"' not in fatal and '"changed": false' in fatal


def test_the_rest_of_a_result_and_loop_items_stay_as_the_default_shows_them(run):
    operator = run("pulse.infra.operator", "-e", "ignore=true")
    assert operator.count(MESSAGE) == 1 and "...ignoring" in operator
    item = next(line for line in operator.splitlines() if line.startswith("failed: [localhost] (item=one)"))
    assert '"rc": 3' in item and "to-stdout-one" in item and '"msg"' in item
