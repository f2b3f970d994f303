# Copyright: Pulse infrastructure team
# Apache License 2.0 (see galaxy.yml)
"""The one definition of a pulse-node release version, and the version forms users type.

A release tag is ``v`` + a semantic version without build metadata: ``v1.2.0``,
``v1.2.0-rc.1`` (git tag, artifact name ``pulse-node-v1.2.0``, release directory). The node
reports the bare version (``1.2.0``) in ``/info.version``. The leading ``v`` is optional in a
version a user gives (``1.2.0`` means ``v1.2.0``) and the filters return the ``v`` form; a list of
available tags is taken as written, though: a bare ``1.2.0`` git tag or artifact is not ``v1.2.0``.

Users may also ask for a series: ``v1.2`` / ``1.2`` (the newest ``v1.2.x``) or ``v1`` / ``1``
(the newest ``v1.x.y``); ``resolve_release`` turns such a request into one tag of a list of
published versions or git tags.

Ordering is semantic version precedence (semver.org, item 11): numbers compare numerically, a
pre-release sorts below its release (``v1.2.0-rc.1`` < ``v1.2.0``), pre-release identifiers
compare numerically when numeric, else as text, numeric below text, fewer identifiers first.

Each filter's ansible-doc documentation is its sidecar file ``plugins/filter/<filter>.yml``
(ansible-doc reads those for a file that holds several filters).
"""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

_NUM = r"(?:0|[1-9][0-9]*)"
# semver pre-release identifier: a number without leading zeros, or alphanumerics with a letter or '-'
_PRE_ID = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_TAG = re.compile(rf"^v?(?P<major>{_NUM})\.(?P<minor>{_NUM})\.(?P<patch>{_NUM})(?:-(?P<pre>{_PRE_ID}(?:\.{_PRE_ID})*))?$")
# a series: MAJOR or MAJOR.MINOR, the leading v optional
_SERIES = re.compile(rf"^v?(?P<major>{_NUM})(?:\.(?P<minor>{_NUM}))?$")

_FORMS = "vMAJOR.MINOR.PATCH or vMAJOR.MINOR.PATCH-PRERELEASE, e.g. v1.2.0 or v1.2.0-rc.1; the leading v is optional"
_REQUEST_FORMS = f"{_FORMS}; or a series: v1.2 (the newest v1.2.x) or v1 (the newest v1.x.y)"


def _describe(value):
    return repr(value) if isinstance(value, str) else f"{value!r} ({type(value).__name__})"


def _text(value):
    """value as a stripped string, or None when it is not text (numbers and booleans included:
    YAML turns 1.10 into the float 1.1, so an unquoted version cannot be trusted)."""
    if not isinstance(value, str):
        return None
    return value.strip()


def _parse(value):
    """(major, minor, patch, prerelease or None) of a complete version, or None."""
    text = _text(value)
    m = _TAG.match(text) if text is not None else None
    if not m:
        return None
    return int(m["major"]), int(m["minor"]), int(m["patch"]), m["pre"]


def _tag(parsed):
    major, minor, patch, pre = parsed
    return f"v{major}.{minor}.{patch}" + (f"-{pre}" if pre else "")


def _precedence(parsed):
    """Sort key in semantic version precedence."""
    major, minor, patch, pre = parsed
    if pre is None:
        return (major, minor, patch, 1, ())
    ids = tuple((0, int(i), "") if i.isdigit() else (1, 0, i) for i in pre.split("."))
    return (major, minor, patch, 0, ids)


def _tags(values):
    """The distinct entries of a list that are release tags exactly as written (vMAJOR.MINOR.PATCH[-PRE]),
    parsed, oldest first. A bare 1.2.0 git tag or artifact is not the release v1.2.0: picking it
    would name a tag or an artifact that does not exist."""
    found = {}
    for value in values:
        parsed = _parse(value)
        if parsed is not None and value == _tag(parsed):
            found.setdefault(value, parsed)
    return sorted(found.values(), key=_precedence)


def _require(value, name):
    parsed = _parse(value)
    if parsed is None:
        raise AnsibleFilterError(f"{_describe(value)} is not a release version ({_FORMS})")
    return parsed


def release_tag(value):
    """The release tag of a complete version: 'v1.2.0' and '1.2.0' -> 'v1.2.0'."""
    return _tag(_require(value, "release_tag"))


def release_bare(value):
    """The version without the leading v, as the node reports it: 'v1.2.0' -> '1.2.0'."""
    return _tag(_require(value, "release_bare"))[1:]


def is_release_tag(value):
    """True when release_tag accepts value (a complete version, the leading v optional)."""
    return _parse(value) is not None


def is_release_request(value):
    """True for what resolve_release accepts: a complete version or a series (v1.2, v1)."""
    text = _text(value)
    return text is not None and (_TAG.match(text) is not None or _SERIES.match(text) is not None)


def release_sort(values, reverse=False):
    """The entries of a list that are release versions, unchanged, in semantic version order (oldest first)."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise AnsibleFilterError(f"release_sort expects a list of versions, got {_describe(values)}")
    keyed = [(_precedence(p), v) for v, p in ((v, _parse(v)) for v in values) if p is not None]
    keyed.sort(key=lambda item: item[0], reverse=bool(reverse))
    return [item[1] for item in keyed]


def resolve_release(requested, available):
    """The tag of available that requested names.

    'v1.2.0' / '1.2.0': exactly v1.2.0; 'v1.2' / '1.2': the newest v1.2.x; 'v1' / '1': the newest
    v1.x.y. Newest prefers a final release over pre-releases. Only entries of available that are
    release tags as written (v1.2.0, not 1.2.0 nor latest) count; the others are ignored. Raises naming the request and the available tags when none matches.
    """
    if isinstance(available, (str, bytes)) or not hasattr(available, "__iter__"):
        raise AnsibleFilterError(
            f"resolve_release expects a list of available versions, got {_describe(available)}"
        )
    releases = _tags(available)
    text = _text(requested)
    exact = _parse(requested)
    series = _SERIES.match(text) if text is not None and exact is None else None
    if exact is not None:
        wanted = _tag(exact)
        candidates = [p for p in releases if _tag(p) == wanted]
        what = "exactly"
    elif series is not None:
        major = int(series["major"])
        minor = int(series["minor"]) if series["minor"] is not None else None
        wanted = f"v{major}" + (f".{minor}.x" if minor is not None else ".x.y")
        candidates = [p for p in releases if p[0] == major and (minor is None or p[1] == minor)]
        what = "the newest"
    else:
        raise AnsibleFilterError(f"{_describe(requested)} is not a version ({_REQUEST_FORMS})")
    if not candidates:
        tags = [_tag(p) for p in reversed(releases)]
        raise AnsibleFilterError(
            f"no release matches {text!r} ({what} {wanted}); available release tags, newest first: "
            f"{', '.join(tags) if tags else '(none)'}"
        )
    finals = [p for p in candidates if p[3] is None]
    return _tag((finals or candidates)[-1])


class FilterModule:
    """pulse.infra release version filters."""

    def filters(self):
        return {
            "release_tag": release_tag,
            "release_bare": release_bare,
            "is_release_tag": is_release_tag,
            "is_release_request": is_release_request,
            "resolve_release": resolve_release,
            "release_sort": release_sort,
        }
