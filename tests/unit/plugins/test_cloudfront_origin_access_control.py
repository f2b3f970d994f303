"""Unit tests for pulse.infra.cloudfront_origin_access_control and its module_utils, on moto's
mock_aws (in-process, no network, no lab)."""


import pytest

moto = pytest.importorskip("moto")
from moto import mock_aws  # noqa: E402


from ansible_collections.pulse.infra.plugins.module_utils import cloudfront_config as cfc  # noqa: E402
from ansible_collections.pulse.infra.plugins.modules import cloudfront_origin_access_control as module  # noqa: E402
from conftest import answer_after_errors, moto_module_harness  # noqa: E402  (tests/conftest.py)

REGION = "us-east-1"
NAME = "pulse-lab-app"
aws_env, run_module, client = moto_module_harness(module, "cloudfront", REGION)


def stored():
    items = client().list_origin_access_controls()["OriginAccessControlList"].get("Items") or []
    return {i["Name"]: i for i in items}


# --------------------------------------------------------------------------- module_utils


def test_same_oac_config_ignores_a_missing_description():
    wanted = cfc.oac_config(NAME, "", "s3", "always", "sigv4")
    current = dict(wanted)
    del current["Description"]
    assert cfc.same_oac_config(current, wanted)
    assert not cfc.same_oac_config(dict(wanted, SigningBehavior="no-override"), wanted)
    assert not cfc.same_oac_config(None, wanted)


@mock_aws
def test_find_create_update_delete_round_trip():
    c = client()
    assert cfc.OAC.find(c, name=NAME) == (None, None)
    oac, etag = cfc.OAC.create(c, cfc.oac_config(NAME, "d", "s3", "always", "sigv4"))
    found, found_etag = cfc.OAC.find(c, name=NAME)
    assert found["Id"] == oac["Id"] and found_etag
    assert cfc.OAC.find(c, item_id=oac["Id"])[0]["Id"] == oac["Id"]
    cfc.OAC.update(c, oac["Id"], found_etag, cfc.oac_config(NAME, "", "s3", "never", "sigv4"))
    assert cfc.OAC.summarize(*cfc.OAC.find(c, name=NAME))["signing_behavior"] == "never"
    assert cfc.OAC.delete(c, oac["Id"], found_etag) is True
    assert cfc.OAC.find(c, name=NAME) == (None, None)
    assert cfc.OAC.get(c, "NOSUCHID") == (None, None)


def test_calls_are_retried_on_throttling(no_sleep):
    c = client()
    answer = {"OriginAccessControl": {"Id": "E1", "OriginAccessControlConfig": cfc.oac_config(
        NAME, "", "s3", "always", "sigv4")}, "ETag": "E1V1"}
    oac, etag = answer_after_errors(c, "get_origin_access_control", ["Throttling"], answer, {"Id": "E1"},
                                    lambda: cfc.OAC.get(c, "E1"))
    assert oac["Id"] == "E1" and etag == "E1V1"


# --------------------------------------------------------------------------- the module


@mock_aws
def test_present_creates_then_no_change(capsys):
    rc, first = run_module(capsys, name=NAME, description="Pulse lab app bucket")
    assert rc == 0 and first["changed"] is True, first
    assert first["exists"] is True and first["id"]
    assert first["origin_access_control"]["origin_type"] == "s3"
    assert first["origin_access_control"]["signing_behavior"] == "always"
    assert stored()[NAME]["Description"] == "Pulse lab app bucket"
    rc, second = run_module(capsys, name=NAME, description="Pulse lab app bucket")
    assert rc == 0 and second["changed"] is False, second
    assert second["id"] == first["id"]
    assert len(stored()) == 1


@mock_aws
def test_check_mode_writes_nothing_and_predicts(capsys):
    rc, result = run_module(capsys, name=NAME, _ansible_check_mode=True, _ansible_diff=True)
    assert rc == 0 and result["changed"] is True and result["id"] is None, result
    assert result["diff"]["before"] == "" and "signing_behavior: always" in result["diff"]["after"]
    assert stored() == {}
    run_module(capsys, name=NAME)
    rc, again = run_module(capsys, name=NAME, _ansible_check_mode=True)
    assert rc == 0 and again["changed"] is False


@mock_aws
def test_changed_settings_are_updated_in_place(capsys):
    _, first = run_module(capsys, name=NAME)
    rc, checked = run_module(capsys, name=NAME, signing_behavior="no-override", _ansible_check_mode=True,
                             _ansible_diff=True)
    assert checked["changed"] is True and stored()[NAME]["SigningBehavior"] == "always", "check mode must not write"
    assert "signing_behavior: no-override" in checked["diff"]["after"]
    rc, result = run_module(capsys, name=NAME, signing_behavior="no-override")
    assert rc == 0 and result["changed"] is True and result["id"] == first["id"]
    assert stored()[NAME]["SigningBehavior"] == "no-override"


@mock_aws
def test_absent_deletes_and_is_idempotent(capsys):
    run_module(capsys, name=NAME)
    rc, checked = run_module(capsys, name=NAME, state="absent", _ansible_check_mode=True)
    assert checked["changed"] is True and NAME in stored()
    rc, result = run_module(capsys, name=NAME, state="absent")
    assert rc == 0 and result["changed"] is True and result["exists"] is False
    assert stored() == {}
    rc, again = run_module(capsys, name=NAME, state="absent")
    assert rc == 0 and again["changed"] is False


@mock_aws
@pytest.mark.parametrize("args, words", [
    ({"name": "x" * 65}, "1 to 64 characters"),
    ({"name": NAME, "description": "d" * 257}, "at most 256"),
    ({"name": NAME, "signing_behavior": "sometimes"}, "signing_behavior"),
])
def test_bad_input_fails_with_advice(capsys, args, words):
    rc, result = run_module(capsys, **args)
    assert rc == 1 and result["failed"] is True
    assert words in result["msg"], result["msg"]
    assert stored() == {}
