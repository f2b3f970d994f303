"""roles/ci_access: meta/argument_specs.yml and defaults/main.yml describe the same variables with the
same defaults (the README's table is generated, tests/unit/test_role_tables.py); the policy documents are what the README says."""

import re

import pytest
import yaml

from conftest import REPO

ROLE = REPO / "roles" / "ci_access"
SPECS = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]
OPTIONS = {name: spec for entry in SPECS.values() for name, spec in entry["options"].items()}
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
VARS = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
README = (ROLE / "README.md").read_text()
TYPES = {"str": str, "dict": dict, "list": list, "bool": bool, "int": int}


def test_entry_points():
    assert set(SPECS) == {"main", "teardown", "workflow"}
    for name in ("main.yml", "teardown.yml", "workflow.yml"):
        assert (ROLE / "tasks" / name).is_file()


def test_same_variables_everywhere():
    role_options = {o for o in OPTIONS if o.startswith("ci_access_")}
    required = {o for o in role_options if OPTIONS[o].get("required")}
    assert set(DEFAULTS) == role_options - required, "defaults/main.yml and argument_specs.yml differ"


def test_environment_values_have_no_role_default():
    assert not [o for o in DEFAULTS if o.startswith("pulse_")]
    for name, spec in OPTIONS.items():
        if name.startswith("pulse_"):
            assert "default" not in spec, f"{name}: environment values come from the inventory"


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_argument_spec_matches_defaults(name):
    spec, value = OPTIONS[name], DEFAULTS[name]
    assert isinstance(value, TYPES[spec["type"]]), f"{name}: default {value!r} is not a {spec['type']}"
    assert spec["default"] == value, f"{name}: argument_specs.yml says {spec['default']!r}, defaults/main.yml {value!r}"
    assert spec.get("description"), name


def test_same_option_same_spec_in_every_entry_point():
    seen = {}
    for entry in SPECS.values():
        for name, spec in entry["options"].items():
            assert seen.setdefault(name, spec) == spec, f"{name} is described differently in two entry points"


def test_secrets_are_no_log():
    assert OPTIONS["pulse_aws_secret_key"].get("no_log") is True


def test_actions_are_pinned_to_full_commits():
    for key, action in DEFAULTS["ci_access_workflow_actions"].items():
        assert re.match(r"^[\w-]+/[\w./-]+@[0-9a-f]{40}$", action["uses"]), key
        assert re.match(r"^v\d+\.\d+\.\d+$", action["version"]), key
        assert action["uses"].split("@")[1] in README or action["version"] in README


def test_policy_documents_name_the_concerns():
    publish = {s["Sid"]: s for s in VARS["_ci_access_publish_policy"]["Statement"]}
    assert set(publish) == {"AddNewReleaseObjectsOnly", "LookUpReleasesBeforeWriting", "NeverAnUnconditionalWrite",
                            "NeverDeleteOrAlter", "RecordNewReleasesOnce", "NeverRewriteAReleaseRecord",
                            "NeverDeleteAReleaseRecord"}
    assert publish["NeverRewriteAReleaseRecord"]["Condition"] == {"StringEquals": {"ssm:Overwrite": "true"}}
    assert publish["AddNewReleaseObjectsOnly"]["Condition"] == {"StringEquals": {"s3:if-none-match": "*"}}
    assert publish["NeverAnUnconditionalWrite"]["Effect"] == "Deny"
    deploy = [s["Sid"] for s in VARS["_ci_access_deploy_policy"]["Statement"]]
    assert len(deploy) == len(set(deploy)), "one Sid per concern"
    actions = {a for s in VARS["_ci_access_deploy_policy"]["Statement"]
               for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert not any(a.startswith("s3:Put") or a.startswith("s3:Delete") for a in actions)
    assert "*" not in actions and not any(a.endswith(":*") for a in actions)
