"""pulse_node_systemd: defaults/main.yml and meta/argument_specs.yml describe the same variables
(names, defaults, types; the README's table is generated, tests/unit/test_role_tables.py), every task file a deploy
playbook may call is an argument_specs entry point, and the role uses no public variable
that is not declared."""

import re
from pathlib import Path

import pytest
import yaml

ROLE = Path(__file__).resolve().parents[2] / "roles" / "pulse_node_systemd"
TYPES = {"str": str, "int": int, "bool": bool, "float": float, "list": list, "dict": dict, "path": str}
ENTRY_POINTS = {"main", "preflight", "user", "install", "switch", "configure", "service", "verify", "prune", "restart", "stop", "start"}


def load(rel):
    return yaml.safe_load((ROLE / rel).read_text())


@pytest.fixture(scope="module")
def defaults():
    return load("defaults/main.yml")


@pytest.fixture(scope="module")
def specs():
    return load("meta/argument_specs.yml")["argument_specs"]


@pytest.fixture(scope="module")
def options(specs):
    return specs["main"]["options"]


def test_defaults_and_argument_specs_name_the_same_variables(defaults, options):
    assert set(defaults) == set(options), (
        f"only in defaults: {sorted(set(defaults) - set(options))}; "
        f"only in argument_specs: {sorted(set(options) - set(defaults))}"
    )


def test_argument_spec_defaults_and_types_match_defaults(defaults, options):
    for name, opt in options.items():
        assert "description" in opt and opt["description"], f"{name}: no description"
        assert opt.get("default") == defaults[name], f"{name}: argspec {opt.get('default')!r} != defaults {defaults[name]!r}"
        assert opt["type"] in TYPES, f"{name}: unknown type {opt['type']}"
        if defaults[name] is not None:
            value = defaults[name]
            expected = TYPES[opt["type"]]
            ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
            assert ok, f"{name}: default {value!r} is not a {opt['type']}"
        if "choices" in opt:
            assert defaults[name] in opt["choices"], f"{name}: default not among the choices"


def test_every_task_file_is_an_entry_point_with_the_main_options(specs):
    task_files = {p.stem for p in (ROLE / "tasks").glob("*.yml")} - {"os_vars"}
    assert task_files | {"main"} == ENTRY_POINTS
    assert set(specs) == ENTRY_POINTS
    for name in ENTRY_POINTS:
        assert specs[name]["options"] == specs["main"]["options"], f"entry point {name} drifted from main"


def test_readme_documents_the_task_files():
    readme = (ROLE / "README.md").read_text()
    for name in ENTRY_POINTS - {"main"}:
        assert f"`{name}.yml`" in readme or f"tasks_from: {name}" in readme, f"README does not document {name}.yml"


def test_role_uses_only_declared_public_variables(defaults):
    used = set()
    for path in list((ROLE / "tasks").glob("*.yml")) + list((ROLE / "templates").glob("*.j2")) + [
        ROLE / "vars" / "main.yml", ROLE / "handlers" / "main.yml"
    ]:
        used |= set(re.findall(r"(?<![\w_])pulse_node_systemd_[a-z0-9_]+", path.read_text()))
    # "pulse_node_systemd : restart" is the handler topic, not a variable
    undeclared = sorted(u for u in used - set(defaults))
    assert not undeclared, f"used but not in defaults/main.yml: {undeclared}"


def test_os_family_vars_define_the_same_internal_names():
    debian, redhat = load("vars/Debian.yml"), load("vars/RedHat.yml")
    assert set(debian) == set(redhat)
    assert all(k.startswith("_pulse_node_systemd_") for k in debian), "vars/<family>.yml must only hold internal names"
