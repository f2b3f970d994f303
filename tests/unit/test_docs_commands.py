"""Every shell command the README and the role READMEs show is marked AWS only where it is
shown, or tests/docs_commands.yml says how the lab proves it (tests/docs_commands.py): run as
written by tests/integration/test_operator.py, run by a named integration test, or not a
command at all. A command added to the docs without either fails here."""

import re

import pytest

from conftest import REPO
from docs_commands import aws_only, commands, registry

KINDS = ("run", "node", "test", "not_a_command", "not_run")


def shown():
    return sorted({c for _, _, c, place, column in commands() if not aws_only(c, place, column)})


def entries():
    return {e["command"]: e for e in registry()}


def test_every_command_is_aws_only_or_says_how_the_lab_proves_it():
    missing = [c for c in shown() if c not in entries()]
    assert missing == [], "add these to tests/docs_commands.yml (or mark them AWS only where shown):\n" + \
        "\n".join(missing)


def test_the_registry_names_only_commands_the_docs_show():
    stale = sorted(set(entries()) - set(shown()))
    assert stale == [], f"no longer in the docs (or now AWS only): {stale}"


@pytest.mark.parametrize("command", sorted({e["command"] for e in registry()}))
def test_each_entry_is_one_kind_and_its_test_exists(command):
    entry = entries()[command]
    kinds = [k for k in KINDS if k in entry]
    assert len(kinds) == 1, f"{command}: one of {KINDS}, got {kinds}"
    assert set(entry) <= {"command", *KINDS, "run_as"}, entry
    if "run_as" in entry:
        assert kinds == ["run"] or kinds == ["node"], entry
    if "test" in entry:
        path, _, name = entry["test"].partition("::")
        assert (REPO / path).is_file(), f"{command}: {path} does not exist"
        if path == ".ci/run":
            assert "make test" in (REPO / path).read_text()
        else:
            assert re.search(rf"^def {re.escape(name)}\(", (REPO / path).read_text(), re.M), \
                f"{command}: no test {name} in {path}"
    else:
        assert str(entry[kinds[0]]).strip(), f"{command}: say what to expect, or why"


def test_commands_are_found_in_blocks_spans_and_tables(tmp_path, monkeypatch):
    import docs_commands

    doc = tmp_path / "README.md"
    doc.write_text("\n".join([
        "Run it:",
        "",
        "```sh",
        "make lab     # the lab",
        "curl --cacert x \\",
        "  https://example/chain  # joined",
        "```",
        "",
        "Then `ansible-playbook site.yml` and, AWS only, `aws s3 ls s3://b/`.",
        "",
        "| what | lab | AWS |",
        "|---|---|---|",
        "| status | `make status` | `aws ssm get-parameter --name x` |",
        "",
        "```yaml",
        "make: not a shell block",
        "```",
    ]) + "\n")
    monkeypatch.setattr(docs_commands, "DOCS", [doc])
    found = [(line, c, aws_only(c, place, column)) for _, line, c, place, column in docs_commands.commands()]
    assert found == [
        (4, "make lab", False),
        (4, "curl --cacert x https://example/chain", False),
        (9, "ansible-playbook site.yml", True),  # the paragraph says AWS only: a mixed paragraph is the writer's call
        (9, "aws s3 ls s3://b/", True),
        (13, "make status", False),
        (13, "aws ssm get-parameter --name x", True),
    ]
