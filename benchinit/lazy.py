"""A module imported on first use: ``stats = lazy("scipy.stats")`` costs nothing until
``stats.t`` is read. benchinit's start-up (``--version``, an exit-2 error, the read side's
commands) must not pay for scipy's 0.6 s where no statistic is computed."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    """Stands for a module until an attribute is read, then hands on the real one's."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attribute)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy(name: str) -> Any:
    """``name``, imported when one of its attributes is first read."""
    return LazyModule(name)
