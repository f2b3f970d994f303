"""The shell commands the README and the role READMEs show, and how each is proven.

A command is a line of a fenced ``sh`` block (continuation lines joined, a trailing
``  # comment`` dropped) or an inline code span that starts with a command
(``ansible-playbook …``, ``make …``, ``lab/aws …``...). Each one is, in this order:

- **AWS only**, said where it is shown: its place (its paragraph, table cell, or fenced block
  with the paragraph before it) says "AWS only" (or "AWS and Cloudflare only"), sits in a table column headed AWS, or the command
  names the production inventory (``-i inventories/production``);
- or listed in tests/docs_commands.yml, which says how the lab proves it:
  ``run: <text>``  — tests/integration/test_operator.py runs it as written, in the lab, from the
             repository root; its output must contain the text;
  ``node: <text>`` — the same, on pulse-lab-node-1 through ``ansible --become -a`` (read-only
             commands of the runbooks that run on a node);
  ``run_as``       — with ``run`` or ``node``: what is run instead when the shown form has a
             placeholder (``<node>``, ``i-…``), the placeholder filled in;
  ``test``         — an integration test runs it (the same playbook, target or script with the
             documented parameters, through the tests' helpers): ``<file>::<test function>``;
  ``not_a_command`` — the span is not a command to type (a package list, a handler's name, a
             placeholder such as ``aws …``), with why;
  ``not_run``      — shown and run by no test, with why (the benchmark).

tests/unit/test_docs_commands.py checks that every command is one of these and that each named
test exists; the integration test runs the ``run`` and ``node`` ones.
"""

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted(REPO.glob("roles/*/README.md"))]
REGISTRY = REPO / "tests" / "docs_commands.yml"
SHELL_BLOCKS = ("sh", "bash", "shell", "console")
COMMAND = re.compile(r"(?:ansible-playbook|ansible|ansible-inventory|make|lab/aws|aws|curl|docker|systemctl|"
                     r"journalctl|cat|ls|tail|molecule|pytest|python3?|bin/pulse-publish|cloudflared|git|"
                     r"chromium|\.venv/bin/\S+)\s")
AWS_MARKS = ("AWS only", "AWS and Cloudflare only")
PRODUCTION = "-i inventories/production"


def _logical_lines(block):
    out, current = [], ""
    for raw in block:
        line = raw.rstrip()
        if line.endswith("\\"):
            current += line[:-1].strip() + " "
            continue
        out.append((current + line.strip()).strip())
        current = ""
    if current:
        out.append(current.strip())
    return out


def _strip_comment(line):
    return re.split(r"\s{2,}#\s", line, maxsplit=1)[0].strip()


def _paragraph(lines, index):
    """The paragraph (or list item run) around line `index`: up to the blank lines around it."""
    top = index
    while top > 0 and lines[top - 1].strip() and not lines[top - 1].startswith("```"):
        top -= 1
    bottom = index
    while bottom + 1 < len(lines) and lines[bottom + 1].strip() and not lines[bottom + 1].startswith("```"):
        bottom += 1
    return "\n".join(lines[top:bottom + 1])


def _table_cell(lines, index, offset):
    """(cell text, column header) of the table cell at `offset` of row `index`."""
    top = index
    while top > 0 and lines[top - 1].startswith("|"):
        top -= 1
    header = [c.strip() for c in lines[top].strip().strip("|").split("|")]
    row = lines[index]
    column = row[:offset].count("|") - 1
    cells = [c.strip() for c in row.strip().strip("|").split("|")]
    if 0 <= column < len(cells):
        return cells[column], header[column] if column < len(header) else None
    return row, None


def commands():
    """[(doc, line number, command, place text, column header)] in document order. A block's
    place is the block and the paragraph right before it; a span's, its paragraph or table cell."""
    out = []
    for doc in DOCS:
        lines = doc.read_text().splitlines()
        i = 0
        while i < len(lines):
            line = lines[i]
            if line.startswith("```"):
                lang = line[3:].strip()
                j = i + 1
                while j < len(lines) and not lines[j].startswith("```"):
                    j += 1
                if lang in SHELL_BLOCKS:
                    before = _paragraph(lines, i - 2) if i >= 2 and lines[i - 1].strip() == "" else \
                        (_paragraph(lines, i - 1) if i >= 1 and lines[i - 1].strip() else "")
                    place = before + "\n" + "\n".join(lines[i:j + 1])
                    number = i + 2
                    for command in _logical_lines(lines[i + 1:j]):
                        command = _strip_comment(command)
                        if command and not command.startswith("#"):
                            out.append((doc, number, " ".join(command.split()), place, None))
                i = j + 1
                continue
            for match in re.finditer(r"`([^`]+)`", line):
                span = match.group(1)
                if COMMAND.match(span):
                    place, column = _table_cell(lines, i, match.start()) if line.startswith("|") \
                        else (_paragraph(lines, i), None)
                    out.append((doc, i + 1, " ".join(span.split()), place, column))
            i += 1
    return out


def aws_only(command, place, column):
    return column == "AWS" or any(mark in place for mark in AWS_MARKS) or PRODUCTION in command


def registry():
    return yaml.safe_load(REGISTRY.read_text()) or {}
