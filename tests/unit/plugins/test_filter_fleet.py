"""plugins/filter/fleet.py: kept_data_volumes (a replacement node takes its kept data volume)."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.pulse.infra.plugins.filter import fleet

ZONES = ["us-east-2a", "us-east-2b"]
PLAN = [
    {"name": "pulse-prod-node-1", "role": "node", "index": 1, "zone_index": 0, "data_volume": True},
    {"name": "pulse-prod-node-2", "role": "node", "index": 2, "zone_index": 1, "data_volume": True},
    {"name": "pulse-prod-builder-1", "role": "builder", "index": 1, "zone_index": 0, "data_volume": False},
]


def instance(name, state="running"):
    return {"instance_id": "i-" + name[-1], "state": {"name": state}, "tags": {"Name": name}}


def volume(vid, index, status="available", zone="us-east-2b", created="2026-11-01T00:00:00+00:00"):
    return {"id": vid, "status": status, "zone": zone, "size": 20, "create_time": created,
            "tags": {"Role": "node-data", "NodeIndex": str(index)}}


def test_a_missing_node_takes_its_kept_volume_in_the_volumes_zone():
    kept = fleet.kept_data_volumes(PLAN, [instance("pulse-prod-node-1")], [volume("vol-2", 2)], ZONES)
    assert kept == {"pulse-prod-node-2": {"volume_id": "vol-2", "zone": "us-east-2b", "zone_index": 1, "size": 20}}


def test_a_live_node_takes_nothing_even_with_a_kept_volume_of_its_index():
    instances = [instance("pulse-prod-node-1"), instance("pulse-prod-node-2", "stopped")]
    assert fleet.kept_data_volumes(PLAN, instances, [volume("vol-2", 2)], ZONES) == {}


def test_a_terminated_node_is_missing():
    instances = [instance("pulse-prod-node-1"), instance("pulse-prod-node-2", "terminated")]
    assert list(fleet.kept_data_volumes(PLAN, instances, [volume("vol-2", 2)], ZONES)) == ["pulse-prod-node-2"]


def test_attached_volumes_other_indexes_and_other_zones_are_not_taken():
    volumes = [volume("vol-a", 2, status="in-use"), volume("vol-b", 3), volume("vol-c", 2, zone="us-east-2c"),
               volume("vol-d", 1, zone="us-east-2a")]
    kept = fleet.kept_data_volumes(PLAN, [], volumes, ZONES)
    assert kept == {"pulse-prod-node-1": {"volume_id": "vol-d", "zone": "us-east-2a", "zone_index": 0, "size": 20}}


def test_the_newest_of_several_kept_volumes_is_taken():
    volumes = [volume("vol-old", 2, created="2026-01-01T00:00:00+00:00"),
               volume("vol-new", 2, created="2026-11-30T00:00:00+00:00", zone="us-east-2a")]
    kept = fleet.kept_data_volumes(PLAN, [instance("pulse-prod-node-1")], volumes, ZONES)
    assert kept["pulse-prod-node-2"]["volume_id"] == "vol-new"
    assert kept["pulse-prod-node-2"]["zone_index"] == 0


def test_builders_never_take_a_volume():
    assert fleet.kept_data_volumes(PLAN[2:], [], [volume("vol-1", 1, zone="us-east-2a")], ZONES) == {}


def test_boto3_tag_lists_are_read_too():
    vol = volume("vol-2", 2)
    vol["tags"] = [{"Key": "NodeIndex", "Value": "2"}]
    assert "pulse-prod-node-2" in fleet.kept_data_volumes(PLAN, [], [vol], ZONES)


@pytest.mark.parametrize("position", range(4))
def test_an_argument_that_is_not_a_list_is_refused(position):
    args = [PLAN, [], [], ZONES]
    args[position] = "oops"
    with pytest.raises(AnsibleFilterError, match="must be a list"):
        fleet.kept_data_volumes(*args)


def test_registered_under_its_name():
    assert fleet.FilterModule().filters() == {"planned_names": fleet.planned_names,
                                              "kept_data_volumes": fleet.kept_data_volumes,
                                              "data_snapshots": fleet.data_snapshots}


# --------------------------------------------------------------------------- data_snapshots


def snapshot(sid, node, started, state="completed"):
    return {"snapshot_id": sid, "state": state, "start_time": started, "volume_size": 20, "tags": {"Node": node}}


def test_a_missing_node_without_a_kept_volume_starts_from_its_newest_completed_snapshot():
    snaps = [snapshot("snap-old", "pulse-prod-node-2", "2026-11-01T03:00:00+00:00"),
             snapshot("snap-new", "pulse-prod-node-2", "2026-12-01T03:00:00+00:00"),
             snapshot("snap-pending", "pulse-prod-node-2", "2026-12-01T04:00:00+00:00", state="pending"),
             snapshot("snap-other", "pulse-prod-node-3", "2026-12-01T05:00:00+00:00")]
    got = fleet.data_snapshots(PLAN, [instance("pulse-prod-node-1")], {}, snaps)
    assert got == {"pulse-prod-node-2": {"snapshot_id": "snap-new", "start_time": "2026-12-01T03:00:00+00:00",
                                         "volume_size": 20}}


def test_a_kept_volume_or_a_live_instance_wins_over_a_snapshot():
    snaps = [snapshot("snap-1", "pulse-prod-node-1", "2026-12-01T03:00:00+00:00"),
             snapshot("snap-2", "pulse-prod-node-2", "2026-12-01T03:00:00+00:00")]
    kept = {"pulse-prod-node-2": {"volume_id": "vol-2"}}
    assert fleet.data_snapshots(PLAN, [instance("pulse-prod-node-1")], kept, snaps) == {}


def test_snapshot_arguments_are_checked():
    with pytest.raises(AnsibleFilterError, match="kept must be a dict"):
        fleet.data_snapshots(PLAN, [], [], [])
    with pytest.raises(AnsibleFilterError, match="snapshots must be a list"):
        fleet.data_snapshots(PLAN, [], {}, "x")


# ---------------------------------------------------------------- planned_names

def test_planned_names_are_the_nodes_then_the_builders():
    planned_names = fleet.planned_names
    assert planned_names("pulse-lab", 3, 1) == ["pulse-lab-node-1", "pulse-lab-node-2", "pulse-lab-node-3",
                                                 "pulse-lab-builder-1"]
    assert planned_names("pulse-lab", "2") == ["pulse-lab-node-1", "pulse-lab-node-2"]
    assert planned_names("p-e", 0, 0) == []


@pytest.mark.parametrize("args, said", [(("", 3), "prefix"), (("p", "three"), "node_count"), (("p", 3, -1), "builder_count")])
def test_planned_names_refuses_bad_input(args, said):
    with pytest.raises(AnsibleFilterError, match=said):
        fleet.planned_names(*args)
