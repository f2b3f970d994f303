"""The lab's stand-in for what CloudWatch does by itself (lab only).

moto stores metrics and alarms but publishes none of AWS's own metrics and never evaluates an
alarm. Once a minute, from its own thread of the instance backer (lab/lab_watch.py: a slow pass
of the backer must not delay it), this module:

- publishes the AWS metrics the stack's alarms watch, from what the lab knows:
  - AWS/ApplicationELB HealthyHostCount / UnHealthyHostCount per target group and load balancer,
    from the target health the lab load balancer reports to moto (lab/lab_alb.py);
  - AWS/EC2 StatusCheckFailed, StatusCheckFailed_System and StatusCheckFailed_Instance per running
    instance: 0 while its container runs, 1 while it does not (a lost host or zone:
    `labctl.py outage`);
- evaluates every metric alarm as CloudWatch does: the alarm's statistic over its last
  EvaluationPeriods complete periods, each compared with the threshold, a missing period treated
  by TreatMissingData; ALARM when DatapointsToAlarm (default: all) periods breach, OK when they
  do not, INSUFFICIENT_DATA when no period has data and missing data is "missing". The new state
  is set with SetAlarmState (moto does not run alarm actions: no e-mail, no EC2 recover).
"""

from __future__ import annotations

import datetime
import operator

import labctl

INTERVAL = 60  # CloudWatch's standard resolution
COMPARE = {
    "GreaterThanOrEqualToThreshold": operator.ge,
    "GreaterThanThreshold": operator.gt,
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
}
MISSING = {"breaching": True, "notBreaching": False}  # "missing" and "ignore": not counted
MAX_BACKFILL = 5  # minutes the lab publishes after a gap (a busy machine, a paused backer)
SERVICES = ("cloudwatch", "ec2", "elbv2")  # the clients this module uses
_clients = {}
_last = {}


def client(service):
    return labctl.moto_client(service, _clients)


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


# --------------------------------------------------------------------------- AWS's own metrics


def alb_metrics(now):
    elb = client("elbv2")
    data = []
    for tg in elb.describe_target_groups()["TargetGroups"]:
        health = elb.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])["TargetHealthDescriptions"]
        healthy = sum(1 for t in health if t["TargetHealth"]["State"] == "healthy")
        unhealthy = sum(1 for t in health if t["TargetHealth"]["State"] == "unhealthy")
        for lb_arn in tg.get("LoadBalancerArns", []):
            dims = [{"Name": "LoadBalancer", "Value": lb_arn.split(":loadbalancer/")[-1]},
                    {"Name": "TargetGroup", "Value": tg["TargetGroupArn"].split(":")[-1]}]
            data += [{"MetricName": "HealthyHostCount", "Dimensions": dims, "Value": healthy, "Timestamp": now},
                     {"MetricName": "UnHealthyHostCount", "Dimensions": dims, "Value": unhealthy, "Timestamp": now}]
    return data


def ec2_metrics(now, containers):
    data = []
    reservations = client("ec2").describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["running"]}])["Reservations"]
    for inst in (i for r in reservations for i in r["Instances"]):
        running = containers.get(inst["InstanceId"], {}).get("State") == "running"
        dims = [{"Name": "InstanceId", "Value": inst["InstanceId"]}]
        for name in ("StatusCheckFailed", "StatusCheckFailed_System", "StatusCheckFailed_Instance"):
            data.append({"MetricName": name, "Dimensions": dims, "Value": 0 if running else 1, "Timestamp": now})
    return data


def publish(stamps, containers):
    """AWS's metrics as they are now, at each time of stamps (now, and the middle of any minute
    the lab missed: CloudWatch never misses one, and a missing minute would keep an alarm whose
    missing data is "missing" from ever breaching on all its periods)."""
    cw = client("cloudwatch")
    for stamp in stamps:
        for namespace, data in (("AWS/ApplicationELB", alb_metrics(stamp)), ("AWS/EC2", ec2_metrics(stamp, containers))):
            for start in range(0, len(data), 20):
                cw.put_metric_data(Namespace=namespace, MetricData=data[start:start + 20])


def stamps_since(last_minute, now, most=MAX_BACKFILL):
    """now, after the middles of the minutes between last_minute (the last one published) and
    now's minute, at most `most` of them."""
    minute = now.replace(second=0, microsecond=0)
    missed = []
    if last_minute is not None:
        gap = int((minute - last_minute).total_seconds() // INTERVAL) - 1
        missed = [minute - datetime.timedelta(seconds=INTERVAL * back - INTERVAL // 2)
                  for back in range(min(gap, most), 0, -1)]
    return missed + [now]


# --------------------------------------------------------------------------- alarm evaluation


def verdict(alarm, datapoints, end):
    """The state CloudWatch gives the alarm at `end` (a minute boundary) from the datapoints of
    its last EvaluationPeriods periods; None to keep the current state."""
    period, periods = int(alarm["Period"]), int(alarm["EvaluationPeriods"])
    statistic = alarm.get("Statistic")
    compare = COMPARE.get(alarm.get("ComparisonOperator"))
    if not statistic or compare is None:
        return None  # extended statistics, anomaly bands: not evaluated in the lab
    start = end - datetime.timedelta(seconds=period * periods)
    slots = {}
    for point in datapoints:
        offset = (point["Timestamp"] - start).total_seconds()
        if 0 <= offset < period * periods:
            slots[int(offset // period)] = point[statistic]
    missing = alarm.get("TreatMissingData", "missing")
    breaches = []
    for slot in range(periods):
        if slot in slots:
            breaches.append(compare(float(slots[slot]), float(alarm["Threshold"])))
        elif missing in MISSING:
            breaches.append(MISSING[missing])
    if not breaches:
        return None if missing == "ignore" else "INSUFFICIENT_DATA"
    needed = int(alarm.get("DatapointsToAlarm") or periods)
    return "ALARM" if sum(breaches) >= needed else "OK"


def evaluate(now, log=labctl.log):
    cw = client("cloudwatch")
    end = now.replace(second=0, microsecond=0)
    changed = []
    for page in cw.get_paginator("describe_alarms").paginate():
        for alarm in page["MetricAlarms"]:
            if alarm.get("Metrics") or not alarm.get("MetricName"):
                continue  # metric math: not evaluated in the lab
            period = int(alarm["Period"])
            points = cw.get_metric_statistics(
                Namespace=alarm["Namespace"], MetricName=alarm["MetricName"],
                Dimensions=alarm.get("Dimensions", []), Period=period, Statistics=[alarm["Statistic"]],
                StartTime=end - datetime.timedelta(seconds=period * int(alarm["EvaluationPeriods"])),
                EndTime=end)["Datapoints"] if alarm.get("Statistic") else []
            state = verdict(alarm, points, end)
            if state is None or state == alarm["StateValue"]:
                continue
            cw.set_alarm_state(AlarmName=alarm["AlarmName"], StateValue=state,
                               StateReason=f"lab evaluation at {end.isoformat()} (lab/lab_cloudwatch.py)")
            changed.append((alarm["AlarmName"], alarm["StateValue"], state))
            log(f"cloudwatch: {alarm['AlarmName']} {alarm['StateValue']} -> {state}")
    return changed


def tick(log=labctl.log, now=None):
    """Publish and evaluate once per minute (the backer's CloudWatch thread calls this every 2 s)."""
    now = now or _now()
    minute = now.replace(second=0, microsecond=0)
    if _last.get("minute") == minute:
        return
    stamps = stamps_since(_last.get("minute"), now)
    _last["minute"] = minute
    if len(stamps) > 1:
        log(f"cloudwatch: {len(stamps) - 1} minute(s) missed before {minute.isoformat()}: published as now")
    try:
        publish(stamps, labctl.lab_containers())
        evaluate(now, log)
    except Exception as exc:  # the lab keeps going; said in backer.log
        log(f"cloudwatch: lab evaluation failed: {exc}")
