#!/usr/bin/env python3
"""Benchmark: steady traffic through the lab load balancer while deploy_node.yml rolls the
cluster, then the same with the broken release. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/rolling_deploy.py [--good v1.1.0] [--broken v1.3.0] [--rate 20]

Needs the lab stack from `make lab` (3 nodes behind the lab load balancer). Traffic goes only
to the lab balancer on 127.0.0.1:8443. The node rate-limits query routes to 120/min per client
IP and behind a balancer every request comes from the balancer, so the traffic is mostly
/health (never limited) with one /chain request a second.
"""

import argparse
import json
import os
import ssl
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
DOMAIN = "api.lab.pulse.example.com"
TARGET_GROUP = "pulse-lab-node"
MAX_SECONDS = 900  # every loop here stops by itself


def aws(service):
    return boto3.client(service, region_name="us-east-2", endpoint_url="http://127.0.0.1:5000",
                        aws_access_key_id="lab-not-a-secret", aws_secret_access_key="lab-not-a-secret")


class Traffic(threading.Thread):
    def __init__(self, rate):
        super().__init__(daemon=True)
        self.rate = rate
        self.stop = threading.Event()
        self.results = []  # (path, ok, seconds, status)
        self.context = ssl.create_default_context(cafile=str(REPO / ".lab/ca/ca.crt"))

    def one(self, path):
        start = time.monotonic()
        status = 0
        try:
            req = urllib.request.Request(f"https://127.0.0.1:8443{path}", headers={"Host": DOMAIN})
            with urllib.request.urlopen(req, context=self.context, timeout=5) as resp:
                resp.read()
                status = resp.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (urllib.error.URLError, OSError):
            status = 0
        self.results.append((path, 200 <= status < 300, time.monotonic() - start, status))

    def run(self):
        interval = 1.0 / self.rate
        deadline = time.monotonic() + MAX_SECONDS
        n = 0
        next_at = time.monotonic()
        while not self.stop.is_set() and time.monotonic() < deadline:
            path = "/chain" if n % self.rate == 0 else "/health"
            threading.Thread(target=self.one, args=(path,), daemon=True).start()
            n += 1
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))


class TargetWatch(threading.Thread):
    """Per node: when it left the target group and when it was back."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.left, self.back = {}, {}
        elb = aws("elbv2")
        self.elb = elb
        self.arn = elb.describe_target_groups(Names=[TARGET_GROUP])["TargetGroups"][0]["TargetGroupArn"]

    def registered(self):
        health = self.elb.describe_target_health(TargetGroupArn=self.arn)["TargetHealthDescriptions"]
        return {t["Target"]["Id"] for t in health if t["TargetHealth"]["State"] != "unused"}

    def run(self):
        everyone = self.registered()
        deadline = time.monotonic() + MAX_SECONDS
        while not self.stop.is_set() and time.monotonic() < deadline:
            now = self.registered()
            for iid in everyone - now:
                self.left.setdefault(iid, time.monotonic())
            for iid in now & set(self.left):
                if iid not in self.back:
                    self.back[iid] = time.monotonic()
            time.sleep(0.2)


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


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else float("nan")


def rollout(version, rate):
    traffic, watch = Traffic(rate), TargetWatch()
    traffic.start()
    watch.start()
    time.sleep(3)  # steady state before the deploy
    start = time.monotonic()
    proc = playbook("deploy_node.yml", "-e", f"version={version}")
    deploy_seconds = time.monotonic() - start
    time.sleep(3)
    traffic.stop.set()
    watch.stop.set()
    traffic.join(10)
    time.sleep(1)
    results = list(traffic.results)
    latencies = [r[2] * 1000 for r in results if r[1]]
    failed = [r for r in results if not r[1]]
    print(f"\n== deploy_node.yml -e version={version}: exit {proc.returncode}")
    print(f"requests sent      {len(results)} ({rate}/s; /chain 1/s, the rest /health)")
    print(f"requests failed    {len(failed)}" + (f"  statuses: {sorted({r[3] for r in failed})}" if failed else ""))
    print(f"latency p50 / p99  {percentile(latencies, 50):.1f} ms / {percentile(latencies, 99):.1f} ms")
    print(f"deploy wall time   {deploy_seconds:.1f} s")
    for iid in sorted(watch.left, key=watch.left.get):
        back = watch.back.get(iid)
        out = f"{back - watch.left[iid]:.1f} s out of the target group" if back else "NOT back in the target group"
        print(f"  node {iid}: {out}")
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
    args = parser.parse_args()
    print(f"versions before    {versions()}")
    for version in (args.good, args.broken, args.restore):
        if version:
            proc = playbook("playbooks/build_node.yml", "-e", f"version={version}")
            if proc.returncode != 0:
                sys.exit(f"build of {version} failed:\n{proc.stdout[-3000:]}")
    rollout(args.good, args.rate)
    rollout(args.broken, args.rate)
    if args.restore:
        rollout(args.restore, args.rate)


if __name__ == "__main__":
    main()
