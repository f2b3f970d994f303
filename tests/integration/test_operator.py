"""What an operator types, caught before it bites: misspelt parameters refused with a
"did you mean", -e help, the one-line status, and lab/aws (never a real account); and the
commands the READMEs show work as written (tests/docs_commands.yml, entries `run` and `node`).

Needs the lab stack from test_site.py (3 nodes); changes nothing in it."""

import datetime
import os
import re
import subprocess

import pytest

from conftest import REPO, ansible_env, aws, get, run_playbook, wait_until
from docs_commands import registry

pytestmark = pytest.mark.lab

TYPOS = [
    ("deploy_node.yml", {"version": "v1.2.0", "pulse_rollout_serail": 2}, "'pulse_rollout_serail' (did you mean 'pulse_rollout_serial'?)"),
    ("deploy_node.yml", {"verison": "v1.2.0"}, "'verison' (did you mean 'version'?)"),
    ("playbooks/teardown.yml", {"confrim": "lab"}, "'confrim' (did you mean 'confirm'?)"),
    ("playbooks/restore.yml", {"verify_onyl": True}, "'verify_onyl' (did you mean 'verify_only'?)"),
    ("playbooks/restart.yml", {"dran": False}, "'dran' (did you mean 'drain'?)"),
    ("playbooks/backup.yml", {"backup_nwo": True}, "'backup_nwo' (did you mean 'backup_now'?)"),
    ("playbooks/build_node.yml", {"versoin": "v1.2.0"}, "'versoin' (did you mean 'version'?)"),
    ("site.yml", {"pulse_node_cuont": 4}, "'pulse_node_cuont' (did you mean 'pulse_node_count'?)"),
]


def instances():
    reservations = aws("ec2").describe_instances(Filters=[
        {"Name": "tag:Env", "Values": ["lab"]}, {"Name": "tag:Role", "Values": ["node"]},
        {"Name": "instance-state-name", "Values": ["running"]}])["Reservations"]
    return [i for r in reservations for i in r["Instances"]]


@pytest.mark.parametrize("playbook, extra, message", TYPOS, ids=[f"{p}:{m.split()[0]}" for p, _, m in TYPOS])
def test_a_misspelt_parameter_is_refused_before_anything_changes(lab, playbook, extra, message):
    result = run_playbook(playbook, extra_vars=extra)
    assert result.rc != 0
    assert message in result.output
    assert "Nothing was changed." in result.output
    assert result.changed == 0, result.changed_hosts()
    # the check is the first task: no other task ran
    assert len(re.findall(r"^TASK \[", result.output, re.M)) == 1, result.output[-3000:]


def test_help_shows_the_usage_and_the_parameters(lab):
    result = run_playbook("deploy_node.yml", extra_vars={"help": True})
    assert result.rc != 0 and "stopped at -e help, nothing was changed" in result.output
    for line in ("Usage: ansible-playbook deploy_node.yml -e version=v1.2.0", "version", "force", "pulse_rollout_serial"):
        assert line in result.output


def test_status_shows_one_line_per_node_with_what_the_nodes_say(lab):
    proc = subprocess.run(["make", "-s", "status"], cwd=REPO, env=ansible_env(), text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:]
    lines = {m.group(1): m.group(0) for m in re.finditer(r'"(pulse-lab-node-\d+)\s.*?"', proc.stdout)}
    nodes = instances()
    assert len(lines) == len(nodes) >= 3
    for node in nodes:
        tags = {t["Key"]: t["Value"] for t in node["Tags"]}
        line = lines[tags["Name"]]
        info = get(node["PrivateIpAddress"], "/info")
        assert node["InstanceId"] in line and node["Placement"]["AvailabilityZone"] in line
        assert node["PrivateIpAddress"] in line
        assert f"{tags.get('PulseRelease', '-')}/{info['version']}" in line
        height = int(re.search(r"height (\d+)", line).group(1))
        now = get(node["PrivateIpAddress"], "/chain")["height"]
        assert now - 200 <= height <= now, (height, now)  # read during the status run, a block every 2 s
        assert re.search(r"peers (\d+)", line).group(1) == str(len(nodes) - 1)
        assert "health 200" in line and "target healthy" in line
    assert "api:      https://api.lab.pulse.example.com" in proc.stdout
    assert "recorded in /pulse/lab/release" in proc.stdout
    assert "outside the plan: none" in proc.stdout


def test_lab_aws_talks_to_the_lab_and_refuses_without_it(lab):
    env = dict(os.environ, AWS_PROFILE="someone-real", AWS_ACCESS_KEY_ID="AKIAREALLOOKING")
    ok = subprocess.run([str(REPO / "lab/aws"), "s3", "ls"], env=env, text=True, capture_output=True, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "pulse-lab-artifacts-0001" in ok.stdout
    env["PULSE_LAB_MOTO_PORT"] = "5999"  # nothing listens there: as if the lab were down
    refused = subprocess.run([str(REPO / "lab/aws"), "s3", "ls"], env=env, text=True, capture_output=True, check=False)
    assert refused.returncode == 2 and refused.stdout == ""
    assert "refusing to run" in refused.stderr


DOC_RUNS = [e for e in registry() if "run" in e or "node" in e]


@pytest.fixture(scope="module")
def placeholders():
    """What the `run_as` forms of placeholder commands take: node 1's instance id, its newest
    backup, the dates around today. With no backup yet (this file run alone), one is taken first:
    the runbooks' commands read it."""
    node1 = next(i for i in instances() if {t["Key"]: t["Value"] for t in i["Tags"]}.get("Name") == "pulse-lab-node-1")

    def backups():
        listed = aws("s3").list_objects_v2(Bucket="pulse-lab-backups-0001", Prefix="backups/lab/pulse-lab-node-1/",
                                           Delimiter="/")
        return sorted(p["Prefix"].rstrip("/").rsplit("/", 1)[-1] for p in listed.get("CommonPrefixes", []))

    stamps = backups()
    if not stamps:
        taken = run_playbook("playbooks/backup.yml", extra_vars={"backup_now": True})
        assert taken.rc == 0, taken.output[-4000:]
        stamps = backups()
    today = datetime.datetime.now(datetime.timezone.utc).date()
    return {"{node1_id}": node1["InstanceId"], "{backup_timestamp}": stamps[-1] if stamps else "none",
            "{yesterday}": str(today - datetime.timedelta(days=1)), "{tomorrow}": str(today + datetime.timedelta(days=1))}


@pytest.mark.parametrize("entry", DOC_RUNS, ids=[e["command"][:70] for e in DOC_RUNS])
def test_a_command_the_docs_show_works_as_written(lab, placeholders, entry):
    command = entry.get("run_as", entry["command"])
    for token, value in placeholders.items():
        command = command.replace(token, value)
    if "node" in entry:  # on node 1 (the designated backup node), as the runbooks say
        proc = subprocess.run(["ansible", "pulse_node", "-l", "pulse-lab-node-1", "--become", "-a", command],
                              cwd=REPO, env=ansible_env(), text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=300, check=False)
        # (a `systemctl status` of a timer-driven oneshot exits 3 between runs: the text is what counts)
        assert "UNREACHABLE" not in proc.stdout and entry["node"] in proc.stdout, proc.stdout[-3000:]
    else:
        proc = subprocess.run(command, shell=True, executable="/bin/bash", cwd=REPO, env=ansible_env(), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=900, check=False)
        assert proc.returncode == 0 and entry["run"] in proc.stdout, proc.stdout[-3000:]
    # a command that restarts a node (the emergency one-liner) leaves it answering for the next
    for node in instances():
        wait_until(lambda ip=node["PrivateIpAddress"]: get(ip, "/health", timeout=2) is not None, timeout=60,
                   what=f"{node['PrivateIpAddress']} to answer /health")
