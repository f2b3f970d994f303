"""app_hosting: meta/argument_specs.yml and defaults/main.yml agree (the README's tables are generated,
tests/unit/test_role_tables.py), and the playbooks use the role the way its README says."""

import pytest
import yaml

from conftest import REPO

ROLE = REPO / "roles" / "app_hosting"


def load(path):
    return yaml.safe_load(path.read_text())


def specs():
    return load(ROLE / "meta" / "argument_specs.yml")["argument_specs"]


def defaults():
    return load(ROLE / "defaults" / "main.yml")


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
