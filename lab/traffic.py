"""Lab traffic: steady requests through the lab load balancer, and a watch on the target group,
for the tests and benchmarks that judge an operation under traffic.

Traffic goes only to the lab balancer on loopback (127.0.0.1:<https port>). The node
rate-limits query routes to 120/min per client IP, and behind a balancer every request comes
from the balancer, so the traffic is mostly /health (never limited) with one /chain a second.
Every loop here stops by itself (MAX_SECONDS).

    with Traffic(rate=20) as traffic, TargetWatch("pulse-lab-node") as watch:
        ...  # the operation
    traffic.summary()  # {'sent': ..., 'failed': ..., 'statuses': ..., 'p50_ms': ..., 'p99_ms': ...}
"""

import calendar
import re
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lab_alb  # noqa: E402  (lab/lab_alb.py: the container of an ALB)

REPO = Path(__file__).resolve().parent.parent
DOMAIN = "api.lab.pulse.example.com"
MAX_SECONDS = 1200


# The lab balancer's container for the lab's own ALB.
ALB_CONTAINER = lab_alb.container_name("pulse-lab-alb")
# An HAProxy httplog line's status, when it is not 2xx/3xx: after the five timers a/b/c/d/e.
HTTPLOG_NOT_2XX = re.compile(r" -?\d+/-?\d+/-?\d+/-?\d+/-?\d+ [1456]\d\d ")
BACKER_STAMP = re.compile(r"^\[lab (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z\]")


def utc(wall):
    return time.strftime("%H:%M:%S", time.gmtime(wall)) + f".{int(wall % 1 * 1000):03d}Z"


def stamp(line):
    """The epoch time of a backer log line (`[lab 2026-12-02T03:18:40.123Z] ...`), 0 when it
    has none."""
    match = BACKER_STAMP.match(line)
    if not match:
        return 0.0
    return calendar.timegm(time.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S")) + float(match.group(2) or 0)


def aws(service):
    return boto3.client(service, region_name="us-east-2", endpoint_url="http://127.0.0.1:5000",
                        aws_access_key_id="lab-not-a-secret", aws_secret_access_key="lab-not-a-secret")


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else float("nan")


class Traffic(threading.Thread):
    """`rate` requests a second, each in its own thread (a slow answer never slows the rate)."""

    def __init__(self, rate=20, port=8443, domain=DOMAIN, settle=2.0):
        super().__init__(daemon=True)
        self.rate, self.port, self.domain, self.settle = rate, port, domain, settle
        self.stop = threading.Event()
        self.results = []  # (monotonic start, path, ok, seconds, status, wall-clock start)
        self.context = ssl.create_default_context(cafile=str(REPO / ".lab/ca/ca.crt"))
        self._inflight = []

    def one(self, path):
        wall, start = time.time(), time.monotonic()
        status = 0
        try:
            req = urllib.request.Request(f"https://127.0.0.1:{self.port}{path}", headers={"Host": self.domain})
            with urllib.request.urlopen(req, context=self.context, timeout=5) as resp:
                resp.read()
                status = resp.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (urllib.error.URLError, OSError):
            status = 0
        self.results.append((start, path, 200 <= status < 300, time.monotonic() - start, status, wall))

    def run(self):
        interval = 1.0 / self.rate
        deadline = time.monotonic() + MAX_SECONDS
        n = 0
        next_at = time.monotonic()
        while not self.stop.is_set() and time.monotonic() < deadline:
            path = "/chain" if n % self.rate == 0 else "/health"
            thread = threading.Thread(target=self.one, args=(path,), daemon=True)
            thread.start()
            self._inflight.append(thread)
            n += 1
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))

    def __enter__(self):
        self.start()
        time.sleep(self.settle)  # steady state before the operation
        return self

    def __exit__(self, *exc):
        time.sleep(self.settle)
        self.stop.set()
        self.join(10)
        for thread in self._inflight:
            thread.join(6)
        return False

    def failed(self):
        return [r for r in self.results if not r[2]]

    def explain(self, alb_container=ALB_CONTAINER, window=15.0):
        """The failed requests (UTC time, path, status, latency) and, to tell why, what the lab
        balancer logged for them (HAProxy's httplog: server, timers, termination state) and the
        lab backer's lines (reloads, registrations) from `window` seconds before the first
        failure to `window` seconds after the last. For an assertion message."""
        failed = self.failed()
        if not failed:
            return "no failed request"
        first, last = failed[0][5], failed[-1][5]
        lines = [f"{len(failed)} of {len(self.results)} requests failed:"]
        lines += [f"  {utc(r[5])} {r[1]} -> {r[4] or 'no answer'} after {r[3] * 1000:.0f} ms" for r in failed[:20]]
        proc = subprocess.run(
            ["docker", "logs", "--timestamps", "--since", f"{first - window:.3f}", "--until",
             f"{last + window:.3f}", alb_container], capture_output=True, text=True, check=False)
        answers = [line for line in (proc.stdout + proc.stderr).splitlines() if HTTPLOG_NOT_2XX.search(line)]
        lines += [f"lab balancer ({alb_container}), answers other than 2xx/3xx:"] + \
                 [f"  {line}" for line in answers[:40]] + ([f"  ({proc.stderr.strip()[:300]})"] if proc.returncode else [])
        try:
            backer = (REPO / ".lab" / "backer.log").read_text().splitlines()
        except OSError:
            backer = []
        near = [line for line in backer if first - window <= stamp(line) <= last + window]
        lines += ["lab backer (.lab/backer.log) around them:"] + [f"  {line}" for line in near[-60:]]
        return "\n".join(lines)

    def summary(self):
        latencies = [r[3] * 1000 for r in self.results if r[2]]
        failed = self.failed()
        return {
            "sent": len(self.results),
            "failed": len(failed),
            "statuses": sorted({r[4] for r in failed}),
            "p50_ms": percentile(latencies, 50),
            "p99_ms": percentile(latencies, 99),
        }


class TargetWatch(threading.Thread):
    """Per target: when it stopped being healthy and when it was healthy again, as moto reports
    it (in the lab, what the lab load balancer sees); and the most targets out at once, not
    counting ``leaving``: targets meant to go for good (a retired node), which are still tracked."""

    def __init__(self, target_group, interval=0.25, leaving=()):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.interval = interval
        self.left, self.back = {}, {}
        self.leaving = set(leaving)
        self.max_out = 0
        self.elb = aws("elbv2")
        self.arn = self.elb.describe_target_groups(Names=[target_group])["TargetGroups"][0]["TargetGroupArn"]
        self.everyone = set(self.healthy())

    def healthy(self):
        health = self.elb.describe_target_health(TargetGroupArn=self.arn)["TargetHealthDescriptions"]
        return {t["Target"]["Id"] for t in health if t["TargetHealth"]["State"] == "healthy"}

    def run(self):
        deadline = time.monotonic() + MAX_SECONDS
        while not self.stop.is_set() and time.monotonic() < deadline:
            now = self.healthy()
            self.everyone |= now
            out = self.everyone - now
            self.max_out = max(self.max_out, len(out - self.leaving))
            for iid in out:
                if iid not in self.left or iid in self.back:
                    self.left[iid] = time.monotonic()
                    self.back.pop(iid, None)
            for iid in now & set(self.left):
                self.back.setdefault(iid, time.monotonic())
            time.sleep(self.interval)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.join(5)
        return False

    def out_seconds(self):
        """Seconds each target spent out (the last time it left), None if it never came back."""
        return {iid: (self.back[iid] - left if iid in self.back else None) for iid, left in self.left.items()}
