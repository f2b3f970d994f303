# Copyright: Pulse infrastructure team
# Apache License 2.0 (see galaxy.yml)
"""Which kept data volume each replacement node takes (roles/aws_stack/tasks/instances.yml).

The filter's ansible-doc documentation is in its sidecar file plugins/filter/kept_data_volumes.yml.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

_LIVE = ("pending", "running", "stopping", "stopped")


def _tags(resource):
    tags = resource.get("tags") or {}
    if isinstance(tags, list):  # boto3's [{Key, Value}] form
        tags = {t.get("Key"): t.get("Value") for t in tags}
    return tags


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


class FilterModule:
    """pulse.infra fleet filters."""

    def filters(self):
        return {"kept_data_volumes": kept_data_volumes}
