"""Unit tests for pulse.infra.cloudwatch_dashboard and its module_utils, on moto's mock_aws.

No network and no lab needed: moto runs in-process.
"""

import json

import pytest

moto = pytest.importorskip("moto")
from moto import mock_aws  # noqa: E402


from ansible_collections.pulse.infra.plugins.module_utils import cloudwatch_dashboard as cwd  # noqa: E402
from ansible_collections.pulse.infra.plugins.modules import cloudwatch_dashboard as module  # noqa: E402
from conftest import answer_after_errors, error_at_once, moto_module_harness  # noqa: E402  (tests/conftest.py)

REGION = "us-east-2"
NAME = "pulse-lab-overview"


def widget(title, metrics, x=0, y=0):
    return {"type": "metric", "x": x, "y": y, "width": 12, "height": 6,
            "properties": {"title": title, "region": REGION, "stat": "Maximum", "period": 60,
                           "view": "timeSeries", "metrics": metrics}}


BODY = {"widgets": [
    widget("Chain height", [["Pulse", "ChainHeight", "Environment", "lab", "InstanceId", "i-1", {"label": "node-1"}],
                            ["Pulse", "ChainHeight", "Environment", "lab", "InstanceId", "i-2", {"label": "node-2"}]]),
    widget("ALB 5xx", [["AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", "LoadBalancer", "app/x/1"],
                       [".", "HTTPCode_ELB_5XX_Count", ".", "."]], x=12),
]}
aws_env, run_module, client = moto_module_harness(module, "cloudwatch", REGION)


def stored(name=NAME):
    return json.loads(client().get_dashboard(DashboardName=name)["DashboardBody"])


# --------------------------------------------------------------------------- module_utils


def test_parse_body_accepts_dicts_and_json_and_refuses_the_rest():
    assert cwd.parse_body(BODY) == BODY
    assert cwd.parse_body(json.dumps(BODY, indent=2)) == BODY
    for bad, words in (("{not json", "not valid JSON"), ("[]", "JSON object"), ({"widget": []}, "'widgets'")):
        with pytest.raises(ValueError, match=words):
            cwd.parse_body(bad)


def test_same_body_ignores_whitespace_and_key_order():
    reordered = json.loads(json.dumps(BODY), object_pairs_hook=lambda pairs: dict(reversed(pairs)))
    assert cwd.same_body(json.dumps(BODY, indent=4), reordered)
    changed = json.loads(json.dumps(BODY))
    changed["widgets"][0]["properties"]["period"] = 300
    assert not cwd.same_body(BODY, changed)
    assert not cwd.same_body("{broken", BODY)


def test_widget_metrics_follows_the_dot_shorthand():
    assert cwd.widget_metrics(BODY) == [
        ("Pulse", "ChainHeight", {"Environment": "lab", "InstanceId": "i-1"}),
        ("Pulse", "ChainHeight", {"Environment": "lab", "InstanceId": "i-2"}),
        ("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", {"LoadBalancer": "app/x/1"}),
        ("AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", {"LoadBalancer": "app/x/1"}),
    ]


@mock_aws
def test_get_put_delete_round_trip():
    c = client()
    assert cwd.get_dashboard(c, NAME) is None
    assert cwd.put_dashboard(c, NAME, BODY) == []
    assert json.loads(cwd.get_dashboard(c, NAME)["DashboardBody"]) == BODY
    assert cwd.delete_dashboard(c, NAME) is True
    assert cwd.delete_dashboard(c, NAME) is False


def test_calls_are_retried_on_throttling(no_sleep):
    c = client()
    answer = answer_after_errors(c, "get_dashboard", ["Throttling"],
                                 {"DashboardName": NAME, "DashboardBody": json.dumps(BODY)}, {"DashboardName": NAME},
                                 lambda: cwd.get_dashboard(c, NAME))
    assert json.loads(answer["DashboardBody"]) == BODY


def test_other_errors_are_not_retried(no_sleep):
    c = client()
    error = error_at_once(c, "put_dashboard", "InvalidParameterInput", lambda: cwd.put_dashboard(c, NAME, BODY))
    assert isinstance(error, c.exceptions.DashboardInvalidInputError)


# --------------------------------------------------------------------------- the module


@mock_aws
def test_present_creates_then_no_change(capsys):
    rc, first = run_module(capsys, name=NAME, body=BODY)
    assert rc == 0, first
    assert first["changed"] is True and first["exists"] is True
    assert first["arn"].endswith(f":dashboard/{NAME}")
    assert stored() == BODY
    rc, second = run_module(capsys, name=NAME, body=json.dumps(BODY, indent=2))  # a JSON string
    assert rc == 0 and second["changed"] is False, second
    assert second["body"] == BODY


@mock_aws
def test_check_mode_writes_nothing(capsys):
    rc, result = run_module(capsys, name=NAME, body=BODY, _ansible_check_mode=True, _ansible_diff=True)
    assert rc == 0 and result["changed"] is True, result
    assert result["diff"]["before"] == "" and json.loads(result["diff"]["after"]) == BODY
    assert client().list_dashboards()["DashboardEntries"] == []
    run_module(capsys, name=NAME, body=BODY)
    rc, again = run_module(capsys, name=NAME, body=BODY, _ansible_check_mode=True)
    assert rc == 0 and again["changed"] is False


@mock_aws
def test_a_changed_body_is_written_and_diffed(capsys):
    run_module(capsys, name=NAME, body=BODY)
    new = json.loads(json.dumps(BODY))
    new["widgets"].pop()
    rc, checked = run_module(capsys, name=NAME, body=new, _ansible_check_mode=True, _ansible_diff=True)
    assert checked["changed"] is True and stored() == BODY, "check mode must not write"
    assert json.loads(checked["diff"]["before"]) == BODY and json.loads(checked["diff"]["after"]) == new
    rc, result = run_module(capsys, name=NAME, body=new)
    assert rc == 0 and result["changed"] is True
    assert stored() == new


@mock_aws
def test_absent_deletes_and_is_idempotent(capsys):
    run_module(capsys, name=NAME, body=BODY)
    rc, checked = run_module(capsys, name=NAME, state="absent", _ansible_check_mode=True)
    assert checked["changed"] is True and stored() == BODY
    rc, result = run_module(capsys, name=NAME, state="absent")
    assert rc == 0 and result["changed"] is True and result["exists"] is False
    assert client().list_dashboards()["DashboardEntries"] == []
    rc, again = run_module(capsys, name=NAME, state="absent")
    assert rc == 0 and again["changed"] is False


@mock_aws
@pytest.mark.parametrize("args, words", [
    ({"name": "bad name!", "body": BODY}, "is not valid"),
    ({"name": NAME}, "body"),
    ({"name": NAME, "body": "{oops"}, "not valid JSON"),
    ({"name": NAME, "body": {"title": "no widgets"}}, "'widgets'"),
])
def test_bad_input_fails_with_advice(capsys, args, words):
    rc, result = run_module(capsys, **args)
    assert rc == 1 and result["failed"] is True
    assert words in result["msg"], result["msg"]
    assert client().list_dashboards()["DashboardEntries"] == []
