"""roles/cloudflared: the version pin and the checked download. (The README's variable table is
generated from the argument specs, tests/unit/test_role_tables.py; defaults and specs agree,
tests/unit/test_role_docs.py.)"""

import re

import yaml

from conftest import REPO

ROLE = REPO / "roles" / "cloudflared"
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())


def test_version_pin_is_a_release_and_no_unchecked_download():
    assert re.fullmatch(r"20[2-9][0-9]\.[0-9]{1,2}\.[0-9]+", DEFAULTS["cloudflared_version"])
    # No sha256 is shipped that could not be checked here: a download needs the user's sha256.
    assert DEFAULTS["cloudflared_download_sha256"] == ""
    preflight = (ROLE / "tasks" / "preflight.yml").read_text()
    assert "cloudflared_download_sha256 is match('^[0-9a-f]{64}$')" in preflight
    install = (ROLE / "tasks" / "install.yml").read_text()
    assert install.count('checksum: "sha256:{{ cloudflared_download_sha256 }}"') == 2
