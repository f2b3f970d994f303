"""The roles' README variable tables are generated from their argument specs
(meta/argument_specs.yml), between the markers BEGIN and END below:
    .venv/bin/python tests/unit/test_role_tables.py --write
rewrites them in place; the test fails when one is stale. (antsibull-docs, the maintained
generator, renders argument specs for a docs site in RST, not as a README table; this script
writes the table the README needs from the same source.)

Also for roles/aws_stack: defaults/main.yml, meta/argument_specs.yml and the tasks of the roles it
is made of describe the same environment variables.
"""

import re
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLES_DIR = REPO / "roles"
BEGIN = "<!-- BEGIN VARIABLES (generated from meta/argument_specs.yml) -->"
END = "<!-- END VARIABLES -->"
# The roles whose README carries a generated table.
GENERATED = sorted(p.parent.name for p in ROLES_DIR.glob("*/README.md") if BEGIN in p.read_text())
# roles/aws_stack and the roles it is made of.
STACK_PARTS = ["aws_network", "aws_storage_iam", "aws_compute", "aws_ingress", "aws_observability"]
# Set by the inventory (group_vars/all/env.yml), hence documented but without a role default.
INVENTORY_ONLY = {"pulse_env", "pulse_aws_region", "pulse_aws_endpoint_url", "pulse_aws_access_key",
                  "pulse_aws_secret_key", "pulse_domain", "pulse_hosted_zone"}


def load(role, name):
    return yaml.safe_load((ROLES_DIR / role / name).read_text()) or {}


def specs(role):
    return load(role, "meta/argument_specs.yml")["argument_specs"]


def defaults(role):
    return load(role, "defaults/main.yml")


def _cell(value):
    return str(value).replace("|", "\\|").replace("\n", " ")


def _default(option):
    if option.get("required"):
        return "**required**"
    if "default" not in option:
        return "(unset)"
    value = option["default"]
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if value == "":
        return '`""`'
    if value == []:
        return "`[]`"
    if isinstance(value, list):
        return "`" + ", ".join(str(v) for v in value) + "`"
    return f"`{_cell(value)}`"


def variable_table(role):
    """One table per entry point; an entry point with the options of an earlier one says so and
    lists only its own."""
    lines, seen = [], {}
    for entry, spec in specs(role).items():
        lines.append(f"### Entry point `{entry}`\n")
        if spec.get("short_description"):
            lines.append(_cell(re.sub(r"[IC]\(([^)]*)\)", r"`\1`", spec["short_description"])) + "\n")
        options = spec.get("options") or {}
        same = next((e for e, o in seen.items() if o == options), None)
        base = next((e for e, o in seen.items() if o and all(options.get(k) == v for k, v in o.items())), None)
        seen[entry] = options
        if same:
            lines.append(f"The options of entry point `{same}`.\n")
            continue
        if base:
            lines.append(f"Every option of entry point `{base}`, and:\n")
            options = {k: v for k, v in options.items() if k not in seen[base]}
        lines.append("| Variable | Type | Default | Description |")
        lines.append("|---|---|---|---|")
        for name, option in options.items():
            kind = option.get("type", "str")
            if kind == "list" and option.get("elements"):
                kind = f"list of {option['elements']}"
            if option.get("choices"):
                kind += " (" + ", ".join(str(c) for c in option["choices"]) + ")"
            description = option["description"]
            if isinstance(description, list):
                description = " ".join(description)
            description = re.sub(r"[IC]\(([^)]*)\)", r"`\1`", " ".join(str(description).split()))
            lines.append(f"| `{name}` | {kind} | {_default(option)} | {_cell(description)} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def readme_with_table(role, text):
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[:start] + "\n" + variable_table(role) + text[end:]


# --------------------------------------------------------------------------- tests


def test_the_stack_roles_have_generated_tables():
    assert set(["aws_stack"] + STACK_PARTS) <= set(GENERATED), GENERATED


@pytest.mark.parametrize("role", GENERATED)
def test_readme_table_is_generated_from_the_argument_specs(role):
    text = (ROLES_DIR / role / "README.md").read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1
    assert readme_with_table(role, text) == text, (
        f"roles/{role}/README.md's variable table is stale: run .venv/bin/python tests/unit/test_role_tables.py --write"
    )


def test_every_aws_stack_default_is_documented_with_the_same_value():
    options = {name: o for entry in specs("aws_stack").values() for name, o in entry["options"].items()}
    for name, value in defaults("aws_stack").items():
        option = options.get(name)
        assert option is not None, f"{name} is in defaults/main.yml but not in meta/argument_specs.yml"
        assert not option.get("required"), f"{name} has a default but is marked required"
        assert option.get("default") == value, f"{name}: default {value!r} != argument spec {option.get('default')!r}"


def test_every_aws_stack_option_has_a_default_or_comes_from_the_inventory():
    names = set(defaults("aws_stack"))
    for entry, spec in specs("aws_stack").items():
        for name, option in spec["options"].items():
            if name not in names:
                assert name in INVENTORY_ONLY, f"{entry}.{name} has no default in defaults/main.yml"


@pytest.mark.parametrize("role", ["aws_stack"] + STACK_PARTS)
def test_every_environment_variable_a_stack_role_reads_is_an_aws_stack_option(role):
    """The stack's roles read the environment's pulse_* variables, which roles/aws_stack defaults
    and checks: each one they read is one of its options, and each is in the role's own specs."""
    documented = set(specs("aws_stack")["main"]["options"]) | set(specs("aws_stack")["teardown"]["options"])
    base = ROLES_DIR / role
    used = set()
    for path in list((base / "tasks").glob("*.yml")) + list(base.glob("templates/*.j2")) + list(base.glob("vars/main.yml")):
        used |= set(re.findall(r"\b(pulse_[a-z0-9_]+)\b", path.read_text()))
    assert used - documented == set(), f"{role}: not options of roles/aws_stack: {sorted(used - documented)}"
    own = {name for entry in specs(role).values() for name in entry["options"]}
    assert used - own == set(), f"{role}: reads {sorted(used - own)} without an argument spec"


@pytest.mark.parametrize("role", STACK_PARTS)
def test_a_stack_role_has_only_literal_defaults(role):
    for name, value in defaults(role).items():
        assert name.startswith(f"{role}_"), f"{role}: {name} is not role-prefixed"
        assert "{{" not in str(value), f"{role}: {name} reads another variable: {value!r}"


if __name__ == "__main__":
    if "--write" in sys.argv:
        for role in GENERATED:
            path = ROLES_DIR / role / "README.md"
            path.write_text(readme_with_table(role, path.read_text()))
            print(f"rewrote the variable table of {path}")
    else:
        for role in GENERATED:
            sys.stdout.write(f"## {role}\n\n" + variable_table(role))
