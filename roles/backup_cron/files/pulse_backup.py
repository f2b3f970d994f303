#!/usr/bin/python3
"""pulse-backup: archive the Pulse node's data dir to S3, and snapshot its EBS volume.

One run (pulse-backup.service, started by pulse-backup.timer or by hand):

1. Preflight, nothing is touched: the data dir is readable and not empty, the backups
   bucket answers a listing of this node's prefix, pulse-node is active and answers
   GET /health (waited for up to health_timeout s, e.g. right after boot), then GET /chain
   (height, latest_hash) and GET /info (version) are read.
2. The node is stopped ONLY for the copy: `systemctl stop`, tar + gzip (or zstd) of the data
   dir into the work dir, `systemctl start` in a `finally:`, so the node is always started
   again, whatever happened to the copy. Why stop at all: the node's store (sled) is not
   crash-consistent under a live file-by-file copy (files are read at different moments
   while the node writes). A marker in /run/pulse-backup lets `--recover` (the unit's
   ExecStopPost) start the node if this process was killed inside the window.
3. /health must answer 200 again within health_timeout s.
4. Upload `<prefix><env>/<node>/<timestamp>/data.tar.gz`, then `manifest.json` (written last:
   a backup without a manifest is incomplete and is never restored), each with one PutObject
   and `If-None-Match: *`: S3 refuses to write over an existing key, and the instance role
   allows nothing else (backups are append-only from a node). The manifest holds the
   chain height and latest hash read just before the stop (a lower bound: the archive can
   hold a block more), the node version, the archive's sha256 and size, the size of the
   data it holds (data_bytes, for restore's free-space check), the durations.
5. Nothing in the bucket is ever deleted from the node (it may not): retention is the
   bucket's lifecycle rule (roles/aws_stack, pulse_backup_retention_days).
6. Optional EBS snapshot of the data volume, after the node is back: the filesystem is
   frozen (fsfreeze) only around the CreateSnapshot call (a point-in-time, crash-consistent
   image), tagged Project/Env/Node/CreatedAt and SourceInstance (this instance's ARN: the
   instance role may only create snapshots tagged so, and only delete those); older snapshots
   this instance took beyond snapshot_keep are deleted.
7. Every step is logged to stdout (the journal); the last line is one `result=...` summary.
   Exit 0 only when everything succeeded; then the Unix time is written to
   <state_dir>/last_success (for a BackupAgeSeconds metric). <state_dir>/last_run.json
   describes the last run, successful or not.

Credentials: boto3's usual chain (the instance role on EC2; in the lab an EnvironmentFile
with dummy keys). Standard library only, except boto3 (imported for the AWS calls).
"""

import argparse
import datetime
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

DEFAULT_CONFIG = "/etc/pulse-backup/config.json"
RUNTIME_DIR = "/run/pulse-backup"
TOOL = "pulse-backup"
MANIFEST_VERSION = 1

# Commands, module-level so that the unit tests can replace them.
SYSTEMCTL = "systemctl"
FSFREEZE = "fsfreeze"
TAR = "tar"

REQUIRED = ("environment", "node_name", "bucket", "data_dir")
DEFAULTS = {
    "prefix": "backups/",
    "region": "",
    "endpoint_url": "",
    "service": "pulse-node.service",
    "node_url": "http://127.0.0.1:8080",
    "compression": "gzip",
    "health_timeout": 60,
    "http_timeout": 5,
    "state_dir": "/var/lib/pulse-backup",
    "work_dir": "/var/lib/pulse-backup/work",
    "exclude": ["lost+found"],
    "instance_id": "",
    "project": "pulse",
    "snapshot": False,
    "snapshot_volume_id": "",
    "snapshot_keep": 7,
    "freeze_required": True,
}
MAX_SINGLE_PUT = 5 * 1024 ** 3
COMPRESSION = {"gzip": ("data.tar.gz", "--gzip"), "zstd": ("data.tar.zst", "--zstd")}
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"


class BackupError(Exception):
    """A step failed; the message says which and why."""


class Terminated(BaseException):
    """SIGTERM (systemd stop or timeout): unwinds through every finally: block."""


# ---------------------------------------------------------------- logging (journal-aware)

def log(message, level="info"):
    """One line to stdout. Under systemd (JOURNAL_STREAM) a <N> prefix sets the priority."""
    prefix = ""
    if os.environ.get("JOURNAL_STREAM"):
        prefix = {"error": "<3>", "warning": "<4>", "info": "<6>"}[level]
    tag = "" if level == "info" else f"{level.upper()}: "
    print(f"{prefix}{TOOL}: {tag}{message}", flush=True)


# ---------------------------------------------------------------- configuration

def check_config(config):
    """Return the list of problems with a configuration (empty when usable)."""
    problems = []
    for key in REQUIRED:
        if not isinstance(config.get(key), str) or not config.get(key):
            problems.append(f"{key} must be a non-empty string")
    for key in ("environment", "node_name"):
        value = config.get(key) or ""
        if "/" in value or value.strip() != value:
            problems.append(f"{key} must not contain '/' or surrounding spaces: {value!r}")
    if not str(config.get("data_dir", "")).startswith("/"):
        problems.append("data_dir must be an absolute path")
    prefix = config.get("prefix", "")
    if prefix and not prefix.endswith("/"):
        problems.append(f"prefix must be empty or end with '/': {prefix!r}")
    if config.get("compression") not in COMPRESSION:
        problems.append(f"compression must be one of {sorted(COMPRESSION)}")
    for key, low in (("health_timeout", 1), ("http_timeout", 1), ("snapshot_keep", 1)):
        value = config.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            problems.append(f"{key} must be an integer >= {low}: {value!r}")
    if config.get("endpoint_url") and not str(config["endpoint_url"]).startswith(("http://", "https://")):
        problems.append("endpoint_url must be empty or an http(s) URL")
    if not str(config.get("node_url", "")).startswith(("http://", "https://")):
        problems.append("node_url must be an http(s) URL")
    if config.get("snapshot") and not str(config.get("snapshot_volume_id", "")).startswith("vol-"):
        problems.append("snapshot is on but snapshot_volume_id is not a volume id (vol-...)")
    if config.get("snapshot") and not str(config.get("instance_id", "")).startswith("i-"):
        problems.append("snapshot is on but instance_id is not an instance id (i-...): snapshots are tagged with it")
    if not isinstance(config.get("exclude"), list):
        problems.append("exclude must be a list of top-level names")
    return problems


def load_config(path):
    with open(path, encoding="utf-8") as handle:
        raw = json.load(handle)
    config = dict(DEFAULTS)
    config.update({k: v for k, v in raw.items() if not k.startswith("_")})
    return config


# ---------------------------------------------------------------- helpers

def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def node_prefix(config):
    return f"{config['prefix']}{config['environment']}/{config['node_name']}/"


def run_cmd(argv, timeout=120):
    """Run a command; return (rc, combined output)."""
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, str(exc)
    return proc.returncode, proc.stdout.strip()


def http_json(url, timeout):
    """GET a node route; return its `data`, or raise BackupError."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = json.loads(resp.read().decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise BackupError(f"GET {url}: {exc}") from exc
    if not isinstance(body, dict) or body.get("success") is not True:
        raise BackupError(f"GET {url}: unexpected answer {str(body)[:200]}")
    return body.get("data")


def wait_healthy(node_url, timeout, http_timeout, sleep=time.sleep):
    """True when /health answers 200 within timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{node_url}/health", timeout=http_timeout) as resp:
                if resp.status == 200:
                    return True
        except (OSError, ValueError):
            pass
        if time.monotonic() >= deadline:
            return False
        sleep(1)


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def data_dir_entries(data_dir, exclude):
    """The top-level entries to archive, the number of files below them and their total
    size in bytes; raise BackupError when the data dir cannot be read or holds no file."""
    try:
        names = sorted(n for n in os.listdir(data_dir) if n not in exclude)
    except OSError as exc:
        raise BackupError(f"cannot read the data dir {data_dir}: {exc}") from exc
    files = size = 0
    for name in names:
        path = os.path.join(data_dir, name)
        if os.path.isdir(path) and not os.path.islink(path):
            for root, _dirs, filenames in os.walk(path, onerror=_unreadable):
                files += len(filenames)
                size += sum(os.lstat(os.path.join(root, f)).st_size for f in filenames)
        else:
            files += 1
            size += os.lstat(path).st_size
    if files == 0:
        raise BackupError(
            f"the data dir {data_dir} holds no file to back up: the node may be running in "
            "memory (see `journalctl -u pulse-node`); refusing to upload an empty backup")
    return names, files, size


def _unreadable(exc):
    raise BackupError(f"cannot read the data dir: {exc}")


def mount_point(path):
    path = os.path.realpath(path)
    while not os.path.ismount(path):
        path = os.path.dirname(path)
    return path


def write_atomic(path, text, mode=0o644):
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def marker(name):
    return os.path.join(RUNTIME_DIR, name)


def set_marker(name, content):
    try:
        os.makedirs(RUNTIME_DIR, exist_ok=True)
        with open(marker(name), "w", encoding="utf-8") as handle:
            handle.write(content)
    except OSError as exc:  # the marker is a safety net only
        log(f"cannot write {marker(name)}: {exc}", "warning")


def clear_marker(name):
    try:
        os.unlink(marker(name))
    except FileNotFoundError:
        pass
    except OSError as exc:
        log(f"cannot remove {marker(name)}: {exc}", "warning")


# ---------------------------------------------------------------- AWS

def aws_client(service, config):
    import boto3  # pylint: disable=import-outside-toplevel
    from botocore.config import Config  # pylint: disable=import-outside-toplevel

    kwargs = {"config": Config(connect_timeout=10, read_timeout=60,
                               retries={"max_attempts": 5, "mode": "standard"})}
    if config.get("region"):
        kwargs["region_name"] = config["region"]
    if config.get("endpoint_url"):
        kwargs["endpoint_url"] = config["endpoint_url"]
    return boto3.client(service, **kwargs)


def check_bucket(s3, config):
    """A listing of this node's prefix (what the instance role may do), not HeadBucket."""
    try:
        s3.list_objects_v2(Bucket=config["bucket"], Prefix=node_prefix(config), MaxKeys=1)
    except Exception as exc:  # botocore raises many types; all mean "cannot use the bucket"
        raise BackupError(f"cannot list s3://{config['bucket']}/{node_prefix(config)}: {exc}") from exc


def list_backups(s3, bucket, prefix):
    """{timestamp: set(file names)} of the backups below prefix."""
    backups = {}
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            rest = obj["Key"][len(prefix):]
            if "/" not in rest:
                continue
            stamp, name = rest.split("/", 1)
            backups.setdefault(stamp, set()).add(name)
    return backups


def _if_none_match(request, **_kwargs):
    request.headers["If-None-Match"] = "*"


def put_once(s3, bucket, key, body, content_type, metadata=None):
    """PutObject with If-None-Match: * - S3 refuses to write over an existing key (412).

    The header is added to every PutObject of this client by an event handler rather than as the
    IfNoneMatch parameter: the OS's botocore (Debian 12: 1.29) predates that parameter."""
    if not getattr(s3, "_pulse_if_none_match", False):
        s3.meta.events.register("before-sign.s3.PutObject", _if_none_match)
        s3._pulse_if_none_match = True  # pylint: disable=protected-access
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type, Metadata=metadata or {})
    except Exception as exc:  # botocore's ClientError; the code says whether the key existed
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
            raise BackupError(f"s3://{bucket}/{key} exists already: backups are never overwritten") from exc
        raise


def upload(s3, config, stamp, archive_path, archive_name, manifest):
    prefix = f"{node_prefix(config)}{stamp}/"
    if manifest["size_bytes"] > MAX_SINGLE_PUT:
        raise BackupError(f"the archive is {manifest['size_bytes']} bytes, more than one conditional PutObject "
                          f"takes ({MAX_SINGLE_PUT}); the backups are append-only, multipart uploads are not used")
    with open(archive_path, "rb") as body:
        put_once(s3, config["bucket"], prefix + archive_name, body, "application/octet-stream",
                 {"sha256": manifest["sha256"]})
    # A listing, not HeadObject: the nodes' instance role may list and put, not get.
    listed = s3.list_objects_v2(Bucket=config["bucket"], Prefix=prefix + archive_name).get("Contents", [])
    sizes = [o["Size"] for o in listed if o["Key"] == prefix + archive_name]
    if sizes != [manifest["size_bytes"]]:
        raise BackupError(f"uploaded {prefix + archive_name} is listed with {sizes} bytes, "
                          f"expected {manifest['size_bytes']}")
    put_once(s3, config["bucket"], prefix + "manifest.json",
             (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8"), "application/json")
    return prefix


# ---------------------------------------------------------------- EBS snapshot

def freeze(mount, required):
    """Freeze mount; True when frozen. A failure is fatal only when required."""
    if mount == "/":
        raise BackupError("the data dir is on the root filesystem, not on its own volume: "
                          "refusing to freeze / (and the data volume snapshot would be meaningless)")
    rc, out = run_cmd([FSFREEZE, "--freeze", mount], timeout=60)
    if rc == 0:
        set_marker("frozen", mount)
        return True
    if required:
        raise BackupError(f"fsfreeze --freeze {mount} failed ({out}); freeze_required is true")
    log(f"fsfreeze --freeze {mount} failed ({out}); freeze_required is false: snapshot without "
        "freezing (after a sync): crash-consistent only", "warning")
    os.sync()
    return False


def thaw(mount):
    for attempt in range(5):
        rc, out = run_cmd([FSFREEZE, "--unfreeze", mount], timeout=60)
        if rc == 0:
            clear_marker("frozen")
            return
        log(f"fsfreeze --unfreeze {mount} failed (attempt {attempt + 1}): {out}", "error")
        time.sleep(1)
    raise BackupError(f"could not unfreeze {mount}: the node cannot write! Run `fsfreeze --unfreeze {mount}`")


def instance_arn(config, sts):
    """This instance's ARN, as EC2 sets ec2:SourceInstanceARN on the instance role's requests."""
    caller = sts.get_caller_identity()
    partition = caller["Arn"].split(":")[1]
    region = config.get("region") or sts.meta.region_name
    return f"arn:{partition}:ec2:{region}:{caller['Account']}:instance/{config['instance_id']}"


def snapshot_tags(config, stamp, manifest, source_instance):
    return [
        {"Key": "Name", "Value": f"{config['project']}-{config['environment']}-{config['node_name']}-data-{stamp}"},
        {"Key": "Project", "Value": config["project"]},
        {"Key": "Env", "Value": config["environment"]},
        {"Key": "Node", "Value": config["node_name"]},
        {"Key": "CreatedAt", "Value": stamp},
        {"Key": "ManagedBy", "Value": TOOL},
        {"Key": "ChainHeight", "Value": str(manifest["chain_height"])},
        {"Key": "SourceInstance", "Value": source_instance},
    ]


def take_snapshot(ec2, config, stamp, manifest, source_instance):
    mount = mount_point(config["data_dir"])
    frozen = freeze(mount, config["freeze_required"])
    try:
        answer = ec2.create_snapshot(
            VolumeId=config["snapshot_volume_id"],
            Description=f"{TOOL} {config['environment']}/{config['node_name']} {stamp} "
                        f"height {manifest['chain_height']}",
            TagSpecifications=[{"ResourceType": "snapshot",
                                "Tags": snapshot_tags(config, stamp, manifest, source_instance)}],
        )
    finally:
        if frozen:
            thaw(mount)
    return answer["SnapshotId"], frozen


def prune_snapshots(ec2, config, current_id, source_instance):
    """Delete this instance's own older snapshots (the only ones its role may delete)."""
    answer = ec2.describe_snapshots(OwnerIds=["self"], Filters=[
        {"Name": "tag:SourceInstance", "Values": [source_instance]},
        {"Name": "tag:Project", "Values": [config["project"]]},
        {"Name": "tag:Env", "Values": [config["environment"]]},
        {"Name": "tag:Node", "Values": [config["node_name"]]},
        {"Name": "tag:ManagedBy", "Values": [TOOL]},
    ])
    # The snapshot just taken always counts as the newest, whatever the StartTime ties.
    others = sorted((s for s in answer.get("Snapshots", []) if s["SnapshotId"] != current_id),
                    key=lambda s: s["StartTime"], reverse=True)
    doomed = [s["SnapshotId"] for s in others[config["snapshot_keep"] - 1:]]
    for snapshot_id in doomed:
        ec2.delete_snapshot(SnapshotId=snapshot_id)
    return doomed


# ---------------------------------------------------------------- the run

def node_is_active(service):
    rc, out = run_cmd([SYSTEMCTL, "is-active", service], timeout=30)
    return rc == 0 and out == "active"


def systemctl(action, service):
    rc, out = run_cmd([SYSTEMCTL, action, service], timeout=180)
    if rc != 0:
        message = f"systemctl {action} {service} failed (rc {rc}): {out}"
        log(message, "error")
        raise BackupError(message)


def make_archive(config, names, archive_path):
    option = COMPRESSION[config["compression"]][1]
    argv = [TAR, "--create", "--file", archive_path, option, "--directory", config["data_dir"],
            "--numeric-owner", "--"] + [f"./{n}" for n in names]
    rc, out = run_cmd(argv, timeout=3600)
    if rc != 0:
        message = f"tar of {config['data_dir']} failed (rc {rc}): {out[-500:]}"
        log(message, "error")
        raise BackupError(message)


def backup(config, s3_factory=None, ec2_factory=None, now=utcnow, sleep=time.sleep, sts_factory=None):
    """One backup run; returns the manifest. Raises BackupError on any failure (after
    uploading what could be uploaded and always with the node started again)."""
    s3_factory = s3_factory or (lambda: aws_client("s3", config))
    started = time.monotonic()
    stamp = now().strftime(TIMESTAMP_FORMAT)
    prefix = node_prefix(config)
    archive_name = COMPRESSION[config["compression"]][0]
    log(f"start: backup {stamp} of {config['data_dir']} ({config['environment']}/{config['node_name']}) "
        f"to s3://{config['bucket']}/{prefix}{stamp}/")

    # 1. preflight: nothing is touched
    names, files, data_bytes = data_dir_entries(config["data_dir"], config["exclude"])
    s3 = s3_factory()
    check_bucket(s3, config)
    if not node_is_active(config["service"]):
        raise BackupError(f"{config['service']} is not active: not backing up a stopped node "
                          "(the manifest needs its chain height and hash); start it first")
    if not wait_healthy(config["node_url"], config["health_timeout"], config["http_timeout"], sleep):
        raise BackupError(f"the node does not answer {config['node_url']}/health with 200 after "
                          f"{config['health_timeout']} s: not stopping an unhealthy node")
    chain = http_json(f"{config['node_url']}/chain", config["http_timeout"])
    info = http_json(f"{config['node_url']}/info", config["http_timeout"])
    log(f"node {info.get('version')} at height {chain.get('height')} ({chain.get('latest_hash')}); "
        f"{files} file(s) to archive")

    work = os.path.join(config["work_dir"], stamp)
    shutil.rmtree(config["work_dir"], ignore_errors=True)
    os.makedirs(work, mode=0o700)
    archive_path = os.path.join(work, archive_name)
    failures = []
    try:
        # 2. the node is stopped only for the copy
        stop_started = time.monotonic()
        set_marker("node-stopped", config["service"])
        try:
            systemctl("stop", config["service"])
            make_archive(config, names, archive_path)
        finally:
            try:
                systemctl("start", config["service"])
                clear_marker("node-stopped")
            finally:
                stopped_seconds = round(time.monotonic() - stop_started, 3)
                log(f"node stopped for {stopped_seconds} s")
        # 3. the node is back
        healthy = wait_healthy(config["node_url"], config["health_timeout"], config["http_timeout"], sleep)
        if not healthy:
            failures.append(f"the node did not answer /health with 200 within {config['health_timeout']} s "
                            "after the backup (see journalctl -u pulse-node)")
            log(failures[-1], "error")

        manifest = {
            "format_version": MANIFEST_VERSION,
            "tool": TOOL,
            "environment": config["environment"],
            "node": config["node_name"],
            "instance_id": config["instance_id"],
            "timestamp": stamp,
            "created_at": now().replace(microsecond=0).isoformat().replace("+00:00", "Z"),
            "chain_height": int(chain["height"]),
            "latest_hash": chain["latest_hash"],
            "node_version": info.get("version"),
            "archive": archive_name,
            "compression": config["compression"],
            "sha256": sha256_of(archive_path),
            "size_bytes": os.path.getsize(archive_path),
            "files": files,
            "data_bytes": data_bytes,
            "data_dir": config["data_dir"],
            "stopped_seconds": stopped_seconds,
        }
        # 4. upload (archive, then the manifest)
        manifest["duration_seconds"] = round(time.monotonic() - started, 3)
        upload(s3, config, stamp, archive_path, archive_name, manifest)
        log(f"uploaded s3://{config['bucket']}/{prefix}{stamp}/{archive_name} "
            f"({manifest['size_bytes']} bytes, sha256 {manifest['sha256']}) and manifest.json")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    # 5. no pruning: the node may not delete, the bucket's lifecycle rule expires old backups
    # 6. snapshot
    if config["snapshot"]:
        try:
            ec2 = (ec2_factory or (lambda: aws_client("ec2", config)))()
            source_instance = instance_arn(config, (sts_factory or (lambda: aws_client("sts", config)))())
            snapshot_id, frozen = take_snapshot(ec2, config, stamp, manifest, source_instance)
            manifest["snapshot_id"] = snapshot_id
            log(f"snapshot {snapshot_id} of {config['snapshot_volume_id']} "
                f"({'filesystem frozen' if frozen else 'NOT frozen'})")
            removed = prune_snapshots(ec2, config, snapshot_id, source_instance)
            log(f"deleted {len(removed)} old snapshot(s) {removed} (keeping {config['snapshot_keep']})")
        except Exception as exc:
            failures.append(f"snapshot failed: {exc}")
            log(failures[-1], "error")

    manifest["duration_seconds"] = round(time.monotonic() - started, 3)
    if failures:
        raise BackupError("; ".join(failures), manifest)
    return manifest


def write_state(config, result):
    try:
        write_atomic(os.path.join(config["state_dir"], "last_run.json"),
                     json.dumps(result, indent=2, sort_keys=True) + "\n")
        if result["result"] == "success":
            write_atomic(os.path.join(config["state_dir"], "last_success"), f"{int(time.time())}\n")
    except OSError as exc:
        log(f"cannot write the state in {config['state_dir']}: {exc}", "error")
        return False
    return True


def recover():
    """ExecStopPost: undo what a killed run left behind (frozen filesystem, stopped node)."""
    rc = 0
    try:
        with open(marker("frozen"), encoding="utf-8") as handle:
            mount = handle.read().strip()
        log(f"recover: {mount} was left frozen by a killed run: unfreezing", "warning")
        try:
            thaw(mount)
        except BackupError as exc:
            log(str(exc), "error")
            rc = 1
    except FileNotFoundError:
        pass
    try:
        with open(marker("node-stopped"), encoding="utf-8") as handle:
            service = handle.read().strip()
        log(f"recover: {service} was left stopped by a killed run: starting it", "warning")
        try:
            systemctl("start", service)
            clear_marker("node-stopped")
        except BackupError as exc:
            log(str(exc), "error")
            rc = 1
    except FileNotFoundError:
        pass
    return rc


def _terminate(signum, _frame):
    raise Terminated(f"signal {signum}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--config", default=DEFAULT_CONFIG)
    parser.add_argument("--check-config", action="store_true", help="validate the configuration and exit")
    parser.add_argument("--recover", action="store_true",
                        help="unfreeze / start the node if a killed run left them so (ExecStopPost)")
    args = parser.parse_args(argv)

    if args.recover:
        return recover()
    try:
        config = load_config(args.config)
    except (OSError, ValueError) as exc:
        log(f"cannot read the configuration {args.config}: {exc}", "error")
        return 2
    problems = check_config(config)
    if problems:
        for problem in problems:
            log(f"configuration {args.config}: {problem}", "error")
        return 2
    if args.check_config:
        print(f"{args.config}: OK")
        return 0

    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()
    result = {"result": "failure", "finished_at": None}
    try:
        manifest = backup(config)
        result.update(result="success", **manifest)
    except BackupError as exc:
        result["error"] = str(exc.args[0])
        if len(exc.args) > 1:
            result.update({k: v for k, v in exc.args[1].items() if k not in result})
    except Terminated as exc:
        result["error"] = f"terminated ({exc})"
    except Exception as exc:  # anything unexpected is a failed run, logged, not a traceback only
        result["error"] = f"{type(exc).__name__}: {exc}"
    result["finished_at"] = utcnow().replace(microsecond=0).isoformat().replace("+00:00", "Z")
    result.setdefault("duration_seconds", round(time.monotonic() - started, 3))
    state_ok = write_state(config, result)
    if result["result"] == "success" and state_ok:
        log(f"result=success backup={result['timestamp']} height={result['chain_height']} "
            f"size={result['size_bytes']} duration={result['duration_seconds']}s "
            f"stopped={result['stopped_seconds']}s")
        return 0
    log(f"result=failure duration={result['duration_seconds']}s error={result.get('error', 'state not written')}",
        "error")
    return 1


if __name__ == "__main__":
    sys.exit(main())
