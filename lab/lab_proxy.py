"""lab_proxy: what the lab's two proxy front ends share — lab_alb (an HAProxy container per moto
ALB) and lab_cdn (an nginx container per moto CloudFront distribution).

Both keep, per kind (a Proxy each): a message said once per condition in the log, an image
built in the background from their directory (lab/alb, lab/cdn) on the lab base image and
tagged by its hash, one labelled container per moto resource (created, started again, replaced
when its spec changes, removed with its state directory when the resource is gone), ports
claimed on the host's loopback, a lab-wide lock of the passes, and the `--watch` command line.

The proxies' code runs on the host, in the instance backer (lab/lab_watch.py) or alone; the
containers run HAProxy and nginx only (lab/alb/Dockerfile, lab/cdn/Dockerfile), so none of this
goes into an image. labctl's backer_code_hash() names this module: a change restarts the backer.
Imports labctl only (as lab_alb and lab_cdn do); imports neither of them.
"""

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import labctl  # noqa: E402  (lab/ is on the path: lab/lab_watch.py, or the caller)

LAB = Path(__file__).resolve().parent
BUILD_RETRY_SECONDS = 60
# Both serve what is tagged Project=pulse in moto; a resource may carry these tags to be
# published on other loopback ports than the proxy's own.
PROJECT = "pulse"
HTTPS_PORT_TAG = "pulse-lab:https-port"
HTTP_PORT_TAG = "pulse-lab:http-port"


def to_int(value, default):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def write_file(path, text, mode=0o644):
    """Replace path's content at once (a reader never sees half of it)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.chmod(mode)
    tmp.replace(path)


def spec_digest(spec):
    """A container's spec (what it is made of) as a short digest, for its label."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def create_container(name, hostname, ports, labels, volume, image, network=(), connect=()):
    """Create and start a proxy container: ports (https, http) published on the host's loopback
    (container :443, :80), the lab's label and labels ((key, value)...), logs capped, volume
    (host:container[:ro]) mounted; network: the first network's `docker create` options,
    connect: more (network, ip) connected before the start. Removed again if it cannot start."""
    labelled = [arg for key, value in labels for arg in ("--label", f"{key}={value}")]
    labctl.docker(
        "create", "--name", name, "--hostname", hostname, *network,
        "-p", f"127.0.0.1:{ports[0]}:443", "-p", f"127.0.0.1:{ports[1]}:80",
        "--label", f"{labctl.LABEL}=1", *labelled,
        "--log-opt", "max-size=10m", "--log-opt", "max-file=2",
        "-v", volume,
        image,
    )
    try:
        for net, ip in connect:
            labctl.docker("network", "connect", "--ip", ip, net, name)
        labctl.docker("start", name)
    except labctl.LabError:
        labctl.docker("rm", "-f", name, check=False)
        raise


def containers(label, spec_label, key, *filters):
    """The containers labelled label: name -> docker ps info, plus key (the label's value: the
    moto resource) and "spec" (spec_label's). filters: more `docker ps` options."""
    proc = labctl.docker("ps", "-a", "--filter", f"label={label}", *filters, "--format", "{{json .}}")
    out = {}
    for line in proc.stdout.splitlines():
        info = json.loads(line)
        labels = dict(item.split("=", 1) for item in info.get("Labels", "").split(",") if "=" in item)
        info[key] = labels.get(label)
        info["spec"] = labels.get(spec_label)
        out[info["Names"]] = info
    return out


class Locked:
    """The lab-wide lock of one proxy's passes (the backer and a test's own may both run)."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        labctl.LAB_DIR.mkdir(parents=True, exist_ok=True)
        self.file = open(labctl.LAB_DIR / self.name, "w")
        fcntl.flock(self.file, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        self.file.close()


class Proxy:
    """One kind of lab proxy (what: "alb", "cdn"): what its log lines start with, its image
    (built from lab/<what>, tagged pulse-lab/<what>:<hash>; server: what the build log line says
    it installs) and what it said already."""

    def __init__(self, what, server):
        self.what, self.server = what, server
        self.image_dir, self.image_repo = LAB / what, f"pulse-lab/{what}"
        # What has been said already, so that a pass every second logs a condition once.
        self.said = {}
        self.build = {"proc": None, "tag": None, "failed_at": 0.0, "ready": None}
        self.announced = False

    # ----------------------------------------------------------------------- the log

    def once(self, log, key, msg):
        if self.said.get(key) != msg:
            self.said[key] = msg
            log(msg)

    def clear(self, key):
        self.said.pop(key, None)

    def announce(self, log, msg):
        """Say msg at the first pass only."""
        if not self.announced:
            self.announced = True
            log(msg)

    # ----------------------------------------------------------------------- image

    def image_tag(self):
        """image_repo:<hash of the files of image_dir but its READMEs>."""
        digest = hashlib.sha256()
        for path in sorted(self.image_dir.rglob("*")):
            if path.is_file() and path.suffix != ".md":
                digest.update(path.relative_to(self.image_dir).as_posix().encode())
                digest.update(path.read_bytes())
        return f"{self.image_repo}:{digest.hexdigest()[:12]}"

    def ensure_image(self, log, state_dir):
        """The image's tag once it exists; while it is built (in the background, log in
        state_dir/build.log) None."""
        build = self.build
        tag = self.image_tag()
        if build.get("ready") == tag:
            return tag
        proc = build["proc"]
        if proc is not None and proc.poll() is None:
            return None
        if proc is not None:
            build["proc"] = None
            if proc.returncode != 0:
                build["failed_at"] = time.time()
                log(f"{self.what}: building {build['tag']} failed: see {state_dir / 'build.log'}")
            else:
                log(f"{self.what}: image {build['tag']} built")
                self.prune_images(build["tag"])
        if labctl.image_exists(tag):
            self.clear("image")
            build["ready"] = tag
            return tag
        if not labctl.image_exists(labctl.IMAGE_LATEST):
            self.once(log, "image", f"{self.what}: base image {labctl.IMAGE_LATEST} missing: run `labctl up`")
            return None
        if time.time() - build["failed_at"] < BUILD_RETRY_SECONDS:
            return None
        state_dir.mkdir(parents=True, exist_ok=True)
        log(f"{self.what}: building {tag} from {labctl.IMAGE_LATEST} ({self.server})")
        with open(state_dir / "build.log", "w") as out:
            build["proc"] = subprocess.Popen(
                ["docker", "build", "-q", "--build-arg", f"BASE={labctl.IMAGE_LATEST}",
                 "--label", f"{labctl.LABEL}.image=1", "-t", tag, str(self.image_dir)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=dict(os.environ, DOCKER_BUILDKIT="0"),
            )
        build["tag"] = tag
        return None

    def prune_images(self, keep):
        """Older images of image_repo (a container still using one keeps it: rmi fails)."""
        proc = labctl.docker("images", self.image_repo, "--format", "{{.Repository}}:{{.Tag}}", check=False)
        for tag in proc.stdout.split():
            if tag != keep:
                labctl.docker("rmi", tag, check=False)

    # ----------------------------------------------------------------------- containers

    def claim_ports(self, log, ports, key, wanted, refusal):
        """Claim the wanted host ports (ports: port -> the resource that has it) for the moto
        resource key: True when they are its now; False, said once (refusal(clash, owner): the
        message), when another resource has one of them already."""
        clash = [p for p in wanted if p in ports]
        if clash:
            self.once(log, f"ports:{key}", refusal(clash, ports[clash[0]]))
            return False
        self.clear(f"ports:{key}")
        ports.update(dict.fromkeys(wanted, key))
        return True

    def create(self, log, key, create, *args):
        """create(*args) (a container for the moto resource key); False, said once, when it fails."""
        try:
            create(*args)
        except labctl.LabError as exc:
            self.once(log, f"create:{key}", f"{self.what}: {key}: cannot start: {exc}")
            return False
        self.clear(f"create:{key}")
        return True

    def start_again(self, log, name, key):
        """Start the stopped container name of the moto resource key; False, said once, when it fails."""
        proc = labctl.docker("start", name, check=False)
        if proc.returncode != 0:
            self.once(log, f"start:{key}", f"{self.what}: {key}: cannot start: {proc.stderr.strip()}")
            return False
        self.clear(f"start:{key}")
        log(f"{self.what}: {key}: container started again")
        return True

    def remove_container(self, log, name, key, state_dir):
        """Remove the container name and the state directory of the moto resource key (if known)."""
        labctl.docker("rm", "-f", "-v", name, check=False)
        if key:
            shutil.rmtree(state_dir / key, ignore_errors=True)
        log(f"{self.what}: {key or name} gone: container removed")

    def remove_gone(self, log, found, key, live, state_dir):
        """Remove the containers (found: name -> info, the resource under key) of resources not
        live any more, and the state directories of state_dir that no container or live
        resource has (left by `labctl down` or a moto restart)."""
        for name, info in found.items():
            if info[key] not in live:
                self.remove_container(log, name, info[key], state_dir)
        known = live | {info[key] for info in found.values()}
        for path in state_dir.iterdir() if state_dir.exists() else []:
            if path.is_dir() and path.name not in known:
                shutil.rmtree(path, ignore_errors=True)

    # ----------------------------------------------------------------------- passes

    def keep_going(self, one_pass, log):
        """one_pass(log), a failure said once in the log (the next pass tries again)."""
        try:
            one_pass(log)
        except Exception as exc:  # keep the caller going, like the backer
            self.once(log, "sync", f"{self.what}: sync failed: {exc}")
        else:
            self.clear("sync")

    def watch(self, one_pass, interval, log):
        """one_pass(log) every interval seconds until SIGTERM (or SIGINT), never dying of a failure."""
        running = {"on": True}
        signal.signal(signal.SIGTERM, lambda *_: running.update(on=False))
        signal.signal(signal.SIGINT, lambda *_: running.update(on=False))
        while running["on"]:
            self.keep_going(one_pass, log)
            time.sleep(interval)


def main(argv, doc, watch, one_pass):
    """A proxy's command line: one pass (one_pass()), or --watch (watch())."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--watch", action="store_true", help="sync every second until SIGTERM")
    args = parser.parse_args(argv)
    if args.watch:
        watch()
        return 0
    try:
        one_pass()
    except labctl.LabError as exc:
        print(f"[lab] ERROR: {exc}", file=sys.stderr)
        return 2
    return 0
