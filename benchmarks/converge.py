#!/usr/bin/env python3
"""Benchmark: site.yml from nothing, the no-op re-run, and a one-variable change, for N nodes
(default 3 and 10, plus the builder). Prints figures; asserts nothing.

    .venv/bin/python benchmarks/converge.py [--nodes 3 10] [--keep]

Per run: wall time, time per play, tasks per host (from the recap), the slowest tasks (from
profile_tasks), and the lab's memory (the lab containers' RSS, docker stats). Needs the lab up
(`make lab-up`) and nothing else using it: each N starts by tearing the lab environment down
(`playbooks/teardown.yml -e confirm=lab -e destroy_data=true`). With --keep the last stack is
left up; otherwise the standard 3-node stack is converged again at the end.
"""

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)", re.M)
# profile_tasks: "Tuesday 01 December 2026  15:37:04 +0000 (0:00:00.830)       0:02:18.782 ******"
STAMP = re.compile(r"\((\d+):(\d+):([\d.]+)\)\s+(\d+):(\d+):([\d.]+)")
SLOW = re.compile(r"^(.+?) -+ ([\d.]+)s$", re.M)


def seconds(h, m, s):
    return int(h) * 3600 + int(m) * 60 + float(s)


def playbook(path, *args, extra=None):
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), PATH=f"{VENV_BIN}:{os.environ['PATH']}",
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    cmd = [str(VENV_BIN / "ansible-playbook"), path, *args]
    for key, value in (extra or {}).items():
        cmd += ["-e", json.dumps({key: value})]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          check=False)
    return proc, time.monotonic() - start


def per_play(output):
    """(play name, seconds) from the cumulative profile_tasks stamps at each play's first task."""
    plays, current, first_stamp = [], None, None
    marks = []
    for line in output.splitlines():
        if line.startswith("PLAY [") and not line.startswith("PLAY RECAP"):
            current = line[6:line.index("]")]
            marks.append([current, None])
        else:
            m = STAMP.search(line)
            if m and marks and marks[-1][1] is None:
                marks[-1][1] = seconds(*m.groups()[3:]) - seconds(*m.groups()[:3])
            if m:
                first_stamp = seconds(*m.groups()[3:])
    for i, (name, start) in enumerate(marks):
        if start is None:
            continue
        end = next((s for _, s in marks[i + 1:] if s is not None), first_stamp)
        plays.append((name, max(0.0, (end or start) - start)))
    return plays


def lab_memory_mib():
    proc = subprocess.run(["docker", "stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}"],
                          text=True, capture_output=True, check=False)
    total = 0.0
    for line in proc.stdout.splitlines():
        name, usage = line.split(" ", 1)
        if not (name.startswith("i-") or name.startswith("pulse-lab")):
            continue
        value = usage.split("/")[0].strip()
        number = float(re.match(r"[\d.]+", value).group(0))
        unit = value[len(re.match(r"[\d.]+", value).group(0)):]
        total += number * {"B": 1 / 2**20, "KiB": 1 / 1024, "MiB": 1, "GiB": 1024}.get(unit, 1)
    moto = subprocess.run(["ps", "-o", "rss=", "-p", (REPO / ".lab/moto.pid").read_text().strip()],
                          text=True, capture_output=True, check=False).stdout.strip()
    return total, (int(moto) / 1024 if moto else 0.0)


def report(title, proc, wall):
    recap = {m.group(1): sum(int(m.group(i)) for i in (2, 5, 6)) for m in RECAP.finditer(proc.stdout)}
    changed = {m.group(1): int(m.group(3)) for m in RECAP.finditer(proc.stdout)}
    print(f"\n== {title}: exit {proc.returncode}, wall {wall:.1f} s, changed {sum(changed.values())}")
    for name, secs in per_play(proc.stdout):
        print(f"   play  {secs:7.1f} s  {name}")
    nodes = [h for h in recap if "-node-" in h]
    if nodes:
        print(f"   tasks per host: localhost {recap.get('localhost', 0)}, builder "
              f"{max([recap[h] for h in recap if '-builder-' in h] or [0])}, node "
              f"{min(recap[h] for h in nodes)}-{max(recap[h] for h in nodes)}")
    tail = proc.stdout[proc.stdout.rfind("TASKS RECAP"):] if "TASKS RECAP" in proc.stdout else ""
    for name, secs in SLOW.findall(tail)[:8]:
        print(f"   slow  {float(secs):7.1f} s  {name.strip()}")
    if proc.returncode != 0:
        print(proc.stdout[-3000:])
    return wall


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, nargs="+", default=[3, 10])
    parser.add_argument("--keep", action="store_true", help="leave the last stack up")
    args = parser.parse_args()
    print(f"{datetime.date.today()} {platform.node()} {os.cpu_count()} cores, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB")
    results = {}
    for count in args.nodes:
        extra = {"pulse_node_count": count}
        proc, _ = playbook("playbooks/teardown.yml", extra={"confirm": "lab", "destroy_data": True})
        if proc.returncode != 0:
            sys.exit(f"teardown failed:\n{proc.stdout[-3000:]}")
        first = report(f"{count} nodes: site.yml from nothing", *playbook("site.yml", extra=extra))
        noop = report(f"{count} nodes: site.yml again (no-op)", *playbook("site.yml", extra=extra))
        change = report(f"{count} nodes: site.yml with one variable changed (--interval)",
                        *playbook("site.yml", extra={**extra, "pulse_node_systemd_interval": 2500}))
        containers, moto = lab_memory_mib()
        print(f"   lab memory: containers {containers:.0f} MiB, moto {moto:.0f} MiB")
        results[count] = (first, noop, change)
    print("\n| nodes | from nothing | no-op | no-op / first | one change |")
    print("|---|---|---|---|---|")
    for count, (first, noop, change) in results.items():
        print(f"| {count} + builder | {first:.0f} s | {noop:.0f} s | {noop / first:.2f} | {change:.0f} s |")
    if len(results) >= 2:
        small, big = min(results), max(results)
        print(f"\n{big}/{small} nodes: first {results[big][0] / results[small][0]:.2f}, "
              f"no-op {results[big][1] / results[small][1]:.2f}")
    if not args.keep:
        playbook("playbooks/teardown.yml", extra={"confirm": "lab", "destroy_data": True})
        playbook("site.yml")


if __name__ == "__main__":
    main()
