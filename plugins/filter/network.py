# Copyright: Pulse infrastructure team
# Apache License 2.0 (see galaxy.yml)
"""Network and DNS checks for preflight assertions, on Python's ipaddress only.

ansible.utils' ipaddr filters need the netaddr library, which the controller does not
have; these filters cover what the pulse.infra roles validate before any API call.
"""

from __future__ import annotations

import ipaddress
import re

from ansible.errors import AnsibleFilterError

# RFC 1123 label: letters, digits, hyphens; no leading/trailing hyphen; 1-63 characters.
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$", re.IGNORECASE)


def _network(value, version=None):
    """The ip_network for value (strict: host bits must be zero), or None."""
    if not isinstance(value, str) or "/" not in value:
        return None
    try:
        net = ipaddress.ip_network(value.strip(), strict=True)
    except ValueError:
        return None
    if version is not None and net.version != int(version):
        return None
    return net


def cidr_valid(value, version=None):
    """True when value is a network in CIDR notation (e.g. 10.0.0.0/16) with no host bits set.

    version: 4 or 6 to accept only that family; None accepts both.
    """
    return _network(value, version) is not None


def cidr_invalid(values, version=None):
    """The entries of a list that are not valid CIDR networks (empty list: all valid)."""
    if not isinstance(values, (list, tuple)):
        return [values]
    return [v for v in values if not cidr_valid(v, version)]


def cidr_within(value, supernet):
    """True when the network value lies entirely inside supernet (both valid, same family)."""
    inner, outer = _network(value), _network(supernet)
    if inner is None or outer is None or inner.version != outer.version:
        return False
    return inner.subnet_of(outer)


def cidr_outside(values, supernet):
    """The entries of a list that do not lie inside supernet (empty list: all inside)."""
    if not isinstance(values, (list, tuple)):
        return [values]
    return [v for v in values if not cidr_within(v, supernet)]


def cidr_family(values, version):
    """The valid networks of one IP version in a list (e.g. split security group sources)."""
    if not isinstance(values, (list, tuple)):
        raise AnsibleFilterError(f"cidr_family expects a list of CIDRs, got {type(values).__name__}")
    return [v for v in values if cidr_valid(v, version)]


def cidr_overlaps(values):
    """Pairs of overlapping networks in values, as "a overlaps b" strings (empty: none overlap).

    Invalid entries are ignored here: check them with cidr_invalid first.
    """
    if not isinstance(values, (list, tuple)):
        raise AnsibleFilterError(f"cidr_overlaps expects a list of CIDRs, got {type(values).__name__}")
    nets = [(v, _network(v)) for v in values]
    nets = [(v, n) for v, n in nets if n is not None]
    found = []
    for i, (a, net_a) in enumerate(nets):
        for b, net_b in nets[i + 1:]:
            if net_a.version == net_b.version and net_a.overlaps(net_b):
                found.append(f"{a} overlaps {b}")
    return found


def cidr_prefix(value):
    """The prefix length of a CIDR network (raises on invalid input)."""
    net = _network(value)
    if net is None:
        raise AnsibleFilterError(f"cidr_prefix: {value!r} is not a CIDR network")
    return net.prefixlen


def ipv6_subnet(supernet, prefix, index):
    """The index-th subnet of length prefix inside supernet.

    ipv6_subnet('2600:1f16:1:2300::/56', 64, 1) -> '2600:1f16:1:2301::/64'
    (how AWS subnets take /64s out of the VPC's /56).
    """
    net = _network(supernet)
    if net is None:
        raise AnsibleFilterError(f"ipv6_subnet: {supernet!r} is not a CIDR network")
    prefix, index = int(prefix), int(index)
    if prefix < net.prefixlen or prefix > net.max_prefixlen:
        raise AnsibleFilterError(f"ipv6_subnet: /{prefix} does not fit inside {supernet}")
    count = 2 ** (prefix - net.prefixlen)
    if not 0 <= index < count:
        raise AnsibleFilterError(f"ipv6_subnet: index {index} out of range 0..{count - 1} for /{prefix} in {supernet}")
    size = 2 ** (net.max_prefixlen - prefix)
    first = int(net.network_address) + index * size
    return str(ipaddress.ip_network((first, prefix)))


def fqdn_valid(value):
    """True for a DNS name with at least two labels (e.g. api.example.com), no trailing dot needed.

    Labels follow RFC 1123 (letters, digits, hyphens, no leading/trailing hyphen, <= 63
    characters), the whole name is <= 253 characters and the top-level label is not numeric.
    """
    if not isinstance(value, str):
        return False
    name = value[:-1] if value.endswith(".") else value
    if not name or len(name) > 253:
        return False
    labels = name.split(".")
    if len(labels) < 2:
        return False
    if not all(_LABEL.match(label) for label in labels):
        return False
    return not labels[-1].isdigit()


def fqdn_within(name, zone):
    """True when name is zone itself or a name below it (case-insensitive, trailing dots ignored)."""
    if not (fqdn_valid(name) and fqdn_valid(zone)):
        return False
    name = name.rstrip(".").lower()
    zone = zone.rstrip(".").lower()
    return name == zone or name.endswith("." + zone)


def fqdn_outside(names, zone):
    """The names of a list that are not valid names inside zone (empty list: all fine)."""
    if not isinstance(names, (list, tuple)):
        return [names]
    return [n for n in names if not fqdn_within(n, zone)]


class FilterModule:
    """pulse.infra network filters."""

    def filters(self):
        return {
            "cidr_valid": cidr_valid,
            "cidr_invalid": cidr_invalid,
            "cidr_within": cidr_within,
            "cidr_outside": cidr_outside,
            "cidr_family": cidr_family,
            "cidr_overlaps": cidr_overlaps,
            "cidr_prefix": cidr_prefix,
            "ipv6_subnet": ipv6_subnet,
            "fqdn_valid": fqdn_valid,
            "fqdn_within": fqdn_within,
            "fqdn_outside": fqdn_outside,
        }
