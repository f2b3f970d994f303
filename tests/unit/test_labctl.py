"""Unit tests of lab/labctl.py: device naming, prerequisites, image tag."""

import importlib.util

import pytest

from conftest import REPO

spec = importlib.util.spec_from_file_location("labctl", REPO / "lab/labctl.py")
labctl = importlib.util.module_from_spec(spec)
spec.loader.exec_module(labctl)


def test_extra_volumes_get_nitro_names_in_device_order():
    instance = {
        "RootDeviceName": "/dev/xvda",
        "BlockDeviceMappings": [
            {"DeviceName": "/dev/sdg", "Ebs": {"VolumeId": "vol-2"}},
            {"DeviceName": "/dev/xvda", "Ebs": {"VolumeId": "vol-root"}},
            {"DeviceName": "/dev/sdf", "Ebs": {"VolumeId": "vol-1"}},
        ],
    }
    assert labctl.instance_devices(instance) == [
        ("nvme1n1", "/dev/sdf", "vol-1"),
        ("nvme2n1", "/dev/sdg", "vol-2"),
    ]


def test_no_extra_volumes():
    assert labctl.instance_devices({"BlockDeviceMappings": []}) == []


def test_missing_docker_cli_is_named_with_the_fix(monkeypatch):
    real_which = labctl.shutil.which
    monkeypatch.setattr(labctl.shutil, "which", lambda t: None if t == "docker" else real_which(t))
    problems = labctl.check_prerequisites()
    assert any("apt-get install docker.io" in p for p in problems)


def test_up_stops_with_a_message_not_a_traceback(monkeypatch, capsys):
    monkeypatch.setattr(labctl, "check_prerequisites", lambda *a: ["The Docker engine is not answering: start it."])
    assert labctl.main(["up"]) == 2
    err = capsys.readouterr().err
    assert "the lab cannot start" in err and "Docker engine is not answering" in err


def test_image_tag_follows_the_image_sources():
    tag = labctl.image_tag()
    assert tag.startswith("pulse-lab/debian12-systemd:") and tag == labctl.image_tag()


@pytest.mark.parametrize("sources,expected", [
    ("Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n", "http://mirror.example/debian"),
])
def test_debian_mirror_read_from_deb822(tmp_path, monkeypatch, sources, expected):
    path = tmp_path / "debian.sources"
    path.write_text(sources)
    real_path = labctl.Path
    monkeypatch.setattr(labctl, "Path", lambda p: path if p.endswith("debian.sources") else real_path(tmp_path / "none"))
    assert labctl.debian_mirror() == expected


def lab_imports():
    """lab/'s modules: name -> the lab modules it imports."""
    import ast

    lab = REPO / "lab"
    graph = {}
    for path in lab.glob("*.py"):
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
        graph[path.stem] = {name for name in imported if (lab / f"{name}.py").exists()}
    return graph


def reached(graph, start, seen=()):
    """The modules start imports, directly or not."""
    out = set()
    for name in graph.get(start, ()):
        if name not in seen:
            out |= {name} | reached(graph, name, seen + (name,))
    return out


def test_no_lab_module_imports_another_in_a_circle():
    """labctl is the base: lab_alb, lab_cdn, lab_cloudwatch (and lab_proxy, what lab_alb and
    lab_cdn share) import it, lab_watch imports them all, and labctl imports none of them."""
    graph = lab_imports()
    assert graph["labctl"] == set()
    assert [m for m in graph if m in reached(graph, m)] == []


def test_the_backer_code_hash_covers_every_module_the_backer_runs(tmp_path, monkeypatch):
    """`labctl up` restarts the backer when its code changed: the hash reads every lab module
    lab_watch.py imports, directly or not (lab_alb and lab_cdn import lab_proxy)."""
    runs = {"lab_watch"} | reached(lab_imports(), "lab_watch")
    assert {"lab_alb", "lab_cdn", "lab_proxy", "labctl"} <= runs
    assert sorted(f"{name}.py" for name in runs) == sorted(labctl.BACKER_CODE)
    for name in labctl.BACKER_CODE:
        (tmp_path / name).write_bytes((REPO / "lab" / name).read_bytes())
    monkeypatch.setattr(labctl, "__file__", str(tmp_path / "labctl.py"))
    before = labctl.backer_code_hash()
    for name in labctl.BACKER_CODE:
        path = tmp_path / name
        path.write_text(path.read_text() + "# changed\n")
        assert labctl.backer_code_hash() != before, name
        before = labctl.backer_code_hash()


def test_a_moto_started_from_other_code_is_told_apart(tmp_path, monkeypatch):
    """`labctl up` warns (and does not restart moto, which would lose the lab's state) when the
    running moto was started from another lab/moto_server.py."""
    monkeypatch.setattr(labctl, "LAB_DIR", tmp_path)
    assert not labctl.moto_code_current()  # no stamp: unknown
    (tmp_path / "moto.code").write_text(labctl.moto_code_hash())
    assert labctl.moto_code_current()
    (tmp_path / "moto.code").write_text("0" * 64)
    assert not labctl.moto_code_current()
