"""The lab's instance backer: one process that reconciles the lab with moto every 2 seconds.

Each pass: the instance containers, networks and volumes (labctl.sync), the lab load balancer
(lab_alb.sync), the lab CDN (lab_cdn.sync) and, once a minute, AWS's own metrics and the alarms'
evaluation (lab_cloudwatch.tick). `lab/labctl.py up` starts it in the background (log:
.lab/backer.log) and `down` stops it. The modules it drives import labctl; labctl imports none
of them, so no import goes in a circle.

Usage: python lab/lab_watch.py
"""

import signal
import sys
import time

import lab_alb  # the lab's load balancer (HAProxy) for moto ALBs; see lab/alb/README.md
import lab_cdn  # the lab's CloudFront edge (nginx) for moto distributions; see lab/cdn/README.md
import lab_cloudwatch  # AWS's own metrics and the alarms' evaluation, which moto does not do
import labctl


def watch(interval=2.0):
    """Sync forever, never dying on a passing error (each is said in the log)."""
    log = labctl.log
    labctl.stamp_log()
    log("instance backer started")
    image = labctl.image_tag()
    running = {"on": True}
    signal.signal(signal.SIGTERM, lambda *_: running.update(on=False))
    while running["on"]:
        try:
            labctl.sync(image=image)
        except Exception as exc:  # keep the lab alive; the error is in backer.log
            log(f"sync failed: {exc}")
        try:
            lab_alb.sync(log)
        except Exception as exc:
            log(f"load balancer sync failed: {exc}")
        lab_cdn.sync(log)  # never raises: says a failure once in the log
        lab_cloudwatch.tick(log)  # once a minute; never raises
        time.sleep(interval)
    log("instance backer stopped")
    return 0


if __name__ == "__main__":
    sys.exit(watch())
