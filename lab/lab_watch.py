"""The lab's instance backer: one process that reconciles the lab with moto every 2 seconds.

Each pass: the instance containers, networks and volumes (labctl.sync), the lab load balancer
(lab_alb.sync) and the lab CDN (lab_cdn.sync). Beside it, in a thread of its own, once a
minute: AWS's own metrics and the alarms' evaluation (lab_cloudwatch.tick). `lab/labctl.py up`
starts it in the background (log: .lab/backer.log) and `down` stops it. The modules it drives
import labctl; labctl imports none of them, so no import goes in a circle.

Usage: python lab/lab_watch.py
"""

import signal
import sys
import threading
import time

import lab_alb  # the lab's load balancer (HAProxy) for moto ALBs; see lab/alb/README.md
import lab_cdn  # the lab's CloudFront edge (nginx) for moto distributions; see lab/cdn/README.md
import lab_cloudwatch  # AWS's own metrics and the alarms' evaluation, which moto does not do
import labctl


SLOW_PASS = 20  # seconds: a pass this long is said in the log


def cloudwatch(running, log, interval=2.0):
    """The CloudWatch stand-in's own loop: AWS publishes its metrics every minute, whatever else
    the lab is doing."""
    while running.is_set():
        lab_cloudwatch.tick(log)  # once a minute; never raises
        time.sleep(interval)


def watch(interval=2.0):
    """Sync forever, never dying on a passing error (each is said in the log)."""
    log = labctl.log
    labctl.stamp_log()
    log("instance backer started")
    image = labctl.image_tag()
    running = threading.Event()
    running.set()
    signal.signal(signal.SIGTERM, lambda *_: running.clear())
    for service in lab_cloudwatch.SERVICES:  # made here: boto3 does not make clients safely in two threads
        lab_cloudwatch.client(service)
    threading.Thread(target=cloudwatch, args=(running, log), name="cloudwatch", daemon=True).start()
    while running.is_set():
        started = time.monotonic()
        try:
            labctl.sync(image=image)
        except Exception as exc:  # keep the lab alive; the error is in backer.log
            log(f"sync failed: {exc}")
        try:
            lab_alb.sync(log)
        except Exception as exc:
            log(f"load balancer sync failed: {exc}")
        lab_cdn.sync(log)  # never raises: says a failure once in the log
        took = time.monotonic() - started
        if took > SLOW_PASS:
            log(f"slow pass: {took:.0f}s")
        time.sleep(interval)
    log("instance backer stopped")
    return 0


if __name__ == "__main__":
    sys.exit(watch())
