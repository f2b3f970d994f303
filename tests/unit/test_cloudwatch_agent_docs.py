"""roles/cloudwatch_agent: the README documents the install methods, the metric table names what
the rendered agent configuration collects, and the dimensions and log files are the role's.
(Its variable table lists every default once, shown exactly, and the platforms: tests/unit/test_role_docs.py.)"""

import re

import yaml

from conftest import REPO, markdown_section, markdown_table_rows as table_rows

ROLE = REPO / "roles" / "cloudwatch_agent"
README = (ROLE / "README.md").read_text()


def install_methods():
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    return specs["main"]["options"]["cloudwatch_agent_install_method"]["choices"]


def test_install_methods_are_documented():
    for choice in install_methods():
        assert f"`{choice}`" in markdown_section(README, "Variables")


def test_each_family_picks_an_install_method():
    for family in ("Debian", "RedHat"):
        family_vars = yaml.safe_load((ROLE / "vars" / f"{family}.yml").read_text())
        assert family_vars["_cloudwatch_agent_default_method"] in install_methods()


def test_readme_metric_table_names_what_the_configuration_collects():
    template = (ROLE / "templates" / "amazon-cloudwatch-agent.json.j2").read_text()
    # plugin -> measurement as the template writes it; the agent prefixes a bare name with the plugin's.
    collected = dict(re.findall(r"'(mem|swap|disk)': \{'measurement': \['([a-z_]+)'\]", template))
    assert set(collected) == {"mem", "swap", "disk"}
    names = {m if m.startswith(p + "_") else f"{p}_{m}" for p, m in collected.items()}
    rows = table_rows(markdown_section(README, "Metrics (for alarms and dashboards)"))
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
    assert 'aggregation_dimensions: [["Environment", "InstanceId", "path"]]' in README


def test_readme_log_table_matches_the_role():
    role_vars = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
    rows = table_rows(markdown_section(README, "Logs"))
    files = [row[0].strip("`") for row in rows]
    assert files == [role_vars["_cloudwatch_agent_node_log_file"], role_vars["_cloudwatch_agent_system_log_file"]]
