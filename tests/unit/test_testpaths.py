"""Every test file is collected: pytest.ini lists integration files one by one (for order)."""

import configparser

from conftest import REPO


def test_every_test_file_is_under_a_testpath():
    config = configparser.ConfigParser()
    config.read(REPO / "pytest.ini")
    paths = [REPO / p for p in config["pytest"]["testpaths"].split()]
    for path in paths:
        assert path.exists(), f"pytest.ini lists {path.relative_to(REPO)}, which does not exist"
    for test_file in (REPO / "tests").rglob("test_*.py"):
        assert any(test_file == p or p in test_file.parents for p in paths), (
            f"{test_file.relative_to(REPO)} is not collected: add it to testpaths in pytest.ini"
        )
