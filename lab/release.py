#!/usr/bin/env python3
"""The lab's release pipeline: what the release workflow does on GitHub, run here against moto.

    make lab-release TAG=v1.4.0          (lab/release.py v1.4.0)

A pushed tag runs these jobs on GitHub (roles/ci_access/templates/release.yml.j2); here the same
steps run in the same order, one release at a time (a lock, as the workflow's concurrency group):

  1. access   ansible-playbook playbooks/ci_access.yml
              the environment's publish and deploy roles (idempotent: usually no change)
  2. test, build, publish
              ansible-playbook playbooks/build_node.yml -e version=TAG -e publish_role_arn=<publish role>
              on the lab's builder instance (Debian 12, the nodes' OS, so the binary has their glibc):
              cargo test --locked, cargo build --release --locked, then bin/pulse-publish - the
              workflow's publish step - under the publish role. A failing test publishes nothing.
  3. deploy   ansible-playbook deploy_node.yml -e version=TAG
              the rolling deploy (drain, switch, gates, register; rollback on a failed gate)

Where the lab differs from GitHub (README, "Releases from GitHub"): the publish role is assumed with
sts:AssumeRole from the controller's lab credentials, not with GitHub's OIDC token (moto checks no
trust policy; tests/integration/test_ci_access.py evaluates it); the build runs on the builder
instance, not in a container on a runner; there is no provenance attestation and no environment
approval. Exit code: that of the first job that failed (0: released and deployed).
"""

from __future__ import annotations

import fcntl
import importlib.machinery
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LAB_DIR = Path(os.environ.get("PULSE_LAB_DIR", REPO / ".lab"))
ENDPOINT = f"http://127.0.0.1:{os.environ.get('PULSE_LAB_MOTO_PORT', '5000')}"


def _release_tag():
    """The release tag pattern of bin/pulse-publish (vX.Y.Z[-pre]), the one the publish step checks."""
    loader = importlib.machinery.SourceFileLoader("pulse_publish", str(REPO / "bin/pulse-publish"))
    spec = importlib.util.spec_from_loader("pulse_publish", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module.RELEASE_TAG


TAG = _release_tag()


def say(message):
    print(f"[lab-release] {message}", flush=True)


def lab_names():
    """pulse_project and pulse_env of the lab inventory (the roles' names derive from them)."""
    import yaml

    env = yaml.safe_load((REPO / "inventories/lab/group_vars/all/env.yml").read_text())
    return env["pulse_project"], env["pulse_env"]


def publish_role_arn(project, env):
    import boto3

    iam = boto3.client("iam", endpoint_url=ENDPOINT, region_name="us-east-1",
                       aws_access_key_id="lab-not-a-secret", aws_secret_access_key="lab-not-a-secret")
    return iam.get_role(RoleName=f"{project}-{env}-ci-publish")["Role"]["Arn"]


def job(name, argv):
    say(f"job {name}: {' '.join(argv)}")
    started = time.monotonic()
    rc = subprocess.run(argv, cwd=REPO, check=False).returncode
    say(f"job {name}: {'passed' if rc == 0 else f'FAILED (exit {rc})'} in {time.monotonic() - started:.0f} s")
    return rc


def main(argv):
    if len(argv) != 1 or not TAG.match(argv[0]):
        got = " ".join(argv) or "(nothing)"
        print("usage: make lab-release TAG=v1.4.0   (lab/release.py TAG)\n"
              f"TAG is the release tag a push would carry: v, then major.minor.patch (got: {got}).",
              file=sys.stderr)
        return 2
    tag = argv[0]
    LAB_DIR.mkdir(parents=True, exist_ok=True)
    with open(LAB_DIR / "release.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("another release is running: waiting for it (one release at a time, as the workflow's concurrency)")
            fcntl.flock(lock, fcntl.LOCK_EX)
        rc = job("access", ["ansible-playbook", "playbooks/ci_access.yml"])
        if rc:
            return rc
        arn = publish_role_arn(*lab_names())
        rc = job("test, build, publish", ["ansible-playbook", "playbooks/build_node.yml",
                                          "-e", f"version={tag}", "-e", f"publish_role_arn={arn}"])
        if rc:
            say(f"{tag} was not published and nothing was deployed")
            return rc
        rc = job("deploy", ["ansible-playbook", "deploy_node.yml", "-e", f"version={tag}"])
        if rc:
            return rc
    say(f"{tag} tested, built, published as {arn} and deployed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
