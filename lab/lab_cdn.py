#!/usr/bin/env python3
"""lab_cdn: the lab's CloudFront edge - an nginx container per moto distribution.

moto keeps a CloudFront distribution as metadata only. This module gives every distribution
tagged ``Project=pulse`` a real web server: nginx (Debian package, image
``pulse-lab/cdn:<hash of lab/cdn>``) in a lab container that serves the distribution's S3 origin
the way CloudFront would, following what moto says (lab/cdn/README.md):

- HTTPS on ``127.0.0.1:8444`` (container :443, HTTP/2) for the distribution's aliases and its
  ``*.cloudfront.net`` name, with ``.lab/ca/cdn.crt`` from the lab CA (``lab/playbooks/lab_cdn.yml``)
  standing in for the ACM certificate; TLS versions from ``MinimumProtocolVersion``; another
  Host is refused (403), as CloudFront does;
- HTTP on ``127.0.0.1:8081`` (container :80) answering as the viewer protocol policy says
  (``redirect-to-https``: 301 to the HTTPS port);
- the bucket's objects: fetched from moto's S3 into ``.lab/cdn/<distribution id>/origin/`` and
  served with the Content-Type and Cache-Control they were uploaded with; refreshed within about
  a second of a change (new, changed and deleted keys); the origin path is honoured;
- the default root object for ``/``; a key the bucket does not have is the origin's 403 (404 when
  the bucket policy lets CloudFront list the bucket), and the custom error responses turn such
  answers into their page and code (the single-page app fallback);
- the origin access control: the bucket is read only when the origin has one (signing) and the
  bucket policy admits CloudFront's service principal for this distribution's ARN
  (``AWS:SourceArn``); otherwise every request is the origin's 403, as in CloudFront;
- the response headers policy of the default cache behavior (security headers, custom headers)
  on every answer, errors included; gzip when the behavior compresses;
- a disabled distribution answers 403 to everything.

``sync(log)`` is one reconcile pass; the instance backer (``lab/lab_watch.py``) calls it every 2 seconds.
Run it alone with ``python lab/lab_cdn.py`` (one pass) or ``--watch`` (every second). A
distribution may carry the tags ``pulse-lab:https-port`` / ``pulse-lab:http-port`` to be
published on other loopback ports (two distributions wanting the same ports: the older one gets
them, the other is skipped with a message).
"""

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import labctl  # noqa: E402  (lab/ is on the path: lab/lab_watch.py, or the caller)
import lab_proxy  # noqa: E402  (what lab_alb and lab_cdn share)
from botocore.exceptions import ClientError  # noqa: E402
from lab_proxy import HTTP_PORT_TAG, HTTPS_PORT_TAG, PROJECT  # noqa: E402  (the same for lab_alb)

CA_DIR = labctl.LAB_DIR / "ca"
STATE_DIR = labctl.LAB_DIR / "cdn"
LABEL_CDN = f"{labctl.LABEL}.cdn"
LABEL_SPEC = f"{labctl.LABEL}.cdn.spec"
# Only the containers of this lab directory are this process's (a second lab CDN may follow
# another moto, e.g. a test's, from another PULSE_LAB_DIR).
LABEL_LAB = f"{labctl.LABEL}.cdn.lab"
CONTAINER_PREFIX = "pulse-lab-cdn-"
HTTPS_PORT = 8444
HTTP_PORT = 8081
CONTAINER_DIR = "/etc/nginx/lab"
CONFIG_NAME = "nginx.conf"
MANIFEST = "objects.json"
ORIGIN = "origin"
CERT_NAME, KEY_NAME = "cdn.crt", "cdn.key"
# In .lab/: the lab-wide lock of the passes (the backer and a test's own pass may both run).
LOCK = "cdn.lock"
CLOUDFRONT_PRINCIPAL = "cloudfront.amazonaws.com"
# What CloudFront compresses (a subset: the types a static app serves), 1 000 bytes and more.
COMPRESSIBLE = ("text/html", "text/css", "text/plain", "text/javascript", "application/javascript",
                "application/json", "image/svg+xml", "application/xml", "text/xml")
# ViewerCertificate.MinimumProtocolVersion -> what nginx offers.
TLS_VERSIONS = {
    "SSLv3": "TLSv1 TLSv1.1 TLSv1.2 TLSv1.3",
    "TLSv1": "TLSv1 TLSv1.1 TLSv1.2 TLSv1.3",
    "TLSv1_2016": "TLSv1 TLSv1.1 TLSv1.2 TLSv1.3",
    "TLSv1.1_2016": "TLSv1.1 TLSv1.2 TLSv1.3",
}
# Keys served from a file: no "$" (nginx variables), quotes, backslashes, braces or control characters.
SAFE_KEY = re.compile(r"^[A-Za-z0-9._~!&'()*+,;=:@/%-][A-Za-z0-9._~!&'()*+,;=:@/% -]*$")

# The distributions' lab proxy (image pulse-lab/cdn:<hash of lab/cdn>), and what it said
# already: a pass every second logs a condition once.
_proxy = lab_proxy.Proxy("cdn", "nginx from Debian packages")
_once, _clear = _proxy.once, _proxy.clear
_clients = {}


# --------------------------------------------------------------------------- moto


def client(service):
    return labctl.moto_client(service, _clients)


def _code(exc):
    return exc.response.get("Error", {}).get("Code", "")


def bucket_of(domain_name):
    """The bucket of an S3 origin's domain name (<bucket>.s3[.<region>|-<region>].amazonaws.com), or None."""
    match = re.match(r"^(?P<bucket>[a-z0-9][a-z0-9.-]*[a-z0-9])\.s3([.-][a-z0-9-]+)?\.amazonaws\.com$",
                     (domain_name or "").lower())
    return match["bucket"] if match else None


def describe_distributions(log):
    """The distributions tagged Project=pulse, as the plain model render_config() takes."""
    cloudfront = client("cloudfront")
    items = cloudfront.list_distributions().get("DistributionList", {}).get("Items") or []
    out = []
    for summary in items:
        tags = {t["Key"]: t["Value"] for t in cloudfront.list_tags_for_resource(
            Resource=summary["ARN"]).get("Tags", {}).get("Items", [])}
        if tags.get("Project") != PROJECT:
            continue
        config = cloudfront.get_distribution(Id=summary["Id"])["Distribution"]["DistributionConfig"]
        out.append(describe_distribution(summary, config, tags, log))
    return out


def describe_distribution(summary, config, tags, log):
    dist_id = summary["Id"]
    behavior = config.get("DefaultCacheBehavior") or {}
    origins = {o["Id"]: o for o in (config.get("Origins") or {}).get("Items") or []}
    origin = origins.get(behavior.get("TargetOriginId")) or {}
    dist = {
        "id": dist_id,
        "arn": summary["ARN"],
        "domain_name": summary.get("DomainName", ""),
        "enabled": bool(config.get("Enabled", True)),
        "aliases": sorted((config.get("Aliases") or {}).get("Items") or []),
        "https_port": _int(tags.get(HTTPS_PORT_TAG), HTTPS_PORT),
        "http_port": _int(tags.get(HTTP_PORT_TAG), HTTP_PORT),
        "root_object": config.get("DefaultRootObject") or "",
        "viewer_protocol_policy": behavior.get("ViewerProtocolPolicy", "allow-all"),
        "compress": bool(behavior.get("Compress", False)),
        "min_tls": (config.get("ViewerCertificate") or {}).get("MinimumProtocolVersion") or "TLSv1",
        "http_version": config.get("HttpVersion", "http2"),
        "error_responses": sorted(
            ({"code": int(e["ErrorCode"]), "page": e.get("ResponsePagePath") or "",
              "status": int(e["ResponseCode"]) if str(e.get("ResponseCode") or "").isdigit() else None}
             for e in (config.get("CustomErrorResponses") or {}).get("Items") or []),
            key=lambda e: e["code"]),
        "headers": [],
        "origin": {"id": origin.get("Id", ""), "domain": origin.get("DomainName", ""),
                   "path": (origin.get("OriginPath") or "").strip("/"),
                   "bucket": bucket_of(origin.get("DomainName")),
                   "oac": origin.get("OriginAccessControlId") or ""},
        "access": {"read": False, "list": False, "why": ""},
    }
    policy_id = behavior.get("ResponseHeadersPolicyId")
    if policy_id:
        dist["headers"] = response_headers(policy_id, log)
    dist["access"] = origin_access(dist, log)
    return dist


_int = lab_proxy.to_int


def response_headers(policy_id, log):
    """[(header, value)] of a response headers policy, in a stable order."""
    try:
        policy = client("cloudfront").get_response_headers_policy(Id=policy_id)["ResponseHeadersPolicy"]
    except ClientError as exc:
        _once(log, f"rhp:{policy_id}",
              f"cdn: response headers policy {policy_id}: {_code(exc) or exc} (a moto started from an older "
              "lab/moto_server.py has no response headers policies: restart the lab) - served without it")
        return []
    _clear(f"rhp:{policy_id}")
    return headers_of_policy(policy.get("ResponseHeadersPolicyConfig") or {})


def headers_of_policy(config):
    """The headers a ResponseHeadersPolicyConfig puts on every answer, as CloudFront writes them."""
    out = []
    security = config.get("SecurityHeadersConfig") or {}
    hsts = security.get("StrictTransportSecurity")
    if hsts:
        value = f"max-age={int(hsts.get('AccessControlMaxAgeSec', 0))}"
        if hsts.get("IncludeSubdomains"):
            value += "; includeSubDomains"
        if hsts.get("Preload"):
            value += "; preload"
        out.append(("Strict-Transport-Security", value))
    if security.get("ContentTypeOptions") is not None:
        out.append(("X-Content-Type-Options", "nosniff"))
    if security.get("FrameOptions"):
        out.append(("X-Frame-Options", security["FrameOptions"].get("FrameOption", "DENY")))
    if security.get("ReferrerPolicy"):
        out.append(("Referrer-Policy", security["ReferrerPolicy"].get("ReferrerPolicy", "")))
    if security.get("ContentSecurityPolicy"):
        out.append(("Content-Security-Policy", security["ContentSecurityPolicy"].get("ContentSecurityPolicy", "")))
    xss = security.get("XSSProtection")
    if xss:
        value = "1" if xss.get("Protection") else "0"
        if xss.get("Protection") and xss.get("ModeBlock"):
            value += "; mode=block"
        if xss.get("Protection") and xss.get("ReportUri"):
            value += f"; report={xss['ReportUri']}"
        out.append(("X-XSS-Protection", value))
    for item in (config.get("CustomHeadersConfig") or {}).get("Items") or []:
        out.append((item["Header"], item.get("Value", "")))
    return out


def _listify(value):
    return value if isinstance(value, list) else [value]


def _statement_matches(statement, action, resource):
    actions = [a.lower() for a in _listify(statement.get("Action", []))]
    if not any(a in ("*", "s3:*", action.lower()) or (a.endswith("*") and action.lower().startswith(a[:-1]))
               for a in actions):
        return False
    return any(r == resource or (r.endswith("*") and resource.startswith(r[:-1]))
               for r in _listify(statement.get("Resource", [])))


def _principal_is_cloudfront(statement):
    principal = statement.get("Principal")
    if principal == "*" or principal == {"AWS": "*"}:
        return True
    if isinstance(principal, dict):
        return CLOUDFRONT_PRINCIPAL in _listify(principal.get("Service", []))
    return False


def _source_arn_allows(statement, dist_arn):
    condition = statement.get("Condition") or {}
    if not condition:
        return True
    for operator, values in condition.items():
        for key, expected in values.items():
            if key.lower() != "aws:sourcearn":
                continue
            expected = _listify(expected)
            if operator in ("StringEquals", "ArnEquals") and dist_arn in expected:
                return True
            if operator in ("StringLike", "ArnLike") and any(
                    re.fullmatch(re.escape(e).replace(r"\*", ".*").replace(r"\?", "."), dist_arn) for e in expected):
                return True
        return False
    return False


def policy_allows(policy, bucket, dist_arn, action):
    """Whether a bucket policy lets CloudFront (for this distribution) do the action: an Allow
    for CloudFront's service principal whose AWS:SourceArn condition names the distribution (or
    no condition), and no Deny for it except the TLS-only one (CloudFront reaches S3 over TLS)."""
    resource = f"arn:aws:s3:::{bucket}/*" if action == "s3:GetObject" else f"arn:aws:s3:::{bucket}"
    allowed = False
    for statement in policy.get("Statement", []):
        if not (_principal_is_cloudfront(statement) and _statement_matches(statement, action, resource)):
            continue
        if statement.get("Effect") == "Deny":
            secure = ((statement.get("Condition") or {}).get("Bool") or {}).get("aws:SecureTransport")
            if str(secure).lower() == "false":
                continue  # denies plain HTTP only
            if _source_arn_allows(statement, dist_arn):
                return False
        elif statement.get("Effect") == "Allow" and _source_arn_allows(statement, dist_arn):
            allowed = True
    return allowed


def origin_access(dist, log):
    """What CloudFront may do with the origin: {"read", "list", "why"} (why: when it may not)."""
    origin = dist["origin"]
    if not origin["bucket"]:
        return {"read": False, "list": False,
                "why": f"origin {origin['domain'] or '?'} is not an S3 bucket (the lab CDN serves S3 origins only)"}
    if not origin["oac"]:
        return {"read": False, "list": False,
                "why": "the origin has no origin access control (moto drops it unless lab/moto_server.py is "
                       "the one running): CloudFront's requests are unsigned and the private bucket refuses them"}
    try:
        oac = client("cloudfront").get_origin_access_control(Id=origin["oac"])["OriginAccessControl"]
    except ClientError as exc:
        return {"read": False, "list": False, "why": f"origin access control {origin['oac']}: {_code(exc)}"}
    if (oac.get("OriginAccessControlConfig") or {}).get("SigningBehavior") == "never":
        return {"read": False, "list": False, "why": f"origin access control {origin['oac']} never signs"}
    try:
        policy = json.loads(client("s3").get_bucket_policy(Bucket=origin["bucket"])["Policy"])
    except ClientError as exc:
        if _code(exc) == "NoSuchBucketPolicy":
            return {"read": False, "list": False, "why": f"bucket {origin['bucket']} has no policy admitting CloudFront"}
        return {"read": False, "list": False, "why": f"bucket {origin['bucket']}: {_code(exc) or exc}"}
    read = policy_allows(policy, origin["bucket"], dist["arn"], "s3:GetObject")
    return {"read": read, "list": read and policy_allows(policy, origin["bucket"], dist["arn"], "s3:ListBucket"),
            "why": "" if read else f"the policy of bucket {origin['bucket']} does not admit this distribution "
                                   f"({dist['arn']}) through CloudFront's service principal"}


# --------------------------------------------------------------------------- the origin's objects


def safe_key(key):
    """A key the lab serves from a file: no empty or dot segments, no folder markers."""
    if not key or key.endswith("/") or not SAFE_KEY.match(key):
        return False
    return all(part not in ("", ".", "..") for part in key.split("/"))


def list_objects(bucket, prefix):
    """{key (without the origin path): {"etag", "size"}} of the bucket."""
    out = {}
    paginator = client("s3").get_paginator("list_objects_v2")
    start = f"{prefix}/" if prefix else ""
    for page in paginator.paginate(Bucket=bucket, Prefix=start):
        for item in page.get("Contents") or []:
            key = item["Key"][len(start):]
            out[key] = {"etag": item.get("ETag", "").strip('"'), "size": item.get("Size", 0)}
    return out


def sync_origin(dist, state_dir, log):
    """Bring origin/ and the manifest to the bucket's objects. Returns (manifest, removed keys):
    removed files are deleted by the caller once nginx no longer names them."""
    origin_dir = state_dir / ORIGIN
    origin_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = state_dir / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    except ValueError:
        manifest = {}
    if not dist["access"]["read"]:  # CloudFront may not read the bucket: nothing is served
        removed = sorted(manifest)
        if removed:
            _write(manifest_path, "{}")
        return {}, removed
    bucket, prefix = dist["origin"]["bucket"], dist["origin"]["path"]
    try:
        listed = list_objects(bucket, prefix)
    except ClientError as exc:
        _once(log, f"list:{dist['id']}", f"cdn: {dist['id']}: cannot list bucket {bucket}: {_code(exc) or exc}")
        return manifest, []
    _clear(f"list:{dist['id']}")
    changed = False
    for key, info in sorted(listed.items()):
        if not safe_key(key):
            _once(log, f"key:{dist['id']}:{key}", f"cdn: {dist['id']}: key {key!r} is not served by the lab CDN")
            continue
        known = manifest.get(key)
        if known and known["etag"] == info["etag"] and (origin_dir / key).is_file():
            continue
        try:
            answer = client("s3").get_object(Bucket=bucket, Key=f"{prefix}/{key}" if prefix else key)
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                continue  # deleted meanwhile
            raise
        path = origin_dir / key
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.lab-cdn-tmp")
        tmp.write_bytes(answer["Body"].read())
        tmp.chmod(0o644)
        tmp.replace(path)
        manifest[key] = {
            "etag": answer.get("ETag", info["etag"]).strip('"'),
            "size": answer.get("ContentLength", info["size"]),
            "content_type": answer.get("ContentType") or "binary/octet-stream",
            "cache_control": answer.get("CacheControl") or "",
            "content_encoding": answer.get("ContentEncoding") or "",
        }
        changed = True
    removed = sorted(k for k in manifest if k not in listed)
    for key in removed:
        del manifest[key]
    if changed or removed:
        _write(manifest_path, json.dumps(manifest, indent=1, sort_keys=True))
    return manifest, removed


def delete_removed(state_dir, removed):
    origin_dir = state_dir / ORIGIN
    for key in removed:
        path = origin_dir / key
        if path.is_file():
            path.unlink()
        parent = path.parent
        while parent != origin_dir and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent


# --------------------------------------------------------------------------- rendering


def _quote(value):
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _header_lines(dist, indent):
    return [f"{indent}add_header {name} {_quote(value)} always;" for name, value in dist["headers"]]


def _object_location(dist, key, meta, indent="    "):
    """An exact-match location serving one object with the headers S3 stores for it."""
    inner = indent + "    "
    lines = [f"{indent}location = {_quote('/' + key)} {{",
             f"{inner}default_type {_quote(meta.get('content_type') or 'binary/octet-stream')};"]
    if meta.get("cache_control"):
        lines.append(f"{inner}add_header Cache-Control {_quote(meta['cache_control'])};")
    if meta.get("content_encoding"):
        lines.append(f"{inner}add_header Content-Encoding {_quote(meta['content_encoding'])};")
        lines.append(f"{inner}gzip off;")
    lines += _header_lines(dist, inner)
    lines += [f"{inner}try_files {_quote('/' + key)} =404;", f"{indent}}}"]
    return lines


def render_config(dist, manifest):
    """nginx's configuration for one distribution model (see describe_distribution)."""
    names = " ".join(_quote(n) for n in dist["aliases"] + [dist["domain_name"]] if n)
    tls = TLS_VERSIONS.get(dist["min_tls"], "TLSv1.2 TLSv1.3")
    missing = 404 if dist["access"]["list"] else 403
    lines = [
        f"# Managed by lab/lab_cdn.py from moto's distribution {dist['id']} ({', '.join(dist['aliases'])}):",
        "# rewritten on every change.",
        f"# {dist['arn']}",
        "worker_processes 1;",
        "pid /run/nginx-lab.pid;",
        "error_log /dev/stderr warn;",
        "events { worker_connections 512; }",
        "http {",
        "    log_format cdn '$remote_addr \"$host\" \"$request\" $status $body_bytes_sent \"$http_user_agent\"';",
        "    access_log /dev/stdout cdn;",
        "    server_tokens off;",
        "    sendfile on;",
        "    etag on;",
        "    charset off;",
        "    # Content types come from the objects' S3 metadata (default_type per object), never",
        "    # from the file name.",
        "    types { }",
        "    default_type binary/octet-stream;",
        "    ssl_certificate " + f"{CONTAINER_DIR}/{CERT_NAME};",
        "    ssl_certificate_key " + f"{CONTAINER_DIR}/{KEY_NAME};",
        f"    ssl_protocols {tls};",
        "    ssl_prefer_server_ciphers off;",
    ]
    if dist["compress"]:
        lines += [
            "    gzip on;",
            "    gzip_min_length 1000;",
            "    gzip_vary on;",
            "    gzip_proxied any;",
            f"    gzip_types {' '.join(t for t in COMPRESSIBLE if t != 'text/html')};",
        ]
    # The HTTP listener follows the viewer protocol policy (allow-all: the distribution's server
    # below listens on it too); another Host than the distribution's names is refused (403).
    lines += ["", "    server {", "        listen 80 default_server;"]
    if dist["viewer_protocol_policy"] == "redirect-to-https":
        lines.append(f"        return 301 https://$host:{dist['https_port']}$request_uri;")
    else:
        lines += _header_lines(dist, "        ") + ["        return 403;"]
    lines += [
        "    }",
        "",
        "    server {",
        "        listen 443 ssl http2 default_server;",
        "        return 403;",
        "    }",
        "",
        "    server {",
        "        listen 443 ssl http2;",
    ]
    if dist["viewer_protocol_policy"] == "allow-all":
        lines.append("        listen 80;")
    lines += [
        f"        server_name {names};",
        f"        root {CONTAINER_DIR}/{ORIGIN};",
    ]
    if not dist["enabled"]:
        lines += _header_lines(dist, "        ") + ["        return 403;  # the distribution is disabled", "    }", "}"]
        return "\n".join(lines) + "\n"
    pages = {}
    for response in dist["error_responses"]:
        if response["page"]:
            pages.setdefault((response["status"], response["page"]), []).append(response["code"])
    for (status, page), codes in sorted(pages.items(), key=lambda item: item[1]):
        answer = f"={status} " if status else ""
        lines.append(f"        error_page {' '.join(str(c) for c in sorted(codes))} {answer}{_quote(page)};")
    if dist["error_responses"]:
        lines.append("        recursive_error_pages off;")
    lines += _header_lines(dist, "        ")
    root = dist["root_object"]
    if root and root in manifest:
        lines += [f"        location = / {{ rewrite ^ {_quote('/' + root)} last; }}"]
    else:
        lines += [f"        location = / {{ return {missing}; }}"]
    for key in sorted(manifest):
        lines += _object_location(dist, key, manifest[key], indent="        ")
    lines += [
        "        # A key the bucket does not have: what S3 answers CloudFront's signed request.",
        f"        location / {{ return {missing}; }}",
        "    }",
        "}",
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- image and containers


image_tag = _proxy.image_tag  # pulse-lab/cdn:<hash of lab/cdn>, built by _proxy.ensure_image


def container_name(dist_id):
    return f"{CONTAINER_PREFIX}{dist_id.lower()}"


def cdn_containers():
    """This lab directory's CDN containers: name -> docker ps info (+ "dist", "spec")."""
    return lab_proxy.containers(LABEL_CDN, LABEL_SPEC, "dist", "--filter", f"label={LABEL_LAB}={labctl.LAB_DIR}")


def container_spec(dist, image):
    """What the container is made of; a change means a new container."""
    spec = {"image": image, "ports": [dist["https_port"], dist["http_port"]]}
    return lab_proxy.spec_digest(spec)


def create_container(dist, image, spec, state_dir, log):
    lab_proxy.create_container(
        container_name(dist["id"]), dist["id"].lower(), (dist["https_port"], dist["http_port"]),
        [(LABEL_CDN, dist["id"]), (LABEL_SPEC, spec), (LABEL_LAB, labctl.LAB_DIR)],
        f"{state_dir}:{CONTAINER_DIR}:ro", image)
    log(f"cdn: {dist['id']} ({', '.join(dist['aliases']) or dist['domain_name']}) at "
        f"https://127.0.0.1:{dist['https_port']} http://127.0.0.1:{dist['http_port']}")


def remove_container(name, dist_id, log):
    _proxy.remove_container(log, name, dist_id, STATE_DIR)


def reload(name, log):
    """Check the written configuration in the container, then reload nginx gracefully (HUP:
    new workers with the new configuration, the old ones finish their requests). False when
    nginx refuses the configuration (the running one stays)."""
    test = labctl.docker("exec", name, "nginx", "-t", "-q", "-c", f"{CONTAINER_DIR}/{CONFIG_NAME}", check=False)
    if test.returncode != 0:
        _once(log, f"refused:{name}", f"cdn: {name}: nginx refuses the new configuration: {test.stderr.strip()}")
        return False
    _clear(f"refused:{name}")
    return labctl.docker("kill", "--signal", "HUP", name, check=False).returncode == 0


_write = lab_proxy.write_file


def certificate():
    """(certificate, key) PEM from the lab CA for the CDN; None while missing."""
    crt, key = CA_DIR / CERT_NAME, CA_DIR / KEY_NAME
    if not (crt.is_file() and key.is_file()):
        return None
    return crt.read_text(), key.read_text()


def reconcile(dist, containers, image, log):
    """Make the distribution's container serve what moto says."""
    name = container_name(dist["id"])
    pem = certificate()
    if pem is None:
        _once(log, f"cert:{dist['id']}",
              f"cdn: {dist['id']}: no certificate in {CA_DIR} ({CERT_NAME}, {KEY_NAME}) yet: skipped until "
              "`ansible-playbook lab/playbooks/lab_cdn.yml` (or lab/labctl.py up) makes it")
        return
    _clear(f"cert:{dist['id']}")
    if dist["access"]["why"]:
        _once(log, f"access:{dist['id']}", f"cdn: {dist['id']}: every request is the origin's 403: {dist['access']['why']}")
    else:
        _clear(f"access:{dist['id']}")
    state_dir = STATE_DIR / dist["id"]
    state_dir.mkdir(parents=True, exist_ok=True)
    manifest, removed = sync_origin(dist, state_dir, log)
    config = render_config(dist, manifest)
    for file_name, text, mode in ((CERT_NAME, pem[0], 0o644), (KEY_NAME, pem[1], 0o600)):
        path = state_dir / file_name
        if not path.exists() or path.read_text() != text:
            _write(path, text, mode)
    spec = container_spec(dist, image)
    current = containers.get(name)
    if current is not None and current["spec"] != spec:
        labctl.docker("rm", "-f", "-v", name, check=False)
        log(f"cdn: {dist['id']}: image or ports changed: container replaced")
        current = None
    config_path = state_dir / CONFIG_NAME
    if current is None:
        _write(config_path, config)
        if not _proxy.create(log, dist["id"], create_container, dist, image, spec, state_dir, log):
            return
        delete_removed(state_dir, removed)
        return
    if current["State"] != "running" and not _proxy.start_again(log, name, dist["id"]):
        return
    if not config_path.exists() or config_path.read_text() != config:
        old = config_path.read_text() if config_path.exists() else None
        _write(config_path, config)
        if reload(name, log):
            log(f"cdn: {dist['id']}: reloaded ({len(manifest)} object(s))")
        elif old is not None:
            _write(config_path, old)
            return  # the removed files stay while the old configuration names them
    delete_removed(state_dir, removed)


# --------------------------------------------------------------------------- passes


def sync(log=labctl.log):
    """One reconcile pass (see _pass) that never raises: a failure (moto restarting, Docker
    busy...) is said once in the log, and the next pass tries again. The backer calls this."""
    _proxy.keep_going(_pass, log)


def _pass(log=labctl.log):
    """One reconcile pass: an nginx container per moto distribution tagged Project=pulse.

    The image is built (in the background) at the first pass, before any distribution exists,
    so that a new distribution is served within seconds."""
    _proxy.announce(log, "cdn: lab CDN sync active (lab/lab_cdn.py)")
    with lab_proxy.Locked(LOCK):
        image = _proxy.ensure_image(log, STATE_DIR)
        dists = describe_distributions(log)
        containers = cdn_containers()
        if image is None:
            return
        ports, live = {}, set()
        for dist in dists:
            live.add(dist["id"])
            if not _proxy.claim_ports(
                    log, ports, dist["id"], (dist["https_port"], dist["http_port"]),
                    lambda clash, owner: f"cdn: {dist['id']} ({', '.join(dist['aliases'])}): port(s) {clash} "
                                         f"already serve distribution {owner}: skipped "
                                         f"(tag it {HTTPS_PORT_TAG} / {HTTP_PORT_TAG})"):
                continue
            reconcile(dist, containers, image, log)
        _proxy.remove_gone(log, containers, "dist", live, STATE_DIR)


def watch(interval=1.0, log=labctl.log):
    """Passes every interval seconds until SIGTERM."""
    _proxy.watch(_pass, interval, log)  # each as sync(log) does it


def main(argv=None):
    return lab_proxy.main(argv, __doc__, watch, _pass)


if __name__ == "__main__":
    sys.exit(main())
