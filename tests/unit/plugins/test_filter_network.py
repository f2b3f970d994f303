"""Unit tests for the pulse.infra network filters (plugins/filter/network.py)."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.pulse.infra.plugins.filter import network as f


@pytest.mark.parametrize("value", ["10.213.0.0/16", "10.213.1.0/24", "0.0.0.0/0", "2600:1f16::/56", "::/0"])
def test_cidr_valid_accepts_networks(value):
    assert f.cidr_valid(value)


@pytest.mark.parametrize(
    "value",
    ["10.213.0.1/16", "10.213.0.0", "10.300.0.0/16", "10.0.0.0/33", "", None, 42, "banana/8", " /16"],
)
def test_cidr_valid_rejects_garbage_and_host_bits(value):
    assert not f.cidr_valid(value)


def test_cidr_valid_version():
    assert f.cidr_valid("10.0.0.0/8", 4)
    assert not f.cidr_valid("10.0.0.0/8", 6)
    assert f.cidr_valid("2001:db8::/32", "6")


def test_cidr_invalid_lists_the_bad_entries():
    assert f.cidr_invalid(["10.0.0.0/8", "10.0.0.1/8", "x"]) == ["10.0.0.1/8", "x"]
    assert f.cidr_invalid([]) == []
    assert f.cidr_invalid("10.0.0.0/8") == ["10.0.0.0/8"]  # not a list


def test_cidr_within():
    assert f.cidr_within("10.213.1.0/24", "10.213.0.0/16")
    assert f.cidr_within("10.213.0.0/16", "10.213.0.0/16")
    assert not f.cidr_within("10.214.1.0/24", "10.213.0.0/16")
    assert not f.cidr_within("10.0.0.0/8", "10.213.0.0/16")
    assert not f.cidr_within("2001:db8::/64", "10.0.0.0/8")
    assert not f.cidr_within("bad", "10.0.0.0/8")


def test_cidr_outside():
    assert f.cidr_outside(["10.213.1.0/24", "10.214.1.0/24", "x"], "10.213.0.0/16") == ["10.214.1.0/24", "x"]
    assert f.cidr_outside([], "10.213.0.0/16") == []
    assert f.cidr_outside("10.213.1.0/24", "10.213.0.0/16") == ["10.213.1.0/24"]


def test_cidr_family():
    mixed = ["0.0.0.0/0", "::/0", "10.0.0.0/8", "2001:db8::/32", "bad"]
    assert f.cidr_family(mixed, 4) == ["0.0.0.0/0", "10.0.0.0/8"]
    assert f.cidr_family(mixed, 6) == ["::/0", "2001:db8::/32"]
    with pytest.raises(AnsibleFilterError):
        f.cidr_family("10.0.0.0/8", 4)


def test_cidr_overlaps():
    assert f.cidr_overlaps(["10.213.1.0/24", "10.213.2.0/24", "10.213.11.0/24"]) == []
    assert f.cidr_overlaps(["10.213.1.0/24", "10.213.1.128/25", "10.213.2.0/24"]) == [
        "10.213.1.0/24 overlaps 10.213.1.128/25"
    ]
    assert f.cidr_overlaps(["10.213.1.0/24", "10.213.1.0/24"]) == ["10.213.1.0/24 overlaps 10.213.1.0/24"]
    # invalid entries are ignored (cidr_invalid reports them)
    assert f.cidr_overlaps(["x", "10.0.0.0/8"]) == []
    with pytest.raises(AnsibleFilterError):
        f.cidr_overlaps("10.0.0.0/8")


def test_cidr_prefix():
    assert f.cidr_prefix("10.213.0.0/16") == 16
    with pytest.raises(AnsibleFilterError):
        f.cidr_prefix("nope")


def test_ipv6_subnet():
    assert f.ipv6_subnet("2600:1f16:1:2300::/56", 64, 0) == "2600:1f16:1:2300::/64"
    assert f.ipv6_subnet("2600:1f16:1:2300::/56", 64, 1) == "2600:1f16:1:2301::/64"
    assert f.ipv6_subnet("2600:1f16:1:2300::/56", "64", "255") == "2600:1f16:1:23ff::/64"
    with pytest.raises(AnsibleFilterError):
        f.ipv6_subnet("2600:1f16:1:2300::/56", 64, 256)
    with pytest.raises(AnsibleFilterError):
        f.ipv6_subnet("2600:1f16:1:2300::/56", 48, 0)
    with pytest.raises(AnsibleFilterError):
        f.ipv6_subnet("garbage", 64, 0)


@pytest.mark.parametrize("name", ["api.lab.pulse.example.com", "example.com", "API.Example.COM.", "a-b.c1.io"])
def test_fqdn_valid(name):
    assert f.fqdn_valid(name)


@pytest.mark.parametrize(
    "name",
    ["localhost", "-api.example.com", "api-.example.com", "api..example.com", "api example.com",
     "api_1.example.com", "10.0.0.1", "x" * 64 + ".com", ("a." * 127) + "com", "", None, "https://api.example.com"],
)
def test_fqdn_invalid(name):
    assert not f.fqdn_valid(name)


def test_fqdn_within():
    assert f.fqdn_within("api.lab.pulse.example.com", "lab.pulse.example.com")
    assert f.fqdn_within("lab.pulse.example.com.", "LAB.pulse.example.com")
    assert not f.fqdn_within("api.lab.pulse.example.com", "other.example.com")
    assert not f.fqdn_within("evil-lab.pulse.example.com", "lab.pulse.example.com")
    assert not f.fqdn_within("bad..name.com", "name.com")


def test_fqdn_outside():
    assert f.fqdn_outside(["www.example.com", "www.other.com", "bad..example.com"], "example.com") == [
        "www.other.com", "bad..example.com"]
    assert f.fqdn_outside([], "example.com") == []
    assert f.fqdn_outside("www.example.com", "example.com") == ["www.example.com"]


def test_filter_module_exports_everything():
    exported = f.FilterModule().filters()
    for name in ("cidr_valid", "cidr_invalid", "cidr_within", "cidr_outside", "cidr_family", "cidr_overlaps",
                 "cidr_prefix", "ipv6_subnet", "fqdn_valid", "fqdn_within", "fqdn_outside"):
        assert callable(exported[name])
