"""lab/pulse-node/make-release-repo.sh: tags, reproducibility, idempotence,
every tag carrying the current stand-in source, the broken v1.3.0 release
(builds, reports 1.3.0, /health 503, otherwise the current behaviour), v1.4.1
whose own tests fail, and an older stand-in's repository made again."""

import os
import shutil
import signal
import subprocess

from standin_helpers import CRATE, assert_wrapper, http

SCRIPT = CRATE / "make-release-repo.sh"
TAGS = ["v1.1.0", "v1.2.0", "v1.3.0", "v1.4.0", "v1.4.1"]


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


def run_script(dest):
    return subprocess.run(["bash", str(SCRIPT), str(dest)], capture_output=True, text=True, timeout=120, check=False)


def test_release_repo(tmp_path):
    dest = tmp_path / "pulse"
    proc = run_script(dest)
    assert proc.returncode == 0, proc.stderr
    assert git(dest, "tag", "--list").split() == TAGS
    commits = {t: git(dest, "rev-parse", f"{t}^{{commit}}") for t in TAGS}
    assert git(dest, "rev-parse", "main") == commits["v1.2.0"]
    assert git(dest, "symbolic-ref", "HEAD") == "refs/heads/main"
    assert git(dest, "status", "--porcelain") == ""
    for tag, broken, tests_pass in (("v1.1.0", "false", "true"), ("v1.2.0", "false", "true"),
                                    ("v1.3.0", "true", "true"), ("v1.4.0", "false", "true"),
                                    ("v1.4.1", "false", "false")):
        version = tag[1:]
        assert f'version = "{version}"' in git(dest, "show", f"{tag}:node/Cargo.toml")
        assert f'version = "{version}"' in git(dest, "show", f"{tag}:node/Cargo.lock")
        assert f"pub const BROKEN: bool = {broken};" in git(dest, "show", f"{tag}:node/src/build_mode.rs")
        assert f"pub const TESTS_PASS: bool = {tests_pass};" in git(dest, "show", f"{tag}:node/src/build_mode.rs")
        files = git(dest, "ls-tree", "-r", "--name-only", tag).split()
        assert "node/src/main.rs" in files
        # the tag carries this stand-in's current source: only the version, BROKEN and TESTS_PASS differ
        sources = sorted(p.name for p in (CRATE / "src").glob("*.rs"))
        assert sorted(f[len("node/src/"):] for f in files if f.startswith("node/src/")) == sources
        for name in sources:
            if name != "build_mode.rs":
                assert git(dest, "show", f"{tag}:node/src/{name}") == (CRATE / "src" / name).read_text().strip(), name
        assert "signals.rs" in sources and "tx.rs" in sources

    # idempotent: a second run changes nothing
    again = run_script(dest)
    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stdout
    assert {t: git(dest, "rev-parse", f"{t}^{{commit}}") for t in TAGS} == commits

    # reproducible: fixed names and dates give the same commits elsewhere
    other = tmp_path / "elsewhere" / "pulse"
    assert run_script(other).returncode == 0
    assert {t: git(other, "rev-parse", f"{t}^{{commit}}") for t in TAGS} == commits

    # a repository an older version of the script made (without the newest tags) is made again
    older = tmp_path / "older" / "pulse"
    assert run_script(older).returncode == 0
    git(older, "tag", "-d", "v1.4.1")
    remade = run_script(older)
    assert remade.returncode == 0, remade.stderr
    assert "making it again" in remade.stdout
    assert {t: git(older, "rev-parse", f"{t}^{{commit}}") for t in TAGS} == commits
    assert not [p for p in older.parent.iterdir() if p.name != "pulse"]

    # a git repository the script did not make is never replaced
    foreign = tmp_path / "foreign"
    subprocess.run(["git", "init", "-q", str(foreign)], check=True)
    assert run_script(foreign).returncode != 0
    assert not (foreign / "node").exists()

    # a non-empty directory that is not the release repository is refused
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "file").write_text("x")
    assert run_script(junk).returncode != 0


def test_broken_release_builds_and_fails_health(tmp_path, nodes):
    dest = tmp_path / "pulse"
    assert run_script(dest).returncode == 0
    checkout = tmp_path / "checkout"
    subprocess.run(["git", "clone", "-q", "--branch", "v1.3.0", str(dest), str(checkout)],
                   check=True, capture_output=True)
    env = dict(os.environ, CARGO_TARGET_DIR=str(tmp_path / "target"))
    build = subprocess.run([shutil.which("cargo") or "cargo", "build", "--release", "--locked", "--offline"],
                           cwd=checkout / "node", env=env, capture_output=True, text=True, timeout=600, check=False)
    assert build.returncode == 0, build.stderr[-4000:]
    node = nodes.start(binary=tmp_path / "target" / "release" / "pulse-node", name="broken")
    for _ in range(3):
        status, body, _ = http(node.port, "/health")
        assert status == 503
        assert body == {"success": False, "error": "unhealthy"}
    assert node.data("/info")["version"] == "1.3.0"
    assert "deliberately broken build" in node.log()
    # otherwise it behaves as the current stand-in: wrapper without null, ledger routes
    for path in ("/info", "/accounts", "/balance/nobody", "/no/such/route"):
        assert_wrapper(*http(node.port, path)[:2], path)
    assert node.data("/balance/nobody") == {"pubkey": "nobody", "balance": 0}
    status, body, _ = http(node.port, "/tx", method="POST",
                           body={"from": "a", "to": "b", "amount": 1, "signature": "s"})
    assert status == 200 and body["data"]["accepted"] is True
    # SIGINT runs the clean shutdown there too
    node.proc.send_signal(signal.SIGINT)
    assert node.proc.wait(timeout=10) == 0
    node.kill()
    assert "shutting down" in node.log()
