"""What differs between two result sets besides their numbers: environment, provenance, study
settings, plugin versions and code fingerprints, side by side for compare's page and history's
step lines.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchinit.results.meta import Meta, PluginRecord
from benchinit.study.settings import documented_model

ENVIRONMENT_KEYS = (
    "benchinit",
    "torch",
    "python",
    "numpy",
    "pandas",
    "device",
    "platform",
    "cuda",
    "threads",
    "deterministic",
)


GIT_KEYS = ("commit", "branch", "dirty")


def _flat(prefix: str, value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flat(f"{prefix}.{key}" if prefix else str(key), item)
    else:
        yield prefix, value


def _provenance(meta: Meta) -> dict[str, Any]:
    """Flat ``{key: value}`` of a run's provenance (git, torch build, host)."""
    provenance = meta["provenance"]
    git = provenance.get("git") or {}
    flat = {f"git {k}": git.get(k) for k in GIT_KEYS if git.get(k) not in (None, "")}
    build = {k: v for k, v in (provenance.get("torch_config") or {}).items() if k != "show"}
    flat.update({f"torch build {k}": v for k, v in build.items()})
    if provenance.get("host"):
        flat["host"] = provenance["host"]
    return flat


def _plugin_name(plugin: PluginRecord) -> str:
    """A plugin file is named by its file name: two checkouts of one project keep the same
    plugin in different folders."""
    name = plugin["name"]
    return Path(name).name if plugin["origin"] == "file" else name


def _codes(base: Meta, new: Meta) -> tuple[dict[str, str], dict[str, str]]:
    """The code fingerprints both runs recorded (benchinit's compute path, each plugin's):
    two sides can run different code at one version. A side that predates fingerprints
    (or a plugin without source) is unknown, not different, so it gets no row."""

    def codes(meta: Meta) -> dict[str, str]:
        found = {"benchinit compute code": meta["environment"].get("benchinit_code")}
        found |= {f"plugin {_plugin_name(p)} code": p.get("code") for p in meta["plugins"]}
        return {key: str(code) for key, code in found.items() if code}

    a, b = codes(base), codes(new)
    return {k: v for k, v in a.items() if k in b}, {k: v for k, v in b.items() if k in a}


def _only_differences(meta: Meta) -> dict[str, Any]:
    """What is listed only when it differs: study settings, overrides, plugin versions."""
    stored = dict(meta["study"]["settings"])
    if isinstance(stored.get("model"), dict):  # folders from before one precision: the same
        stored["model"] = documented_model(stored["model"])
    settings = dict(_flat("", stored))
    plugins = {f"plugin {_plugin_name(p)}": p["version"] for p in meta["plugins"]}
    overrides = {"overrides": " ".join(meta["overrides"]) or "none"}
    return {**settings, **plugins, **overrides}


def environment_differences(base: Meta, new: Meta) -> list[dict[str, Any]]:
    """Rows ``key, base, new, differs, group`` comparing two runs' ``meta``: the environment
    and provenance always (differences marked), settings, plugins and code fingerprints
    where they differ."""
    rows = []
    groups = [
        ("environment", {k: base["environment"].get(k) for k in ENVIRONMENT_KEYS},
         {k: new["environment"].get(k) for k in ENVIRONMENT_KEYS}, False),
        ("provenance", _provenance(base), _provenance(new), False),
        ("settings", _only_differences(base), _only_differences(new), True),
        ("code", *_codes(base, new), True),
    ]  # fmt: skip
    for group, a, b, only_differences in groups:
        for key in dict.fromkeys([*a, *b]):
            x, y = a.get(key), b.get(key)
            if (x is None and y is None) or (only_differences and x == y):
                continue
            rows.append({"key": key, "base": x, "new": y, "differs": x != y, "group": group})
    return rows
