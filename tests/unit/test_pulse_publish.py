"""bin/pulse-publish, the one publish step of every builder, against moto's in-process S3.

What it must do: upload the binary, then its .sha256, then the .json release record, each with
a conditional write (If-None-Match: *); refuse an existing release (exit 3) without writing
anything; complete a publication that stopped half-way; say clearly what went wrong.
"""

import hashlib
import importlib.machinery
import importlib.util
import json
import subprocess
import sys

import boto3
import pytest

from conftest import REPO

moto = pytest.importorskip("moto")
from moto import mock_aws  # noqa: E402

SCRIPT = REPO / "bin" / "pulse-publish"
REGION = "us-east-2"
BUCKET = "pulse-test-artifacts-0001"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def load_script():
    loader = importlib.machinery.SourceFileLoader("pulse_publish", str(SCRIPT))
    spec = importlib.util.spec_from_loader("pulse_publish", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


pp = load_script()


@pytest.fixture(autouse=True)
def aws_env(monkeypatch):
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "PULSE_PUBLISH_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        yield client


@pytest.fixture
def binary(tmp_path):
    path = tmp_path / "pulse-node"
    path.write_bytes(b"\x7fELF pulse-node stand-in " * 1000)
    return path


def run(capsys, *argv):
    rc = pp.main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def args(binary, version="v1.4.0", *extra):
    return ["--bucket", BUCKET, "--version", version, "--binary", str(binary), "--os-family", "debian12",
            "--commit", COMMIT, "--built-by", "test", *extra]


def keys(s3):
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []))


def read(s3, key):
    return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()


# --------------------------------------------------------------------------- publishing


def test_publishes_binary_sha256_and_record(s3, binary, capsys):
    rc, out, err = run(capsys, *args(binary, "v1.4.0", "--meta", "toolchain=rustc 1.83.0"))
    assert rc == 0, err
    digest = hashlib.sha256(binary.read_bytes()).hexdigest()
    assert keys(s3) == ["node/pulse-node-v1.4.0", "node/pulse-node-v1.4.0.json", "node/pulse-node-v1.4.0.sha256"]
    assert read(s3, "node/pulse-node-v1.4.0") == binary.read_bytes()
    # exactly what roles/pulse_node_systemd checks: "<64 hex>  pulse-node-<version>"
    assert read(s3, "node/pulse-node-v1.4.0.sha256").decode() == f"{digest}  pulse-node-v1.4.0\n"
    record = json.loads(read(s3, "node/pulse-node-v1.4.0.json"))
    assert record["version"] == "v1.4.0" and record["sha256"] == digest and record["os_family"] == "debian12"
    assert record["commit"] == COMMIT and record["built_by"] == "test" and record["toolchain"] == "rustc 1.83.0"
    assert record["size"] == binary.stat().st_size
    head = s3.head_object(Bucket=BUCKET, Key="node/pulse-node-v1.4.0")
    assert record["binary_version_id"] == head["VersionId"]
    assert head["Metadata"]["sha256"] == digest
    assert "published v1.4.0" in out


def test_records_who_published_it(s3, binary, capsys):
    """The record names the identity that wrote it (sts:GetCallerIdentity): an assumed role's session."""
    import boto3

    iam = boto3.client("iam", region_name="us-east-1")
    role = iam.create_role(RoleName="ci-publish", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    creds = boto3.client("sts", region_name="us-east-1").assume_role(
        RoleArn=role, RoleSessionName="release-v1.4.0")["Credentials"]
    session = boto3.session.Session(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                                    aws_session_token=creds["SessionToken"], region_name="us-east-1")
    assert pp.main(args(binary), client_factory=session.client) == 0
    record = json.loads(read(s3, "node/pulse-node-v1.4.0.json"))
    assert record["published_as"].endswith(":assumed-role/ci-publish/release-v1.4.0")


def test_an_unknown_identity_is_recorded_as_none(binary, capsys):
    """Publishing does not depend on STS: without an answer, published_as is null."""
    bodies = {}

    class NoSts:
        def head_object(self, **kw):
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "404"}, "ResponseMetadata": {"HTTPStatusCode": 404}}, "HeadObject")

        def put_object(self, **kw):
            bodies[kw["Key"]] = kw["Body"]
            return {"VersionId": "v"}

    assert pp.main(args(binary), client_factory=lambda *a, **k: NoSts()) == 0
    assert json.loads(bodies["node/pulse-node-v1.4.0.json"])["published_as"] is None


def test_uploads_in_order_each_conditionally(binary, capsys):
    calls = []

    class Recorder:
        def head_object(self, **kw):
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "404"}, "ResponseMetadata": {"HTTPStatusCode": 404}}, "HeadObject")

        def put_object(self, **kw):
            calls.append((kw["Key"], kw.get("IfNoneMatch")))
            return {"VersionId": "v"}

    rc = pp.main(args(binary), client_factory=lambda *a, **k: Recorder())
    assert rc == 0
    assert calls == [("node/pulse-node-v1.4.0", "*"), ("node/pulse-node-v1.4.0.sha256", "*"),
                     ("node/pulse-node-v1.4.0.json", "*")]


def test_an_existing_release_is_refused_and_nothing_is_written(s3, binary, tmp_path, capsys):
    assert run(capsys, *args(binary))[0] == 0
    before = {k: read(s3, k) for k in keys(s3)}
    other = tmp_path / "other"
    other.write_bytes(b"a different build")
    rc, _, err = run(capsys, *args(other))
    assert rc == 3
    assert "already published" in err and "immutable" in err
    assert {k: read(s3, k) for k in keys(s3)} == before
    versions = s3.list_object_versions(Bucket=BUCKET)["Versions"]
    assert len(versions) == 3, "no object got a second version"
    # the same binary again: still refused (the record exists)
    assert run(capsys, *args(binary))[0] == 3


def test_a_different_binary_under_a_half_published_version_is_refused(s3, binary, tmp_path, capsys):
    s3.put_object(Bucket=BUCKET, Key="node/pulse-node-v1.4.0", Body=b"someone else's", Metadata={"sha256": "0" * 64})
    rc, _, err = run(capsys, *args(binary))
    assert rc == 3 and "never replaced" in err
    assert keys(s3) == ["node/pulse-node-v1.4.0"]


def test_a_half_done_publication_is_completed(s3, binary, capsys):
    digest = hashlib.sha256(binary.read_bytes()).hexdigest()
    s3.put_object(Bucket=BUCKET, Key="node/pulse-node-v1.4.0", Body=binary.read_bytes(), Metadata={"sha256": digest})
    rc, out, err = run(capsys, *args(binary))
    assert rc == 0, err
    assert "stopped half-way" in out
    assert keys(s3) == ["node/pulse-node-v1.4.0", "node/pulse-node-v1.4.0.json", "node/pulse-node-v1.4.0.sha256"]
    assert len(s3.list_object_versions(Bucket=BUCKET, Prefix="node/pulse-node-v1.4.0")["Versions"]) == 3


def test_a_sha256_without_its_binary_is_refused(s3, binary, capsys):
    s3.put_object(Bucket=BUCKET, Key="node/pulse-node-v1.4.0.sha256", Body=b"0" * 64 + b"  pulse-node-v1.4.0\n")
    rc, _, err = run(capsys, *args(binary))
    assert rc == 3 and "without its binary" in err
    assert keys(s3) == ["node/pulse-node-v1.4.0.sha256"]


def test_s3_refuses_the_overwrite_even_when_the_lookup_raced(s3, binary, capsys, monkeypatch):
    """The HEAD said 'absent' but another publisher won: the conditional write refuses."""
    assert run(capsys, *args(binary))[0] == 0
    monkeypatch.setattr(pp, "head", lambda *a: None)
    rc, _, err = run(capsys, *args(binary))
    assert rc == 3 and "conditional write" in err


def test_other_versions_and_prefixes_coexist(s3, binary, capsys):
    assert run(capsys, *args(binary, "v1.4.0"))[0] == 0
    assert run(capsys, *args(binary, "v1.4.1-rc.1"))[0] == 0
    assert run(capsys, *args(binary, "v1.4.0", "--prefix", "staging/"))[0] == 0
    assert "staging/pulse-node-v1.4.0.json" in keys(s3) and "node/pulse-node-v1.4.1-rc.1.json" in keys(s3)


def test_access_denied_names_the_permission(binary, capsys):
    from botocore.exceptions import ClientError

    class Denied:
        def head_object(self, **kw):
            raise ClientError({"Error": {"Code": "403"}, "ResponseMetadata": {"HTTPStatusCode": 403}}, "HeadObject")

        def put_object(self, **kw):
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "PutObject")

    rc = pp.main(args(binary), client_factory=lambda *a, **k: Denied())
    err = capsys.readouterr().err
    assert rc == 1 and "s3:PutObject" in err and "If-None-Match" in err


def test_missing_bucket_fails_clearly(binary, capsys):
    with mock_aws():
        rc, _, err = run(capsys, *args(binary))
    assert rc == 1 and "failed" in err and BUCKET in err


# --------------------------------------------------------------------------- the release record (SSM)


RECORD = "/pulse/test/releases/v1.4.0"


def ssm():
    return boto3.client("ssm", region_name=REGION)


def test_records_the_release_once_as_ssm_parameter_once_does(s3, binary, capsys):
    rc, out, err = run(capsys, *args(binary, "v1.4.0", "--record-parameter", RECORD))
    assert rc == 0, err
    value = ssm().get_parameter(Name=RECORD)["Parameter"]["Value"]
    head = s3.head_object(Bucket=BUCKET, Key="node/pulse-node-v1.4.0")
    digest = hashlib.sha256(binary.read_bytes()).hexdigest()
    # compact JSON with sorted keys: what pulse.infra.ssm_parameter_once writes and pulse_node_systemd reads
    assert value == json.dumps({"key": "node/pulse-node-v1.4.0", "release": "v1.4.0", "sha256": digest,
                                "version_id": head["VersionId"]}, sort_keys=True, separators=(",", ":"))
    assert "recorded the release" in out
    # published and recorded: a second publication is refused, the record unchanged
    rc, _, err = run(capsys, *args(binary, "v1.4.0", "--record-parameter", RECORD))
    assert rc == 3 and ssm().get_parameter(Name=RECORD)["Parameter"]["Version"] == 1


def test_a_missing_record_is_completed(s3, binary, capsys):
    assert run(capsys, *args(binary))[0] == 0  # published without a record
    rc, out, err = run(capsys, *args(binary, "v1.4.0", "--record-parameter", RECORD))
    assert rc == 0, err
    assert "not recorded: completing" in out
    assert json.loads(ssm().get_parameter(Name=RECORD)["Parameter"]["Value"])["release"] == "v1.4.0"


def test_a_different_record_is_refused(s3, binary, capsys):
    ssm().put_parameter(Name=RECORD, Value='{"release":"v1.4.0","sha256":"' + "0" * 64 + '"}', Type="String")
    rc, _, err = run(capsys, *args(binary, "v1.4.0", "--record-parameter", RECORD))
    assert rc == 3 and "written once" in err
    assert json.loads(ssm().get_parameter(Name=RECORD)["Parameter"]["Value"])["sha256"] == "0" * 64


def test_the_record_value_matches_ssm_parameter_once():
    if str(REPO / "collections") not in sys.path:
        sys.path.insert(0, str(REPO / "collections"))
    from ansible_collections.pulse.infra.plugins.modules import ssm_parameter_once

    value = {"key": "node/pulse-node-v1.4.0", "release": "v1.4.0", "sha256": "a" * 64, "version_id": "v1"}
    assert pp.record_value(value["key"], value["release"], value["sha256"], value["version_id"]) == \
        ssm_parameter_once.render(value)


# --------------------------------------------------------------------------- arguments


@pytest.mark.parametrize("bad, words", [
    (["--version", "1.4.0"], "not a release tag"),
    (["--version", "v1.4"], "not a release tag"),
    (["--prefix", "/node/"], "--prefix"),
    (["--prefix", "node"], "--prefix"),
    (["--commit", "abc"], "--commit"),
    (["--os-family", "ubuntu"], "invalid choice"),
    (["--meta", "sha256=x"], "--meta"),
    (["--meta", "novalue"], "--meta"),
    (["--record-parameter", "pulse/x"], "--record-parameter"),
])
def test_bad_arguments_exit_2(binary, capsys, bad, words):
    argv = args(binary)
    for i in range(0, len(bad), 2):
        if bad[i] in argv:
            argv[argv.index(bad[i]) + 1] = bad[i + 1]
        else:
            argv += bad[i:i + 2]
    with pytest.raises(SystemExit) as exc:
        pp.main(argv)
    assert exc.value.code == 2
    assert words in capsys.readouterr().err


def test_empty_or_missing_binary_is_refused(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    for path, words in ((empty, "is empty"), (tmp_path / "nope", "is not a file")):
        with pytest.raises(SystemExit):
            pp.main(args(path))
        assert words in capsys.readouterr().err


@pytest.mark.parametrize("version", ["v1.2.0", "v0.0.1", "v1.2.0-rc.1", "v1.2.0-alpha-1.0", "v10.20.30",
                                     "1.2.0", "v1.2", "v01.2.0", "v1.2.0-01", "v1.2.0+build", " v1.2.0", "V1.2.0"])
def test_release_tag_matches_the_collection_filter(version):
    """The script's own pattern accepts exactly the filter's release tags written with the v."""
    if str(REPO / "collections") not in sys.path:
        sys.path.insert(0, str(REPO / "collections"))
    from ansible_collections.pulse.infra.plugins.filter import release

    expected = release.is_release_tag(version) and version == version.strip() and version.startswith("v")
    assert bool(pp.RELEASE_TAG.match(version)) is expected


def test_runs_as_a_command_with_only_boto3(binary):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and "--os-family" in proc.stdout
    assert SCRIPT.stat().st_mode & 0o111, "bin/pulse-publish is executable"
    source = SCRIPT.read_text()
    assert "import ansible" not in source and "from ansible" not in source
