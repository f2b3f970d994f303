"""Unit tests for the SSH door filter (plugins/filter/ssh.py) and the doors the inventories render.

moto has no Session Manager, so the production default (SSH through SSM) is checked here, by
rendering the production inventory's ansible_ssh_common_args, and nowhere else.
"""

import shlex

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.pulse.infra.plugins.filter import ssh as f
from conftest import REPO  # noqa: F401  (tests/conftest.py: the repository root)


def _opts(args):
    words = shlex.split(args)
    out = {}
    it = iter(words)
    for word in it:
        value = next(it)
        if word == "-o":
            key, _, val = value.partition("=")
            out[key] = val
        else:
            out[word] = value
    return out


def test_ssm_door_uses_the_start_ssh_session_document():
    opts = _opts(f.ssh_common_args("ssm", "~/.ssh/pulse_known_hosts", region="us-east-2"))
    proxy = shlex.split(opts["ProxyCommand"])
    assert proxy[:3] == ["aws", "ssm", "start-session"]
    assert proxy[proxy.index("--target") + 1] == "%h"
    assert proxy[proxy.index("--document-name") + 1] == "AWS-StartSSHSession"
    assert proxy[proxy.index("--parameters") + 1] == "portNumber=%p"
    assert proxy[proxy.index("--region") + 1] == "us-east-2"
    assert opts["StrictHostKeyChecking"] == "accept-new"
    assert opts["UserKnownHostsFile"] == "~/.ssh/pulse_known_hosts"
    assert opts["IdentitiesOnly"] == "yes"


def test_ssm_door_with_a_profile():
    proxy = _opts(f.ssh_common_args("ssm", "/k", region="eu-west-1", profile="pulse-prod"))["ProxyCommand"]
    assert "--profile pulse-prod" in proxy


def test_direct_door_has_no_proxy_and_may_jump():
    opts = _opts(f.ssh_common_args("direct", "/k", host_key_checking="yes"))
    assert "ProxyCommand" not in opts and "-J" not in opts
    assert opts["StrictHostKeyChecking"] == "yes"
    assert _opts(f.ssh_common_args("direct", "/k", bastion="ops@bastion.example.com"))["-J"] == "ops@bastion.example.com"


@pytest.mark.parametrize("kwargs, message", [
    ({"via": "telnet", "known_hosts": "/k"}, "pulse_ssh_via must be one of"),
    ({"via": "direct", "known_hosts": "/k", "host_key_checking": "no"}, "pulse_ssh_host_key_checking"),
    ({"via": "direct", "known_hosts": ""}, "known_hosts file"),
    ({"via": "ssm", "known_hosts": "/k", "region": ""}, "needs an AWS region"),
    ({"via": "ssm", "known_hosts": "/k", "region": "us-east-2", "bastion": "a@b"}, "bastion is for via=direct"),
    ({"via": "direct", "known_hosts": "/k; rm -rf /"}, "characters a shell would interpret"),
    ({"via": "ssm", "known_hosts": "/k", "region": "us-east-2", "profile": "$(id)"}, "characters a shell"),
])
def test_bad_door_settings_are_refused_with_the_variable_named(kwargs, message):
    with pytest.raises(AnsibleFilterError, match=message.replace("(", r"\(")):
        f.ssh_common_args(**kwargs)


RENDER = """
import json, sys, yaml
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader
from ansible.template import Templar, trust_as_template

repo, inventory, hostvars = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
init_plugin_loader([repo + "/collections"])
def load(name):
    data = yaml.safe_load(open(f"{repo}/inventories/{inventory}/group_vars/{name}.yml"))
    return {k: trust_as_template(v) if isinstance(v, str) else v for k, v in data.items()}
door = load("aws_ec2/connection")
variables = {**load("all/env"), **load("all/ssh"), **door, **hostvars, "ansible_config_file": repo + "/ansible.cfg"}
templar = Templar(loader=DataLoader(), variables=variables)
print(json.dumps({k: templar.template(door[k]) for k in ("ansible_host", "ansible_ssh_common_args")}))
"""


def _render(inventory, hostvars):
    """Render an inventory's door (group_vars/aws_ec2/connection.yml) as Ansible does, in a fresh
    interpreter (the collection loader must own ansible_collections there)."""
    import json
    import os
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", RENDER, str(REPO), inventory, json.dumps(hostvars)],
                         capture_output=True, text=True, check=True,
                         env={k: v for k, v in os.environ.items() if k != "PULSE_LAB_DIR"})
    return json.loads(out.stdout)


HOST = {"pulse_instance_id": "i-0123456789abcdef0", "pulse_private_ip": "10.0.11.5", "pulse_public_ip": "3.4.5.6"}


def test_production_default_is_ssh_through_session_manager():
    rendered = _render("production", HOST)
    assert rendered["ansible_host"] == "i-0123456789abcdef0"
    proxy = _opts(rendered["ansible_ssh_common_args"])["ProxyCommand"]
    assert "--document-name AWS-StartSSHSession" in proxy and "--region us-east-2" in proxy


@pytest.mark.parametrize("address, expected", [("private", "10.0.11.5"), ("public", "3.4.5.6")])
def test_production_direct_door_reaches_the_chosen_address(address, expected):
    rendered = _render("production", {**HOST, "pulse_ssh_via": "direct", "pulse_ssh_address": address})
    assert rendered["ansible_host"] == expected
    assert "ProxyCommand" not in _opts(rendered["ansible_ssh_common_args"])


def test_lab_door_is_direct_ssh_to_the_private_address_with_the_labs_known_hosts():
    rendered = _render("lab", HOST)
    assert rendered["ansible_host"] == "10.0.11.5"
    opts = _opts(rendered["ansible_ssh_common_args"])
    assert "ProxyCommand" not in opts
    assert opts["UserKnownHostsFile"] == str(REPO / ".lab" / "ssh" / "known_hosts")
