"""app_hosting: meta/argument_specs.yml, defaults/main.yml and the README's variable tables agree,
and the playbooks use the role the way its README says."""

import re

import pytest
import yaml

from conftest import REPO

ROLE = REPO / "roles" / "app_hosting"
ROW_RE = re.compile(r"^\|\s*`(?P<name>(app_hosting|pulse)_[a-z0-9_]+)`\s*\|")


def load(path):
    return yaml.safe_load(path.read_text())


def specs():
    return load(ROLE / "meta" / "argument_specs.yml")["argument_specs"]


def defaults():
    return load(ROLE / "defaults" / "main.yml")


def readme_rows():
    section = (ROLE / "README.md").read_text().split("## Variables", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        match = ROW_RE.match(line)
        if match:
            rows.append(match["name"])
    assert len(rows) == len(set(rows)), "a variable has two rows"
    return set(rows)


def normalise(value):
    return " ".join(value.split()) if isinstance(value, str) else value


def test_entry_points():
    assert set(specs()) == {"main", "deploy", "teardown"}
    for entry in ("main", "deploy", "teardown"):
        assert (ROLE / "tasks" / f"{entry}.yml").is_file()


def test_every_default_is_an_option_with_the_same_default():
    options = {name: spec for entry in specs().values() for name, spec in entry["options"].items()}
    for name, value in defaults().items():
        assert name.startswith("app_hosting_"), name
        assert name in options, f"{name} has no argument spec"
        assert normalise(options[name].get("default")) == normalise(value), name


def test_every_role_option_has_a_default_and_every_option_a_description():
    for entry in specs().values():
        for name, spec in entry["options"].items():
            assert spec.get("description"), name
            if name.startswith("app_hosting_"):
                assert name in defaults(), f"{name}: no default in defaults/main.yml"
            else:
                assert name.startswith("pulse_"), name


def test_the_readme_tables_name_every_main_and_deploy_option():
    wanted = set(specs()["main"]["options"]) | set(specs()["deploy"]["options"])
    assert readme_rows() == wanted
    assert "`app_hosting_teardown_confirm`" in (ROLE / "README.md").read_text()


@pytest.mark.parametrize("inventory, enabled", [("lab", True), ("production", False)])
def test_both_inventories_say_whether_the_app_is_hosted(inventory, enabled):
    app = load(REPO / "inventories" / inventory / "group_vars" / "all" / "app.yml")
    assert app["pulse_app_enabled"] is enabled


def test_site_imports_app_and_teardown_includes_the_role():
    site = load(REPO / "site.yml")
    assert {"ansible.builtin.import_playbook": "playbooks/app.yml"}.items() <= \
        next(p for p in site if p.get("ansible.builtin.import_playbook") == "playbooks/app.yml").items()
    teardown = (REPO / "roles" / "aws_stack" / "tasks" / "teardown.yml").read_text()
    assert "name: pulse.infra.app_hosting\n        tasks_from: teardown" in teardown
    app = (REPO / "playbooks" / "app.yml").read_text()
    assert "pulse_app_enabled" in app and "pulse.infra.app_hosting" in app
    deploy = (REPO / "playbooks" / "deploy_app.yml").read_text()
    assert "tasks_from: deploy" in deploy and "app_dist" in deploy
