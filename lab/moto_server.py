"""The lab's embedded AWS: one moto backend served on several addresses.

moto's own ``moto_server`` binds one address. The lab needs the same state on the
loopback address (for the playbooks on the controller) and on the lab services
gateway (for code running inside the lab instances), and nowhere else. Both listeners
here share one WSGI application, so they share one in-memory AWS.

It also makes target health real for the target groups that the lab load balancer
(lab/lab_alb.py) serves: see LabTargetHealth; and gives CloudFront what the app hosting and the
lab CDN need (origin access control ids kept, response headers policies): see LabCloudFront.

Usage: python lab/moto_server.py --port 5000 --bind 127.0.0.1 --bind 198.18.0.1
"""

import argparse
import json
import signal
import sys
import threading
import time

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server


def treat_lab_endpoint_as_tls():
    """The lab's moto endpoint stands for AWS's HTTPS endpoint.

    moto evaluates bucket policies but ignores their conditions, so the usual "deny when
    aws:SecureTransport is false" statement would deny every request. In the lab such a
    statement is stored (and asserted by the tests) but never applies: every lab request is
    taken as arriving over TLS.
    """
    from moto.iam import access_control

    original = access_control.IAMPolicyStatement.is_action_permitted

    def is_action_permitted(self, action, resource="*", principal=None, incoming_condition_values=None):
        condition = self._statement.get("Condition") or {}
        secure = (condition.get("Bool") or {}).get("aws:SecureTransport")
        if str(secure).lower() == "false":
            return access_control.PermissionResult.NEUTRAL
        return original(self, action, resource, principal, incoming_condition_values)

    access_control.IAMPolicyStatement.is_action_permitted = is_action_permitted


def volumes_without_snapshot_say_so():
    """DescribeVolumes answers SnapshotId "" for a volume made from no snapshot, as EC2 does.

    moto leaves the member out, and amazon.aws.ec2_vol_info (playbooks/report.yml) fails with
    KeyError 'snapshot_id' on such a volume.
    """
    from moto.ec2.models import elastic_block_store

    original = elastic_block_store.Volume.__init__

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if self.snapshot_id is None:
            self.snapshot_id = ""

    elastic_block_store.Volume.__init__ = __init__


# The official images the playbooks look up (roles/aws_compute/vars/main.yml, _aws_compute_ami_catalog)
# that moto does not ship, by their owner's account id and with a name of the official pattern
# (moto ships Amazon Linux 2023 images itself). Every lab instance container runs the lab's base
# image whatever the AMI.
OFFICIAL_IMAGES = [
    {"ami_id": "ami-0de12a2b3c4d5e6f7", "owner_id": "136693071363", "name": "debian-12-amd64-20250101-0000",
     "description": "Debian 12 (20250101-0000) - the lab's stand-in"},
]


def official_images():
    """DescribeImages lists a Debian 12 image owned by Debian's account, so that the AMI lookup is
    the one run against AWS (owners and name patterns)."""
    from moto.ec2.models import amis

    known = {a["ami_id"] for a in amis.AMIS}
    for image in OFFICIAL_IMAGES:
        if image["ami_id"] not in known:
            amis.AMIS.append({
                "state": "available", "public": True, "root_device_type": "ebs", "root_device_name": "/dev/xvda",
                "image_type": "machine", "architecture": "x86_64", "virtualization_type": "hvm", "hypervisor": "xen",
                "sriov": "simple", "creation_date": "2025-01-01T00:00:00.000Z",
                "image_location": f"{image['owner_id']}/{image['name']}", **image})


# What AWS lists for a new application load balancer and moto leaves out:
# amazon.aws.elb_application_lb compares them and fails with a KeyError when one is missing.
ALB_DEFAULT_ATTRIBUTES = {
    "access_logs.s3.enabled": "false",
    "idle_timeout.timeout_seconds": "60",
    "routing.http2.enabled": "true",
    "routing.http.desync_mitigation_mode": "defensive",
    "routing.http.drop_invalid_header_fields.enabled": "false",
    "routing.http.preserve_host_header.enabled": "false",
    "routing.http.x_amzn_tls_version_and_cipher_suite.enabled": "false",
    "routing.http.xff_client_port.enabled": "false",
    "routing.http.xff_header_processing.mode": "append",
    "waf.fail_open.enabled": "false",
}


def load_balancers_have_aws_default_attributes():
    """A new application load balancer has every attribute AWS documents, at its default."""
    from moto.elbv2 import models

    original = models.FakeLoadBalancer.__init__

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if self.type == "application":
            for key, value in ALB_DEFAULT_ATTRIBUTES.items():
                self.attrs.setdefault(key, value)

    models.FakeLoadBalancer.__init__ = __init__


def record_sets_can_be_created_again():
    """CREATE of a record set that does not exist succeeds, as in Route53.

    moto refuses a CREATE equal to one in the zone's journal (a record created, then deleted)
    when ANY record set sorts at or after its name ("... but it already exists"); then
    amazon.aws.route53 answers ok without creating it (the API's alias records when
    pulse_ingress goes back to alb). Here a CREATE is applied as an UPSERT, which is the same for a
    record set that does not exist; a CREATE of one that exists is refused, as Route53 does.
    """
    from moto.route53 import models

    assert models.ResourceRecordAlreadyExists
    original = models.Route53Backend.change_resource_record_sets

    def change_resource_record_sets(self, zoneid, change_list):
        zone = self.get_hosted_zone(zoneid)
        for change in change_list:
            wanted = change["ResourceRecordSet"]
            name = wanted["Name"].rstrip(".").lower()
            exists = any(r.name.rstrip(".").lower() == name and r.type == wanted["Type"]
                         and r.set_identifier == wanted.get("SetIdentifier") for r in zone.rrsets)
            if change["Action"] == "CREATE" and exists:
                raise models.ResourceRecordAlreadyExists(name=name + ".", _type=wanted["Type"])
            if change["Action"] == "CREATE":
                change["Action"] = "UPSERT"
        return original(self, zoneid, change_list)

    models.Route53Backend.change_resource_record_sets = change_resource_record_sets


def subnets_of_two_vpcs_never_overlap():
    """CreateSubnet refuses a range that overlaps a subnet of another VPC (InvalidSubnet.Conflict).

    AWS allows it; the lab cannot: each subnet is a Docker network (lab/labctl.py), and Docker
    refuses overlapping networks, so the new subnet's instances would get no container (and the
    instance backer would stall for everyone). The refusal says so and what to change.
    """
    import ipaddress

    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.models import subnets

    original = subnets.SubnetBackend.create_subnet

    class LabSubnetConflict(EC2ClientError):
        def __init__(self, message):
            super().__init__("InvalidSubnet.Conflict", message)

    def create_subnet(self, vpc_id, cidr_block, *args, **kwargs):
        if cidr_block:
            wanted = ipaddress.IPv4Network(str(cidr_block), strict=False)
            for subnet in self.describe_subnets():
                if subnet.vpc_id != vpc_id and subnet.cidr.overlaps(wanted):
                    raise LabSubnetConflict(
                        f"Lab: the CIDR '{cidr_block}' overlaps {subnet.id} {subnet.cidr} of {subnet.vpc_id}. The lab "
                        "backs each subnet by a Docker network and Docker refuses overlapping ranges. Remove that "
                        "VPC (it is not this stack's) or choose other pulse_vpc_cidr / pulse_public_subnet_cidrs / "
                        "pulse_private_subnet_cidrs.")
        return original(self, vpc_id, cidr_block, *args, **kwargs)

    subnets.SubnetBackend.create_subnet = create_subnet


def instances_appear_whole():
    """DescribeInstances never shows an instance that RunInstances is still building.

    moto registers a new reservation before it adds the instances' block devices. The backer
    (lab/labctl.py) polls DescribeInstances from another thread of this server; caught in that
    window, it backed an instance with a container that had no data volume (seen once in CI:
    ``/dev/nvme1n1`` missing). EC2 answers a run's instances whole, so one lock here makes
    RunInstances and every instance lookup atomic to each other.
    """
    from moto.ec2.models import instances

    lock = threading.RLock()

    def locked(original):
        def method(self, *args, **kwargs):
            with lock:
                return original(self, *args, **kwargs)

        method.__name__ = original.__name__
        method.__doc__ = original.__doc__
        return method

    for name in ("run_instances", "describe_instances", "get_reservations_by_instance_ids",
                 "all_instances", "all_reservations"):
        setattr(instances.InstanceBackend, name, locked(getattr(instances.InstanceBackend, name)))


class LabTargetHealth:
    """Target health as the lab load balancer sees it, instead of moto's "healthy at once".

    moto reports every registered target ``healthy`` and a deregistered one ``unused`` at once.
    For a target group that the lab load balancer *claims* (it serves it: lab/lab_alb.py posts
    its health-check results to ``POST /lab-api/elbv2/target-health`` about every second),
    DescribeTargetHealth answers as the ALB does instead:

    - a registered target is ``initial`` (``Elb.RegistrationInProgress``) until the lab
      balancer posts a state for that registration: ``initial`` while its health checks have
      not passed HealthyThresholdCount times yet, then ``healthy`` or ``unhealthy``;
    - a deregistered (or terminated) target is ``draining`` (``Target.DeregistrationInProgress``)
      for the target group's ``deregistration_delay.timeout_seconds`` from the moment of the
      call, listed with the registered ones, then ``unused`` (``Target.NotRegistered``) — and
      never before the lab balancer has said it serves a configuration made after the call
      (a post with ``as_of`` later than the call), i.e. no HAProxy worker takes new requests
      for the target any more. The ALB's data plane also stops routing to a deregistered
      target a moment after the call; the lab's takes a reload, which on a loaded machine can
      take longer than a short delay, and a node restarted at "unused" while HAProxy still
      routes to it costs a request. A drain that had to wait for that is logged;
    - a stopped instance stays moto's ``unused`` (``Target.InvalidState``).

    A post says for which registrations it holds (``as_of``: when the lab balancer read the
    registrations its HAProxy configuration was made from): a target registered after that gets
    ``initial``, never the state of its previous registration. A claim lapses ``ttl`` seconds
    after the last post: with no lab balancer running (backer stopped) moto's own behaviour
    comes back. Target groups never claimed keep moto's behaviour throughout.

    Body of the post (states as DescribeTargetHealth spells them)::

        {"ttl": 15, "target_groups": {"<target group arn>": {"as_of": <unix time>,
            "targets": {"<target id>": {"State": "healthy"},
                        "<target id>": {"State": "unhealthy", "Reason": "Target.Timeout",
                                        "Description": "Request timed out"}}}}}

    ``GET /lab-api/elbv2/target-health`` shows what is held (for people and tests).
    """

    PATH = "/lab-api/elbv2/target-health"
    DEFAULT_TTL = 15.0
    STATES = {"initial", "healthy", "unhealthy", "unused", "draining", "unavailable"}

    def __init__(self, clock=time.time):
        self.clock = clock
        self.lock = threading.Lock()
        self.claims = {}  # tg arn -> claim lapses at
        self.posted = {}  # tg arn -> {"as_of": t, "targets": {id: {"State":...}}}
        self.registered_at = {}  # (tg arn, target id) -> when registered (this moto process)
        self.draining = {}  # (tg arn, target id) -> {"port": p, "since": call, "until": call + delay}
        self.log = lambda msg: print(f"[moto-lab] {msg}", flush=True)

    # ----------------------------------------------------------------- state

    def claimed(self, arn, now=None):
        return self.claims.get(arn, 0) > (self.clock() if now is None else now)

    def post(self, body):
        now = self.clock()
        ttl = float(body.get("ttl", self.DEFAULT_TTL))
        groups = body.get("target_groups") or {}
        with self.lock:
            for arn, group in groups.items():
                targets = {}
                for target_id, health in (group.get("targets") or {}).items():
                    state = health.get("State")
                    if state not in self.STATES:
                        raise ValueError(f"unknown target state {state!r} for {target_id}")
                    targets[str(target_id)] = {k: health[k] for k in ("State", "Reason", "Description")
                                               if health.get(k)}
                self.claims[arn] = now + ttl
                self.posted[arn] = {"as_of": float(group.get("as_of", now)), "targets": targets}
            for arn in body.get("release") or []:
                self.claims.pop(arn, None)
                self.posted.pop(arn, None)
        return {"claimed": sorted(groups)}

    def show(self):
        now = self.clock()
        with self.lock:
            return {
                "now": now,
                "claims": {arn: round(until - now, 3) for arn, until in self.claims.items() if until > now},
                "posted": self.posted,
                "draining": {f"{arn} {tid}": {"port": d["port"], "left": round(d["until"] - now, 3),
                                              "balancer_reloaded": self._reloaded_since(arn, d["since"])}
                             for (arn, tid), d in self.draining.items()},
            }

    def on_register(self, arn, target_ids):
        now = self.clock()
        with self.lock:
            for tid in target_ids:
                self.registered_at[(arn, tid)] = now
                self.draining.pop((arn, tid), None)

    def on_deregister(self, target_group, targets):
        """targets: the registrations (moto's {"Id", "Port"}) that just left the group."""
        arn = target_group.arn
        now = self.clock()
        if not self.claimed(arn, now):
            return
        try:
            delay = float(target_group.attributes.get("deregistration_delay.timeout_seconds", 300))
        except (TypeError, ValueError):
            delay = 300.0
        with self.lock:
            for target in targets:
                self.draining[(arn, target["Id"])] = {"port": target.get("Port"), "since": now,
                                                      "until": now + delay}
                self.registered_at.pop((arn, target["Id"]), None)

    def _reloaded_since(self, arn, since):
        """The lab balancer's last post for this group is about a configuration read after
        `since` (the deregistration call)."""
        return (self.posted.get(arn) or {}).get("as_of", 0.0) >= since

    def _end_drains(self, now):
        for (arn, tid), d in list(self.draining.items()):
            if d["until"] > now:
                continue
            if not self._reloaded_since(arn, d["since"]):
                d["late"] = True  # the delay is over, the balancer has not reloaded without it yet
                continue
            del self.draining[(arn, tid)]
            if d.get("late"):
                self.log(f"{tid} in {arn.rsplit('/', 2)[-2]}: draining ended {now - d['until']:.1f}s after "
                         f"its deregistration delay, when the lab balancer had reloaded without it "
                         f"({now - d['since']:.1f}s after the call)")

    # ----------------------------------------------------------------- answers

    def describe(self, backend, target_group, targets, original):
        from moto.elbv2.models import FakeHealthStatus

        arn = target_group.arn
        now = self.clock()
        if not self.claimed(arn, now):
            return original(backend, arn, targets)
        with self.lock:
            self._end_drains(now)
            if not targets:
                targets = list(target_group.targets.values()) + [
                    {"Id": tid, "Port": d["port"]} for (tg, tid), d in self.draining.items()
                    if tg == arn and tid not in target_group.targets]
            posted = self.posted.get(arn) or {"as_of": 0.0, "targets": {}}
            out = []
            for target in targets:
                tid = target["Id"]
                port = target.get("Port") or target_group.port
                registered = target_group.targets.get(tid)
                if registered is not None:
                    mine = target_group.health_for(target, backend.ec2_backend)
                    if mine.status == "unused":  # a stopped instance: moto's answer is the ALB's
                        out.append(mine)
                        continue
                    health = posted["targets"].get(tid)
                    if health is None or self.registered_at.get((arn, tid), 0.0) > posted["as_of"]:
                        health = {"State": "initial", "Reason": "Elb.RegistrationInProgress",
                                  "Description": "Target registration is in progress"}
                    out.append(FakeHealthStatus(tid, registered["Port"], target_group.health_check_port,
                                                health["State"], health.get("Reason"),
                                                health.get("Description")))
                elif (arn, tid) in self.draining:
                    out.append(FakeHealthStatus(tid, self.draining[(arn, tid)]["port"] or port,
                                                target_group.health_check_port, "draining",
                                                "Target.DeregistrationInProgress",
                                                "Target deregistration is in progress"))
                elif tid in target_group.terminated_targets:  # moto would say draining forever
                    out.append(FakeHealthStatus(tid, port, target_group.health_check_port, "unused",
                                                "Target.NotRegistered",
                                                "Target is not registered to the target group"))
                else:
                    out.append(target_group.health_for(target, backend.ec2_backend))
            return out

    # ----------------------------------------------------------------- wiring

    def install(self):
        """Patch moto's elbv2 backend (this process only)."""
        from moto.elbv2 import models

        lab = self
        backend_cls, tg_cls = models.ELBv2Backend, models.FakeTargetGroup
        original_describe = backend_cls.describe_target_health
        original_register = backend_cls.register_targets
        original_deregister = backend_cls.deregister_targets
        original_terminated = tg_cls.deregister_terminated_instances

        def describe_target_health(self, target_group_arn, targets):
            target_group = self.target_groups.get(target_group_arn)
            if target_group is None:
                return original_describe(self, target_group_arn, targets)
            return lab.describe(self, target_group, targets, original_describe)

        def register_targets(self, target_group_arn, instances):
            original_register(self, target_group_arn, instances)
            lab.on_register(target_group_arn, [t["Id"] for t in instances])

        def deregister_targets(self, target_group_arn, instances):
            target_group = self.target_groups.get(target_group_arn)
            before = dict(target_group.targets) if target_group is not None else {}
            original_deregister(self, target_group_arn, instances)
            lab.on_deregister(target_group, [before[t["Id"]] for t in instances if t["Id"] in before])

        def deregister_terminated_instances(self, instance_ids):
            leaving = [t for tid, t in self.targets.items() if tid in instance_ids]
            original_terminated(self, instance_ids)
            lab.on_deregister(self, leaving)

        backend_cls.describe_target_health = describe_target_health
        backend_cls.register_targets = register_targets
        backend_cls.deregister_targets = deregister_targets
        tg_cls.deregister_terminated_instances = deregister_terminated_instances
        return self

    def wsgi(self, app):
        """app with the lab-only endpoint in front of it."""
        lab = self

        def application(environ, start_response):
            if environ.get("PATH_INFO") != lab.PATH:
                return app(environ, start_response)
            method = environ.get("REQUEST_METHOD")
            try:
                if method == "POST":
                    length = int(environ.get("CONTENT_LENGTH") or 0)
                    answer, status = lab.post(json.loads(environ["wsgi.input"].read(length) or b"{}")), "200 OK"
                elif method == "GET":
                    answer, status = lab.show(), "200 OK"
                else:
                    answer, status = {"error": "GET or POST"}, "405 Method Not Allowed"
            except (ValueError, TypeError, AttributeError) as exc:
                answer, status = {"error": str(exc)}, "400 Bad Request"
            body = json.dumps(answer, sort_keys=True).encode()
            start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]

        return application


# --------------------------------------------------------------------------- instance metadata


class LabInstanceMetadata:
    """The instance metadata service (IMDSv2) of the lab's instances, from moto's state.

    lab/labctl.py sends the lab containers' requests for 169.254.169.254:80 here (an iptables
    DNAT to the services address): the source address is the instance's private address, by
    which the instance is found. As on EC2:

    - ``PUT /latest/api/token`` first (IMDSv2: a GET without a valid token is refused, 401);
    - ``meta-data/instance-id``, ``placement/availability-zone``, ``placement/region``,
      ``local-ipv4``, ``dynamic/instance-identity/document``;
    - ``meta-data/iam/security-credentials/`` names the role of the instance's profile and
      ``.../<role>`` gives temporary credentials for it (the lab's dummy keys: moto does not
      check them), so boto3 on a node takes the instance role's path, as in AWS. An instance
      without a profile gets none (404), as on EC2.

    A request from an address that is no instance gets 404 for everything.
    """

    HOST = "169.254.169.254"
    ACCESS_KEY = "lab-not-a-secret"

    def __init__(self, account_id=None):
        from moto.core import DEFAULT_ACCOUNT_ID

        self.account_id = account_id or DEFAULT_ACCOUNT_ID
        self.tokens = {}

    def instance(self, address):
        from moto.ec2.models import ec2_backends

        for backend in list(ec2_backends[self.account_id].values()):
            for instance in backend.all_instances():
                if instance.private_ip == address and instance.state in ("pending", "running"):
                    return backend, instance
        return None, None

    @staticmethod
    def role(backend, instance):
        association = backend.iam_instance_profile_associations.get(instance.id)
        roles = association.iam_instance_profile.roles if association is not None else []
        return roles[0].name if roles else None

    def answer(self, method, path, address, token, now=None):
        """(status, content type, body) for one request."""
        import secrets

        now = time.time() if now is None else now
        if method == "PUT" and path == "/latest/api/token":
            value = secrets.token_urlsafe(24)
            self.tokens = {t: exp for t, exp in self.tokens.items() if exp > now}
            self.tokens[value] = now + 21600
            return 200, "text/plain", value
        if method != "GET":
            return 405, "text/plain", "method not allowed"
        if self.tokens.get(token, 0) <= now:
            return 401, "text/plain", "unauthorized: PUT /latest/api/token first (IMDSv2)"
        backend, instance = self.instance(address)
        if instance is None:
            return 404, "text/plain", "not found"
        zone = instance.placement.zone
        region = backend.region_name
        document = {"accountId": self.account_id, "instanceId": instance.id, "region": region,
                    "availabilityZone": zone, "privateIp": instance.private_ip, "imageId": instance.image_id,
                    "instanceType": instance.instance_type, "architecture": "x86_64"}
        meta = {"instance-id": instance.id, "placement/availability-zone": zone, "placement/region": region,
                "local-ipv4": instance.private_ip, "ami-id": instance.image_id, "instance-type": instance.instance_type}
        role = self.role(backend, instance)
        if path == "/latest/dynamic/instance-identity/document":
            return 200, "application/json", json.dumps(document)
        if path.startswith("/latest/meta-data/iam/security-credentials"):
            wanted = path[len("/latest/meta-data/iam/security-credentials"):].strip("/")
            if role is None or wanted not in ("", role):
                return 404, "text/plain", "not found"
            if wanted == "":
                return 200, "text/plain", role
            expiration = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 6 * 3600))
            return 200, "application/json", json.dumps({
                "Code": "Success", "Type": "AWS-HMAC", "LastUpdated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
                "AccessKeyId": self.ACCESS_KEY, "SecretAccessKey": self.ACCESS_KEY, "Token": f"lab-token-{instance.id}",
                "Expiration": expiration})
        key = path[len("/latest/meta-data/"):] if path.startswith("/latest/meta-data/") else None
        if key in meta:
            return 200, "text/plain", meta[key]
        return 404, "text/plain", "not found"

    def wsgi(self, app):
        """app, with the requests addressed to the metadata service answered here."""
        lab = self

        def application(environ, start_response):
            if environ.get("HTTP_HOST", "").split(":")[0] != lab.HOST:
                return app(environ, start_response)
            status, kind, body = lab.answer(environ.get("REQUEST_METHOD"), environ.get("PATH_INFO", ""),
                                            environ.get("REMOTE_ADDR"), environ.get("HTTP_X_AWS_EC2_METADATA_TOKEN"))
            data = body.encode()
            reason = {200: "OK", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed"}[status]
            start_response(f"{status} {reason}", [("Content-Type", kind), ("Content-Length", str(len(data)))])
            return [data]

        return application


# --------------------------------------------------------------------------- CloudFront (app hosting)


class LabCloudFront:
    """CloudFront as the app hosting (roles/app_hosting) and the lab CDN (lab/lab_cdn.py) need it,
    where moto 5.2 falls short. Patched in this process only; see lab/cdn/README.md.

    - **Origins keep ``OriginAccessControlId`` and ``S3OriginConfig``**: moto drops both when it
      stores a distribution, so community.aws.cloudfront_distribution (which compares what it
      sends with what it reads back) saw a difference and updated the distribution at every run.
    - **Cache behaviors** as CloudFront answers them: with a cache policy no legacy cache settings
      (``ForwardedValues``, ``Min/Default/MaxTTL``), no empty ``RealtimeLogConfigArn``, and
      ``TrustedSigners`` / ``TrustedKeyGroups`` without an empty ``Items`` (moto returns all of
      them: another difference community.aws.cloudfront_distribution would "fix" at every run).
    - **ViewerCertificate**: with an ACM (or IAM) certificate, ``CloudFrontDefaultCertificate`` is
      false and ``CertificateSource`` / ``Certificate`` name it, as CloudFront answers (moto says
      true and ``cloudfront``).
    - **Response headers policies** (moto answers 404): Create / Get / GetConfig / List / Update /
      Delete, kept as sent (no validation of the headers), ``ETag`` and ``LastModifiedTime`` new
      at each update, ``IfMatch`` checked on update and delete, names unique
      (``ResponseHeadersPolicyAlreadyExists``). ``List`` returns the custom policies only (no
      AWS-managed ones) whatever ``Type`` says.
    - **In use**: an origin access control or a response headers policy that a distribution still
      names cannot be deleted (``OriginAccessControlInUse`` / ``ResponseHeadersPolicyInUse``), as
      in CloudFront, so a teardown in the wrong order fails in the lab as it would in AWS.
    """

    API = "2020-05-31"

    def install(self):
        import datetime
        import uuid

        from moto.cloudfront import models, responses, urls
        from moto.cloudfront.exceptions import CloudFrontException
        from moto.core.responses import ActionResult, EmptyResult

        if getattr(models, "_lab_cloudfront", False):  # installed already (tests install it per test)
            return self
        models._lab_cloudfront = True

        class LabCloudFrontError(CloudFrontException):
            """An error CloudFront's model knows (its HTTP status comes from the model)."""

        # moto finds the service model of an error by the module its class was defined in.
        LabCloudFrontError.__module__ = CloudFrontException.__module__

        # --- origins and the viewer certificate, as sent
        original_origin = models.Origin.__init__

        def origin_init(self, origin):
            original_origin(self, origin)
            self.origin_access_control_id = origin.get("OriginAccessControlId") or ""
            if "S3OriginConfig" in origin:
                self.s3_origin_config = {
                    "OriginAccessIdentity": (origin.get("S3OriginConfig") or {}).get("OriginAccessIdentity") or ""}

        original_certificate = models.ViewerCertificate.__init__

        def certificate_init(self, config):
            original_certificate(self, config)
            if config.get("ACMCertificateArn"):
                self.cloud_front_default_certificate = False
                self.certificate_source, self.certificate = "acm", config["ACMCertificateArn"]
            elif config.get("IAMCertificateId"):
                self.cloud_front_default_certificate = False
                self.certificate_source, self.certificate = "iam", config["IAMCertificateId"]

        # --- cache behaviors answered as CloudFront does: with a cache policy there are no legacy
        # cache settings (ForwardedValues, Min/Default/MaxTTL), and empty lists have no Items.
        original_behavior = models.DefaultCacheBehaviour.__init__

        def behavior_init(self, config):
            original_behavior(self, config)
            if config.get("CachePolicyId"):
                self.forwarded_values = self.min_ttl = self.default_ttl = self.max_ttl = None
            if not self.realtime_log_config_arn:
                self.realtime_log_config_arn = None

        def without_empty_items(cls):
            original = cls.__init__

            def init(self, config):
                original(self, config)
                if not self.items:
                    self.items = None

            cls.__init__ = init

        models.Origin.__init__ = origin_init
        models.ViewerCertificate.__init__ = certificate_init
        models.DefaultCacheBehaviour.__init__ = behavior_init
        without_empty_items(models.TrustedSigners)
        without_empty_items(models.TrustedKeyGroups)

        # --- what a distribution uses
        def behaviors(dist):
            config = dist.distribution_config
            out = [config.DefaultCacheBehavior]
            cache_behaviors = config.CacheBehaviors
            items = cache_behaviors.get("Items") if isinstance(cache_behaviors, dict) else None
            return out + [b for b in items or [] if not isinstance(b, dict)]

        def users_of_oac(backend, oac_id):
            return [d.distribution_id for d in backend.distributions.values()
                    if any(getattr(o, "origin_access_control_id", "") == oac_id
                           for o in d.distribution_config.Origins["Items"])]

        def users_of_policy(backend, policy_id):
            return [d.distribution_id for d in backend.distributions.values()
                    if any(getattr(b, "response_headers_policy_id", None) == policy_id for b in behaviors(d))]

        original_delete_oac = models.CloudFrontBackend.delete_origin_access_control

        def delete_origin_access_control(self, control_id):
            users = users_of_oac(self, control_id)
            if users:
                raise LabCloudFrontError(
                    "OriginAccessControlInUse",
                    f"The origin access control is in use by distribution(s) {', '.join(users)}.")
            if control_id not in self.origin_access_controls:
                raise models.NoSuchOriginAccessControl
            return original_delete_oac(self, control_id)

        models.CloudFrontBackend.delete_origin_access_control = delete_origin_access_control

        # --- response headers policies
        def policies(backend):
            return backend.__dict__.setdefault("lab_response_headers_policies", {})

        def new_version(policy):
            policy["ETag"] = uuid.uuid4().hex[:14].upper()
            policy["LastModifiedTime"] = datetime.datetime.now(datetime.timezone.utc)

        def find(backend, policy_id):
            policy = policies(backend).get(policy_id)
            if policy is None:
                raise LabCloudFrontError("NoSuchResponseHeadersPolicy",
                                         "The response headers policy does not exist.")
            return policy

        def check_name(backend, config, policy_id=None):
            name = (config or {}).get("Name")
            if not name:
                raise LabCloudFrontError("InvalidArgument", "The response headers policy needs a Name.")
            for other_id, other in policies(backend).items():
                if other_id != policy_id and other["Config"].get("Name") == name:
                    raise LabCloudFrontError("ResponseHeadersPolicyAlreadyExists",
                                             f"A response headers policy named {name} already exists.")

        def check_if_match(policy, if_match):
            if not if_match:
                raise LabCloudFrontError("InvalidIfMatchVersion",
                                         "The If-Match version is missing or not valid for the resource.")
            if if_match != policy["ETag"]:
                raise LabCloudFrontError("PreconditionFailed",
                                         "The If-Match version does not match the resource's.")

        def shown(policy):
            return {"Id": policy["Id"], "LastModifiedTime": policy["LastModifiedTime"],
                    "ResponseHeadersPolicyConfig": policy["Config"]}

        def create_response_headers_policy(self):
            config = self._get_param("ResponseHeadersPolicyConfig", {})
            check_name(self.backend, config)
            policy = {"Id": str(uuid.uuid4()), "Config": config}
            new_version(policy)
            policies(self.backend)[policy["Id"]] = policy
            location = f"https://cloudfront.amazonaws.com/{LabCloudFront.API}/response-headers-policy/{policy['Id']}"
            return ActionResult({"ResponseHeadersPolicy": shown(policy), "ETag": policy["ETag"], "Location": location})

        def get_response_headers_policy(self):
            policy = find(self.backend, self._get_param("Id"))
            return ActionResult({"ResponseHeadersPolicy": shown(policy), "ETag": policy["ETag"]})

        def get_response_headers_policy_config(self):
            policy = find(self.backend, self._get_param("Id"))
            return ActionResult({"ResponseHeadersPolicyConfig": policy["Config"], "ETag": policy["ETag"]})

        def list_response_headers_policies(self):
            items = [{"Type": "custom", "ResponseHeadersPolicy": shown(p)} for p in policies(self.backend).values()]
            kind = self._get_param("Type")
            if kind == "managed":
                items = []
            return ActionResult({"ResponseHeadersPolicyList": {
                "MaxItems": self._get_int_param("MaxItems") or 100, "Quantity": len(items),
                "Items": items}})

        def update_response_headers_policy(self):
            policy = find(self.backend, self._get_param("Id"))
            check_if_match(policy, self._get_param("IfMatch"))
            config = self._get_param("ResponseHeadersPolicyConfig", {})
            check_name(self.backend, config, policy["Id"])
            policy["Config"] = config
            new_version(policy)
            return ActionResult({"ResponseHeadersPolicy": shown(policy), "ETag": policy["ETag"]})

        def delete_response_headers_policy(self):
            policy = find(self.backend, self._get_param("Id"))
            check_if_match(policy, self._get_param("IfMatch"))
            users = users_of_policy(self.backend, policy["Id"])
            if users:
                raise LabCloudFrontError(
                    "ResponseHeadersPolicyInUse",
                    f"The response headers policy is in use by distribution(s) {', '.join(users)}.")
            del policies(self.backend)[policy["Id"]]
            return EmptyResult()

        for handler in (create_response_headers_policy, get_response_headers_policy,
                        get_response_headers_policy_config, list_response_headers_policies,
                        update_response_headers_policy, delete_response_headers_policy):
            setattr(responses.CloudFrontResponse, handler.__name__, handler)
        base = "{0}/" + LabCloudFront.API + "/response-headers-policy"
        for path in (base + "$", base + "/(?P<policy_id>[^/]+)$", base + "/(?P<policy_id>[^/]+)/config$"):
            urls.url_paths.setdefault(path, responses.CloudFrontResponse.dispatch)
        return self


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument(
        "--bind", action="append", required=True, help="address to listen on (repeatable)"
    )
    args = parser.parse_args(argv)

    treat_lab_endpoint_as_tls()
    volumes_without_snapshot_say_so()
    instances_appear_whole()
    official_images()
    load_balancers_have_aws_default_attributes()
    record_sets_can_be_created_again()
    subnets_of_two_vpcs_never_overlap()
    LabCloudFront().install()
    app = LabTargetHealth().install().wsgi(DomainDispatcherApplication(create_backend_app))
    app = LabInstanceMetadata().wsgi(app)
    servers = [
        make_server(addr, args.port, app, threaded=True, request_handler=MotoRequestHandler)
        for addr in args.bind
    ]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    print(
        "moto listening on " + ", ".join(f"{a}:{args.port}" for a in args.bind),
        flush=True,
    )

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    for server in servers:
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
