"""A small TOML writer for the resolved study saved beside the results.

It writes what studies contain (tables of strings, numbers, booleans, lists and inline
tables); ``tomllib`` reads it back unchanged (tests/test_study.py checks the round trip).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: str) -> str:
    return key if _BARE.match(key) else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a TOML basic string is JSON-escaped
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        items = ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None)
        return "{" + items + "}"
    raise TypeError(f"cannot write {value!r} ({type(value).__name__}) as TOML")


def dumps(document: Mapping[str, Mapping[str, Any]]) -> str:
    """``{section: {key: value}}`` as TOML; ``None`` values are left out."""
    parts = []
    for section, table in document.items():
        lines = [f"[{_key(section)}]"]
        lines += [f"{_key(k)} = {_value(v)}" for k, v in table.items() if v is not None]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"
