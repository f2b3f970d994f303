"""site.yml end to end in the lab: provisioned instances, the built release, peered nodes.

The second site.yml of the run, which must change nothing, is in test_deploy.py: it runs
right after a deploy, so it checks idempotence and that a converge keeps the deployed
release in one run (each site.yml costs about 4 minutes in the lab)."""

import json
import subprocess
import time

import pytest

from conftest import REPO, VENV_BIN, ansible_env, aws, docker, get, run_playbook, wait_until

pytestmark = pytest.mark.lab

TIMINGS = {}


def lab_nodes():
    reservations = aws("ec2").describe_instances(Filters=[
        {"Name": "tag:Project", "Values": ["pulse"]},
        {"Name": "tag:Env", "Values": ["lab"]},
        {"Name": "tag:Role", "Values": ["node"]},
        {"Name": "instance-state-name", "Values": ["running"]},
    ])["Reservations"]
    nodes = [i for r in reservations for i in r["Instances"]]
    return sorted(nodes, key=lambda i: int({t["Key"]: t["Value"] for t in i["Tags"]}.get("NodeIndex", 0)))
@pytest.fixture(scope="module")
def site(lab):
    start = time.time()
    first = run_playbook("site.yml")
    TIMINGS["first"] = time.time() - start
    assert first.rc == 0, first.output[-6000:]
    print(f"\nsite.yml wall time: first run {TIMINGS['first']:.0f} s")
    return first


def test_every_node_answers_health_with_the_deployed_version(site):
    nodes = lab_nodes()
    assert len(nodes) == 3
    for node in nodes:
        assert get(node["PrivateIpAddress"], "/health") == "Pulse node is alive"
        assert get(node["PrivateIpAddress"], "/info")["version"] == "1.2.0"


def test_each_node_is_peered_with_the_other_two(site):
    nodes = lab_nodes()
    ids = {n["PrivateIpAddress"]: get(n["PrivateIpAddress"], "/info")["peer_id"] for n in nodes}
    for ip in ids:
        others = {pid for other, pid in ids.items() if other != ip}
        wait_until(lambda: others <= {p if isinstance(p, str) else p.get("peer_id") for p in
                                      get(ip, "/peers")["connected_peers"]},
                   timeout=60, what=f"{ip} to list its two peers")


def test_chains_agree(site):
    nodes = lab_nodes()

    def agree():
        chains = [get(n["PrivateIpAddress"], "/chain") for n in nodes]
        heights = {c["height"] for c in chains}
        hashes = {c["latest_hash"] for c in chains}
        return chains if len(hashes) == 1 and min(heights) > 0 else None

    wait_until(agree, timeout=90, interval=0.5, what="the three nodes to agree on height and hash")


def test_every_node_persists_on_its_own_data_volume(site):
    """/opt/pulse/data is a mount of the instance's own EBS data volume (found by its Nitro
    by-id link; mount may name the device nvme1n1 or its lab loop name: same device)."""
    for node in lab_nodes():
        iid = node["InstanceId"]
        (volume,) = [m["Ebs"]["VolumeId"] for m in node["BlockDeviceMappings"] if m["DeviceName"] == "/dev/sdf"]
        link = f"/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_{volume.replace('-', '')}"
        source = docker("exec", iid, "findmnt", "-n", "-o", "SOURCE", "/opt/pulse/data").stdout.strip()
        assert source.startswith("/dev/"), f"{iid}: /opt/pulse/data is not a mount ({source!r})"
        devices = docker("exec", iid, "stat", "-L", "-c", "%t:%T", source, link).stdout.split()
        assert len(devices) == 2 and devices[0] == devices[1], f"{iid}: {source} is not {link}"


def test_restarting_a_node_keeps_its_height(site):
    node = lab_nodes()[0]
    ip, iid = node["PrivateIpAddress"], node["InstanceId"]
    before = get(ip, "/chain")["height"]
    docker("restart", iid)
    after = wait_until(lambda: get(ip, "/chain", timeout=2)["height"], timeout=120,
                       what="the restarted node to answer")
    assert after >= before


def test_the_first_run_prints_no_warning(site):
    """Only the deprecations of code we do not own (conftest.KNOWN_DEPRECATIONS), which
    ansible.cfg hides from operators."""
    assert site.unexpected_warnings() == []


def test_every_nodes_metrics_are_readable_back_from_cloudwatch(site):
    """The collector on each node publishes to the lab's moto every minute (namespace Pulse)."""
    nodes = {n["InstanceId"]: n for n in lab_nodes()}
    cloudwatch = aws("cloudwatch")

    def published():
        metrics = cloudwatch.list_metrics(Namespace="Pulse", MetricName="ChainHeight",
                                          Dimensions=[{"Name": "Environment", "Value": "lab"}])["Metrics"]
        seen = {d["Value"] for m in metrics for d in m["Dimensions"] if d["Name"] == "InstanceId"}
        return seen >= set(nodes) and seen

    wait_until(published, timeout=150, interval=5, what="ChainHeight of every node in CloudWatch")
    for iid, node in nodes.items():
        stats = cloudwatch.get_metric_statistics(
            Namespace="Pulse", MetricName="Up", Statistics=["Maximum"], Period=60,
            Dimensions=[{"Name": "Environment", "Value": "lab"}, {"Name": "InstanceId", "Value": iid}],
            StartTime=time.time() - 3600, EndTime=time.time() + 60,
        )["Datapoints"]
        assert stats and max(p["Maximum"] for p in stats) == 1.0, f"{iid}: no Up=1 published"


def lab_instances():
    reservations = aws("ec2").describe_instances(Filters=[
        {"Name": "tag:Project", "Values": ["pulse"]}, {"Name": "tag:Env", "Values": ["lab"]},
        {"Name": "instance-state-name", "Values": ["running"]},
    ])["Reservations"]
    return [i for r in reservations for i in r["Instances"]]


def test_the_inventory_reaches_every_instance_over_ssh_as_the_ami_user(site):
    """The same door as production's direct one: no container connection, the AMI's user,
    its private address, the lab's known_hosts; the instance was launched with the key pair."""
    proc = subprocess.run([str(VENV_BIN / "ansible-inventory"), "--list"], cwd=REPO, env=ansible_env(),
                          text=True, capture_output=True, check=True)
    hostvars = json.loads(proc.stdout)["_meta"]["hostvars"]
    instances = lab_instances()
    assert {{t["Key"]: t["Value"] for t in i["Tags"]}["Name"] for i in instances} <= set(hostvars)
    for inst in instances:
        name = {t["Key"]: t["Value"] for t in inst["Tags"]}["Name"]
        hv = hostvars[name]
        user = hv["ansible_user"]  # ansible-inventory --list shows composed values as {"__ansible_unsafe": ...}
        assert (user.get("__ansible_unsafe") if isinstance(user, dict) else user) == "admin", name
        assert "ansible_connection" not in hv, name
        assert inst["KeyName"] == "pulse-lab", name
    key = aws("ec2").describe_key_pairs(KeyNames=["pulse-lab"], IncludePublicKey=True)["KeyPairs"][0]
    assert key["PublicKey"].split()[:2] == (REPO / ".lab/ssh/id_ed25519.pub").read_text().split()[:2]


def test_no_task_connected_as_root_and_root_came_only_through_sudo(site):
    """sshd's journal on every instance: logins as admin with the key, none as root; sudo's
    journal: the escalations (become) came from admin."""
    for inst in lab_instances():
        iid = inst["InstanceId"]
        ssh_log = docker("exec", iid, "journalctl", "--no-pager", "-o", "cat", "_COMM=sshd").stdout
        assert "Accepted publickey for admin" in ssh_log, f"{iid}: no SSH login as admin"
        assert "for root" not in ssh_log, f"{iid}: an SSH login as root"
        sudo_log = docker("exec", iid, "journalctl", "--no-pager", "-o", "cat", "_COMM=sudo").stdout
        assert "admin : " in sudo_log and "COMMAND=" in sudo_log, f"{iid}: no become through sudo"
    # the build runs unprivileged on the builder
    builders = [i for i in lab_instances() if {t["Key"]: t["Value"] for t in i["Tags"]}["Role"] == "builder"]
    for inst in builders:
        owner = docker("exec", inst["InstanceId"], "stat", "-c", "%U", "/var/lib/pulse-build/src").stdout.strip()
        assert owner == "pulse-build"
