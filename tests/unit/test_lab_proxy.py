"""Unit tests of lab/lab_proxy.py: what the lab's proxies share (lab_alb's HAProxy containers,
lab_cdn's nginx containers), with Docker faked."""

import json
import re
import subprocess
from types import SimpleNamespace

import pytest

from conftest import REPO, load_lab_module

lab_proxy = load_lab_module("lab/lab_proxy.py", "lab_proxy_under_test")


class LabError(Exception):
    pass


class Docker:
    """labctl.docker: records the calls; `docker ps` answers ps, a command in fail fails."""

    def __init__(self, ps="", fail=()):
        self.calls, self.ps, self.fail = [], ps, fail

    def __call__(self, *args, check=True):
        self.calls.append(args)
        if args[0] in self.fail:
            if check:
                raise LabError(f"docker {args[0]} failed")
            return SimpleNamespace(returncode=1, stdout="", stderr="no such container")
        return SimpleNamespace(returncode=0, stdout=self.ps if args[0] == "ps" else "", stderr="")


@pytest.fixture
def lab(monkeypatch, tmp_path):
    """lab_proxy's labctl, faked: Docker and the images that exist."""
    fake = SimpleNamespace(docker=Docker(), LabError=LabError, LABEL="pulse.lab", LAB_DIR=tmp_path / "lab",
                           IMAGE_LATEST="pulse-lab/debian12-systemd:latest", images=set())
    fake.image_exists = lambda name: name in fake.images
    monkeypatch.setattr(lab_proxy, "labctl", fake)
    return fake


def proxy(tmp_path, what="cdn"):
    """A Proxy whose image directory is tmp_path/<what> (a Dockerfile)."""
    out = lab_proxy.Proxy(what, "nginx from Debian packages")
    assert (out.image_dir, out.image_repo) == (REPO / "lab" / what, f"pulse-lab/{what}")
    out.image_dir = tmp_path / what
    out.image_dir.mkdir(exist_ok=True)
    (out.image_dir / "Dockerfile").write_text("FROM base\n")
    return out


def test_each_proxy_says_a_condition_once_and_again_once_cleared(tmp_path):
    alb, cdn, said = proxy(tmp_path, "alb"), proxy(tmp_path, "cdn"), []
    for _ in range(3):
        alb.once(said.append, "image", "alb: waiting")
        cdn.once(said.append, "image", "cdn: waiting")
    assert said == ["alb: waiting", "cdn: waiting"]
    alb.clear("image")
    alb.once(said.append, "image", "alb: waiting")
    alb.once(said.append, "image", "alb: other")  # another message for the same condition
    assert said[2:] == ["alb: waiting", "alb: other"]
    for _ in range(2):
        alb.announce(said.append, "alb: active")
    assert said.count("alb: active") == 1


def test_lab_alb_and_lab_cdn_keep_their_own_state():
    lab_alb = load_lab_module("lab/lab_alb.py", "lab_alb_for_proxy")
    lab_cdn = load_lab_module("lab/lab_cdn.py", "lab_cdn_for_proxy")
    assert (lab_alb._proxy.what, lab_cdn._proxy.what) == ("alb", "cdn")
    assert lab_alb._proxy.said is not lab_cdn._proxy.said and lab_alb._proxy.build is not lab_cdn._proxy.build
    assert lab_alb.image_tag().startswith("pulse-lab/alb:") and lab_cdn.image_tag().startswith("pulse-lab/cdn:")


def test_the_image_tag_hashes_the_image_directory_but_its_readmes(tmp_path):
    cdn = proxy(tmp_path)
    tag = cdn.image_tag()
    assert re.fullmatch(r"pulse-lab/cdn:[0-9a-f]{12}", tag)
    (tmp_path / "cdn" / "README.md").write_text("notes\n")
    assert cdn.image_tag() == tag
    (tmp_path / "cdn" / "Dockerfile").write_text("FROM base\nRUN true\n")
    assert cdn.image_tag() != tag


@pytest.mark.parametrize("image", ["alb", "cdn"])
def test_the_proxy_images_take_no_lab_code(image):
    """The proxies' Python runs on the host (the backer); their images run HAProxy or nginx
    only, built from lab/alb or lab/cdn alone: lab_proxy.py (like lab_alb.py and lab_cdn.py)
    is in neither build context nor tag."""
    files = sorted(p.name for p in (REPO / "lab" / image).iterdir())
    assert [f for f in files if f.endswith(".py")] == []
    dockerfile = (REPO / "lab" / image / "Dockerfile").read_text()
    assert not re.search(r"^\s*(COPY|ADD)\b", dockerfile, re.M | re.I)


def test_the_image_is_built_in_the_background_once_the_base_image_exists(lab, tmp_path, monkeypatch):
    cdn, said, state = proxy(tmp_path), [], tmp_path / "state"
    for _ in range(2):
        assert cdn.ensure_image(said.append, state) is None
    assert said == ["cdn: base image pulse-lab/debian12-systemd:latest missing: run `labctl up`"]
    lab.images.add(lab.IMAGE_LATEST)
    started = []
    monkeypatch.setattr(lab_proxy, "subprocess", SimpleNamespace(
        Popen=lambda cmd, **kw: started.append(cmd) or SimpleNamespace(poll=lambda: None),
        STDOUT=subprocess.STDOUT, DEVNULL=subprocess.DEVNULL))
    tag = cdn.image_tag()
    assert cdn.ensure_image(said.append, state) is None
    assert started == [["docker", "build", "-q", "--build-arg", "BASE=pulse-lab/debian12-systemd:latest",
                        "--label", "pulse.lab.image=1", "-t", tag, str(tmp_path / "cdn")]]
    assert said[-1] == f"cdn: building {tag} from pulse-lab/debian12-systemd:latest (nginx from Debian packages)"
    assert cdn.ensure_image(said.append, state) is None and len(started) == 1  # still building
    cdn.build["proc"] = SimpleNamespace(poll=lambda: 0, returncode=0)
    lab.images.add(tag)
    assert cdn.ensure_image(said.append, state) == tag
    assert said[-1] == f"cdn: image {tag} built"
    assert ("images", "pulse-lab/cdn", "--format", "{{.Repository}}:{{.Tag}}") in lab.docker.calls  # pruned


def test_containers_are_read_from_their_labels(lab):
    rows = [{"Names": "pulse-lab-cdn-e1", "State": "running",
             "Labels": "pulse.lab=1,pulse.lab.cdn=E1,pulse.lab.cdn.spec=abc,pulse.lab.cdn.lab=/x"},
            {"Names": "pulse-lab-cdn-e2", "State": "exited", "Labels": "pulse.lab.cdn=E2"}]
    lab.docker.ps = "\n".join(json.dumps(row) for row in rows)
    found = lab_proxy.containers("pulse.lab.cdn", "pulse.lab.cdn.spec", "dist", "--filter", "label=pulse.lab.cdn.lab=/x")
    assert lab.docker.calls == [("ps", "-a", "--filter", "label=pulse.lab.cdn", "--filter", "label=pulse.lab.cdn.lab=/x",
                                 "--format", "{{json .}}")]
    assert {name: (info["dist"], info["spec"], info["State"]) for name, info in found.items()} == {
        "pulse-lab-cdn-e1": ("E1", "abc", "running"), "pulse-lab-cdn-e2": ("E2", None, "exited")}


def test_a_container_is_created_with_its_ports_labels_and_volume(lab):
    lab_proxy.create_container("pulse-lab-alb-a", "a", (8443, 8080), [("pulse.lab.alb", "a"), ("pulse.lab.alb.spec", "s")],
                               "/state/a:/etc/haproxy/lab", "pulse-lab/alb:1",
                               network=("--network", "net1", "--ip", "10.0.1.250"), connect=[("net2", "10.0.2.250")])
    assert lab.docker.calls == [
        ("create", "--name", "pulse-lab-alb-a", "--hostname", "a", "--network", "net1", "--ip", "10.0.1.250",
         "-p", "127.0.0.1:8443:443", "-p", "127.0.0.1:8080:80",
         "--label", "pulse.lab=1", "--label", "pulse.lab.alb=a", "--label", "pulse.lab.alb.spec=s",
         "--log-opt", "max-size=10m", "--log-opt", "max-file=2", "-v", "/state/a:/etc/haproxy/lab", "pulse-lab/alb:1"),
        ("network", "connect", "--ip", "10.0.2.250", "net2", "pulse-lab-alb-a"),
        ("start", "pulse-lab-alb-a"),
    ]


def test_a_container_that_cannot_start_is_removed_and_said_once(lab, tmp_path):
    lab.docker.fail = ("start",)
    cdn, said = proxy(tmp_path), []
    for _ in range(2):
        assert cdn.create(said.append, "E1", lab_proxy.create_container, "pulse-lab-cdn-e1", "e1", (8444, 8081), [],
                          "/s:/etc/nginx/lab:ro", "img") is False
    assert ("rm", "-f", "pulse-lab-cdn-e1") in lab.docker.calls
    assert said == ["cdn: E1: cannot start: docker start failed"]
    assert cdn.start_again(said.append, "pulse-lab-cdn-e1", "E1") is False
    assert said[-1] == "cdn: E1: cannot start: no such container"
    lab.docker.fail = ()
    assert cdn.start_again(said.append, "pulse-lab-cdn-e1", "E1") is True
    assert said[-1] == "cdn: E1: container started again"


def test_what_is_gone_is_removed_with_its_state(lab, tmp_path):
    state = tmp_path / "state"
    for name in ("E1", "E2", "E3", "stale"):
        (state / name).mkdir(parents=True)
    found = {"pulse-lab-cdn-e1": {"dist": "E1"}, "pulse-lab-cdn-e2": {"dist": "E2"}}
    said = []
    proxy(tmp_path).remove_gone(said.append, found, "dist", {"E1", "E3"}, state)
    assert lab.docker.calls == [("rm", "-f", "-v", "pulse-lab-cdn-e2")]
    assert said == ["cdn: E2 gone: container removed"]
    assert sorted(p.name for p in state.iterdir()) == ["E1", "E3"]


def test_ports_go_to_the_first_that_claims_them_the_others_are_told_once(tmp_path):
    alb, ports, said = proxy(tmp_path, "alb"), {}, []

    def refusal(clash, owner):
        return f"alb: b: port(s) {clash} already serve ALB {owner}: skipped"

    assert alb.claim_ports(said.append, ports, "a", (8443, 8080), refusal) is True
    for _ in range(2):
        assert alb.claim_ports(said.append, ports, "b", (8443, 9080), refusal) is False
    assert alb.claim_ports(said.append, ports, "c", (9443, 9080), refusal) is True
    assert ports == {8443: "a", 8080: "a", 9443: "c", 9080: "c"}
    assert said == ["alb: b: port(s) [8443] already serve ALB a: skipped"]
    assert alb.claim_ports(said.append, {}, "b", (8443, 9080), refusal) is True  # free again: said again if taken
    alb.claim_ports(said.append, ports, "b", (8443, 9080), refusal)
    assert len(said) == 2


def test_a_failing_pass_is_said_once_and_the_caller_goes_on(tmp_path):
    cdn, said, fail = proxy(tmp_path), [], [True]

    def one_pass(log):
        if fail[0]:
            raise RuntimeError("moto restarting")

    for _ in range(3):
        cdn.keep_going(one_pass, said.append)
    assert said == ["cdn: sync failed: moto restarting"]
    fail[0] = False
    cdn.keep_going(one_pass, said.append)
    fail[0] = True
    cdn.keep_going(one_pass, said.append)
    assert len(said) == 2


def test_the_lock_is_a_file_in_the_lab_directory(lab):
    with lab_proxy.Locked("cdn.lock"):
        assert (lab.LAB_DIR / "cdn.lock").exists()


def test_main_runs_one_pass_and_says_a_lab_error(capsys):
    passes = []
    assert lab_proxy.main([], "doc", lambda: passes.append("watch"), lambda: passes.append("pass")) == 0
    assert lab_proxy.main(["--watch"], "doc", lambda: passes.append("watch"), lambda: passes.append("pass")) == 0
    assert passes == ["pass", "watch"]

    def failing():
        raise lab_proxy.labctl.LabError("moto is not running")

    assert lab_proxy.main([], "doc", None, failing) == 2
    assert "[lab] ERROR: moto is not running" in capsys.readouterr().err
