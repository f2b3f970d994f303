"""roles/pulse_metrics: defaults/main.yml, meta/argument_specs.yml and the README's variable
table describe the same variables with the same defaults; the README's metric table lists
exactly what the collector publishes."""

import importlib.util
import json
import re
from pathlib import Path

import pytest
import yaml

ROLE = Path(__file__).resolve().parents[2] / "roles" / "pulse_metrics"
PREFIX = "pulse_metrics_"


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
    """Rows of the first markdown table of a section: lists of cells, `\\|` unescaped."""
    rows = []
    for line in section.splitlines():
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        rows.append(cells)
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


def test_no_credential_variable_the_instance_role_gives_them():
    assert not [name for name in options() if name.endswith(("_access_key", "_secret_key"))]


def test_platforms():
    meta = yaml.safe_load((ROLE / "meta" / "main.yml").read_text())["galaxy_info"]
    platforms = {p["name"]: p["versions"] for p in meta["platforms"]}
    assert platforms == {"Debian": ["bookworm"], "Amazon Linux": ["2023"]}
    for family in ("Debian", "RedHat"):
        assert (ROLE / "vars" / f"{family}.yml").is_file()


def _collector():
    spec = importlib.util.spec_from_file_location("pulse_metrics_docs", ROLE / "files" / "pulse_metrics.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_metric_table_is_what_the_collector_publishes():
    collector = _collector()
    rows = table_rows(readme_section("Metrics (for alarms and dashboards)").split("One datapoint per metric")[1])
    documented = {row[0].strip("`"): row[1] for row in rows}
    assert set(documented) == set(collector.METRICS)
    for name, (unit, _, _) in collector.METRICS.items():
        assert documented[name] == unit, f"{name}: README unit {documented[name]} != {unit}"


def test_readme_dimensions_are_the_collectors():
    rows = table_rows(readme_section("Metrics (for alarms and dashboards)").split("One datapoint per metric")[0])
    assert [row[0].strip("`") for row in rows] == ["Environment", "InstanceId"]
    source = (ROLE / "files" / "pulse_metrics.py").read_text()
    assert 'dimensions = {"Environment": config["environment"], "InstanceId": instance_id}' in source


def test_readme_names_the_namespace_default():
    assert "default **`Pulse`**" in readme()
    assert defaults()["pulse_metrics_namespace"] == "Pulse"
