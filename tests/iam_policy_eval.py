"""A small IAM policy evaluator for tests: which requests do our policy documents allow?

moto stores IAM documents but enforces nothing (its own evaluator, moto.iam.access_control,
ignores every condition operator but StringEquals), so the tests evaluate the documents they
read back from moto with this. It follows AWS's documented evaluation logic for what our
identity and trust policies use; tests/unit/test_iam_policy_eval.py checks each rule:

* an explicit Deny wins, then an Allow, else the request is implicitly denied;
* Action / NotAction (case-insensitive, wildcards ``*`` and ``?``), Resource / NotResource
  (case-sensitive wildcards), Principal for trust policies;
* Condition: every operator block must hold (AND), every key in a block must hold (AND), any
  value of a key may match (OR). Operators: String{Equals,NotEquals,EqualsIgnoreCase,
  NotEqualsIgnoreCase,Like,NotLike}, Arn{Equals,NotEquals,Like,NotLike}, Bool, Null,
  Numeric{Equals,NotEquals,LessThan,LessThanEquals,GreaterThan,GreaterThanEquals}, with the
  ``...IfExists`` suffix and the ``ForAllValues:`` / ``ForAnyValue:`` set prefixes;
* a key missing from the request: positive operators are false, negated ones (``...Not...``)
  true, ``IfExists`` true, ``ForAllValues`` true, ``ForAnyValue`` false; condition keys are
  case-insensitive;
* policy variables ``${aws:userid}`` etc. in Resource and condition values are replaced from
  the request context; a statement whose variable is missing does not match.

It is not a full IAM: no permission boundaries, SCPs, session policies or resource policies.
"""

from __future__ import annotations

import re

ALLOW = "Allow"
DENY = "Deny"  # explicit
IMPLICIT_DENY = "ImplicitDeny"

_VARIABLE = re.compile(r"\$\{([^}]+)\}")
_SPECIAL = {"*": "*", "?": "?", "$": "$"}


class _Unresolved(Exception):
    pass


def _as_list(value):
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple, set)) else [value]


def _lower_keys(context):
    return {k.lower(): v for k, v in (context or {}).items()}


def substitute(text, context):
    """Replace ${key} policy variables from context (keys case-insensitive)."""
    ctx = _lower_keys(context)

    def repl(match):
        name = match.group(1)
        if name in _SPECIAL:
            return "\0" + name  # a literal wildcard character, not a wildcard
        value = ctx.get(name.lower())
        if value is None or isinstance(value, (list, tuple)):
            raise _Unresolved(name)
        return str(value)

    return _VARIABLE.sub(repl, text)


def _glob_regex(pattern, ignore_case=False):
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\0":  # escaped literal from ${*} / ${?} / ${$}
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "*" else "." if ch == "?" else re.escape(ch))
        i += 1
    return re.compile("^" + "".join(out) + "$", re.S | (re.I if ignore_case else 0))


def glob_match(pattern, value, ignore_case=False):
    return _glob_regex(pattern, ignore_case).match(value) is not None


def _literal(pattern):
    return pattern.replace("\0", "")


def arn_like(pattern, value):
    """ArnLike: the six colon-separated parts are matched one by one (the last may hold colons)."""
    p_parts = pattern.split(":", 5)
    v_parts = value.split(":", 5)
    if len(p_parts) != 6 or len(v_parts) != 6:
        return False
    return all(glob_match(p, v) for p, v in zip(p_parts, v_parts))


def _to_float(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


_BASE_OPERATORS = {
    "StringEquals": (False, lambda p, v: _literal(p) == v),
    "StringNotEquals": (True, lambda p, v: _literal(p) == v),
    "StringEqualsIgnoreCase": (False, lambda p, v: _literal(p).lower() == v.lower()),
    "StringNotEqualsIgnoreCase": (True, lambda p, v: _literal(p).lower() == v.lower()),
    "StringLike": (False, glob_match),
    "StringNotLike": (True, glob_match),
    "ArnEquals": (False, lambda p, v: arn_like(p, v)),
    "ArnLike": (False, arn_like),
    "ArnNotEquals": (True, lambda p, v: arn_like(p, v)),
    "ArnNotLike": (True, arn_like),
    "Bool": (False, lambda p, v: str(p).lower() == str(v).lower()),
    "NumericEquals": (False, lambda p, v: _to_float(p) is not None and _to_float(p) == _to_float(v)),
    "NumericNotEquals": (True, lambda p, v: _to_float(p) is not None and _to_float(p) == _to_float(v)),
    "NumericLessThan": (False, lambda p, v: None not in (_to_float(p), _to_float(v)) and _to_float(v) < _to_float(p)),
    "NumericLessThanEquals": (False, lambda p, v: None not in (_to_float(p), _to_float(v)) and _to_float(v) <= _to_float(p)),
    "NumericGreaterThan": (False, lambda p, v: None not in (_to_float(p), _to_float(v)) and _to_float(v) > _to_float(p)),
    "NumericGreaterThanEquals": (False, lambda p, v: None not in (_to_float(p), _to_float(v)) and _to_float(v) >= _to_float(p)),
}


def _parse_operator(name):
    set_op = None
    if ":" in name:
        set_op, name = name.split(":", 1)
        if set_op not in ("ForAllValues", "ForAnyValue"):
            raise ValueError(f"unknown condition set operator {set_op!r}")
    if_exists = name.endswith("IfExists") and name != "IfExists"
    base = name[: -len("IfExists")] if if_exists else name
    if base != "Null" and base not in _BASE_OPERATORS:
        raise ValueError(f"condition operator {name!r} is not supported by this evaluator")
    return set_op, base, if_exists


def _key_holds(set_op, base, if_exists, patterns, present, values, context):
    """Does one condition key hold? values: the request's values for the key (list)."""
    if base == "Null":
        # Null: "true" = the key must be absent, "false" = present.
        return any((str(p).lower() == "true") == (not present) for p in patterns)
    negated, match = _BASE_OPERATORS[base]
    if not present:
        if if_exists or set_op == "ForAllValues":
            return True
        if set_op == "ForAnyValue":
            return False
        return negated
    try:
        patterns = [substitute(p, context) if isinstance(p, str) else str(p).lower() if isinstance(p, bool) else str(p)
                    for p in patterns]
    except _Unresolved:
        return False

    def one(value):
        hit = any(match(p, str(value)) for p in patterns)
        return not hit if negated else hit

    if set_op == "ForAllValues":
        return all(one(v) for v in values)
    if set_op == "ForAnyValue":
        return any(one(v) for v in values)
    # a single-valued operator on a multi-valued key: any value (negated: none)
    if negated:
        return all(one(v) for v in values)
    return any(one(v) for v in values)


def conditions_hold(condition, context):
    ctx = _lower_keys(context)
    for operator, keys in (condition or {}).items():
        set_op, base, if_exists = _parse_operator(operator)
        for key, patterns in keys.items():
            present = key.lower() in ctx and ctx[key.lower()] is not None
            values = _as_list(ctx.get(key.lower())) if present else []
            if present and not values and set_op is None:
                present = False
            if not _key_holds(set_op, base, if_exists, _as_list(patterns), present, values, context):
                return False
    return True


def _element_matches(patterns, value, context, ignore_case):
    for pattern in _as_list(patterns):
        try:
            pattern = substitute(pattern, context)
        except _Unresolved:
            continue
        if glob_match(pattern, value, ignore_case=ignore_case):
            return True
    return False


def _principal_matches(statement, principal):
    if "Principal" not in statement and "NotPrincipal" not in statement:
        return True  # identity policy
    if principal is None:
        return False
    wanted = statement.get("Principal")
    if wanted == "*":
        return True
    for kind, values in (wanted or {}).items():
        if kind in principal and any(v == "*" or v in _as_list(principal[kind]) for v in _as_list(values)):
            return True
    return False


def statement_applies(statement, action, resource=None, context=None, principal=None):
    if "Action" in statement:
        if not _element_matches(statement["Action"], action, context, ignore_case=True):
            return False
    elif "NotAction" in statement:
        if _element_matches(statement["NotAction"], action, context, ignore_case=True):
            return False
    else:
        return False
    if "Resource" in statement:
        if resource is None or not _element_matches(statement["Resource"], resource, context, ignore_case=False):
            return False
    elif "NotResource" in statement:
        if resource is None or _element_matches(statement["NotResource"], resource, context, ignore_case=False):
            return False
    if not _principal_matches(statement, principal):
        return False
    return conditions_hold(statement.get("Condition"), context)


def evaluate(policies, action, resource=None, context=None, principal=None):
    """ALLOW, DENY (explicit) or IMPLICIT_DENY for one request against policy documents.

    policies: one document (dict) or a list of them; resource: the ARN (None for trust
    policies, which have no Resource); context: request context keys (e.g.
    {"token.actions.githubusercontent.com:sub": "repo:o/n:ref:refs/tags/v1.0.0"}); principal:
    for trust policies, e.g. {"Federated": "arn:aws:iam::1:oidc-provider/..."}.
    """
    documents = policies if isinstance(policies, list) else [policies]
    allowed = False
    for document in documents:
        for statement in _as_list(document.get("Statement")):
            if not statement_applies(statement, action, resource, context, principal):
                continue
            if statement.get("Effect") == "Deny":
                return DENY
            if statement.get("Effect") == "Allow":
                allowed = True
    return ALLOW if allowed else IMPLICIT_DENY


def allowed(policies, action, resource=None, context=None, principal=None):
    return evaluate(policies, action, resource, context, principal) == ALLOW
