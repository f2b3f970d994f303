# Copyright: Pulse infrastructure team
# Apache License 2.0 (see galaxy.yml)
"""CloudFront configuration objects found by name, for pulse.infra.cloudfront_origin_access_control
and pulse.infra.cloudfront_response_headers_policy: every boto3 call retried with backoff.

Origin access controls and response headers policies have an id chosen by CloudFront and a name
chosen by us (unique per account); the modules find them by name, compare the wanted settings
with the current ones and write only when they differ. Kept apart from the modules so that the
comparison logic can be unit tested with a plain boto3 client (moto or botocore's Stubber).
"""

from __future__ import annotations

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

# CloudFront throttles with Throttling; a concurrent change of the same object answers
# PreconditionFailed (stale ETag): the modules read again and retry (see ConfigKind.update).
_retry = AWSRetry.jittered_backoff(retries=10, delay=3, max_delay=30, catch_extra_error_codes=["Throttling"])

OAC_NOT_FOUND = ["NoSuchOriginAccessControl"]
POLICY_NOT_FOUND = ["NoSuchResponseHeadersPolicy"]

# --------------------------------------------------------------------------- both kinds


class ConfigKind:
    """One kind of configuration object (OAC, POLICY below) and its calls, the same for both:
    get_<api>, create_<api>, update_<api> and delete_<api> answer the object under <key> (its
    settings under <key>Config) with its ETag, the version that updates and deletes must name.
    list_all(client) lists the objects, name_of(item) is an item's name in that list, and
    fields(obj, config) the summary's fields particular to the kind."""

    def __init__(self, api, key, not_found, list_all, name_of, fields):
        self.api, self.key, self.not_found = api, key, not_found
        self.list_all, self.name_of, self.fields = list_all, name_of, fields

    def _call(self, client, verb, **params):
        answer = getattr(client, f"{verb}_{self.api}")(**params)
        return answer[self.key], answer.get("ETag")

    @_retry
    def get(self, client, item_id):
        """(object, ETag), or (None, None) when it does not exist."""
        try:
            return self._call(client, "get", Id=item_id)
        except is_boto3_error_code(self.not_found):
            return None, None

    def find(self, client, name=None, item_id=None):
        """(object, ETag) by id, or by name (CloudFront keeps names unique per account), or (None, None)."""
        if item_id:
            return self.get(client, item_id)
        for item in self.list_all(client):
            if self.name_of(item) == name:
                return self.get(client, item["Id"])
        return None, None

    @_retry
    def create(self, client, config):
        """(object, ETag) of the new object."""
        return self._call(client, "create", **{f"{self.key}Config": config})

    @_retry
    def update(self, client, item_id, etag, config):
        """(object, ETag) after the change; etag is the version read (PreconditionFailed when stale)."""
        return self._call(client, "update", Id=item_id, IfMatch=etag, **{f"{self.key}Config": config})

    @_retry
    def delete(self, client, item_id, etag):
        """Deletes it; False when it did not exist. Its InUse error (still used by a distribution)
        is raised to the caller."""
        try:
            getattr(client, f"delete_{self.api}")(Id=item_id, IfMatch=etag)
        except is_boto3_error_code(self.not_found):
            return False
        return True

    def summarize(self, item, etag):
        """The object as the module returns it ({} for None): id, etag, name and the kind's fields."""
        if not item:
            return {}
        config = item.get(f"{self.key}Config") or {}
        return {"id": item["Id"], "etag": etag, "name": config.get("Name"), **self.fields(item, config)}


# --------------------------------------------------------------------------- origin access control

OAC_ORIGIN_TYPES = ["s3", "mediastore", "mediapackagev2", "lambda"]
OAC_SIGNING_BEHAVIORS = ["always", "never", "no-override"]
OAC_SIGNING_PROTOCOLS = ["sigv4"]


def oac_config(name, description, origin_type, signing_behavior, signing_protocol):
    """The OriginAccessControlConfig CloudFront takes."""
    return {
        "Name": name,
        "Description": description or "",
        "SigningProtocol": signing_protocol,
        "SigningBehavior": signing_behavior,
        "OriginAccessControlOriginType": origin_type,
    }


def same_oac_config(current, wanted):
    """True when two OriginAccessControlConfig say the same (a missing description is "")."""
    keys = ("Name", "Description", "SigningProtocol", "SigningBehavior", "OriginAccessControlOriginType")
    current, wanted = current or {}, wanted or {}
    return all((current.get(k) or "") == (wanted.get(k) or "") for k in keys)


@_retry
def list_origin_access_controls(client):
    """Every origin access control of the account (summaries, all pages)."""
    items, marker = [], None
    while True:
        params = {"Marker": marker} if marker else {}
        page = client.list_origin_access_controls(**params)["OriginAccessControlList"]
        items += page.get("Items") or []
        marker = page.get("NextMarker")
        if not page.get("IsTruncated") or not marker:
            return items


def _oac_fields(_oac, config):
    return {
        "description": config.get("Description") or "",
        "origin_type": config.get("OriginAccessControlOriginType"),
        "signing_behavior": config.get("SigningBehavior"),
        "signing_protocol": config.get("SigningProtocol"),
    }


OAC = ConfigKind("origin_access_control", "OriginAccessControl", OAC_NOT_FOUND,
                 list_origin_access_controls, lambda summary: summary.get("Name"), _oac_fields)


# --------------------------------------------------------------------------- response headers policy

FRAME_OPTIONS = ["DENY", "SAMEORIGIN"]
REFERRER_POLICIES = [
    "no-referrer",
    "no-referrer-when-downgrade",
    "origin",
    "origin-when-cross-origin",
    "same-origin",
    "strict-origin",
    "strict-origin-when-cross-origin",
    "unsafe-url",
]


def _drop_none(value):
    return {k: v for k, v in value.items() if v is not None}


def security_headers_config(options):
    """SecurityHeadersConfig from the module's security_headers option (snake case, suboptions
    already defaulted by the argument spec); {} when no header is wanted."""
    options = options or {}
    out = {}
    hsts = options.get("strict_transport_security")
    if hsts:
        out["StrictTransportSecurity"] = {
            "Override": hsts["override"],
            "IncludeSubdomains": hsts["include_subdomains"],
            "Preload": hsts["preload"],
            "AccessControlMaxAgeSec": hsts["max_age"],
        }
    if options.get("content_type_options"):
        out["ContentTypeOptions"] = {"Override": options["content_type_options"]["override"]}
    frame = options.get("frame_options")
    if frame:
        out["FrameOptions"] = {"Override": frame["override"], "FrameOption": frame["frame_option"]}
    referrer = options.get("referrer_policy")
    if referrer:
        out["ReferrerPolicy"] = {"Override": referrer["override"], "ReferrerPolicy": referrer["referrer_policy"]}
    csp = options.get("content_security_policy")
    if csp:
        out["ContentSecurityPolicy"] = {"Override": csp["override"],
                                        "ContentSecurityPolicy": csp["content_security_policy"]}
    xss = options.get("xss_protection")
    if xss:
        out["XSSProtection"] = _drop_none({
            "Override": xss["override"],
            "Protection": xss["protection"],
            "ModeBlock": xss.get("mode_block"),
            "ReportUri": xss.get("report_uri"),
        })
    return out


def response_headers_policy_config(name, comment, security_headers=None, custom_headers=None, remove_headers=None):
    """The ResponseHeadersPolicyConfig CloudFront takes (lists with their Quantity)."""
    config = {"Name": name, "Comment": comment or ""}
    security = security_headers_config(security_headers)
    if security:
        config["SecurityHeadersConfig"] = security
    if custom_headers:
        items = [{"Header": h["header"], "Value": h["value"], "Override": h["override"]} for h in custom_headers]
        config["CustomHeadersConfig"] = {"Quantity": len(items), "Items": items}
    if remove_headers:
        items = [{"Header": h} for h in remove_headers]
        config["RemoveHeadersConfig"] = {"Quantity": len(items), "Items": items}
    return config


def _normalize(value):
    """A config as data to compare: no Quantity (it follows Items), empty parts and lists of
    headers sorted by header name (CloudFront does not keep their order)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "Quantity":
                continue
            item = _normalize(item)
            if item in (None, "", [], {}):
                continue
            out[key] = item
        return out
    if isinstance(value, list):
        items = [_normalize(v) for v in value]
        if all(isinstance(i, dict) and "Header" in i for i in items):
            items.sort(key=lambda i: str(i["Header"]).lower())
        return items
    return value


def same_policy_config(current, wanted):
    """True when two ResponseHeadersPolicyConfig say the same: Quantity fields, empty parts,
    the order of header lists, and False/absent booleans of missing parts do not count."""
    return _normalize(current or {}) == _normalize(wanted or {})


@_retry
def list_response_headers_policies(client):
    """Every custom response headers policy of the account (all pages)."""
    items, marker = [], None
    while True:
        params = {"Type": "custom"}
        if marker:
            params["Marker"] = marker
        page = client.list_response_headers_policies(**params)["ResponseHeadersPolicyList"]
        items += [i["ResponseHeadersPolicy"] for i in page.get("Items") or [] if i.get("Type", "custom") == "custom"]
        marker = page.get("NextMarker")
        if not marker:
            return items


def _policy_fields(policy, config):
    return {
        "comment": config.get("Comment") or "",
        "last_modified_time": str(policy.get("LastModifiedTime") or ""),
        "config": config,
    }


POLICY = ConfigKind("response_headers_policy", "ResponseHeadersPolicy", POLICY_NOT_FOUND,
                    list_response_headers_policies,
                    lambda policy: (policy.get("ResponseHeadersPolicyConfig") or {}).get("Name"), _policy_fields)
