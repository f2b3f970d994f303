"""Unit tests for pulse.infra.iam_openid_connect_provider and its module_utils, on moto's mock_aws.

No network and no lab needed: moto runs in-process. moto does not implement
AddClientIDToOpenIDConnectProvider / RemoveClientIDFromOpenIDConnectProvider: audience changes
are tested with botocore's Stubber.
"""

import json
from unittest import mock

import pytest
from botocore.stub import ANY, Stubber

moto = pytest.importorskip("moto")
from moto import mock_aws  # noqa: E402


from ansible_collections.pulse.infra.plugins.module_utils import iam_oidc  # noqa: E402
from ansible_collections.pulse.infra.plugins.modules import iam_openid_connect_provider as module  # noqa: E402
from conftest import answer_after_errors, error_at_once, moto_module_harness  # noqa: E402  (tests/conftest.py)

REGION = "us-east-2"
URL = "https://token.actions.githubusercontent.com"
ARN = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
THUMBS = ["6938fd4d98bab03faadb97b34396831e3780aea1", "1c58a3a8518e8759bf075b76b750d4f2df264fcd"]
aws_env, run_module, iam = moto_module_harness(module, "iam", REGION)


def trust(provider_arn):
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Federated": provider_arn}, "Action": "sts:AssumeRoleWithWebIdentity"}]})


# --------------------------------------------------------------------------- module_utils


@pytest.mark.parametrize("url, key", [
    ("https://token.actions.githubusercontent.com", "token.actions.githubusercontent.com"),
    ("https://Token.Actions.GitHubUserContent.com/", "token.actions.githubusercontent.com"),
    ("token.actions.githubusercontent.com", "token.actions.githubusercontent.com"),
    ("https://oidc.example.com/Tenant/x/", "oidc.example.com/Tenant/x"),
])
def test_provider_key(url, key):
    assert iam_oidc.provider_key(url) == key


def test_arn_key():
    assert iam_oidc.arn_key(ARN) == "token.actions.githubusercontent.com"
    assert iam_oidc.arn_key("arn:aws:iam::123456789012:role/x") is None


def test_client_id_changes():
    assert iam_oidc.client_id_changes(["a", "b"], ["b", "c", "c"], purge=True) == (["c"], ["a"])
    assert iam_oidc.client_id_changes(["a", "b"], ["b", "c"], purge=False) == (["c"], [])
    assert iam_oidc.client_id_changes([], ["a"], purge=True) == (["a"], [])
    assert iam_oidc.client_id_changes(["a"], ["a"], purge=True) == ([], [])


def test_thumbprints_differ_ignores_case_order_and_duplicates():
    assert not iam_oidc.thumbprints_differ([THUMBS[0].upper(), THUMBS[1]], [THUMBS[1], THUMBS[0], THUMBS[0]])
    assert iam_oidc.thumbprints_differ([THUMBS[0]], THUMBS)
    assert iam_oidc.thumbprints_differ(None, THUMBS)


def test_trusts_reads_every_document_form():
    doc = json.loads(trust(ARN))
    assert iam_oidc.trusts(doc, ARN)
    assert iam_oidc.trusts(json.dumps(doc), ARN)
    assert iam_oidc.trusts("%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22"
                           "%2C%22Principal%22%3A%7B%22Federated%22%3A%5B%22" + ARN.replace(":", "%3A").replace("/", "%2F")
                           + "%22%5D%7D%2C%22Action%22%3A%22sts%3AAssumeRoleWithWebIdentity%22%7D%5D%7D", ARN)
    assert not iam_oidc.trusts({"Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}}]}, ARN)
    assert not iam_oidc.trusts({"Statement": {"Effect": "Deny", "Principal": {"Federated": ARN}}}, ARN)
    assert not iam_oidc.trusts(None, ARN)


@mock_aws
def test_find_and_roles_trusting():
    c = iam()
    assert iam_oidc.find_provider(c, URL) == (None, None)
    arn = iam_oidc.create_provider(c, URL, ["sts.amazonaws.com"], THUMBS, {"Project": "pulse"})
    other = iam_oidc.create_provider(c, "https://oidc.example.com", ["x"], [], {})
    found_arn, raw = iam_oidc.find_provider(c, URL + "/")
    assert found_arn == arn and raw["ClientIDList"] == ["sts.amazonaws.com"]
    c.create_role(RoleName="b-role", AssumeRolePolicyDocument=trust(arn))
    c.create_role(RoleName="a-role", AssumeRolePolicyDocument=trust(arn))
    c.create_role(RoleName="other", AssumeRolePolicyDocument=trust(other))
    assert iam_oidc.roles_trusting(c, arn) == ["a-role", "b-role"]
    summary = iam_oidc.summarize(arn, raw)
    assert summary["url"] == "token.actions.githubusercontent.com"
    assert summary["thumbprint_list"] == sorted(THUMBS)
    assert summary["tags"] == {"Project": "pulse"}


def test_calls_are_retried_on_throttling(no_sleep):
    c = iam()
    answer = answer_after_errors(c, "get_open_id_connect_provider", ["Throttling"],
                                 {"Url": "token.actions.githubusercontent.com"}, {"OpenIDConnectProviderArn": ARN},
                                 lambda: iam_oidc.get_provider(c, ARN))
    assert answer["Url"] == "token.actions.githubusercontent.com"


def test_other_errors_are_not_retried(no_sleep):
    c = iam()
    error = error_at_once(c, "delete_open_id_connect_provider", "AccessDenied", lambda: iam_oidc.delete_provider(c, ARN),
                          status=403)
    assert error.response["Error"]["Code"] == "AccessDenied"


# --------------------------------------------------------------------------- the module


@mock_aws
def test_present_creates_then_changes_nothing(capsys):
    args = dict(url=URL, client_id_list=["sts.amazonaws.com"], thumbprint_list=THUMBS,
                tags={"Project": "pulse", "ManagedBy": "pulse.infra.ci_access"})
    rc, first = run_module(capsys, **args)
    assert rc == 0, first
    assert first["changed"] is True
    assert first["arn"] == ARN
    provider = first["open_id_connect_provider"]
    assert provider["client_id_list"] == ["sts.amazonaws.com"]
    assert provider["thumbprint_list"] == sorted(THUMBS)
    assert provider["tags"] == {"Project": "pulse", "ManagedBy": "pulse.infra.ci_access"}

    rc, second = run_module(capsys, **args)
    assert rc == 0 and second["changed"] is False and second["arn"] == ARN
    rc, checked = run_module(capsys, _ansible_check_mode=True, **args)
    assert rc == 0 and checked["changed"] is False
    assert len(iam().list_open_id_connect_providers()["OpenIDConnectProviderList"]) == 1


@mock_aws
def test_check_mode_creates_nothing_and_shows_the_plan(capsys):
    rc, result = run_module(capsys, url=URL, client_id_list=["sts.amazonaws.com"], tags={"Project": "pulse"},
                            _ansible_check_mode=True, _ansible_diff=True)
    assert rc == 0 and result["changed"] is True and result["arn"] is None
    assert result["open_id_connect_provider"]["client_id_list"] == ["sts.amazonaws.com"]
    assert result["diff"]["before"] == {} and result["diff"]["after"]["url"] == "token.actions.githubusercontent.com"
    assert iam().list_open_id_connect_providers()["OpenIDConnectProviderList"] == []


@mock_aws
def test_thumbprints_and_tags_are_updated_and_check_mode_only_reports(capsys):
    run_module(capsys, url=URL, client_id_list=["sts.amazonaws.com"], thumbprint_list=THUMBS[:1],
               tags={"Project": "pulse", "Old": "x"})
    args = dict(url=URL, thumbprint_list=THUMBS, tags={"Project": "pulse", "New": "y"})
    rc, checked = run_module(capsys, _ansible_check_mode=True, _ansible_diff=True, **args)
    assert rc == 0 and checked["changed"] is True
    assert checked["diff"]["after"]["thumbprint_list"] == sorted(THUMBS)
    assert checked["diff"]["after"]["tags"] == {"Project": "pulse", "New": "y"}
    raw = iam().get_open_id_connect_provider(OpenIDConnectProviderArn=ARN)
    assert raw["ThumbprintList"] == THUMBS[:1]

    rc, updated = run_module(capsys, **args)
    assert rc == 0 and updated["changed"] is True
    assert updated["open_id_connect_provider"]["thumbprint_list"] == sorted(THUMBS)
    assert updated["open_id_connect_provider"]["tags"] == {"Project": "pulse", "New": "y"}
    # audiences not given: left alone
    assert updated["open_id_connect_provider"]["client_id_list"] == ["sts.amazonaws.com"]
    rc, again = run_module(capsys, **args)
    assert rc == 0 and again["changed"] is False


@mock_aws
def test_purge_tags_false_only_adds(capsys):
    run_module(capsys, url=URL, client_id_list=["sts.amazonaws.com"], tags={"Owner": "someone-else"})
    rc, result = run_module(capsys, url=URL, tags={"ManagedBy": "pulse.infra.ci_access"}, purge_tags=False)
    assert rc == 0 and result["changed"] is True
    assert result["open_id_connect_provider"]["tags"] == {"Owner": "someone-else", "ManagedBy": "pulse.infra.ci_access"}


def _described(client_ids):
    return {"Url": "token.actions.githubusercontent.com", "ClientIDList": client_ids, "ThumbprintList": [],
            "Tags": []}


def _run_stubbed(capsys, stub_setup, **args):
    client = iam()
    with Stubber(client) as stub:
        stub_setup(stub)
        with mock.patch.object(module.AnsibleAWSModule, "client", return_value=client):
            rc, result = run_module(capsys, **args)
        stub.assert_no_pending_responses()
    return rc, result


def test_audiences_are_added_and_purged(capsys):
    def setup(stub):
        stub.add_response("list_open_id_connect_providers", {"OpenIDConnectProviderList": [{"Arn": ARN}]})
        stub.add_response("get_open_id_connect_provider", _described(["old-audience"]), {"OpenIDConnectProviderArn": ARN})
        stub.add_response("add_client_id_to_open_id_connect_provider", {},
                          {"OpenIDConnectProviderArn": ARN, "ClientID": "sts.amazonaws.com"})
        stub.add_response("remove_client_id_from_open_id_connect_provider", {},
                          {"OpenIDConnectProviderArn": ARN, "ClientID": "old-audience"})
        stub.add_response("get_open_id_connect_provider", _described(["sts.amazonaws.com"]),
                          {"OpenIDConnectProviderArn": ARN})

    rc, result = _run_stubbed(capsys, setup, url=URL, client_id_list=["sts.amazonaws.com"])
    assert rc == 0, result
    assert result["changed"] is True and result["open_id_connect_provider"]["client_id_list"] == ["sts.amazonaws.com"]


def test_audiences_without_purge_are_only_added(capsys):
    def setup(stub):
        stub.add_response("list_open_id_connect_providers", {"OpenIDConnectProviderList": [{"Arn": ARN}]})
        stub.add_response("get_open_id_connect_provider", _described(["other-team"]), {"OpenIDConnectProviderArn": ARN})
        stub.add_response("add_client_id_to_open_id_connect_provider", {},
                          {"OpenIDConnectProviderArn": ARN, "ClientID": "sts.amazonaws.com"})
        stub.add_response("get_open_id_connect_provider", _described(["other-team", "sts.amazonaws.com"]),
                          {"OpenIDConnectProviderArn": ARN})

    rc, result = _run_stubbed(capsys, setup, url=URL, client_id_list=["sts.amazonaws.com"], purge_client_ids=False)
    assert rc == 0, result
    assert result["open_id_connect_provider"]["client_id_list"] == ["other-team", "sts.amazonaws.com"]


def test_audience_change_in_check_mode_calls_nothing(capsys):
    def setup(stub):
        stub.add_response("list_open_id_connect_providers", {"OpenIDConnectProviderList": [{"Arn": ARN}]})
        stub.add_response("get_open_id_connect_provider", _described(["old"]), {"OpenIDConnectProviderArn": ARN})

    rc, result = _run_stubbed(capsys, setup, url=URL, client_id_list=["sts.amazonaws.com"], _ansible_check_mode=True)
    assert rc == 0 and result["changed"] is True
    assert result["open_id_connect_provider"]["client_id_list"] == ["sts.amazonaws.com"]


def test_access_denied_fails_with_advice(capsys):
    def setup(stub):
        stub.add_client_error("list_open_id_connect_providers", service_error_code="AccessDenied",
                              http_status_code=403, service_message="not allowed")

    rc, result = _run_stubbed(capsys, setup, url=URL)
    assert rc == 1 and result["failed"] is True
    assert "iam:CreateOpenIDConnectProvider" in result["msg"] and "AWS_PROFILE" in result["msg"]


def test_create_quota_fails_with_advice(capsys):
    def setup(stub):
        stub.add_response("list_open_id_connect_providers", {"OpenIDConnectProviderList": []})
        stub.add_client_error("create_open_id_connect_provider", service_error_code="LimitExceeded",
                              http_status_code=409, expected_params={"Url": URL, "ClientIDList": ANY})

    rc, result = _run_stubbed(capsys, setup, url=URL, client_id_list=["sts.amazonaws.com"])
    assert rc == 1 and "quota" in result["msg"]


@mock_aws
def test_absent_keeps_a_trusted_provider_unless_forced(capsys):
    _, created = run_module(capsys, url=URL, client_id_list=["sts.amazonaws.com"])
    iam().create_role(RoleName="pulse-production-ci-deploy", AssumeRolePolicyDocument=trust(created["arn"]))
    rc, kept = run_module(capsys, url=URL, state="absent")
    assert rc == 0 and kept["changed"] is False and kept["deleted"] is False
    assert kept["trusted_by"] == ["pulse-production-ci-deploy"]
    assert "pulse-production-ci-deploy" in json.dumps(kept.get("warnings"))
    assert len(iam().list_open_id_connect_providers()["OpenIDConnectProviderList"]) == 1

    rc, checked = run_module(capsys, url=URL, state="absent", force=True, _ansible_check_mode=True)
    assert rc == 0 and checked["changed"] is True and checked["deleted"] is True
    assert len(iam().list_open_id_connect_providers()["OpenIDConnectProviderList"]) == 1
    rc, forced = run_module(capsys, url=URL, state="absent", force=True)
    assert rc == 0 and forced["changed"] is True
    assert iam().list_open_id_connect_providers()["OpenIDConnectProviderList"] == []


@mock_aws
def test_absent_deletes_an_unused_provider_then_changes_nothing(capsys):
    run_module(capsys, url=URL, client_id_list=["sts.amazonaws.com"])
    rc, checked = run_module(capsys, url=URL, state="absent", _ansible_check_mode=True, _ansible_diff=True)
    assert rc == 0 and checked["changed"] is True and checked["diff"]["after"] == {}
    assert len(iam().list_open_id_connect_providers()["OpenIDConnectProviderList"]) == 1
    rc, removed = run_module(capsys, url=URL, state="absent")
    assert rc == 0 and removed["changed"] is True and removed["trusted_by"] == []
    assert iam().list_open_id_connect_providers()["OpenIDConnectProviderList"] == []
    rc, again = run_module(capsys, url=URL, state="absent")
    assert rc == 0 and again["changed"] is False and again["arn"] is None


@pytest.mark.parametrize("args, words", [
    ({"url": "http://token.actions.githubusercontent.com"}, "https://"),
    ({"url": URL, "thumbprint_list": ["abc"]}, "40 hexadecimal"),
    ({"url": URL, "client_id_list": [""]}, "1 to 255"),
    ({}, "url"),
])
def test_argument_errors(capsys, args, words):
    rc, result = run_module(capsys, **args)
    assert rc == 1 and words in result["msg"]


def test_documentation_is_valid_yaml():
    import yaml

    doc = yaml.safe_load(module.DOCUMENTATION)
    assert doc["module"] == "iam_openid_connect_provider"
    assert set(doc["options"]) == {"state", "url", "client_id_list", "purge_client_ids", "thumbprint_list", "force"}
    examples = yaml.safe_load(module.EXAMPLES)
    assert all("name" in task for task in examples)
    ret = yaml.safe_load(module.RETURN)
    assert {"arn", "open_id_connect_provider", "trusted_by", "deleted"} <= set(ret)
