"""Unit tests for the pulse.infra release version filters (plugins/filter/release.py)."""

from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.pulse.infra.plugins.filter import release as f

PUBLISHED = ["v1.1.0", "v1.2.0", "v1.2.3", "v1.3.0-rc.1", "v2.0.0-rc.1", "v2.0.0-rc.2", "latest", "v1.2"]


# release_tag / release_bare / is_release_tag: complete versions


@pytest.mark.parametrize(
    "value, tag",
    [
        ("v1.2.0", "v1.2.0"),
        ("1.2.0", "v1.2.0"),
        ("v1.2.0-rc.1", "v1.2.0-rc.1"),
        ("1.2.0-rc.1", "v1.2.0-rc.1"),
        ("v0.0.0", "v0.0.0"),
        ("v10.20.30", "v10.20.30"),
        ("v1.2.0-alpha-1.beta.0", "v1.2.0-alpha-1.beta.0"),
        ("v1.2.0-0a.1", "v1.2.0-0a.1"),
        (" v1.2.0\n", "v1.2.0"),
    ],
)
def test_release_tag_and_bare_accept_complete_versions(value, tag):
    assert f.release_tag(value) == tag
    assert f.release_bare(value) == tag[1:]
    assert f.is_release_tag(value)
    assert f.is_release_request(value)


@pytest.mark.parametrize(
    "value",
    [
        "v1.2",  # a series, not a release
        "v1",
        "1.2",
        "",
        "v",
        "latest",
        "V1.2.0",  # capital V
        "vv1.2.0",
        "v1.2.0.0",
        "v1.2.x",
        "v01.2.0",  # leading zeros (semver, and cargo, refuse them)
        "v1.02.0",
        "v1.2.00",
        "v1.2.0-",  # empty pre-release
        "v1.2.0-rc..1",
        "v1.2.0-rc.",
        "v1.2.0-rc.01",  # numeric pre-release identifier with a leading zero
        "v1.2.0+build.5",  # build metadata: not a release name
        "v1.2.0-rc_1",
        "v1.2.0 v1.3.0",
        "refs/tags/v1.2.0",
        "pulse-node-v1.2.0",
        None,
        120,
        1.2,
        True,
        ["v1.2.0"],
    ],
)
def test_release_tag_refuses_everything_else(value):
    assert not f.is_release_tag(value)
    with pytest.raises(AnsibleFilterError, match="is not a release version"):
        f.release_tag(value)
    with pytest.raises(AnsibleFilterError, match="is not a release version"):
        f.release_bare(value)


def test_release_tag_error_names_the_value_and_the_forms():
    with pytest.raises(AnsibleFilterError) as err:
        f.release_tag("v1.2")
    assert "'v1.2'" in str(err.value)
    assert "v1.2.0-rc.1" in str(err.value)
    with pytest.raises(AnsibleFilterError, match=r"1\.2 \(float\)"):
        f.release_tag(1.2)


def test_bare_and_tag_round_trip():
    for value in ("v1.2.0", "1.2.0", "v3.0.1-beta.2"):
        assert f.release_tag(f.release_bare(value)) == f.release_tag(value)


# is_release_request: what resolve_release accepts


@pytest.mark.parametrize("value", ["v1", "1", "v1.2", "1.2", "v0", "v0.0", "v10.20", " v1.2 "])
def test_is_release_request_accepts_series(value):
    assert f.is_release_request(value)
    assert not f.is_release_tag(value)


@pytest.mark.parametrize("value", ["", "v", "latest", "v1.", "v1.2.", "v01", "v1.02", "1.x", "v1.2.x", "*", None, 1, 1.2])
def test_is_release_request_refuses_malformed(value):
    assert not f.is_release_request(value)


# release_sort


def test_release_sort_semantic_order():
    # semver.org item 11's own example, plus numbers that sort wrongly as text
    ordered = [
        "v1.0.0-alpha", "v1.0.0-alpha.1", "v1.0.0-alpha.beta", "v1.0.0-beta", "v1.0.0-beta.2",
        "v1.0.0-beta.11", "v1.0.0-rc.1", "v1.0.0", "v1.2.0", "v1.9.0", "v1.10.0", "v2.0.0",
    ]
    shuffled = [ordered[i] for i in (7, 3, 11, 0, 9, 5, 1, 10, 4, 8, 2, 6)]
    assert f.release_sort(shuffled) == ordered
    assert f.release_sort(shuffled, reverse=True) == ordered[::-1]
    assert f.release_sort(shuffled, True) == ordered[::-1]


def test_release_sort_keeps_the_entries_as_written_and_drops_junk():
    assert f.release_sort(["1.10.0", "v1.2.0", "latest", "1.2.0", "v1.2", None, "v1.2.0-rc.1", "v1.2.0"]) == [
        "v1.2.0-rc.1", "v1.2.0", "1.2.0", "v1.2.0", "1.10.0"]
    assert f.release_sort(["v1.2.0", "1.2.0"], reverse=True) == ["v1.2.0", "1.2.0"]  # ties keep their order
    assert f.release_sort([]) == []
    assert f.release_sort(("v2.0.0", "v1.0.0")) == ["v1.0.0", "v2.0.0"]


@pytest.mark.parametrize("value", ["v1.2.0", None, 3])
def test_release_sort_wants_a_list(value):
    with pytest.raises(AnsibleFilterError, match="expects a list"):
        f.release_sort(value)


# resolve_release


@pytest.mark.parametrize(
    "requested, tag",
    [
        ("v1.2", "v1.2.3"),  # newest of the series
        ("1.2", "v1.2.3"),
        ("v1.1", "v1.1.0"),
        ("v1", "v1.2.3"),  # a final release wins over the newer v1.3.0-rc.1
        ("1", "v1.2.3"),
        ("v1.3", "v1.3.0-rc.1"),  # only a pre-release in the series: it is the newest
        ("v2", "v2.0.0-rc.2"),
        ("v1.2.0", "v1.2.0"),  # exactly
        ("1.2.0", "v1.2.0"),
        ("v2.0.0-rc.1", "v2.0.0-rc.1"),
        ("2.0.0-rc.1", "v2.0.0-rc.1"),
        (" v1.2 ", "v1.2.3"),
    ],
)
def test_resolve_release(requested, tag):
    assert f.resolve_release(requested, PUBLISHED) == tag


def test_resolve_release_orders_numerically_not_as_text():
    assert f.resolve_release("v1", ["v1.9.0", "v1.10.0", "v1.2.0"]) == "v1.10.0"
    assert f.resolve_release("v1.2", ["v1.2.9", "v1.2.10"]) == "v1.2.10"
    assert f.resolve_release("v1.3", ["v1.3.0-rc.9", "v1.3.0-rc.10", "v1.3.0-beta"]) == "v1.3.0-rc.10"


def test_resolve_release_counts_only_tags_as_written():
    # a bare 1.9.0 git tag is not the release v1.9.0: returning v1.9.0 would name a missing tag
    assert f.resolve_release("v1", ["1.9.0", "v1.2.0", " v1.8.0", "V1.7.0"]) == "v1.2.0"
    assert f.resolve_release("1.2", ("v1.2.0", "v1.2.1")) == "v1.2.1"  # a tuple is fine
    with pytest.raises(AnsibleFilterError, match=r"no release matches '1\.2\.1' \(exactly v1\.2\.1\); .*: \(none\)$"):
        f.resolve_release("1.2.1", ["1.2.1"])
    with pytest.raises(AnsibleFilterError, match=r"newest first: v1\.2\.0$"):
        f.resolve_release("v1.3", ["v1.2.0", "v1.2.0", "1.3.0"])  # listed once, bare ones left out


@pytest.mark.parametrize(
    "requested, expected",
    [
        ("v7", "'v7' (the newest v7.x.y)"),
        ("v1.4", "'v1.4' (the newest v1.4.x)"),
        ("v1.2.1", "'v1.2.1' (exactly v1.2.1)"),
        ("1.3.0", "'1.3.0' (exactly v1.3.0)"),  # only v1.3.0-rc.1 is there
        ("v2.0.0", "'v2.0.0' (exactly v2.0.0)"),
    ],
)
def test_resolve_release_nothing_matches(requested, expected):
    with pytest.raises(AnsibleFilterError) as err:
        f.resolve_release(requested, PUBLISHED)
    message = str(err.value)
    assert f"no release matches {expected}" in message
    assert message.endswith(
        "available release tags, newest first: v2.0.0-rc.2, v2.0.0-rc.1, v1.3.0-rc.1, v1.2.3, v1.2.0, v1.1.0")


@pytest.mark.parametrize("available", [[], ["latest", "main", "v1.2"]])
def test_resolve_release_nothing_available(available):
    with pytest.raises(AnsibleFilterError, match=r"no release matches 'v1\.2' .*newest first: \(none\)$"):
        f.resolve_release("v1.2", available)


@pytest.mark.parametrize("requested", ["", "latest", "v1.2.x", "V1.2", "v01.2", "v1.2.0.0", None, 1.2, 1])
def test_resolve_release_malformed_request(requested):
    with pytest.raises(AnsibleFilterError, match="is not a version"):
        f.resolve_release(requested, PUBLISHED)


@pytest.mark.parametrize("available", ["v1.2.0", None, 5])
def test_resolve_release_wants_a_list(available):
    with pytest.raises(AnsibleFilterError, match="expects a list"):
        f.resolve_release("v1.2", available)


# plugin wiring and documentation


NAMES = ("release_tag", "release_bare", "is_release_tag", "is_release_request", "resolve_release", "release_sort")


def test_filter_module_exports_everything():
    exported = f.FilterModule().filters()
    assert set(exported) == set(NAMES)
    for name in NAMES:
        assert exported[name] is getattr(f, name)


# the playbooks and roles use these filters, not their own copy of the format

REPO = Path(__file__).resolve().parents[3]
USERS = {
    "roles/rust_build/tasks/preflight.yml": "rust_build_version | pulse.infra.is_release_tag",
    "roles/pulse_node_systemd/tasks/preflight.yml": "pulse_node_systemd_version | pulse.infra.is_release_tag",
    "roles/pulse_node_systemd/vars/main.yml": "pulse_node_systemd_version | string | pulse.infra.release_bare",
    "roles/pulse_rollout/tasks/deploy.yml": "pulse_node_systemd_version | pulse.infra.release_bare",
    "playbooks/deploy_node.yml": "version | pulse.infra.resolve_release(",
    "playbooks/build_node.yml": "pulse_build_version | pulse.infra.resolve_release(",
}


@pytest.mark.parametrize("path", sorted(USERS))
def test_no_copy_of_the_version_format(path):
    text = (REPO / path).read_text()
    assert USERS[path] in text
    for copy in (r"'^v[0-9]+", r"'^v?[0-9]+", r"'^v?\d+", r"'^v\d+", "regex_replace('^v'"):
        assert copy not in text, f"{path} has its own version pattern {copy!r}: use the pulse.infra release filters"


def test_deploy_and_build_resolve_before_anything_changes():
    deploy = yaml.safe_load((REPO / "playbooks/deploy_node.yml").read_text())
    preflight = deploy[0]
    assert preflight["name"].startswith("Preflight") and preflight["hosts"] == "localhost"
    tasks = yaml.dump(preflight["tasks"])
    assert "pulse_deploy_release" in tasks and "amazon.aws.s3_object_info" in tasks
    rollout = next(play for play in deploy if play["name"] == "Roll out the release")
    assert rollout["vars"]["pulse_node_systemd_version"] == "{{ hostvars['localhost'].pulse_deploy_release }}"

    build = yaml.safe_load((REPO / "playbooks/build_node.yml").read_text())[0]
    assert build["vars"]["pulse_build_version"] == "{{ version | default(pulse_node_version) }}"
    assert build["vars"]["rust_build_version"] == "{{ pulse_build_release }}"
    listing = next(t for t in build["pre_tasks"] if "ansible.builtin.command" in t)
    assert listing["ansible.builtin.command"]["argv"][:4] == ["git", "ls-remote", "--tags", "--refs"]
    assert listing["changed_when"] is False and listing["check_mode"] is False
    assert "pulse_build_release" in yaml.dump(build["pre_tasks"])
