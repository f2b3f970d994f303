"""roles/aws_stack: defaults/main.yml, meta/argument_specs.yml and README.md describe the same variables.

The README's variable table is generated from the argument specs:
    .venv/bin/python tests/unit/plugins/test_aws_stack_role.py --write
rewrites it in place; the test fails when it is stale.
"""

import re
import sys
from pathlib import Path

import yaml

ROLE = Path(__file__).resolve().parents[3] / "roles" / "aws_stack"
BEGIN = "<!-- BEGIN VARIABLES (generated from meta/argument_specs.yml) -->"
END = "<!-- END VARIABLES -->"
# Set by the inventory (group_vars/all/env.yml), hence documented but without a role default.
INVENTORY_ONLY = {"pulse_env", "pulse_aws_region", "pulse_aws_endpoint_url", "pulse_aws_access_key",
                  "pulse_aws_secret_key", "pulse_domain", "pulse_hosted_zone"}


def load(name):
    return yaml.safe_load((ROLE / name).read_text())


def specs():
    return load("meta/argument_specs.yml")["argument_specs"]


def defaults():
    return load("defaults/main.yml")


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
    if value == "" or value == []:
        return f"`{value!r}`" if value == "" else "`[]`"
    if isinstance(value, list):
        return "`" + ", ".join(str(v) for v in value) + "`"
    return f"`{_cell(value)}`"


def variable_table():
    lines = []
    for entry, spec in specs().items():
        lines.append(f"### Entry point `{entry}`\n")
        lines.append("| Variable | Type | Default | Description |")
        lines.append("|---|---|---|---|")
        for name, option in spec["options"].items():
            kind = option.get("type", "str")
            if kind == "list" and option.get("elements"):
                kind = f"list of {option['elements']}"
            if option.get("choices"):
                kind += " (" + ", ".join(str(c) for c in option["choices"]) + ")"
            description = re.sub(r"[IC]\(([^)]*)\)", r"`\1`", " ".join(str(option["description"]).split()))
            lines.append(f"| `{name}` | {kind} | {_default(option)} | {_cell(description)} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def readme_with_table(text):
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[:start] + "\n" + variable_table() + text[end:]


# --------------------------------------------------------------------------- tests


def test_every_default_is_documented_with_the_same_value():
    main = specs()["main"]["options"]
    teardown = specs()["teardown"]["options"]
    for name, value in defaults().items():
        option = main.get(name) or teardown.get(name)
        assert option is not None, f"{name} is in defaults/main.yml but not in meta/argument_specs.yml"
        assert not option.get("required"), f"{name} has a default but is marked required"
        assert option.get("default") == value, f"{name}: default {value!r} != argument spec {option.get('default')!r}"


def test_every_documented_option_has_a_default_or_comes_from_the_inventory():
    names = set(defaults())
    for entry, spec in specs().items():
        for name, option in spec["options"].items():
            assert option.get("description"), f"{entry}.{name} has no description"
            assert option.get("type"), f"{entry}.{name} has no type"
            if name not in names:
                assert name in INVENTORY_ONLY, f"{entry}.{name} has no default in defaults/main.yml"


def test_every_pulse_variable_the_tasks_use_is_documented():
    documented = set(specs()["main"]["options"]) | set(specs()["teardown"]["options"])
    used = set()
    for path in list((ROLE / "tasks").glob("*.yml")) + list((ROLE / "templates").glob("*.j2")) + [ROLE / "vars" / "main.yml"]:
        used |= set(re.findall(r"\b(pulse_[a-z0-9_]+)\b", path.read_text()))
    assert used - documented == set(), f"undocumented variables: {sorted(used - documented)}"


def test_defaults_are_all_environment_or_role_prefixed():
    for name in defaults():
        assert name.startswith(("pulse_", "aws_stack_")), name


def test_readme_table_is_generated_from_the_argument_specs():
    text = (ROLE / "README.md").read_text()
    assert BEGIN in text and END in text
    assert readme_with_table(text) == text, (
        "README.md's variable table is stale: run "
        ".venv/bin/python tests/unit/plugins/test_aws_stack_role.py --write"
    )


if __name__ == "__main__":
    if "--write" in sys.argv:
        path = ROLE / "README.md"
        path.write_text(readme_with_table(path.read_text()))
        print(f"rewrote the variable table of {path}")
    else:
        sys.stdout.write(variable_table())
