"""Unit tests for pulse.infra.acm_certificate_request and its module_utils, on moto's mock_aws.

No network and no lab needed: moto runs in-process.
"""


import pytest

moto = pytest.importorskip("moto")
from moto import mock_aws  # noqa: E402
from moto import settings as moto_settings  # noqa: E402


from ansible_collections.pulse.infra.plugins.module_utils import acm_request as acm  # noqa: E402
from ansible_collections.pulse.infra.plugins.modules import acm_certificate_request as module  # noqa: E402
from conftest import answer_after_errors, error_at_once, moto_module_harness  # noqa: E402  (tests/conftest.py)

REGION = "us-east-2"
DOMAIN = "api.lab.pulse.example.com"
aws_env, run_module, client = moto_module_harness(module, "acm", REGION)


@pytest.fixture
def acm_issues_after(monkeypatch):
    """Set how many seconds moto keeps a DNS-validated certificate PENDING_VALIDATION."""

    def setter(seconds):
        monkeypatch.setattr(moto_settings, "ACM_VALIDATION_WAIT", seconds)

    setter(3600)
    return setter


# --------------------------------------------------------------------------- module_utils


def test_wanted_and_certificate_names():
    assert acm.wanted_names("API.example.com.", ["www.example.com", "api.example.com"]) == [
        "api.example.com", "www.example.com"]
    cert = {"DomainName": "api.example.com", "SubjectAlternativeNames": ["api.example.com", "www.example.com"]}
    assert acm.certificate_names(cert) == ["api.example.com", "www.example.com"]


def test_validation_records_dedupes_and_skips_missing():
    cert = {
        "DomainValidationOptions": [
            {"DomainName": "a.example.com", "ValidationStatus": "PENDING_VALIDATION",
             "ResourceRecord": {"Name": "_x.a.example.com.", "Type": "CNAME", "Value": "_y.acm-validations.aws."}},
            {"DomainName": "*.a.example.com", "ValidationStatus": "PENDING_VALIDATION",
             "ResourceRecord": {"Name": "_x.a.example.com.", "Type": "CNAME", "Value": "_y.acm-validations.aws."}},
            {"DomainName": "b.example.com", "ValidationStatus": "PENDING_VALIDATION"},
        ]
    }
    assert acm.validation_records(cert) == [
        {"domain_name": "a.example.com", "name": "_x.a.example.com.", "type": "CNAME",
         "value": "_y.acm-validations.aws.", "validation_status": "PENDING_VALIDATION"}
    ]
    assert not acm.records_complete(cert)
    assert not acm.records_complete({})


def test_select_prefers_exact_names_and_usable_status():
    pending = ({"DomainName": DOMAIN, "SubjectAlternativeNames": [DOMAIN], "Status": "PENDING_VALIDATION"}, {})
    failed = ({"DomainName": DOMAIN, "SubjectAlternativeNames": [DOMAIN], "Status": "FAILED"}, {})
    other_sans = ({"DomainName": DOMAIN, "SubjectAlternativeNames": [DOMAIN, "x.example.com"], "Status": "ISSUED"}, {})
    assert acm.select_certificate([failed, other_sans, pending], DOMAIN, []) == pending
    assert acm.select_certificate([failed, other_sans], DOMAIN, []) is None
    assert acm.select_certificate([other_sans], DOMAIN, ["x.example.com"]) == other_sans


@mock_aws
def test_find_certificates_by_domain_and_name_tag(acm_issues_after):
    c = client()
    a = acm.request_certificate(c, DOMAIN, [], {"Name": "pulse-lab-api"}, "RSA_2048", "tok1")
    acm.request_certificate(c, DOMAIN, [], {"Name": "someone-else"}, "RSA_2048", "tok2")
    acm.request_certificate(c, "other.example.com", [], {"Name": "pulse-lab-api"}, "RSA_2048", "tok3")
    found = acm.find_certificates(c, domain_name=DOMAIN, name_tag="pulse-lab-api")
    assert [cert["CertificateArn"] for cert, _ in found] == [a]
    assert found[0][1] == {"Name": "pulse-lab-api"}
    assert len(acm.find_certificates(c, domain_name=DOMAIN)) == 2
    assert acm.find_certificates(c, arn=a)[0][0]["DomainName"] == DOMAIN
    missing = a.rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000"
    assert acm.find_certificates(c, arn=missing) == []


@mock_aws
def test_wait_for_gives_up_on_timeout():
    c = client()
    arn = acm.request_certificate(c, DOMAIN, [], {}, "RSA_2048", "tok")
    now = [0.0]
    cert, ok = acm.wait_for(
        c, arn, lambda x: x["Status"] == "ISSUED", timeout=10, sleep=5,
        clock=lambda: now[0], pause=lambda s: now.__setitem__(0, now[0] + s),
    )
    assert not ok and cert["Status"] == "PENDING_VALIDATION"


def test_calls_are_retried_on_throttling(no_sleep):
    c = client()
    arn = "arn:aws:acm:us-east-2:123456789012:certificate/abc"
    cert = answer_after_errors(c, "describe_certificate", ["ThrottlingException", "Throttling"],
                               {"Certificate": {"CertificateArn": arn, "Status": "ISSUED"}}, {"CertificateArn": arn},
                               lambda: acm.describe_certificate(c, arn))
    assert cert["Status"] == "ISSUED"


def test_other_errors_are_not_retried(no_sleep):
    c = client()
    error = error_at_once(c, "delete_certificate", "ResourceInUseException",
                          lambda: acm.delete_certificate(c, "arn:aws:acm:us-east-2:123456789012:certificate/abc"))
    assert isinstance(error, c.exceptions.ResourceInUseException)


# --------------------------------------------------------------------------- the module


@mock_aws
def test_present_requests_then_reuses(capsys, acm_issues_after):
    rc, first = run_module(capsys, domain_name=DOMAIN, name_tag="pulse-lab-api", tags={"Env": "lab"})
    assert rc == 0, first
    assert first["changed"] is True
    assert first["status"] == "PENDING_VALIDATION"
    assert first["certificate_arn"].startswith("arn:aws:acm:us-east-2:")
    assert first["certificate"]["tags"] == {"Env": "lab", "Name": "pulse-lab-api"}
    [record] = first["validation_records"]
    assert record["type"] == "CNAME" and record["name"].endswith(DOMAIN + ".")

    rc, second = run_module(capsys, domain_name=DOMAIN, name_tag="pulse-lab-api", tags={"Env": "lab"})
    assert rc == 0 and second["changed"] is False
    assert second["certificate_arn"] == first["certificate_arn"]
    assert len(client().list_certificates()["CertificateSummaryList"]) == 1


@mock_aws
def test_present_in_check_mode_requests_nothing(capsys, acm_issues_after):
    rc, result = run_module(capsys, domain_name=DOMAIN, name_tag="pulse-lab-api", _ansible_check_mode=True)
    assert rc == 0 and result["changed"] is True
    assert result["certificate_arn"] is None and result["validation_records"] == []
    assert client().list_certificates()["CertificateSummaryList"] == []


@mock_aws
def test_check_mode_on_existing_certificate_is_no_change(capsys, acm_issues_after):
    run_module(capsys, domain_name=DOMAIN, name_tag="pulse-lab-api")
    rc, result = run_module(capsys, domain_name=DOMAIN, name_tag="pulse-lab-api", _ansible_check_mode=True)
    assert rc == 0 and result["changed"] is False and result["certificate_arn"]


@mock_aws
def test_tags_are_updated_and_check_mode_only_reports(capsys, acm_issues_after):
    _, first = run_module(capsys, domain_name=DOMAIN, name_tag="pulse-lab-api", tags={"Env": "lab"})
    arn = first["certificate_arn"]
    _, checked = run_module(capsys, domain_name=DOMAIN, name_tag="pulse-lab-api", tags={"Env": "prod"},
                            _ansible_check_mode=True)
    assert checked["changed"] is True
    tags = {t["Key"]: t["Value"] for t in client().list_tags_for_certificate(CertificateArn=arn)["Tags"]}
    assert tags["Env"] == "lab"
    _, updated = run_module(capsys, domain_name=DOMAIN, name_tag="pulse-lab-api", tags={"Env": "prod"})
    assert updated["changed"] is True and updated["certificate_arn"] == arn
    tags = {t["Key"]: t["Value"] for t in client().list_tags_for_certificate(CertificateArn=arn)["Tags"]}
    assert tags == {"Env": "prod", "Name": "pulse-lab-api"}


@mock_aws
def test_different_sans_request_a_new_certificate(capsys, acm_issues_after):
    _, first = run_module(capsys, domain_name=DOMAIN, name_tag="pulse-lab-api")
    _, second = run_module(capsys, domain_name=DOMAIN, name_tag="pulse-lab-api",
                           subject_alternative_names=["www.lab.pulse.example.com"])
    assert second["changed"] is True and second["certificate_arn"] != first["certificate_arn"]
    assert sorted(second["certificate"]["subject_alternative_names"]) == [DOMAIN, "www.lab.pulse.example.com"]


@mock_aws
def test_wait_returns_issued(capsys, acm_issues_after, no_sleep):
    acm_issues_after(0)
    rc, result = run_module(capsys, domain_name=DOMAIN, name_tag="pulse-lab-api", wait=True, wait_timeout=30)
    assert rc == 0, result
    assert result["status"] == "ISSUED"


@mock_aws
def test_wait_timeout_fails_with_advice(capsys, acm_issues_after):
    run_module(capsys, domain_name=DOMAIN, name_tag="pulse-lab-api")
    rc, result = run_module(capsys, domain_name=DOMAIN, name_tag="pulse-lab-api", wait=True, wait_timeout=1)
    assert rc == 1
    assert result["failed"] is True
    assert "PENDING_VALIDATION" in result["msg"] and "hosted zone" in result["msg"]
    assert result["validation_records"], "the records to create are returned even on failure"


@mock_aws
def test_absent_deletes_only_matching(capsys, acm_issues_after):
    _, mine = run_module(capsys, domain_name=DOMAIN, name_tag="pulse-lab-api")
    _, theirs = run_module(capsys, domain_name=DOMAIN, name_tag="someone-else")
    rc, checked = run_module(capsys, state="absent", domain_name=DOMAIN, name_tag="pulse-lab-api",
                             _ansible_check_mode=True)
    assert rc == 0 and checked["changed"] is True and checked["deleted_arns"] == [mine["certificate_arn"]]
    assert len(client().list_certificates()["CertificateSummaryList"]) == 2
    rc, result = run_module(capsys, state="absent", domain_name=DOMAIN, name_tag="pulse-lab-api")
    assert rc == 0 and result["changed"] is True
    left = [c["CertificateArn"] for c in client().list_certificates()["CertificateSummaryList"]]
    assert left == [theirs["certificate_arn"]]
    rc, again = run_module(capsys, state="absent", domain_name=DOMAIN, name_tag="pulse-lab-api")
    assert rc == 0 and again["changed"] is False and again["deleted_arns"] == []


@mock_aws
def test_absent_by_arn(capsys, acm_issues_after):
    _, mine = run_module(capsys, domain_name=DOMAIN)
    rc, result = run_module(capsys, state="absent", certificate_arn=mine["certificate_arn"])
    assert rc == 0 and result["changed"] is True
    assert client().list_certificates()["CertificateSummaryList"] == []


def test_argument_errors(capsys):
    rc, result = run_module(capsys, state="present")
    assert rc == 1 and "domain_name" in result["msg"]


def test_documentation_is_valid_yaml():
    import yaml

    doc = yaml.safe_load(module.DOCUMENTATION)
    assert doc["module"] == "acm_certificate_request"
    assert set(doc["options"]) >= {"state", "domain_name", "subject_alternative_names", "name_tag",
                                    "certificate_arn", "key_algorithm", "wait", "wait_timeout"}
    yaml.safe_load(module.EXAMPLES)
    ret = yaml.safe_load(module.RETURN)
    assert {"certificate_arn", "status", "validation_records", "certificate"} <= set(ret)
