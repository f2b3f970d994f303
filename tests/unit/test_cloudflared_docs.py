"""roles/cloudflared: meta/argument_specs.yml, defaults/main.yml and the README's variable table
describe the same variables with the same defaults."""

import re

import pytest
import yaml

from conftest import REPO

ROLE = REPO / "roles" / "cloudflared"
SPEC = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
README = (ROLE / "README.md").read_text()
ROW_RE = re.compile(r"^\| `(?P<name>cloudflared_[a-z0-9_]+)` \| (?P<default>[^|]+?) \| (?P<description>[^|]+?) \|$", re.M)


def readme_rows():
    section = README.split("## Variables", 1)[1].split("\n## ", 1)[0]
    return {m["name"]: m["default"].strip() for m in ROW_RE.finditer(section)}


def readme_default(value):
    """How the README table writes a default: `value`, `""` for an empty string, `{}`."""
    if value == "":
        return '`""`'
    if isinstance(value, (dict, list)):
        return f"`{yaml.safe_dump(value, default_flow_style=True).strip()}`"
    return f"`{value}`"


def test_same_variables_everywhere():
    assert set(SPEC) == set(DEFAULTS), "argument_specs.yml and defaults/main.yml list different variables"
    assert set(readme_rows()) == set(SPEC), "the README's variable table and argument_specs.yml differ"


def test_readme_table_order_follows_argument_specs():
    assert list(readme_rows()) == list(SPEC)


@pytest.mark.parametrize("name", sorted(SPEC))
def test_readme_default_matches(name):
    cell = readme_rows()[name]
    if SPEC[name].get("required"):
        assert cell == "(required)", f"{name} is required; the README says {cell}"
    else:
        assert cell == readme_default(DEFAULTS[name]), f"{name}: README says {cell}, defaults/main.yml {DEFAULTS[name]!r}"


def test_version_pin_is_a_release_and_no_unchecked_download():
    assert re.fullmatch(r"20[2-9][0-9]\.[0-9]{1,2}\.[0-9]+", DEFAULTS["cloudflared_version"])
    # No sha256 is shipped that could not be checked here: a download needs the user's sha256.
    assert DEFAULTS["cloudflared_download_sha256"] == ""
    preflight = (ROLE / "tasks" / "preflight.yml").read_text()
    assert "cloudflared_download_sha256 is match('^[0-9a-f]{64}$')" in preflight
    install = (ROLE / "tasks" / "install.yml").read_text()
    assert install.count('checksum: "sha256:{{ cloudflared_download_sha256 }}"') == 2
