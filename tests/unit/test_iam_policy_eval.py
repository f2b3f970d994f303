"""The test IAM evaluator (tests/iam_policy_eval.py) follows AWS's documented evaluation rules.

Each case names the rule from the IAM User Guide ("Policy evaluation logic", "IAM JSON policy
elements: Condition operators", "Policy variables") it checks.
"""

import pytest

from iam_policy_eval import ALLOW, DENY, IMPLICIT_DENY, arn_like, evaluate, glob_match, substitute

BUCKET = "arn:aws:s3:::pulse-lab-artifacts"
PROVIDER = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
AUD = "token.actions.githubusercontent.com:aud"
SUB = "token.actions.githubusercontent.com:sub"


def doc(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action, resource="*", **extra):
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action, resource="*", **extra):
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


# --------------------------------------------------------------------------- matching


@pytest.mark.parametrize("pattern, value, expected", [
    ("v*", "v1.2.0", True),
    ("v*", "main", False),
    ("repo:o/n:ref:refs/tags/v*", "repo:o/n:ref:refs/tags/v1.0.0", True),
    ("repo:o/n:ref:refs/tags/v*", "repo:o/n:ref:refs/heads/main", False),
    ("repo:o/n:ref:refs/tags/v*", "repo:o/n-evil:ref:refs/tags/v1.0.0", False),
    ("a?c", "abc", True),
    ("a?c", "abbc", False),
    ("node/pulse-node-*", "node/pulse-node-v1.2.0.sha256", True),
    ("a.b", "axb", False),  # regex characters are literal
])
def test_glob(pattern, value, expected):
    assert glob_match(pattern, value) is expected


def test_arn_like_matches_part_by_part():
    assert arn_like("arn:aws:ec2:us-east-2:*:instance/*", "arn:aws:ec2:us-east-2:123456789012:instance/i-1")
    assert not arn_like("arn:aws:ec2:us-east-2:*:instance/*", "arn:aws:ec2:eu-west-1:123456789012:instance/i-1")
    assert not arn_like("arn:aws:ec2:*", "arn:aws:ec2:us-east-2:1:instance/i-1")  # too few parts


def test_policy_variables():
    assert substitute("session/${aws:userid}-*", {"aws:userid": "AROA1:gh"}) == "session/AROA1:gh-*"
    assert substitute("a${*}b", {}) == "a\0*b"


def test_action_is_case_insensitive_and_resource_is_not():
    policy = doc(allow("S3:GetObject", BUCKET + "/node/*"))
    assert evaluate(policy, "s3:getobject", BUCKET + "/node/x") == ALLOW
    assert evaluate(policy, "s3:GetObject", BUCKET + "/NODE/x") == IMPLICIT_DENY


def test_wildcard_action_and_not_action():
    assert evaluate(doc(allow("ec2:Describe*")), "ec2:DescribeInstances", "*") == ALLOW
    assert evaluate(doc(allow("ec2:Describe*")), "ec2:CreateTags", "*") == IMPLICIT_DENY
    not_action = doc({"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"})
    assert evaluate(not_action, "ec2:CreateTags", "*") == ALLOW
    assert evaluate(not_action, "s3:PutObject", "*") == IMPLICIT_DENY


def test_not_resource():
    policy = doc({"Effect": "Allow", "Action": "s3:GetObject", "NotResource": BUCKET + "/secret/*"})
    assert evaluate(policy, "s3:GetObject", BUCKET + "/node/x") == ALLOW
    assert evaluate(policy, "s3:GetObject", BUCKET + "/secret/x") == IMPLICIT_DENY


# --------------------------------------------------------------------------- evaluation logic


def test_explicit_deny_wins_over_allow():
    policy = doc(allow("s3:*", BUCKET + "/*"), deny("s3:DeleteObject", BUCKET + "/*"))
    assert evaluate(policy, "s3:PutObject", BUCKET + "/x") == ALLOW
    assert evaluate(policy, "s3:DeleteObject", BUCKET + "/x") == DENY


def test_nothing_allows_means_implicit_deny():
    assert evaluate(doc(), "s3:GetObject", BUCKET + "/x") == IMPLICIT_DENY
    assert evaluate([], "s3:GetObject", BUCKET + "/x") == IMPLICIT_DENY


def test_several_documents_are_evaluated_together():
    assert evaluate([doc(allow("s3:GetObject", "*")), doc(deny("s3:GetObject", BUCKET + "/x"))],
                    "s3:GetObject", BUCKET + "/x") == DENY


def test_resource_policy_variable_userid():
    policy = doc(allow("ssm:TerminateSession", "arn:aws:ssm:*:*:session/${aws:userid}-*"))
    mine = "arn:aws:ssm:us-east-2:1:session/AROA1:gh-0abc"
    theirs = "arn:aws:ssm:us-east-2:1:session/AROA2:other-0abc"
    assert evaluate(policy, "ssm:TerminateSession", mine, {"aws:userid": "AROA1:gh"}) == ALLOW
    assert evaluate(policy, "ssm:TerminateSession", theirs, {"aws:userid": "AROA1:gh"}) == IMPLICIT_DENY
    assert evaluate(policy, "ssm:TerminateSession", mine, {}) == IMPLICIT_DENY  # unresolved variable


# --------------------------------------------------------------------------- conditions


def test_condition_blocks_and_keys_are_anded_values_ored():
    policy = doc(allow("ec2:CreateTags", "*", Condition={
        "StringEquals": {"aws:ResourceTag/Env": ["lab", "staging"], "aws:ResourceTag/Project": "pulse"},
        "ForAllValues:StringEquals": {"aws:TagKeys": ["PulseRelease"]},
    }))
    ctx = {"aws:ResourceTag/Env": "staging", "aws:ResourceTag/Project": "pulse", "aws:TagKeys": ["PulseRelease"]}
    assert evaluate(policy, "ec2:CreateTags", "x", ctx) == ALLOW
    assert evaluate(policy, "ec2:CreateTags", "x", {**ctx, "aws:ResourceTag/Env": "production"}) == IMPLICIT_DENY
    assert evaluate(policy, "ec2:CreateTags", "x", {**ctx, "aws:ResourceTag/Project": "other"}) == IMPLICIT_DENY
    assert evaluate(policy, "ec2:CreateTags", "x", {**ctx, "aws:TagKeys": ["PulseRelease", "Env"]}) == IMPLICIT_DENY


def test_condition_keys_are_case_insensitive():
    policy = doc(allow("s3:PutObject", "*", Condition={"StringEquals": {"S3:If-None-Match": "*"}}))
    assert evaluate(policy, "s3:PutObject", "x", {"s3:if-none-match": "*"}) == ALLOW


def test_missing_key_positive_false_negated_true_ifexists_true():
    positive = doc(allow("s3:PutObject", "*", Condition={"StringEquals": {"s3:if-none-match": "*"}}))
    negated = doc(deny("s3:PutObject", "*", Condition={"StringNotEquals": {"s3:if-none-match": "*"}}))
    if_exists = doc(allow("s3:ListBucket", "*", Condition={"StringLikeIfExists": {"s3:prefix": "node/*"}}))
    assert evaluate(positive, "s3:PutObject", "x", {}) == IMPLICIT_DENY
    assert evaluate(negated, "s3:PutObject", "x", {}) == DENY
    assert evaluate(negated, "s3:PutObject", "x", {"s3:if-none-match": "*"}) == IMPLICIT_DENY
    assert evaluate(if_exists, "s3:ListBucket", "x", {}) == ALLOW
    assert evaluate(if_exists, "s3:ListBucket", "x", {"s3:prefix": "node/a"}) == ALLOW
    assert evaluate(if_exists, "s3:ListBucket", "x", {"s3:prefix": "backups/"}) == IMPLICIT_DENY


def test_set_operators_on_missing_and_multi_valued_keys():
    for_all = doc(allow("ec2:CreateTags", "*", Condition={"ForAllValues:StringEquals": {"aws:TagKeys": ["A"]}}))
    for_any = doc(allow("ec2:CreateTags", "*", Condition={"ForAnyValue:StringEquals": {"aws:TagKeys": ["A"]}}))
    assert evaluate(for_all, "ec2:CreateTags", "x", {}) == ALLOW  # vacuously true: why Null checks exist
    assert evaluate(for_any, "ec2:CreateTags", "x", {}) == IMPLICIT_DENY
    assert evaluate(for_any, "ec2:CreateTags", "x", {"aws:TagKeys": ["B", "A"]}) == ALLOW
    assert evaluate(for_all, "ec2:CreateTags", "x", {"aws:TagKeys": ["B", "A"]}) == IMPLICIT_DENY


def test_null_operator():
    must_exist = doc(allow("ec2:CreateTags", "*", Condition={"Null": {"aws:TagKeys": "false"}}))
    must_not = doc(allow("ec2:CreateTags", "*", Condition={"Null": {"aws:TagKeys": "true"}}))
    assert evaluate(must_exist, "ec2:CreateTags", "x", {"aws:TagKeys": ["A"]}) == ALLOW
    assert evaluate(must_exist, "ec2:CreateTags", "x", {}) == IMPLICIT_DENY
    assert evaluate(must_not, "ec2:CreateTags", "x", {}) == ALLOW


def test_bool_and_numeric():
    policy = doc(allow("ssm:StartSession", "*", Condition={"BoolIfExists": {"ssm:SessionDocumentAccessCheck": "true"}}))
    assert evaluate(policy, "ssm:StartSession", "x", {"ssm:SessionDocumentAccessCheck": True}) == ALLOW
    assert evaluate(policy, "ssm:StartSession", "x", {"ssm:SessionDocumentAccessCheck": "false"}) == IMPLICIT_DENY
    assert evaluate(policy, "ssm:StartSession", "x", {}) == ALLOW
    numeric = doc(allow("sts:AssumeRole", "*", Condition={"NumericLessThanEquals": {"aws:MultiFactorAuthAge": "3600"}}))
    assert evaluate(numeric, "sts:AssumeRole", "x", {"aws:MultiFactorAuthAge": "60"}) == ALLOW
    assert evaluate(numeric, "sts:AssumeRole", "x", {"aws:MultiFactorAuthAge": "7200"}) == IMPLICIT_DENY


def test_unknown_operator_is_an_error_not_a_pass():
    policy = doc(allow("s3:GetObject", "*", Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}))
    with pytest.raises(ValueError, match="not supported"):
        evaluate(policy, "s3:GetObject", "x", {"aws:SourceIp": "10.1.1.1"})


# --------------------------------------------------------------------------- trust policies


def github_trust(sub_operator, sub):
    return doc({
        "Effect": "Allow",
        "Principal": {"Federated": PROVIDER},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {AUD: "sts.amazonaws.com"}, sub_operator: {SUB: sub}},
    })


def assume(policy, sub, aud="sts.amazonaws.com", provider=PROVIDER):
    return evaluate(policy, "sts:AssumeRoleWithWebIdentity", None, {AUD: aud, SUB: sub}, {"Federated": provider})


def test_trust_policy_tag_ref_versus_branch_ref():
    policy = github_trust("StringLike", "repo:pulse-project/pulse:ref:refs/tags/v*")
    assert assume(policy, "repo:pulse-project/pulse:ref:refs/tags/v1.4.0") == ALLOW
    assert assume(policy, "repo:pulse-project/pulse:ref:refs/heads/main") == IMPLICIT_DENY
    assert assume(policy, "repo:pulse-project/pulse:pull_request") == IMPLICIT_DENY
    assert assume(policy, "repo:someone/pulse:ref:refs/tags/v1.4.0") == IMPLICIT_DENY
    assert assume(policy, "repo:pulse-project/pulse:ref:refs/tags/v1.4.0", aud="other") == IMPLICIT_DENY
    assert assume(policy, "repo:pulse-project/pulse:ref:refs/tags/v1.4.0",
                  provider="arn:aws:iam::123456789012:oidc-provider/evil.example.com") == IMPLICIT_DENY


def test_trust_policy_without_principal_in_request_is_denied():
    policy = github_trust("StringEquals", "repo:o/n:environment:production")
    assert evaluate(policy, "sts:AssumeRoleWithWebIdentity", None, {AUD: "sts.amazonaws.com",
                                                                    SUB: "repo:o/n:environment:production"}) == IMPLICIT_DENY
