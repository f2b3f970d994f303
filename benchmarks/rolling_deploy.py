#!/usr/bin/env python3
"""Benchmark: steady traffic through the lab load balancer while deploy_node.yml rolls the
cluster, then the same with the broken release. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/rolling_deploy.py [--good v1.1.0] [--broken v1.3.0] [--rate 20] [--serial 20%]

Needs the lab stack from `make lab` (3 nodes behind the lab load balancer). Traffic goes only
to the lab balancer on 127.0.0.1:8443. The node rate-limits query routes to 120/min per client
IP and behind a balancer every request comes from the balancer, so the traffic is mostly
/health (never limited) with one /chain request a second.
"""

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "lab"))
from traffic import TargetWatch, Traffic, aws  # noqa: E402  (lab/traffic.py)

VENV_BIN = Path(sys.executable).parent
TARGET_GROUP = "pulse-lab-node"


def versions():
    ec2 = aws("ec2")
    out = {}
    for r in ec2.describe_instances(Filters=[{"Name": "tag:Env", "Values": ["lab"]},
                                             {"Name": "tag:Role", "Values": ["node"]},
                                             {"Name": "instance-state-name", "Values": ["running"]}])["Reservations"]:
        for i in r["Instances"]:
            name = {t["Key"]: t["Value"] for t in i["Tags"]}["Name"]
            try:
                with urllib.request.urlopen(f"http://{i['PrivateIpAddress']}:8080/info", timeout=5) as resp:
                    out[name] = json.loads(resp.read())["data"]["version"]
            except OSError as exc:
                out[name] = f"unreachable ({exc})"
    return dict(sorted(out.items()))


def playbook(*args):
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), PATH=f"{VENV_BIN}:{os.environ['PATH']}")
    return subprocess.run([str(VENV_BIN / "ansible-playbook"), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False)


def rollout(version, rate, serial="1"):
    with Traffic(rate, settle=3) as traffic, TargetWatch(TARGET_GROUP) as watch:
        start = time.monotonic()
        proc = playbook("deploy_node.yml", "-e", f"version={version}", "-e", f"pulse_rollout_serial={serial}")
        deploy_seconds = time.monotonic() - start
    figures = traffic.summary()
    print(f"\n== deploy_node.yml -e version={version} -e pulse_rollout_serial={serial}: exit {proc.returncode}")
    print(f"requests sent      {figures['sent']} ({rate}/s; /chain 1/s, the rest /health)")
    print(f"requests failed    {figures['failed']}" + (f"  statuses: {figures['statuses']}" if figures["failed"] else ""))
    print(f"latency p50 / p99  {figures['p50_ms']:.1f} ms / {figures['p99_ms']:.1f} ms")
    print(f"deploy wall time   {deploy_seconds:.1f} s")
    for iid, seconds in sorted(watch.out_seconds().items(), key=lambda kv: watch.left[kv[0]]):
        out = f"{seconds:.1f} s not healthy in the target group" if seconds is not None else "NOT healthy again"
        print(f"  node {iid}: {out}")
    print(f"most nodes out     {watch.max_out} at once")
    print(f"versions after     {versions()}")
    if proc.returncode != 0:
        lines = [line for line in proc.stdout.splitlines() if "STOPPED" in line or "is not published" in line]
        print("deploy message     " + (lines[0].strip() if lines else proc.stdout[-500:]))
    return proc.returncode


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--good", default="v1.1.0")
    parser.add_argument("--broken", default="v1.3.0")
    parser.add_argument("--rate", type=int, default=20)
    parser.add_argument("--restore", default="v1.2.0", help="version to deploy at the end ('' to skip)")
    parser.add_argument("--serial", default="1", help="nodes per batch: a number or a percentage (pulse_rollout_serial)")
    args = parser.parse_args()
    print(f"versions before    {versions()}")
    print(f"nodes per batch    {args.serial}")
    for version in (args.good, args.broken, args.restore):
        if version:
            proc = playbook("playbooks/build_node.yml", "-e", f"version={version}")
            if proc.returncode != 0:
                sys.exit(f"build of {version} failed:\n{proc.stdout[-3000:]}")
    rollout(args.good, args.rate, args.serial)
    if args.broken:
        rollout(args.broken, args.rate, args.serial)
    if args.restore:
        rollout(args.restore, args.rate, args.serial)


if __name__ == "__main__":
    main()
