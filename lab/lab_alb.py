#!/usr/bin/env python3
"""lab_alb: the lab's Application Load Balancer — an HAProxy container per moto ALB.

moto keeps an ALB as metadata only. This module gives every ALB tagged ``Project=pulse`` a
real proxy: HAProxy (Debian package, image ``pulse-lab/alb:<hash of lab/alb>``) in a lab
container on the ALB's subnets' Docker networks, at a fixed high address of each subnet, with

- the HTTPS listener on ``127.0.0.1:8443`` (container :443), certificate ``.lab/ca/server.*``
  from the lab CA (``lab/playbooks/lab_alb.yml``), standing in for the listener's ACM certificate;
- the HTTP listener on ``127.0.0.1:8080`` (container :80), e.g. the redirect to HTTPS;
- one HAProxy server per target **registered in moto** (instance id -> private IP), health
  checked like the target group: path, port, protocol, matcher, interval, timeout and thresholds
  (rise = HealthyThresholdCount, fall = UnhealthyThresholdCount);
- ALB semantics: no retries, no redispatch (a request that meets a stopping or dead target
  fails to the client, 502/503/504); a newly registered target starts DOWN (``initial``: it is
  seeded DOWN in HAProxy's server-state file before the reload that adds it) and gets requests
  only once it passed HealthyThresholdCount checks; every target unhealthy -> fail open to the
  targets that passed once;
- a graceful reload when the registrations change: a deregistered target gets no new
  requests, its in-flight requests complete (old workers drain, bounded by the target group's
  deregistration delay);
- target health reported back to moto (``POST /lab-api/elbv2/target-health`` on the lab's moto,
  lab/moto_server.py): DescribeTargetHealth then says ``initial`` / ``healthy`` / ``unhealthy``
  as HAProxy sees the targets, ``draining`` during the deregistration delay, then ``unused``.

``sync(log)`` is one reconcile pass; the instance backer (``lab/lab_watch.py``) calls it every
second. Run it alone with ``python lab/lab_alb.py`` (one pass) or ``--watch`` (every second).

An ALB may carry the tags ``pulse-lab:https-port`` / ``pulse-lab:http-port`` to be published on
other loopback ports (tests do, so they never fight over 8443 with the lab's own ALB), and
``pulse-lab:kind=true`` for the opt-in "kind" mode: retries and redispatch, as the lab had
before (NOT what the ALB does; see lab/alb/README.md).
"""

import fcntl
import hashlib
import ipaddress
import json
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import labctl  # noqa: E402  (lab/ is on the path: lab/lab_watch.py, or the caller)
import lab_proxy  # noqa: E402  (what lab_alb and lab_cdn share)
from botocore.exceptions import ClientError  # noqa: E402
from lab_proxy import HTTP_PORT_TAG, HTTPS_PORT_TAG, PROJECT  # noqa: E402  (the same for lab_cdn)

CA_DIR = labctl.LAB_DIR / "ca"
STATE_DIR = labctl.LAB_DIR / "alb"
LABEL_ALB = f"{labctl.LABEL}.alb"
LABEL_SPEC = f"{labctl.LABEL}.alb.spec"
CONTAINER_PREFIX = "pulse-lab-alb-"
HTTPS_PORT = 8443
HTTP_PORT = 8080
# Where the ALB sits in each subnet: this many addresses below the broadcast address (.250 in
# a /24). moto hands instance addresses out from .4 upward, so they never meet.
ADDRESS_FROM_TOP = 5
KIND_TAG = "pulse-lab:kind"  # "true": retries and redispatch (opt-in, not the ALB's behaviour)
# The API's defaults for an HTTP target group, where moto leaves a value out.
DEFAULT_HEALTH_INTERVAL = 30
DEFAULT_HEALTH_TIMEOUT = 5
DEFAULT_HEALTHY_THRESHOLD = 5
DEFAULT_UNHEALTHY_THRESHOLD = 2
# The ALB gives up connecting to a target after 10 s (then 504).
CONNECT_TIMEOUT = 10
DEFAULT_DEREGISTRATION_DELAY = 300
DEFAULT_IDLE_TIMEOUT = 60
# .lab/alb/<alb name>/ on the host is CONTAINER_DIR in the container.
CONTAINER_DIR = "/etc/haproxy/lab"
CONFIG_NAME = "haproxy.cfg"
BUNDLE_NAME = "server.pem"
MASTER_SOCKET = "master.sock"  # master CLI (-S in lab/alb/Dockerfile): reload, show proc
ADMIN_SOCKET = "admin.sock"  # the workers' stats socket: show servers state, show stat
FAILOPEN = ".failopen"  # suffix of the backup copy of a server (fail open)
SERVER_STATE = "server-state"
# In .lab/: the lab-wide lock of the passes (the backer and a test's own watcher may both run).
LOCK = "alb.lock"
RELOAD_TIMEOUT = 10
# How often the follower thread looks for (de)registrations and health changes between passes.
FOLLOW_INTERVAL = 0.5
# Target health reported to the lab's moto (lab/moto_server.py LabTargetHealth): posted when it
# changes and at least every REPORT_EVERY seconds; moto forgets a claim CLAIM_TTL seconds after
# the last post (no lab balancer running: moto's own "healthy at once" again).
TARGET_HEALTH_PATH = "/lab-api/elbv2/target-health"
REPORT_EVERY = 2.0
CLAIM_TTL = 15

# The ALBs' lab proxy (image pulse-lab/alb:<hash of lab/alb>), and what it said already: a
# pass every second logs a condition once.
_proxy = lab_proxy.Proxy("alb", "HAProxy from Debian packages")
_once, _clear = _proxy.once, _proxy.clear
_clients = {}
_rejected = {}
_follow = {"thread": None, "tgs": [], "seen": None}
# Per ALB: the servers (backend, server) that passed their health checks since they were
# registered (not `initial` any more), and what HAProxy serves now (for the health report).
_passed = {}
_served = {}
_reported = {"body": None, "at": 0.0, "tgs": set()}


# --------------------------------------------------------------------------- moto


def client(service):
    return labctl.moto_client(service, _clients)


def _tags(arns):
    out = {}
    for start in range(0, len(arns), 20):
        chunk = arns[start:start + 20]
        for desc in client("elbv2").describe_tags(ResourceArns=chunk)["TagDescriptions"]:
            out[desc["ResourceArn"]] = {t["Key"]: t["Value"] for t in desc.get("Tags", [])}
    return out


def _attributes(items):
    return {a["Key"]: a["Value"] for a in items}


_int = lab_proxy.to_int


def forward_target_groups(action):
    """Target group ARNs of a forward action (plain or ForwardConfig), weight > 0 first."""
    if action.get("TargetGroupArn"):
        return [action["TargetGroupArn"]]
    groups = action.get("ForwardConfig", {}).get("TargetGroups", [])
    return [g["TargetGroupArn"] for g in sorted(groups, key=lambda g: -g.get("Weight", 1))
            if g.get("Weight", 1) > 0]


def describe_albs(log):
    """The ALBs tagged Project=pulse, as the plain model render_config() takes."""
    elb, ec2 = client("elbv2"), client("ec2")
    lbs = [lb for lb in elb.describe_load_balancers()["LoadBalancers"] if lb.get("Type") == "application"]
    if not lbs:
        return []
    tags = _tags([lb["LoadBalancerArn"] for lb in lbs])
    lbs = [lb for lb in lbs if tags.get(lb["LoadBalancerArn"], {}).get("Project") == PROJECT]
    if not lbs:
        return []
    reservations = ec2.describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}])["Reservations"]
    instance_ips = {i["InstanceId"]: i.get("PrivateIpAddress") for r in reservations for i in r["Instances"]}
    subnets = {s["SubnetId"]: s for s in ec2.describe_subnets()["Subnets"]}
    albs = []
    for lb in sorted(lbs, key=lambda lb: (lb["CreatedTime"], lb["LoadBalancerName"])):
        arn, name = lb["LoadBalancerArn"], lb["LoadBalancerName"]
        lb_tags = tags.get(arn, {})
        lb_attrs = _attributes(elb.describe_load_balancer_attributes(LoadBalancerArn=arn)["Attributes"])
        alb = {
            "name": name,
            "arn": arn,
            "dns_name": lb.get("DNSName", ""),
            "https_port": _int(lb_tags.get(HTTPS_PORT_TAG), HTTPS_PORT),
            "http_port": _int(lb_tags.get(HTTP_PORT_TAG), HTTP_PORT),
            "idle_timeout": _int(lb_attrs.get("idle_timeout.timeout_seconds"), DEFAULT_IDLE_TIMEOUT),
            "kind": str(lb_tags.get(KIND_TAG, "")).strip().lower() in ("true", "1", "yes", "on"),
            "subnets": [],
            "listeners": [],
            "target_groups": {},
        }
        for az in lb.get("AvailabilityZones", []):
            subnet = subnets.get(az.get("SubnetId"))
            if subnet:
                alb["subnets"].append({"id": subnet["SubnetId"], "cidr": subnet["CidrBlock"],
                                       "vpc": subnet["VpcId"]})
        alb["subnets"].sort(key=lambda s: s["id"])
        tg_arns = []
        for listener in sorted(elb.describe_listeners(LoadBalancerArn=arn)["Listeners"], key=lambda x: x["Port"]):
            actions = sorted(listener.get("DefaultActions", []), key=lambda a: a.get("Order", 0))
            action = dict(actions[0]) if actions else {"Type": "fixed-response"}
            if action["Type"] == "forward":
                action["target_groups"] = forward_target_groups(action)
                tg_arns += action["target_groups"]
            alb["listeners"].append({"port": listener["Port"], "protocol": listener["Protocol"],
                                     "ssl_policy": listener.get("SslPolicy", ""), "action": action})
        for tg_arn in dict.fromkeys(tg_arns):
            try:
                alb["target_groups"][tg_arn] = describe_target_group(tg_arn, instance_ips)
            except ClientError as exc:  # deleted while a listener still names it
                if exc.response.get("Error", {}).get("Code") != "TargetGroupNotFound":
                    raise
        albs.append(alb)
    return albs


def describe_target_group(tg_arn, instance_ips):
    elb = client("elbv2")
    tg = elb.describe_target_groups(TargetGroupArns=[tg_arn])["TargetGroups"][0]
    attrs = _attributes(elb.describe_target_group_attributes(TargetGroupArn=tg_arn)["Attributes"])
    servers, registered = [], []
    for desc in elb.describe_target_health(TargetGroupArn=tg_arn)["TargetHealthDescriptions"]:
        if _draining(desc):  # deregistered: no new requests (moto lists it during the delay)
            continue
        target = desc["Target"]
        registered.append(_registration(tg_arn, desc))
        port = target.get("Port") or tg["Port"]
        if tg.get("TargetType", "instance") == "ip":
            addr = target["Id"]
        else:
            addr = instance_ips.get(target["Id"])  # None: stopped or gone, the ALB skips it too
        if addr:
            servers.append({"name": f"{target['Id']}:{port}", "target": target["Id"], "addr": addr,
                            "port": port, "passed": False})
    servers.sort(key=lambda s: s["name"])
    health_port = tg.get("HealthCheckPort", "traffic-port")
    return {
        "name": tg["TargetGroupName"],
        "protocol": tg.get("Protocol", "HTTP"),
        "port": tg["Port"],
        "health": {
            "enabled": tg.get("HealthCheckEnabled", True),
            "protocol": tg.get("HealthCheckProtocol", "HTTP"),
            "path": tg.get("HealthCheckPath") or "/",
            "port": None if health_port in (None, "traffic-port") else _int(health_port, None),
            "matcher": tg.get("Matcher", {}).get("HttpCode", "200"),
            "interval": _int(tg.get("HealthCheckIntervalSeconds"), DEFAULT_HEALTH_INTERVAL),
            "timeout": _int(tg.get("HealthCheckTimeoutSeconds"), DEFAULT_HEALTH_TIMEOUT),
            "healthy": _int(tg.get("HealthyThresholdCount"), DEFAULT_HEALTHY_THRESHOLD),
            "unhealthy": _int(tg.get("UnhealthyThresholdCount"), DEFAULT_UNHEALTHY_THRESHOLD),
        },
        "deregistration_delay": _int(attrs.get("deregistration_delay.timeout_seconds"),
                                     DEFAULT_DEREGISTRATION_DELAY),
        "algorithm": attrs.get("load_balancing.algorithm.type", "round_robin"),
        "servers": servers,
        "registered": registered,
    }


def _draining(desc):
    return desc.get("TargetHealth", {}).get("State") == "draining"


def _registration(tg_arn, desc):
    # Not the state: lab_alb reports it itself (moto's answer follows HAProxy, not the reverse).
    return (tg_arn, desc["Target"]["Id"], desc["Target"].get("Port") or 0)


def registrations(tg_arns):
    """What the follower watches: every registered (target group, target, port), sorted."""
    out = []
    for arn in tg_arns:
        for desc in client("elbv2").describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]:
            if not _draining(desc):
                out.append(_registration(arn, desc))
    return sorted(out)


# --------------------------------------------------------------------------- rendering


def min_tls_version(ssl_policy):
    """The lowest protocol an ELB security policy accepts, as HAProxy names it."""
    policy = ssl_policy or ""
    if "TLS13-1-3" in policy:
        return "TLSv1.3"
    if any(mark in policy for mark in ("TLS13-1-2", "TLS-1-2", "FS-1-2")):
        return "TLSv1.2"
    if any(mark in policy for mark in ("TLS13-1-1", "TLS-1-1", "FS-1-1")):
        return "TLSv1.1"
    return "TLSv1.0"


def backend_name(tg):
    return f"tg-{tg['name']}"


def _listener(alb, protocol):
    for listener in alb["listeners"]:
        if listener["protocol"] == protocol:
            return listener
    return None


def _action_lines(alb, action, https):
    kind = action.get("Type")
    if kind == "forward":
        groups = [alb["target_groups"][arn] for arn in action.get("target_groups", [])
                  if arn in alb["target_groups"]]
        if groups:
            return [f"default_backend {backend_name(groups[0])}"]
        return ["http-request return status 503 content-type text/plain string \"no target group\""]
    if kind == "redirect":
        cfg = action.get("RedirectConfig", {})
        code = cfg.get("StatusCode", "HTTP_301").replace("HTTP_", "")
        scheme = cfg.get("Protocol", "#{protocol}").replace("#{protocol}", "https" if https else "http").lower()
        # The listener the redirect points at is published on the lab's loopback port.
        port = alb["https_port"] if scheme == "https" else alb["http_port"]
        host = "%[req.hdr(host),field(1,:)]"
        if cfg.get("Host") and cfg["Host"] != "#{host}":
            host = cfg["Host"]
        return [f"http-request redirect location {scheme}://{host}:{port}%[capture.req.uri] code {code}"]
    if kind == "fixed-response":
        cfg = action.get("FixedResponseConfig", {})
        status = cfg.get("StatusCode", "503")
        ctype = cfg.get("ContentType", "text/plain")
        body = (cfg.get("MessageBody") or "").replace("\\", "\\\\").replace('"', '\\"')
        return [f"http-request return status {status} content-type \"{ctype}\" string \"{body}\""]
    return ["http-request return status 503 content-type text/plain string \"unsupported action\""]


def _health_lines(tg):
    health = tg["health"]
    if not health["enabled"]:
        return []
    interval = health.get("interval", DEFAULT_HEALTH_INTERVAL)
    return [
        # The target group's timing: a check every HealthCheckIntervalSeconds, answered within
        # HealthCheckTimeoutSeconds; rise = HealthyThresholdCount, fall = UnhealthyThresholdCount.
        f"timeout check {health.get('timeout', DEFAULT_HEALTH_TIMEOUT)}s",
        f"default-server inter {interval}s fastinter {interval}s downinter {interval}s"
        f" rise {health.get('healthy', DEFAULT_HEALTHY_THRESHOLD)}"
        f" fall {health.get('unhealthy', DEFAULT_UNHEALTHY_THRESHOLD)}",
        "option httpchk",
        f"http-check send meth GET uri {health['path']} ver HTTP/1.1 hdr Host lab-alb "
        "hdr User-Agent ELB-HealthChecker/2.0",
        f"http-check expect status {health['matcher'].replace(' ', '')}",
    ]


def render_config(alb, bundle_digest=""):
    """HAProxy's configuration for one ALB model (see describe_albs)."""
    groups = list(alb["target_groups"].values())
    drain = max([tg["deregistration_delay"] for tg in groups] or [DEFAULT_DEREGISTRATION_DELAY])
    idle = alb["idle_timeout"]
    lines = [
        f"# Managed by lab/lab_alb.py from moto's ALB {alb['name']}: rewritten on every change.",
        f"# {alb['arn']}",
        f"# certificate bundle sha256: {bundle_digest}",
        "global",
        "    log stdout format raw local0 info",
        f"    stats socket {CONTAINER_DIR}/{ADMIN_SOCKET} mode 600 level admin",
        f"    server-state-file {CONTAINER_DIR}/{SERVER_STATE}",
        # Old workers drain at most as long as the target group's deregistration delay.
        f"    hard-stop-after {max(drain, 1)}s",
        "    user haproxy",
        "    group haproxy",
        "",
        "defaults",
        "    mode http",
        "    log global",
        "    option httplog",
        "    option dontlognull",
        "    option forwardfor",
    ]
    if alb.get("kind"):
        # Kind mode (tag pulse-lab:kind=true), NOT what the ALB does: a request that meets a
        # target at the moment it stops goes to another one. See lab/alb/README.md.
        lines += [
            "    option redispatch 1",
            "    retries 3",
            "    retry-on conn-failure empty-response response-timeout",
        ]
    else:
        # The ALB: one attempt. A target that refuses, resets or closes without an answer
        # costs the client a 5xx (HAProxy: 503 / 502), a silent one a 504.
        lines.append("    retries 0")
    lines += [
        "    load-server-state-from-file global",
        f"    timeout connect {CONNECT_TIMEOUT}s",
        f"    timeout client {idle}s",
        f"    timeout server {idle}s",
        f"    timeout http-request {idle}s",
        f"    timeout http-keep-alive {idle}s",
        f"    timeout tunnel {idle}s",
    ]
    # Kind mode: L7 retries only where repeating is harmless; connection failures always.
    l7_retry = ["    http-request disable-l7-retry unless METH_GET || METH_HEAD || METH_OPTIONS"] \
        if alb.get("kind") else []
    https = _listener(alb, "HTTPS")
    if https:
        lines += [
            "",
            f"frontend https-{https['port']}",
            f"    bind :443 ssl crt {CONTAINER_DIR}/{BUNDLE_NAME} alpn h2,http/1.1"
            f" ssl-min-ver {min_tls_version(https['ssl_policy'])}",
            "    http-request set-header X-Forwarded-Proto https",
            f"    http-request set-header X-Forwarded-Port {https['port']}",
        ] + l7_retry
        lines += ["    " + line for line in _action_lines(alb, https["action"], https=True)]
    http = _listener(alb, "HTTP")
    if http:
        lines += [
            "",
            f"frontend http-{http['port']}",
            "    bind :80",
            "    http-request set-header X-Forwarded-Proto http",
            f"    http-request set-header X-Forwarded-Port {http['port']}",
        ] + l7_retry
        lines += ["    " + line for line in _action_lines(alb, http["action"], https=False)]
    for tg in groups:
        balance = "leastconn" if tg["algorithm"] == "least_outstanding_requests" else "roundrobin"
        lines += ["", f"backend {backend_name(tg)}", f"    balance {balance}"]
        lines += ["    " + line for line in _health_lines(tg)]
        # When every target is unhealthy the ALB "fails open" and uses them all: backups. A
        # target still `initial` (never passed) is not among them.
        lines.append("    option allbackups")
        check = ""
        if tg["health"]["enabled"]:
            check = " check"
            if tg["health"]["port"]:
                check += f" port {tg['health']['port']}"
            if tg["health"]["protocol"] == "HTTPS":
                check += " check-ssl verify none"
        tls = " ssl verify none" if tg["protocol"] == "HTTPS" else ""
        for server in tg["servers"]:
            lines.append(f"    server {server['name']} {server['addr']}:{server['port']}{tls}{check}")
        for server in tg["servers"]:
            if server.get("passed", True) or not tg["health"]["enabled"]:
                lines.append(f"    server {server['name']}{FAILOPEN} {server['addr']}:{server['port']}{tls} backup")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- certificate


def certificate_bundle():
    """The server certificate and key from the lab CA, as one PEM; None while missing."""
    crt, key = CA_DIR / "server.crt", CA_DIR / "server.key"
    if not (crt.is_file() and key.is_file()):
        return None
    text = crt.read_text().strip() + "\n" + key.read_text().strip() + "\n"
    if "CERTIFICATE" not in text or "PRIVATE KEY" not in text:
        return None
    return text


# --------------------------------------------------------------------------- image


image_tag = _proxy.image_tag  # pulse-lab/alb:<hash of lab/alb>, built by _proxy.ensure_image


# --------------------------------------------------------------------------- containers


def container_name(alb_name):
    return f"{CONTAINER_PREFIX}{alb_name}"


def alb_address(cidr):
    net = ipaddress.ip_network(cidr)
    return str(net.broadcast_address - ADDRESS_FROM_TOP)


def alb_containers():
    """The ALB containers: name -> docker ps info (+ "alb", "spec")."""
    return lab_proxy.containers(LABEL_ALB, LABEL_SPEC, "alb")


def container_spec(alb, image):
    """What the container is made of; a change means a new container."""
    spec = {
        "image": image,
        "ports": [alb["https_port"], alb["http_port"]],
        "networks": [[s["id"], alb_address(s["cidr"])] for s in alb["subnets"]],
    }
    return lab_proxy.spec_digest(spec)


def ensure_subnet_network(subnet):
    name = f"pulse-lab-{subnet['id']}"
    with open(labctl.LAB_DIR / "sync.lock", "w") as lock:  # the backer creates these too
        fcntl.flock(lock, fcntl.LOCK_EX)
        labctl.ensure_network(name, subnet["cidr"], {"subnet": subnet["id"], "vpc": subnet["vpc"]})
    return name


def create_container(alb, image, spec, state_dir, log):
    name = container_name(alb["name"])
    networks = [(ensure_subnet_network(s), alb_address(s["cidr"])) for s in alb["subnets"]]
    (first_net, first_ip), rest = networks[0], networks[1:]
    lab_proxy.create_container(
        name, alb["name"][:63], (alb["https_port"], alb["http_port"]),
        [(LABEL_ALB, alb["name"]), (LABEL_SPEC, spec)], f"{state_dir}:{CONTAINER_DIR}", image,
        network=("--network", first_net, "--ip", first_ip), connect=rest)
    addresses = ", ".join(ip for _, ip in networks)
    log(f"alb: {alb['name']} at {addresses}, https://127.0.0.1:{alb['https_port']} "
        f"http://127.0.0.1:{alb['http_port']}")


def remove_container(name, alb_name, log):
    _proxy.remove_container(log, name, alb_name, STATE_DIR)


_write = lab_proxy.write_file


def haproxy_command(sock, command, timeout=3.0):
    """One command on an HAProxy CLI socket (the host side of the mounted directory)."""
    if len(str(sock).encode()) > 107:
        raise labctl.LabError(f"socket path too long for AF_UNIX: {sock} (use a shorter PULSE_LAB_DIR)")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(str(sock))
        conn.sendall(command.encode() + b"\n")
        conn.shutdown(socket.SHUT_WR)  # the master CLI answers and closes only then
        chunks = []
        while True:
            data = conn.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode(errors="replace")


def master_processes(state_dir):
    """The master's `show proc`: {"reloads", "failed", "workers": [pid...], "old": [pid...]}.

    The master counts a reload when it re-executes itself; its new workers take over the
    listeners only once it has loaded the configuration and forked them, and the workers of
    before are listed as old until they have finished their connections. A reload is over
    (every new connection meets the new configuration) when no old worker is left."""
    out = {"workers": [], "old": []}
    section = None
    for line in haproxy_command(state_dir / MASTER_SOCKET, "show proc").splitlines():
        fields = line.split()
        if line.startswith("# "):
            section = {"# workers": "workers", "# old workers": "old"}.get(line.strip())
        elif len(fields) > 4 and fields[1] == "master" and fields[3] == "[failed:":
            out["reloads"], out["failed"] = int(fields[2]), int(fields[4].rstrip("]"))
        elif section and len(fields) > 1 and fields[1] == "worker" and fields[0].isdigit():
            out[section].append(int(fields[0]))
    if "reloads" not in out:
        raise labctl.LabError("unexpected `show proc` answer from the HAProxy master")
    return out


def master_reloads(state_dir):
    """(reloads, failed reloads) as the master counts them (`show proc`)."""
    procs = master_processes(state_dir)
    return procs["reloads"], procs["failed"]


def servers_state(state_dir):
    """HAProxy's view of its servers: name -> (backend, operational state: 0 down, 2 up...)."""
    out = {}
    for line in haproxy_command(state_dir / ADMIN_SOCKET, "show servers state").splitlines():
        fields = line.split()
        if len(fields) > 6 and not line.startswith("#"):
            out[fields[3]] = (fields[1], int(fields[5]))
    return out


STATE_HEADER = ("# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight "
                "srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health "
                "srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord "
                "srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port")


def seed_lines(alb):
    """Server-state lines that start every not-yet-passed (``initial``) server DOWN.

    HAProxy 2.6 starts a server it has no state for UP, i.e. serving at once. A line in the
    server-state file with operational state 0 (stopped) and check health 0 makes the new
    worker start it DOWN: it then needs `rise` (HealthyThresholdCount) successful checks, as a
    newly registered target on the ALB. Lines are matched by backend and server name (the ids
    are not forced), so 1/1 stand for the ids. Returns [(backend, server, line)].
    """
    out = []
    for tg in alb["target_groups"].values():
        if not tg["health"]["enabled"]:
            continue  # nothing would ever bring it up
        backend = backend_name(tg)
        ssl = 1 if tg["protocol"] == "HTTPS" else 0
        check_port = tg["health"]["port"] or 0
        for server in tg["servers"]:
            if server.get("passed", True):
                continue
            out.append((backend, server["name"],
                        f"1 {backend} 1 {server['name']} {server['addr']} 0 0 1 1 0 1 0 0 6 0 0 0 - "
                        f"{server['port']} - {ssl} {check_port} - - 0"))
    return out


def server_state_text(saved, seeds):
    """`show servers state` output (may be empty) plus the seeds of servers it does not name."""
    lines = saved.strip("\n").splitlines() if saved.strip() else ["1", STATE_HEADER]
    present = {(f[1], f[3]) for f in (line.split() for line in lines if not line.startswith("#")) if len(f) > 4}
    lines += [line for backend, server, line in seeds if (backend, server) not in present]
    return "\n".join(lines) + "\n"


def haproxy_stats(state_dir):
    """`show stat` of the workers: (backend, server) -> {"status", "check_status", "check_code"}.

    status as HAProxy shows it: UP, "UP 1/2" (going down), DOWN, "DOWN 1/2" (going up), MAINT,
    "no check"...
    """
    text = haproxy_command(state_dir / ADMIN_SOCKET, "show stat")
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("# "):
        raise labctl.LabError(f"unexpected `show stat` answer: {text[:200]!r}")
    header = lines[0][2:].split(",")
    out = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(",")))
        if row.get("svname") in ("FRONTEND", "BACKEND"):
            continue
        out[(row.get("pxname"), row.get("svname"))] = {
            "status": row.get("status", ""), "check_status": row.get("check_status", ""),
            "check_code": row.get("check_code", "")}
    return out


def is_up(stat):
    status = (stat or {}).get("status", "")
    return status.startswith("UP") or status in ("NOLB", "DRAIN")


def target_health(tg, passed, stat):
    """What DescribeTargetHealth says on AWS for a server in this HAProxy state."""
    if not tg["health"]["enabled"]:
        return {"State": "unavailable", "Reason": "Target.HealthCheckDisabled",
                "Description": "Health checks are disabled"}
    if is_up(stat):
        return {"State": "healthy"}
    if not passed:
        return {"State": "initial", "Reason": "Elb.InitialHealthChecking",
                "Description": "Initial health checks in progress"}
    check = (stat or {}).get("check_status", "")
    if check == "L7STS":
        return {"State": "unhealthy", "Reason": "Target.ResponseCodeMismatch",
                "Description": f"Health checks failed with these codes: [{stat.get('check_code', '')}]"}
    if check in ("L4TOUT", "L6TOUT", "L7TOUT"):
        return {"State": "unhealthy", "Reason": "Target.Timeout", "Description": "Request timed out"}
    return {"State": "unhealthy", "Reason": "Target.FailedHealthChecks", "Description": "Health checks failed"}


def passed_in_config(config_path):
    """The servers that have a fail-open copy in a configuration: those that passed once."""
    out, backend = set(), None
    try:
        text = config_path.read_text()
    except OSError:
        return out
    for line in text.splitlines():
        fields = line.split()
        if line.startswith("backend ") and len(fields) == 2:
            backend = fields[1]
        elif backend and len(fields) > 1 and fields[0] == "server" and fields[1].endswith(FAILOPEN):
            out.add((backend, fields[1][:-len(FAILOPEN)]))
    return out


def reload(name, state_dir, config, log, seeds=()):
    """Graceful reload, driven from the host through the mounted sockets.

    The workers' server state (health) is saved to the server-state file that the new workers
    load, so that targets which stay keep their health across the reload, and new servers that
    have not passed their checks yet are added to it DOWN (seeds, see seed_lines); the master
    then starts new workers for new connections while the old ones finish their in-flight
    requests (draining, bounded by hard-stop-after). A configuration the master refuses is put
    back.
    """
    digest = hashlib.sha256(config.encode()).hexdigest()
    if _rejected.get(name) == digest:
        return False
    config_path = state_dir / CONFIG_NAME
    old = config_path.read_text() if config_path.exists() else None
    try:
        reloads, failed = master_reloads(state_dir)
    except (OSError, labctl.LabError) as exc:
        _once(log, f"cli:{name}", f"alb: {name}: HAProxy master not answering yet ({exc})")
        return False
    _clear(f"cli:{name}")
    try:
        saved = haproxy_command(state_dir / ADMIN_SOCKET, "show servers state")
    except OSError:
        saved = ""  # no state saved: the servers that passed start up, as on a first start
    _write(state_dir / SERVER_STATE, server_state_text(saved, seeds))
    _write(config_path, config)
    ok = False
    try:
        haproxy_command(state_dir / MASTER_SOCKET, "reload")
        deadline = time.time() + RELOAD_TIMEOUT
        while time.time() < deadline:
            time.sleep(0.05)
            try:
                now_reloads, now_failed = master_reloads(state_dir)
            except OSError:
                continue  # the master is re-executing itself
            if now_reloads > reloads:
                ok = now_failed == failed
                break
    except OSError as exc:
        log(f"alb: {name}: reload failed: {exc}")
    if not ok:
        if old is not None:
            _write(config_path, old)
        _rejected[name] = digest
        log(f"alb: {name}: new configuration refused or not loaded, the old one stays "
            f"(`docker logs {name}`)")
        return False
    _rejected.pop(name, None)
    return True


def mark_passed(alb, stats):
    """Set each server's "passed" (left `initial`): it did before (seen UP by this process, or
    it has a fail-open copy in the loaded configuration, which another process running passes
    may have written), HAProxy has it UP now, or the group has no health checks. Servers no
    longer registered are forgotten: registered again, they start over from `initial`."""
    known = _passed.get(alb["name"], set()) | passed_in_config(STATE_DIR / alb["name"] / CONFIG_NAME)
    passed = set()
    for tg in alb["target_groups"].values():
        backend = backend_name(tg)
        for server in tg["servers"]:
            key = (backend, server["name"])
            server["passed"] = key in known or is_up(stats.get(key)) or not tg["health"]["enabled"]
            if server["passed"]:
                passed.add(key)
    _passed[alb["name"]] = passed


def reconcile(alb, containers, log, started=None):
    """Make the ALB's container serve what moto says. True when it does (the configuration
    rendered now is the one HAProxy runs), so that its target health is reported to moto."""
    started = started or time.time()
    name = container_name(alb["name"])
    bundle = certificate_bundle()
    if bundle is None:
        _once(log, f"cert:{alb['name']}",
              f"alb: {alb['name']}: no certificate in {CA_DIR} (server.crt, server.key) yet: "
              "skipped until `ansible-playbook lab/playbooks/lab_alb.yml` makes it")
        return
    _clear(f"cert:{alb['name']}")
    if not alb["subnets"]:
        _once(log, f"subnets:{alb['name']}", f"alb: {alb['name']}: no subnet known to moto: skipped")
        return
    if not (_listener(alb, "HTTPS") or _listener(alb, "HTTP")):
        _once(log, f"listeners:{alb['name']}", f"alb: {alb['name']}: no listener yet: skipped")
        return
    _clear(f"listeners:{alb['name']}")
    image = _proxy.ensure_image(log, STATE_DIR)
    if image is None:
        return
    state_dir = STATE_DIR / alb["name"]
    state_dir.mkdir(parents=True, exist_ok=True)
    state_dir.chmod(0o700)
    bundle_digest = hashlib.sha256(bundle.encode()).hexdigest()[:16]
    spec = container_spec(alb, image)
    current = containers.get(name)
    stats = {}
    if current is not None and current["State"] == "running":
        try:
            stats = haproxy_stats(state_dir)
        except (OSError, labctl.LabError):
            stats = {}
    mark_passed(alb, stats)
    config = render_config(alb, bundle_digest)
    if current is not None and current["spec"] != spec:
        labctl.docker("rm", "-f", "-v", name, check=False)
        log(f"alb: {alb['name']}: image, ports or subnets changed: container replaced")
        current = None
    if current is None:
        _write(state_dir / BUNDLE_NAME, bundle, 0o600)
        _write(state_dir / CONFIG_NAME, config)
        _write(state_dir / SERVER_STATE, server_state_text("", seed_lines(alb)))
        if not _proxy.create(log, alb["name"], create_container, alb, image, spec, state_dir, log):
            return False
        _serve(alb, state_dir, started)
        return True
    if current["State"] != "running" and not _proxy.start_again(log, name, alb["name"]):
        return
    bundle_path, config_path = state_dir / BUNDLE_NAME, state_dir / CONFIG_NAME
    if not bundle_path.exists() or bundle_path.read_text() != bundle:
        _write(bundle_path, bundle, 0o600)
    if config_path.exists() and config_path.read_text() == config:
        _serve(alb, state_dir, started)
        return True
    if reload(name, state_dir, config, log, seed_lines(alb)):
        servers = sum(len(tg["servers"]) for tg in alb["target_groups"].values())
        waiting = sum(not s["passed"] for tg in alb["target_groups"].values() for s in tg["servers"])
        initial = f", {waiting} of them initial (DOWN until they pass)" if waiting else ""
        log(f"alb: {alb['name']}: reloaded with {servers} registered target(s){initial} "
            f"({time.time() - started:.2f}s after the pass began)")
        _serve(alb, state_dir, started)
        return True
    return False


def _serve(alb, state_dir, as_of):
    """Remember what HAProxy now serves for this ALB: the health report reads it."""
    _served[alb["name"]] = {"state_dir": state_dir, "as_of": as_of, "groups": dict(alb["target_groups"])}


# --------------------------------------------------------------------------- target health


def post_target_health(body):
    request = urllib.request.Request(
        labctl.moto_url() + TARGET_HEALTH_PATH, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def health_report():
    """(body for moto, a server passed just now): the target health HAProxy sees, per target
    group that a running lab ALB serves."""
    groups, due = {}, False
    for alb_name, served in list(_served.items()):
        try:
            stats = haproxy_stats(served["state_dir"])
        except (OSError, labctl.LabError):
            continue  # not answering (starting, reloading): the claim holds until CLAIM_TTL
        passed = _passed.setdefault(alb_name, set())
        for arn, tg in served["groups"].items():
            backend = backend_name(tg)
            targets = {}
            for server in tg["servers"]:
                key = (backend, server["name"])
                stat = stats.get(key)
                if stat is None:
                    continue  # not loaded yet: moto says initial
                if key not in passed and is_up(stat):
                    passed.add(key)
                    due = True  # its fail-open copy is due: a pass renders it
                targets[server["target"]] = target_health(tg, key in passed, stat)
            groups[arn] = {"as_of": served["as_of"], "targets": targets}
    body = {"ttl": CLAIM_TTL, "target_groups": groups}
    released = sorted(_reported["tgs"] - set(groups))
    if released:
        body["release"] = released
    return body, due


def report(log, force=False):
    """Post the health report to moto when it changed (and every REPORT_EVERY seconds, which
    keeps the claims alive). True when a server passed its checks just now."""
    body, due = health_report()
    if not body["target_groups"] and not body.get("release"):
        return due
    states = json.dumps({arn: g["targets"] for arn, g in body["target_groups"].items()}, sort_keys=True)
    now = time.time()
    if not force and not body.get("release") and states == _reported["body"] \
            and now - _reported["at"] < REPORT_EVERY:
        return due
    try:
        post_target_health(body)
    except (OSError, ValueError, urllib.error.URLError) as exc:
        _once(log, "report", f"alb: cannot report target health to moto at {labctl.moto_url()}"
                             f"{TARGET_HEALTH_PATH} ({exc}): moto says `healthy` at once "
                             "(a moto started from an older lab/moto_server.py? restart the lab)")
        return due
    _clear("report")
    _reported.update(body=states, at=now, tgs=set(body["target_groups"]))
    return due


def sync(log=labctl.log, follow=True):
    """One reconcile pass: an HAProxy container per moto ALB tagged Project=pulse.

    With follow (the default), the first call also starts a thread in this process that
    polls the ALBs' target registrations every FOLLOW_INTERVAL seconds (one DescribeTargetHealth
    per target group) and runs a pass as soon as they change, so that (de)registrations reach
    HAProxy in about a second whatever the caller's own cadence is; it also reports the target
    health HAProxy sees to moto (report) as it changes.
    """
    _proxy.announce(log, "alb: lab load balancer sync active (lab/lab_alb.py)")
    if _pass(log):
        _pass(log)  # a target passed its checks: its fail-open copy
    if follow:
        _ensure_follower(log)


def _pass(log):
    """One reconcile pass and a health report; True when a target passed its checks just now."""
    with lab_proxy.Locked(LOCK):
        started = time.time()
        albs = describe_albs(log)
        containers = alb_containers()
        ports = {}
        live, serving = set(), set()
        for alb in albs:
            live.add(alb["name"])
            if not _proxy.claim_ports(
                    log, ports, alb["name"], (alb["https_port"], alb["http_port"]),
                    lambda clash, owner: f"alb: {alb['name']}: port(s) {clash} already serve ALB {owner}: skipped "
                                         f"(tag it {HTTPS_PORT_TAG} / {HTTP_PORT_TAG} for other ports)"):
                continue
            if reconcile(alb, containers, log, started):
                serving.add(alb["name"])
        for name in set(_served) - serving:  # gone, or not served as rendered now
            _served.pop(name, None)
        for name in set(_passed) - live:
            _passed.pop(name, None)
        _proxy.remove_gone(log, containers, "alb", live, STATE_DIR)
        groups = [tg for alb in albs for tg in alb["target_groups"].items()]
        _follow["tgs"] = [arn for arn, _ in groups]
        _follow["seen"] = sorted(r for _, tg in groups for r in tg["registered"])
        return report(log)


def _ensure_follower(log):
    thread = _follow.get("thread")
    if thread is not None and thread.is_alive():
        return
    thread = threading.Thread(target=_follower, args=(log,), name="lab-alb-follower", daemon=True)
    _follow["thread"] = thread
    thread.start()


def _follower(log):
    while True:
        time.sleep(FOLLOW_INTERVAL)
        tgs = list(_follow.get("tgs") or [])
        if not tgs:
            continue
        try:
            changed = registrations(tgs) != _follow.get("seen")
        except Exception:  # a target group deleted, say: a pass sorts it out
            changed = True
        try:
            if not changed:
                with lab_proxy.Locked(LOCK):
                    changed = report(log)  # True: a target passed, its fail-open copy is due
            if changed and _pass(log):
                _pass(log)
            _clear("follow")
        except Exception as exc:  # moto restarting...: wait for the caller's next pass
            _once(log, "follow", f"alb: pass after a registration or health change failed: {exc}")
            _follow["tgs"] = []


def watch(interval=1.0, log=labctl.log):
    """Passes every interval seconds (and the follower) until SIGTERM."""
    _proxy.watch(sync, interval, log)


def main(argv=None):
    return lab_proxy.main(argv, __doc__, watch, lambda: sync(follow=False))


if __name__ == "__main__":
    sys.exit(main())
