"""Unit tests of the backup script (roles/backup_cron/files/pulse_backup.py), imported by
path, against moto in-process (S3, EC2), a fake node (HTTP server) and a fake systemctl /
fsfreeze (shell scripts recording their calls): the archive and its manifest, the node
always started again, failures before anything is stopped, pruning that keeps the newest N,
snapshots with freeze/thaw, recovery of a killed run."""

import datetime
import hashlib
import importlib.util
import io
import json
import os
import stat
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

SCRIPT = Path(__file__).resolve().parents[2] / "roles" / "backup_cron" / "files" / "pulse_backup.py"
REGION = "us-east-2"
BUCKET = "pulse-test-backups"
HASH = "ab" * 32


def _load():
    spec = importlib.util.spec_from_file_location("pulse_backup_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pb = _load()


class FakeNode:
    """A node API whose /health follows the fake systemctl's state file."""

    def __init__(self, state_file):
        self.state_file = state_file
        self.healthy_after_restart = True
        self.starts = 0
        node = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802 (http.server API)
                running = node.state_file.read_text().strip() == "active"
                if not running:
                    self.send_response(503)
                    self.end_headers()
                    return
                if self.path == "/health" and not (node.healthy_after_restart or node.starts == 0):
                    self.send_response(503)
                    self.end_headers()
                    return
                data = {"/health": "Pulse node is alive",
                        "/chain": {"height": 42, "latest_hash": HASH, "heartbeat_pool_size": 0},
                        "/info": {"version": "1.2.0", "chain_height": 42, "peer_count": 2}}.get(self.path)
                body = json.dumps({"success": data is not None, "data": data, "error": None}).encode()
                self.send_response(200 if data is not None else 404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def close(self):
        self.server.shutdown()


def fake_command(path, log, body):
    path.write_text(f"#!/bin/sh\necho \"$(basename \"$0\") $*\" >> {log}\n{body}\n")
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def env(tmp_path, monkeypatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    calls = tmp_path / "calls.log"
    calls.touch()
    state = tmp_path / "node.state"
    state.write_text("active\n")
    fail_start = tmp_path / "fail-start"
    systemctl = fake_command(tmp_path / "systemctl", calls, f"""
case "$1" in
  is-active) cat {state}; grep -qx active {state} ;;
  stop) echo inactive > {state} ;;
  start) [ -e {fail_start} ] && exit 1; echo active > {state} ;;
esac""")
    fsfreeze = fake_command(tmp_path / "fsfreeze", calls, "exit ${FAKE_FSFREEZE_RC:-0}")
    monkeypatch.setattr(pb, "SYSTEMCTL", systemctl)
    monkeypatch.setattr(pb, "FSFREEZE", fsfreeze)
    monkeypatch.setattr(pb, "RUNTIME_DIR", str(tmp_path / "run"))
    node = FakeNode(state)
    data = tmp_path / "data"
    data.mkdir()
    (data / "chain.jsonl").write_text('{"index":0}\n{"index":1}\n')
    (data / "peer_id").write_text("12D3KooWtest\n")
    (data / "lost+found").mkdir()
    (data / "lost+found" / "junk").write_text("x")
    config = dict(pb.DEFAULTS)
    config.update(environment="test", node_name="node-1", bucket=BUCKET, region=REGION,
                  data_dir=str(data), node_url=node.url, state_dir=str(tmp_path / "state"),
                  work_dir=str(tmp_path / "state" / "work"), health_timeout=3, http_timeout=2,
                  instance_id="i-0123456789abcdef0")
    config_file = tmp_path / "config.json"

    def write_config(**changes):
        config.update(changes)
        config_file.write_text(json.dumps(config))
        return str(config_file)

    write_config()
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        yield {
            "tmp": tmp_path, "calls": calls, "state": state, "node": node, "data": data,
            "config": config, "write_config": write_config, "config_file": str(config_file),
            "s3": s3, "fail_start": fail_start,
        }
    node.close()


def calls(env):
    return [line.split()[:2] for line in env["calls"].read_text().splitlines()]


def keys(env, prefix="backups/test/node-1/"):
    answer = env["s3"].list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for o in answer.get("Contents", []))


def last_run(env):
    return json.loads((env["tmp"] / "state" / "last_run.json").read_text())


# ---------------------------------------------------------------- configuration

def test_the_default_configuration_with_the_required_keys_is_valid(env):
    assert pb.check_config(env["config"]) == []
    assert pb.main(["--config", env["config_file"], "--check-config"]) == 0


@pytest.mark.parametrize("change, problem", [
    ({"bucket": ""}, "bucket"),
    ({"environment": "a/b"}, "environment"),
    ({"data_dir": "relative"}, "data_dir"),
    ({"prefix": "backups"}, "prefix"),
    ({"compression": "xz"}, "compression"),
    ({"snapshot_keep": 0}, "snapshot_keep"),
    ({"snapshot": True, "snapshot_volume_id": "vol-1", "instance_id": ""}, "instance_id"),
    ({"snapshot": True, "snapshot_volume_id": ""}, "snapshot_volume_id"),
    ({"endpoint_url": "198.18.0.1:5000"}, "endpoint_url"),
])
def test_a_bad_configuration_is_refused_with_exit_2(env, change, problem):
    path = env["write_config"](**change)
    assert any(problem in p for p in pb.check_config(env["config"]))
    assert pb.main(["--config", path, "--check-config"]) == 2
    assert pb.main(["--config", path]) == 2
    assert calls(env) == []


# ---------------------------------------------------------------- a good run

def test_a_backup_uploads_the_archive_and_its_manifest_and_restarts_the_node(env):
    assert pb.main(["--config", env["config_file"]]) == 0
    found = keys(env)
    assert len(found) == 2, found
    stamp = found[0].split("/")[3]
    assert found == [f"backups/test/node-1/{stamp}/data.tar.gz", f"backups/test/node-1/{stamp}/manifest.json"]
    archive = env["s3"].get_object(Bucket=BUCKET, Key=found[0])["Body"].read()
    manifest = json.loads(env["s3"].get_object(Bucket=BUCKET, Key=found[1])["Body"].read())
    assert manifest["sha256"] == hashlib.sha256(archive).hexdigest()
    assert manifest["size_bytes"] == len(archive)
    assert manifest["chain_height"] == 42 and manifest["latest_hash"] == HASH
    assert manifest["node_version"] == "1.2.0"
    assert manifest["timestamp"] == stamp and manifest["created_at"].endswith("Z")
    assert manifest["archive"] == "data.tar.gz" and manifest["compression"] == "gzip"
    assert manifest["instance_id"] == "i-0123456789abcdef0"
    assert manifest["files"] == 2
    assert manifest["data_bytes"] == sum(len((env["data"] / n).read_bytes()) for n in ("chain.jsonl", "peer_id"))
    assert manifest["stopped_seconds"] >= 0 and manifest["duration_seconds"] >= manifest["stopped_seconds"]
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        names = sorted(tar.getnames())
        assert names == ["./chain.jsonl", "./peer_id"]
        assert tar.extractfile("./chain.jsonl").read() == (env["data"] / "chain.jsonl").read_bytes()
    # the node was stopped for the copy only, and started again
    assert calls(env) == [["systemctl", "is-active"], ["systemctl", "stop"], ["systemctl", "start"]]
    assert env["state"].read_text().strip() == "active"
    run = last_run(env)
    assert run["result"] == "success" and run["timestamp"] == stamp
    assert int((env["tmp"] / "state" / "last_success").read_text()) > 0
    # nothing is left in the work dir
    assert not any(Path(env["config"]["work_dir"]).iterdir())


def test_the_log_tells_start_size_duration_and_result(env, capsys):
    assert pb.main(["--config", env["config_file"]]) == 0
    out = capsys.readouterr().out
    assert "pulse-backup: start: backup" in out
    assert "node stopped for" in out
    last = out.strip().splitlines()[-1]
    assert last.startswith("pulse-backup: result=success backup=")
    assert "size=" in last and "duration=" in last and "height=42" in last


def test_under_systemd_lines_carry_a_journal_priority(env, capsys, monkeypatch):
    monkeypatch.setenv("JOURNAL_STREAM", "8:1234")
    env["write_config"](bucket="no-such-bucket")
    assert pb.main(["--config", env["config_file"]]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("<6>pulse-backup: start")
    assert lines[-1].startswith("<3>pulse-backup: ERROR: result=failure")


def test_zstd_compression_names_the_archive_accordingly(env):
    if not any(os.access(os.path.join(d, "zstd"), os.X_OK) for d in os.environ["PATH"].split(os.pathsep)):
        pytest.skip("zstd is not installed here")
    env["write_config"](compression="zstd")
    assert pb.main(["--config", env["config_file"]]) == 0
    assert keys(env)[0].endswith("/data.tar.zst")


# ---------------------------------------------------------------- failures

def test_a_missing_bucket_fails_before_the_node_is_stopped(env):
    env["write_config"](bucket="no-such-bucket")
    assert pb.main(["--config", env["config_file"]]) == 1
    assert calls(env) == []
    assert env["state"].read_text().strip() == "active"
    assert not (env["tmp"] / "state" / "last_success").exists()
    run = last_run(env)
    assert run["result"] == "failure" and "no-such-bucket" in run["error"]


def test_an_unreadable_data_dir_fails_before_the_node_is_stopped(env):
    env["write_config"](data_dir=str(env["tmp"] / "missing"))
    assert pb.main(["--config", env["config_file"]]) == 1
    assert calls(env) == []
    assert "cannot read the data dir" in last_run(env)["error"]


def test_an_empty_data_dir_is_not_backed_up(env):
    for name in ("chain.jsonl", "peer_id"):
        (env["data"] / name).unlink()
    assert pb.main(["--config", env["config_file"]]) == 1
    assert calls(env) == []
    assert "holds no file" in last_run(env)["error"]
    assert keys(env) == []


def test_a_stopped_node_is_not_backed_up_nor_started(env):
    env["state"].write_text("inactive\n")
    assert pb.main(["--config", env["config_file"]]) == 1
    assert calls(env) == [["systemctl", "is-active"]]
    assert env["state"].read_text().strip() == "inactive"


def test_a_failed_copy_still_starts_the_node_and_uploads_nothing(env, monkeypatch):
    monkeypatch.setattr(pb, "TAR", "false")
    assert pb.main(["--config", env["config_file"]]) == 1
    assert calls(env) == [["systemctl", "is-active"], ["systemctl", "stop"], ["systemctl", "start"]]
    assert env["state"].read_text().strip() == "active"
    assert keys(env) == []
    assert "tar of" in last_run(env)["error"]


def test_a_termination_during_the_copy_still_starts_the_node(env, monkeypatch):
    def killed(*_args):
        raise pb.Terminated("signal 15")

    monkeypatch.setattr(pb, "make_archive", killed)
    assert pb.main(["--config", env["config_file"]]) == 1
    assert calls(env)[-1] == ["systemctl", "start"]
    assert "terminated" in last_run(env)["error"]
    assert not os.path.exists(os.path.join(pb.RUNTIME_DIR, "node-stopped"))


def test_an_unhealthy_node_is_not_stopped(env):
    env["node"].healthy_after_restart = False
    env["node"].starts = 1  # /health answers 503 from the start
    assert pb.main(["--config", env["write_config"](health_timeout=1)]) == 1
    assert calls(env) == [["systemctl", "is-active"]]
    assert "not stopping an unhealthy node" in last_run(env)["error"]


def test_unhealthy_after_the_restart_fails_the_run_after_uploading(env, monkeypatch):
    real_systemctl = pb.systemctl

    def systemctl(action, service):
        real_systemctl(action, service)
        if action == "start":
            env["node"].healthy_after_restart = False
            env["node"].starts += 1

    monkeypatch.setattr(pb, "systemctl", systemctl)
    assert pb.main(["--config", env["write_config"](health_timeout=1)]) == 1
    assert len(keys(env)) == 2
    run = last_run(env)
    assert run["result"] == "failure" and "/health" in run["error"] and run["sha256"]
    assert not (env["tmp"] / "state" / "last_success").exists()


def test_a_failed_start_is_reported(env):
    env["fail_start"].touch()
    assert pb.main(["--config", env["config_file"]]) == 1
    assert "systemctl start" in last_run(env)["error"]


# ---------------------------------------------------------------- append-only

def put_backup(env, stamp, complete=True, node="node-1"):
    prefix = f"backups/test/{node}/{stamp}/"
    env["s3"].put_object(Bucket=BUCKET, Key=prefix + "data.tar.gz", Body=b"x")
    if complete:
        env["s3"].put_object(Bucket=BUCKET, Key=prefix + "manifest.json", Body=b"{}")


def stamps(env):
    return sorted({k.split("/")[3] for k in keys(env)})


def test_nothing_is_ever_deleted_whatever_the_age_or_count(env):
    old = ["20200101T000000Z", "20200102T000000Z", "20200103T000000Z", "20200104T000000Z"]
    for stamp in old:
        put_backup(env, stamp)
    put_backup(env, "20191231T000000Z", complete=False)  # an old failed upload
    put_backup(env, "20200101T000000Z", node="node-2")
    assert pb.main(["--config", env["config_file"]]) == 0
    left = stamps(env)
    assert left[:5] == ["20191231T000000Z"] + old and len(left) == 6
    assert keys(env, "backups/test/node-2/") == ["backups/test/node-2/20200101T000000Z/data.tar.gz",
                                                  "backups/test/node-2/20200101T000000Z/manifest.json"]
    versions = env["s3"].list_object_versions(Bucket=BUCKET)
    assert not versions.get("DeleteMarkers"), "a delete marker was written"


def test_uploads_are_conditional_and_never_overwrite_an_existing_backup(env, monkeypatch):
    fixed = pb.datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=pb.datetime.timezone.utc)
    put_backup(env, "20260102T030405Z")
    sent = []
    original = pb.put_once

    def spy(s3, bucket, key, body, content_type, metadata=None):
        sent.append(key)
        return original(s3, bucket, key, body, content_type, metadata)

    monkeypatch.setattr(pb, "put_once", spy)
    backup = pb.backup
    monkeypatch.setattr(pb, "backup", lambda config: backup(config, now=lambda: fixed))
    assert pb.main(["--config", env["config_file"]]) == 1
    assert "exists already" in last_run(env)["error"]
    assert sent == ["backups/test/node-1/20260102T030405Z/data.tar.gz"]
    body = env["s3"].get_object(Bucket=BUCKET, Key="backups/test/node-1/20260102T030405Z/data.tar.gz")["Body"].read()
    assert body == b"x", "the existing backup was overwritten"
    assert env["state"].read_text().strip() == "active"


# ---------------------------------------------------------------- snapshots

@pytest.fixture
def volume(env, monkeypatch):
    ec2 = boto3.client("ec2", region_name=REGION)
    vol = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=1)["VolumeId"]
    monkeypatch.setattr(pb, "mount_point", lambda path: "/fake-data-mount")
    env["write_config"](snapshot=True, snapshot_volume_id=vol, snapshot_keep=2)
    return ec2, vol


def test_a_snapshot_is_taken_frozen_tagged_and_old_ones_pruned(env, volume):
    ec2, vol = volume
    # a snapshot of this node taken by ANOTHER instance (the node was replaced): never deleted
    other = ec2.create_snapshot(VolumeId=vol, TagSpecifications=[{"ResourceType": "snapshot", "Tags": [
        {"Key": "Project", "Value": "pulse"}, {"Key": "Env", "Value": "test"}, {"Key": "Node", "Value": "node-1"},
        {"Key": "ManagedBy", "Value": "pulse-backup"},
        {"Key": "SourceInstance", "Value": "arn:aws:ec2:us-east-2:123456789012:instance/i-0aaaaaaaaaaaaaaaa"}]}])["SnapshotId"]
    backup = pb.backup
    for minute in range(3):  # three runs, each in its own minute (a backup is never overwritten)
        stamp = datetime.datetime(2026, 1, 2, 3, minute, 5, tzinfo=datetime.timezone.utc)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(pb, "backup", lambda config, stamp=stamp: backup(config, now=lambda: stamp))
            assert pb.main(["--config", env["config_file"]]) == 0
    snaps = [s for s in ec2.describe_snapshots(Filters=[{"Name": "volume-id", "Values": [vol]}])["Snapshots"]
             if s["SnapshotId"] != other]
    assert len(snaps) == 2
    assert other in {s["SnapshotId"] for s in ec2.describe_snapshots(SnapshotIds=[other])["Snapshots"]}
    tags = {t["Key"]: t["Value"] for t in snaps[0]["Tags"]}
    assert tags["Env"] == "test" and tags["Node"] == "node-1" and tags["Project"] == "pulse"
    assert tags["ManagedBy"] == "pulse-backup" and tags["CreatedAt"].endswith("Z")
    assert tags["SourceInstance"] == "arn:aws:ec2:us-east-2:123456789012:instance/i-0123456789abcdef0"
    freezes = [c for c in calls(env) if c[0] == "fsfreeze"]
    assert freezes == [["fsfreeze", "--freeze"], ["fsfreeze", "--unfreeze"]] * 3
    assert last_run(env)["snapshot_id"] in {s["SnapshotId"] for s in snaps}
    assert not os.path.exists(os.path.join(pb.RUNTIME_DIR, "frozen"))


def test_a_required_freeze_that_fails_means_no_snapshot_and_a_failed_run(env, volume, monkeypatch):
    ec2, vol = volume
    monkeypatch.setenv("FAKE_FSFREEZE_RC", "1")
    assert pb.main(["--config", env["config_file"]]) == 1
    assert ec2.describe_snapshots(Filters=[{"Name": "volume-id", "Values": [vol]}])["Snapshots"] == []
    assert "freeze_required" in last_run(env)["error"]
    assert len(keys(env)) == 2  # the S3 backup was still made


def test_a_freeze_that_is_not_required_may_fail(env, volume, monkeypatch, capsys):
    ec2, vol = volume
    monkeypatch.setenv("FAKE_FSFREEZE_RC", "1")
    env["write_config"](freeze_required=False)
    assert pb.main(["--config", env["config_file"]]) == 0
    assert len(ec2.describe_snapshots(Filters=[{"Name": "volume-id", "Values": [vol]}])["Snapshots"]) == 1
    assert "WARNING: fsfreeze --freeze /fake-data-mount failed" in capsys.readouterr().out
    assert ["fsfreeze", "--unfreeze"] not in calls(env)


def test_the_root_filesystem_is_never_frozen(env, volume, monkeypatch):
    monkeypatch.setattr(pb, "mount_point", lambda path: "/")
    assert pb.main(["--config", env["config_file"]]) == 1
    assert "root filesystem" in last_run(env)["error"]
    assert not [c for c in calls(env) if c[0] == "fsfreeze"]


# ---------------------------------------------------------------- recovery (ExecStopPost)

def test_recover_does_nothing_after_a_clean_run(env):
    assert pb.main(["--recover"]) == 0
    assert calls(env) == []


def test_recover_thaws_and_starts_what_a_killed_run_left(env):
    os.makedirs(pb.RUNTIME_DIR)
    Path(pb.RUNTIME_DIR, "frozen").write_text("/fake-data-mount")
    Path(pb.RUNTIME_DIR, "node-stopped").write_text("pulse-node.service")
    env["state"].write_text("inactive\n")
    assert pb.main(["--recover"]) == 0
    assert calls(env) == [["fsfreeze", "--unfreeze"], ["systemctl", "start"]]
    assert env["state"].read_text().strip() == "active"
    assert os.listdir(pb.RUNTIME_DIR) == []


def test_the_script_is_executable_python3():
    assert SCRIPT.read_text().startswith("#!/usr/bin/python3\n")
    assert SCRIPT.stat().st_mode & stat.S_IRUSR
