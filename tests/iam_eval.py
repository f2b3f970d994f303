"""IAM decisions for the tests, with a published policy evaluator (moto does not enforce IAM,
and its own evaluator ignores most condition operators): principalmapper's local policy
simulation (nccgroup PMapper, pinned in requirements.txt; no release since 2022, see below) matches actions, resources, policy variables (${ec2:SourceInstanceARN}) and
every condition operator the stack uses (StringEquals, StringLike, ArnEquals, ArnNotLike, Null,
Bool).

allowed() applies AWS's evaluation logic for a principal of the bucket's own account: an explicit
Deny in any identity policy or in the resource policy wins, else an Allow in an identity policy
allows, else the request is implicitly denied. Resource-policy statements of this stack all have
"Principal": "*" (denies) or name AWS services (log delivery), which are not the principals asked
about here: only their Deny statements are evaluated.
"""

import collections
import collections.abc

# principalmapper 1.1.5 (its last release, 2022) imports Mapping/MutableMapping from collections,
# gone since Python 3.10: the aliases it expects, for this process only.
for _name in ("Mapping", "MutableMapping"):
    if not hasattr(collections, _name):
        setattr(collections, _name, getattr(collections.abc, _name))

from principalmapper.querying.local_policy_simulation import policy_has_matching_statement  # noqa: E402
from principalmapper.util.case_insensitive_dict import CaseInsensitiveDict  # noqa: E402


def _substitute(value, context):
    """Policy variables (${key}) in condition values, as AWS replaces them from the request
    context (principalmapper substitutes them in Resource only). A variable whose key is not in
    the context stays as written and so matches nothing real."""
    if isinstance(value, list):
        return [_substitute(v, context) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, context) for k, v in value.items()}
    if isinstance(value, str):
        for key, actual in context.items():
            value = value.replace("${" + key + "}", str(actual))
    return value


def _matches(doc, effect, action, resource, context):
    statements = doc["Statement"] if isinstance(doc["Statement"], list) else [doc["Statement"]]
    doc = {"Statement": [dict(s, Condition=_substitute(s["Condition"], context)) if "Condition" in s else s
                         for s in statements]}
    return policy_has_matching_statement(doc, effect, action, resource, context)


def allowed(identity_docs, action, resource, context=None, resource_docs=()):
    """True when AWS would allow `action` on `resource` for a principal with these identity
    policies, under the resource policies, with the request context `context`."""
    ctx = CaseInsensitiveDict({k: v for k, v in (context or {}).items()})
    for doc in list(identity_docs):
        if _matches(doc, "Deny", action, resource, ctx):
            return False
    for doc in resource_docs:
        for statement in doc["Statement"]:
            if statement["Effect"] == "Deny":
                assert statement.get("Principal") == "*", statement
                if _matches({"Statement": [statement]}, "Deny", action, resource, ctx):
                    return False
    return any(_matches(doc, "Allow", action, resource, ctx) for doc in identity_docs)


def instance_context(instance_arn, role_arn, **extra):
    """The request context of a call signed with an EC2 instance role's credentials."""
    context = {"ec2:SourceInstanceARN": instance_arn, "aws:PrincipalArn": role_arn,
               "aws:SecureTransport": "true"}
    context.update(extra)
    return context
