"""Shared test helpers: run playbooks against the lab, talk to moto, read the recap."""

import json
import os
import time
import urllib.request
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
MOTO = "http://127.0.0.1:5000"
REGION = "us-east-2"

RECAP_RE = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)\s+skipped=(?P<skipped>\d+)\s+rescued=(?P<rescued>\d+)\s+ignored=(?P<ignored>\d+)",
    re.M,
)


class PlaybookResult:
    def __init__(self, proc):
        self.rc = proc.returncode
        self.output = proc.stdout
        self.recap = {
            m["host"]: {k: int(v) for k, v in m.groupdict().items() if k != "host"}
            for m in RECAP_RE.finditer(proc.stdout)
        }

    @property
    def changed(self):
        return sum(h["changed"] for h in self.recap.values())

    def changed_hosts(self):
        return {h: r["changed"] for h, r in self.recap.items() if r["changed"]}

    def unexpected_warnings(self):
        """The [WARNING] and [DEPRECATION WARNING] lines that are not KNOWN_DEPRECATIONS."""
        return [line for line in self.output.splitlines()
                if line.startswith(("[WARNING]", "[DEPRECATION WARNING]"))
                and not any(known in line for known in KNOWN_DEPRECATIONS)]

    def __repr__(self):
        return f"PlaybookResult(rc={self.rc}, recap={self.recap})"


# The deprecations a normal run still triggers, none in this collection's own code. ansible.cfg
# hides deprecations from operators (deprecation_warnings = False: they cannot act on these);
# the tests show them (ansible_env) and fail on any line not listed here.
KNOWN_DEPRECATIONS = {
    # ansible-core's hint that comes with any deprecation.
    "Deprecation warnings can be disabled by setting": "ansible-core",
    # amazon.aws 10.1.2's inventory plugin (fixed upstream: amazon.aws PR #2864, not in the
    # `ansible` 12.3.0 bundle).
    "Passing `disable_lookups` to `template` is deprecated": "amazon.aws aws_ec2 inventory",
    # amazon.aws iam_role says it on every call, whatever the arguments.
    "iam_role.assume_role_policy_document_raw will no longer be returned": "amazon.aws iam_role",
    # ansible.posix 2.1.0's mount module.
    "Passing `warnings` to `exit_json` or `fail_json` is deprecated": "ansible.posix mount",
    # Our choice: the controller plays run with Mitogen (plugins/strategy/controller.py, README
    # "Speed of a converge"); PULSE_MITOGEN=0 or no Mitogen gives plain linear and no warning.
    "Use of strategy plugins not included in ansible.builtin are deprecated": "pulse.infra.controller",
}


def ansible_env(**extra):
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_INJECT_FACT_VARS="False",
        ANSIBLE_DEPRECATION_WARNINGS="True",  # see KNOWN_DEPRECATIONS
        PATH=f"{VENV_BIN}:{env.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def run_playbook(playbook, *args, extra_vars=None, check=False, env=None, timeout=1800):
    """Run ansible-playbook from the repository root; returns a PlaybookResult."""
    cmd = [str(VENV_BIN / "ansible-playbook"), str(playbook), *args]
    for key, value in (extra_vars or {}).items():
        cmd += ["-e", json.dumps({key: value})]
    if check:
        cmd += ["--check", "--diff"]
    proc = subprocess.run(
        cmd, cwd=REPO, env=ansible_env(**(env or {})), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout, check=False,
    )
    result = PlaybookResult(proc)
    sys.stdout.write(f"\n$ {' '.join(cmd)}\n{proc.stdout[-20000:]}\n")
    return result


def readme_cell(value):
    """A default as the roles' README tables show it: `true`, `""`, `8080`, `/opt/pulse`, and a
    list, dict or null as JSON: `["/"]`."""
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if value == "":
        return '`""`'
    if value is None or isinstance(value, (list, dict)):
        return f"`{json.dumps(value)}`"
    return f"`{value}`"


def markdown_section(text, title):
    """The body of the section '## title' of a markdown text (up to the next '## ')."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"no '## {title}' section"
    return match.group(1)


def markdown_table_rows(text):
    """The rows of the markdown tables in text, but the first (the header): lists of cells, `\\|` unescaped."""
    rows = []
    for line in text.splitlines():
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        rows.append([c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
    return rows[1:]


def load_lab_module(path, name):
    """A fresh copy of a lab/ module (e.g. lab/moto_server.py) under its own name, so that a test's
    patches never leak into another's import of it."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_in_lab_image(image, built_when, folder, mount_point, files, script):
    """Write files (name -> text) to folder, then run script (sh -c) in an image the lab builds on
    its own (lab/alb, lab/cdn), with no network and folder mounted at mount_point, and assert it
    succeeds. Skipped while the image is not built (built_when: when the lab builds it)."""
    for name, text in files.items():
        (folder / name).write_text(text)
    if subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False).returncode != 0:
        pytest.skip(f"{image} not built (the lab builds it {built_when})")
    proc = subprocess.run(["docker", "run", "--rm", "--network", "none", "-v", f"{folder}:{mount_point}", image,
                           "sh", "-c", script], capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def self_signed(key, cert):
    """A shell command that makes a throwaway self-signed certificate (EC P-256) and its key."""
    return ("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=t -days 1 "
            f"-keyout {key} -out {cert} 2>/dev/null")


def labctl(*args, check=True):
    proc = subprocess.run(
        [sys.executable, str(REPO / "lab" / "labctl.py"), *args], cwd=REPO,
        text=True, capture_output=True, check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"labctl {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def aws(service):
    import boto3

    return boto3.client(
        service, region_name=REGION, endpoint_url=MOTO,
        aws_access_key_id="lab-not-a-secret", aws_secret_access_key="lab-not-a-secret",
    )


def tag(resource, key):
    """One tag of an EC2 resource as boto3 describes it ('' when missing)."""
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}.get(key, "")


def lab_nodes(states=("pending", "running", "stopping", "stopped")):
    """The lab environment's node instances in these states, by NodeIndex."""
    reservations = aws("ec2").describe_instances(Filters=[
        {"Name": "tag:Project", "Values": ["pulse"]}, {"Name": "tag:Env", "Values": ["lab"]},
        {"Name": "tag:Role", "Values": ["node"]}, {"Name": "instance-state-name", "Values": list(states)},
    ])["Reservations"]
    return sorted((i for r in reservations for i in r["Instances"]), key=lambda i: int(tag(i, "NodeIndex")))


def docker(*args, check=True):
    proc = subprocess.run(["docker", *args], text=True, capture_output=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def lab():
    """The lab is up (moto + instance backer). Tests share one moto."""
    labctl("up")
    return {"moto": MOTO, "region": REGION}


@pytest.fixture
def playbook():
    return run_playbook



def get(ip, path, timeout=5):
    """Ask a lab node (a container on a lab network) directly; returns the answer's data."""
    with urllib.request.urlopen(f"http://{ip}:8080{path}", timeout=timeout) as resp:
        body = json.loads(resp.read())
    assert body["success"] is True, body
    return body["data"]


def wait_until(predicate, timeout, interval=1.0, what=""):
    """Poll predicate until it returns something truthy; a refused connection (a node
    restarting) counts as not yet."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except OSError as exc:
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last}")


# ------------------------------------------------------------------ module unit tests (moto in-process)

def fake_aws_credentials(monkeypatch, region):
    """moto's in-process AWS: dummy keys, no profile of the calling shell."""
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)


def run_module_main(module, capsys, region, **args):
    """Run a module's main() with args; returns (exit code, result dict)."""
    from ansible.module_utils.testing import patch_module_args

    args.setdefault("region", region)
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exc:
            module.main()
    return exc.value.code, json.loads(capsys.readouterr().out)


def moto_module_harness(module, service, region):
    """What the unit tests of an AWS module on moto in-process share, bound to the module:
        aws_env, run_module, client = moto_module_harness(module, "acm", REGION)
    aws_env: an autouse fixture (fake_aws_credentials in region), kept as a name of the test file
    for pytest to find; run_module(capsys, **args): run_module_main, (exit code, result);
    client(): a boto3 client of service in region."""

    @pytest.fixture(autouse=True, name="aws_env")
    def aws_env(monkeypatch):
        fake_aws_credentials(monkeypatch, region)

    def run_module(capsys, **args):
        return run_module_main(module, capsys, region, **args)

    def client():
        import boto3

        return boto3.client(service, region_name=region)

    return aws_env, run_module, client


def answer_after_errors(client, operation, codes, answer, params, call):
    """What call() returns when the client's operation first fails once with each error code of
    codes (HTTP 400), then answers answer to params (botocore's Stubber): a call retried with
    backoff gets the answer, and every stubbed reply was used."""
    from botocore.stub import Stubber

    with Stubber(client) as stub:
        for code in codes:
            stub.add_client_error(operation, service_error_code=code, http_status_code=400)
        stub.add_response(operation, answer, params)
        result = call()
        stub.assert_no_pending_responses()
    return result


def error_at_once(client, operation, code, call, status=400):
    """The ClientError call() raises when the client's operation fails once with code: a call
    that is not retried raises it at once (a retried one would find no stubbed reply left)."""
    from botocore.exceptions import ClientError
    from botocore.stub import Stubber

    with Stubber(client) as stub:
        stub.add_client_error(operation, service_error_code=code, http_status_code=status)
        with pytest.raises(ClientError) as exc:
            call()
    return exc.value
