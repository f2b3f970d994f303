"""Every role's documentation agrees with itself, one parametrised test per check for all roles:
each option of every entry point (meta/argument_specs.yml) has a type and a description, its
documented default is the value in defaults/main.yml and one of its choices, and the README's
variable table (generated: tests/unit/test_role_tables.py) has a row for it that shows that
default; a role with per-OS vars declares both platforms.

(Per-role files keep only what is particular to a role: tests/unit/test_<role>_docs.py.)
"""

import functools
import re

import pytest
import yaml

from conftest import REPO, readme_cell as cell

ROLES = sorted(p.name for p in (REPO / "roles").iterdir() if (p / "meta/argument_specs.yml").is_file())
TYPES = {"str", "int", "bool", "path", "list", "dict", "float", "raw"}


@functools.cache
def load(path):
    """A YAML file of the tree, parsed once per run (read only by the tests)."""
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def options(role):
    """(entry point, name, spec) of every option of every entry point."""
    specs = load(REPO / "roles" / role / "meta/argument_specs.yml")["argument_specs"]
    return [(entry, name, spec) for entry, body in specs.items() for name, spec in (body.get("options") or {}).items()]


def defaults(role):
    return load(REPO / "roles" / role / "defaults/main.yml")


def normalise(value):
    """Templated defaults are compared without their line breaks and indentation."""
    return " ".join(value.split()) if isinstance(value, str) and "{{" in value else value


def readme_rows(role):
    """First cell (the variable, in backquotes) -> the whole row, from every table of the README."""
    rows = {}
    for line in (REPO / "roles" / role / "README.md").read_text().splitlines():
        match = re.match(r"^\|\s*`([a-z0-9_]+)`\s*\|", line)
        if match:
            rows.setdefault(match[1], line)
    return rows


CASES = [(role, entry, name) for role in ROLES for entry, name, _ in options(role)]


@pytest.mark.parametrize("role, entry, name", CASES, ids=[f"{r}:{e}:{n}" for r, e, n in CASES])
def test_option_has_a_type_and_a_description(role, entry, name):
    spec = dict((n, s) for e, n, s in options(role) if e == entry)[name]
    assert spec.get("type", "str") in TYPES, (role, entry, name)
    assert spec.get("description"), f"{role}: {entry}: {name} has no description"


@pytest.mark.parametrize("role, entry, name", CASES, ids=[f"{r}:{e}:{n}" for r, e, n in CASES])
def test_documented_default_is_the_roles_default_and_a_choice(role, entry, name):
    spec = dict((n, s) for e, n, s in options(role) if e == entry)[name]
    if "default" in spec and name in defaults(role):
        assert normalise(spec["default"]) == normalise(defaults(role)[name]), (role, name)
    if "choices" in spec and "default" in spec:
        assert spec["default"] in spec["choices"], (role, name)
    if spec.get("required"):
        assert "default" not in spec, f"{role}: {name} is required, so it has no documented default"
    value = defaults(role).get(name)
    kinds = {"str": str, "path": str, "int": int, "bool": bool, "list": list, "dict": dict, "float": (int, float)}
    if value is not None and not (isinstance(value, str) and "{{" in value) and spec.get("type", "str") in kinds:
        assert isinstance(value, kinds[spec.get("type", "str")]), f"{role}: {name}: {value!r} is not a {spec.get('type')}"
        assert not (spec.get("type") == "int" and isinstance(value, bool)), (role, name)


MAIN = [(role, name) for role in ROLES for entry, name, _ in options(role) if entry == "main"]


@pytest.mark.parametrize("role, name", MAIN, ids=[f"{r}:{n}" for r, n in MAIN])
def test_readme_table_shows_the_literal_default(role, name):
    rows = readme_rows(role)
    assert name in rows, f"roles/{role}/README.md has no table row for {name}"
    value = defaults(role).get(name)
    if isinstance(value, (bool, int, str)) and "{{" not in str(value) and "\n" not in str(value):
        assert cell(value) in rows[name] or str(value) in rows[name], (
            f"roles/{role}/README.md: the row of {name} does not show its default {value!r}: {rows[name]}")


PER_OS = [role for role in ROLES if any((REPO / "roles" / role / "vars" / f"{f}.yml").is_file() for f in ("Debian", "RedHat"))]


@pytest.mark.parametrize("role", PER_OS)
def test_role_with_per_os_vars_runs_on_both_platforms(role):
    """Debian bookworm and Amazon Linux 2023 (the RedHat family), with vars for each family."""
    meta = load(REPO / "roles" / role / "meta/main.yml")["galaxy_info"]
    assert {p["name"]: p["versions"] for p in meta["platforms"]} == {"Debian": ["bookworm"], "Amazon Linux": ["2023"]}
    for family in ("Debian", "RedHat"):
        assert (REPO / "roles" / role / "vars" / f"{family}.yml").is_file(), (role, family)


def test_every_role_is_covered():
    assert len(ROLES) >= 10 and all(options(role) for role in ROLES)
