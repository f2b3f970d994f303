"""plugins/strategy/controller.py: linear with Mitogen when it is installed, plain linear
without it or with PULSE_MITOGEN=0, and used by every controller play that calls AWS.
plugins/strategy/nodes.py is the same strategy for the converge play on the nodes, which comes
after a linear play that reaches them (host keys, mitogen#822)."""

import importlib.util
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
PLUGIN = REPO / "plugins/strategy/controller.py"


def load(monkeypatch, value=None):
    if value is None:
        monkeypatch.delenv("PULSE_MITOGEN", raising=False)
    else:
        monkeypatch.setenv("PULSE_MITOGEN", value)
    spec = importlib.util.spec_from_file_location("pulse_strategy_controller_under_test", PLUGIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_with_mitogen_it_is_mitogens_linear(monkeypatch):
    pytest.importorskip("ansible_mitogen")
    import ansible_mitogen.strategy
    from ansible.plugins.strategy.linear import StrategyModule as Linear

    module = load(monkeypatch)
    assert issubclass(module.StrategyModule, ansible_mitogen.strategy.StrategyMixin)
    assert issubclass(module.StrategyModule, Linear)


@pytest.mark.parametrize("value", ["0", "false", "no"])
def test_turned_off_it_is_plain_linear(monkeypatch, value):
    from ansible.plugins.strategy.linear import StrategyModule as Linear

    module = load(monkeypatch, value)
    assert module.StrategyModule.__mro__[1] is Linear
    assert "ansible_mitogen" not in " ".join(c.__module__ for c in module.StrategyModule.__mro__)


def test_without_mitogen_installed_it_is_plain_linear(monkeypatch):
    from ansible.plugins.strategy.linear import StrategyModule as Linear

    monkeypatch.setitem(sys.modules, "ansible_mitogen", None)  # import fails
    monkeypatch.setitem(sys.modules, "ansible_mitogen.loaders", None)
    module = load(monkeypatch)
    assert module.StrategyModule.__mro__[1] is Linear


def plays(path):
    """(header, body) of each play of a playbook: header = what comes before its task lists."""
    for play in re.split(r"^- name: ", path.read_text(), flags=re.M)[1:]:
        header = play.split("\n  tasks:")[0].split("\n  pre_tasks:")[0].split("\n  roles:")[0]
        yield header, play


def test_the_controller_plays_that_call_aws_use_it_and_no_host_play_does():
    """Only the plays on localhost take pulse.infra.controller."""
    for path in [REPO / "site.yml", *sorted((REPO / "playbooks").glob("*.yml"))]:
        for header, play in plays(path):
            if "strategy: pulse.infra.controller" in header:
                assert "hosts: localhost" in header and "connection: local" in header, (path, play[:80])
    for name in ("provision.yml", "app.yml", "teardown.yml", "ci_access.yml", "deploy_app.yml", "../lab/playbooks/lab_alb.yml"):
        assert "strategy: pulse.infra.controller" in (REPO / "playbooks" / name).read_text(), name


def test_a_nodes_play_comes_right_after_a_linear_play_that_reaches_the_same_hosts():
    """Mitogen checks host keys strictly and its wait_for_connection fails: the linear play before
    it reaches every host (and pins a new host's key with accept-new)."""
    found = []
    for path in [REPO / "site.yml", REPO / "deploy_node.yml", *sorted((REPO / "playbooks").glob("*.yml"))]:
        previous = None
        for header, play in plays(path):
            if "strategy: pulse.infra.nodes" in header:
                hosts = re.search(r"^  hosts: (.+)$", header, re.M).group(1)
                found.append(path.name)
                assert previous is not None, (path, play[:80])
                prev_header, prev_play = previous
                assert "strategy:" not in prev_header, (path, prev_header)
                # the same hosts, or the planned ones of them (configure_nodes.yml: pulse_node_planned)
                assert f"\n  hosts: {hosts.removesuffix('_planned')}\n" in prev_header + "\n", (path, prev_header)
                assert "ansible.builtin.wait_for_connection:" in prev_play, (path, prev_play)
                assert "ansible.builtin.wait_for_connection" not in play, (path, "Mitogen's fails: mitogen#822")
            previous = (header, play)
    assert found == ["configure_nodes.yml"]


def test_the_nodes_strategy_is_the_controller_strategy(monkeypatch):
    pytest.importorskip("ansible_mitogen")
    import ansible_mitogen.strategy

    source = (REPO / "plugins/strategy/nodes.py").read_text()
    assert "from ansible_collections.pulse.infra.plugins.strategy.controller import StrategyModule" in source
    module = load(monkeypatch)
    assert issubclass(module.StrategyModule, ansible_mitogen.strategy.StrategyMixin)
