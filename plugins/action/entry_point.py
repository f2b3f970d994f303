# Copyright: Pulse infrastructure team
# Apache License 2.0 (see galaxy.yml)
"""Action plugin for pulse.infra.entry_point: check an entry point's extra variables (-e)
before anything changes. Runs on the controller only; see plugins/modules/entry_point.py for
the documentation."""

from __future__ import annotations

import difflib
from pathlib import Path

import yaml
from ansible.plugins.action import ActionBase
from ansible.utils.vars import load_extra_vars

COLLECTION = Path(__file__).resolve().parents[2]


def role_prefixes(roles_dir):
    """Variable prefixes the collection owns: pulse_ and every role's name_."""
    prefixes = {"pulse_"}
    if roles_dir.is_dir():
        prefixes |= {f"{p.name}_" for p in roles_dir.iterdir() if (p / "meta").is_dir()}
    return prefixes


def argument_spec_names(roles_dir):
    """Every option of every entry point of every role of the collection."""
    names = set()
    for path in sorted(roles_dir.glob("*/meta/argument_specs.yml")):
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError):  # ansible-lint and the role's own argspec check report it
            continue
        for spec in (data.get("argument_specs") or {}).values():
            names |= set((spec or {}).get("options") or {})
    return names


def inventory_names(sources):
    """Variable names the inventories define (group_vars/host_vars files and folders)."""
    names = set()
    for source in sources or []:
        base = Path(source)
        base = base if base.is_dir() else base.parent
        for kind in ("group_vars", "host_vars"):
            folder = base / kind
            if not folder.is_dir():
                continue
            for path in sorted(folder.rglob("*")):
                if path.is_file() and path.suffix in (".yml", ".yaml", ".json", ""):
                    try:
                        data = yaml.safe_load(path.read_text())
                    except (OSError, yaml.YAMLError):
                        continue
                    if isinstance(data, dict):
                        names |= set(data)
    return names


def check(extra, parameters, known, prefixes):
    """The problems with the extra variables: (name, suggestion or None) for each name that
    looks like this entry point's own (one of its parameters misspelt, or a variable with a
    prefix this collection owns) but is not known."""
    problems = []
    params = list(parameters)
    universe = sorted(set(params) | known)
    for name in sorted(extra):
        if name in parameters or name in known or name.startswith("ansible_"):
            continue
        close_param = difflib.get_close_matches(name, params, n=1, cutoff=0.75)
        owned = any(name.startswith(prefix) for prefix in prefixes)
        if close_param:
            problems.append((name, close_param[0]))
        elif owned:
            close = difflib.get_close_matches(name, universe, n=1, cutoff=0.6)
            problems.append((name, close[0] if close else None))
    return problems


def usage_text(name, usage, parameters):
    width = max([len(p) for p in parameters] + [4])
    lines = [f"Usage: {usage}" if usage else f"Usage: ansible-playbook {name}"]
    if parameters:
        lines.append("Parameters (-e name=value):")
        lines += [f"  {p.ljust(width)}  {desc}" for p, desc in parameters.items()]
    else:
        lines.append("Parameters: none of its own (inventory variables may be overridden with -e).")
    return "\n".join(lines)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = self._task.args
        name = args.get("name") or "this playbook"
        parameters = dict(args.get("parameters") or {})
        usage = args.get("usage") or ""
        extra = load_extra_vars(self._loader)
        roles_dir = COLLECTION / "roles"
        known = argument_spec_names(roles_dir) | inventory_names(task_vars.get("ansible_inventory_sources"))
        known |= set(args.get("also_known") or [])
        text = usage_text(name, usage, parameters)
        result["changed"] = False
        result["parameters"] = parameters
        if "help" in extra and "help" not in parameters:
            result["failed"] = True
            result["msg"] = f"{name}: stopped at -e help, nothing was changed.\n{text}"
            return result
        problems = check(extra, parameters, known, role_prefixes(roles_dir))
        if problems:
            said = []
            for bad, suggestion in problems:
                said.append(f"'{bad}' (did you mean '{suggestion}'?)" if suggestion else f"'{bad}'")
            result["failed"] = True
            result["unknown"] = [problem[0] for problem in problems]
            result["msg"] = (
                f"{name}: unknown parameter{'s' if len(said) > 1 else ''} {', '.join(said)}. "
                f"Nothing was changed.\n{text}"
            )
            return result
        result["msg"] = f"{name}: parameters checked ({', '.join(sorted(set(extra) & set(parameters))) or 'none given'})"
        return result
