"""lab/lab_cloudwatch.py: the lab evaluates alarms as CloudWatch does (moto never does)."""

import datetime
import importlib.util
import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "lab"))
spec = importlib.util.spec_from_file_location("lab_cloudwatch", REPO / "lab/lab_cloudwatch.py")
lab_cloudwatch = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lab_cloudwatch)

END = datetime.datetime(2026, 12, 2, 15, 30, tzinfo=datetime.timezone.utc)


def alarm(missing="breaching", comparison="LessThanThreshold", threshold=1.0, periods=2, to_alarm=None):
    out = {"Period": 60, "EvaluationPeriods": periods, "Statistic": "Minimum", "ComparisonOperator": comparison,
           "Threshold": threshold, "TreatMissingData": missing}
    if to_alarm:
        out["DatapointsToAlarm"] = to_alarm
    return out


def point(minutes_before_end, value, stat="Minimum"):
    return {"Timestamp": END - datetime.timedelta(minutes=minutes_before_end), stat: value}


def test_every_period_breaching_is_alarm_and_one_good_period_is_ok():
    assert lab_cloudwatch.verdict(alarm(), [point(2, 0), point(1, 0)], END) == "ALARM"
    assert lab_cloudwatch.verdict(alarm(), [point(2, 0), point(1, 1)], END) == "OK"


def test_missing_data_is_treated_as_the_alarm_says():
    assert lab_cloudwatch.verdict(alarm("breaching"), [], END) == "ALARM"
    assert lab_cloudwatch.verdict(alarm("notBreaching"), [], END) == "OK"
    assert lab_cloudwatch.verdict(alarm("missing"), [], END) == "INSUFFICIENT_DATA"
    assert lab_cloudwatch.verdict(alarm("ignore"), [], END) is None
    # one period missing, the other breaching: "missing" evaluates what is there
    assert lab_cloudwatch.verdict(alarm("missing", to_alarm=1), [point(1, 0)], END) == "ALARM"
    assert lab_cloudwatch.verdict(alarm("missing"), [point(1, 0)], END) == "OK"


def test_datapoints_outside_the_window_and_the_current_minute_do_not_count():
    points = [point(5, 0), point(0, 0), point(-0.5, 0)]  # too old; the end minute itself; after it
    assert lab_cloudwatch.verdict(alarm("notBreaching"), points, END) == "OK"


@pytest.mark.parametrize("comparison,value,state", [
    ("GreaterThanThreshold", 1.0, "OK"), ("GreaterThanThreshold", 1.5, "ALARM"),
    ("GreaterThanOrEqualToThreshold", 1.0, "ALARM"), ("LessThanOrEqualToThreshold", 1.0, "ALARM"),
    ("LessThanThreshold", 1.0, "OK"),
])
def test_comparisons(comparison, value, state):
    assert lab_cloudwatch.verdict(alarm(comparison=comparison, periods=1), [point(1, value)], END) == state


def test_anomaly_bands_and_extended_statistics_are_not_evaluated():
    assert lab_cloudwatch.verdict(alarm(comparison="LessThanLowerThreshold"), [], END) is None
    no_stat = alarm()
    del no_stat["Statistic"]
    assert lab_cloudwatch.verdict(no_stat, [], END) is None


def test_a_host_whose_container_does_not_run_fails_its_status_checks(monkeypatch):
    class EC2:
        def describe_instances(self, **_):
            return {"Reservations": [{"Instances": [{"InstanceId": "i-up"}, {"InstanceId": "i-lost"}]}]}

    monkeypatch.setitem(lab_cloudwatch._clients, "ec2", EC2())
    data = lab_cloudwatch.ec2_metrics(END, {"i-up": {"State": "running"}, "i-lost": {"State": "paused"}})
    values = {(d["Dimensions"][0]["Value"], d["MetricName"]): d["Value"] for d in data}
    assert values[("i-up", "StatusCheckFailed_System")] == 0
    assert values[("i-lost", "StatusCheckFailed_System")] == 1
    assert values[("i-lost", "StatusCheckFailed")] == 1


def test_a_minute_the_lab_missed_is_published_at_its_middle_and_never_more_than_five():
    at = datetime.datetime(2026, 12, 3, 12, 5, 7, tzinfo=datetime.timezone.utc)
    assert lab_cloudwatch.stamps_since(None, at) == [at]
    assert lab_cloudwatch.stamps_since(at.replace(minute=4, second=0), at) == [at]
    assert lab_cloudwatch.stamps_since(at.replace(minute=2, second=0), at) == [
        at.replace(minute=3, second=30), at.replace(minute=4, second=30), at]
    assert len(lab_cloudwatch.stamps_since(at.replace(hour=11, second=0), at)) == lab_cloudwatch.MAX_BACKFILL + 1


def test_each_stamp_gets_the_metrics_as_they_are_now(monkeypatch):
    sent = []

    class CloudWatch:
        def put_metric_data(self, Namespace, MetricData):
            sent.extend((Namespace, d["MetricName"], d["Timestamp"]) for d in MetricData)

    monkeypatch.setitem(lab_cloudwatch._clients, "cloudwatch", CloudWatch())
    monkeypatch.setattr(lab_cloudwatch, "alb_metrics", lambda stamp: [{"MetricName": "HealthyHostCount", "Timestamp": stamp}])
    monkeypatch.setattr(lab_cloudwatch, "ec2_metrics", lambda stamp, _: [{"MetricName": "StatusCheckFailed", "Timestamp": stamp}])
    lab_cloudwatch.publish([END, END + datetime.timedelta(seconds=60)], {})
    assert sent == [("AWS/ApplicationELB", "HealthyHostCount", END), ("AWS/EC2", "StatusCheckFailed", END),
                    ("AWS/ApplicationELB", "HealthyHostCount", END + datetime.timedelta(seconds=60)),
                    ("AWS/EC2", "StatusCheckFailed", END + datetime.timedelta(seconds=60))]
