"""Unit tests of lab/lab_alb.py: the HAProxy configuration rendered from an ALB model."""

import pytest

from conftest import check_in_lab_image, load_lab_module, self_signed

lab_alb = load_lab_module("lab/lab_alb.py", "lab_alb")

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
                           "matcher": "200", "interval": 5, "timeout": 2, "healthy": 2, "unhealthy": 3},
                "deregistration_delay": 30,
                "algorithm": "round_robin",
                "servers": [
                    {"name": "i-0a:8080", "target": "i-0a", "addr": "10.20.1.4", "port": 8080, "passed": True},
                    {"name": "i-0b:8080", "target": "i-0b", "addr": "10.20.2.4", "port": 8080, "passed": True},
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


def test_alb_semantics_by_default_no_retries_no_redispatch():
    text = lab_alb.render_config(model())
    assert "retries 0" in lines(text)
    for line in lines(text):
        assert "redispatch" not in line and "retry-on" not in line and "l7-retry" not in line, line
    assert "timeout connect 10s" in lines(text)  # the ALB's connection timeout to a target


def test_kind_mode_is_an_opt_in_with_retries_and_redispatch():
    text = lab_alb.render_config(model(kind=True))
    for line in ("option redispatch 1", "retries 3", "retry-on conn-failure empty-response response-timeout"):
        assert line in lines(text)
    assert "retries 0" not in lines(text)
    # Only idempotent requests are repeated after a response went missing, on both listeners.
    for header in ("frontend https-443", "frontend http-80"):
        assert "http-request disable-l7-retry unless METH_GET || METH_HEAD || METH_OPTIONS" in section(text, header)


def test_kind_mode_comes_from_the_alb_tag(monkeypatch):
    class Fake:
        tags = {}

        def describe_load_balancers(self):
            return {"LoadBalancers": [{"LoadBalancerArn": "arn:lb", "LoadBalancerName": "lb", "Type": "application",
                                       "CreatedTime": 0, "AvailabilityZones": []}]}

        def describe_tags(self, ResourceArns):
            return {"TagDescriptions": [{"ResourceArn": "arn:lb", "Tags": [
                {"Key": k, "Value": v} for k, v in dict(Project="pulse", **self.tags).items()]}]}

        def describe_instances(self, Filters):
            return {"Reservations": []}

        def describe_subnets(self):
            return {"Subnets": []}

        def describe_load_balancer_attributes(self, LoadBalancerArn):
            return {"Attributes": []}

        def describe_listeners(self, LoadBalancerArn):
            return {"Listeners": []}

    fake = Fake()
    monkeypatch.setattr(lab_alb, "client", lambda service: fake)
    assert lab_alb.describe_albs(print)[0]["kind"] is False
    fake.tags = {"pulse-lab:kind": "true"}
    assert lab_alb.describe_albs(print)[0]["kind"] is True


def test_health_check_timing_comes_from_the_target_group():
    backend = section(lab_alb.render_config(model()), "backend tg-pulse-lab-api")
    # interval 5 s, timeout 2 s, rise = HealthyThresholdCount 2, fall = UnhealthyThresholdCount 3
    assert "timeout check 2s" in backend
    assert "default-server inter 5s fastinter 5s downinter 5s rise 2 fall 3" in backend
    alb = model()
    alb["target_groups"][TG]["health"].update(interval=30, timeout=5, healthy=5, unhealthy=2)
    backend = section(lab_alb.render_config(alb), "backend tg-pulse-lab-api")
    assert "timeout check 5s" in backend
    assert "default-server inter 30s fastinter 30s downinter 30s rise 5 fall 2" in backend
    assert not [line for line in lines(lab_alb.render_config(alb)) if "inter 1s" in line]


def test_target_group_model_reads_timing_and_leaves_draining_targets_out(monkeypatch):
    class Fake:
        def describe_target_groups(self, TargetGroupArns):
            return {"TargetGroups": [{"TargetGroupName": "tg", "Port": 8080, "Protocol": "HTTP",
                                      "HealthCheckPath": "/health", "HealthCheckPort": "traffic-port",
                                      "HealthCheckIntervalSeconds": 5, "HealthCheckTimeoutSeconds": 2,
                                      "HealthyThresholdCount": 2, "UnhealthyThresholdCount": 3,
                                      "Matcher": {"HttpCode": "200"}}]}

        def describe_target_group_attributes(self, TargetGroupArn):
            return {"Attributes": [{"Key": "deregistration_delay.timeout_seconds", "Value": "7"}]}

        def describe_target_health(self, TargetGroupArn):
            return {"TargetHealthDescriptions": [
                {"Target": {"Id": "i-1", "Port": 8080}, "TargetHealth": {"State": "initial"}},
                {"Target": {"Id": "i-2", "Port": 8080}, "TargetHealth": {"State": "draining"}},
                {"Target": {"Id": "i-3", "Port": 8080}, "TargetHealth": {"State": "healthy"}},
            ]}

    monkeypatch.setattr(lab_alb, "client", lambda service: Fake())
    tg = lab_alb.describe_target_group("arn:tg", {"i-1": "10.0.0.4", "i-2": "10.0.0.5"})
    assert tg["health"]["interval"] == 5 and tg["health"]["timeout"] == 2
    assert tg["health"]["healthy"] == 2 and tg["health"]["unhealthy"] == 3
    assert tg["deregistration_delay"] == 7
    # i-2 drains (no new requests), i-3 has no address (stopped): neither is a server.
    assert [s["name"] for s in tg["servers"]] == ["i-1:8080"]
    assert tg["servers"][0]["passed"] is False
    assert tg["registered"] == [("arn:tg", "i-1", 8080), ("arn:tg", "i-3", 8080)]


def test_draining_is_bounded_by_the_deregistration_delay():
    text = lab_alb.render_config(model())
    assert "hard-stop-after 30s" in lines(text)
    assert "load-server-state-from-file global" in lines(text)
    assert "server-state-file /etc/haproxy/lab/server-state" in lines(text)


def test_every_target_unhealthy_fails_open_like_the_alb():
    backend = section(lab_alb.render_config(model()), "backend tg-pulse-lab-api")
    assert "option allbackups" in backend
    assert "server i-0a:8080.failopen 10.20.1.4:8080 backup" in backend


def test_an_initial_target_is_not_among_the_fail_open_copies():
    alb = model()
    alb["target_groups"][TG]["servers"][1]["passed"] = False
    text = lab_alb.render_config(alb)
    backend = section(text, "backend tg-pulse-lab-api")
    assert "server i-0b:8080 10.20.2.4:8080 check" in backend  # health-checked...
    assert not [line for line in backend if line.startswith("server i-0b:8080.failopen")]  # ...no fail open
    assert "server i-0a:8080.failopen 10.20.1.4:8080 backup" in backend
    # Which servers passed is read back from a configuration (a restarted backer).
    path = lab_alb.Path(pytest.importorskip("tempfile").mkdtemp()) / "haproxy.cfg"
    path.write_text(text)
    assert lab_alb.passed_in_config(path) == {("tg-pulse-lab-api", "i-0a:8080")}


def test_a_new_target_is_seeded_down_in_the_server_state_file():
    alb = model()
    alb["target_groups"][TG]["servers"][1]["passed"] = False
    seeds = lab_alb.seed_lines(alb)
    assert seeds == [("tg-pulse-lab-api", "i-0b:8080",
                      "1 tg-pulse-lab-api 1 i-0b:8080 10.20.2.4 0 0 1 1 0 1 0 0 6 0 0 0 - 8080 - 0 0 - - 0")]
    fields = seeds[0][2].split()
    header = lab_alb.STATE_HEADER[2:].split()
    assert len(fields) == len(header)
    state = dict(zip(header, fields))
    assert state["srv_op_state"] == "0" and state["srv_check_health"] == "0"  # DOWN, no check passed
    # A fresh file: the version line, the header, the seeds.
    text = lab_alb.server_state_text("", seeds)
    assert text.splitlines()[0] == "1" and text.splitlines()[-1] == seeds[0][2]
    # Saved state of the running workers first; a server HAProxy knows keeps its own line.
    saved = ("1\n" + lab_alb.STATE_HEADER + "\n"
             "3 tg-pulse-lab-api 1 i-0a:8080 10.20.1.4 2 0 1 1 40 15 3 4 6 0 0 0 - 8080 - 0 0 - - 0\n\n")
    text = lab_alb.server_state_text(saved, seeds)
    assert text.count("i-0b:8080") == 1 and "i-0a:8080 10.20.1.4 2 " in text
    known = saved.replace("i-0a:8080 10.20.1.4 2", "i-0b:8080 10.20.2.4 0")
    assert lab_alb.server_state_text(known, seeds).count("i-0b:8080") == 1
    # Passed servers, and groups without health checks, get no seed.
    alb["target_groups"][TG]["servers"][1]["passed"] = True
    assert lab_alb.seed_lines(alb) == []
    alb["target_groups"][TG]["servers"][1]["passed"] = False
    alb["target_groups"][TG]["health"]["enabled"] = False
    assert lab_alb.seed_lines(alb) == []


def test_target_health_as_describe_target_health_says_it():
    tg = model()["target_groups"][TG]
    up = {"status": "UP", "check_status": "L7OK", "check_code": "200"}
    assert lab_alb.target_health(tg, False, up) == {"State": "healthy"}
    assert lab_alb.target_health(tg, True, dict(up, status="UP 1/3")) == {"State": "healthy"}  # going down
    down = {"status": "DOWN 1/2", "check_status": "L7OK", "check_code": "200"}
    assert lab_alb.target_health(tg, False, down)["State"] == "initial"
    assert lab_alb.target_health(tg, False, None)["State"] == "initial"
    assert lab_alb.target_health(tg, True, dict(down, status="DOWN", check_status="L7STS", check_code="503")) == {
        "State": "unhealthy", "Reason": "Target.ResponseCodeMismatch",
        "Description": "Health checks failed with these codes: [503]"}
    assert lab_alb.target_health(tg, True, dict(down, status="DOWN", check_status="L4TOUT"))["Reason"] == \
        "Target.Timeout"
    assert lab_alb.target_health(tg, True, dict(down, status="DOWN", check_status="L4CON"))["Reason"] == \
        "Target.FailedHealthChecks"
    tg["health"]["enabled"] = False
    assert lab_alb.target_health(tg, True, up)["State"] == "unavailable"


def test_health_report_for_moto_and_a_pass_when_a_target_passes(monkeypatch, tmp_path):
    alb = model()
    alb["target_groups"][TG]["servers"][1]["passed"] = False
    monkeypatch.setattr(lab_alb, "STATE_DIR", tmp_path)
    monkeypatch.setattr(lab_alb, "_served", {})
    monkeypatch.setattr(lab_alb, "_passed", {"pulse-lab-alb": {("tg-pulse-lab-api", "i-0a:8080")}})
    monkeypatch.setattr(lab_alb, "_reported", {"body": None, "at": 0.0, "tgs": {"arn:gone"}})
    lab_alb.mark_passed(alb, {})
    assert [s["passed"] for s in alb["target_groups"][TG]["servers"]] == [True, False]
    lab_alb._serve(alb, tmp_path, 1000.0)
    stats = {("tg-pulse-lab-api", "i-0a:8080"): {"status": "UP", "check_status": "L7OK", "check_code": "200"},
             ("tg-pulse-lab-api", "i-0b:8080"): {"status": "DOWN 1/2", "check_status": "L7OK", "check_code": "200"}}
    monkeypatch.setattr(lab_alb, "haproxy_stats", lambda state_dir: stats)
    body, due = lab_alb.health_report()
    assert not due
    assert body["ttl"] == lab_alb.CLAIM_TTL and body["release"] == ["arn:gone"]
    group = body["target_groups"][TG]
    assert group["as_of"] == 1000.0
    assert group["targets"]["i-0a"] == {"State": "healthy"}
    assert group["targets"]["i-0b"]["State"] == "initial"
    posted = []
    monkeypatch.setattr(lab_alb, "post_target_health", posted.append)
    assert lab_alb.report(print) is False and len(posted) == 1
    assert lab_alb.report(print) is False and len(posted) == 1  # unchanged: not posted again at once
    stats[("tg-pulse-lab-api", "i-0b:8080")]["status"] = "UP"
    assert lab_alb.report(print) is True and len(posted) == 2  # passed: a pass renders its fail-open copy
    assert posted[-1]["target_groups"][TG]["targets"]["i-0b"] == {"State": "healthy"}
    assert "release" not in posted[-1]
    stats[("tg-pulse-lab-api", "i-0b:8080")]["status"] = "DOWN"
    assert lab_alb.report(print) is False
    assert posted[-1]["target_groups"][TG]["targets"]["i-0b"]["State"] == "unhealthy"  # passed once


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
    alb = model()
    alb["target_groups"][TG]["servers"][1]["passed"] = False
    configs = {name: lab_alb.render_config(dict(alb, kind=kind)).replace("/etc/haproxy/lab/server.pem",
                                                                         "/tmp/lab/server.pem")
               for name, kind in (("haproxy.cfg", False), ("kind.cfg", True))}
    check_in_lab_image(lab_alb.image_tag(), "when an ALB appears", tmp_path, "/tmp/lab", configs,
                       self_signed("/tmp/k", "/tmp/c") + " && cat /tmp/c /tmp/k > /tmp/lab/server.pem && "
                       "haproxy -c -f /tmp/lab/haproxy.cfg && haproxy -c -f /tmp/lab/kind.cfg")


# --------------------------------------------------------------------------- moto's side


@pytest.fixture
def lab_moto(monkeypatch):
    """lab/moto_server.py's LabTargetHealth installed on an in-process moto, with its own clock."""
    moto = pytest.importorskip("moto")
    from moto.elbv2 import models

    server = load_lab_module("lab/moto_server.py", "lab_moto_server")
    for cls, names in ((models.ELBv2Backend, ("describe_target_health", "register_targets", "deregister_targets")),
                       (models.FakeTargetGroup, ("deregister_terminated_instances",))):
        for name in names:
            monkeypatch.setattr(cls, name, getattr(cls, name))  # put back afterwards
    clock = {"now": 1000.0}
    lab = server.LabTargetHealth(clock=lambda: clock["now"]).install()
    with moto.mock_aws():
        import boto3

        kw = {"region_name": "us-east-2", "aws_access_key_id": "x", "aws_secret_access_key": "x"}
        ec2, elb = boto3.client("ec2", **kw), boto3.client("elbv2", **kw)
        vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
        ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        ids = [i["InstanceId"] for i in ec2.run_instances(ImageId=ami, MinCount=3, MaxCount=3,
                                                          SubnetId=subnet)["Instances"]]
        tg = elb.create_target_group(Name="t", Protocol="HTTP", Port=8080, VpcId=vpc)["TargetGroups"][0]
        elb.modify_target_group_attributes(TargetGroupArn=tg["TargetGroupArn"], Attributes=[
            {"Key": "deregistration_delay.timeout_seconds", "Value": "30"}])

        def health(*targets):
            kw = {"Targets": [{"Id": t, "Port": 8080} for t in targets]} if targets else {}
            return {d["Target"]["Id"]: (d["TargetHealth"]["State"], d["TargetHealth"].get("Reason"))
                    for d in elb.describe_target_health(TargetGroupArn=tg["TargetGroupArn"], **kw)
                    ["TargetHealthDescriptions"]}

        yield {"lab": lab, "clock": clock, "elb": elb, "ec2": ec2, "ids": ids, "tg": tg["TargetGroupArn"],
               "health": health}


def test_moto_keeps_its_behaviour_for_target_groups_the_lab_does_not_serve(lab_moto):
    elb, tg, ids, health = lab_moto["elb"], lab_moto["tg"], lab_moto["ids"], lab_moto["health"]
    elb.register_targets(TargetGroupArn=tg, Targets=[{"Id": ids[0]}])
    assert health() == {ids[0]: ("healthy", None)}
    elb.deregister_targets(TargetGroupArn=tg, Targets=[{"Id": ids[0]}])
    assert health(ids[0]) == {ids[0]: ("unused", "Target.NotRegistered")}


def test_moto_reports_what_the_lab_balancer_sees(lab_moto):
    lab, clock, elb, tg, ids, health = (lab_moto[k] for k in ("lab", "clock", "elb", "tg", "ids", "health"))
    a, b, c = ids
    elb.register_targets(TargetGroupArn=tg, Targets=[{"Id": a}, {"Id": b}])
    clock["now"] += 1
    lab.post({"ttl": 15, "target_groups": {tg: {"as_of": clock["now"], "targets": {}}}})
    assert health() == {a: ("initial", "Elb.RegistrationInProgress"), b: ("initial", "Elb.RegistrationInProgress")}
    lab.post({"ttl": 15, "target_groups": {tg: {"as_of": clock["now"], "targets": {
        a: {"State": "healthy"},
        b: {"State": "unhealthy", "Reason": "Target.Timeout", "Description": "Request timed out"}}}}})
    assert health() == {a: ("healthy", None), b: ("unhealthy", "Target.Timeout")}
    # Registered after the state was read: initial, not the state of an earlier registration.
    clock["now"] += 1
    elb.deregister_targets(TargetGroupArn=tg, Targets=[{"Id": a}])
    elb.register_targets(TargetGroupArn=tg, Targets=[{"Id": a}, {"Id": c}])
    assert health(a, c) == {a: ("initial", "Elb.RegistrationInProgress"), c: ("initial", "Elb.RegistrationInProgress")}
    # Deregistered: draining for the deregistration delay (listed with the others), then unused.
    clock["now"] += 1
    elb.deregister_targets(TargetGroupArn=tg, Targets=[{"Id": b}])
    assert health()[b] == ("draining", "Target.DeregistrationInProgress")
    clock["now"] += 29.5
    lab.post({"ttl": 15, "target_groups": {tg: {"as_of": clock["now"], "targets": {}}}})
    assert health(b) == {b: ("draining", "Target.DeregistrationInProgress")}
    clock["now"] += 1
    assert health(b) == {b: ("unused", "Target.NotRegistered")}
    assert b not in health()
    # A stopped instance is moto's unused.
    lab_moto["ec2"].stop_instances(InstanceIds=[c])
    assert health(c) == {c: ("unused", "Target.InvalidState")}
    # No post for CLAIM ttl: moto's own answers again.
    clock["now"] += 16
    assert health(a) == {a: ("healthy", None)}


def test_moto_terminated_target_drains_then_is_unused(lab_moto):
    lab, clock, elb, tg, ids, health = (lab_moto[k] for k in ("lab", "clock", "elb", "tg", "ids", "health"))
    elb.register_targets(TargetGroupArn=tg, Targets=[{"Id": ids[0]}])
    lab.post({"ttl": 100, "target_groups": {tg: {"as_of": clock["now"], "targets": {ids[0]: {"State": "healthy"}}}}})
    lab_moto["ec2"].terminate_instances(InstanceIds=[ids[0]])
    assert health() == {ids[0]: ("draining", "Target.DeregistrationInProgress")}
    clock["now"] += 1
    lab.post({"ttl": 100, "target_groups": {tg: {"as_of": clock["now"], "targets": {}}}})
    clock["now"] += 30
    assert health() == {}
    assert health(ids[0]) == {ids[0]: ("unused", "Target.NotRegistered")}


def test_moto_drains_until_the_lab_balancer_has_reloaded_without_the_target(lab_moto):
    """The delay is over but HAProxy still routes to the target (its reload is late on a busy
    machine): still draining, so that nobody restarts a node that still gets requests."""
    lab, clock, elb, tg, ids, health = (lab_moto[k] for k in ("lab", "clock", "elb", "tg", "ids", "health"))
    logged = []
    lab.log = logged.append
    a = ids[0]
    elb.register_targets(TargetGroupArn=tg, Targets=[{"Id": a}])
    lab.post({"ttl": 100, "target_groups": {tg: {"as_of": clock["now"], "targets": {a: {"State": "healthy"}}}}})
    clock["now"] += 1
    elb.deregister_targets(TargetGroupArn=tg, Targets=[{"Id": a}])
    called = clock["now"]
    clock["now"] += 31  # past the 30 s delay; the last post is about a configuration from before the call
    assert health(a) == {a: ("draining", "Target.DeregistrationInProgress")}
    lab.post({"ttl": 100, "target_groups": {tg: {"as_of": called - 0.5, "targets": {}}}})
    assert health(a) == {a: ("draining", "Target.DeregistrationInProgress")}
    assert lab.show()["draining"][f"{tg} {a}"]["balancer_reloaded"] is False
    clock["now"] += 4
    lab.post({"ttl": 100, "target_groups": {tg: {"as_of": called + 0.2, "targets": {}}}})
    assert health(a) == {a: ("unused", "Target.NotRegistered")}
    assert logged == [f"{a} in t: draining ended 5.0s after its deregistration delay, when the lab "
                      "balancer had reloaded without it (35.0s after the call)"]


def test_moto_drain_without_a_lab_balancer_is_the_delay_alone(lab_moto):
    lab, clock, elb, tg, ids, health = (lab_moto[k] for k in ("lab", "clock", "elb", "tg", "ids", "health"))
    a = ids[0]
    elb.register_targets(TargetGroupArn=tg, Targets=[{"Id": a}])
    lab.post({"ttl": 15, "target_groups": {tg: {"as_of": clock["now"], "targets": {a: {"State": "healthy"}}}}})
    clock["now"] += 1
    elb.deregister_targets(TargetGroupArn=tg, Targets=[{"Id": a}])
    clock["now"] += 31  # no post since: the claim lapsed, moto answers as moto
    assert health(a) == {a: ("unused", "Target.NotRegistered")}


def test_moto_lab_endpoint_refuses_unknown_states(lab_moto):
    with pytest.raises(ValueError):
        lab_moto["lab"].post({"target_groups": {lab_moto["tg"]: {"targets": {"i-1": {"State": "fine"}}}}})
    app = lab_moto["lab"].wsgi(lambda environ, start_response: [b"moto"])
    answers = []
    body = app({"PATH_INFO": "/lab-api/elbv2/target-health", "REQUEST_METHOD": "GET"},
               lambda status, headers: answers.append(status))
    assert answers == ["200 OK"] and b"claims" in body[0]
    assert app({"PATH_INFO": "/", "REQUEST_METHOD": "GET"}, None) == [b"moto"]


SHOW_PROC = """#<PID>          <type>          <reloads>       <uptime>        <version>
1               master          5 [failed: 0]   0d00h02m16s     2.6.12-1+deb12u3
# workers
100             worker          0               0d00h00m01s     2.6.12-1+deb12u3
# old workers
96              worker          1               0d00h00m09s     2.6.12-1+deb12u3
# programs

"""


def test_the_master_lists_its_workers_and_the_old_ones_still_finishing(monkeypatch, tmp_path):
    monkeypatch.setattr(lab_alb, "haproxy_command", lambda sock, command: SHOW_PROC)
    assert lab_alb.master_processes(tmp_path) == {"reloads": 5, "failed": 0, "workers": [100], "old": [96]}
    assert lab_alb.master_reloads(tmp_path) == (5, 0)
    settled = SHOW_PROC.replace("96              worker          1               0d00h00m09s     2.6.12-1+deb12u3\n", "")
    monkeypatch.setattr(lab_alb, "haproxy_command", lambda sock, command: settled)
    assert lab_alb.master_processes(tmp_path)["old"] == []
    monkeypatch.setattr(lab_alb, "haproxy_command", lambda sock, command: "Unknown command\n")
    with pytest.raises(lab_alb.labctl.LabError):
        lab_alb.master_processes(tmp_path)
