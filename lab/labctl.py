#!/usr/bin/env python3
"""labctl: the pulse.infra lab — AWS APIs from moto, EC2 instances as systemd containers.

Commands:
  check   verify the prerequisites and say exactly what is missing
  up      build the base image if missing, start moto and the instance backer (idempotent)
  sync    back every moto EC2 instance by a container, once (the backer does this every 2 seconds)
  status  print what is running
  down    remove every lab container, network and loop device, stop moto (idempotent)

Everything the lab creates carries the Docker label ``pulse.lab``; state, pids and logs
live under ``.lab/`` in the repository (or $PULSE_LAB_DIR).
"""

import argparse
import fcntl
import hashlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LAB_DIR = Path(os.environ.get("PULSE_LAB_DIR", REPO / ".lab"))
IMAGE_DIR = REPO / "lab" / "image"

LABEL = "pulse.lab"
MOTO_PORT = int(os.environ.get("PULSE_LAB_MOTO_PORT", "5000"))
REGION = os.environ.get("PULSE_LAB_REGION", "us-east-2")
# The services network: moto answers the lab instances on its gateway address.
# 198.18.0.0/15 is reserved for benchmarking (RFC 2544), so it collides with no real network.
SERVICES_NET = "pulse-lab-services"
SERVICES_SUBNET = "198.18.0.0/24"
SERVICES_IP = "198.18.0.1"
IMDS_IP = "169.254.169.254"
ROOTFS_IMAGE = "pulse-lab/debian12-rootfs:bookworm"
IMAGE_REPO = "pulse-lab/debian12-systemd"
# Stable name of the newest base image, for molecule scenarios (.config/molecule/config.yml).
IMAGE_LATEST = f"{IMAGE_REPO}:latest"
DEBIAN_SUITE = "bookworm"
DEBOOTSTRAP_PACKAGES = (
    "systemd,systemd-sysv,python3,python3-apt,sudo,ca-certificates,iproute2,procps,"
    "e2fsprogs,util-linux,curl,git,xz-utils,gzip,tar,openssh-server"
)
IPTABLES_COMMENT = "pulse-lab"
# The lab's "GitHub": the pulse-node stand-in's release repository, served by git daemon.
GIT_PORT = 9418
GIT_BASE = LAB_DIR / "git"
RELEASE_REPO_SCRIPT = REPO / "lab" / "pulse-node" / "make-release-repo.sh"
# The lab's SSH door, as production's: the operator's key pair (its public half is imported as
# the EC2 key pair by provisioning) and the known hosts of the lab instances (first contact
# accepts a new instance's host key; a terminated instance's entry is removed with it).
SSH_DIR = LAB_DIR / "ssh"
SSH_KEY = SSH_DIR / "id_ed25519"
KNOWN_HOSTS = SSH_DIR / "known_hosts"

# The flags that let systemd run as PID 1 without --privileged (see shared/lab-notes.md).
SYSTEMD_RUN_FLAGS = [
    "--cap-add", "SYS_ADMIN",
    # An EC2 instance's root has every capability; Docker's default set lacks this one, which
    # the backup unit keeps to read the node's data dir (roles/backup_cron).
    "--cap-add", "DAC_READ_SEARCH",
    # Loop devices (major 7) may be opened once their node exists: EBS volumes attached to a
    # running instance appear as a device node made later (attach_devices), as on EC2.
    "--device-cgroup-rule", "b 7:* rmw",
    "--security-opt", "seccomp=unconfined",
    "--cgroupns=host",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs", "/run",
    "--tmpfs", "/run/lock",
    "-e", "container=docker",
]


class LabError(Exception):
    """A problem the user can fix; printed without a traceback."""


# The backer (lab/lab_watch.py) stamps its lines: .lab/backer.log is read against request times
# (lab/traffic.py Traffic.explain) and HAProxy's log.
_log_stamps = []


def stamp_log():
    """From now on, every line of log() carries its UTC time to the millisecond."""
    _log_stamps.append(True)


def log(msg):
    if _log_stamps:
        now = time.time()
        print(f"[lab {time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(now))}.{int(now % 1 * 1000):03d}Z] {msg}",
              flush=True)
    else:
        print(f"[lab] {msg}", flush=True)


def run(cmd, check=True, capture=True, input_data=None, env=None, timeout=None):
    proc = subprocess.run(
        cmd,
        check=False,
        text=True,
        input=input_data,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.PIPE if capture else None,
        env=env,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise LabError(
            f"command failed ({proc.returncode}): {' '.join(cmd)}\n{(proc.stderr or '').strip()}"
        )
    return proc


def docker(*args, check=True, **kw):
    env = dict(os.environ, DOCKER_BUILDKIT="0")
    return run(["docker", *args], check=check, env=env, **kw)


# --------------------------------------------------------------------------- prerequisites


def check_prerequisites(need_image_tools=False):
    """Return a list of problems, each with the way to fix it."""
    problems = []
    if sys.version_info < (3, 10):
        problems.append(
            f"Python 3.10+ is needed (this is {sys.version.split()[0]}): install python3 >= 3.10."
        )
    for module, pip_name in (("boto3", "boto3"), ("moto", "moto[server]"), ("werkzeug", "moto[server]")):
        try:
            __import__(module)
        except ImportError:
            problems.append(
                f"Python module '{module}' is missing: run `make venv` "
                f"(or `pip install -r requirements.txt`; it provides {pip_name})."
            )
    if shutil.which("docker") is None:
        problems.append(
            "The Docker CLI is not installed: `apt-get install docker.io` (Debian) "
            "or install Docker Engine."
        )
    else:
        try:
            proc = docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=20)
            if proc.returncode != 0 or not proc.stdout.strip():
                problems.append(
                    "The Docker engine is not answering (`docker info` failed): start it, e.g. "
                    "`systemctl start docker`, or without systemd `dockerd > /var/log/dockerd.log 2>&1 &`."
                )
        except subprocess.TimeoutExpired:
            problems.append("The Docker engine did not answer `docker info` within 20 s: restart dockerd.")
    for tool, pkg in (("losetup", "util-linux"), ("iptables", "iptables"),
                      ("ssh", "openssh-client"), ("ssh-keygen", "openssh-client")):
        if shutil.which(tool) is None:
            problems.append(f"'{tool}' is missing: `apt-get install {pkg}`.")
    if os.geteuid() != 0:
        problems.append("The lab creates loop devices and firewall rules: run it as root (or with sudo).")
    if need_image_tools and shutil.which("debootstrap") is None:
        problems.append(
            "The base image is missing and no image registry answers, so it is built from Debian "
            "packages: `apt-get install debootstrap`."
        )
    return problems


def require(need_image_tools=False):
    problems = check_prerequisites(need_image_tools)
    if problems:
        raise LabError("the lab cannot start:\n  - " + "\n  - ".join(problems))


# --------------------------------------------------------------------------- base image


def image_tag():
    digest = hashlib.sha256()
    for path in sorted(IMAGE_DIR.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(IMAGE_DIR).as_posix().encode())
            digest.update(path.read_bytes())
    return f"{IMAGE_REPO}:{digest.hexdigest()[:12]}"


def image_exists(name):
    return docker("image", "inspect", name, check=False).returncode == 0


def debian_mirror():
    """The Debian mirror this machine's apt uses."""
    for path in [Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")]:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            line = line.strip()
            if line.startswith("URIs:"):
                return line.split()[1]
            if line.startswith("deb ") and "security" not in line:
                return [p for p in line.split() if p.startswith("http")][0]
    return "http://deb.debian.org/debian"


def build_rootfs_image():
    """Debian 12 from Debian packages (debootstrap), imported as a Docker image."""
    rootfs = LAB_DIR / "rootfs"
    done = rootfs / ".pulse-lab-complete"
    if not done.exists():
        if shutil.which("debootstrap") is None:
            raise LabError("debootstrap is needed to build the base image: `apt-get install debootstrap`.")
        shutil.rmtree(rootfs, ignore_errors=True)
        mirror = debian_mirror()
        log(f"building Debian 12 rootfs with debootstrap from {mirror} (about a minute)")
        run(
            ["debootstrap", "--variant=minbase", f"--include={DEBOOTSTRAP_PACKAGES}",
             DEBIAN_SUITE, str(rootfs), mirror],
            capture=True,
        )
        done.write_text("ok\n")
    log(f"importing the rootfs as {ROOTFS_IMAGE}")
    tar = subprocess.Popen(
        ["tar", "-C", str(rootfs), "--exclude=./.pulse-lab-complete", "-c", "."],
        stdout=subprocess.PIPE,
    )
    proc = subprocess.run(
        ["docker", "import", "-c", 'CMD ["/sbin/init"]', "-", ROOTFS_IMAGE],
        stdin=tar.stdout, capture_output=True, text=True, check=False,
    )
    tar.wait()
    if proc.returncode != 0:
        raise LabError(f"docker import failed: {proc.stderr.strip()}")
    # The rootfs is only a build input; the image keeps it.
    shutil.rmtree(rootfs, ignore_errors=True)


def registry_answers():
    try:
        proc = docker("pull", "-q", "debian:bookworm", check=False, timeout=60)
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0


def ensure_image():
    tag = image_tag()
    if image_exists(tag):
        docker("tag", tag, IMAGE_LATEST)
        return tag
    if image_exists(ROOTFS_IMAGE):
        base = ROOTFS_IMAGE
    elif registry_answers():
        base = "debian:bookworm"
    else:
        log("no image registry answers: building the base image from Debian packages")
        require(need_image_tools=True)
        build_rootfs_image()
        base = ROOTFS_IMAGE
    log(f"building {tag} from {base}")
    docker("build", "-q", "--build-arg", f"BASE={base}", "--label", f"{LABEL}.image=1",
           "-t", tag, "-t", IMAGE_LATEST, str(IMAGE_DIR))
    return tag


# --------------------------------------------------------------------------- processes


def pid_alive(pidfile):
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def moto_url(host="127.0.0.1"):
    return f"http://{host}:{MOTO_PORT}"


def moto_answers(host="127.0.0.1"):
    try:
        with urllib.request.urlopen(moto_url(host) + "/moto-api/", timeout=2):
            return True
    except (urllib.error.URLError, OSError):
        return False


def start_background(name, cmd):
    pidfile = LAB_DIR / f"{name}.pid"
    if pid_alive(pidfile):
        return False
    logf = open(LAB_DIR / f"{name}.log", "ab")
    proc = subprocess.Popen(
        cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True, cwd=str(REPO),
    )
    pidfile.write_text(f"{proc.pid}\n")
    return True


def stop_background(name, timeout=10):
    pidfile = LAB_DIR / f"{name}.pid"
    pid = pid_alive(pidfile)
    if pid:
        os.kill(pid, signal.SIGTERM)
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                os.kill(pid, 0)
            except OSError:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
        log(f"stopped {name} (pid {pid})")
    pidfile.unlink(missing_ok=True)


# --------------------------------------------------------------------------- networking


def ensure_network(name, subnet, labels):
    if docker("network", "inspect", name, check=False).returncode == 0:
        return
    net = ipaddress.ip_network(subnet)
    gateway = str(next(net.hosts()))
    args = ["network", "create", "--driver", "bridge", "--subnet", subnet, "--gateway", gateway,
            "--label", f"{LABEL}=1"]
    for key, value in labels.items():
        args += ["--label", f"{LABEL}.{key}={value}"]
    docker(*args, name)
    log(f"network {name} {subnet}")


def iptables_rule(chain, rule, insert=True, table="filter"):
    spec = rule + ["-m", "comment", "--comment", IPTABLES_COMMENT]
    if run(["iptables", "-t", table, "-C", chain, *spec], check=False).returncode == 0:
        return
    run(["iptables", "-t", table, "-I" if insert else "-A", chain, *spec])


def iptables_cleanup():
    """Delete every rule this lab added (they carry the pulse-lab comment)."""
    for table, chain in (("filter", "DOCKER-USER"), ("filter", "INPUT"), ("nat", "PREROUTING")):
        proc = run(["iptables", "-t", table, "-S", chain], check=False)
        for line in (proc.stdout or "").splitlines():
            if f'--comment {IPTABLES_COMMENT}' in line or f'--comment "{IPTABLES_COMMENT}"' in line:
                args = line.split()[2:]
                args = [a.strip('"') for a in args]
                run(["iptables", "-t", table, "-D", chain, *args], check=False)


def ensure_services():
    ensure_network(SERVICES_NET, SERVICES_SUBNET, {"role": "services"})
    # moto on the services address answers lab containers only (they come in on docker bridges).
    for port in (MOTO_PORT, GIT_PORT):
        iptables_rule("INPUT", ["-p", "tcp", "-d", SERVICES_IP, "--dport", str(port),
                                "!", "-i", "br-+", "-j", "DROP"])
    # The instances' metadata service (169.254.169.254:80) is the lab's moto, which answers it
    # for the instance at the request's source address (lab/moto_server.py LabInstanceMetadata).
    iptables_rule("PREROUTING", ["-i", "br-+", "-p", "tcp", "-d", IMDS_IP, "--dport", "80",
                                 "-j", "DNAT", "--to-destination", f"{SERVICES_IP}:{MOTO_PORT}"], table="nat")


def git_answers():
    proc = run(["git", "ls-remote", f"git://127.0.0.1:{GIT_PORT}/pulse"], check=False, timeout=10)
    return proc.returncode == 0


def ensure_git_remote():
    """The stand-in's release repository (tags v1.1.0, v1.2.0, broken v1.3.0) on git://."""
    if not RELEASE_REPO_SCRIPT.exists():
        log("no stand-in release script yet: git remote not started")
        return
    GIT_BASE.mkdir(parents=True, exist_ok=True)
    run(["bash", str(RELEASE_REPO_SCRIPT), str(GIT_BASE / "pulse")])
    if git_answers():
        return
    start_background("git-daemon", [
        "git", "daemon", "--reuseaddr", "--export-all", f"--base-path={GIT_BASE}",
        f"--port={GIT_PORT}", "--listen=127.0.0.1", f"--listen={SERVICES_IP}", str(GIT_BASE),
    ])
    for _ in range(50):
        if git_answers():
            log(f"git remote git://{SERVICES_IP}/pulse (stand-in releases)")
            return
        time.sleep(0.2)
    raise LabError(f"git daemon did not start: see {LAB_DIR / 'git-daemon.log'}")


# --------------------------------------------------------------------------- instance backing


def moto_client(service, cache):
    """A boto3 client of the lab's moto for service, kept in cache (the caller's dict)."""
    if service not in cache:
        import boto3

        cache[service] = boto3.client(
            service, region_name=REGION, endpoint_url=moto_url(),
            aws_access_key_id="lab-not-a-secret", aws_secret_access_key="lab-not-a-secret",
        )
    return cache[service]


_CLIENTS = {}


def ec2_client():
    return moto_client("ec2", _CLIENTS)


def lab_containers():
    proc = docker("ps", "-a", "--filter", f"label={LABEL}.instance", "--format", "{{json .}}")
    out = {}
    for line in proc.stdout.splitlines():
        info = json.loads(line)
        out[info["Names"]] = info
    return out


def volume_file(volume_id):
    return LAB_DIR / "volumes" / f"{volume_id}.img"


def loop_for(path):
    proc = run(["losetup", "-j", str(path)], check=False)
    for line in proc.stdout.splitlines():
        return line.split(":", 1)[0]
    return None


def snapshot_file(snapshot_id):
    return LAB_DIR / "snapshots" / f"{snapshot_id}.img"


def sparse_copy(source, target):
    tmp = target.with_suffix(".part")
    run(["cp", "--sparse=always", str(source), str(tmp)])
    tmp.rename(target)


def ensure_volume(volume_id, size_gib, snapshot_id=""):
    path = volume_file(volume_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        if snapshot_id and snapshot_file(snapshot_id).exists():
            sparse_copy(snapshot_file(snapshot_id), path)  # EBS: a volume made from a snapshot holds its data
            log(f"volume {volume_id}: made from snapshot {snapshot_id}")
        with open(path, "ab") as handle:
            if handle.tell() < int(size_gib) * 1024**3:
                handle.truncate(int(size_gib) * 1024**3)  # sparse: costs nothing until written
        log(f"volume {volume_id}: {size_gib} GiB sparse file")
    loop = loop_for(path)
    if loop is None:
        loop = run(["losetup", "-f", "--show", str(path)]).stdout.strip()
    return loop


def release_volume(volume_id, delete):
    path = volume_file(volume_id)
    loop = loop_for(path)
    if loop:
        run(["losetup", "-d", loop], check=False)
    if delete and path.exists():
        path.unlink()
        log(f"volume {volume_id}: deleted")


def instance_devices(instance):
    """Extra EBS volumes as Nitro shows them: nvme1n1, nvme2n1, ... in device-name order."""
    root = instance.get("RootDeviceName")
    devices = []
    mappings = sorted(instance.get("BlockDeviceMappings", []), key=lambda m: m["DeviceName"])
    for mapping in mappings:
        if mapping["DeviceName"] == root or "Ebs" not in mapping:
            continue
        devices.append((mapping["DeviceName"], mapping["Ebs"]["VolumeId"]))
    return [(f"nvme{i}n1", name, vol) for i, (name, vol) in enumerate(devices, start=1)]


def create_container(instance, subnet, image):
    iid = instance["InstanceId"]
    ip = instance["PrivateIpAddress"]
    net_name = f"pulse-lab-{subnet['SubnetId']}"
    ensure_network(net_name, subnet["CidrBlock"],
                   {"subnet": subnet["SubnetId"], "vpc": subnet["VpcId"]})
    meta_dir = LAB_DIR / "instances" / iid
    meta_dir.mkdir(parents=True, exist_ok=True)
    devices = instance_devices(instance)
    described = {}
    if devices:
        described = {v["VolumeId"]: v for v in
                     ec2_client().describe_volumes(VolumeIds=[vol for _, _, vol in devices])["Volumes"]}
    device_args, ebs_lines = [], []
    for nvme, devname, vol in devices:
        loop = ensure_volume(vol, described[vol]["Size"], described[vol].get("SnapshotId", ""))
        device_args += ["--device", f"{loop}:/dev/{nvme}", "--device", f"{loop}:{loop}"]
        ebs_lines.append(f"{nvme} {vol} {devname}")
    (meta_dir / "ebs-devices").write_text("".join(line + "\n" for line in ebs_lines))
    write_authorized_keys(meta_dir, instance.get("KeyName"))
    tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
    (meta_dir / "instance.json").write_text(json.dumps({
        "instance-id": iid,
        "region": REGION,
        "availability-zone": instance["Placement"]["AvailabilityZone"],
        "local-ipv4": ip,
        "instance-type": instance.get("InstanceType"),
        "ami-id": instance.get("ImageId"),
        "tags": tags,
        "aws-endpoint-url": moto_url(SERVICES_IP),
    }, indent=2) + "\n")
    hostname = "ip-" + ip.replace(".", "-")
    docker(
        "run", "-d", "--name", iid, "--hostname", hostname,
        "--network", net_name, "--ip", ip,
        "--label", f"{LABEL}=1", "--label", f"{LABEL}.instance={iid}",
        *SYSTEMD_RUN_FLAGS, *device_args,
        "-v", f"{meta_dir}:/etc/pulse-lab:ro",
        image, "/sbin/init",
    )
    log(f"instance {iid} ({tags.get('Name', '-')}) backed at {ip} with {len(ebs_lines)} EBS volume(s)")


def write_authorized_keys(meta_dir, key_name):
    """The launch key pair's public key, where the image's first-boot script takes it from
    (as cloud-init takes it from the instance metadata). No key pair: no file, no login."""
    path = meta_dir / "authorized_keys"
    path.unlink(missing_ok=True)
    if not key_name:
        return
    pairs = ec2_client().describe_key_pairs(KeyNames=[key_name], IncludePublicKey=True)["KeyPairs"]
    public = (pairs[0].get("PublicKey") or "").strip() if pairs else ""
    if public:
        path.write_text(public + "\n")


def ensure_ssh_key():
    """The lab operator's SSH key (what a user has in ~/.ssh); its public half becomes the
    lab environment's EC2 key pair (inventories/lab: pulse_ssh_public_key)."""
    SSH_DIR.mkdir(parents=True, exist_ok=True)
    os.chmod(SSH_DIR, 0o700)
    if not SSH_KEY.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "pulse-lab-operator", "-f", str(SSH_KEY)])
        log(f"SSH key {SSH_KEY} (imported as the lab's EC2 key pair by provisioning)")
    KNOWN_HOSTS.touch(mode=0o600, exist_ok=True)


def forget_host_key(address):
    """A terminated instance's address is reused by the next one, with new host keys."""
    if address and KNOWN_HOSTS.exists():
        run(["ssh-keygen", "-q", "-R", address, "-f", str(KNOWN_HOSTS)], check=False)
        Path(str(KNOWN_HOSTS) + ".old").unlink(missing_ok=True)


def sync(image=None, quiet=False):
    """One pass: make the containers match moto's EC2 instances."""
    LAB_DIR.mkdir(parents=True, exist_ok=True)
    with open(LAB_DIR / "sync.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        client = ec2_client()
        instances = [i for r in client.describe_instances()["Reservations"] for i in r["Instances"]]
        subnets = {s["SubnetId"]: s for s in client.describe_subnets()["Subnets"]}
        vpcs = {v["VpcId"]: v for v in client.describe_vpcs()["Vpcs"]}
        containers = lab_containers()
        known_volumes = {v["VolumeId"] for v in client.describe_volumes()["Volumes"]}
        sync_snapshots(client)  # first: a snapshot's volume may be deleted below
        prune_networks(set(subnets))  # first: a stale network may hold a CIDR a new subnet needs
        seen = set()
        for inst in instances:
            seen.add(inst["InstanceId"])
            try:
                sync_instance(inst, containers.get(inst["InstanceId"]), subnets, vpcs, image)
            except Exception as exc:  # one bad instance must not stall the others
                log(f"instance {inst['InstanceId']}: {exc}")
        for iid in set(containers) - seen:  # moto forgot it (restarted)
            remove_instance(iid)
        # EBS: a volume file lives as long as the volume exists in moto.
        for path in (LAB_DIR / "volumes").glob("vol-*.img") if (LAB_DIR / "volumes").exists() else []:
            if path.stem not in known_volumes:
                release_volume(path.stem, delete=True)
        prune_networks(set(subnets))


def sync_snapshots(client):
    """EBS snapshots hold data: a new snapshot copies its volume's file (within a pass of
    CreateSnapshot, not at the instant: a lab approximation), and goes with the snapshot."""
    folder = LAB_DIR / "snapshots"
    folder.mkdir(parents=True, exist_ok=True)
    snapshots = client.describe_snapshots(OwnerIds=["self"])["Snapshots"]
    for snap in snapshots:
        path = snapshot_file(snap["SnapshotId"])
        if not path.exists() and volume_file(snap.get("VolumeId", "")).exists():
            sparse_copy(volume_file(snap["VolumeId"]), path)
            log(f"snapshot {snap['SnapshotId']} of {snap['VolumeId']}: copied")
    live = {snap["SnapshotId"] for snap in snapshots}
    for path in folder.glob("snap-*.img"):
        if path.stem not in live:
            path.unlink()
            log(f"snapshot {path.stem}: deleted")


def sync_instance(inst, container, subnets, vpcs, image):
    """Make one instance's container match its moto state."""
    iid, state = inst["InstanceId"], inst["State"]["Name"]
    if state in ("pending", "running"):
        if container is None:
            subnet = subnets[inst["SubnetId"]]
            vpc = vpcs.get(subnet["VpcId"])
            if vpc:
                # Subnets of one VPC route to each other, as in AWS.
                iptables_rule("DOCKER-USER", ["-s", vpc["CidrBlock"], "-d", vpc["CidrBlock"],
                                              "-j", "ACCEPT"])
            create_container(inst, subnet, image or image_tag())
        elif container["State"] == "paused":
            pass  # its zone is lost (`labctl.py outage`): EC2 still says running, nothing answers
        elif container["State"] != "running":
            docker("start", iid)
            log(f"instance {iid} started")
        else:
            attach_devices(inst)
    elif state in ("stopping", "stopped"):
        if container and container["State"] == "running":
            docker("stop", "-t", "10", iid)
            log(f"instance {iid} stopped")
    elif container is not None:  # shutting-down / terminated
        remove_instance(iid)


def attach_devices(instance):
    """EBS volumes attached to (or detached from) a running instance: the device node appears in
    (or goes from) its container, with its Nitro link, as udev does on EC2. A new device is the
    next free nvme index; the others keep theirs."""
    iid = instance["InstanceId"]
    devices_file = LAB_DIR / "instances" / iid / "ebs-devices"
    if not devices_file.exists():
        return
    had = [line.split() for line in devices_file.read_text().splitlines() if line.strip()]
    wanted = {vol: devname for _, devname, vol in instance_devices(instance)}
    keep = [entry for entry in had if entry[1] in wanted]
    gone = [entry for entry in had if entry[1] not in wanted]
    new = sorted((devname, vol) for vol, devname in wanted.items() if vol not in {e[1] for e in had})
    if not gone and not new:
        return
    for nvme, vol, _ in gone:
        docker("exec", iid, "rm", "-f", f"/dev/{nvme}", check=False)
        release_volume(vol, delete=False)
        log(f"instance {iid}: volume {vol} detached from /dev/{nvme}")
    used = {entry[0] for entry in keep}
    if new:
        described = {v["VolumeId"]: v for v in
                     ec2_client().describe_volumes(VolumeIds=[vol for _, vol in new])["Volumes"]}
    for devname, vol in new:
        nvme = next(f"nvme{i}n1" for i in range(1, 27) if f"nvme{i}n1" not in used)
        used.add(nvme)
        loop = ensure_volume(vol, described[vol]["Size"], described[vol].get("SnapshotId", ""))
        rdev = os.stat(loop).st_rdev
        major, minor = os.major(rdev), os.minor(rdev)
        for node in (f"/dev/{nvme}", loop):
            docker("exec", iid, "sh", "-c", f"[ -b {node} ] || mknod -m 0660 {node} b {major} {minor}")
        keep.append([nvme, vol, devname])
        log(f"instance {iid}: volume {vol} attached at {devname} (/dev/{nvme})")
    devices_file.write_text("".join(" ".join(entry) + "\n" for entry in keep))
    docker("exec", iid, "/usr/local/sbin/pulse-lab-ebs-links", check=False)


def remove_instance(iid):
    docker("rm", "-f", "-v", iid, check=False)
    try:
        address = json.loads((LAB_DIR / "instances" / iid / "instance.json").read_text())["local-ipv4"]
    except (OSError, ValueError, KeyError):
        address = None
    forget_host_key(address)
    devices_file = LAB_DIR / "instances" / iid / "ebs-devices"
    if devices_file.exists():
        for line in devices_file.read_text().splitlines():
            release_volume(line.split()[1], delete=False)
    shutil.rmtree(LAB_DIR / "instances" / iid, ignore_errors=True)
    log(f"instance {iid} terminated: container removed")


def prune_networks(live_subnets):
    """Remove the networks of subnets moto no longer has. Whatever is still attached (the lab
    load balancer of an ALB that outlived its subnets) is disconnected first: a stale network
    would block a new subnet with the same CIDR (Docker networks cannot overlap)."""
    proc = docker("network", "ls", "--filter", f"label={LABEL}.subnet", "--format", "{{.Name}}")
    for name in proc.stdout.split():
        subnet_id = name.replace("pulse-lab-", "", 1)
        if subnet_id in live_subnets:
            continue
        attached = docker("network", "inspect", name, "--format",
                          "{{range $id, $c := .Containers}}{{$c.Name}} {{end}}", check=False).stdout.split()
        for container in attached:
            docker("network", "disconnect", "-f", name, container, check=False)
        if docker("network", "rm", name, check=False).returncode == 0:
            log(f"network {name} removed" + (f" (disconnected {', '.join(attached)})" if attached else ""))


# --------------------------------------------------------------------------- commands


def moto_code_hash():
    return hashlib.sha256((Path(__file__).resolve().parent / "moto_server.py").read_bytes()).hexdigest()


def moto_code_current():
    """Whether the running moto was started from the current lab/moto_server.py (unknown: no)."""
    stamp = LAB_DIR / "moto.code"
    return stamp.exists() and stamp.read_text() == moto_code_hash()


# The code the instance backer (lab_watch.py) runs: every lab module it imports, directly or not.
BACKER_CODE = ("labctl.py", "lab_watch.py", "lab_alb.py", "lab_cdn.py", "lab_proxy.py", "lab_cloudwatch.py")


def backer_code_hash():
    here = Path(__file__).resolve().parent
    return hashlib.sha256(b"".join((here / f).read_bytes() for f in BACKER_CODE if (here / f).exists())).hexdigest()


def cmd_check(_args):
    problems = check_prerequisites()
    if problems:
        raise LabError("missing prerequisites:\n  - " + "\n  - ".join(problems))
    log("prerequisites ok")


CERTIFICATES = ("ca.crt", "ca.key", "server.crt", "server.key", "cdn.crt", "cdn.key")


def ensure_certificates():
    """The lab's stand-ins for the ACM certificates: a lab CA, the load balancer's certificate
    and the CDN's, made by lab/playbooks/lab_cdn.yml (which imports lab_alb.yml) with the lab
    inventory's names, when one is missing. The product's playbooks know nothing of them."""
    ca_dir = LAB_DIR / "ca"
    if all((ca_dir / name).exists() for name in CERTIFICATES):
        return
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), PULSE_LAB_DIR=str(LAB_DIR))
    playbook = Path(sys.executable).with_name("ansible-playbook")
    proc = subprocess.run([str(playbook), "-i", str(REPO / "inventories" / "lab"), str(REPO / "lab" / "playbooks" / "lab_cdn.yml")],
                          cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise LabError(f"lab/playbooks/lab_cdn.yml failed:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    log(f"lab certificates made in {ca_dir}")


def cmd_up(args):
    require()
    LAB_DIR.mkdir(parents=True, exist_ok=True)
    with open(LAB_DIR / "up.lock", "w") as lock:  # parallel test workers may all call `up`
        fcntl.flock(lock, fcntl.LOCK_EX)
        lab_up(args)


def lab_up(_args):
    ensure_ssh_key()
    image = ensure_image()
    ensure_services()
    python = sys.executable
    if moto_answers():
        log(f"moto already answering on {moto_url()}")
        if not moto_code_current():
            # moto keeps the lab's state in memory: restarting it here would lose the stack.
            log("WARNING: moto runs an older lab/moto_server.py (e.g. without the instance metadata "
                "service); `make lab-down && make lab` starts it with the current one")
    else:
        # moto "issues" a DNS-validated ACM certificate after this many seconds (default 60).
        os.environ.setdefault("MOTO_ACM_VALIDATION_WAIT", "5")
        start_background("moto", [python, str(REPO / "lab" / "moto_server.py"),
                                  "--port", str(MOTO_PORT), "--bind", "127.0.0.1",
                                  "--bind", SERVICES_IP])
        for _ in range(100):
            if moto_answers():
                break
            time.sleep(0.1)
        else:
            raise LabError(f"moto did not start: see {LAB_DIR / 'moto.log'}")
        log(f"moto started on {moto_url()} and {moto_url(SERVICES_IP)}")
        (LAB_DIR / "moto.code").write_text(moto_code_hash())
    ensure_git_remote()
    ensure_certificates()
    code = backer_code_hash()
    stamp = LAB_DIR / "backer.code"
    if pid_alive(LAB_DIR / "backer.pid") and (not stamp.exists() or stamp.read_text() != code):
        log("the backer's code changed: restarting it")
        stop_background("backer")
    stamp.write_text(code)
    if start_background("backer", [python, str(Path(__file__).resolve().with_name("lab_watch.py"))]):
        log("instance backer started (log: .lab/backer.log)")
    else:
        log("instance backer already running")
    log(f"lab is up: image {image}")


def cmd_down(_args):
    stop_background("backer")
    if shutil.which("docker") and docker("info", check=False).returncode == 0:
        ids = docker("ps", "-aq", "--filter", f"label={LABEL}").stdout.split()
        if ids:
            docker("rm", "-f", "-v", *ids, check=False)
            log(f"removed {len(ids)} container(s)")
        nets = docker("network", "ls", "-q", "--filter", f"label={LABEL}").stdout.split()
        for net in nets:
            docker("network", "rm", net, check=False)
        if nets:
            log(f"removed {len(nets)} network(s)")
    volumes = LAB_DIR / "volumes"
    if volumes.exists():
        for path in volumes.glob("*.img"):
            release_volume(path.stem, delete=True)
    shutil.rmtree(LAB_DIR / "instances", ignore_errors=True)
    KNOWN_HOSTS.unlink(missing_ok=True)
    stop_background("moto")
    stop_background("git-daemon")
    if shutil.which("iptables"):
        iptables_cleanup()
    log("lab is down")


def cmd_sync(_args):
    require()
    if not moto_answers():
        raise LabError("moto is not running: `make lab-up` first.")
    sync()


def cmd_status(_args):
    print(f"moto:    {'answering on ' + moto_url() if moto_answers() else 'down'}")
    print(f"backer:  {'pid ' + str(pid_alive(LAB_DIR / 'backer.pid')) if pid_alive(LAB_DIR / 'backer.pid') else 'down'}")
    print(f"git:     {'git://' + SERVICES_IP + '/pulse' if git_answers() else 'down'}")
    print(f"image:   {image_tag()} {'(built)' if shutil.which('docker') and image_exists(image_tag()) else '(missing)'}")
    if shutil.which("docker") and docker("info", check=False).returncode == 0:
        for name, info in sorted(lab_containers().items()):
            print(f"instance {name}: {info['State']} {info.get('Status', '')}")


def zone_instances(zone):
    reservations = ec2_client().describe_instances(Filters=[
        {"Name": "availability-zone", "Values": [zone]},
        {"Name": "instance-state-name", "Values": ["running"]}])["Reservations"]
    return sorted(i["InstanceId"] for r in reservations for i in r["Instances"])


def cmd_outage(args):
    """Lose (or, with --end, bring back) a whole availability zone: every instance container in it
    is frozen (docker pause). As when AWS loses a zone, EC2 still lists the instances as running,
    nothing in them answers, and their system status checks fail (lab/lab_cloudwatch.py)."""
    containers = lab_containers()
    instances = [iid for iid in zone_instances(args.zone) if iid in containers]
    if not instances:
        raise LabError(f"no running lab instance in {args.zone}")
    for iid in instances:
        state = containers[iid]["State"]
        if args.end and state == "paused":
            docker("unpause", iid)
        elif not args.end and state == "running":
            docker("pause", iid)
    word = "back" if args.end else "lost"
    log(f"zone {args.zone} {word}: {', '.join(instances)}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func in (("check", cmd_check), ("up", cmd_up), ("down", cmd_down), ("sync", cmd_sync),
                       ("status", cmd_status), ("image", lambda a: print(ensure_image()))):
        sub.add_parser(name).set_defaults(func=func)
    outage = sub.add_parser("outage", help="lose an availability zone (docker pause), --end to bring it back")
    outage.add_argument("--zone", required=True)
    outage.add_argument("--end", action="store_true")
    outage.set_defaults(func=cmd_outage)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except LabError as exc:
        print(f"[lab] ERROR: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
