"""roles/pulse_metrics: the README's metric table lists exactly what the collector publishes, with
its dimensions and namespace; no credential variable. (Its variable table lists every default
once, shown exactly, and the platforms: tests/unit/test_role_docs.py.)"""

import importlib.util

import yaml

from conftest import REPO, markdown_section, markdown_table_rows as table_rows

ROLE = REPO / "roles" / "pulse_metrics"
README = (ROLE / "README.md").read_text()
# The dimension table, then "One datapoint per metric" and the metric table.
DIMENSIONS, _, METRICS = markdown_section(README, "Metrics (for alarms and dashboards)").partition("One datapoint per metric")


def test_no_credential_variable_the_instance_role_gives_them():
    options = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    assert not [name for name in options if name.endswith(("_access_key", "_secret_key"))]


def _collector():
    spec = importlib.util.spec_from_file_location("pulse_metrics_docs", ROLE / "files" / "pulse_metrics.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_metric_table_is_what_the_collector_publishes():
    collector = _collector()
    rows = table_rows(METRICS)
    documented = {row[0].strip("`"): row[1] for row in rows}
    assert set(documented) == set(collector.METRICS)
    for name, (unit, _, _) in collector.METRICS.items():
        assert documented[name] == unit, f"{name}: README unit {documented[name]} != {unit}"


def test_readme_dimensions_are_the_collectors():
    rows = table_rows(DIMENSIONS)
    assert [row[0].strip("`") for row in rows] == ["Environment", "InstanceId"]
    source = (ROLE / "files" / "pulse_metrics.py").read_text()
    assert 'dimensions = {"Environment": config["environment"], "InstanceId": instance_id}' in source


def test_readme_names_the_namespace_default():
    assert "default **`Pulse`**" in README
    assert yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())["pulse_metrics_namespace"] == "Pulse"
