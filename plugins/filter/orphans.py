# Copyright: Pulse infrastructure team
# Apache License 2.0 (see galaxy.yml)
"""What an environment pays for and no longer uses (playbooks/report.yml).

The filters' ansible-doc documentation is in their sidecar files plugins/filter/orphan_report.yml
and plugins/filter/old_backup_sets.yml.
"""

from __future__ import annotations

import datetime
import re

from ansible.errors import AnsibleFilterError

# backups/<env>/<node>/<stamp>/... as roles/backup_cron/files/pulse_backup.py writes them
_STAMP = re.compile(r"^(?P<prefix>.*?(?P<node>[^/]+)/(?P<stamp>[0-9]{8}T[0-9]{6}Z)/)[^/]+$")
_STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_GIB = 1024 ** 3
_LIVE = ("pending", "running", "stopping", "stopped")


def _now(now):
    if now in (None, ""):
        return datetime.datetime.now(datetime.timezone.utc)
    if isinstance(now, datetime.datetime):
        return now if now.tzinfo else now.replace(tzinfo=datetime.timezone.utc)
    try:
        return datetime.datetime.fromisoformat(str(now).replace("Z", "+00:00")).astimezone(datetime.timezone.utc)
    except ValueError as e:
        raise AnsibleFilterError(f"now must be an ISO 8601 time, got {now!r}") from e


def _days(value):
    try:
        days = int(value)
    except (TypeError, ValueError) as e:
        raise AnsibleFilterError(f"retention_days must be a whole number of days, got {value!r}") from e
    if days < 1:
        raise AnsibleFilterError(f"retention_days must be at least 1, got {days}")
    return days


def old_backup_sets(keys, retention_days, now=None):
    """Backup sets (one prefix per backup) older than retention_days, oldest first."""
    if not isinstance(keys, (list, tuple)):
        raise AnsibleFilterError(f"old_backup_sets expects a list of S3 keys, got {type(keys).__name__}")
    days, at = _days(retention_days), _now(now)
    sets = {}
    for key in keys:
        match = _STAMP.match(str(key))
        if not match:
            continue
        stamp = datetime.datetime.strptime(match["stamp"], _STAMP_FORMAT).replace(tzinfo=datetime.timezone.utc)
        age = (at - stamp).total_seconds() / 86400
        if age > days:
            entry = sets.setdefault(match["prefix"], {"prefix": match["prefix"], "node": match["node"],
                                                      "stamp": match["stamp"], "age_days": int(age), "keys": []})
            entry["keys"].append(str(key))
    return sorted(sets.values(), key=lambda s: (s["stamp"], s["prefix"]))


def _tags(resource):
    tags = resource.get("tags") or {}
    if isinstance(tags, list):  # boto3's [{"Key", "Value"}] form
        tags = {t.get("Key"): t.get("Value") for t in tags}
    return tags


def _price(table, *path):
    value = table
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return float(value)


def _money(amount):
    return None if amount is None else round(amount, 2)


def orphan_report(volumes, snapshots=None, instances=None, backup_sets=None, backup_sizes=None, planned=None,
                  prices=None):
    """Rows of what costs money outside the plan, with a monthly estimate (see orphan_report.yml)."""
    prices = prices or {}
    if not isinstance(prices, dict) or "hours_per_month" not in prices:
        raise AnsibleFilterError("orphan_report needs a price table (prices) with hours_per_month; "
                                 "see playbooks/vars/prices.yml")
    hours = float(prices["hours_per_month"])
    planned = set(planned or [])
    items = []

    live = [i for i in instances or [] if (i.get("state") or {}).get("name") in _LIVE]
    live_ids = {i.get("instance_id") for i in live}

    for inst in sorted(live, key=lambda i: _tags(i).get("Name", "")):
        name = _tags(inst).get("Name", inst.get("instance_id", "?"))
        if name in planned:
            continue
        state, kind = inst["state"]["name"], inst.get("instance_type", "?")
        hourly = _price(prices, "instance_hour", kind)
        if state == "stopped":
            cost, detail = 0.0, f"{kind}, stopped (no compute charge; its volumes are charged)"
        else:
            cost = None if hourly is None else hourly * hours
            detail = f"{kind}, {state}" + ("" if hourly is not None else " (no price for this type in the table)")
        items.append({"kind": "instance outside the plan", "id": inst.get("instance_id"), "name": name,
                      "detail": detail, "monthly_usd": _money(cost)})

    for vol in sorted(volumes or [], key=lambda v: (_tags(v).get("Name", ""), v.get("id", ""))):
        if vol.get("status") != "available":
            continue
        size = int(vol.get("size") or 0)
        vtype = vol.get("type") or vol.get("volume_type") or "gp3"
        per_gb = _price(prices, "ebs_gb_month", vtype)
        tags = _tags(vol)
        role = tags.get("Role", "")
        detail = f"{size} GiB {vtype}, unattached, {vol.get('zone', '?')}"
        if role.endswith("-data"):
            detail += f"; the kept data of {tags.get('Name', '?')[:-len('-data')] or '?'}"
        items.append({"kind": "unattached volume", "id": vol.get("id"), "name": tags.get("Name", ""),
                      "detail": detail, "monthly_usd": _money(None if per_gb is None else per_gb * size)})

    per_gb_snap = _price(prices, "snapshot_gb_month")
    for snap in sorted(snapshots or [], key=lambda s: (s.get("start_time") or "", s.get("snapshot_id", ""))):
        source = _tags(snap).get("SourceInstance", "")
        source_id = source.rsplit("/", 1)[-1] if source else ""
        if source_id and source_id in live_ids:
            continue
        size = int(snap.get("volume_size") or 0)
        start = str(snap.get("start_time") or "?")[:10]
        items.append({
            "kind": "snapshot of a gone instance" if source_id else "snapshot of no known instance",
            "id": snap.get("snapshot_id"), "name": _tags(snap).get("Node", _tags(snap).get("Name", "")),
            "detail": f"{size} GiB volume, taken {start}, source {source_id or 'not tagged'} (estimate: full size)",
            "monthly_usd": _money(None if per_gb_snap is None else per_gb_snap * size)})

    per_gb_s3 = _price(prices, "s3_gb_month")
    sizes = list(backup_sizes or [])
    for index, backup in enumerate(backup_sets or []):
        size = sizes[index] if index < len(sizes) else backup.get("size_bytes")
        cost = None if size is None or per_gb_s3 is None else per_gb_s3 * int(size) / _GIB
        items.append({"kind": "backup beyond retention", "id": backup.get("prefix"), "name": backup.get("node", ""),
                      "detail": f"{backup.get('age_days', '?')} days old, "
                                f"{'%.1f MiB' % (int(size) / 1024 ** 2) if size is not None else 'size unknown'}",
                      "monthly_usd": _money(cost)})

    currency = str(prices.get("currency", "USD"))
    for item in items:
        cost = "no price" if item["monthly_usd"] is None else f"{item['monthly_usd']:.2f} {currency}/month"
        item["line"] = f"{item['kind']}: {item['id']} {item['name'] or '-'} ({item['detail']}): {cost}"
    priced = [i["monthly_usd"] for i in items if i["monthly_usd"] is not None]
    return {
        "items": items,
        "total_monthly_usd": _money(sum(priced)),
        "unpriced": len(items) - len(priced),
        "prices_date": str(prices.get("date", "?")),
        "currency": currency,
    }


class FilterModule:
    """pulse.infra orphan report filters."""

    def filters(self):
        return {"orphan_report": orphan_report, "old_backup_sets": old_backup_sets}
