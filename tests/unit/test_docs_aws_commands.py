"""Every AWS CLI command the docs show says where it runs: next to its lab form (`lab/aws …`,
which only ever talks to the lab's moto) or marked AWS only. A bare `aws …` pasted from a
lab section into a shell with credentials would reach a real account.

A "place" is a table cell (a cell in a column headed AWS is AWS only by its header), a
fenced block together with the paragraph before it, or a paragraph (list items included)."""

import re

import pytest

from conftest import REPO
from docs_commands import AWS_MARKS

DOCS = [REPO / "README.md", *sorted(REPO.glob("roles/*/README.md")), *sorted(REPO.glob("lab/**/README.md"))]
AWS_CLI = re.compile(r"(?<![\w/.-])aws (?:s3|s3api|ec2|ssm|logs|cloudwatch|iam|sts|elbv2|cloudfront|route53|acm|sns|kms)\b")
MARKS = ("lab/aws", *AWS_MARKS)


def places(text):
    """(where, text, column header or None) for each place of a markdown text."""
    lines = text.splitlines()
    out, para, before, i, header = [], [], [], 0, None
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            out.append((i + 1, "\n".join((para or before) + lines[i:j + 1]), None))
            para, before, i = [], [], j + 1
            continue
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if header is None:
                header = cells
            elif not set(line.replace("|", "").strip()) <= set("-: "):
                for name, cell in zip(header, cells):
                    out.append((i + 1, cell, name))
            before = []
            i += 1
            continue
        header = None
        if not line.strip():
            if para:
                out.append((i, "\n".join(para), None))
                before = para  # the paragraph a fenced block right after it belongs to
            para = []
        else:
            para.append(line)
        i += 1
    if para:
        out.append((len(lines), "\n".join(para), None))
    return out


def unmarked(path):
    return [f"{path.relative_to(REPO)}:{line}: {AWS_CLI.search(text).group(0)}…"
            for line, text, column in places(path.read_text())
            if AWS_CLI.search(text) and column != "AWS" and not any(mark in text for mark in MARKS)]


@pytest.mark.parametrize("path", DOCS, ids=[str(p.relative_to(REPO)) for p in DOCS])
def test_every_aws_command_shows_its_lab_form_or_says_aws_only(path):
    assert unmarked(path) == []


def test_the_check_sees_an_unmarked_command():
    text = "List them:\n\n```sh\naws s3 ls s3://bucket/\n```\n\n| what | lab | AWS |\n|---|---|---|\n| x | `make status` | `aws ssm get-parameter` |\n"
    found = [(line, column) for line, t, column in places(text) if AWS_CLI.search(t)]
    assert found == [(3, None), (9, "AWS")]
    assert not any(m in places(text)[0][1] for m in MARKS)
