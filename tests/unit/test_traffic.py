"""Unit tests of lab/traffic.py's failure report: what a test prints when a request failed under
an operation (the time, the balancer's log line for it, the backer's lines around it)."""

import importlib.util
import subprocess
import sys
import time

from conftest import REPO

sys.path.insert(0, str(REPO / "lab"))
spec = importlib.util.spec_from_file_location("lab_traffic", REPO / "lab/traffic.py")
traffic = importlib.util.module_from_spec(spec)
spec.loader.exec_module(traffic)
import labctl  # noqa: E402  (lab/labctl.py)

HTTPLOG = ('2026-12-02T03:18:40.130000000Z 127.0.0.1:51234 [02/Dec/2026:03:18:40.123] https-443~ '
           'tg-pulse-lab-node/i-0abc:8080 0/0/{c}/{r}/{t} {status} 217 - - {flags} 3/3/0/0/0 0/0 "GET /health HTTP/1.1"')


def test_the_httplog_filter_keeps_failed_answers_only():
    failed = HTTPLOG.format(c=-1, r=-1, t=0, status=503, flags="SC--")
    answered = HTTPLOG.format(c=0, r=1, t=1, status=200, flags="----")
    redirected = HTTPLOG.format(c=0, r=1, t=1, status=301, flags="----")
    timed_out = HTTPLOG.format(c=0, r=-1, t=10001, status=504, flags="sH--")
    rate_limited = HTTPLOG.format(c=0, r=1, t=1, status=429, flags="----")
    keep = [line for line in (failed, answered, redirected, timed_out, rate_limited)
            if traffic.HTTPLOG_NOT_2XX.search(line)]
    assert keep == [failed, timed_out, rate_limited]


def test_backer_lines_carry_a_time_that_reads_back(capsys):
    labctl._log_stamps.append(True)
    try:
        before = time.time()
        labctl.log("alb: pulse-lab-alb: reloaded with 3 registered target(s)")
        after = time.time()
    finally:
        labctl._log_stamps.clear()
    line = capsys.readouterr().out.strip()
    assert line.endswith("] alb: pulse-lab-alb: reloaded with 3 registered target(s)")
    assert before - 0.001 <= traffic.stamp(line) <= after + 0.001
    assert traffic.stamp("[lab] a line from `labctl up` (no time)") == 0.0


def test_explain_names_each_failed_request_and_reads_the_balancer_log(monkeypatch, tmp_path):
    calls = []

    def fake_run(argv, **_):
        calls.append(argv)
        out = "\n".join([HTTPLOG.format(c=-1, r=-1, t=0, status=503, flags="SC--"),
                         HTTPLOG.format(c=0, r=1, t=1, status=200, flags="----")])
        return subprocess.CompletedProcess(argv, 0, out, "")

    monkeypatch.setattr(traffic.subprocess, "run", fake_run)
    monkeypatch.setattr(traffic, "REPO", tmp_path)
    (tmp_path / ".lab").mkdir()
    at = 1796181520.5  # 2026-12-02T03:18:40.500Z
    (tmp_path / ".lab/backer.log").write_text(
        "[lab 2026-12-02T03:18:30.000Z] alb: pulse-lab-alb: reloaded with 4 registered target(s)\n"
        "[lab 2026-12-02T03:10:00.000Z] long before: left out\n"
        "[lab] no time: left out\n")
    t = traffic.Traffic.__new__(traffic.Traffic)  # no thread, no TLS context: only its results
    t.results = []
    assert t.explain() == "no failed request"
    t.results = [(1.0, "/health", True, 0.01, 200, at - 1), (2.0, "/health", False, 0.002, 503, at)]
    text = t.explain()
    assert "1 of 2 requests failed" in text
    assert "03:18:40.500Z /health -> 503 after 2 ms" in text
    assert "SC--" in text and " 200 " not in text
    assert "reloaded with 4 registered target(s)" in text and "left out" not in text
    argv = calls[0]
    assert argv[:3] == ["docker", "logs", "--timestamps"] and argv[-1] == traffic.ALB_CONTAINER
    assert float(argv[argv.index("--since") + 1]) == at - 15 and float(argv[argv.index("--until") + 1]) == at + 15
