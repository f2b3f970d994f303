#!/usr/bin/env python3
"""lab_alb: the lab's Application Load Balancer — an HAProxy container per moto ALB.

moto keeps an ALB as metadata only. This module gives every ALB tagged ``Project=pulse`` a
real proxy: HAProxy (Debian package, image ``pulse-lab/alb:<hash of lab/alb>``) in a lab
container on the ALB's subnets' Docker networks, at a fixed high address of each subnet, with

- the HTTPS listener on ``127.0.0.1:8443`` (container :443), certificate ``.lab/ca/server.*``
  from the lab CA (``playbooks/lab_alb.yml``), standing in for the listener's ACM certificate;
- the HTTP listener on ``127.0.0.1:8080`` (container :80), e.g. the redirect to HTTPS;
- one HAProxy server per target **registered in moto** (instance id -> private IP), health
  checked like the target group (path, matcher; lab timing: every 1 s, fall 2, rise 2);
- a graceful reload when the registrations change: a deregistered target gets no new
  requests, its in-flight requests complete (old workers drain, bounded by the target group's
  deregistration delay).

``sync(log)`` is one reconcile pass; the instance backer (``labctl watch``) calls it every
second. Run it alone with ``python lab/lab_alb.py`` (one pass) or ``--watch`` (every second).

An ALB may carry the tags ``pulse-lab:https-port`` / ``pulse-lab:http-port`` to be published on
other loopback ports (tests do, so they never fight over 8443 with the lab's own ALB).
"""

import argparse
import fcntl
import hashlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import labctl  # noqa: E402  (lab/ is on the path when labctl itself imports this module)
from botocore.exceptions import ClientError  # noqa: E402

ALB_IMAGE_DIR = Path(__file__).resolve().parent / "alb"
ALB_IMAGE_REPO = "pulse-lab/alb"
CA_DIR = labctl.LAB_DIR / "ca"
STATE_DIR = labctl.LAB_DIR / "alb"
LABEL_ALB = f"{labctl.LABEL}.alb"
LABEL_SPEC = f"{labctl.LABEL}.alb.spec"
CONTAINER_PREFIX = "pulse-lab-alb-"
PROJECT = "pulse"
HTTPS_PORT = 8443
HTTP_PORT = 8080
HTTPS_PORT_TAG = "pulse-lab:https-port"
HTTP_PORT_TAG = "pulse-lab:http-port"
# Where the ALB sits in each subnet: this many addresses below the broadcast address (.250 in
# a /24). moto hands instance addresses out from .4 upward, so they never meet.
ADDRESS_FROM_TOP = 5
# Health checks in the lab: fast, so that tests see them act within seconds. The target
# group's path, port, protocol and matcher are honoured; its timing is not.
HEALTH = {"inter": "1s", "fall": 2, "rise": 2, "timeout": "1s"}
DEFAULT_DEREGISTRATION_DELAY = 300
DEFAULT_IDLE_TIMEOUT = 60
# .lab/alb/<alb name>/ on the host is CONTAINER_DIR in the container.
CONTAINER_DIR = "/etc/haproxy/lab"
CONFIG_NAME = "haproxy.cfg"
BUNDLE_NAME = "server.pem"
MASTER_SOCKET = "master.sock"  # master CLI (-S in lab/alb/Dockerfile): reload, show proc
ADMIN_SOCKET = "admin.sock"  # the workers' stats socket: show servers state
SERVER_STATE = "server-state"
RELOAD_TIMEOUT = 10
BUILD_RETRY_SECONDS = 60
# How often the follower thread looks for (de)registrations between passes.
FOLLOW_INTERVAL = 0.5

# What has been said already, so that a pass every second logs a condition once.
_said = {}
_build = {"proc": None, "tag": None, "failed_at": 0.0}
_clients = {}
_rejected = {}
_announced = []
_follow = {"thread": None, "tgs": [], "seen": None}


def _once(log, key, msg):
    if _said.get(key) != msg:
        _said[key] = msg
        log(msg)


def _clear(key):
    _said.pop(key, None)


# --------------------------------------------------------------------------- moto


def client(service):
    if service not in _clients:
        import boto3

        _clients[service] = boto3.client(
            service, region_name=labctl.REGION, endpoint_url=labctl.moto_url(),
            aws_access_key_id="lab-not-a-secret", aws_secret_access_key="lab-not-a-secret",
        )
    return _clients[service]


def _tags(arns):
    out = {}
    for start in range(0, len(arns), 20):
        chunk = arns[start:start + 20]
        for desc in client("elbv2").describe_tags(ResourceArns=chunk)["TagDescriptions"]:
            out[desc["ResourceArn"]] = {t["Key"]: t["Value"] for t in desc.get("Tags", [])}
    return out


def _attributes(items):
    return {a["Key"]: a["Value"] for a in items}


def _int(value, default):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


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
        target = desc["Target"]
        registered.append(_registration(tg_arn, desc))
        port = target.get("Port") or tg["Port"]
        if tg.get("TargetType", "instance") == "ip":
            addr = target["Id"]
        else:
            addr = instance_ips.get(target["Id"])  # None: stopped or gone, the ALB skips it too
        if addr:
            servers.append({"name": f"{target['Id']}:{port}", "addr": addr, "port": port})
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
        },
        "deregistration_delay": _int(attrs.get("deregistration_delay.timeout_seconds"),
                                     DEFAULT_DEREGISTRATION_DELAY),
        "algorithm": attrs.get("load_balancing.algorithm.type", "round_robin"),
        "servers": servers,
        "registered": registered,
    }


def _registration(tg_arn, desc):
    return (tg_arn, desc["Target"]["Id"], desc["Target"].get("Port") or 0, desc["TargetHealth"].get("State", ""))


def registrations(tg_arns):
    """What the follower watches: every (target group, target, port, state), sorted."""
    out = []
    for arn in tg_arns:
        for desc in client("elbv2").describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]:
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
    return [
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
        # Not what the ALB does (it never retries): a request that meets a target at the
        # moment it stops goes to another one. See lab/alb/README.md.
        "    option redispatch 1",
        "    retries 3",
        "    retry-on conn-failure empty-response response-timeout",
        "    load-server-state-from-file global",
        "    timeout connect 2s",
        f"    timeout client {idle}s",
        f"    timeout server {idle}s",
        f"    timeout http-request {idle}s",
        f"    timeout http-keep-alive {idle}s",
        f"    timeout tunnel {idle}s",
        f"    timeout check {HEALTH['timeout']}",
        f"    default-server inter {HEALTH['inter']} fastinter {HEALTH['inter']} downinter {HEALTH['inter']}"
        f" fall {HEALTH['fall']} rise {HEALTH['rise']}",
    ]
    https = _listener(alb, "HTTPS")
    if https:
        lines += [
            "",
            f"frontend https-{https['port']}",
            f"    bind :443 ssl crt {CONTAINER_DIR}/{BUNDLE_NAME} alpn h2,http/1.1"
            f" ssl-min-ver {min_tls_version(https['ssl_policy'])}",
            "    http-request set-header X-Forwarded-Proto https",
            f"    http-request set-header X-Forwarded-Port {https['port']}",
            # L7 retries only where repeating is harmless; connection failures are always retried.
            "    http-request disable-l7-retry unless METH_GET || METH_HEAD || METH_OPTIONS",
        ]
        lines += ["    " + line for line in _action_lines(alb, https["action"], https=True)]
    http = _listener(alb, "HTTP")
    if http:
        lines += [
            "",
            f"frontend http-{http['port']}",
            "    bind :80",
            "    http-request set-header X-Forwarded-Proto http",
            f"    http-request set-header X-Forwarded-Port {http['port']}",
            "    http-request disable-l7-retry unless METH_GET || METH_HEAD || METH_OPTIONS",
        ]
        lines += ["    " + line for line in _action_lines(alb, http["action"], https=False)]
    for tg in groups:
        balance = "leastconn" if tg["algorithm"] == "least_outstanding_requests" else "roundrobin"
        lines += ["", f"backend {backend_name(tg)}", f"    balance {balance}"]
        lines += ["    " + line for line in _health_lines(tg)]
        # When every target is unhealthy the ALB "fails open" and uses them all: backups.
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
            lines.append(f"    server {server['name']}.failopen {server['addr']}:{server['port']}{tls} backup")
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


def image_tag():
    digest = hashlib.sha256()
    for path in sorted(ALB_IMAGE_DIR.rglob("*")):
        if path.is_file() and path.suffix != ".md":
            digest.update(path.relative_to(ALB_IMAGE_DIR).as_posix().encode())
            digest.update(path.read_bytes())
    return f"{ALB_IMAGE_REPO}:{digest.hexdigest()[:12]}"


def ensure_image(log):
    """The image's tag once it exists; while it is built (in the background) None."""
    tag = image_tag()
    if _build.get("ready") == tag:
        return tag
    proc = _build["proc"]
    if proc is not None and proc.poll() is None:
        return None
    if proc is not None:
        _build["proc"] = None
        if proc.returncode != 0:
            _build["failed_at"] = time.time()
            log(f"alb: building {_build['tag']} failed: see {STATE_DIR / 'build.log'}")
        else:
            log(f"alb: image {_build['tag']} built")
            prune_images(_build["tag"])
    if labctl.image_exists(tag):
        _clear("image")
        _build["ready"] = tag
        return tag
    if not labctl.image_exists(labctl.IMAGE_LATEST):
        _once(log, "image", f"alb: base image {labctl.IMAGE_LATEST} missing: run `labctl up`")
        return None
    if time.time() - _build["failed_at"] < BUILD_RETRY_SECONDS:
        return None
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    log(f"alb: building {tag} from {labctl.IMAGE_LATEST} (HAProxy from Debian packages)")
    with open(STATE_DIR / "build.log", "w") as out:
        _build["proc"] = subprocess.Popen(
            ["docker", "build", "-q", "--build-arg", f"BASE={labctl.IMAGE_LATEST}",
             "--label", f"{labctl.LABEL}.image=1", "-t", tag, str(ALB_IMAGE_DIR)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=dict(os.environ, DOCKER_BUILDKIT="0"),
        )
    _build["tag"] = tag
    return None


def prune_images(keep):
    """Older pulse-lab/alb images (a container still using one keeps it: rmi fails)."""
    proc = labctl.docker("images", ALB_IMAGE_REPO, "--format", "{{.Repository}}:{{.Tag}}", check=False)
    for tag in proc.stdout.split():
        if tag != keep:
            labctl.docker("rmi", tag, check=False)


# --------------------------------------------------------------------------- containers


def container_name(alb_name):
    return f"{CONTAINER_PREFIX}{alb_name}"


def alb_address(cidr):
    net = ipaddress.ip_network(cidr)
    return str(net.broadcast_address - ADDRESS_FROM_TOP)


def alb_containers():
    proc = labctl.docker("ps", "-a", "--filter", f"label={LABEL_ALB}", "--format", "{{json .}}")
    out = {}
    for line in proc.stdout.splitlines():
        info = json.loads(line)
        labels = dict(item.split("=", 1) for item in info.get("Labels", "").split(",") if "=" in item)
        info["alb"] = labels.get(LABEL_ALB)
        info["spec"] = labels.get(LABEL_SPEC)
        out[info["Names"]] = info
    return out


def container_spec(alb, image):
    """What the container is made of; a change means a new container."""
    spec = {
        "image": image,
        "ports": [alb["https_port"], alb["http_port"]],
        "networks": [[s["id"], alb_address(s["cidr"])] for s in alb["subnets"]],
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


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
    labctl.docker(
        "create", "--name", name, "--hostname", alb["name"][:63],
        "--network", first_net, "--ip", first_ip,
        "-p", f"127.0.0.1:{alb['https_port']}:443", "-p", f"127.0.0.1:{alb['http_port']}:80",
        "--label", f"{labctl.LABEL}=1", "--label", f"{LABEL_ALB}={alb['name']}",
        "--label", f"{LABEL_SPEC}={spec}",
        "--log-opt", "max-size=10m", "--log-opt", "max-file=2",
        "-v", f"{state_dir}:{CONTAINER_DIR}",
        image,
    )
    try:
        for net, ip in rest:
            labctl.docker("network", "connect", "--ip", ip, net, name)
        labctl.docker("start", name)
    except labctl.LabError:
        labctl.docker("rm", "-f", name, check=False)
        raise
    addresses = ", ".join(ip for _, ip in networks)
    log(f"alb: {alb['name']} at {addresses}, https://127.0.0.1:{alb['https_port']} "
        f"http://127.0.0.1:{alb['http_port']}")


def remove_container(name, alb_name, log):
    labctl.docker("rm", "-f", "-v", name, check=False)
    if alb_name:
        shutil.rmtree(STATE_DIR / alb_name, ignore_errors=True)
    log(f"alb: {alb_name or name} gone: container removed")


def _write(path, text, mode=0o644):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.chmod(mode)
    tmp.replace(path)


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


def master_reloads(state_dir):
    """(reloads, failed reloads) as the master counts them (`show proc`)."""
    for line in haproxy_command(state_dir / MASTER_SOCKET, "show proc").splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[1] == "master" and fields[3] == "[failed:":
            return int(fields[2]), int(fields[4].rstrip("]"))
    raise labctl.LabError("unexpected `show proc` answer from the HAProxy master")


def servers_state(state_dir):
    """HAProxy's view of its servers: name -> (backend, operational state: 0 down, 2 up...)."""
    out = {}
    for line in haproxy_command(state_dir / ADMIN_SOCKET, "show servers state").splitlines():
        fields = line.split()
        if len(fields) > 6 and not line.startswith("#"):
            out[fields[3]] = (fields[1], int(fields[5]))
    return out


def reload(name, state_dir, config, log):
    """Graceful reload, driven from the host through the mounted sockets.

    The workers' server state (health) is saved to the server-state file that the new workers
    load, so that targets which stay keep their health across the reload; the master then
    starts new workers for new connections while the old ones finish their in-flight requests
    (draining, bounded by hard-stop-after). A configuration the master refuses is put back.
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
        _write(state_dir / SERVER_STATE, haproxy_command(state_dir / ADMIN_SOCKET, "show servers state"))
    except OSError:
        pass  # no state saved: the servers start up, as on a first start
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


def reconcile(alb, containers, log, started=None):
    name = container_name(alb["name"])
    bundle = certificate_bundle()
    if bundle is None:
        _once(log, f"cert:{alb['name']}",
              f"alb: {alb['name']}: no certificate in {CA_DIR} (server.crt, server.key) yet: "
              "skipped until `ansible-playbook playbooks/lab_alb.yml` makes it")
        return
    _clear(f"cert:{alb['name']}")
    if not alb["subnets"]:
        _once(log, f"subnets:{alb['name']}", f"alb: {alb['name']}: no subnet known to moto: skipped")
        return
    if not (_listener(alb, "HTTPS") or _listener(alb, "HTTP")):
        _once(log, f"listeners:{alb['name']}", f"alb: {alb['name']}: no listener yet: skipped")
        return
    _clear(f"listeners:{alb['name']}")
    image = ensure_image(log)
    if image is None:
        return
    state_dir = STATE_DIR / alb["name"]
    state_dir.mkdir(parents=True, exist_ok=True)
    state_dir.chmod(0o700)
    bundle_digest = hashlib.sha256(bundle.encode()).hexdigest()[:16]
    config = render_config(alb, bundle_digest)
    spec = container_spec(alb, image)
    current = containers.get(name)
    if current is not None and current["spec"] != spec:
        labctl.docker("rm", "-f", "-v", name, check=False)
        log(f"alb: {alb['name']}: image, ports or subnets changed: container replaced")
        current = None
    if current is None:
        _write(state_dir / BUNDLE_NAME, bundle, 0o600)
        _write(state_dir / CONFIG_NAME, config)
        try:
            create_container(alb, image, spec, state_dir, log)
        except labctl.LabError as exc:
            _once(log, f"create:{alb['name']}", f"alb: {alb['name']}: cannot start: {exc}")
            return
        _clear(f"create:{alb['name']}")
        return
    if current["State"] != "running":
        proc = labctl.docker("start", name, check=False)
        if proc.returncode != 0:
            _once(log, f"start:{alb['name']}", f"alb: {alb['name']}: cannot start: {proc.stderr.strip()}")
            return
        _clear(f"start:{alb['name']}")
        log(f"alb: {alb['name']}: container started again")
    bundle_path, config_path = state_dir / BUNDLE_NAME, state_dir / CONFIG_NAME
    if not bundle_path.exists() or bundle_path.read_text() != bundle:
        _write(bundle_path, bundle, 0o600)
    if config_path.exists() and config_path.read_text() == config:
        return
    if reload(name, state_dir, config, log):
        servers = sum(len(tg["servers"]) for tg in alb["target_groups"].values())
        took = f" ({time.time() - started:.2f}s after the pass began)" if started else ""
        log(f"alb: {alb['name']}: reloaded with {servers} registered target(s){took}")


def sync(log=labctl.log, follow=True):
    """One reconcile pass: an HAProxy container per moto ALB tagged Project=pulse.

    With follow (the default), the first call also starts a thread in this process that
    polls the ALBs' target registrations every FOLLOW_INTERVAL seconds (one DescribeTargetHealth
    per target group) and runs a pass as soon as they change, so that (de)registrations reach
    HAProxy in about a second whatever the caller's own cadence is.
    """
    if not _announced:
        _announced.append(True)
        log("alb: lab load balancer sync active (lab/lab_alb.py)")
    _pass(log)
    if follow:
        _ensure_follower(log)


def _pass(log):
    labctl.LAB_DIR.mkdir(parents=True, exist_ok=True)
    with open(labctl.LAB_DIR / "alb.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        started = time.time()
        albs = describe_albs(log)
        containers = alb_containers()
        ports = {}
        live = set()
        for alb in albs:
            live.add(alb["name"])
            clash = [p for p in (alb["https_port"], alb["http_port"]) if p in ports]
            if clash:
                _once(log, f"ports:{alb['name']}",
                      f"alb: {alb['name']}: port(s) {clash} already serve ALB {ports[clash[0]]}: skipped "
                      f"(tag it {HTTPS_PORT_TAG} / {HTTP_PORT_TAG} for other ports)")
                continue
            _clear(f"ports:{alb['name']}")
            ports.update({alb["https_port"]: alb["name"], alb["http_port"]: alb["name"]})
            reconcile(alb, containers, log, started)
        for name, info in containers.items():
            if info["alb"] not in live:
                remove_container(name, info["alb"], log)
        known = live | {info["alb"] for info in containers.values()}
        for path in STATE_DIR.iterdir() if STATE_DIR.exists() else []:
            if path.is_dir() and path.name not in known:  # left by `labctl down` or a moto restart
                shutil.rmtree(path, ignore_errors=True)
        groups = [tg for alb in albs for tg in alb["target_groups"].items()]
        _follow["tgs"] = [arn for arn, _ in groups]
        _follow["seen"] = sorted(r for _, tg in groups for r in tg["registered"])


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
        if not changed:
            continue
        try:
            _pass(log)
            _clear("follow")
        except Exception as exc:  # moto restarting...: wait for the caller's next pass
            _once(log, "follow", f"alb: pass after a registration change failed: {exc}")
            _follow["tgs"] = []


def watch(interval=1.0, log=labctl.log):
    """Passes every interval seconds (and the follower) until SIGTERM."""
    running = {"on": True}
    signal.signal(signal.SIGTERM, lambda *_: running.update(on=False))
    signal.signal(signal.SIGINT, lambda *_: running.update(on=False))
    while running["on"]:
        try:
            sync(log)
        except Exception as exc:  # keep going, like the backer
            _once(log, "sync", f"alb: sync failed: {exc}")
        else:
            _clear("sync")
        time.sleep(interval)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--watch", action="store_true", help="sync every second until SIGTERM")
    args = parser.parse_args(argv)
    if args.watch:
        watch()
        return 0
    try:
        sync(follow=False)
    except labctl.LabError as exc:
        print(f"[lab] ERROR: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
