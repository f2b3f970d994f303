#!/usr/bin/python3
"""Check the fake node's "tick N" lines in the given files (concatenated in order): for the
newest process id, every number once, without gaps. Prints JSON (with the number of tick lines
in the last file); exit 1 on a problem."""

import json
import re
import sys

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+0000 \S+ pulse-node\[(\d+)\]: INFO pulse_node: tick (\d+)$")
ticks, bad, in_last_file = [], 0, 0
for index, path in enumerate(sys.argv[1:], start=1):
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            match = LINE.match(line.rstrip("\n"))
            if match:
                ticks.append((int(match.group(1)), int(match.group(2))))
                in_last_file += index == len(sys.argv) - 1
            elif " pulse-node[" in line and "tick" in line:
                bad += 1
pid = ticks[-1][0] if ticks else None
numbers = [n for p, n in ticks if p == pid]
dups = len(numbers) - len(set(numbers))
gaps = [(a, b) for a, b in zip(numbers, numbers[1:]) if b != a + 1]
result = {"pid": pid, "count": len(numbers), "first": numbers[0] if numbers else None,
          "last": numbers[-1] if numbers else None, "duplicates": dups, "gaps": gaps[:5], "malformed": bad, "in_last_file": in_last_file}
print(json.dumps(result))
sys.exit(0 if numbers and not dups and not gaps and not bad else 1)
