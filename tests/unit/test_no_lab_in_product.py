"""The lab lives in lab/ and the lab inventory: the roles and playbooks read the same without it.

A task, handler, template or default that exists only for the lab says so ("lab only") or reads
pulse_lab; neither may appear in the product's files (the lab closes its gaps in lab/: moto's in
lab/moto_server.py, the instances' metadata service there too, udev in the lab image).
"""

import re

from conftest import REPO

PRODUCT = [*REPO.glob("roles/*/tasks/**/*.yml"), *REPO.glob("roles/*/handlers/*.yml"),
           *REPO.glob("roles/*/templates/**/*.j2"), *REPO.glob("roles/*/vars/*.yml"),
           *REPO.glob("roles/*/defaults/*.yml"), *REPO.glob("roles/*/files/*"),
           *REPO.glob("playbooks/**/*.yml"), REPO / "site.yml", REPO / "deploy_node.yml"]

LAB_ONLY = re.compile(r"\bpulse_lab\b|\blab[ -]only\b|lab_moto|pulse-lab-ebs-links", re.IGNORECASE)

def test_no_product_file_has_a_lab_only_line():
    found = {}
    for path in PRODUCT:
        if path.is_file():
            lines = [n for n, line in enumerate(path.read_text().splitlines(), 1) if LAB_ONLY.search(line)]
            if lines:
                found[str(path.relative_to(REPO))] = lines
    assert found == {}


def test_no_role_takes_credentials_for_its_hosts():
    """Hosts get AWS credentials from their instance role only, in the lab too."""
    import yaml

    for spec in REPO.glob("roles/*/meta/argument_specs.yml"):
        for entry in yaml.safe_load(spec.read_text())["argument_specs"].values():
            names = [n for n in entry.get("options", {}) if n.endswith(("_access_key", "_secret_key"))]
            allowed = {"pulse_aws_access_key", "pulse_aws_secret_key", "rust_build_aws_access_key",
                       "rust_build_aws_secret_key"}  # the controller's (delegate_to localhost), never a host's
            assert set(names) <= allowed, (spec, names)


def test_the_lab_playbooks_live_in_lab():
    assert not list(REPO.glob("playbooks/lab_*.yml"))
    assert (REPO / "lab/playbooks/lab_alb.yml").is_file() and (REPO / "lab/playbooks/lab_cdn.yml").is_file()
