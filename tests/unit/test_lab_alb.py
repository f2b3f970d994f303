"""Unit tests of lab/lab_alb.py: the HAProxy configuration rendered from an ALB model."""

import importlib.util
import subprocess

import pytest

from conftest import REPO

spec = importlib.util.spec_from_file_location("lab_alb", REPO / "lab/lab_alb.py")
lab_alb = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lab_alb)

TG = "arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/pulse-lab-api/1"


def model(**over):
    """An ALB as describe_albs() returns it: listener 80 redirects, 443 forwards."""
    alb = {
        "name": "pulse-lab-alb",
        "arn": "arn:aws:elasticloadbalancing:us-east-2:123456789012:loadbalancer/app/pulse-lab-alb/1",
        "dns_name": "pulse-lab-alb-1.us-east-2.elb.amazonaws.com",
        "https_port": 8443,
        "http_port": 8080,
        "idle_timeout": 60,
        "subnets": [{"id": "subnet-a", "cidr": "10.20.1.0/24", "vpc": "vpc-1"}],
        "listeners": [
            {"port": 80, "protocol": "HTTP", "ssl_policy": "",
             "action": {"Type": "redirect",
                        "RedirectConfig": {"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"}}},
            {"port": 443, "protocol": "HTTPS", "ssl_policy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
             "action": {"Type": "forward", "TargetGroupArn": TG, "target_groups": [TG]}},
        ],
        "target_groups": {
            TG: {
                "name": "pulse-lab-api",
                "protocol": "HTTP",
                "port": 8080,
                "health": {"enabled": True, "protocol": "HTTP", "path": "/health", "port": None,
                           "matcher": "200"},
                "deregistration_delay": 30,
                "algorithm": "round_robin",
                "servers": [
                    {"name": "i-0a:8080", "addr": "10.20.1.4", "port": 8080},
                    {"name": "i-0b:8080", "addr": "10.20.2.4", "port": 8080},
                ],
                "registered": [],
            },
        },
    }
    alb.update(over)
    return alb


def lines(text):
    return [line.strip() for line in text.splitlines()]


def section(text, header):
    """The lines of one HAProxy section (from its header to the next blank line)."""
    out, inside = [], False
    for line in text.splitlines():
        if line == header:
            inside = True
            continue
        if inside:
            if not line.strip():
                break
            out.append(line.strip())
    assert inside, f"no section {header!r} in:\n{text}"
    return out


def test_each_registered_target_is_a_health_checked_server():
    backend = section(lab_alb.render_config(model()), "backend tg-pulse-lab-api")
    assert "server i-0a:8080 10.20.1.4:8080 check" in backend
    assert "server i-0b:8080 10.20.2.4:8080 check" in backend
    assert "balance roundrobin" in backend
    assert "option httpchk" in backend
    assert any(line.startswith("http-check send meth GET uri /health ver HTTP/1.1") for line in backend)
    assert "http-check expect status 200" in backend


def test_lab_health_check_timing_and_retries():
    text = lab_alb.render_config(model())
    assert "default-server inter 1s fastinter 1s downinter 1s fall 2 rise 2" in lines(text)
    for line in ("option redispatch 1", "retries 3", "retry-on conn-failure empty-response response-timeout"):
        assert line in lines(text)
    # Only idempotent requests are repeated after a response went missing.
    assert "http-request disable-l7-retry unless METH_GET || METH_HEAD || METH_OPTIONS" in lines(text)


def test_draining_is_bounded_by_the_deregistration_delay():
    text = lab_alb.render_config(model())
    assert "hard-stop-after 30s" in lines(text)
    assert "load-server-state-from-file global" in lines(text)
    assert "server-state-file /etc/haproxy/lab/server-state" in lines(text)


def test_every_target_unhealthy_fails_open_like_the_alb():
    backend = section(lab_alb.render_config(model()), "backend tg-pulse-lab-api")
    assert "option allbackups" in backend
    assert "server i-0a:8080.failopen 10.20.1.4:8080 backup" in backend


def test_https_listener_serves_the_lab_certificate_and_forwards():
    frontend = section(lab_alb.render_config(model()), "frontend https-443")
    assert "bind :443 ssl crt /etc/haproxy/lab/server.pem alpn h2,http/1.1 ssl-min-ver TLSv1.2" in frontend
    assert "default_backend tg-pulse-lab-api" in frontend
    assert "http-request set-header X-Forwarded-Proto https" in frontend


def test_http_listener_redirects_to_the_lab_https_port():
    frontend = section(lab_alb.render_config(model(https_port=18443)), "frontend http-80")
    assert "bind :80" in frontend
    assert ("http-request redirect location https://%[req.hdr(host),field(1,:)]:18443%[capture.req.uri] code 301"
            in frontend)


def test_no_registered_target_leaves_an_empty_backend():
    alb = model()
    alb["target_groups"][TG]["servers"] = []
    backend = section(lab_alb.render_config(alb), "backend tg-pulse-lab-api")
    assert not [line for line in backend if line.startswith("server ")]


def test_fixed_response_and_weighted_forward():
    alb = model()
    alb["listeners"][0]["action"] = {"Type": "fixed-response", "FixedResponseConfig": {
        "StatusCode": "404", "ContentType": "text/plain", "MessageBody": 'no "such" page'}}
    text = lab_alb.render_config(alb)
    assert 'http-request return status 404 content-type "text/plain" string "no \\"such\\" page"' in lines(text)
    action = {"Type": "forward", "ForwardConfig": {"TargetGroups": [
        {"TargetGroupArn": "arn:b", "Weight": 0}, {"TargetGroupArn": "arn:a", "Weight": 10}]}}
    assert lab_alb.forward_target_groups(action) == ["arn:a"]


def test_target_group_health_settings_are_honoured():
    alb = model()
    tg = alb["target_groups"][TG]
    tg["health"].update(path="/ready", port=9000, matcher="200-299", protocol="HTTPS")
    tg["protocol"] = "HTTPS"
    tg["algorithm"] = "least_outstanding_requests"
    backend = section(lab_alb.render_config(alb), "backend tg-pulse-lab-api")
    assert "balance leastconn" in backend
    assert "http-check expect status 200-299" in backend
    assert any(" uri /ready " in line for line in backend)
    assert "server i-0a:8080 10.20.1.4:8080 ssl verify none check port 9000 check-ssl verify none" in backend
    tg["health"]["enabled"] = False
    backend = section(lab_alb.render_config(alb), "backend tg-pulse-lab-api")
    assert "option httpchk" not in backend
    assert "server i-0a:8080 10.20.1.4:8080 ssl verify none" in backend


@pytest.mark.parametrize("policy, version", [
    ("ELBSecurityPolicy-TLS13-1-2-2021-06", "TLSv1.2"),
    ("ELBSecurityPolicy-TLS13-1-3-2021-06", "TLSv1.3"),
    ("ELBSecurityPolicy-TLS-1-2-Ext-2018-06", "TLSv1.2"),
    ("ELBSecurityPolicy-FS-1-1-2019-08", "TLSv1.1"),
    ("ELBSecurityPolicy-2016-08", "TLSv1.0"),
    ("", "TLSv1.0"),
])
def test_min_tls_version_follows_the_security_policy(policy, version):
    assert lab_alb.min_tls_version(policy) == version


def test_the_alb_sits_high_in_each_subnet():
    assert lab_alb.alb_address("10.20.1.0/24") == "10.20.1.250"
    assert lab_alb.alb_address("10.20.16.0/20") == "10.20.31.250"


def test_rendering_is_stable_and_names_the_certificate_digest():
    assert lab_alb.render_config(model(), "abc") == lab_alb.render_config(model(), "abc")
    assert lab_alb.render_config(model(), "abc") != lab_alb.render_config(model(), "def")


def test_image_tag_hashes_the_build_files_only():
    tag = lab_alb.image_tag()
    assert tag.startswith("pulse-lab/alb:") and len(tag.split(":")[1]) == 12


def test_missing_certificate_is_none(tmp_path, monkeypatch):
    monkeypatch.setattr(lab_alb, "CA_DIR", tmp_path)
    assert lab_alb.certificate_bundle() is None
    (tmp_path / "server.crt").write_text("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n")
    assert lab_alb.certificate_bundle() is None
    (tmp_path / "server.key").write_text("-----BEGIN PRIVATE KEY-----\ny\n-----END PRIVATE KEY-----\n")
    assert "PRIVATE KEY" in lab_alb.certificate_bundle()


def test_missing_certificate_skips_the_alb_and_says_so_once(tmp_path, monkeypatch):
    monkeypatch.setattr(lab_alb, "CA_DIR", tmp_path)
    said = []
    for _ in range(3):
        lab_alb.reconcile(model(), {}, said.append)
    assert len(said) == 1 and "no certificate" in said[0]


def test_haproxy_accepts_the_configuration(tmp_path):
    """When the lab image exists, HAProxy itself checks a rendered configuration."""
    image = lab_alb.image_tag()
    if subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False).returncode != 0:
        pytest.skip(f"{image} not built (the lab builds it when an ALB appears)")
    text = lab_alb.render_config(model()).replace("/etc/haproxy/lab/server.pem", "/tmp/lab/server.pem")
    (tmp_path / "haproxy.cfg").write_text(text)
    gen = ("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=t -days 1 "
           "-keyout /tmp/k -out /tmp/c 2>/dev/null && cat /tmp/c /tmp/k > /tmp/lab/server.pem && "
           "haproxy -c -f /tmp/lab/haproxy.cfg")
    proc = subprocess.run(["docker", "run", "--rm", "--network", "none", "-v", f"{tmp_path}:/tmp/lab", image,
                           "sh", "-c", gen], capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
