"""The README's layout table matches the tree: every top-level entry git tracks is named in it,
and every path it names exists."""

import re
import subprocess

from conftest import REPO


def layout_rows():
    section = (REPO / "README.md").read_text().split("## Layout\n", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| `")]


def named_paths():
    paths = set()
    for row in layout_rows():
        first_cell = row.split("|")[1]
        paths |= {p.rstrip("/") for p in re.findall(r"`([^`]+)`", first_cell)}
    return paths


def test_every_top_level_entry_is_in_the_layout_table():
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    top = {path.split("/", 1)[0] for path in tracked}
    named_top = {path.split("/", 1)[0] for path in named_paths()}
    assert top - named_top == set(), f"not in the README's layout table: {sorted(top - named_top)}"


def test_every_path_in_the_layout_table_exists():
    missing = [path for path in named_paths() if "<" not in path and not (REPO / path).exists()]
    assert missing == [], missing


def test_every_role_is_named_in_the_layout_table():
    roles_row = next(row for row in layout_rows() if row.startswith("| `roles/`"))
    roles = sorted(p.name for p in (REPO / "roles").iterdir() if (p / "tasks").is_dir())
    assert [r for r in roles if f"`{r}`" not in roles_row] == []
