# Copyright: Pulse infrastructure team
# Apache License 2.0 (see galaxy.yml)
"""The environment's fleet: the names of the plan (playbooks/status.yml, playbooks/report.yml), and
what a replacement node starts from (roles/aws_stack/tasks/instances.yml): its kept data volume,
or else the newest snapshot of it.

The filters' ansible-doc documentation is in their sidecar files plugins/filter/planned_names.yml,
plugins/filter/kept_data_volumes.yml and plugins/filter/data_snapshots.yml.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

_LIVE = ("pending", "running", "stopping", "stopped")


def _tags(resource):
    tags = resource.get("tags") or {}
    if isinstance(tags, list):  # boto3's [{Key, Value}] form
        tags = {t.get("Key"): t.get("Value") for t in tags}
    return tags


def planned_names(prefix, node_count, builder_count=0):
    """<prefix>-node-1..N, then <prefix>-builder-1..M: the instances the plan names."""
    if not isinstance(prefix, str) or not prefix:
        raise AnsibleFilterError(f"planned_names: the prefix must be a non-empty string, got {prefix!r}")
    counts = []
    for what, value in (("node_count", node_count), ("builder_count", builder_count)):
        try:
            count = int(value)
        except (TypeError, ValueError):
            raise AnsibleFilterError(f"planned_names: {what} must be a whole number, got {value!r}") from None
        if count < 0:
            raise AnsibleFilterError(f"planned_names: {what} must not be negative, got {count}")
        counts.append(count)
    return ([f"{prefix}-node-{i}" for i in range(1, counts[0] + 1)]
            + [f"{prefix}-builder-{i}" for i in range(1, counts[1] + 1)])


def kept_data_volumes(plan, instances, volumes, zones):
    """For each planned node that has no live instance: the newest available volume tagged with
    its NodeIndex in one of the zones, as {name: {volume_id, zone, zone_index, size}}."""
    for label, value in (("plan", plan), ("instances", instances), ("volumes", volumes), ("zones", zones)):
        if not isinstance(value, (list, tuple)):
            raise AnsibleFilterError(f"kept_data_volumes: {label} must be a list, got {type(value).__name__}")
    live = {_tags(i).get("Name") for i in instances if (i.get("state") or {}).get("name") in _LIVE}
    zones = list(zones)
    out = {}
    for planned in plan:
        if not planned.get("data_volume") or planned.get("name") in live:
            continue
        candidates = [v for v in volumes
                      if v.get("status") == "available"
                      and str(_tags(v).get("NodeIndex", "")) == str(planned.get("index"))
                      and v.get("zone") in zones]
        if not candidates:
            continue
        newest = max(candidates, key=lambda v: (str(v.get("create_time", "")), str(v.get("id", ""))))
        out[planned["name"]] = {"volume_id": newest["id"], "zone": newest["zone"],
                                "zone_index": zones.index(newest["zone"]), "size": newest.get("size")}
    return out


def data_snapshots(plan, instances, kept, snapshots):
    """For each planned node that has no live instance and no kept volume (kept: what
    kept_data_volumes returned): its newest completed snapshot tagged Node=<name>, as
    {name: {snapshot_id, start_time, volume_size}}."""
    for label, value in (("plan", plan), ("instances", instances), ("snapshots", snapshots)):
        if not isinstance(value, (list, tuple)):
            raise AnsibleFilterError(f"data_snapshots: {label} must be a list, got {type(value).__name__}")
    if not isinstance(kept, dict):
        raise AnsibleFilterError(f"data_snapshots: kept must be a dict, got {type(kept).__name__}")
    live = {_tags(i).get("Name") for i in instances if (i.get("state") or {}).get("name") in _LIVE}
    out = {}
    for planned in plan:
        name = planned.get("name")
        if not planned.get("data_volume") or name in live or name in kept:
            continue
        candidates = [snap for snap in snapshots
                      if snap.get("state") == "completed" and _tags(snap).get("Node") == name]
        if not candidates:
            continue
        newest = max(candidates, key=lambda snap: (str(snap.get("start_time", "")), str(snap.get("snapshot_id", ""))))
        out[name] = {"snapshot_id": newest["snapshot_id"], "start_time": str(newest.get("start_time", "")),
                     "volume_size": newest.get("volume_size")}
    return out


class FilterModule:
    """pulse.infra fleet filters."""

    def filters(self):
        return {"planned_names": planned_names, "kept_data_volumes": kept_data_volumes,
                "data_snapshots": data_snapshots}
