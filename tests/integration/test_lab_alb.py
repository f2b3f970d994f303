"""The lab load balancer: HAProxy in a lab container serving moto's ALB for real.

Throwaway resources only (Env=albtest, VPC 10.215.0.0/16, ALB pulse-albtest published on
127.0.0.1:18443/18080 through its pulse-lab:*-port tags, so the lab's own ALB keeps 8443/8080);
everything is deleted at the end. The target group has the lab inventory's health-check timing
(interval 5 s, timeout 2 s, thresholds 2/2) and a deregistration delay of 5 s.
"""

import http.client
import importlib.util
import json
import socket
import ssl
import subprocess
import threading
import time

import pytest

from conftest import REPO, aws, docker, run_playbook

pytestmark = pytest.mark.lab

spec = importlib.util.spec_from_file_location("lab_alb", REPO / "lab/lab_alb.py")
lab_alb = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lab_alb)

ENV = "albtest"
NAME = "pulse-albtest"
HTTPS_PORT, HTTP_PORT = 18443, 18080
TAGS = [{"Key": "Project", "Value": "pulse"}, {"Key": "Env", "Value": ENV}]
CA_DIR = REPO / ".lab" / "ca"
CONTAINER = f"pulse-lab-alb-{NAME}"
SUBNETS = (("10.215.1.0/24", "us-east-2a"), ("10.215.2.0/24", "us-east-2b"))

# What answers on 8080 in the test instances: /health, /slow?s=N, /close (closes the connection
# without an answer), anything else; every answer says which instance gave it (X-Instance header
# and body). A response leaves in one write (buffered wfile): stopping the server (SIGTERM, no
# grace) never cuts one in half. It counts what it gets: GET /count (not counted) answers
# {"checks": health checks from the balancer, "requests": everything else, "close": /close}.
WEB_SERVER = r"""
import collections, http.server, json, time, urllib.parse
IID = json.load(open('/etc/pulse-lab/instance.json'))['instance-id']
COUNT = collections.Counter()
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    wbufsize = 1 << 16
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == '/count':
            body = json.dumps(COUNT).encode()
            self.send_response(200)
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.headers.get('User-Agent', '').startswith('ELB-HealthChecker'):
            COUNT['checks'] += 1
        else:
            COUNT['requests'] += 1
        if url.path == '/close':
            COUNT['close'] += 1
            self.close_connection = True
            return
        if url.path == '/slow':
            time.sleep(float(urllib.parse.parse_qs(url.query).get('s', ['2'])[0]))
        body = json.dumps({'instance': IID, 'path': url.path}).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.send_header('X-Instance', IID)
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer.daemon_threads = True
http.server.ThreadingHTTPServer(('0.0.0.0', 8080), Handler).serve_forever()
"""


def wait_for(predicate, timeout=60, interval=0.5, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def certificate_domain():
    """The domain the lab CA's server certificate is for (its first DNS SAN but localhost)."""
    from cryptography import x509

    cert = x509.load_pem_x509_certificate((CA_DIR / "server.crt").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [n for n in names.get_values_for_type(x509.DNSName) if n != "localhost"][0]


class _LoopbackHTTPS(http.client.HTTPSConnection):
    """HTTPS to the domain, resolved to 127.0.0.1 (curl --resolve)."""

    def connect(self):
        sock = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def tls_context():
    return ssl.create_default_context(cafile=str(CA_DIR / "ca.crt"))


def get(domain, path="/health", timeout=10, context=None):
    """One request on a new connection: (status, instance id)."""
    conn = _LoopbackHTTPS(domain, HTTPS_PORT, timeout=timeout, context=context or tls_context())
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status, resp.getheader("X-Instance")
    finally:
        conn.close()


def try_get(domain, path="/health", timeout=10):
    try:
        return get(domain, path, timeout)
    except (OSError, http.client.HTTPException) as exc:
        return None, repr(exc)


def curl(*args):
    proc = subprocess.run(["curl", "-sS", "--max-time", "10", *args], capture_output=True, text=True,
                          check=False, cwd=REPO)
    return proc


def servers_state():
    """HAProxy's view (its stats socket): server name -> operational state (0 down, 2 up)."""
    return {name: state for name, (_, state) in lab_alb.servers_state(REPO / ".lab" / "alb" / NAME).items()}


def settled(instances):
    """The loaded configuration has every instance as a target that passed (its fail-open copy)."""
    passed = lab_alb.passed_in_config(REPO / ".lab" / "alb" / NAME / lab_alb.CONFIG_NAME)
    return {server.split(":")[0] for _, server in passed} >= set(instances)


def generation():
    """(reloads, workers) of the HAProxy master once its last reload is over (no old worker
    left: every new connection meets the same workers), else None (reloading)."""
    try:
        procs = lab_alb.master_processes(REPO / ".lab" / "alb" / NAME)
    except (OSError, lab_alb.labctl.LabError):
        return None  # the master is re-executing itself
    return None if procs["old"] else (procs["reloads"], tuple(procs["workers"]))


def moto_health(elb, tg, iid):
    """What moto's DescribeTargetHealth says about one target: (state, reason)."""
    desc = elb.describe_target_health(TargetGroupArn=tg, Targets=[{"Id": iid, "Port": 8080}])
    health = desc["TargetHealthDescriptions"][0]["TargetHealth"]
    return health["State"], health.get("Reason")


def counts(iid):
    """What the web server in the instance counted (asked inside the instance)."""
    proc = docker("exec", iid, "curl", "-s", "http://127.0.0.1:8080/count")
    return json.loads(proc.stdout)


# --------------------------------------------------------------------------- resources


def delete_albtest_resources(known=None):
    """Delete every Env=albtest resource (the ones made here, or left by an aborted run)."""
    elb, ec2, acm = aws("elbv2"), aws("ec2"), aws("acm")
    for lb in elb.describe_load_balancers()["LoadBalancers"]:
        if lb["LoadBalancerName"] == NAME:
            elb.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
    for tg in elb.describe_target_groups()["TargetGroups"]:
        if tg["TargetGroupName"] == NAME:
            elb.delete_target_group(TargetGroupArn=tg["TargetGroupArn"])
    for cert in acm.list_certificates()["CertificateSummaryList"]:
        tags = acm.list_tags_for_certificate(CertificateArn=cert["CertificateArn"]).get("Tags", [])
        if {"Key": "Env", "Value": ENV} in tags:
            acm.delete_certificate(CertificateArn=cert["CertificateArn"])
    reservations = ec2.describe_instances(Filters=[
        {"Name": "tag:Env", "Values": [ENV]},
        {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
    ])["Reservations"]
    ids = [i["InstanceId"] for r in reservations for i in r["Instances"]]
    if ids:
        ec2.terminate_instances(InstanceIds=ids)
    # The backer removes the instance containers, lab_alb the ALB container.
    wait_for(lambda: all(docker("inspect", i, check=False).returncode != 0 for i in ids), timeout=60,
             what="the instance containers to go")
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "tag:Env", "Values": [ENV]}])["Vpcs"]
    for vpc in vpcs:
        for subnet in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["Subnets"]:
            ec2.delete_subnet(SubnetId=subnet["SubnetId"])
        ec2.delete_vpc(VpcId=vpc["VpcId"])


def start_web(iid):
    docker("exec", iid, "systemd-run", "--unit", "albtest-web", "--collect",
           "/usr/bin/python3", "-c", WEB_SERVER)
    wait_for(lambda: docker("exec", iid, "curl", "-s", "http://127.0.0.1:8080/health", check=False)
             .returncode == 0, timeout=20, what=f"the web server in {iid}")


def stop_web(iid):
    docker("exec", iid, "systemctl", "stop", "albtest-web", check=False)


def booted(iid):
    proc = docker("exec", iid, "systemctl", "is-system-running", check=False)
    return proc.stdout.strip() in ("running", "degraded")


@pytest.fixture(scope="module")
def alb(lab, tmp_path_factory):
    result = run_playbook("lab/playbooks/lab_alb.yml")
    assert result.rc == 0, result.output[-3000:]
    domain = certificate_domain()
    delete_albtest_resources()
    elb, ec2, acm = aws("elbv2"), aws("ec2"), aws("acm")
    try:
        vpc = ec2.create_vpc(CidrBlock="10.215.0.0/16", TagSpecifications=[
            {"ResourceType": "vpc", "Tags": TAGS}])["Vpc"]["VpcId"]
        subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=az, TagSpecifications=[
            {"ResourceType": "subnet", "Tags": TAGS}])["Subnet"]["SubnetId"] for cidr, az in SUBNETS]
        ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        instances = [ec2.run_instances(
            ImageId=ami, InstanceType="t3.micro", MinCount=1, MaxCount=1, SubnetId=subnet,
            TagSpecifications=[{"ResourceType": "instance",
                                "Tags": TAGS + [{"Key": "Name", "Value": f"{NAME}-{n}"}]}],
        )["Instances"][0]["InstanceId"] for n, subnet in enumerate(subnets, start=1)]
        # The listener's ACM certificate is the lab CA's server certificate, imported.
        cert_arn = acm.import_certificate(
            Certificate=(CA_DIR / "server.crt").read_bytes(), PrivateKey=(CA_DIR / "server.key").read_bytes(),
            CertificateChain=(CA_DIR / "ca.crt").read_bytes(), Tags=TAGS)["CertificateArn"]
        tg = elb.create_target_group(
            Name=NAME, Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="instance",
            HealthCheckProtocol="HTTP", HealthCheckPath="/health", Matcher={"HttpCode": "200"}, Tags=TAGS,
            # The lab inventory's timing (pulse_health_check_*): the ALB's minimums.
            HealthCheckIntervalSeconds=5, HealthCheckTimeoutSeconds=2,
            HealthyThresholdCount=2, UnhealthyThresholdCount=2,
        )["TargetGroups"][0]["TargetGroupArn"]
        elb.modify_target_group_attributes(TargetGroupArn=tg, Attributes=[
            {"Key": "deregistration_delay.timeout_seconds", "Value": "5"}])
        lb = elb.create_load_balancer(
            Name=NAME, Subnets=subnets, Scheme="internet-facing", Type="application",
            Tags=TAGS + [{"Key": "pulse-lab:https-port", "Value": str(HTTPS_PORT)},
                         {"Key": "pulse-lab:http-port", "Value": str(HTTP_PORT)}],
        )["LoadBalancers"][0]["LoadBalancerArn"]
        elb.create_listener(LoadBalancerArn=lb, Protocol="HTTP", Port=80, DefaultActions=[
            {"Type": "redirect", "RedirectConfig": {"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"}}])
        elb.create_listener(LoadBalancerArn=lb, Protocol="HTTPS", Port=443,
                            SslPolicy="ELBSecurityPolicy-TLS13-1-2-2021-06",
                            Certificates=[{"CertificateArn": cert_arn}],
                            DefaultActions=[{"Type": "forward", "TargetGroupArn": tg}])
        # The backer makes the instances containers; a web server in each answers on 8080.
        for iid in instances:
            wait_for(lambda iid=iid: docker("inspect", iid, check=False).returncode == 0 and booted(iid),
                     timeout=90, what=f"instance {iid} to boot")
            start_web(iid)
        elb.register_targets(TargetGroupArn=tg, Targets=[{"Id": iid} for iid in instances])
        # The lab's one balancer process is the instance backer's (lab/lab_watch.py runs lab_alb's
        # passes and its follower): a second `lab_alb.py --watch` here would keep a health view of
        # its own and post it to moto as well, which no ALB does.
        log = REPO / ".lab" / "backer.log"
        started = time.time()
        wait_for(lambda: {try_get(domain)[1] for _ in range(4)} == set(instances), timeout=180,
                 what=f"both targets to answer through the ALB (log: {log})")
        print(f"\nALB answering from both targets {time.time() - started:.1f}s after registration")
        wait_for(lambda: all(moto_health(elb, tg, i)[0] == "healthy" for i in instances), timeout=30,
                 what="moto to report both targets healthy")
        # A target that passes its checks for the first time gets a fail-open copy in the
        # configuration, which takes a reload; wait for the one that follows the second target.
        wait_for(lambda: settled(instances), timeout=30,
                 what="the balancer to load the configuration with both targets passed")
        yield {"domain": domain, "instances": instances, "tg": tg, "lb": lb, "elb": elb, "log": log}
    finally:
        try:
            for lb_desc in elb.describe_load_balancers()["LoadBalancers"]:
                if lb_desc["LoadBalancerName"] == NAME:
                    elb.delete_load_balancer(LoadBalancerArn=lb_desc["LoadBalancerArn"])
            wait_for(lambda: docker("inspect", CONTAINER, check=False).returncode != 0, timeout=30,
                     what="the ALB container to go")
        finally:
            delete_albtest_resources()


# --------------------------------------------------------------------------- tests


def test_playbook_makes_the_ca_once_with_private_keys(lab):
    first = run_playbook("lab/playbooks/lab_alb.yml")
    assert first.rc == 0, first.output[-3000:]
    second = run_playbook("lab/playbooks/lab_alb.yml")
    assert second.rc == 0, second.output[-3000:]
    assert second.changed == 0, second.changed_hosts()
    for key in ("ca.key", "server.key"):
        assert (CA_DIR / key).stat().st_mode & 0o777 == 0o600


def test_playbook_does_nothing_outside_the_lab(lab):
    result = run_playbook("lab/playbooks/lab_alb.yml", extra_vars={"pulse_lab": False})
    assert result.rc == 0, result.output[-3000:]
    assert result.recap["localhost"]["changed"] == 0
    assert result.recap["localhost"]["ok"] == 0


def test_https_health_answers_from_both_targets_in_turn(alb):
    domain = alb["domain"]
    # A reload starts new workers whose round robin starts over: the sequence counts only when
    # the same workers served all of it (no reload under way before it, none begun during it).
    for _ in range(5):
        before = wait_for(generation, timeout=30, interval=0.1, what="the balancer to finish its reload")
        seen = https_health_instances(domain, 6)
        if generation() == before:
            break
    else:
        pytest.fail("the balancer reloaded during each of 5 sequences of 6 requests")
    assert set(seen) == set(alb["instances"])
    assert all(a != b for a, b in zip(seen, seen[1:])), f"round robin expected: {seen}"


def https_health_instances(domain, count):
    """The instance that answered each of `count` /health requests through curl, in order."""
    seen = []
    for _ in range(count):
        proc = curl("--cacert", ".lab/ca/ca.crt", "--resolve", f"{domain}:{HTTPS_PORT}:127.0.0.1",
                    "-D", "-", "-o", "/dev/null", f"https://{domain}:{HTTPS_PORT}/health")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("HTTP/2 200") or proc.stdout.startswith("HTTP/1.1 200"), proc.stdout
        seen.append([line.split(":", 1)[1].strip() for line in proc.stdout.splitlines()
                     if line.lower().startswith("x-instance:")][0])
    return seen


def test_http_redirects_to_https(alb):
    domain = alb["domain"]
    proc = curl("--resolve", f"{domain}:{HTTP_PORT}:127.0.0.1", "-o", "/dev/null",
                "-w", "%{http_code} %{redirect_url}", f"http://{domain}:{HTTP_PORT}/health?x=1")
    assert proc.stdout == f"301 https://{domain}:{HTTPS_PORT}/health?x=1", proc.stdout + proc.stderr


def test_certificate_is_the_lab_cas_with_the_domain(alb):
    domain = alb["domain"]
    context = tls_context()  # verifies the chain to .lab/ca/ca.crt and the host name
    with socket.create_connection(("127.0.0.1", HTTPS_PORT), timeout=10) as sock:
        with context.wrap_socket(sock, server_hostname=domain) as tls:
            cert = tls.getpeercert()
            version = tls.version()
    assert ("DNS", domain) in cert["subjectAltName"]
    issuer = dict(item[0] for item in cert["issuer"])
    assert issuer["commonName"].startswith("Pulse lab CA")
    assert version in ("TLSv1.2", "TLSv1.3")
    # A client without the lab CA refuses it: it is not a public certificate.
    with pytest.raises(ssl.SSLCertVerificationError):
        get(domain, context=ssl.create_default_context())


def test_deregistered_target_drains_and_gets_no_new_requests(alb):
    domain, elb, tg = alb["domain"], alb["elb"], alb["tg"]
    leaving, staying = alb["instances"]
    # In-flight requests, some on the target that is about to leave.
    slow = []
    threads = [threading.Thread(target=lambda: slow.append(try_get(domain, "/slow?s=3", timeout=20)))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    assert moto_health(elb, tg, leaving) == ("healthy", None)
    elb.deregister_targets(TargetGroupArn=tg, Targets=[{"Id": leaving}])
    t0 = time.time()
    # As on AWS: draining for the deregistration delay (5 s here), not unused at once.
    assert moto_health(elb, tg, leaving) == ("draining", "Target.DeregistrationInProgress")
    listed = elb.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]
    assert {d["Target"]["Id"]: d["TargetHealth"]["State"] for d in listed} == {
        leaving: "draining", staying: "healthy"}
    last_seen = 0.0
    while time.time() - t0 < 3.0:
        status, iid = try_get(domain)
        assert status == 200, iid
        if iid == leaving:
            last_seen = time.time() - t0
        time.sleep(0.05)
    for thread in threads:
        thread.join(timeout=20)
    print(f"\nderegistered target: last new request served {last_seen:.2f}s after deregistration")
    assert last_seen < 2.0
    after = [try_get(domain) for _ in range(20)]
    assert after == [(200, staying)] * 20
    # The in-flight requests completed, including those on the deregistered target.
    assert sorted(s for s, _ in slow) == [200] * 4, slow
    assert leaving in {iid for _, iid in slow}, slow
    # Draining is over after the delay: unused (what roles/pulse_rollout/tasks/drain.yml waits for).
    unused_at = wait_for(lambda: moto_health(elb, tg, leaving) == ("unused", "Target.NotRegistered")
                         and time.time(), timeout=15, interval=0.2, what="the target to be unused")
    print(f"deregistered target: unused {unused_at - t0:.2f}s after deregistration (delay 5 s)")
    assert 4.5 <= unused_at - t0 <= 8
    assert leaving not in {d["Target"]["Id"] for d in
                           elb.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]}


def test_registered_target_gets_no_request_until_it_passed_the_health_checks(alb):
    domain, elb, tg = alb["domain"], alb["elb"], alb["tg"]
    returning, staying = alb["instances"]
    server = f"{returning}:8080"
    wait_for(lambda: moto_health(elb, tg, returning)[0] == "unused", timeout=15, what="the target unused")
    before = counts(returning)
    elb.register_targets(TargetGroupArn=tg, Targets=[{"Id": returning}])
    t0 = time.time()
    states, answers, up_at = [], [], None
    while time.time() - t0 < 45:
        state = moto_health(elb, tg, returning)
        states.append((time.time() - t0, state[0]))
        if state[0] == "healthy":
            break
        assert state[0] == "initial", states
        answer = try_get(domain)
        # HAProxy's own state, read after the request: DOWN then means DOWN during it.
        balancer_up = servers_state().get(server) == 2
        if balancer_up and up_at is None:
            up_at = time.time() - t0
        answers.append((answer, balancer_up))
        time.sleep(0.1)
    healthy_at = states[-1][0]
    during = counts(returning)
    print(f"\nregistered target: initial for {healthy_at:.2f}s ({len(answers)} requests meanwhile, "
          f"{during.get('checks', 0) - before.get('checks', 0)} health checks at the target); "
          f"the balancer had it up {up_at if up_at is None else round(up_at, 2)}s after registration")
    assert states[-1][1] == "healthy", states
    assert states[0][1] == "initial", states
    # ALB: interval 5 s, healthy threshold 2: at least one interval, at most about two, plus the
    # lab balancer's lag in following moto (seconds on a loaded 2-core machine).
    assert 4 <= healthy_at <= 25, states
    # Not one request reached it before the balancer had it passed (rise = HealthyThresholdCount
    # checks); until then the other target answered them all. Between the balancer's "up" and
    # moto's "healthy" is the report's lag (the follower posts what HAProxy sees within a second
    # or two), in which it may already get requests, as on AWS where DescribeTargetHealth lags.
    early = [answer for answer, balancer_up in answers if not balancer_up]
    assert early and set(early) == {(200, staying)}, early
    assert {answer for answer, _ in answers} <= {(200, staying), (200, returning)}, answers
    assert up_at is None or healthy_at - up_at <= 5, (up_at, healthy_at)
    # The target's own count: every request it served meanwhile is one of the answers above
    # (none of them before the balancer passed it), nothing else reached it.
    assert during.get("requests", 0) - before.get("requests", 0) == \
        sum(1 for answer, _ in answers if answer == (200, returning)), (before, during)
    assert during.get("checks", 0) - before.get("checks", 0) >= 2
    # Healthy: it gets its share.
    wait_for(lambda: {try_get(domain)[1] for _ in range(4)} == set(alb["instances"]), timeout=15,
             interval=0.1, what="the registered target to get traffic")
    assert counts(returning)["requests"] > during.get("requests", 0)


def test_a_target_that_closes_without_answering_is_a_502_not_retried(alb):
    domain = alb["domain"]
    before = {iid: counts(iid).get("close", 0) for iid in alb["instances"]}
    answers = [try_get(domain, "/close") for _ in range(4)]
    after = {iid: counts(iid).get("close", 0) for iid in alb["instances"]}
    assert [status for status, _ in answers] == [502] * 4, answers
    # One attempt per request: no retry, no redispatch to the other target.
    assert sum(after.values()) - sum(before.values()) == 4, (before, after)
    assert try_get(domain)[0] == 200


def stop_under_load(alb, stopping, after=3.0, cap=90.0):
    """Requests in a loop while the web server of `stopping` stops without draining, until `after`
    seconds past the moment the health checks took it out; returns (results [(time, status,
    instance)], stopped_at, down_at). Bounded by time, not by a count: failed requests answer
    fast, and a fixed count could end the loop before the target was out (seen in a run)."""
    domain = alb["domain"]
    results = []
    done = threading.Event()

    def steady_loop():
        deadline = time.time() + cap
        while not done.is_set() and time.time() < deadline:
            results.append((time.time(), *try_get(domain, timeout=20)))
            time.sleep(0.02)

    loop = threading.Thread(target=steady_loop)
    loop.start()
    try:
        wait_for(lambda: len(results) >= 40, timeout=30, interval=0.05, what="40 requests")
        stopped_at = time.time()
        stop_web(stopping)
        down_at = wait_for(lambda: servers_state().get(f"{stopping}:8080") == 0 and time.time(), timeout=20,
                           interval=0.1, what="the health check to take the target out")
        wait_for(lambda: time.time() >= down_at + after, timeout=after + 5, interval=0.1, what="the requests after")
    finally:
        done.set()
        loop.join(timeout=60)
    return results, stopped_at, down_at


def test_stopped_node_fails_requests_until_health_checks_take_it_out(alb):
    """The ALB does not retry: a node that stops without being drained costs failed requests
    until the health checks take it out (at most interval x unhealthy threshold: 10 s here)."""
    elb, tg = alb["elb"], alb["tg"]
    stopping, other = alb["instances"]
    wait_for(lambda: servers_state().get(f"{stopping}:8080") == 2, timeout=20, what="both targets up")
    try:
        results, stopped_at, down_at = stop_under_load(alb, stopping)
        failures = [r for r in results if r[1] != 200]
        print(f"\nsteady loop: {len(results)} requests in {results[-1][0] - results[0][0]:.1f}s, "
              f"{len(failures)} failed ({sorted({r[1] for r in failures}, key=str)}); "
              f"health check marked it down {down_at - stopped_at:.2f}s after the stop")
        assert failures, "the ALB does not retry: requests to the stopped node fail until it is out"
        assert {r[1] for r in failures} <= {502, 503, 504}, failures[:5]
        assert all(stopped_at - 0.5 <= r[0] <= down_at + 0.5 for r in failures), (stopped_at, down_at, failures[:5])
        assert down_at - stopped_at <= 12
        after = [r for r in results if r[0] > down_at + 0.5]
        assert len(after) >= 20 and {r[2] for r in after} == {other}, after[:5]
        # moto says what the balancer sees: unhealthy (it passed before), then healthy again.
        wait_for(lambda: moto_health(elb, tg, stopping)[0] == "unhealthy", timeout=5, what="moto: unhealthy")
    finally:  # the next test needs both targets
        if docker("exec", stopping, "curl", "-s", "http://127.0.0.1:8080/health", check=False).returncode != 0:
            start_web(stopping)
    wait_for(lambda: servers_state().get(f"{stopping}:8080") == 2, timeout=20, what="the target to rise")
    wait_for(lambda: moto_health(elb, tg, stopping) == ("healthy", None), timeout=5, what="moto: healthy")


def test_kind_mode_retries_hide_a_stopped_node(alb):
    """Opt-in (ALB tag pulse-lab:kind=true): retries and redispatch, NOT the ALB's behaviour."""
    elb, lb = alb["elb"], alb["lb"]
    stopping, other = alb["instances"]
    config = REPO / ".lab" / "alb" / NAME / "haproxy.cfg"
    elb.add_tags(ResourceArns=[lb], Tags=[{"Key": "pulse-lab:kind", "Value": "true"}])
    try:
        wait_for(lambda: "retry-on" in config.read_text(), timeout=15, what="the kind configuration")
        wait_for(lambda: servers_state().get(f"{stopping}:8080") == 2, timeout=20, what="both targets up")
        results, stopped_at, down_at = stop_under_load(alb, stopping)
        failures = [r for r in results if r[1] != 200]
        print(f"\nkind mode: {len(results)} requests, {len(failures)} failed; "
              f"marked down {down_at - stopped_at:.2f}s after the stop")
        assert failures == []
        assert {r[2] for r in results if r[0] > stopped_at + 0.5} == {other}
        start_web(stopping)
        wait_for(lambda: servers_state().get(f"{stopping}:8080") == 2, timeout=20, what="the target to rise")
    finally:
        elb.remove_tags(ResourceArns=[lb], TagKeys=["pulse-lab:kind"])
        wait_for(lambda: "retry-on" not in config.read_text(), timeout=15, what="the ALB configuration again")


def test_deleting_the_alb_removes_its_container(alb):
    alb["elb"].delete_load_balancer(LoadBalancerArn=alb["lb"])
    wait_for(lambda: docker("inspect", CONTAINER, check=False).returncode != 0, timeout=10,
             what="the ALB container to go")
    assert not (REPO / ".lab" / "alb" / NAME).exists()
