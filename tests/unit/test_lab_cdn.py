"""Unit tests of lab/lab_cdn.py: the nginx configuration rendered from a distribution model, the
headers of a response headers policy, the bucket policy check (origin access control), and the
origin's objects fetched from moto's S3 (in-process)."""

import json

import pytest

from conftest import check_in_lab_image, load_lab_module, self_signed

lab_cdn = load_lab_module("lab/lab_cdn.py", "lab_cdn")

ARN = "arn:aws:cloudfront::123456789012:distribution/E1ABCDEF"
BUCKET = "pulse-lab-app-0001"
HEADERS = [("Strict-Transport-Security", "max-age=63072000; includeSubDomains"),
           ("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"),
           ("Content-Security-Policy", "default-src 'self'; connect-src 'self' https://api.lab.pulse.example.com")]
MANIFEST = {
    "index.html": {"etag": "1", "size": 10, "content_type": "text/html; charset=utf-8", "cache_control": "no-cache"},
    "config.json": {"etag": "2", "size": 10, "content_type": "application/json", "cache_control": "no-cache"},
    "assets/app.0123abcd.js": {"etag": "3", "size": 10, "content_type": "text/javascript",
                               "cache_control": "public, max-age=31536000, immutable"},
}


def model(**over):
    """A distribution as describe_distribution() returns it (the app hosting's settings)."""
    dist = {
        "id": "E1ABCDEF", "arn": ARN, "domain_name": "d111.cloudfront.net", "enabled": True,
        "aliases": ["app.lab.pulse.example.com"], "https_port": 8444, "http_port": 8081,
        "root_object": "index.html", "viewer_protocol_policy": "redirect-to-https", "compress": True,
        "min_tls": "TLSv1.2_2021", "http_version": "http2and3",
        "error_responses": [{"code": 403, "page": "/index.html", "status": 200},
                            {"code": 404, "page": "/index.html", "status": 200}],
        "headers": list(HEADERS),
        "origin": {"id": "app-bucket", "domain": f"{BUCKET}.s3.us-east-2.amazonaws.com", "path": "",
                   "bucket": BUCKET, "oac": "OAC1"},
        "access": {"read": True, "list": False, "why": ""},
    }
    dist.update(over)
    return dist


def oac_policy(source_arn=ARN, actions="s3:GetObject", **extra):
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
         "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        dict({"Sid": "AllowCloudFront", "Effect": "Allow", "Principal": {"Service": "cloudfront.amazonaws.com"},
              "Action": actions, "Resource": [f"arn:aws:s3:::{BUCKET}/*", f"arn:aws:s3:::{BUCKET}"],
              "Condition": {"StringEquals": {"AWS:SourceArn": source_arn}}}, **extra)]}


# --------------------------------------------------------------------------- small pieces


def test_bucket_of_an_s3_origin():
    assert lab_cdn.bucket_of(f"{BUCKET}.s3.us-east-2.amazonaws.com") == BUCKET
    assert lab_cdn.bucket_of(f"{BUCKET}.s3.amazonaws.com") == BUCKET
    assert lab_cdn.bucket_of("api.example.com") is None
    assert lab_cdn.bucket_of(None) is None


@pytest.mark.parametrize("key, ok", [
    ("index.html", True), ("assets/app.0123abcd.js", True), ("a b.txt", True),
    ("", False), ("dir/", False), ("../etc/passwd", False), ("a//b", False), ("$uri", False),
    ('a"b', False), ("a\\b", False), ("a{b}", False),
])
def test_safe_key(key, ok):
    assert lab_cdn.safe_key(key) is ok


def test_headers_of_a_response_headers_policy():
    config = {"SecurityHeadersConfig": {
        "StrictTransportSecurity": {"Override": True, "IncludeSubdomains": True, "Preload": True,
                                    "AccessControlMaxAgeSec": 600},
        "ContentTypeOptions": {"Override": True},
        "FrameOptions": {"Override": True, "FrameOption": "SAMEORIGIN"},
        "ReferrerPolicy": {"Override": True, "ReferrerPolicy": "no-referrer"},
        "ContentSecurityPolicy": {"Override": True, "ContentSecurityPolicy": "default-src 'self'"},
        "XSSProtection": {"Override": True, "Protection": True, "ModeBlock": True}},
        "CustomHeadersConfig": {"Quantity": 1, "Items": [{"Header": "Permissions-Policy", "Value": "camera=()",
                                                          "Override": True}]}}
    assert lab_cdn.headers_of_policy(config) == [
        ("Strict-Transport-Security", "max-age=600; includeSubDomains; preload"),
        ("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "SAMEORIGIN"),
        ("Referrer-Policy", "no-referrer"), ("Content-Security-Policy", "default-src 'self'"),
        ("X-XSS-Protection", "1; mode=block"), ("Permissions-Policy", "camera=()")]
    assert lab_cdn.headers_of_policy({}) == []


def test_the_bucket_admits_only_its_distribution():
    assert lab_cdn.policy_allows(oac_policy(), BUCKET, ARN, "s3:GetObject")
    assert not lab_cdn.policy_allows(oac_policy(), BUCKET, ARN, "s3:ListBucket"), "GetObject only"
    other = ARN.replace("E1ABCDEF", "E2OTHER")
    assert not lab_cdn.policy_allows(oac_policy(), BUCKET, other, "s3:GetObject")
    assert lab_cdn.policy_allows(oac_policy(actions=["s3:GetObject", "s3:ListBucket"]), BUCKET, ARN, "s3:ListBucket")
    like = oac_policy(Condition={"ArnLike": {"AWS:SourceArn": "arn:aws:cloudfront::123456789012:distribution/*"}})
    assert lab_cdn.policy_allows(like, BUCKET, other, "s3:GetObject")
    assert not lab_cdn.policy_allows({"Statement": []}, BUCKET, ARN, "s3:GetObject")
    denied = oac_policy()
    denied["Statement"].append({"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
                                "Resource": f"arn:aws:s3:::{BUCKET}/*"})
    assert not lab_cdn.policy_allows(denied, BUCKET, ARN, "s3:GetObject")
    someone_else = oac_policy()
    someone_else["Statement"][1]["Principal"] = {"AWS": "arn:aws:iam::123456789012:root"}
    assert not lab_cdn.policy_allows(someone_else, BUCKET, ARN, "s3:GetObject")


# --------------------------------------------------------------------------- nginx configuration


def test_config_serves_each_object_with_its_s3_headers_and_the_security_headers():
    text = lab_cdn.render_config(model(), MANIFEST)
    block = text.split('location = "/assets/app.0123abcd.js" {', 1)[1].split("}", 1)[0]
    assert 'default_type "text/javascript";' in block
    assert 'add_header Cache-Control "public, max-age=31536000, immutable";' in block
    # add_header in a location drops the server's: every location repeats the policy's headers
    for name, value in HEADERS:
        assert f'add_header {name} "{value}" always;' in block
    assert 'default_type "text/html; charset=utf-8";' in text
    assert "types { }" in text, "content types come from S3, not from file names"


def test_config_root_object_fallback_and_missing_keys():
    text = lab_cdn.render_config(model(), MANIFEST)
    assert 'location = / { rewrite ^ "/index.html" last; }' in text
    assert 'error_page 403 404 =200 "/index.html";' in text
    assert "location / { return 403; }" in text, "a missing key is S3's 403 without s3:ListBucket"
    listing = lab_cdn.render_config(model(access={"read": True, "list": True, "why": ""}), MANIFEST)
    assert "location / { return 404; }" in listing
    no_root = lab_cdn.render_config(model(root_object=""), MANIFEST)
    assert "location = / { return 403; }" in no_root
    no_fallback = lab_cdn.render_config(model(error_responses=[]), MANIFEST)
    assert "error_page" not in no_fallback
    keep_code = lab_cdn.render_config(model(error_responses=[{"code": 404, "page": "/404.html", "status": None}]), {})
    assert 'error_page 404 "/404.html";' in keep_code


def test_config_listeners_names_and_tls():
    text = lab_cdn.render_config(model(), MANIFEST)
    assert 'server_name "app.lab.pulse.example.com" "d111.cloudfront.net";' in text
    assert "return 301 https://$host:8444$request_uri;" in text, "redirect-to-https, to the lab's HTTPS port"
    assert "listen 443 ssl http2 default_server;\n        return 403;" in text, "another Host is refused"
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in text
    assert "gzip on;" in text
    assert "ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;" in lab_cdn.render_config(model(min_tls="TLSv1"), {})
    assert "gzip on;" not in lab_cdn.render_config(model(compress=False), {})
    allow_all = lab_cdn.render_config(model(viewer_protocol_policy="allow-all"), MANIFEST)
    assert "return 301" not in allow_all and "        listen 80;" in allow_all
    https_only = lab_cdn.render_config(model(viewer_protocol_policy="https-only"), MANIFEST)
    assert "return 301" not in https_only


def test_a_disabled_distribution_answers_403():
    text = lab_cdn.render_config(model(enabled=False), MANIFEST)
    assert "return 403;  # the distribution is disabled" in text
    assert "location" not in text


def test_nginx_accepts_the_configuration(tmp_path):
    """When the lab CDN image exists, nginx itself checks a rendered configuration."""
    dists = {"nginx.conf": model(), "allow.conf": model(viewer_protocol_policy="allow-all"),
             "off.conf": model(enabled=False), "empty.conf": model(access={"read": False, "list": False, "why": "x"})}
    configs = {name: lab_cdn.render_config(dist, {} if name == "empty.conf" else MANIFEST) for name, dist in dists.items()}
    (tmp_path / "origin").mkdir()
    check_in_lab_image(lab_cdn.image_tag(), "at the backer's first pass", tmp_path, "/etc/nginx/lab", configs,
                       self_signed("/etc/nginx/lab/cdn.key", "/etc/nginx/lab/cdn.crt") + " && "
                       "for c in nginx allow off empty; do nginx -t -q -c /etc/nginx/lab/$c.conf || exit 1; done")


# --------------------------------------------------------------------------- the origin's objects


@pytest.fixture
def s3(monkeypatch):
    moto = pytest.importorskip("moto")
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    with moto.mock_aws():
        import boto3

        client = boto3.client("s3", region_name="us-east-2", aws_access_key_id="x", aws_secret_access_key="y")
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-east-2"})
        monkeypatch.setattr(lab_cdn, "_clients", {"s3": client})
        yield client


def test_sync_origin_follows_the_bucket(s3, tmp_path):
    s3.put_object(Bucket=BUCKET, Key="index.html", Body=b"<html>1</html>", ContentType="text/html; charset=utf-8",
                  CacheControl="no-cache")
    s3.put_object(Bucket=BUCKET, Key="assets/app.1.js", Body=b"1", ContentType="text/javascript",
                  CacheControl="public, max-age=31536000, immutable")
    s3.put_object(Bucket=BUCKET, Key="../escape", Body=b"x")
    said = []
    manifest, removed = lab_cdn.sync_origin(model(), tmp_path, said.append)
    assert sorted(manifest) == ["assets/app.1.js", "index.html"] and removed == []
    assert manifest["index.html"]["content_type"] == "text/html; charset=utf-8"
    assert manifest["assets/app.1.js"]["cache_control"] == "public, max-age=31536000, immutable"
    assert (tmp_path / "origin" / "assets" / "app.1.js").read_bytes() == b"1"
    assert any("'../escape'" in line for line in said), said
    assert json.loads((tmp_path / "objects.json").read_text()) == manifest

    s3.put_object(Bucket=BUCKET, Key="index.html", Body=b"<html>2</html>", ContentType="text/html")
    s3.put_object(Bucket=BUCKET, Key="assets/app.2.js", Body=b"2", ContentType="text/javascript")
    s3.delete_object(Bucket=BUCKET, Key="assets/app.1.js")
    manifest, removed = lab_cdn.sync_origin(model(), tmp_path, said.append)
    assert removed == ["assets/app.1.js"] and sorted(manifest) == ["assets/app.2.js", "index.html"]
    assert (tmp_path / "origin" / "index.html").read_bytes() == b"<html>2</html>"
    assert (tmp_path / "origin" / "assets" / "app.1.js").exists(), "removed only once nginx no longer names it"
    lab_cdn.delete_removed(tmp_path, removed)
    assert not (tmp_path / "origin" / "assets" / "app.1.js").exists()


def test_nothing_is_served_when_cloudfront_may_not_read_the_bucket(s3, tmp_path):
    s3.put_object(Bucket=BUCKET, Key="index.html", Body=b"x", ContentType="text/html")
    manifest, _ = lab_cdn.sync_origin(model(), tmp_path, print)
    assert manifest
    closed = model(access={"read": False, "list": False, "why": "no policy"})
    manifest, removed = lab_cdn.sync_origin(closed, tmp_path, print)
    assert manifest == {} and removed == ["index.html"]
    assert "location = \"/index.html\"" not in lab_cdn.render_config(closed, manifest)


def test_origin_access_needs_an_oac_and_a_policy_naming_the_distribution(s3, monkeypatch):
    class CloudFront:
        def get_origin_access_control(self, Id):
            return {"OriginAccessControl": {"Id": Id, "OriginAccessControlConfig": {"SigningBehavior": "always"}}}

    monkeypatch.setitem(lab_cdn._clients, "cloudfront", CloudFront())
    no_oac = model()
    no_oac["origin"] = dict(no_oac["origin"], oac="")
    assert "no origin access control" in lab_cdn.origin_access(no_oac, print)["why"]
    assert "has no policy" in lab_cdn.origin_access(model(), print)["why"]
    s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(oac_policy()))
    assert lab_cdn.origin_access(model(), print) == {"read": True, "list": False, "why": ""}
    s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(oac_policy(source_arn=ARN + "X")))
    assert not lab_cdn.origin_access(model(), print)["read"]
