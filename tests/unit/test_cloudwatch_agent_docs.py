"""roles/cloudwatch_agent: defaults/main.yml, meta/argument_specs.yml and the README's variable
table describe the same variables with the same defaults; the README's metric table names what
the rendered agent configuration collects."""

import json
import re
from pathlib import Path

import pytest
import yaml

ROLE = Path(__file__).resolve().parents[2] / "roles" / "cloudwatch_agent"
PREFIX = "cloudwatch_agent_"


def defaults():
    return yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())


def options():
    return yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]


def readme():
    return (ROLE / "README.md").read_text()


def readme_section(title):
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", readme(), re.S | re.M)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def table_rows(section):
    """Rows of the markdown tables of a section: lists of cells, `\\|` unescaped."""
    rows = []
    for line in section.splitlines():
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        rows.append([c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
    return rows[1:]  # without the header


def readme_defaults():
    return {row[0].strip("`"): row[1] for row in table_rows(readme_section("Variables"))}


def as_readme(value):
    """How the README's table shows a default."""
    if isinstance(value, str):
        return "`\"\"`" if value == "" else f"`{value}`"
    return f"`{json.dumps(value)}`"


def test_readme_table_lists_every_variable_once():
    rows = [row[0].strip("`") for row in table_rows(readme_section("Variables"))]
    assert len(rows) == len(set(rows))
    assert set(rows) == set(defaults())


@pytest.mark.parametrize("name", sorted(defaults()))
def test_readme_shows_the_default(name):
    assert readme_defaults()[name] == as_readme(defaults()[name])


def test_choices_are_documented():
    for choice in options()["cloudwatch_agent_install_method"]["choices"]:
        assert f"`{choice}`" in readme_section("Variables")


def test_platforms():
    meta = yaml.safe_load((ROLE / "meta" / "main.yml").read_text())["galaxy_info"]
    platforms = {p["name"]: p["versions"] for p in meta["platforms"]}
    assert platforms == {"Debian": ["bookworm"], "Amazon Linux": ["2023"]}
    for family in ("Debian", "RedHat"):
        family_vars = yaml.safe_load((ROLE / "vars" / f"{family}.yml").read_text())
        assert family_vars["_cloudwatch_agent_default_method"] in options()["cloudwatch_agent_install_method"]["choices"]


def test_readme_metric_table_names_what_the_configuration_collects():
    template = (ROLE / "templates" / "amazon-cloudwatch-agent.json.j2").read_text()
    # plugin -> measurement as the template writes it; the agent prefixes a bare name with the plugin's.
    collected = dict(re.findall(r"'(mem|swap|disk)': \{'measurement': \['([a-z_]+)'\]", template))
    assert set(collected) == {"mem", "swap", "disk"}
    names = {m if m.startswith(p + "_") else f"{p}_{m}" for p, m in collected.items()}
    rows = table_rows(readme_section("Metrics (for alarms and dashboards)"))
    documented = {row[0].strip("`") for row in rows}
    assert documented == names == {"mem_used_percent", "swap_used_percent", "disk_used_percent"}
    for row in rows:
        dims = {d.strip(" `") for d in row[2].split(",")}
        assert {"Environment", "InstanceId"} <= dims


def test_readme_dimensions_match_the_template():
    template = (ROLE / "templates" / "amazon-cloudwatch-agent.json.j2").read_text()
    assert "'append_dimensions': {'InstanceId': '${aws:InstanceId}'}" in template
    assert "'aggregation_dimensions': [['Environment', 'InstanceId', 'path']]" in template
    assert "{'Environment': cloudwatch_agent_environment}" in template
    assert "'omit_hostname': true" in template
    assert 'aggregation_dimensions: [["Environment", "InstanceId", "path"]]' in readme()


def test_readme_log_table_matches_the_role():
    role_vars = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
    rows = table_rows(readme_section("Logs"))
    files = [row[0].strip("`") for row in rows]
    assert files == [role_vars["_cloudwatch_agent_node_log_file"], role_vars["_cloudwatch_agent_system_log_file"]]
