"""Unit tests for pulse.infra.cloudfront_response_headers_policy and its module_utils, on moto's
mock_aws (in-process, no network, no lab).

moto 5.2 answers 404 for response headers policies: the lab's moto patch (lab/moto_server.py,
LabCloudFront) adds them, and these tests install the same patch in-process, so they check the
module and the lab's emulation together. Also here: an origin access control still used by a
distribution cannot be deleted (LabCloudFront, as CloudFront does).
"""

import pytest

moto = pytest.importorskip("moto")
from moto import mock_aws  # noqa: E402

from ansible_collections.pulse.infra.plugins.module_utils import cloudfront_config as cfc  # noqa: E402
from ansible_collections.pulse.infra.plugins.modules import cloudfront_origin_access_control as oac_module  # noqa: E402
from ansible_collections.pulse.infra.plugins.modules import cloudfront_response_headers_policy as module  # noqa: E402
from conftest import load_lab_module, moto_module_harness, run_module_main  # noqa: E402  (tests/conftest.py)

REGION = "us-east-1"
NAME = "pulse-lab-app-security-headers"
API = "https://api.lab.pulse.example.com"
SECURITY = {
    "strict_transport_security": {"max_age": 63072000, "include_subdomains": True},
    "content_type_options": {},
    "frame_options": {"frame_option": "DENY"},
    "referrer_policy": {"referrer_policy": "strict-origin-when-cross-origin"},
    "content_security_policy": {"content_security_policy": f"default-src 'self'; connect-src 'self' {API}"},
}
CUSTOM = [{"header": "Permissions-Policy", "value": "camera=()"}, {"header": "X-Pulse", "value": "lab"}]


aws_env, run_module, client = moto_module_harness(module, "cloudfront", REGION)


@pytest.fixture(autouse=True, scope="module")
def lab_cloudfront():
    """The lab's CloudFront patch, in this process (installing it twice is harmless)."""
    load_lab_module("lab/moto_server.py", "lab_moto_server").LabCloudFront().install()


def run_oac_module(capsys, **args):
    return run_module_main(oac_module, capsys, REGION, **args)


def stored():
    items = client().list_response_headers_policies(Type="custom")["ResponseHeadersPolicyList"].get("Items") or []
    return {i["ResponseHeadersPolicy"]["ResponseHeadersPolicyConfig"]["Name"]: i["ResponseHeadersPolicy"] for i in items}


def distribution(oac_id="", policy_id=None):
    behavior = {"TargetOriginId": "app", "ViewerProtocolPolicy": "redirect-to-https",
                "CachePolicyId": "658327ea-f89d-4fab-a63d-7e88639e58f6"}
    if policy_id:
        behavior["ResponseHeadersPolicyId"] = policy_id
    return client().create_distribution(DistributionConfig={
        "CallerReference": "pulse-lab-app", "Comment": "", "Enabled": True,
        "Origins": {"Quantity": 1, "Items": [{"Id": "app", "DomainName": "b.s3.us-east-2.amazonaws.com",
                                              "S3OriginConfig": {"OriginAccessIdentity": ""},
                                              "OriginAccessControlId": oac_id}]},
        "DefaultCacheBehavior": behavior})["Distribution"]


# --------------------------------------------------------------------------- module_utils


def test_config_from_the_options():
    config = cfc.response_headers_policy_config(NAME, "c", {
        "strict_transport_security": {"max_age": 10, "include_subdomains": True, "preload": False, "override": True},
        "content_type_options": {"override": True},
        "xss_protection": {"protection": True, "mode_block": True, "report_uri": None, "override": False},
    }, [{"header": "X-A", "value": "1", "override": True}], ["Server"])
    assert config == {
        "Name": NAME, "Comment": "c",
        "SecurityHeadersConfig": {
            "StrictTransportSecurity": {"Override": True, "IncludeSubdomains": True, "Preload": False,
                                        "AccessControlMaxAgeSec": 10},
            "ContentTypeOptions": {"Override": True},
            "XSSProtection": {"Override": False, "Protection": True, "ModeBlock": True}},
        "CustomHeadersConfig": {"Quantity": 1, "Items": [{"Header": "X-A", "Value": "1", "Override": True}]},
        "RemoveHeadersConfig": {"Quantity": 1, "Items": [{"Header": "Server"}]},
    }


def test_same_policy_config_ignores_quantities_order_and_empty_parts():
    wanted = cfc.response_headers_policy_config(NAME, "", None, [
        {"header": "X-B", "value": "2", "override": True}, {"header": "X-A", "value": "1", "override": True}])
    current = {"Name": NAME, "Comment": "", "CorsConfig": {},
               "CustomHeadersConfig": {"Quantity": 2, "Items": [{"Header": "X-A", "Value": "1", "Override": True},
                                                                {"Header": "X-B", "Value": "2", "Override": True}]},
               "RemoveHeadersConfig": {"Quantity": 0}}
    assert cfc.same_policy_config(current, wanted)
    current["CustomHeadersConfig"]["Items"][0]["Value"] = "other"
    assert not cfc.same_policy_config(current, wanted)


# --------------------------------------------------------------------------- the module


@mock_aws
def test_present_creates_then_no_change(capsys):
    rc, first = run_module(capsys, name=NAME, comment="Pulse lab app", security_headers=SECURITY, custom_headers=CUSTOM)
    assert rc == 0 and first["changed"] is True, first
    config = stored()[NAME]["ResponseHeadersPolicyConfig"]
    security = config["SecurityHeadersConfig"]
    assert security["StrictTransportSecurity"] == {"Override": True, "IncludeSubdomains": True, "Preload": False,
                                                   "AccessControlMaxAgeSec": 63072000}
    assert security["ContentTypeOptions"] == {"Override": True}
    assert security["FrameOptions"]["FrameOption"] == "DENY"
    assert security["ReferrerPolicy"]["ReferrerPolicy"] == "strict-origin-when-cross-origin"
    assert API in security["ContentSecurityPolicy"]["ContentSecurityPolicy"]
    assert {h["Header"] for h in config["CustomHeadersConfig"]["Items"]} == {"Permissions-Policy", "X-Pulse"}
    rc, second = run_module(capsys, name=NAME, comment="Pulse lab app", security_headers=SECURITY,
                            custom_headers=list(reversed(CUSTOM)))
    assert rc == 0 and second["changed"] is False, second
    assert second["id"] == first["id"]
    assert second["response_headers_policy"]["etag"] == first["response_headers_policy"]["etag"], "not rewritten"


@mock_aws
def test_check_mode_writes_nothing(capsys):
    rc, result = run_module(capsys, name=NAME, security_headers=SECURITY, _ansible_check_mode=True, _ansible_diff=True)
    assert rc == 0 and result["changed"] is True and result["id"] is None, result
    assert result["diff"]["before"] == "" and "StrictTransportSecurity" in result["diff"]["after"]
    assert stored() == {}


@mock_aws
def test_a_changed_header_is_updated_in_place(capsys):
    _, first = run_module(capsys, name=NAME, security_headers=SECURITY)
    changed = dict(SECURITY, frame_options={"frame_option": "SAMEORIGIN"})
    rc, checked = run_module(capsys, name=NAME, security_headers=changed, _ansible_check_mode=True, _ansible_diff=True)
    assert checked["changed"] is True and '"SAMEORIGIN"' in checked["diff"]["after"]
    assert stored()[NAME]["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]["FrameOptions"]["FrameOption"] == "DENY"
    rc, result = run_module(capsys, name=NAME, security_headers=changed)
    assert rc == 0 and result["changed"] is True and result["id"] == first["id"]
    assert stored()[NAME]["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]["FrameOptions"]["FrameOption"] == "SAMEORIGIN"


@mock_aws
def test_absent_refuses_while_in_use_then_deletes(capsys):
    _, created = run_module(capsys, name=NAME, security_headers=SECURITY)
    dist = distribution(policy_id=created["id"])
    rc, refused = run_module(capsys, name=NAME, state="absent")
    assert rc == 1 and "still used by a distribution" in refused["msg"], refused
    client().delete_distribution(Id=dist["Id"], IfMatch="any")
    rc, result = run_module(capsys, name=NAME, state="absent")
    assert rc == 0 and result["changed"] is True and stored() == {}
    rc, again = run_module(capsys, name=NAME, state="absent")
    assert rc == 0 and again["changed"] is False


@mock_aws
def test_origin_access_control_in_use_cannot_be_deleted(capsys):
    _, oac = run_oac_module(capsys, name="pulse-lab-app")
    dist = distribution(oac_id=oac["id"])
    origin = client().get_distribution_config(Id=dist["Id"])["DistributionConfig"]["Origins"]["Items"][0]
    assert origin["OriginAccessControlId"] == oac["id"], "the lab's moto keeps the origin's OAC id"
    assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}
    rc, refused = run_oac_module(capsys, name="pulse-lab-app", state="absent")
    assert rc == 1 and "still used by a distribution" in refused["msg"], refused
    client().delete_distribution(Id=dist["Id"], IfMatch="any")
    rc, result = run_oac_module(capsys, name="pulse-lab-app", state="absent")
    assert rc == 0 and result["changed"] is True


@mock_aws
@pytest.mark.parametrize("args, words", [
    ({"name": "bad name!"}, "is not valid"),
    ({"name": NAME, "security_headers": {"content_security_policy": {"content_security_policy": "x" * 1784}}},
     "at most 1783"),
    ({"name": NAME, "security_headers": {"frame_options": {"frame_option": "ALLOW"}}}, "frame_option"),
])
def test_bad_input_fails_with_advice(capsys, args, words):
    rc, result = run_module(capsys, **args)
    assert rc == 1 and result["failed"] is True
    assert words in result["msg"], result["msg"]
    assert stored() == {}
