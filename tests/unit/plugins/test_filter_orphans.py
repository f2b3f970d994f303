"""plugins/filter/orphans.py: old_backup_sets and orphan_report (playbooks/report.yml)."""

from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.pulse.infra.plugins.filter import orphans

REPO = Path(__file__).resolve().parents[3]

PRICES = yaml.safe_load((REPO / "playbooks/vars/prices.yml").read_text())["pulse_report_prices"]
NOW = "2026-12-01T12:00:00Z"
PLANNED = ["pulse-prod-node-1", "pulse-prod-node-2", "pulse-prod-builder-1"]


def instance(iid, name, state="running", kind="t3.small"):
    return {"instance_id": iid, "instance_type": kind, "state": {"name": state}, "tags": {"Name": name}}


def volume(vid, status, size=20, vtype="gp3", **tags):
    return {"id": vid, "size": size, "type": vtype, "status": status, "zone": "us-east-2b", "tags": tags}


# --------------------------------------------------------------------------- old_backup_sets


def test_old_backup_sets_groups_by_set_and_keeps_only_those_beyond_retention():
    keys = [
        "backups/prod/pulse-prod-node-1/20261001T030000Z/pulse-data.tar.gz",
        "backups/prod/pulse-prod-node-1/20261001T030000Z/manifest.json",
        "backups/prod/pulse-prod-node-2/20261120T030000Z/manifest.json",  # 11 days: kept
        "backups/prod/pulse-prod-node-2/20260901T030000Z/manifest.json",
        "backups/prod/README",  # not a backup
    ]
    sets = orphans.old_backup_sets(keys, 30, NOW)
    assert [s["prefix"] for s in sets] == ["backups/prod/pulse-prod-node-2/20260901T030000Z/",
                                          "backups/prod/pulse-prod-node-1/20261001T030000Z/"]
    assert sets[1]["node"] == "pulse-prod-node-1" and sets[1]["age_days"] == 61 and len(sets[1]["keys"]) == 2


def test_old_backup_sets_on_the_boundary_and_without_keys():
    assert orphans.old_backup_sets([], 7, NOW) == []
    # exactly 7 days old is not beyond a 7-day retention
    assert orphans.old_backup_sets(["b/e/n/20261124T120000Z/manifest.json"], 7, NOW) == []
    assert len(orphans.old_backup_sets(["b/e/n/20261124T115959Z/manifest.json"], 7, NOW)) == 1


@pytest.mark.parametrize("days", [0, -1, "x", None])
def test_old_backup_sets_refuses_a_bad_retention(days):
    with pytest.raises(AnsibleFilterError, match="retention_days"):
        orphans.old_backup_sets([], days, NOW)


def test_old_backup_sets_refuses_a_bad_time_and_a_non_list():
    with pytest.raises(AnsibleFilterError, match="ISO 8601"):
        orphans.old_backup_sets([], 7, "yesterday")
    with pytest.raises(AnsibleFilterError, match="list of S3 keys"):
        orphans.old_backup_sets("backups/", 7, NOW)


# --------------------------------------------------------------------------- orphan_report


def test_nothing_outside_the_plan_is_an_empty_report():
    report = orphans.orphan_report(
        [volume("vol-1", "in-use")], snapshots=[{"snapshot_id": "snap-1", "volume_size": 1,
                                                 "tags": {"SourceInstance": "arn:aws:ec2:r:1:instance/i-1"}}],
        instances=[instance("i-1", "pulse-prod-node-1")], planned=PLANNED, prices=PRICES)
    assert report["items"] == [] and report["total_monthly_usd"] == 0 and report["unpriced"] == 0
    assert report["prices_date"] == PRICES["date"] and report["currency"] == "USD"


def test_an_unattached_data_volume_is_named_as_the_kept_data_of_its_node():
    report = orphans.orphan_report([volume("vol-9", "available", size=20, Name="pulse-prod-node-2-data",
                                           Role="node-data")], planned=PLANNED, prices=PRICES)
    (item,) = report["items"]
    assert item["kind"] == "unattached volume" and item["id"] == "vol-9"
    assert "the kept data of pulse-prod-node-2" in item["detail"]
    assert item["monthly_usd"] == pytest.approx(20 * PRICES["ebs_gb_month"]["gp3"], abs=0.01)
    assert item["line"].startswith("unattached volume: vol-9 pulse-prod-node-2-data (") and "USD/month" in item["line"]


def test_instances_outside_the_plan_running_and_stopped():
    report = orphans.orphan_report([], instances=[
        instance("i-1", "pulse-prod-node-1"),
        instance("i-4", "pulse-prod-node-4"),
        instance("i-5", "pulse-prod-node-5", state="stopped"),
        instance("i-6", "pulse-prod-node-6", state="terminated"),
        instance("i-7", "pulse-prod-node-7", kind="x9.huge"),
    ], planned=PLANNED, prices=PRICES)
    rows = {i["id"]: i for i in report["items"]}
    assert set(rows) == {"i-4", "i-5", "i-7"}
    assert rows["i-4"]["monthly_usd"] == pytest.approx(PRICES["instance_hour"]["t3.small"] * 730, abs=0.01)
    assert rows["i-5"]["monthly_usd"] == 0 and "stopped" in rows["i-5"]["detail"]
    assert rows["i-7"]["monthly_usd"] is None and "no price" in rows["i-7"]["line"]
    assert report["unpriced"] == 1
    assert report["total_monthly_usd"] == rows["i-4"]["monthly_usd"]


def test_snapshots_of_gone_instances_are_orphans_and_those_of_live_ones_are_not():
    snaps = [
        {"snapshot_id": "snap-live", "volume_size": 20, "start_time": "2026-11-30T00:00:00",
         "tags": {"SourceInstance": "arn:aws:ec2:us-east-2:1:instance/i-1", "Node": "pulse-prod-node-1"}},
        {"snapshot_id": "snap-gone", "volume_size": 20, "start_time": "2026-10-01T00:00:00",
         "tags": {"SourceInstance": "arn:aws:ec2:us-east-2:1:instance/i-old", "Node": "pulse-prod-node-2"}},
        {"snapshot_id": "snap-untagged", "volume_size": 10, "tags": {}},
    ]
    report = orphans.orphan_report([], snapshots=snaps, instances=[instance("i-1", "pulse-prod-node-1")],
                                   planned=PLANNED, prices=PRICES)
    rows = {i["id"]: i for i in report["items"]}
    assert set(rows) == {"snap-gone", "snap-untagged"}
    assert rows["snap-gone"]["kind"] == "snapshot of a gone instance" and rows["snap-gone"]["name"] == "pulse-prod-node-2"
    assert rows["snap-untagged"]["kind"] == "snapshot of no known instance"
    assert rows["snap-gone"]["monthly_usd"] == pytest.approx(20 * PRICES["snapshot_gb_month"], abs=0.01)


def test_backups_beyond_retention_are_priced_from_their_sizes():
    sets = orphans.old_backup_sets(["backups/prod/pulse-prod-node-1/20261001T030000Z/manifest.json",
                                    "backups/prod/pulse-prod-node-2/20261002T030000Z/manifest.json"], 30, NOW)
    report = orphans.orphan_report([], backup_sets=sets, backup_sizes=[10 * 1024 ** 3, None], prices=PRICES)
    first, second = report["items"]
    assert first["kind"] == "backup beyond retention" and first["name"] == "pulse-prod-node-1"
    assert first["monthly_usd"] == pytest.approx(10 * PRICES["s3_gb_month"], abs=0.01)
    assert second["monthly_usd"] is None and "size unknown" in second["detail"]


def test_a_price_table_is_required():
    with pytest.raises(AnsibleFilterError, match="price table"):
        orphans.orphan_report([], prices={})


def test_the_price_table_carries_its_date_and_the_types_the_stack_launches():
    assert PRICES["date"] and PRICES["currency"] == "USD"
    defaults = yaml.safe_load((REPO / "roles/aws_stack/defaults/main.yml").read_text())
    for key in ("pulse_node_instance_type", "pulse_builder_instance_type"):
        assert defaults[key] in PRICES["instance_hour"], key
    assert "gp3" in PRICES["ebs_gb_month"]
