"""What an operator types, caught before it bites: misspelt parameters refused with a
"did you mean", -e help, the one-line status, and lab/aws (never a real account).

Needs the lab stack from test_site.py (3 nodes); changes nothing in it."""

import os
import re
import subprocess

import pytest

from conftest import REPO, ansible_env, aws, get, run_playbook

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
