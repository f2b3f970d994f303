"""Runs end without warnings an operator cannot act on: ansible.cfg hides deprecations, the
tests show them and allow only conftest.KNOWN_DEPRECATIONS (code we do not own)."""

import configparser
import types

from conftest import KNOWN_DEPRECATIONS, REPO, PlaybookResult, ansible_env


def result(output):
    return PlaybookResult(types.SimpleNamespace(returncode=0, stdout=output))


def test_operators_see_no_deprecations_and_no_implicit_localhost_warning():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "ansible.cfg")
    assert cfg.getboolean("defaults", "deprecation_warnings") is False
    assert cfg.getboolean("defaults", "localhost_warning") is False


def test_the_tests_see_every_deprecation():
    assert ansible_env()["ANSIBLE_DEPRECATION_WARNINGS"] == "True"


def test_only_known_deprecations_pass():
    known = "[DEPRECATION WARNING]: Passing `disable_lookups` to `template` is deprecated. This feature will be removed"
    output = "\n".join([
        known,
        "[WARNING]: Found variable using reserved name 'tags'.",
        "Origin: <unknown>",
        "[DEPRECATION WARNING]: Importing 'to_text' from 'ansible.module_utils._text' is deprecated.",
        "ok: [localhost]  [WARNING] in a task's output is not a warning line",
    ])
    assert result(output).unexpected_warnings() == [
        "[WARNING]: Found variable using reserved name 'tags'.",
        "[DEPRECATION WARNING]: Importing 'to_text' from 'ansible.module_utils._text' is deprecated.",
    ]
    assert result(known).unexpected_warnings() == []


def test_every_known_deprecation_names_its_source():
    assert all(source for source in KNOWN_DEPRECATIONS.values())
    assert "Found variable using reserved name" not in " ".join(KNOWN_DEPRECATIONS)
